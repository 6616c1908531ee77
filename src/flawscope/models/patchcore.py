"""``patchcore``: PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection",
CVPR 2022).

Nothing is trained. ``fit`` runs the good images through a pretrained backbone, turns each
stride-8 position into a locally aware patch feature (Sec. 3.1; :mod:`flawscope.models.features`)
and keeps a greedy coreset of all training patches as the memory bank (Sec. 3.2, Alg. 1;
:mod:`flawscope.models.coreset`). ``predict`` scores each test patch by the Euclidean distance to
its nearest memory-bank patch: these distances, up-sampled to the input size and Gaussian-smoothed
(sigma = ``scoring.sigma``, 4 px by default as in the paper), are the anomaly map; the image score
is the largest patch distance, reweighted by how isolated its nearest bank patch is (Sec. 3.3,
Eq. 7; :func:`reweighting_weight`). Scores are distances in feature units (>= 0, unbounded).

Memory: fit holds ``presample_ratio`` of the training patches (``N * h * w * feature_dim``
float32 in all, 0.5 MB per 256 px image at D = 128) while selecting the coreset (O(N) extra);
predict is flat in the number of test images and bounded for large banks by the chunked
nearest-neighbour search (one ``query_chunk x bank_chunk`` float32 block at a time).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from flawscope.models.base import Prediction, register
from flawscope.models.coreset import coreset_size, greedy_coreset, nearest_neighbours
from flawscope.models.features import (
    BackboneDetector,
    BackboneParams,
    locally_aware_features,
    to_patches,
)

BANK_KEY = "memory_bank"


class PatchCoreParams(BackboneParams):
    """Hyperparameters of :class:`PatchCoreDetector` (defaults follow the paper where it has one).

    Attributes:
        feature_dim: dimension D of the patch features (adaptive average pooling over channels;
            EfficientNet-Lite0's stride-8 and stride-16 stages have 40 + 112 channels, so 128
            loses little and keeps the nearest-neighbour search fast on a CPU).
        coreset_ratio: share of the training patches kept in the memory bank, in ``(0, 1]``
            (paper Table 3: 1 % loses little against 10 % and 25 %; 1.0 keeps them all).
        presample_ratio: share of each feature batch's patches kept by a first greedy pass
            before the final greedy selection over their union (a composable coreset, Indyk et
            al., PODS 2014), so fit memory is ``presample_ratio`` of all patches instead of all
            of them; None (or a value <= ``coreset_ratio``) selects in one pass over all.
        projection_dim: dimensions of the random projection used for the coreset distances;
            None = no projection.
        num_neighbors: b, the bank neighbourhood size of the score reweighting (Eq. 7); 1 turns
            the reweighting off (image score = largest patch distance).
        max_bank_size: upper limit of the memory-bank size after subsampling (bounds the
            prediction time and the saved file); None = no limit.
        query_chunk, bank_chunk: block sizes (rows) of the nearest-neighbour search; one
            ``query_chunk x bank_chunk`` float32 block (8 MiB by default, which stays in cache:
            faster on a CPU than 32 MiB blocks) is the largest temporary.
    """

    feature_dim: int = Field(128, ge=1)
    coreset_ratio: float = Field(0.01, gt=0, le=1)
    presample_ratio: float | None = Field(0.1, gt=0, le=1)
    projection_dim: int | None = Field(128, ge=1)
    num_neighbors: int = Field(9, ge=1)
    max_bank_size: int | None = Field(None, ge=1)
    query_chunk: int = Field(1024, ge=1)
    bank_chunk: int = Field(2048, ge=1)


def reweighting_weight(distances: Tensor) -> Tensor:
    """The image-score weight of PatchCore Eq. 7 (Roth et al., CVPR 2022, Sec. 3.3).

    ``w = 1 - exp(||m_test* - m*||) / sum_{m in N_b(m*)} exp(||m_test* - m||)`` where
    ``m_test*`` is the test patch with the largest nearest-neighbour distance, ``m*`` its nearest
    bank patch and ``N_b(m*)`` the b nearest bank patches of ``m*`` (``m*`` itself included, as in
    anomalib). Computed as ``1 - softmax(distances)[0]``, which subtracts the largest distance
    before exponentiating, so it does not overflow for large distances.

    Since ``m*`` is the nearest bank patch of ``m_test*``, the first distance is the smallest and
    ``w`` lies in ``[1 - 1/b, 1)``: close to 1 when ``m*`` is isolated from its neighbours (a rare
    nominal pattern, the score is kept), lowest when they all crowd around ``m_test*``.

    Args:
        distances: ``(..., b)`` distances from ``m_test*`` to ``N_b(m*)``, the first one to ``m*``.

    Returns:
        ``(...)`` weights, in the dtype of ``distances``.
    """
    return 1.0 - torch.softmax(distances, dim=-1)[..., 0]


@register("patchcore")
class PatchCoreDetector(BackboneDetector):
    """PatchCore behind the ``Detector`` interface (name ``patchcore``).

    Attributes:
        memory_bank: ``(M, D)`` float32 coreset of training patch features (None before fit).
        fit_stats: ``{"patches": all training patches, "bank_size": M, "seconds": fit time}``.
    """

    Params = PatchCoreParams
    params: PatchCoreParams
    memory_bank: Tensor | None = None

    def patch_features(self, stages: list[Tensor]) -> Tensor:
        """``(B, D, h, w)`` locally aware patch features of one batch of stages."""
        return locally_aware_features(stages, self.params.feature_dim)

    def fit(self, train: Tensor, val: Tensor | None = None) -> PatchCoreDetector:
        """Build the memory bank from good images ``train`` (``(N, C, S, S)`` float32 in [0, 1]).

        Features are extracted ``training.batch_size`` images at a time; each batch's patches
        are thinned by a greedy pre-selection (``presample_ratio``) and the bank is a greedy
        coreset of ``coreset_ratio`` x all ``N * h * w`` patches drawn from the union (seeded
        with ``training.seed``). ``val`` is not needed (nothing is trained) and is ignored.

        Raises:
            DataError: no training images, or images of the wrong shape.
        """
        elapsed = self.timer()
        self.check_images(train, "training")
        p = self.params
        generator = self.generator()
        presample = p.presample_ratio is not None and p.presample_ratio > p.coreset_ratio
        kept, total = [], 0
        for stages in self.stages(train):
            patches = to_patches(self.patch_features(stages))
            total += len(patches)
            if presample:
                pick = coreset_size(len(patches), p.presample_ratio)
                patches = patches[greedy_coreset(patches, pick, p.projection_dim, generator)]
            kept.append(patches)
        candidates = torch.cat(kept)
        del kept
        keep = min(len(candidates), coreset_size(total, p.coreset_ratio, p.max_bank_size))
        index = greedy_coreset(candidates, keep, p.projection_dim, generator)
        self.memory_bank = candidates[index].contiguous()
        self.fit_stats = {
            "patches": total,
            "candidates": len(candidates),
            "bank_size": len(self.memory_bank),
            "seconds": round(elapsed(), 3),
        }
        return self

    @torch.no_grad()
    def predict(self, batch: Tensor) -> Prediction:
        """Score ``(N, C, S, S)`` images: anomaly maps ``(N, S, S)`` and scores ``(N,)``, float32.

        Raises:
            DataError: images of the wrong shape.
            RuntimeError: neither :meth:`fit` nor :meth:`load` was called.
        """
        if self.memory_bank is None:
            raise RuntimeError("the patchcore detector has no memory bank: fit or load it first")
        self.check_images(batch, "test", allow_empty=True)
        if len(batch) == 0:
            return Prediction(np.zeros(0, np.float32), self.empty_prediction_maps())
        p, bank = self.params, self.memory_bank
        grids, scores = [], []
        for stages in self.stages(batch):
            grid, score = score_features(
                self.patch_features(stages),
                bank,
                lambda q: nearest_neighbours(q, bank, 1, p.query_chunk, p.bank_chunk),
                self.neighbourhood(),
            )
            grids.append(grid)
            scores.append(score)
        maps = self.to_maps(torch.cat(grids))
        return Prediction(torch.cat(scores).cpu().numpy().astype(np.float32), maps)

    def neighbourhood(self) -> Neighbourhood | None:
        """``m* -> N_b(m*)`` for the reweighting (Eq. 7), searched in the bank; None when b < 2."""
        p, bank = self.params, self.memory_bank
        b = min(p.num_neighbors, len(bank))
        if b < 2:
            return None
        return lambda m_star: bank_neighbourhood(bank, m_star, b, p.query_chunk, p.bank_chunk)

    def image_scores(self, patches: Tensor, dist: Tensor, nn_index: Tensor) -> Tensor:
        """Reweighted image scores ``s = w * s*`` (Eq. 6 and 7) of a batch.

        Args:
            patches: ``(B, P, D)`` test patch features.
            dist: ``(B, P)`` nearest-neighbour distance of each patch to the bank.
            nn_index: ``(B, P)`` bank index of that nearest neighbour.

        Returns:
            ``(B,)`` float32 image scores.
        """
        return reweighted_scores(patches, dist, nn_index, self.memory_bank, self.neighbourhood())

    def save(self, directory: Path) -> None:
        """Write the memory bank ``(M, D)`` float32 to ``directory/weights.safetensors``.

        The backbone is not saved: it is rebuilt from ``model.params`` (backbone, layers,
        weights), which ``config.yaml`` records. The random projection is not saved either: it is
        only used to select the coreset.
        """
        if self.memory_bank is None:
            raise RuntimeError("the patchcore detector has no memory bank: fit it before saving")
        self.save_tensors(directory, {BANK_KEY: self.memory_bank})

    def load(self, directory: Path) -> PatchCoreDetector:
        """Restore the memory bank written by :meth:`save` (no training data needed).

        Raises:
            ModelDirError: the weights file is missing, damaged or has another feature dimension.
        """
        shapes = {BANK_KEY: (None, self.params.feature_dim)}
        self.memory_bank = self.load_tensors(directory, shapes)[BANK_KEY].float()
        self.fit_stats = {"bank_size": len(self.memory_bank)}
        return self


#: ``(Q, D)`` query rows -> ``(Q, 1)`` distances and ``(Q, 1)`` indices of the nearest bank row
NearestSearch = Callable[[Tensor], tuple[Tensor, Tensor]]
#: ``(B,)`` bank indices ``m*`` -> ``(B, b)`` bank indices ``N_b(m*)``, starting with ``m*``
Neighbourhood = Callable[[Tensor], Tensor]


def score_features(
    features: Tensor, bank: Tensor, search: NearestSearch, neighbourhood: Neighbourhood | None
) -> tuple[Tensor, Tensor]:
    """Patch distances and image scores of one batch of patch features (Sec. 3.3).

    The scoring math shared by :meth:`PatchCoreDetector.predict` and the exported ONNX graph
    (:mod:`flawscope.models.onnx_graphs`); only the search differs (chunked over the queries
    here, all queries at once there). Written with shape-agnostic operations (``-1`` for the
    batch axis, gathers instead of Python indexing) so the batch axis can stay dynamic.

    Args:
        features: ``(B, D, h, w)`` float32 locally aware patch features.
        bank: ``(M, D)`` float32 memory bank.
        search: the nearest bank row of each ``(B * h * w, D)`` patch.
        neighbourhood: ``N_b(m*)`` for the reweighting; None = no reweighting.

    Returns:
        ``(B, h, w)`` float32 nearest-neighbour distances (exact Euclidean distance to the
        nearest bank row) and ``(B,)`` float32 image scores.
    """
    _, d, h, w = features.shape
    patches = to_patches(features)
    _, nn_index = search(patches)
    # the search ranks with ||q||^2 - 2 q.b + ||b||^2, which loses float32 precision at large
    # norms (~1e-3 here); the winner's distance is recomputed exactly from the difference
    nearest = torch.index_select(bank, 0, nn_index[:, 0])
    dist = (patches.float() - nearest).norm(dim=1).reshape(-1, h * w)
    nn_index = nn_index[:, 0].reshape(-1, h * w)
    scores = reweighted_scores(patches.reshape(-1, h * w, d), dist, nn_index, bank, neighbourhood)
    return dist.reshape(-1, h, w), scores


def reweighted_scores(
    patches: Tensor,
    dist: Tensor,
    nn_index: Tensor,
    bank: Tensor,
    neighbourhood: Neighbourhood | None,
) -> Tensor:
    """Reweighted image scores ``s = w * s*`` (Eq. 6 and 7) of a batch.

    Args:
        patches: ``(B, P, D)`` test patch features.
        dist: ``(B, P)`` nearest-neighbour distance of each patch to the bank.
        nn_index: ``(B, P)`` int64 bank index of that nearest neighbour.
        bank: ``(M, D)`` memory bank.
        neighbourhood: ``N_b(m*)`` of the nearest bank patch ``m*`` of the most anomalous test
            patch; None returns ``s*`` unweighted.

    Returns:
        ``(B,)`` float32 image scores.
    """
    s_star, worst = dist.max(dim=1)  # Eq. 6: the most anomalous patch m_test* and its score
    if neighbourhood is None:
        return s_star
    m_test = _pick(patches, worst)  # (B, D)
    m_star = _pick(nn_index, worst)  # (B,) bank index of m*
    support = neighbourhood(m_star)  # N_b(m*), starting with m* itself
    d = torch.linalg.vector_norm(bank[support] - m_test[:, None], dim=-1)  # (B, b)
    return reweighting_weight(d.double()).float() * s_star


def bank_neighbourhood(
    bank: Tensor, m_star: Tensor, b: int, query_chunk: int = 1024, bank_chunk: int = 2048
) -> Tensor:
    """``N_b(m*)``: the ``b`` nearest bank rows of each bank row ``m_star``, ``m*`` first.

    Args:
        bank: ``(M, D)`` memory bank; m_star: ``(B,)`` int64 bank indices; ``2 <= b <= M``.

    Returns:
        ``(B, b)`` int64 distinct bank indices, each row starting with its ``m*``.
    """
    _, hood = nearest_neighbours(bank[m_star], bank, b, query_chunk, bank_chunk)
    return _put_first(hood, m_star)


def _pick(values: Tensor, index: Tensor) -> Tensor:
    """``values[i, index[i]]`` for each row i: ``(B, P, ...)`` and ``(B,)`` -> ``(B, ...)``."""
    idx = index.reshape(-1, 1, *([1] * (values.ndim - 2))).expand(-1, 1, *values.shape[2:])
    return values.gather(1, idx).squeeze(1)


def _put_first(neighbours: Tensor, first: Tensor) -> Tensor:
    """Rows of ``neighbours`` ``(B, b)`` with ``first[i]`` moved (or inserted) at position 0.

    The b nearest bank patches of ``m*`` contain ``m*`` itself unless exact duplicates outrank
    it; either way the result starts with ``m*`` and keeps b distinct indices.
    """
    out = neighbours.clone()
    for i in range(len(out)):
        row = neighbours[i][neighbours[i] != first[i]][: out.shape[1] - 1]
        out[i, 0] = first[i]
        out[i, 1:] = row
    return out
