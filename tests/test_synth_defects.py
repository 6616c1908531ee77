"""Defects of the CAD renders: each one shows, inside the foreground, and has a mask there."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flawscope.data.synthetic.cad import DEFECT_TYPES, resolve_part
from flawscope.data.synthetic.cad.cameras import look_at
from flawscope.data.synthetic.cad.defects import apply_defect, check_defects
from flawscope.data.synthetic.cad.render import make_renderer, render_view
from flawscope.data.synthetic.cad.scene import build_scene
from flawscope.errors import ConfigError

_RENDERER = make_renderer("light")


@pytest.mark.parametrize("part_name", ["brick", "box"])
@pytest.mark.parametrize("defect", DEFECT_TYPES)
def test_each_defect_has_a_mask_inside_the_part_and_changes_the_image_there(
    defect: str, part_name: str
) -> None:
    part = resolve_part(part_name)
    scene = build_scene(part, np.random.default_rng(11))
    eye = scene.target + part.radius * 6 * np.array([0.35, -0.45, 0.82])
    cam = look_at(eye, scene.target, 0.85 * 64 * 6, 128, 128)
    toward = eye - scene.target
    bad = apply_defect(scene, defect, np.random.default_rng(3), toward)
    clean = None if defect == "scratch" else scene
    good = render_view(scene, cam, _RENDERER, 2, noise_seed=1)
    view = render_view(bad, cam, _RENDERER, 2, clean=clean, noise_seed=1)
    assert view.defect.any(), defect
    assert not (view.defect & ~view.foreground).any()
    diff = np.abs(view.image - good.image)
    near = cv2.dilate(view.defect.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert diff[view.defect].max() > 0.03, defect  # 8 grey levels; the noise is the same
    # the change is concentrated at the defect (a defect may also shade its surroundings)
    assert diff[near].mean() > 4 * diff[~near].mean(), defect
    if defect == "scratch":
        assert bad.part_object is scene.part_object  # drawn in the render, mesh unchanged
    else:
        assert bad.part_object.defect.any() and not scene.part_object.defect.any()


def test_good_scene_is_untouched_by_a_defect() -> None:
    part = resolve_part("brick")
    scene = build_scene(part, np.random.default_rng(2))
    before = scene.part_object.vertices.copy()
    apply_defect(scene, "dent", np.random.default_rng(0))
    np.testing.assert_array_equal(scene.part_object.vertices, before)


def test_defect_names_are_checked() -> None:
    assert check_defects(["dent", " hole", "dent"]) == ("dent", "hole")
    with pytest.raises(ConfigError, match="unknown defect type 'crack'.*dent, bump, hole"):
        check_defects(["dent", "crack"])
    with pytest.raises(ConfigError, match="no defect type"):
        check_defects([])
