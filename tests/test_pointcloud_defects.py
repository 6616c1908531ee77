"""Synthetic scenes, scans and defects: labels mark exactly the changed points."""

from __future__ import annotations

import numpy as np
import pytest

from flawscope.errors import ConfigError, DataError
from flawscope.pointcloud.defects import DEFECT_KINDS, inject_defect
from flawscope.pointcloud.io import organised_cloud
from flawscope.pointcloud.scenes import SHAPES, load_off, part_cloud, scene_clouds, shape_mesh
from flawscope.pointcloud.synthetic import defective_cloud, good_cloud


@pytest.fixture()
def brick():
    return part_cloud("brick", 3000, np.random.default_rng(0))


@pytest.mark.parametrize("kind", ["bump", "dent", "crack", "hole"])
def test_displacement_defects_label_exactly_the_moved_points(brick, kind: str) -> None:
    out, defect = inject_defect(brick, kind, np.random.default_rng(1), radius=0.08)
    moved = np.linalg.norm(out.points - brick.points, axis=1) > 1e-6
    assert out.defect_type == kind and defect.kind == kind
    assert len(out) == len(brick) and out.labels.sum() == defect.n_labelled > 5
    # every label moved; points not labelled did not move (profile 0 only at the rim)
    assert not (moved & ~out.labels).any()
    assert moved[out.labels].mean() > 0.9
    dist = np.linalg.norm(brick.points - defect.centre, axis=1)
    reach = (2.0 if kind == "crack" else 1.0) * defect.radius
    assert dist[out.labels].max() <= reach + 1e-4


def test_bump_goes_out_and_dent_goes_in(brick) -> None:
    centre_dist = np.linalg.norm(brick.points - brick.points.mean(0), axis=1)
    for kind, sign in (("bump", 1), ("dent", -1)):
        out, _ = inject_defect(brick, kind, np.random.default_rng(2), radius=0.08, depth=0.5)
        new = np.linalg.norm(out.points - brick.points.mean(0), axis=1)
        assert sign * (new - centre_dist)[out.labels].mean() > 0


def test_missing_region_removes_points_and_labels_the_rim(brick) -> None:
    out, defect = inject_defect(brick, "missing", np.random.default_rng(3), radius=0.08)
    assert len(out) < len(brick) and out.labels.any()
    dist = np.linalg.norm(out.points - defect.centre, axis=1)
    assert dist[out.labels].min() >= defect.radius - 1e-4
    assert dist[out.labels].max() <= 1.25 * defect.radius + 1e-4


def test_defect_bad_options(brick) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="unknown defect"):
        inject_defect(brick, "scratch", rng)
    with pytest.raises(ConfigError):
        inject_defect(brick, "bump", rng, radius=2.0)
    with pytest.raises(DataError, match="fewer than k"):
        inject_defect(brick.subset(np.arange(10)), "bump", rng)


def test_organised_scan_defect_mask_matches_labels() -> None:
    rng = np.random.default_rng(4)
    good = good_cloud("brick", True, 0, 64, 0.0, rng)
    for kind in DEFECT_KINDS:
        cloud, mask = defective_cloud(good, kind, rng)
        assert cloud.organized and mask.shape == (64, 64) and mask.any()
        np.testing.assert_array_equal(cloud.labels, mask[cloud.pixels[:, 0], cloud.pixels[:, 1]])
        table = cloud.points[:, 2] < 0.5  # the table plane is near z = 0; the brick is 11 mm
        assert not (cloud.labels & table).any()


def test_scenes_are_reproducible_and_sized() -> None:
    a = scene_clouds(2, 700, n_objects=4, seed=5)
    b = scene_clouds(2, 700, n_objects=4, seed=5)
    assert [len(c) for c in a] == [700, 700]
    np.testing.assert_array_equal(a[1].points, b[1].points)
    assert not np.array_equal(a[0].points, a[1].points)
    for name in SHAPES:
        assert shape_mesh(name).area > 0
    with pytest.raises(ConfigError, match="unknown shape"):
        shape_mesh("gear")


def test_modelnet_off_files(tmp_path) -> None:
    # ModelNet10's header quirk: counts glued to "OFF"; a quad becomes two triangles
    (tmp_path / "chair" / "train").mkdir(parents=True)
    off = "OFF5 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n0 0 1\n4 0 1 2 3\n3 0 1 4\n"
    (tmp_path / "chair" / "train" / "chair_0001.off").write_text(off)
    mesh = load_off(tmp_path / "chair" / "train" / "chair_0001.off")
    assert len(mesh.faces) == 3 and mesh.area == pytest.approx(1.5)
    scenes = scene_clouds(1, 300, n_objects=2, seed=0, modelnet=tmp_path)
    assert len(scenes[0]) == 300
    (tmp_path / "bad.off").write_text("not a mesh")
    with pytest.raises(DataError, match="OFF"):
        load_off(tmp_path / "bad.off")
    with pytest.raises(DataError, match="does not exist"):
        scene_clouds(1, 300, modelnet=tmp_path / "none")


def test_scan_is_an_mvtec_style_point_map() -> None:
    from flawscope.pointcloud.scans import height_scan

    grid = height_scan("washer", 48, np.random.default_rng(6))
    assert grid.shape == (48, 48, 3) and grid.dtype == np.float32
    cloud = organised_cloud(grid)
    assert len(cloud) == 48 * 48
    assert np.all(np.diff(grid[0, :, 0]) > 0) and np.all(np.diff(grid[:, 0, 1]) > 0)
