"""The light renderer: deferred Lambert + Blinn-Phong shading under a spotlight, in NumPy.

Per visible sample (a pixel of the supersampled G-buffer):

* irradiance from the spotlight: ``power / d^2 x cone falloff x max(n . l, 0) x visibility``,
  the visibility from a shadow map (the scene's depth rasterised from the lamp, 256^2 to
  1024^2: twice the supersampled image's longer side) with
  percentage-closer filtering over a disc of the lamp's apparent size (soft shadows);
* diffuse: ``albedo / pi x irradiance``; highlight: the energy-normalised Blinn-Phong lobe
  ``specular x (shininess + 8) / (8 pi) x (n . h)^shininess x irradiance``;
* fill light: ``ambient x albedo x (0.35 + 0.65 (n_z + 1) / 2)`` (bright above, dark below);
* the textures of :mod:`~flawscope.data.synthetic.cad.textures` modulate the albedo and tilt the
  shading normal (bump mapping).

The radiance is scaled so a white diffuse surface facing the lamp at the part's centre has
``look.brightness``; after area downsampling to the output size it is gamma-encoded
(``x^(1 / 2.2)``, clipped to 1, so strong highlights saturate as in the thesis' photos).

Compared with Blender's Cycles (:mod:`~flawscope.data.synthetic.cad.blender`) this has no
indirect light (no inter-reflections, no colour bleeding), no Fresnel, a heuristic fill light
and shadows from a shadow map, but it runs in about a second per 512^2 image on one CPU core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flawscope.data.synthetic.cad.cameras import Camera, look_at
from flawscope.data.synthetic.cad.gbuffer import GBuffer, downsample
from flawscope.data.synthetic.cad.raster import rasterize
from flawscope.data.synthetic.cad.scene import Scene
from flawscope.data.synthetic.cad.textures import surface_texture

__all__ = ["LightRenderer", "ShadowMap", "shadow_map"]

_SHADOW_SIZE = 1024
# 12-tap Poisson-like disc (unit radius) for percentage-closer filtering, plus the centre
_TAPS = np.array(
    [
        [0.0, 0.0],
        [0.53, 0.12],
        [-0.42, 0.37],
        [0.08, -0.61],
        [-0.2, -0.25],
        [0.82, -0.44],
        [-0.87, -0.19],
        [0.33, 0.79],
        [-0.52, 0.83],
        [0.61, -0.9],
        [-0.11, 0.35],
        [0.95, 0.3],
        [-0.66, -0.72],
    ]
)


@dataclass
class ShadowMap:
    """Depth of the scene seen from the lamp.

    Attributes:
        camera: the lamp's view (aimed along the cone's axis, field of view covering the cone).
        depth: ``(S, S)`` float32 nearest depth per texel, mm (``inf`` where nothing).
        texel_mm: size of one texel at unit depth (multiply by the depth for mm).
    """

    camera: Camera
    depth: np.ndarray
    texel_mm: float

    def visibility(self, points: np.ndarray, normals: np.ndarray, radius_mm: float) -> np.ndarray:
        """Fraction 0..1 of the lamp that sees each of ``(N, 3)`` points (PCF soft shadow).

        Each point is offset along its geometric normal by 1.5 texels (against self-shadowing)
        and compared with the map at 13 taps on a disc whose radius grows with the lamp radius.
        """
        cam = self.camera
        z0 = cam.to_camera(points)[:, 2]
        texel = self.texel_mm * np.maximum(z0, 1e-6)
        p = points + normals * (1.5 * texel)[:, None]
        uv, z = cam.project(p)
        size = self.depth.shape[0]
        # penumbra ~ lamp radius over distance, in texels; at least one texel
        spread = np.clip(radius_mm / max(self.texel_mm, 1e-9) / np.maximum(z, 1e-6) * 0.15, 1, 6)
        lit = np.zeros(len(p))
        for dx, dy in _TAPS:
            u = np.clip((uv[:, 0] + dx * spread).astype(np.int64), 0, size - 1)
            v = np.clip((uv[:, 1] + dy * spread).astype(np.int64), 0, size - 1)
            lit += z <= self.depth[v, u] + texel
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < size) & (uv[:, 1] >= 0) & (uv[:, 1] < size)
        return np.where(inside & (z > 0), lit / len(_TAPS), 0.0)


def shadow_map(scene: Scene, size: int = _SHADOW_SIZE) -> ShadowMap:
    """Rasterise the scene's depth from the spotlight (field of view = cone + 4 degrees)."""
    light = scene.light
    half = np.radians(min(light.cone_deg + 4.0, 80.0))
    focal = size / 2 / np.tan(half)
    cam = look_at(light.position, light.target, focal, size, size, "lamp")
    g = scene.geometry
    r = rasterize(cam, g.vertices, g.faces)
    return ShadowMap(cam, r.depth, 1.0 / focal)


class LightRenderer:
    """The default renderer: no Blender needed (NumPy + SciPy + OpenCV, deterministic).

    Args:
        shadow_size: side of the shadow map, texels (default: twice the supersampled image's
            longer side, 256 to 1024).
    """

    name = "light"

    def __init__(self, shadow_size: int | None = None) -> None:
        self.shadow_size = shadow_size
        self._cache: tuple[object, object, int, ShadowMap] | None = None

    def _shadow(self, scene: Scene, camera: Camera) -> ShadowMap:
        """The scene's shadow map, reused for the next view of the same scene (a stereo pair).

        The cache holds the geometry and light objects themselves (compared by identity), so a
        new scene never picks up a stale map.
        """
        size = self.shadow_size or int(np.clip(2 * max(camera.width, camera.height), 256, 1024))
        c = self._cache
        if c is None or c[0] is not scene.geometry or c[1] is not scene.light or c[2] != size:
            self._cache = (scene.geometry, scene.light, size, shadow_map(scene, size))
        return self._cache[3]

    def radiance(self, scene: Scene, camera: Camera, gb: GBuffer) -> np.ndarray:
        """Display-linear radiance ``(H, W)`` float32 of the G-buffer's view (before gamma)."""
        light, look = scene.light, scene.look
        pos, n, fn = gb.position, gb.normal.copy(), gb.face_normal
        obj = gb.obj[gb.hit]
        footprint = gb.depth[gb.hit] / camera.focal_px  # mm per sample on a facing surface
        albedo = np.empty(len(pos))
        spec = np.empty(len(pos))
        shine = np.empty(len(pos))
        for i, o in enumerate(scene.objects):
            sel = obj == i
            if not sel.any():
                continue
            factor, slope = surface_texture(
                o, scene.seed + 17 * i, pos[sel], n[sel], footprint[sel]
            )
            ns = n[sel]
            if o.defect_tint != 1.0 or o.defect_rough:
                hurt = gb.defect[gb.hit][sel]
                factor = np.where(hurt, factor * o.defect_tint, factor)
                slope = np.where(hurt[:, None], slope * (1.0 + o.defect_rough), slope)
            slope = slope - np.einsum("nd,nd->n", slope, ns)[:, None] * ns
            tilted = ns - slope
            n[sel] = tilted / np.maximum(np.linalg.norm(tilted, axis=1, keepdims=True), 1e-9)
            albedo[sel] = np.clip(o.material.albedo * factor, 0.0, 1.0)
            spec[sel] = o.material.specular
            shine[sel] = o.material.shininess
        # interior of a hole: the walls see little of the room
        albedo[gb.backface] *= 0.5
        to_light = light.position - pos
        dist2 = np.einsum("nd,nd->n", to_light, to_light)
        ldir = to_light / np.sqrt(dist2)[:, None]
        centre2 = float(np.sum((light.position - scene.target) ** 2))
        irradiance = centre2 / dist2 * light.falloff(pos)  # 1 at the part's centre, on axis
        irradiance *= self._shadow(scene, camera).visibility(pos, fn, light.radius_mm)
        n_dot_l = np.clip(np.einsum("nd,nd->n", n, ldir), 0.0, None)
        n_dot_l *= np.einsum("nd,nd->n", fn, ldir) > 0  # no light through the geometry
        view = camera.position - pos
        view /= np.linalg.norm(view, axis=1, keepdims=True)
        half = ldir + view
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
        n_dot_h = np.clip(np.einsum("nd,nd->n", n, half), 0.0, 1.0)
        lobe = spec * (shine + 8) / 8 * n_dot_h**shine
        # x pi: a white diffuse surface facing the lamp on axis at the part's centre gives 1
        direct = irradiance * n_dot_l * (albedo + lobe)
        fill = look.ambient * albedo * (0.35 + 0.65 * (n[:, 2] + 1) / 2)
        value = look.brightness * (direct + fill)
        return gb.scatter(value.astype(np.float32), fill=look.brightness * look.background)

    def render(self, scene: Scene, camera: Camera, gb: GBuffer, supersample: int) -> np.ndarray:
        """The display image ``(H, W)`` float32 in [0, 1] (gamma-encoded, no sensor effects).

        Args:
            scene: what to render.
            camera: the output camera (``camera.scaled(supersample)`` made ``gb``).
            gb: the supersampled G-buffer.
            supersample: samples per output pixel side.
        """
        linear = downsample(self.radiance(scene, camera.scaled(supersample), gb), supersample)
        return np.clip(linear, 0.0, 1.0) ** (1.0 / scene.look.gamma)
