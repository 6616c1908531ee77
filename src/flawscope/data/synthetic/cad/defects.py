"""Defects for the CAD renders: changes to the part's mesh, or strokes drawn in the render.

Mesh defects (the geometry changes, so shading, highlights and shadows change with it):

* ``dent``: vertices near a point on a flat face turned towards the cameras (see
  :func:`apply_defect`'s ``toward``) are pushed in along the face normal by
  ``depth x (1 - rho^2)^2``, ``rho`` the distance over an irregular radius (a wobbly outline),
  after the faces there were subdivided to edges of at most radius / 6;
* ``bump``: the same profile outwards (a blister, excess material);
* ``hole``: the faces whose centre lies within the radius are deleted and a blind hole is added
  (an inward-facing cylinder wall and a bottom), depth 1-2.5 radii;
* ``missing``: a chunk broken off the top rim: the vertices inside a sphere that cuts into the
  rim are projected onto the sphere (a concave, conchoidal fracture, no boolean needed), with a
  little roughness.

Render defect: ``scratch``: a thin, slightly bowed stroke in the plane of a flat face turned
towards the cameras, drawn dark (a gouge) or bright (a scrape, whitened polymer) on the visible
surface of the rendered image; at least 1.2 output pixels wide so it survives downsampling.

Sizes scale with the part's largest side ``E`` (mm): dent radius 0.03-0.055 E (depth 0.3-0.5
radii), bump 0.025-0.045 E (height 0.3-0.5 radii), hole 0.018-0.035 E, missing 0.08-0.13 E (depth
0.35-0.55 radii), scratch length 0.15-0.35 E and width 0.1-0.2 mm. Defect faces also change their
surface: a fracture is rough and stress-whitened (albedo x1.15-1.45), a hole's walls are dusty
(x0.5-0.8), dents and bumps slightly scuffed (x0.85-1.1), with a rougher bump texture. Every
face a mesh defect creates or moves is flagged (``SceneObject.defect``); the per-pixel defect
mask is where the defective render shows a flagged face or a depth that differs from the clean
render (:mod:`~flawscope.data.synthetic.cad.render`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flawscope.data.synthetic.cad.cameras import Camera
from flawscope.data.synthetic.cad.gbuffer import GBuffer
from flawscope.data.synthetic.cad.scene import Scene, SceneObject
from flawscope.errors import ConfigError, DataError

__all__ = ["DEFECT_TYPES", "Scratch", "apply_defect", "check_defects", "scratch_coverage"]

DEFECT_TYPES: tuple[str, ...] = ("dent", "bump", "hole", "scratch", "missing")

_Mesh = tuple[np.ndarray, np.ndarray, np.ndarray]  # vertices, faces, defect flags


@dataclass(frozen=True)
class Scratch:
    """A scratch on the part's surface, drawn in the render.

    Attributes:
        points: ``(K, 3)`` polyline in the plane of the face, world mm.
        normal: ``(3,)`` unit normal of that face (world).
        width_mm: stroke width, mm (widened to 1.2 output pixels where it would be thinner).
        bright: a scrape (brighter) instead of a gouge (darker).
        strength: 0..1, how strongly the stroke changes the surface.
    """

    points: np.ndarray
    normal: np.ndarray
    width_mm: float
    bright: bool
    strength: float


def check_defects(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate defect names (order kept, duplicates dropped).

    Raises:
        ConfigError: an unknown name, or none at all.
    """
    out: list[str] = []
    for name in names:
        name = name.strip()
        if name not in DEFECT_TYPES:
            raise ConfigError(
                f"unknown defect type {name!r}", f"use some of: {', '.join(DEFECT_TYPES)}"
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError("no defect type given", f"use some of: {', '.join(DEFECT_TYPES)}")
    return tuple(out)


# --------------------------------------------------------------------------------------------
# mesh helpers


def _closest_distance(vertices: np.ndarray, faces: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Distance (mm) from ``point`` to every triangle."""
    from trimesh.triangles import closest_point

    tri = vertices[faces]
    near = closest_point(tri, np.repeat(point[None], len(tri), axis=0))
    return np.linalg.norm(near - point, axis=1)


def _refine(
    vertices: np.ndarray, faces: np.ndarray, point: np.ndarray, radius: float, max_edge: float
) -> tuple[np.ndarray, np.ndarray]:
    """Subdivide the faces within ``radius`` of ``point`` until their edges are <= ``max_edge``.

    Neighbours are not split, which leaves T-junctions on the border of the refined region;
    the defects move vertices well inside it only, so no crack opens.
    """
    from trimesh.remesh import subdivide

    for _ in range(12):
        tri = vertices[faces]
        longest = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max(axis=1)
        near = _closest_distance(vertices, faces, point) < radius
        todo = np.flatnonzero(near & (longest > max_edge))
        if len(todo) == 0:
            break
        vertices, faces = subdivide(vertices, faces, face_index=todo)
    return np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def _face_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit face normals ``(F, 3)`` and areas ``(F,)`` (mm^2)."""
    cross = np.cross(
        vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    )
    length = np.linalg.norm(cross, axis=1)
    return cross / np.maximum(length, 1e-12)[:, None], length / 2


def _flat_spot(
    rng: np.random.Generator,
    vertices: np.ndarray,
    faces: np.ndarray,
    radius: float,
    toward: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """A random point on a face turned ``toward`` the cameras, with flat surroundings.

    Faces are drawn with probability ~ area x (n . toward)^2 among those with ``n . toward >
    0.3`` and ``n_z > -0.2``; a point is kept when every face within ``radius`` mm lies in its
    plane.

    Returns ``(point (3,), normal (3,))``.

    Raises:
        DataError: no such point after 80 tries (the part has no flat area large enough).
    """
    normals, areas = _face_normals(vertices, faces)
    facing = normals @ toward
    ok = (facing > 0.3) & (normals[:, 2] > -0.2) & (areas > 0)
    if not ok.any():
        raise DataError(
            "the part has no face turned towards the cameras for a defect",
            "orient the mesh with a flat side up (z)",
        )
    weights = np.where(ok, areas * facing**2, 0.0)
    weights /= weights.sum()
    for _ in range(80):
        f = rng.choice(len(faces), p=weights)
        a, b = rng.random(2)
        if a + b > 1:
            a, b = 1 - a, 1 - b
        tri = vertices[faces[f]]
        point = tri[0] + a * (tri[1] - tri[0]) + b * (tri[2] - tri[0])
        n = normals[f]
        near = _closest_distance(vertices, faces, point) < radius
        coplanar = np.abs((vertices[faces[near]] - point) @ n).max() < 1e-3 * radius + 1e-6
        if np.all(normals[near] @ n > 0.999) and coplanar:
            return point, n
    raise DataError(
        f"found no flat spot of radius {radius:.2f} mm on the part for a defect after 80 tries",
        "use a part with flat faces larger than the defect (about 5 % of its size)",
    )


def _tangent_frame(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``n`` and to each other."""
    a = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(n, a)
    u /= np.linalg.norm(u)
    return u, np.cross(n, u)


def _wobbly_radius(rng: np.random.Generator, radius: float, angle: np.ndarray) -> np.ndarray:
    """An irregular outline: ``radius`` x (1 + a few random low harmonics of the angle)."""
    r = np.ones_like(angle)
    for lobe in range(2, 6):
        r += rng.uniform(0.0, 0.2 / lobe**0.5) * np.cos(lobe * angle + rng.uniform(0, 2 * np.pi))
    return radius * r


def _flags_moved(faces: np.ndarray, moved: np.ndarray) -> np.ndarray:
    return moved[faces].any(axis=1)


# --------------------------------------------------------------------------------------------
# mesh defects: each takes (rng, vertices, faces, E) and returns (vertices, faces, flags)


def _displace(
    rng: np.random.Generator,
    v: np.ndarray,
    f: np.ndarray,
    size: float,
    toward: np.ndarray,
    sign: float,
) -> _Mesh:
    if sign < 0:
        radius = rng.uniform(0.03, 0.055) * size
        height = rng.uniform(0.3, 0.5) * radius
    else:
        radius = rng.uniform(0.025, 0.045) * size
        height = rng.uniform(0.3, 0.5) * radius
    point, n = _flat_spot(rng, v, f, 1.1 * radius, toward)
    v, f = _refine(v, f, point, 1.3 * radius, radius / 6)
    u, w = _tangent_frame(n)
    d = v - point
    along = d @ n
    x, y = d @ u, d @ w
    stretch = rng.uniform(1.0, 1.6)  # slightly elongated
    angle = rng.uniform(0, np.pi)
    xr = (np.cos(angle) * x + np.sin(angle) * y) / stretch
    yr = -np.sin(angle) * x + np.cos(angle) * y
    rho = np.hypot(xr, yr) / _wobbly_radius(rng, radius, np.arctan2(yr, xr))
    profile = np.where((rho < 1) & (np.abs(along) < 1e-3 * radius + 1e-6), (1 - rho**2) ** 2, 0.0)
    v = v + (sign * height * profile)[:, None] * n
    return v, f, _flags_moved(f, profile > 0.08)


def _dent(
    rng: np.random.Generator, v: np.ndarray, f: np.ndarray, size: float, toward: np.ndarray
) -> _Mesh:
    return _displace(rng, v, f, size, toward, -1.0)


def _bump(
    rng: np.random.Generator, v: np.ndarray, f: np.ndarray, size: float, toward: np.ndarray
) -> _Mesh:
    return _displace(rng, v, f, size, toward, 1.0)


def _hole(
    rng: np.random.Generator, v: np.ndarray, f: np.ndarray, size: float, toward: np.ndarray
) -> _Mesh:
    radius = rng.uniform(0.018, 0.035) * size
    point, n = _flat_spot(rng, v, f, 1.3 * radius, toward)
    edge = radius / 6
    v, f = _refine(v, f, point, 1.5 * radius, edge)
    centroids = v[f].mean(axis=1)
    d = centroids - point
    on_plane = np.abs(d @ n) < 1e-3 * radius + 1e-6
    inside = on_plane & (np.linalg.norm(d - (d @ n)[:, None] * n, axis=1) < radius)
    f = f[~inside]
    depth = rng.uniform(1.0, 2.5) * radius
    # the pit: a wall just outside the cut (hidden under the jagged rim) and a bottom
    sections = 32
    u, w = _tangent_frame(n)
    theta = np.linspace(0, 2 * np.pi, sections, endpoint=False)
    ring = (radius + 0.5 * edge) * (np.cos(theta)[:, None] * u + np.sin(theta)[:, None] * w)
    top = point + ring
    bottom = point - depth * n + ring
    centre = point - depth * n
    base = len(v)
    j = np.arange(sections)
    k = (j + 1) % sections
    t0, t1, b0, b1 = base + j, base + k, base + sections + j, base + sections + k
    c = base + 2 * sections
    wall = np.concatenate([np.stack([t0, b0, b1], 1), np.stack([t0, b1, t1], 1)])
    floor = np.stack([np.full(sections, c), b1, b0], 1)
    v = np.concatenate([v, top, bottom, centre[None]])
    flags = np.zeros(len(f), dtype=bool)
    f = np.concatenate([f, wall, floor])
    return v, f, np.concatenate([flags, np.ones(len(wall) + len(floor), dtype=bool)])


def _missing(
    rng: np.random.Generator, v: np.ndarray, f: np.ndarray, size: float, toward: np.ndarray
) -> _Mesh:
    radius = rng.uniform(0.08, 0.13) * size
    depth = rng.uniform(0.35, 0.55) * radius
    top = v[:, 2].max()
    upper = v[:, 2] >= top - 0.2 * np.ptp(v[:, 2])
    # a rim point on the side the cameras look from (within +-70 degrees)
    phi = np.arctan2(toward[1], toward[0]) + np.radians(rng.uniform(-70, 70))
    direction = np.array([np.cos(phi), np.sin(phi), 0.0])
    centre_xy = (v.min(axis=0) + v.max(axis=0)) / 2
    score = (v - centre_xy) @ direction + 0.5 * v[:, 2]
    rim = v[np.flatnonzero(upper)[np.argmax(score[upper])]]
    out = direction + np.array([0.0, 0.0, rng.uniform(0.6, 1.4)])
    out /= np.linalg.norm(out)
    centre = rim + out * (radius - depth)
    v, f = _refine(v, f, centre, radius * 1.1, radius / 7)
    d = v - centre
    dist = np.linalg.norm(d, axis=1)
    inside = dist < radius
    rough = 1.0 + rng.uniform(0.0, 0.06, inside.sum()) * (depth / radius)
    v = v.copy()
    v[inside] = (
        centre + d[inside] / np.maximum(dist[inside], 1e-9)[:, None] * (radius * rough)[:, None]
    )
    return v, f, _flags_moved(f, inside)


#: (albedo factor range, extra bump) of the faces each mesh defect makes or moves: a fracture is
#: rough and stress-whitened, a hole's walls are dusty, dents and bumps are scuffed
_SURFACE: dict[str, tuple[tuple[float, float], float]] = {
    "dent": ((0.85, 1.0), 1.0),
    "bump": ((0.9, 1.1), 1.0),
    "hole": ((0.5, 0.8), 2.0),
    "missing": ((1.15, 1.45), 4.0),
}

_MESH_DEFECTS: dict[str, Callable[..., _Mesh]] = {
    "dent": _dent,
    "bump": _bump,
    "hole": _hole,
    "missing": _missing,
}


# --------------------------------------------------------------------------------------------
# the scratch (drawn in the render)


def _scratch(
    rng: np.random.Generator, v: np.ndarray, f: np.ndarray, size: float, toward: np.ndarray
) -> Scratch:
    length = rng.uniform(0.15, 0.35) * size
    point, n = _flat_spot(rng, v, f, 0.02 * size, toward)
    u, w = _tangent_frame(n)
    angle = rng.uniform(0, np.pi)
    along = np.cos(angle) * u + np.sin(angle) * w
    across = np.cross(n, along)
    t = np.linspace(-0.5, 0.5, 17)[:, None]
    bow = rng.normal(0, 0.08) * length * (1 - 4 * t**2)
    points = point + t * length * along + bow * across
    return Scratch(
        points, n, rng.uniform(0.1, 0.2), bool(rng.random() < 0.35), rng.uniform(0.65, 1.0)
    )


def scratch_coverage(
    scratch: Scratch, gb: GBuffer, camera: Camera, output_focal: float
) -> np.ndarray:
    """``(H, W)`` bool: G-buffer samples of the part that lie on the scratch's stroke.

    A sample is on the stroke when it lies in the face's plane (within 0.02 mm) and within half
    the width of the polyline; the width is at least 1.2 output pixels at that depth.

    Args:
        scratch: the scratch.
        gb: the (supersampled) G-buffer of the defective scene.
        camera: the camera ``gb`` was rendered with.
        output_focal: focal length of the output camera, px (sets the minimum width).
    """
    hit_part = gb.part[gb.hit]
    p = gb.position
    c = scratch.points.mean(axis=0)
    reach = np.linalg.norm(scratch.points - c, axis=1).max() + 1.0
    cand = np.flatnonzero(hit_part & (np.linalg.norm(p - c, axis=1) < reach))
    on = np.zeros(len(p), dtype=bool)
    if len(cand):
        q = p[cand]
        plane = np.abs((q - scratch.points[0]) @ scratch.normal) < 0.02
        a, b = scratch.points[:-1], scratch.points[1:]
        ab = b - a
        rel = q[:, None, :] - a[None]
        s = np.clip((rel * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
        dist = np.linalg.norm(rel - s[..., None] * ab, axis=-1).min(axis=1)
        depth = camera.to_camera(q)[:, 2]
        half = np.maximum(scratch.width_mm, 1.2 * depth / output_focal) / 2
        on[cand] = plane & (dist < half)
    out = np.zeros(gb.hit.shape, dtype=bool)
    out[gb.hit] = on
    return out


def draw_scratch(image: np.ndarray, coverage: np.ndarray, scratch: Scratch) -> np.ndarray:
    """The display image with the stroke drawn at ``coverage`` (0..1): darker or brighter."""
    s = scratch.strength
    target = image + 0.3 * s * (1 - image) if scratch.bright else image * (1 - 0.6 * s)
    return (image + coverage * (target - image)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# public


def apply_defect(
    scene: Scene,
    defect: str,
    rng: np.random.Generator,
    toward: np.ndarray | None = None,
) -> Scene:
    """The scene with one defect on its part (everything else unchanged).

    Args:
        scene: a good scene (:func:`~flawscope.data.synthetic.cad.scene.build_scene`).
        defect: one of :data:`DEFECT_TYPES`.
        rng: source of the defect's randomness (position, size, shape).
        toward: ``(3,)`` direction from the part to the cameras; the defect is put on a face
            turned that way (default: straight up).

    Returns:
        A new :class:`Scene`: a mesh defect replaces the part object (with faces flagged), a
        scratch is attached as ``scene.scratch``.

    Raises:
        ConfigError: unknown defect.
        DataError: the part has no place for the defect (no flat area turned towards the cameras).
    """
    check_defects([defect])
    part = scene.part_object
    size = scene.part.extent
    up = np.array([0.0, 0.0, 1.0]) if toward is None else np.asarray(toward, dtype=np.float64)
    up = up / np.linalg.norm(up)
    if defect == "scratch":
        return scene.with_part(part, _scratch(rng, part.vertices, part.faces, size, up))
    v, f, flags = _MESH_DEFECTS[defect](rng, part.vertices, part.faces, size, up)
    obj = SceneObject(part.name, "part", v, f, part.material, part.to_local, flags, part.crease_deg)
    return scene.with_part(obj)
