"""Scenes of the CAD renders: what varies between scenes, and a fixed inspection station."""

from __future__ import annotations

import numpy as np

from flawscope.data.synthetic.cad import SceneSettings, resolve_part
from flawscope.data.synthetic.cad.scene import build_scene


def test_scenes_vary_but_a_station_keeps_its_light_holder_and_clutter() -> None:
    part = resolve_part("brick")
    a, b = (build_scene(part, np.random.default_rng(s)) for s in (1, 2))
    assert not np.allclose(a.light.position, b.light.position)
    station = SceneSettings(clutter=(2, 2), station_seed=7)
    c, d = (build_scene(part, np.random.default_rng(s), station) for s in (1, 2))
    np.testing.assert_allclose(c.light.position, d.light.position)
    assert c.objects[1].material == d.objects[1].material  # the holder
    assert c.part_object.material == d.part_object.material  # the same product
    assert [o.name for o in c.objects] == [o.name for o in d.objects]
    assert sum(o.role == "clutter" for o in c.objects) == 2
    for oc, od in zip(c.objects[2:], d.objects[2:], strict=True):
        np.testing.assert_allclose(oc.vertices, od.vertices)
    assert not np.allclose(c.part_object.vertices, d.part_object.vertices)  # placed by hand
    assert abs(c.look.brightness / d.look.brightness - 1) <= 0.11
    assert c.seed != d.seed


def test_clutter_never_touches_the_part() -> None:
    part = resolve_part("box")
    for seed in range(5):
        scene = build_scene(part, np.random.default_rng(seed), SceneSettings(clutter=(7, 7)))
        part_xy = scene.part_object.vertices[:, :2]
        reach = np.linalg.norm(part_xy - part_xy.mean(axis=0), axis=1).max()
        for o in scene.objects:
            if o.role == "clutter":
                gap = np.linalg.norm(o.vertices[:, :2] - part_xy.mean(axis=0), axis=1).min()
                assert gap > reach * 0.9, (seed, o.name)
