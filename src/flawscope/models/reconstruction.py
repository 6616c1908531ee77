"""Base class for reconstruction detectors (autoencoders): train with MSE, score by residual.

The anomaly map is the Gaussian-smoothed residual, squared error or 1 - SSIM
(``scoring.residual``); the image score aggregates it (see :mod:`flawscope.scoring`). Subclasses
only build their network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from flawscope.config import ModelConfig, ScoringConfig, TrainingConfig, build
from flawscope.errors import ConfigError, ModelDirError
from flawscope.models.base import Prediction
from flawscope.models.weights import WEIGHTS_FILE, read_tensors, save_tensors
from flawscope.scoring import aggregate, gaussian_smooth, residual_map
from flawscope.training import ReconstructionModule, fit_network


class ReconstructionDetector:
    """A detector whose network reconstructs good images.

    Subclasses set ``Params`` (a pydantic model of their hyperparameters) and implement
    :meth:`build_network`. Inputs: ``(N, C, S, S)`` float32 in ``[0, 1]``.
    """

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    #: the input side must be a multiple of this (the network's total down-sampling factor)
    size_multiple: ClassVar[int] = 1

    def __init__(
        self,
        model: ModelConfig,
        training: TrainingConfig | None = None,
        scoring: ScoringConfig | None = None,
    ) -> None:
        self.model_cfg = model
        self.training_cfg = training or TrainingConfig()
        self.scoring_cfg = scoring or ScoringConfig()
        self.params = build(self.Params, model.params, f"{self.name} model params")
        if model.image_size % self.size_multiple:
            fixed = model.image_size - model.image_size % self.size_multiple
            raise ConfigError(
                f"image size {model.image_size} is not a multiple of {self.size_multiple}, "
                f"which the {self.name} network needs",
                f"choose e.g. --image-size {fixed}",
            )
        torch.manual_seed(self.training_cfg.seed)
        self.network = self.build_network()
        self.network.eval()
        self.history: dict[str, list[float]] = {}

    def build_network(self) -> nn.Module:
        """Return the untrained network (``(N, C, S, S)`` -> same shape, values in ``[0, 1]``)."""
        raise NotImplementedError

    def fit(self, train: torch.Tensor, val: torch.Tensor | None = None) -> ReconstructionDetector:
        """Train on good images ``train`` (``(N, C, S, S)``), early-stopping on ``val``.

        When ``val`` is None the training images are also used for validation (no early-stopping
        signal beyond the training loss); the Inspector always passes a hold-out.
        """
        t = self.training_cfg
        self.network.train()
        module = ReconstructionModule(
            self.network, t.learning_rate, t.weight_decay, t.lr_patience, t.lr_factor
        )
        held = train if val is None else val
        self.history = fit_network(module, train, held, t, augment=t.augment)
        self.network = module.network.eval()
        return self

    @torch.no_grad()
    def reconstruct(self, batch: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``(N, C, S, S)`` float32 of a batch (on the network's device)."""
        device = next(self.network.parameters()).device
        return self.network(batch.to(device)).float().cpu()

    def predict(self, batch: torch.Tensor) -> Prediction:
        """Score ``(N, C, S, S)`` images: anomaly maps ``(N, S, S)``, scores ``(N,)``, float32.

        The map is :meth:`anomaly_maps` of the reconstruction; the score aggregates it
        (``scoring.aggregation``).
        """
        recon = self.reconstruct(batch).numpy()
        return reconstruction_prediction(batch.numpy(), recon, self.scoring_cfg)

    def anomaly_maps(self, images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
        """Smoothed residual maps ``(N, S, S)`` float32 of ``(N, C, S, S)`` images in [0, 1].

        ``scoring.residual`` picks squared error or 1 - SSIM; ``scoring.sigma`` the smoothing.
        """
        return residual_maps(images, reconstructions, self.scoring_cfg)

    def save(self, directory: Path) -> None:
        """Write the network weights to ``directory/weights.safetensors``."""
        save_tensors(directory, self.network.state_dict())

    def load(self, directory: Path) -> ReconstructionDetector:
        """Load weights saved by :meth:`save`.

        Raises:
            ModelDirError: the weights file is missing, damaged or does not match the network.
        """
        state = read_tensors(directory)
        try:
            self.network.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelDirError(
                f"weights in {Path(directory) / WEIGHTS_FILE} do not match the {self.name} "
                f"network ({str(exc)[:120]})",
                "the model directory is from other settings or another version; re-run "
                "`flawscope fit`",
            ) from exc
        self.network.eval()
        return self

    def describe(self) -> dict[str, Any]:
        """Name, parameter count and hyperparameters, for reports."""
        n = sum(p.numel() for p in self.network.parameters())
        return {"name": self.name, "parameters": n, **self.params.model_dump()}


def residual_maps(
    images: np.ndarray, reconstructions: np.ndarray, scoring: ScoringConfig
) -> np.ndarray:
    """Smoothed residual maps ``(N, S, S)`` float32 of ``(N, C, S, S)`` float32 images in [0, 1].

    ``scoring.residual`` picks squared error or 1 - SSIM; ``scoring.sigma`` the smoothing (px).
    """
    raw = residual_map(images, reconstructions, scoring.residual)
    return gaussian_smooth(raw, scoring.sigma).astype(np.float32)


def reconstruction_prediction(
    images: np.ndarray, reconstructions: np.ndarray, scoring: ScoringConfig
) -> Prediction:
    """Maps and scores of ``(N, C, S, S)`` float32 images from their reconstructions.

    The scoring shared by :meth:`ReconstructionDetector.predict` and the ONNX runtime path
    (:class:`flawscope.models.onnx_runtime.OnnxDetector`): :func:`residual_maps`, aggregated
    into image scores by ``scoring.aggregation``.

    Returns:
        ``Prediction`` with ``(N,)`` float32 scores, ``(N, S, S)`` float32 maps and the
        reconstructions.
    """
    maps = residual_maps(images, reconstructions, scoring)
    scores = aggregate(maps, scoring.aggregation, scoring.top_k_percent)
    return Prediction(scores, maps, reconstructions)
