"""Pretrained-backbone features shared by the feature-based detectors (PatchCore, PaDiM).

- :class:`BackboneParams` and :func:`make_extractor`: which backbone, which stages, which weights;
  the extractor is built by a factory so tests can substitute a tiny stand-in.
- :func:`align_stages`: the stages of one forward pass brought onto the grid of the shallowest
  (stride-8) stage, optionally each 3x3-neighbourhood averaged first (PatchCore's "locally aware"
  patch features) and concatenated along channels (PaDiM's embedding).
- :func:`locally_aware_features`: PatchCore Sec. 3.1 patch features projected to a fixed
  dimension by adaptive average pooling over channels.
- :class:`BackboneDetector`: the part of the two detectors that is not the model itself:
  parameter validation, the extractor, batch-wise feature extraction (memory flat in N), anomaly
  maps at the input size, and safetensors save/load with :class:`~flawscope.errors.ModelDirError`.

Shapes: images ``(N, C, S, S)`` float32 in ``[0, 1]`` with C = 1 or 3 (the extractor turns grey
into 3 equal channels); a stage is ``(N, C_i, S/s_i, S/s_i)`` float32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, field_validator
from torch import Tensor, nn

from flawscope.config import ModelConfig, ScoringConfig, TrainingConfig, build
from flawscope.errors import ConfigError, DataError, ModelDirError
from flawscope.models.weights import WEIGHTS_FILE, read_tensors, save_tensors
from flawscope.scoring import gaussian_smooth


class BackboneParams(BaseModel):
    """Which pretrained feature extractor a feature-based detector uses.

    Recorded in ``config.yaml``; the backbone's weights are not saved with the model (they come
    from the installed package, or from ``weights`` when given).

    Attributes:
        backbone: backbone name understood by :class:`flawscope.models.backbone.FeatureExtractor`.
        layers: the stages to read, passed through to the extractor; None = its default (the
            stride-8 and stride-16 stages).
        weights: path of a backbone weights file; None = the weights shipped with the package.
    """

    model_config = ConfigDict(extra="forbid")
    backbone: str = "efficientnet-lite0"
    layers: tuple[int | str, ...] | None = None
    weights: str | None = None

    @field_validator("layers")
    @classmethod
    def _some_layers(cls, value: tuple[int | str, ...] | None) -> tuple[int | str, ...] | None:
        if value is not None and len(value) == 0:
            raise ValueError("give at least one layer, or leave it unset for the default")
        return value


#: builds the feature extractor from the detector's params: ``module(images) -> list[stage]``,
#: with ``strides`` and ``channels`` attributes (see :mod:`flawscope.models.backbone`)
ExtractorFactory = Callable[[BackboneParams], nn.Module]


def make_extractor(params: BackboneParams) -> nn.Module:
    """The package's pretrained :class:`~flawscope.models.backbone.FeatureExtractor`.

    Raises:
        ConfigError: the backbone module or the package it needs is not installed.
    """
    try:
        from flawscope.models.backbone import FeatureExtractor
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"backbone {params.backbone!r} cannot be loaded: module {exc.name!r} is missing",
            "install flawscope with its dependencies (`make setup`)",
        ) from exc
    kwargs: dict[str, Any] = {"backbone": params.backbone, "weights": params.weights}
    if params.layers is not None:
        kwargs["layers"] = list(params.layers)
    return FeatureExtractor(**kwargs)


def local_average(stage: Tensor, size: int = 3) -> Tensor:
    """Average each position over its ``size x size`` neighbourhood (stride 1, same size).

    PatchCore Sec. 3.1, Eq. 3 (aggregation over the neighbourhood ``N_p^(h,w)`` with p = 3):
    widens each feature's receptive field without losing resolution. At the borders only the
    positions inside the map are averaged (``count_include_pad=False``).

    Args:
        stage: ``(N, C, h, w)`` float tensor.

    Returns:
        ``(N, C, h, w)`` float tensor.
    """
    return F.avg_pool2d(stage, size, stride=1, padding=size // 2, count_include_pad=False)


def align_stages(stages: Sequence[Tensor], local: bool = False) -> list[Tensor]:
    """Bring all stages onto the grid of the largest (shallowest, stride-8) one.

    Args:
        stages: ``[(N, C_i, h_i, w_i), ...]`` from one forward pass, at least one.
        local: first average each stage over 3x3 neighbourhoods (:func:`local_average`).

    Returns:
        ``[(N, C_i, h, w), ...]``: deeper stages bilinearly up-sampled (``align_corners=False``)
        to ``(h, w)``, the largest grid among the stages.
    """
    if not stages:
        raise ValueError("the feature extractor returned no stages")
    h, w = max((s.shape[-2:] for s in stages), key=lambda hw: hw[0] * hw[1])
    out = []
    for s in stages:
        if local:
            s = local_average(s)
        if s.shape[-2:] != (h, w):
            s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)
        out.append(s)
    return out


def channel_pool(patches: Tensor, dim: int) -> Tensor:
    """Adaptive average pooling over the channel axis: ``(P, C)`` -> ``(P, dim)``.

    Averages contiguous groups of about ``C / dim`` channels (repeats channels when
    ``dim > C``); the parameter-free projection PatchCore uses (Sec. 3.1 and its reference
    implementation).
    """
    if patches.shape[1] == dim:
        return patches
    return F.adaptive_avg_pool1d(patches.unsqueeze(1), dim).squeeze(1)


def locally_aware_features(stages: Sequence[Tensor], dim: int) -> Tensor:
    """PatchCore's locally aware patch features of one batch (Sec. 3.1).

    Each stage is 3x3-neighbourhood averaged and up-sampled to the stride-8 grid
    (:func:`align_stages`); as in the authors' reference implementation each stage is then
    channel-pooled to ``dim`` on its own (so every stage weighs the same whatever its channel
    count), the stages are concatenated, and the result is channel-pooled to ``dim`` again
    (:func:`channel_pool`).

    Args:
        stages: ``[(N, C_i, h_i, w_i), ...]`` float32 from one forward pass.
        dim: output feature dimension D.

    Returns:
        ``(N, D, h, w)`` float32 on the stages' device.
    """
    aligned = align_stages(stages, local=True)
    n, _, h, w = aligned[0].shape
    pooled = [channel_pool(to_patches(s), dim) for s in aligned]
    joined = channel_pool(torch.cat(pooled, dim=1), dim)
    return joined.reshape(n, h, w, dim).permute(0, 3, 1, 2)


def to_patches(features: Tensor) -> Tensor:
    """``(N, D, h, w)`` -> ``(N * h * w, D)``, rows in image-major, then row-major order."""
    n, d, h, w = features.shape
    return features.permute(0, 2, 3, 1).reshape(n * h * w, d)


def upsample_grid(grid_scores: Tensor, size: int) -> Tensor:
    """Per-position scores ``(N, h, w)`` -> ``(N, size, size)`` float32, bilinearly up-sampled.

    ``align_corners=False``; the first half of :meth:`BackboneDetector.to_maps`, shared with the
    exported ONNX graph (:mod:`flawscope.models.onnx_graphs`).
    """
    up = F.interpolate(grid_scores[:, None].float(), size=(size, size), mode="bilinear")
    return up[:, 0]


def smooth_maps(maps: np.ndarray, sigma: float) -> np.ndarray:
    """``(N, S, S)`` up-sampled maps -> float32 maps Gaussian-smoothed with ``sigma`` pixels.

    The second half of :meth:`BackboneDetector.to_maps`, shared with the ONNX runtime path
    (:class:`flawscope.models.onnx_runtime.OnnxDetector`).
    """
    return gaussian_smooth(maps.astype(np.float32), sigma).astype(np.float32)


def select_device(accelerator: str) -> torch.device:
    """``cpu`` for ``accelerator="cpu"``; else CUDA when available, otherwise CPU."""
    if accelerator != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


#: images per backbone forward pass on a CPU (see :meth:`BackboneDetector.stages`)
CPU_MICRO_BATCH = 2


class BackboneDetector:
    """Base of the detectors built on a pretrained feature extractor (nothing is trained).

    Subclasses set ``Params`` (a :class:`BackboneParams` subclass) and implement ``fit``,
    ``predict`` and the tensors they save. Inputs: ``(N, C, S, S)`` float32 in ``[0, 1]``,
    S = ``model.image_size``.

    Args:
        model: model section of the config; ``model.params`` is validated into ``Params``.
        training: its ``batch_size`` (feature extraction batches), ``seed`` and ``accelerator``
            are used.
        scoring: its ``sigma`` smooths the anomaly maps.
        extractor_factory: builds the extractor from the params; None = :func:`make_extractor`
            (looked up at call time, so tests can monkeypatch it).

    Raises:
        ConfigError: invalid params, or the backbone cannot be loaded.
    """

    name: ClassVar[str]
    Params: ClassVar[type[BackboneParams]] = BackboneParams

    def __init__(
        self,
        model: ModelConfig,
        training: TrainingConfig | None = None,
        scoring: ScoringConfig | None = None,
        extractor_factory: ExtractorFactory | None = None,
    ) -> None:
        self.model_cfg = model
        self.training_cfg = training or TrainingConfig()
        self.scoring_cfg = scoring or ScoringConfig()
        self.params = build(self.Params, model.params, f"{self.name} model params")
        self.device = select_device(self.training_cfg.accelerator)
        torch.manual_seed(self.training_cfg.seed)  # a randomly initialised extractor is repeatable
        factory = extractor_factory or make_extractor
        self.extractor = factory(self.params).to(self.device).eval()
        self.fit_stats: dict[str, float] = {}
        self.history: dict[str, list[float]] = {}
        self._grid: tuple[int, int] | None = None

    # ------------------------------------------------------------------ features
    def generator(self) -> torch.Generator:
        """A CPU generator seeded with ``training.seed`` (random projections, channel choice)."""
        return torch.Generator().manual_seed(self.training_cfg.seed)

    def check_images(self, images: Tensor, what: str, allow_empty: bool = False) -> None:
        """Refuse anything but ``(N, 1 or 3, S, S)`` images at the model's input size.

        Raises:
            DataError: wrong shape, or no images where some are needed.
        """
        s = self.model_cfg.image_size
        if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[2:] != (s, s):
            raise DataError(
                f"{what} images have shape {tuple(images.shape)}, the {self.name} model needs "
                f"(N, 1 or 3, {s}, {s})",
                "load the images through the Inspector, which resizes them to the model size",
            )
        if len(images) == 0 and not allow_empty:
            raise DataError(f"no {what} images were given", "provide at least one good image")

    @torch.no_grad()
    def stages(self, images: Tensor) -> Iterator[list[Tensor]]:
        """Extractor stages of ``images``, ``training.batch_size`` images at a time.

        Yields:
            ``[(B, C_i, h_i, w_i), ...]`` float32 on ``self.device``, one list per batch.
        """
        bs = self.training_cfg.batch_size
        # On a CPU, small forward passes keep the activations in cache: measured on 2 cores at
        # 256 px, 8 passes of 2 images take 166 ms, one pass of 16 images 393 ms.
        micro = bs if self.device.type == "cuda" else CPU_MICRO_BATCH
        for i in range(0, len(images), bs):
            batch = images[i : i + bs].to(self.device, torch.float32)
            parts = [self.extractor(batch[j : j + micro]) for j in range(0, len(batch), micro)]
            yield [torch.cat(stage).float() for stage in zip(*parts, strict=True)]

    def grid(self) -> tuple[int, int]:
        """``(h, w)``: the feature grid (stride-8 stage) at the input size (one dummy pass)."""
        if self._grid is None:
            s = self.model_cfg.image_size
            dummy = torch.zeros(1, self.model_cfg.channels, s, s)
            stages = next(self.stages(dummy))
            h, w = align_stages(stages)[0].shape[-2:]
            self._grid = (int(h), int(w))
        return self._grid

    def to_maps(self, grid_scores: Tensor) -> np.ndarray:
        """Anomaly maps at the input size from per-position scores.

        ``(N, h, w)`` -> bilinear up-sampling (``align_corners=False``) to ``(N, S, S)`` ->
        Gaussian smoothing with ``scoring.sigma`` pixels -> float32 NumPy.
        """
        up = upsample_grid(grid_scores, self.model_cfg.image_size)
        return smooth_maps(up.cpu().numpy(), self.scoring_cfg.sigma)

    def empty_prediction_maps(self) -> np.ndarray:
        """``(0, S, S)`` float32 maps for an empty batch."""
        s = self.model_cfg.image_size
        return np.zeros((0, s, s), dtype=np.float32)

    @staticmethod
    def timer() -> Callable[[], float]:
        """Start a wall-clock timer; calling the result gives the seconds elapsed."""
        t0 = time.perf_counter()
        return lambda: time.perf_counter() - t0

    # ------------------------------------------------------------------ persistence
    def save_tensors(self, directory: Path, tensors: dict[str, Tensor]) -> None:
        """Write ``tensors`` (moved to CPU, contiguous) to ``directory/weights.safetensors``."""
        save_tensors(directory, tensors)

    def load_tensors(
        self, directory: Path, shapes: dict[str, tuple[int | None, ...]]
    ) -> dict[str, Tensor]:
        """Read ``directory/weights.safetensors`` and check it holds ``shapes``.

        Args:
            shapes: expected name -> shape; None in a shape accepts any size >= 1 there.

        Returns:
            The tensors by name, on ``self.device``.

        Raises:
            ModelDirError: the file is missing, unreadable, lacks a tensor or one has the wrong
                shape (a damaged directory, or one written with other model params).
        """
        path = Path(directory) / WEIGHTS_FILE
        tensors = read_tensors(directory)
        for key, shape in shapes.items():
            got = tuple(tensors[key].shape) if key in tensors else None
            if got is None or not _shape_matches(got, shape):
                want = tuple("*" if e is None else e for e in shape)
                raise ModelDirError(
                    f"{path} does not match the {self.name} model: tensor {key!r} has shape "
                    f"{got}, expected {want}",
                    "the model directory is damaged or from other settings; re-run `flawscope fit`",
                )
        return {k: tensors[k].to(self.device) for k in shapes}

    def describe(self) -> dict[str, Any]:
        """Name, hyperparameters and fit statistics, for reports."""
        return {"name": self.name, **self.params.model_dump(), **self.fit_stats}


def _shape_matches(got: tuple[int, ...], want: tuple[int | None, ...]) -> bool:
    """Whether shape ``got`` fits ``want`` (None there = any size >= 1)."""
    if len(got) != len(want):
        return False
    return all(g >= 1 if e is None else g == e for g, e in zip(got, want, strict=True))
