"""Cameras of the CAD renders: pinhole projection, orbit arcs, the stereo rig."""

from __future__ import annotations

import numpy as np
import pytest

from flawscope.data.synthetic.cad.cameras import PATHS, look_at, orbit_arc, stereo_rig


def test_look_at_projects_the_target_to_the_image_centre() -> None:
    target = np.array([3.0, -2.0, 5.0])
    cam = look_at([60.0, 40.0, 90.0], target, 500.0, 320, 240)
    uv, z = cam.project(target[None])
    np.testing.assert_allclose(uv[0], [160.0, 120.0], atol=1e-9)
    assert z[0] == pytest.approx(np.linalg.norm([57.0, 42.0, 85.0]))
    np.testing.assert_allclose(cam.rotation @ cam.rotation.T, np.eye(3), atol=1e-12)
    assert cam.rotation[0, 2] == pytest.approx(0.0)  # image rows level with the ground
    assert cam.rotation[1, 2] < 0  # image down points down in the world
    straight_down = look_at([0.0, 0.0, 100.0], [0.0, 0.0, 0.0], 500.0, 64, 64)
    np.testing.assert_allclose(straight_down.forward, [0, 0, -1])


def test_orbit_arc_keeps_its_distance_and_spans_its_angles() -> None:
    target = np.array([1.0, 2.0, 3.0])
    pts = orbit_arc(np.linspace(0, 1, 5), target, 120.0, (-30.0, 30.0), (40.0, 80.0))
    np.testing.assert_allclose(np.linalg.norm(pts - target, axis=1), 120.0)
    d = pts - target
    elevation = np.degrees(np.arcsin(d[:, 2] / 120.0))
    azimuth = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    np.testing.assert_allclose(elevation, [40, 50, 60, 70, 80], atol=1e-9)
    np.testing.assert_allclose(azimuth, [-30, -15, 0, 15, 30], atol=1e-9)
    assert set(PATHS) == {"sweep", "rise", "top"}


def test_stereo_rig_has_its_baseline_and_both_cameras_look_at_the_part() -> None:
    target = np.array([0.0, 0.0, 5.0])
    centre = orbit_arc(0.3, target, 120.0, (10.0, 80.0), (60.0, 60.0))[0]
    left, right = stereo_rig(centre, target, 50.0, 800.0, 512, 512)
    assert np.linalg.norm(left.position - right.position) == pytest.approx(50.0)
    np.testing.assert_allclose((left.position + right.position) / 2, centre, atol=1e-9)
    for cam in (left, right):
        to_target = (target - cam.position) / np.linalg.norm(target - cam.position)
        np.testing.assert_allclose(cam.forward, to_target, atol=1e-12)
        uv, _ = cam.project(target[None])
        np.testing.assert_allclose(uv[0], [256.0, 256.0], atol=1e-9)
    # the baseline runs along the image x axis of a camera at the rig centre (horizontal)
    offset = right.position - left.position
    mid = look_at(centre, target, 800.0, 512, 512)
    np.testing.assert_allclose(offset / 50.0, mid.rotation[0], atol=1e-12)
    assert abs(offset[2]) < 1e-9 and (left.name, right.name) == ("left", "right")


def test_scaled_camera_supersamples_the_same_view() -> None:
    cam = look_at([0.0, -80.0, 60.0], [0.0, 0.0, 0.0], 300.0, 100, 80)
    big = cam.scaled(2)
    p = np.array([[5.0, 3.0, 1.0]])
    np.testing.assert_allclose(big.project(p)[0], cam.project(p)[0] * 2, atol=1e-9)
    assert big.fov_deg == pytest.approx(cam.fov_deg)
