"""k-nearest-neighbour graphs, receptive fields and the chamfer distance, on the CPU.

Everything runs without CUDA-only extensions: the k-NN graph uses SciPy's ``cKDTree`` (all
cores), the chamfer distance ``torch.cdist`` in chunks so memory stays bounded by
``chunk x M`` distances whatever the set sizes.

Units: coordinates in scene units (after :func:`flawscope.pointcloud.detector` scaling: mean
k-NN distance = 1); distances are Euclidean (not squared).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from flawscope.errors import ConfigError, DataError

#: rows of the (rows x M) distance block computed at a time by :func:`chamfer_distance`
CHUNK = 4096


def knn_indices(points: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` nearest neighbours of every point, the point itself excluded.

    Args:
        points: ``(N, 3)`` float coordinates, N > k.
        k: neighbours per point, >= 1.

    Returns:
        ``(N, k)`` int64, row i sorted by increasing distance from point i. Duplicate points
        may appear as each other's neighbours at distance 0.

    Raises:
        ConfigError: ``k < 1``.
        DataError: fewer than ``k + 1`` points, or points not ``(N, 3)``.
    """
    pts = np.asarray(points, dtype=np.float64)
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}", "use k = 8 (seed 004) or 32 (paper)")
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise DataError(f"points must be (N, 3), got {pts.shape}", "pass x, y, z per point")
    if len(pts) <= k:
        raise DataError(
            f"a cloud of {len(pts)} points has fewer than k + 1 = {k + 1} points",
            "use a denser cloud or a smaller k",
        )
    _, idx = cKDTree(pts).query(pts, k=k + 1, workers=-1)
    idx = np.asarray(idx, dtype=np.int64)
    # Drop each point itself; with duplicates it need not be in column 0, so remove by value.
    own = np.arange(len(pts))[:, None]
    is_self = idx == own
    first_self = np.where(is_self.any(1), is_self.argmax(1), k)  # k = drop the last column
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(len(pts)), first_self] = False
    return idx[keep].reshape(len(pts), k)


def mean_knn_distance(points: np.ndarray, k: int) -> float:
    """Mean distance from every point to its ``k`` nearest neighbours (self excluded).

    The 3D-ST scale normaliser ``s`` (Bergmann & Sattlegger, WACV 2023, Sec. 3): clouds are
    divided by it so the networks see the same point spacing in every data set.

    Args:
        points: ``(N, 3)`` float, N > k.
        k: neighbours, >= 1.

    Returns:
        A float > 0 in the units of ``points``.

    Raises:
        DataError: as :func:`knn_indices`, or every point coincides (distance 0).
    """
    pts = np.asarray(points, dtype=np.float64)
    idx = knn_indices(pts, k)
    d = float(np.linalg.norm(pts[idx] - pts[:, None, :], axis=2).mean())
    if not d > 0:
        raise DataError("all points of the cloud coincide", "pass a cloud with a real surface")
    return d


def receptive_fields(knn: np.ndarray, centres: np.ndarray, hops: int) -> list[np.ndarray]:
    """Points whose input can reach each centre's descriptor through ``hops`` k-NN hops.

    A network of ``hops`` stacked neighbourhood aggregations (3D-ST: two LFA blocks per
    residual block) gives point ``c`` a descriptor that depends on exactly the points reached
    from ``c`` in at most ``hops`` steps along the k-NN graph: its receptive field
    (Bergmann & Sattlegger, WACV 2023, Sec. 3).

    Args:
        knn: ``(N, k)`` int64 neighbour indices (:func:`knn_indices`).
        centres: ``(B,)`` int point indices.
        hops: >= 1.

    Returns:
        B int64 arrays of point indices (sorted, the centre excluded).
    """
    fields = []
    for c in np.asarray(centres, dtype=np.int64):
        reached = np.array([c], dtype=np.int64)
        frontier = reached
        for _ in range(hops):
            nxt = np.setdiff1d(np.unique(knn[frontier]), reached, assume_unique=True)
            if nxt.size == 0:
                break
            reached = np.union1d(reached, nxt)
            frontier = nxt
        fields.append(reached[reached != c])
    return fields


def chamfer_distance(
    pred: torch.Tensor,
    target: torch.Tensor,
    target_mask: torch.Tensor | None = None,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """Symmetric chamfer distance between batches of point sets (differentiable).

    ``d(A, B) = mean_a min_b |a - b| + mean_b min_a |a - b|`` with Euclidean norms
    (Bergmann & Sattlegger, WACV 2023, Sec. 3; Fan et al., CVPR 2017).

    Args:
        pred: ``(B, M, 3)`` float.
        target: ``(B, R, 3)`` float, padded when sets differ in size.
        target_mask: ``(B, R)`` bool, True for real target points (None = all real); every set
            needs at least one real point.
        chunk: target rows per ``torch.cdist`` block (memory ~ ``chunk x M`` floats per set).

    Returns:
        ``(B,)`` float chamfer distances, >= 0, in the units of the points.

    Raises:
        DataError: shapes do not match, or a target set has no real point.
    """
    if pred.ndim != 3 or target.ndim != 3 or pred.shape[0] != target.shape[0]:
        raise DataError(
            f"chamfer_distance needs (B, M, 3) and (B, R, 3), got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}",
            "batch the point sets along the first axis",
        )
    b, r = target.shape[0], target.shape[1]
    if target_mask is None:
        target_mask = torch.ones(b, r, dtype=torch.bool, device=target.device)
    counts = target_mask.sum(1)
    if bool((counts == 0).any()):
        raise DataError("a target point set is empty", "give every set at least one point")
    inf = torch.tensor(float("inf"), dtype=pred.dtype, device=pred.device)
    pred_to_target = torch.full(pred.shape[:2], float("inf"), dtype=pred.dtype, device=pred.device)
    target_to_pred = []
    for start in range(0, r, chunk):
        t = target[:, start : start + chunk]
        m = target_mask[:, start : start + chunk]
        d = torch.cdist(t, pred)  # (B, chunk, M)
        target_to_pred.append(d.min(2).values)
        d = torch.where(m[:, :, None], d, inf)
        pred_to_target = torch.minimum(pred_to_target, d.min(1).values)
    t2p = torch.cat(target_to_pred, 1) * target_mask
    return pred_to_target.mean(1) + t2p.sum(1) / counts
