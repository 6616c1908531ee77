"""Procedural surface textures in object space: albedo variation and bump-map slopes.

Seed 003 (5.2, figure 5.1) found its Blender renders "too clean": the real bricks' surface
texture was missing. Every surface here carries a texture fixed to the object (so both cameras
of a stereo pair see the same texture, and it moves with the part):

* ``moulded``: injection-moulded ABS: a fine isotropic grain (feature size ``grain_mm``) as a
  bump map, plus blotchy albedo variation eight times coarser;
* ``printed``: an FDM print: layer lines on the walls (one bead per ``layer_mm``, the slope of a
  rounded bead ``sin``-shaped between creases, bead strength and shade varying per layer, a slight
  z wobble) and parallel raster lines on top (extrusion width ``2.2 layer_mm`` at ``raster_deg``);
* ``fabric``: the holder's dark cloth: strong coarse albedo variation and a weave-like bump;
* ``plain``: clutter: mild noise.

Noise is trilinear value noise from a periodic 64^3 lattice of Gaussian-smoothed white noise
(:func:`scipy.ndimage.map_coordinates`, ``grid-wrap``), one lattice per scene seed. Slopes are
dimensionless (mm of height per mm), given in world coordinates.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from flawscope.data.synthetic.cad.cameras import rotate
from flawscope.data.synthetic.cad.scene import Material, SceneObject

__all__ = ["surface_texture"]

_LATTICE = 64
_CELLS_PER_FEATURE = 3.0  # a noise feature spans ~3 lattice cells (smoothing sigma 1.2)


@lru_cache(maxsize=8)
def _lattice(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Periodic noise (unit std) and its gradient (per cell, normalised to unit std), and a
    per-layer table of 4096 uniform values in [-1, 1]."""
    rng = np.random.default_rng(seed)
    vol = ndimage.gaussian_filter(rng.standard_normal((_LATTICE,) * 3), 1.2, mode="wrap")
    vol = (vol - vol.mean()) / vol.std()
    grad = np.stack([(np.roll(vol, -1, a) - np.roll(vol, 1, a)) / 2 for a in range(3)])
    grad /= np.sqrt((grad**2).sum(axis=0).mean())
    return vol.astype(np.float32), grad.astype(np.float32), rng.uniform(-1, 1, 4096)


def _sample(volume: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Trilinear periodic lookup of ``volume`` at ``(N, 3)`` lattice coordinates."""
    return ndimage.map_coordinates(volume, coords.T, order=1, mode="grid-wrap")


def _noise(seed: int, p: np.ndarray, feature_mm: float, with_grad: bool = True):
    """Value noise at ``(N, 3)`` points (mm) with features of ``feature_mm``: (value, gradient).

    The gradient is of unit RMS length in lattice units, returned per mm direction (not scaled by
    the frequency: callers set the slope directly).
    """
    vol, grad, _ = _lattice(seed)
    c = p * (_CELLS_PER_FEATURE / feature_mm)
    value = _sample(vol, c)
    if not with_grad:
        return value, None
    g = np.stack([_sample(grad[a], c) for a in range(3)], 1)
    return value, g


def _fade(period_mm: float, footprint_mm: np.ndarray) -> np.ndarray:
    """1 where a pattern of ``period_mm`` spans >= 4 samples, fading to 0 at 2 (no moire)."""
    return np.clip((period_mm / np.maximum(footprint_mm, 1e-9) - 2.0) / 2.0, 0.0, 1.0)


def _printed(
    seed: int, p: np.ndarray, n: np.ndarray, m: Material, footprint_mm: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Albedo factor and local slope of an FDM surface at local points ``p`` / normals ``n``.

    Lines finer than the sample spacing ``footprint_mm`` fade out (a camera cannot resolve
    them; drawn anyway they alias into moire).
    """
    _, _, table = _lattice(seed)
    albedo = np.ones(len(p))
    slope = np.zeros_like(p)
    wobble, _ = _noise(seed + 1, p * [1.0, 1.0, 0.0], 6.0, with_grad=False)
    z = p[:, 2] + 0.12 * m.layer_mm * wobble
    layer = np.floor(z / m.layer_mm).astype(np.int64)
    f = z / m.layer_mm - layer
    strength = (1.0 + 0.35 * table[layer % 4096]) * _fade(m.layer_mm, footprint_mm)
    wall = np.abs(n[:, 2]) < 0.6
    slope[wall, 2] = (m.bump * strength * np.cos(np.pi * f))[wall]
    albedo[wall] *= (1.0 + 0.04 * table[(layer * 7 + 3) % 4096])[wall]
    top = n[:, 2] >= 0.6
    a = np.radians(m.raster_deg)
    d = np.array([np.cos(a), np.sin(a), 0.0])
    width = 2.2 * m.layer_mm
    s = np.einsum("nd,d->n", p, d)
    line = np.floor(s / width).astype(np.int64)
    g = s / width - line
    amp = 0.6 * m.bump * (1.0 + 0.3 * table[(line * 13 + 5) % 4096]) * _fade(width, footprint_mm)
    slope[top] += (amp * np.cos(np.pi * g))[top, None] * d
    albedo[top] *= (1.0 + 0.03 * table[(line * 11 + 1) % 4096])[top]
    return albedo, slope


def surface_texture(
    obj: SceneObject,
    seed: int,
    world_points: np.ndarray,
    world_normals: np.ndarray,
    footprint_mm: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Texture of ``obj`` at visible points: albedo factor ``(N,)`` and world slope ``(N, 3)``.

    Args:
        obj: the object (its material and world -> object transform).
        seed: texture seed of the scene.
        world_points: ``(N, 3)`` positions on the object, mm.
        world_normals: ``(N, 3)`` unit normals there (world).
        footprint_mm: ``(N,)`` or scalar size of one image sample on the surface, mm (periodic
            patterns finer than about 4 samples fade out).

    Returns:
        ``(albedo_factor, slope)``: multiply the material's albedo by the first (mean ~1); tilt
        the shading normal by the second (``n' = normalise(n - (s - (s . n) n))``).
    """
    m = obj.material
    rot = obj.to_local[:3, :3]
    p = rotate(world_points, rot) + obj.to_local[:3, 3]
    n = rotate(world_normals, rot)
    mottle, _ = _noise(seed + 2, p, 8 * m.grain_mm, with_grad=False)
    albedo = np.clip(1.0 + m.mottle * mottle, 0.2, 2.0)
    if m.finish == "printed":
        fa, slope = _printed(seed, p, n, m, np.broadcast_to(footprint_mm, (len(p),)))
        grain, g = _noise(seed + 3, p, m.grain_mm)
        albedo = albedo * fa * (1.0 + 0.02 * grain)
        slope = slope + 0.15 * m.bump * g
    else:
        grain, g = _noise(seed + 3, p, m.grain_mm)
        fine = {"fabric": 0.5, "moulded": 0.15, "plain": 0.1}.get(m.finish, 0.1)
        albedo = albedo * (1.0 + fine * m.mottle * grain)
        slope = m.bump * g
    return albedo, rotate(slope, rot.T)  # local -> world
