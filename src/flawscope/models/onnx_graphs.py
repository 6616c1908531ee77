"""The torch modules that :mod:`flawscope.models.onnx_export` traces into ONNX graphs.

One module per detector family maps the model-input batch ``images`` ``(N, C, S, S)`` float32 in
``[0, 1]`` (N a dynamic axis) to the graph outputs. Every module calls the detector's own
functions (features, nearest-neighbour search, reweighting, Mahalanobis distance, network,
up-sampling), so the graph is a trace of the PyTorch path, not a second implementation of it.
What is left after the graph is the NumPy post-processing that both paths share
(:data:`POSTPROCESS`, applied by :class:`flawscope.models.onnx_runtime.OnnxDetector`):

========================  =========================================  =============================
family (``kind``)         graph outputs                              after the graph (NumPy)
========================  =========================================  =============================
``patchcore``             ``image_scores`` ``(N,)`` (final, Eq. 7    Gaussian smoothing of the
                          reweighting included), ``raw_maps``        maps (``smooth_maps``)
                          ``(N, S, S)`` (patch distances, bilinearly
                          up-sampled, not smoothed)
``padim``                 ``raw_maps`` ``(N, S, S)`` (Mahalanobis    smoothing; score = max of the
                          distances, up-sampled)                     smoothed map
``reconstruction``        ``reconstructions`` ``(N, C, S, S)``       residual (L2 or SSIM),
(cae, strided-ae,                                                    smoothing, aggregation
dense-cae)                                                           (``reconstruction_prediction``)
========================  =========================================  =============================

The Gaussian smoothing stays in NumPy (OpenCV) in both paths rather than becoming a convolution
in the graph, so there is exactly one implementation of it, and SSIM residuals work too.

Constants travel as initializers of the graph: PatchCore's memory bank ``(M, D)`` float32, its
squared row norms ``(M,)`` and the bank neighbourhood table ``(M, b)`` int64; PaDiM's means
``(h * w, d)`` and inverse covariances ``(h * w, d, d)`` float32; the networks' weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from flawscope.errors import ConfigError
from flawscope.models.coreset import nearest_in_bank
from flawscope.models.features import upsample_grid
from flawscope.models.padim import PadimDetector, mahalanobis
from flawscope.models.patchcore import PatchCoreDetector, bank_neighbourhood, score_features
from flawscope.models.reconstruction import ReconstructionDetector

#: name of the graph input: ``(N, C, S, S)`` float32 in [0, 1]
INPUT_NAME = "images"
#: what the shared NumPy post-processing does after each family's graph (see the module doc)
POSTPROCESS = ("patchcore", "padim", "reconstruction")


@dataclass
class GraphSpec:
    """A detector's exportable module and how to read its outputs.

    Attributes:
        module: ``images (N, C, S, S) -> outputs``, in eval mode, on the CPU.
        outputs: the names of the module's outputs, in order.
        kind: one of :data:`POSTPROCESS`: the post-processing the runtime applies.
        channels, image_size: C and S of the input.
    """

    module: nn.Module
    outputs: tuple[str, ...]
    kind: str
    channels: int
    image_size: int


class PatchCoreGraph(nn.Module):
    """PatchCore: backbone, locally aware features, nearest-neighbour search, reweighting.

    The search is :func:`~flawscope.models.coreset.nearest_in_bank` over all ``N * h * w``
    patches at once, walking the bank in ``bank_chunk`` blocks (so the largest temporary is
    ``N * h * w x bank_chunk`` float32; the runtime bounds N per call). The b nearest bank rows
    of every bank row (``N_b(m*)`` of Eq. 7) depend on the bank only, so they are computed once
    here with the detector's own :func:`~flawscope.models.patchcore.bank_neighbourhood` and the
    graph gathers them; the PyTorch path searches the same rows at predict time.

    Outputs: ``image_scores`` ``(N,)`` float32, ``raw_maps`` ``(N, S, S)`` float32.
    """

    def __init__(self, detector: PatchCoreDetector) -> None:
        super().__init__()
        if detector.memory_bank is None:
            raise RuntimeError("the patchcore detector has no memory bank: load it first")
        p = detector.params
        self.detector = detector
        self.extractor = detector.extractor
        self.image_size = detector.model_cfg.image_size
        self.bank_chunk = p.bank_chunk
        bank = detector.memory_bank.detach().float().cpu().contiguous()
        self.register_buffer("memory_bank", bank)
        self.register_buffer("bank_sq", (bank * bank).sum(dim=1))
        b = min(p.num_neighbors, len(bank))
        table = None  # b < 2: no reweighting
        if b >= 2:
            every_row = torch.arange(len(bank))
            table = bank_neighbourhood(bank, every_row, b, p.query_chunk, p.bank_chunk)
        self.register_buffer("bank_neighbourhood", table)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        bank, bank_sq, chunk = self.memory_bank, self.bank_sq, self.bank_chunk
        table = self.bank_neighbourhood
        grid, scores = score_features(
            self.detector.patch_features(self.extractor(images)),
            bank,
            lambda q: nearest_in_bank(q, bank, bank_sq, 1, chunk),
            None if table is None else lambda m_star: table[m_star],
        )
        return scores, upsample_grid(grid, self.image_size)


class PadimGraph(nn.Module):
    """PaDiM: backbone, embedding (kept channels), Mahalanobis distance per position.

    Output: ``raw_maps`` ``(N, S, S)`` float32 (distances up-sampled, not smoothed).
    """

    def __init__(self, detector: PadimDetector) -> None:
        super().__init__()
        if detector.mean is None or detector.inv_cov is None:
            raise RuntimeError("the padim detector has no Gaussians: load it first")
        self.detector = detector
        self.extractor = detector.extractor
        self.image_size = detector.model_cfg.image_size
        self.grid = detector.grid()
        detector.channel_index = detector.channel_index.cpu()  # the graph is traced on the CPU
        self.chunk = detector.params.position_chunk
        self.register_buffer("mean", detector.mean.detach().float().cpu().contiguous())
        self.register_buffer("inv_covariance", detector.inv_cov.detach().float().cpu())

    def forward(self, images: Tensor) -> Tensor:
        h, w = self.grid
        embedding = self.detector.embed(self.extractor(images))
        dist = mahalanobis(embedding, self.mean, self.inv_covariance, self.chunk)
        return upsample_grid(dist.reshape(-1, h, w), self.image_size)


class ReconstructionGraph(nn.Module):
    """An autoencoder's network. Output: ``reconstructions`` ``(N, C, S, S)`` float32."""

    def __init__(self, detector: ReconstructionDetector) -> None:
        super().__init__()
        self.network = detector.network

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images).float()


def graph_for(detector: Any) -> GraphSpec:
    """The exportable module of a loaded detector (the inner one of a tiled model).

    Raises:
        ConfigError: the detector has no ONNX export (the VAE, whose score is a likelihood
            estimate from posterior samples, or an unknown kind).
    """
    name = getattr(detector, "name", type(detector).__name__)
    m = detector.model_cfg
    channels, size = int(m.channels), int(m.image_size)
    if isinstance(detector, PatchCoreDetector):
        module: nn.Module = PatchCoreGraph(detector)
        outputs, kind = ("image_scores", "raw_maps"), "patchcore"
    elif isinstance(detector, PadimDetector):
        module, outputs, kind = PadimGraph(detector), ("raw_maps",), "padim"
    elif isinstance(detector, ReconstructionDetector) and name != "vae":
        module, outputs = ReconstructionGraph(detector), ("reconstructions",)
        kind = "reconstruction"
    else:
        raise ConfigError(
            f"the {name} model cannot be exported to ONNX (its score is a likelihood estimate "
            "from random posterior samples)"
            if name == "vae"
            else f"the {name} model cannot be exported to ONNX",
            "export a patchcore, padim, cae, strided-ae or dense-cae model, or serve this one "
            "with PyTorch",
        )
    return GraphSpec(module.eval().cpu(), outputs, kind, channels, size)
