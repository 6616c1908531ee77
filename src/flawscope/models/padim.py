"""``padim``: PaDiM (Defard et al., "PaDiM: a Patch Distribution Modeling Framework for Anomaly
Detection and Localization", ICPR 2021).

Nothing is trained. Each stride-8 grid position gets an embedding: the backbone stages
concatenated on that grid (deeper stages bilinearly up-sampled; Sec. 3.1,
:func:`flawscope.models.features.align_stages`), reduced to ``n_features`` channels chosen at
random once (fixed by ``training.seed``; Sec. 4.2 "random dimensionality reduction"). ``fit``
models every position by a multivariate Gaussian ``N(mu_ij, Sigma_ij)`` of the good images'
embeddings, with ``Sigma_ij + eps I`` (eps = 0.01) so it is invertible (Sec. 3.2, Eq. 1).
``predict`` scores each position by the Mahalanobis distance (Eq. 2) of the test embedding:
the distances, up-sampled to the input size and Gaussian-smoothed (sigma = ``scoring.sigma``),
are the anomaly map, and the image score is the maximum of the smoothed map, as in the paper
(``scoring.aggregation`` is not used). Scores are Mahalanobis distances (>= 0, unbounded).

Memory: fit accumulates ``sum x`` and ``sum x x^T`` per position batch by batch (float64,
``h * w * d * d``: 82 MB for a 32 x 32 grid and d = 100), flat in the number of images;
predict processes ``position_chunk`` positions at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from flawscope.config import ModelConfig, ScoringConfig, TrainingConfig
from flawscope.errors import ConfigError, ModelDirError
from flawscope.models.base import Prediction, register
from flawscope.models.features import (
    BackboneDetector,
    BackboneParams,
    ExtractorFactory,
    align_stages,
)
from flawscope.scoring import aggregate

MEAN_KEY, INV_COV_KEY, INDEX_KEY = "mean", "inv_covariance", "channel_index"


class PadimParams(BackboneParams):
    """Hyperparameters of :class:`PadimDetector` (defaults follow the paper).

    Attributes:
        n_features: d, the number of embedding channels kept (chosen at random with
            ``training.seed``; paper: 100 for ResNet18); None keeps all channels.
        eps: regularisation added to each covariance diagonal (paper: 0.01).
        position_chunk: grid positions inverted / scored at a time (bounds temporaries).
    """

    n_features: int | None = Field(100, ge=1)
    eps: float = Field(0.01, gt=0)
    position_chunk: int = Field(256, ge=1)


class GaussianAccumulator:
    """Per-position mean and covariance, accumulated batch by batch (memory flat in N).

    Keeps ``sum (x - c)`` and ``sum (x - c)(x - c)^T`` in float64 for each of P positions, where
    ``c`` is the first sample seen (a shift that keeps the sums small, so the covariance does not
    suffer from cancellation).
    """

    def __init__(self) -> None:
        self.count = 0
        self.shift: Tensor | None = None
        self.sum: Tensor | None = None
        self.outer: Tensor | None = None

    def update(self, x: Tensor) -> None:
        """Add embeddings ``x`` ``(B, P, d)`` (B images, P positions, d features)."""
        x = x.double()
        if self.shift is None:
            self.shift = x[0].clone()
            p, d = self.shift.shape
            self.sum = x.new_zeros(p, d)
            self.outer = x.new_zeros(p, d, d)
        x = x - self.shift
        self.sum += x.sum(dim=0)
        self.outer += torch.einsum("bpi,bpj->pij", x, x)
        self.count += len(x)

    def finalize(self, eps: float, chunk: int = 256) -> tuple[Tensor, Tensor]:
        """Mean and inverse of the regularised covariance of each position.

        ``Sigma = 1/(n-1) sum (x - mu)(x - mu)^T + eps I`` (PaDiM Eq. 1; ``1/n`` when n = 1, so a
        single image gives ``eps I``), inverted in float64 ``chunk`` positions at a time.

        Returns:
            ``mean`` ``(P, d)`` and ``inv_cov`` ``(P, d, d)``, float32.

        Raises:
            ValueError: nothing was accumulated.
        """
        if self.count == 0 or self.sum is None or self.outer is None or self.shift is None:
            raise ValueError("no embeddings were accumulated")
        n = self.count
        centred_mean = self.sum / n  # mean of x - shift
        p, d = centred_mean.shape
        eye = torch.eye(d, dtype=torch.float64, device=centred_mean.device)
        inv = torch.empty(p, d, d, dtype=torch.float32, device=centred_mean.device)
        for i in range(0, p, chunk):
            m = centred_mean[i : i + chunk]
            scatter = self.outer[i : i + chunk] - n * m[:, :, None] * m[:, None, :]
            cov = scatter / max(n - 1, 1) + eps * eye
            inv[i : i + chunk] = torch.linalg.inv(cov).float()
        return (self.shift + centred_mean).float(), inv


def mahalanobis(x: Tensor, mean: Tensor, inv_cov: Tensor, chunk: int = 256) -> Tensor:
    """Mahalanobis distance of each embedding to its position's Gaussian (PaDiM Eq. 2).

    ``M(x_ij) = sqrt((x_ij - mu_ij)^T Sigma_ij^-1 (x_ij - mu_ij))``, ``chunk`` positions at a time.

    Args:
        x: ``(B, P, d)`` embeddings.
        mean: ``(P, d)`` means.
        inv_cov: ``(P, d, d)`` inverse covariances.

    Returns:
        ``(B, P)`` float32 distances (>= 0).
    """
    out = torch.empty(x.shape[:2], dtype=torch.float32, device=x.device)
    for i in range(0, x.shape[1], chunk):
        diff = (x[:, i : i + chunk] - mean[i : i + chunk]).float()
        q = torch.einsum("bpi,pij,bpj->bp", diff, inv_cov[i : i + chunk].float(), diff)
        out[:, i : i + chunk] = q.clamp_min(0.0).sqrt()
    return out


@register("padim")
class PadimDetector(BackboneDetector):
    """PaDiM behind the ``Detector`` interface (name ``padim``).

    Attributes:
        channel_index: ``(d,)`` int64, the embedding channels kept (sorted).
        mean: ``(h * w, d)`` float32 per-position means (None before fit).
        inv_cov: ``(h * w, d, d)`` float32 per-position inverse covariances (None before fit).
        fit_stats: ``{"images", "positions", "features", "seconds"}``.

    Raises:
        ConfigError (at construction): ``n_features`` exceeds the backbone's channel count.
    """

    Params = PadimParams
    params: PadimParams
    mean: Tensor | None = None
    inv_cov: Tensor | None = None

    def __init__(
        self,
        model: ModelConfig,
        training: TrainingConfig | None = None,
        scoring: ScoringConfig | None = None,
        extractor_factory: ExtractorFactory | None = None,
    ) -> None:
        super().__init__(model, training, scoring, extractor_factory)
        self.total_channels = total = int(sum(self.extractor.channels))
        n = self.params.n_features
        if n is not None and n > total:
            raise ConfigError(
                f"padim n_features {n} exceeds the {total} channels of the "
                f"{self.params.backbone} stages",
                f"set n_features to at most {total}, or leave it unset to keep all",
            )
        if n is None or n == total:
            index = torch.arange(total)
        else:  # Sec. 4.2: random dimensionality reduction, fixed by the seed
            index = torch.randperm(total, generator=self.generator())[:n].sort().values
        self.channel_index = index.to(self.device)

    def embed(self, stages: list[Tensor]) -> Tensor:
        """``(B, h * w, d)`` embeddings of one batch: stages on the stride-8 grid, kept channels."""
        joined = torch.cat(align_stages(stages), dim=1)[:, self.channel_index]
        b, d = joined.shape[:2]
        return joined.reshape(b, d, -1).transpose(1, 2)

    def fit(self, train: Tensor, val: Tensor | None = None) -> PadimDetector:
        """Fit the per-position Gaussians on good images ``train`` (``(N, C, S, S)`` in [0, 1]).

        ``val`` is not needed (nothing is trained) and is ignored.

        Raises:
            DataError: no training images, or images of the wrong shape.
        """
        elapsed = self.timer()
        self.check_images(train, "training")
        acc = GaussianAccumulator()
        for stages in self.stages(train):
            acc.update(self.embed(stages))
        self.mean, self.inv_cov = acc.finalize(self.params.eps, self.params.position_chunk)
        self.fit_stats = {
            "images": len(train),
            "positions": int(self.mean.shape[0]),
            "features": int(self.mean.shape[1]),
            "seconds": round(elapsed(), 3),
        }
        return self

    @torch.no_grad()
    def predict(self, batch: Tensor) -> Prediction:
        """Score ``(N, C, S, S)`` images: anomaly maps ``(N, S, S)`` and scores ``(N,)``, float32.

        Image score = maximum of the smoothed anomaly map (PaDiM Sec. 3.3).

        Raises:
            DataError: images of the wrong shape.
            RuntimeError: neither :meth:`fit` nor :meth:`load` was called.
        """
        if self.mean is None or self.inv_cov is None:
            raise RuntimeError("the padim detector has no Gaussians: fit or load it first")
        self.check_images(batch, "test", allow_empty=True)
        if len(batch) == 0:
            return Prediction(np.zeros(0, np.float32), self.empty_prediction_maps())
        h, w = self.grid()
        grids = [
            mahalanobis(self.embed(s), self.mean, self.inv_cov, self.params.position_chunk)
            for s in self.stages(batch)
        ]
        maps = self.to_maps(torch.cat(grids).view(-1, h, w))
        scores = aggregate(maps, "max")  # shared with the ONNX runtime path
        return Prediction(scores, maps)

    def save(self, directory: Path) -> None:
        """Write mean, inverse covariance and channel index to ``directory/weights.safetensors``.

        The backbone is not saved: it is rebuilt from ``model.params``, which ``config.yaml``
        records.
        """
        if self.mean is None or self.inv_cov is None:
            raise RuntimeError("the padim detector has no Gaussians: fit it before saving")
        tensors = {MEAN_KEY: self.mean, INV_COV_KEY: self.inv_cov, INDEX_KEY: self.channel_index}
        self.save_tensors(directory, tensors)

    def load(self, directory: Path) -> PadimDetector:
        """Restore the Gaussians written by :meth:`save` (no training data needed).

        Raises:
            ModelDirError: the weights file is missing or damaged, or its shapes do not match
                this model's grid (image size, backbone) or ``n_features``.
        """
        h, w = self.grid()
        p, d = h * w, len(self.channel_index)
        shapes = {MEAN_KEY: (p, d), INV_COV_KEY: (p, d, d), INDEX_KEY: (d,)}
        t = self.load_tensors(directory, shapes)
        index = t[INDEX_KEY].long()
        if int(index.min()) < 0 or int(index.max()) >= self.total_channels:
            raise ModelDirError(
                f"the channel index in {Path(directory)} does not fit the "
                f"{self.total_channels} channels of the {self.params.backbone} stages",
                "the model directory is damaged or from another backbone; re-run `flawscope fit`",
            )
        self.mean, self.inv_cov = t[MEAN_KEY].float(), t[INV_COV_KEY].float()
        self.channel_index = index
        self.fit_stats = {"positions": p, "features": d}
        return self
