"""One rendered view: image, foreground mask and defect mask, with either renderer.

Every renderer implements :class:`Renderer` (``render(scene, camera, gbuffer, supersample)`` ->
display image). The masks never come from the renderer: they come from the supersampled
G-buffer of the same geometry and camera (:func:`~flawscope.data.synthetic.cad.gbuffer.gbuffer`),
so they are exact and identical for the light and the Blender renders:

* foreground: at least half of a pixel's ``supersample^2`` samples see the part;
* defect (a defective scene): at least half of its samples see a face the defect made or moved,
  or a depth that differs from the clean scene's by more than 0.05 % of the part's size, or the
  scratch's stroke; always inside the foreground. Where a defect is smaller than that everywhere,
  the pixels with the largest coverage (at least half of the largest) are kept, so a visible
  defect never has an empty mask.

Then the scratch is drawn and the camera's blur, vignette and noise applied
(:func:`~flawscope.data.synthetic.cad.sensor.apply_sensor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from flawscope.data.synthetic.cad.cameras import Camera
from flawscope.data.synthetic.cad.defects import Scratch, draw_scratch, scratch_coverage
from flawscope.data.synthetic.cad.gbuffer import GBuffer, downsample, gbuffer
from flawscope.data.synthetic.cad.scene import Scene
from flawscope.data.synthetic.cad.sensor import apply_sensor
from flawscope.errors import ConfigError

__all__ = ["RENDERERS", "Renderer", "View", "make_renderer", "render_view"]

RENDERERS: tuple[str, ...] = ("light", "blender")


class Renderer(Protocol):
    """Turns a scene and a camera into a display image."""

    name: str

    def render(self, scene: Scene, camera: Camera, gb: GBuffer, supersample: int) -> np.ndarray:
        """``(camera.height, camera.width)`` float32 in [0, 1], gamma-encoded, before the
        scratch and the sensor effects. ``gb`` is the G-buffer of ``camera.scaled(supersample)``
        (a renderer may ignore it)."""
        ...


def make_renderer(name: str, **options: object) -> Renderer:
    """The renderer called ``name``: ``light`` (NumPy) or ``blender`` (bpy, Cycles).

    Raises:
        ConfigError: unknown name, or ``blender`` without the ``bpy`` module (one line naming
            ``pip install flawscope[blender]``).
    """
    if name == "light":
        from flawscope.data.synthetic.cad.shading import LightRenderer

        return LightRenderer(**options)  # type: ignore[arg-type]
    if name == "blender":
        from flawscope.data.synthetic.cad.blender import BlenderRenderer

        return BlenderRenderer(**options)  # type: ignore[arg-type]
    raise ConfigError(f"unknown renderer {name!r}", f"use one of: {', '.join(RENDERERS)}")


@dataclass
class View:
    """One rendered image and its masks.

    Attributes:
        image: ``(H, W)`` float32 grey in [0, 1].
        foreground: ``(H, W)`` bool, the part.
        defect: ``(H, W)`` bool, the defect (all False for a good part), inside ``foreground``.
        camera: the camera.
    """

    image: np.ndarray
    foreground: np.ndarray
    defect: np.ndarray
    camera: Camera


def _keep_visible(coverage: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    mask = (coverage >= 0.5) & foreground
    if not mask.any() and (coverage * foreground).max() > 0:
        c = coverage * foreground
        mask = c >= c.max() / 2
    return mask


def render_view(
    scene: Scene,
    camera: Camera,
    renderer: Renderer,
    supersample: int = 2,
    clean: Scene | None = None,
    noise_seed: int = 0,
) -> View:
    """Render ``scene`` from ``camera`` with its masks.

    Args:
        scene: the scene (good or defective).
        camera: the output camera (its size is the image size).
        renderer: a :class:`Renderer`.
        supersample: samples per pixel side of the G-buffer (anti-aliasing and mask coverage).
        clean: the good scene ``scene`` was made from (for a mesh defect's mask), else None.
        noise_seed: seed of the sensor noise.
    """
    cam = camera.scaled(supersample)
    gb = gbuffer(scene, cam)
    image = renderer.render(scene, camera, gb, supersample)
    foreground = downsample(gb.part, supersample) >= 0.5
    changed = np.zeros(gb.hit.shape, dtype=bool)
    if clean is not None:
        ref = gbuffer(clean, cam)
        tol = 5e-4 * scene.part.extent
        moved = np.abs(gb.depth - ref.depth) > tol
        moved &= np.isfinite(gb.depth) | np.isfinite(ref.depth)
        changed |= gb.part & (gb.defect | moved)
    if isinstance(scene.scratch, Scratch):
        stroke = scratch_coverage(scene.scratch, gb, cam, camera.focal_px)
        image = draw_scratch(image, downsample(stroke, supersample), scene.scratch)
        changed |= stroke
    defect = _keep_visible(downsample(changed, supersample), foreground)
    image = apply_sensor(image, scene.look, np.random.default_rng([scene.seed, noise_seed]))
    return View(image, foreground, defect, camera)
