"""Synthetic geometric defects with per-point labels, for evaluation without real labelled scans.

Each defect deforms (or removes) the points near a random centre on the surface and labels the
changed points as defective:

* ``bump``: a smooth blister, points raised along the surface normal by up to ``height``.
* ``dent``: the same, pushed in.
* ``crack``: a narrow groove (V profile, ``depth`` deep) along a random line in the tangent plane.
* ``hole``: a flat-bottomed pit: every point within the radius sunk by ``depth``.
* ``missing``: a chipped-off region: points within the radius removed; the points on the rim
  of the gap (up to ``rim`` further out) are labelled, the geometry there being new edges.

Sizes are relative to the part so one call works for any scale: ``radius`` is a fraction of the
bounding-box diagonal, ``height``/``depth`` a fraction of the radius.

Normals come from PCA of each point's 16 nearest neighbours (Hoppe et al., "Surface
reconstruction from unorganized points", SIGGRAPH 1992), oriented away from the centroid of the
cloud or towards +z (the camera of a scan from above).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flawscope.errors import ConfigError, DataError
from flawscope.pointcloud.cloud import PointCloud
from flawscope.pointcloud.knn import knn_indices

DEFECT_KINDS = ("bump", "dent", "crack", "hole", "missing")
NORMAL_NEIGHBOURS = 16


@dataclass
class Defect:
    """What :func:`inject_defect` did.

    Attributes:
        kind: one of :data:`DEFECT_KINDS`.
        centre: ``(3,)`` float, the surface point at the defect's centre.
        radius: defect radius, scene units.
        depth: displacement magnitude (bump height, dent/crack/hole depth), scene units; 0 for
            ``missing``.
        n_labelled: number of points labelled defective in the result.
    """

    kind: str
    centre: np.ndarray
    radius: float
    depth: float
    n_labelled: int


def estimate_normals(points: np.ndarray, orient: str = "centroid") -> np.ndarray:
    """Unit surface normals ``(N, 3)`` float64 by PCA of 16 nearest neighbours.

    Args:
        points: ``(N, 3)`` float, N > 16.
        orient: ``"centroid"`` (point away from the cloud's centroid) or ``"+z"``.
    """
    pts = np.asarray(points, dtype=np.float64)
    nbrs = pts[knn_indices(pts, NORMAL_NEIGHBOURS)]
    centred = nbrs - nbrs.mean(1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", centred, centred)
    normals = np.linalg.eigh(cov)[1][:, :, 0]  # eigenvector of the smallest eigenvalue
    ref = pts - pts.mean(0) if orient == "centroid" else np.array([0.0, 0.0, 1.0])
    flip = np.einsum("ni,ni->n", normals, np.broadcast_to(ref, pts.shape)) < 0
    normals[flip] *= -1
    return normals


def inject_defect(
    cloud: PointCloud,
    kind: str,
    rng: np.random.Generator,
    radius: float | None = None,
    depth: float | None = None,
    orient: str = "centroid",
) -> tuple[PointCloud, Defect]:
    """Return a copy of ``cloud`` with one defect and per-point labels (see module docstring).

    Args:
        cloud: the defect-free cloud (>= 17 points). Existing labels are kept and OR-ed.
        kind: one of :data:`DEFECT_KINDS`.
        rng: random generator (centre, size, crack direction).
        radius: fraction of the bounding-box diagonal, in (0, 1); None = uniform in
            [0.04, 0.07] (a crack is 3 radii long).
        depth: displacement as a fraction of the radius; None = uniform in [0.3, 0.5]
            (hole: [0.6, 1.0]). Unused for ``missing``.
        orient: normal orientation, ``"centroid"`` (closed parts) or ``"+z"`` (scans from
            above).

    Returns:
        ``(defective cloud, Defect)``: the cloud has ``labels`` (N',) bool; N' = N except for
        ``missing``. Pixels of organised clouds are kept for the remaining points.

    Raises:
        ConfigError: unknown kind or sizes out of range.
        DataError: too few points, or the defect would label no point.
    """
    if kind not in DEFECT_KINDS:
        raise ConfigError(f"unknown defect kind {kind!r}", f"choose one of: {DEFECT_KINDS}")
    if radius is not None and not 0 < radius < 1:
        raise ConfigError(f"defect radius must be in (0, 1), got {radius}", "use e.g. 0.05")
    if depth is not None and not depth > 0:
        raise ConfigError(f"defect depth must be > 0, got {depth}", "use e.g. 0.4")
    pts = cloud.points.astype(np.float64)
    normals = estimate_normals(pts, orient)
    diagonal = float(np.linalg.norm(pts.max(0) - pts.min(0)))
    r = (radius if radius is not None else rng.uniform(0.04, 0.07)) * diagonal
    hole = kind == "hole"
    d = (depth if depth is not None else rng.uniform(*((0.6, 1.0) if hole else (0.3, 0.5)))) * r
    c = int(rng.integers(len(pts)))
    centre, n = pts[c], normals[c]
    offset = pts - centre
    # Same side of the surface as the centre: excludes the far wall of thin parts.
    near = np.einsum("ni,i->n", normals, n) > 0.3
    dist = np.linalg.norm(offset, axis=1)
    labels = np.zeros(len(pts), dtype=bool) if cloud.labels is None else cloud.labels.copy()
    out_pts = pts.copy()
    if kind in ("bump", "dent", "hole"):
        inside = near & (dist < r)
        profile = np.ones(inside.sum()) if hole else 1.0 - (dist[inside] / r) ** 2
        sign = 1.0 if kind == "bump" else -1.0
        out_pts[inside] += sign * d * profile[:, None] * n
        hit = inside
    elif kind == "crack":
        t = np.cross(n, rng.normal(size=3))
        t /= np.linalg.norm(t) or 1.0
        along = offset @ t
        across = np.linalg.norm(offset - along[:, None] * t - (offset @ n)[:, None] * n, axis=1)
        width = 0.25 * r
        hit = near & (np.abs(along) < 1.5 * r) & (across < width) & (np.abs(offset @ n) < r)
        out_pts[hit] -= d * (1.0 - across[hit] / width)[:, None] * n
    else:  # missing
        gone = near & (dist < r)
        rim = 0.25 * r
        hit = near & (dist >= r) & (dist < r + rim)
        keep = ~gone
        labels |= hit
        result = cloud.subset(keep)
        result.labels, result.defect_type = labels[keep], kind
        if not hit.any():
            raise DataError("the missing region has no rim points", "use a larger radius")
        return result, Defect(kind, centre, r, 0.0, int(result.labels.sum()))
    if not hit.any():
        raise DataError(f"the {kind} defect touches no point", "use a larger radius")
    labels |= hit
    result = PointCloud(
        out_pts.astype(np.float32),
        cloud.path,
        cloud.pixels,
        cloud.grid_shape,
        labels,
        kind,
        dict(cloud.meta),
    )
    return result, Defect(kind, centre, r, d, int(labels.sum()))
