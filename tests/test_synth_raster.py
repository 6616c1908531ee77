"""The light renderer: rasteriser coverage and depth order, masks, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from flawscope.data.synthetic.cad import render_pair, resolve_part, write_renders
from flawscope.data.synthetic.cad.cameras import look_at
from flawscope.data.synthetic.cad.gbuffer import gbuffer
from flawscope.data.synthetic.cad.raster import rasterize
from flawscope.data.synthetic.cad.render import make_renderer, render_view
from flawscope.data.synthetic.cad.scene import build_scene


def _square(z: float, half: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]])
    return v, np.array([[0, 1, 2], [0, 2, 3]])


def test_cube_seen_head_on_covers_its_projected_area() -> None:
    cube = trimesh.creation.box((10.0, 10.0, 10.0))
    cam = look_at([0.0, 0.0, 105.0], [0.0, 0.0, 0.0], 400.0, 120, 120)
    r = rasterize(cam, cube.vertices, cube.faces)
    side = 400.0 * 10.0 / 100.0  # the front face is 100 mm away: 40 px
    assert r.hit.sum() == pytest.approx(side**2, abs=4 * side)
    assert np.all(r.depth[r.hit] == pytest.approx(100.0))
    rows, cols = np.nonzero(r.hit)
    assert rows.min() == 40 and rows.max() == 79 and cols.min() == 40 and cols.max() == 79
    assert np.isinf(r.depth[~r.hit]).all() and (r.face[~r.hit] == -1).all()


@pytest.mark.parametrize("near_first", [True, False])
def test_the_nearer_surface_wins_whatever_the_face_order(near_first: bool) -> None:
    near_v, near_f = _square(20.0, 5.0)  # 80 mm from the camera
    far_v, far_f = _square(0.0, 10.0)  # 100 mm, larger, behind it
    parts = [(near_v, near_f), (far_v, far_f)] if near_first else [(far_v, far_f), (near_v, near_f)]
    v = np.concatenate([parts[0][0], parts[1][0]])
    f = np.concatenate([parts[0][1], parts[1][1] + 4])
    cam = look_at([0.0, 0.0, 100.0], [0.0, 0.0, 0.0], 200.0, 64, 64)
    r = rasterize(cam, v, f)
    near_ids = {0, 1} if near_first else {2, 3}
    centre = r.face[28:36, 28:36]
    assert set(np.unique(centre)) <= near_ids
    assert r.depth[32, 32] == pytest.approx(80.0)
    assert r.depth[32, 14] == pytest.approx(100.0) and r.face[32, 14] not in near_ids


def test_depth_and_barycentrics_are_perspective_correct_on_a_slanted_plane() -> None:
    v = np.array([[-30.0, -30.0, -30.0], [30.0, -30.0, 30.0], [30.0, 30.0, 30.0], [-30, 30, -30]])
    f = np.array([[0, 1, 2], [0, 2, 3]])
    cam = look_at([0.0, 0.0, 200.0], [0.0, 0.0, 0.0], 300.0, 48, 48)
    r = rasterize(cam, v, f)
    ys, xs = np.nonzero(r.hit)
    # the visible point of every pixel, from the barycentrics, lies on the ray through it
    for y, x in list(zip(ys, xs, strict=True))[::97]:
        p = r.bary[y, x].astype(np.float64) @ v[f[r.face[y, x]]]
        uv, z = cam.project(p[None])
        np.testing.assert_allclose(uv[0], [x + 0.5, y + 0.5], atol=2e-3)
        assert z[0] == pytest.approx(r.depth[y, x], rel=1e-4)


def test_foreground_mask_is_exactly_the_part_pixels() -> None:
    part = resolve_part("brick")
    scene = build_scene(part, np.random.default_rng(4))
    cam = look_at([60.0, -50.0, 90.0], scene.target, 260.0, 80, 72)
    view = render_view(scene, cam, make_renderer("light"), supersample=1)
    gb = gbuffer(scene, cam)
    np.testing.assert_array_equal(view.foreground, gb.part)
    assert 300 < view.foreground.sum() < 0.75 * 80 * 72
    assert not view.defect.any()
    # the part is brighter than the dark holder around it on average
    assert view.image[view.foreground].mean() > view.image[~view.foreground].mean()


def test_renders_are_deterministic_per_seed(tmp_path: Path) -> None:
    kw = {"n_train": 2, "n_test_good": 0, "n_test_defective": 1, "defects": ["dent"], "size": 64}
    a = write_renders(tmp_path / "a", "brick", seed=5, **kw)
    b = write_renders(tmp_path / "b", "brick", seed=5, **kw)
    c = write_renders(tmp_path / "c", "brick", seed=6, **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 2 * 2 + 3  # train: 2 images + 2 masks; test: image, mask, truth
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / files[-1]).read_bytes() != (c / files[-1]).read_bytes()


def test_a_stereo_pair_shares_the_scene_but_not_the_view() -> None:
    part = resolve_part("box")
    views, info = render_pair(part, np.random.default_rng(1), (64, 64), make_renderer("light"))
    left, right = views
    assert np.linalg.norm(left.camera.position - right.camera.position) == pytest.approx(
        info["baseline_mm"], abs=0.01
    )
    assert not np.array_equal(left.foreground, right.foreground)
    assert left.foreground.any() and right.foreground.any()
