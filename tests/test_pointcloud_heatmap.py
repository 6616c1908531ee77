"""Heat maps: colour scale, z-buffer renders, coloured PLY files, (H, W) maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flawscope.pointcloud.heatmap import (
    colour_range,
    map_overlay,
    render,
    score_colours,
    view_basis,
    write_heatmap_ply,
)
from flawscope.pointcloud.io import organised_cloud, read_cloud
from flawscope.report.figures import heat_colours


def test_threshold_sits_mid_scale() -> None:
    low, high = colour_range(2.0, 0.5)
    assert (low, high) == (0.5, 3.5)
    colours = score_colours(np.array([0.5, 2.0, 3.5, 9.0]), low, high)
    np.testing.assert_array_equal(colours, heat_colours(np.array([0.0, 0.5, 1.0, 1.0])))
    assert colour_range(2.0, 5.0) == (0.0, 4.0)  # a low end above the threshold is ignored
    assert colour_range(float("nan"), 0.0, np.array([1.0, 3.0])) == (0.0, 3.0)


def test_render_nearest_point_wins() -> None:
    forward = view_basis(35.0, -60.0)[2]
    far = np.zeros(3)
    near = far - 5.0 * forward  # same screen position, closer to the camera
    spread = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]])  # fixes the view
    points = np.vstack([far, near, spread])
    colours = np.array([[255, 0, 0], [0, 0, 255]] + [[0, 255, 0]] * 4, dtype=np.uint8)
    img = render(points, colours, size=64, splat=1)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    blue = (img[..., 2] > 100) & (img[..., 0] < 50)
    red = (img[..., 0] > 100) & (img[..., 2] < 50)
    assert blue.any() and not red.any()
    order = [1, 0, 2, 3, 4, 5]  # drawing order must not matter
    swapped = render(points[order], colours[order], size=64, splat=1)
    np.testing.assert_array_equal(swapped, img)


def test_heatmap_ply_holds_points_colours_and_scores(tmp_path: Path) -> None:
    pts = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    scores = np.linspace(0, 4, 50).astype(np.float32)
    path = write_heatmap_ply(tmp_path / "h.ply", pts, scores, 0.0, 4.0)
    header = path.read_bytes().split(b"end_header")[0].decode()
    assert "property uchar red" in header and "property float anomaly_score" in header
    np.testing.assert_array_equal(read_cloud(path).points, pts)
    data = np.frombuffer(path.read_bytes().split(b"end_header\n", 1)[1],
                         dtype=[("xyz", "<f4", 3), ("rgb", "u1", 3), ("s", "<f4")])  # fmt: skip
    np.testing.assert_array_equal(data["s"], scores)
    np.testing.assert_array_equal(data["rgb"], score_colours(scores, 0.0, 4.0))


def test_map_overlay_is_the_scan_grid() -> None:
    grid = np.zeros((10, 12, 3), dtype=np.float32)
    grid[2:8, 3:9] = (1.0, 1.0, 1.0)
    cloud = organised_cloud(grid)
    scores = np.zeros(len(cloud), dtype=np.float32)
    scores[0] = 10.0
    img = map_overlay(cloud, scores, 0.0, 4.0)
    assert img.shape == (10, 12, 3)
    hot, cold = img[2, 3].astype(int), img[5, 5].astype(int)  # point 0's pixel, a 0-score pixel
    assert hot[0] > cold[0] + 30 and hot[2] < cold[2] - 30
