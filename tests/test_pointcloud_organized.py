"""Background-plane removal on organised scans."""

from __future__ import annotations

import numpy as np
import pytest

from flawscope.errors import DataError
from flawscope.pointcloud.cloud import PointCloud
from flawscope.pointcloud.io import organised_cloud
from flawscope.pointcloud.organized import fit_plane_ransac, remove_background_plane


def tilted_table_with_box(noise: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """A 60 x 80 scan: a tilted plane, a 2-unit-high box in the middle, some invalid pixels."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:60, 0:80].astype(np.float64) * 0.5
    z = 0.05 * x - 0.03 * y + 3.0 + rng.normal(0, noise, x.shape)
    part = np.zeros_like(z, dtype=bool)
    part[20:40, 30:55] = True
    z[part] += 2.0
    grid = np.stack([x, y, z], axis=2).astype(np.float32)
    grid[5, 5] = 0.0  # invalid (MVTec 3D-AD writes zeros)
    return grid, part


def test_plane_removal_keeps_exactly_the_part() -> None:
    grid, part = tilted_table_with_box()
    cloud = organised_cloud(grid)
    assert len(cloud) == 60 * 80 - 1
    kept = remove_background_plane(cloud)
    mask = np.zeros(part.shape, dtype=bool)
    mask[kept.pixels[:, 0], kept.pixels[:, 1]] = True
    np.testing.assert_array_equal(mask, part)
    normal = np.asarray(kept.meta["plane"]["normal"])
    true = np.array([-0.05, 0.03, 1.0]) / np.linalg.norm([-0.05, 0.03, 1.0])
    assert abs(normal @ true) > 0.999


def test_ransac_ignores_outliers() -> None:
    rng = np.random.default_rng(1)
    pts = np.c_[rng.uniform(-5, 5, (500, 2)), np.zeros(500)]
    pts[:100, 2] = rng.uniform(1, 5, 100)  # 20 % clutter above the plane
    normal, offset, inliers = fit_plane_ransac(pts, 0.05)
    assert abs(normal[2]) > 0.9999 and abs(offset) < 1e-6
    assert inliers[100:].all() and not inliers[:100].any()


def test_no_plane_visible_keeps_the_scan() -> None:
    rng = np.random.default_rng(2)
    grid = rng.uniform(0, 10, (30, 30, 3)).astype(np.float32)  # noise, no plane
    cloud = organised_cloud(grid)
    assert len(remove_background_plane(cloud, distance=0.01)) == len(cloud)


def test_plane_removal_bad_input() -> None:
    with pytest.raises(DataError, match="not an organised scan") as exc:
        remove_background_plane(PointCloud(np.zeros((10, 3))))
    assert "\n" not in str(exc.value)
    grid, _ = tilted_table_with_box()
    grid[:, :] = 0.0
    grid[30, 40] = (1.0, 1.0, 1.0)  # a single valid pixel, not on the border
    with pytest.raises(DataError, match="border"):
        remove_background_plane(organised_cloud(grid))
