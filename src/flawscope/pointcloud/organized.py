"""Organised scans (MVTec 3D-AD ``xyz/*.tiff`` point maps): reading, writing, background plane.

An organised scan is an ``(H, W, 3)`` float32 map of x, y, z per camera pixel; pixels without a
measurement hold ``(0, 0, 0)`` (MVTec 3D-AD) or NaN. Reading keeps each point's pixel so that
per-point anomaly scores become ``(H, W)`` anomaly maps (:meth:`PointCloud.to_map`).

Background removal follows the 3D-ST experiments on MVTec 3D-AD (Bergmann & Sattlegger, WACV
2023, Sec. 4, which remove the background plane) with the common recipe of Horwitz & Hoshen,
"Back to the Feature", CVPRW 2023: fit a plane with RANSAC to the points of the image border
(the part lies in the middle, the border sees the table or conveyor), then drop every point
closer to that plane than a distance threshold.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from flawscope.errors import ConfigError, DataError
from flawscope.pointcloud.cloud import PointCloud
from flawscope.pointcloud.io import organised_cloud

log = logging.getLogger("flawscope")

#: auto plane distance = this many times the median spacing of neighbouring pixels' points
AUTO_DISTANCE_SPACINGS = 3.0
#: warn and keep the scan when fewer border points than this fraction lie on the plane
MIN_BORDER_INLIERS = 0.3


def read_xyz_tiff(path: Path | str) -> PointCloud:
    """Read an ``(H, W, 3)`` float xyz tiff (MVTec 3D-AD layout) as an organised cloud.

    Invalid pixels (non-finite or exactly ``(0, 0, 0)``) are dropped; the others keep their
    ``(row, col)``.

    Raises:
        DataError: missing or unreadable file, not ``(H, W, 3)``, or no valid pixel.
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"xyz tiff {path} does not exist", "check the path")
    try:
        grid = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise DataError(
            f"{path} is not a readable tiff ({type(exc).__name__}: {exc})",
            "pass an MVTec 3D-AD xyz/*.tiff point map (H, W, 3 float32)",
        ) from exc
    if grid.ndim != 3 or grid.shape[2] != 3:
        raise DataError(
            f"{path}: an xyz tiff must be (H, W, 3), got {grid.shape}",
            "pass the xyz/*.tiff point map, not the rgb/*.png image or a depth map",
        )
    return organised_cloud(grid.astype(np.float32), path)


def write_xyz_tiff(path: Path | str, grid: np.ndarray) -> Path:
    """Write an ``(H, W, 3)`` float32 point map as tiff (invalid pixels ``(0, 0, 0)``)."""
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.asarray(grid, dtype=np.float32))
    return path


def to_grid(cloud: PointCloud) -> np.ndarray:
    """``(H, W, 3)`` float32 point map of an organised cloud; missing pixels ``(0, 0, 0)``."""
    if not cloud.organized:
        raise DataError(f"{cloud.name} is not an organised scan", "pass an (H, W, 3) point map")
    grid = np.zeros((*cloud.grid_shape, 3), dtype=np.float32)
    grid[cloud.pixels[:, 0], cloud.pixels[:, 1]] = cloud.points
    return grid


def fit_plane_ransac(
    points: np.ndarray, distance: float, iterations: int = 1000, seed: int = 0
) -> tuple[np.ndarray, float, np.ndarray]:
    """RANSAC plane ``n . p + c = 0`` through ``points``, refined by least squares on inliers.

    Args:
        points: ``(M, 3)`` float, M >= 3.
        distance: inlier distance from the plane, scene units, > 0.
        iterations: random 3-point hypotheses tried.
        seed: random seed (deterministic result).

    Returns:
        ``(normal (3,) unit float64, offset c, inliers (M,) bool)``.

    Raises:
        DataError: fewer than 3 points.

    Source: Fischler & Bolles, "Random Sample Consensus", CACM 24(6), 1981.
    """
    pts = np.asarray(points, dtype=np.float64)
    if len(pts) < 3:
        raise DataError(f"a plane needs >= 3 points, got {len(pts)}", "check the scan border")
    rng = np.random.default_rng(seed)
    sample = pts if len(pts) <= 20000 else pts[rng.choice(len(pts), 20000, replace=False)]
    tri = pts[rng.integers(0, len(pts), size=(iterations, 3))]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norms = np.linalg.norm(normals, axis=1)
    ok = norms > 1e-12
    if not ok.any():
        raise DataError("the scan border points are collinear", "check the scan")
    normals = normals[ok] / norms[ok, None]
    offsets = -np.einsum("ij,ij->i", normals, tri[ok, 0])
    best, best_count = 0, -1
    for start in range(0, len(normals), 100):  # (100 x |sample|) distances at a time
        d = np.abs(sample @ normals[start : start + 100].T + offsets[start : start + 100])
        counts = (d < distance).sum(0)
        i = int(counts.argmax())
        if counts[i] > best_count:
            best, best_count = start + i, int(counts[i])
    inliers = np.abs(pts @ normals[best] + offsets[best]) < distance
    if inliers.sum() >= 3:  # least-squares refinement on the inliers
        centre = pts[inliers].mean(0)
        normal = np.linalg.svd(pts[inliers] - centre, full_matrices=False)[2][2]
        offset = -float(normal @ centre)
        inliers = np.abs(pts @ normal + offset) < distance
        return normal, offset, inliers
    return normals[best], float(offsets[best]), inliers


def pixel_spacing(cloud: PointCloud) -> float:
    """Median distance between the points of horizontally or vertically adjacent pixels.

    Raises:
        DataError: not organised, or no two valid pixels are adjacent.
    """
    grid = to_grid(cloud)
    valid = (grid != 0).any(2)
    gaps = []
    for a, b, va, vb in (
        (grid[:, 1:], grid[:, :-1], valid[:, 1:], valid[:, :-1]),
        (grid[1:], grid[:-1], valid[1:], valid[:-1]),
    ):
        both = va & vb
        gaps.append(np.linalg.norm(a[both] - b[both], axis=1))
    gaps = np.concatenate(gaps)
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        raise DataError(f"{cloud.name}: no two valid pixels are adjacent", "check the scan")
    return float(np.median(gaps))


def remove_background_plane(
    cloud: PointCloud,
    distance: float | None = None,
    border: int = 10,
    seed: int = 0,
) -> PointCloud:
    """Drop the background plane of an organised scan (see the module docstring).

    Args:
        cloud: organised cloud (:func:`read_xyz_tiff`).
        distance: points closer than this to the plane are background, scene units; None =
            ``AUTO_DISTANCE_SPACINGS`` x the median pixel spacing (unit-free; e.g. about 1 mm
            on a scan with 0.3 mm pixels).
        border: width in pixels of the image frame whose points fit the plane.
        seed: RANSAC seed.

    Returns:
        The cloud without background points (pixels kept). When fewer than
        ``MIN_BORDER_INLIERS`` of the border points lie on the fitted plane (no visible plane),
        the cloud is returned unchanged and a warning is logged.

    Raises:
        DataError: not organised, no valid border pixel, or nothing left after removal.
        ConfigError: ``distance <= 0`` or ``border < 1``.
    """
    if not cloud.organized:
        raise DataError(
            f"{cloud.name} is not an organised scan; plane removal needs the pixel grid",
            "pass an MVTec 3D-AD xyz tiff, or turn plane removal off for unorganised clouds",
        )
    if distance is not None and not distance > 0:
        raise ConfigError(f"plane distance must be > 0, got {distance}", "or None for auto")
    if border < 1:
        raise ConfigError(f"plane border must be >= 1 px, got {border}", "use e.g. 10")
    h, w = cloud.grid_shape
    r, c = cloud.pixels[:, 0], cloud.pixels[:, 1]
    on_border = (r < border) | (r >= h - border) | (c < border) | (c >= w - border)
    if on_border.sum() < 3:
        raise DataError(
            f"{cloud.name}: the {border}-px image border has no valid point to fit a plane to",
            "turn plane removal off for this data, or use a wider border",
        )
    dist = distance if distance is not None else AUTO_DISTANCE_SPACINGS * pixel_spacing(cloud)
    normal, offset, inliers = fit_plane_ransac(cloud.points[on_border], dist, seed=seed)
    if inliers.mean() < MIN_BORDER_INLIERS:
        log.warning(
            "%s: only %.0f%% of the border points lie on one plane; background kept",
            cloud.name,
            100 * inliers.mean(),
        )
        return cloud
    keep = np.abs(cloud.points.astype(np.float64) @ normal + offset) >= dist
    if not keep.any():
        raise DataError(
            f"{cloud.name}: every point lies on the background plane",
            "use a smaller plane distance, or turn plane removal off",
        )
    out = cloud.subset(keep)
    out.meta["plane"] = {"normal": normal.tolist(), "offset": offset, "distance": dist}
    return out
