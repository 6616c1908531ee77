"""The ``Detector`` interface every model implements, and the registry of models by name.

Shapes: images enter as ``(N, C, H, W)`` float32 tensors in ``[0, 1]`` at the detector's input
size; a :class:`Prediction` holds ``image_scores`` ``(N,)`` and ``anomaly_maps`` ``(N, H, W)``,
both float32 NumPy arrays. Higher score = more anomalous, always.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

from flawscope.errors import ConfigError


@dataclass
class Prediction:
    """Output of :meth:`Detector.predict` for a batch of N images.

    Attributes:
        image_scores: ``(N,)`` float32, image-level anomaly scores (>= 0, unbounded).
        anomaly_maps: ``(N, H, W)`` float32, pixel-level anomaly maps at the detector's input size,
            in the same units as ``image_scores`` (the score aggregates the map).
        reconstructions: ``(N, C, H, W)`` float32 in ``[0, 1]`` (reconstruction models), else None.
    """

    image_scores: np.ndarray
    anomaly_maps: np.ndarray
    reconstructions: np.ndarray | None = None


@runtime_checkable
class Detector(Protocol):
    """What every detector (image or point cloud) provides.

    ``fit`` learns from good samples only; ``predict`` scores a batch; ``save``/``load`` persist the
    learned state (weights as safetensors) into / from a model directory.
    """

    name: ClassVar[str]

    def fit(self, train: torch.Tensor, val: torch.Tensor | None = None) -> Detector: ...

    def predict(self, batch: torch.Tensor) -> Prediction: ...

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> Detector: ...


_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a detector available under ``name`` (e.g. ``"cae"``)."""

    def wrap(cls: type) -> type:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available() -> list[str]:
    """Names of all registered detectors, sorted."""
    import flawscope.models  # noqa: F401  (importing the package registers the models)

    return sorted(_REGISTRY)


def detector_class(name: str) -> type:
    """Return the detector class registered under ``name``.

    Raises:
        ConfigError: when no detector has that name (the message lists the known names).
    """
    names = available()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model name {name!r}", f"choose one of: {', '.join(names)}")
    return _REGISTRY[name]


def create(name: str, **params: Any) -> Any:
    """Instantiate the detector registered under ``name`` with its parameters."""
    return detector_class(name)(**params)
