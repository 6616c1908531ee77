"""Part meshes for the CAD renders: load a CAD file or build a parametric part; the holder plane.

Units are millimetres throughout. A part rests on the holder plane ``z = 0`` (its lowest point at
``z = 0``) and is centred on the z axis (its bounding box centre at ``x = y = 0``).

Parametric parts (:data:`PARTS`):

* ``brick``: a LEGO-like 2 x 4 brick, the part of seed 003 (thesis on LEGO brick inspection): a
  31.8 x 15.8 x 9.6 mm body with 0.25 mm rounded edges and eight studs of 4.8 mm diameter and
  1.7 mm height on an 8 mm pitch (the public LEGO dimensions), each with a 0.25 mm fillet on its
  top rim. Injection-moulded ABS: ``finish = "moulded"``.
* ``box``: a plain FDM-printed box, 40 x 30 x 20 mm with 0.6 mm rounded edges:
  ``finish = "printed"`` (layer lines on the walls, a raster on the top).

Each mesh is a set of closed, consistently wound components (the studs are separate closed
solids sunk 0.4 mm into the body, so no boolean union is needed): ``trimesh`` reports them
watertight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flawscope.errors import ConfigError, DataError

__all__ = [
    "MESH_SUFFIXES",
    "PARTS",
    "Part",
    "box_part",
    "brick_part",
    "holder_plane",
    "load_part",
    "make_part",
    "rounded_box",
    "shading_normals",
]

PARTS: tuple[str, ...] = ("brick", "box")
#: file types trimesh reads that :func:`load_part` accepts
MESH_SUFFIXES: tuple[str, ...] = (".stl", ".obj", ".ply", ".off")
#: millimetres per unit of a mesh file
UNITS: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "in": 25.4}
FINISHES: tuple[str, ...] = ("moulded", "printed")


@dataclass
class Part:
    """A part to render: its mesh (mm, resting on ``z = 0``, centred on the z axis) and finish.

    Attributes:
        name: ``brick``, ``box`` or the mesh file's stem.
        vertices: ``(V, 3)`` float64 vertex positions, mm.
        faces: ``(F, 3)`` int64 vertex indices, counter-clockwise seen from outside.
        finish: ``"moulded"`` (fine polymer grain) or ``"printed"`` (FDM layer lines).
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    finish: str = "moulded"

    @property
    def extent(self) -> float:
        """Largest side of the bounding box, mm."""
        return float(np.ptp(self.vertices, axis=0).max())

    @property
    def height(self) -> float:
        """Height above the holder, mm."""
        return float(self.vertices[:, 2].max())

    @property
    def centre(self) -> np.ndarray:
        """Centre of the bounding box, ``(3,)`` mm (x = y = 0)."""
        return (self.vertices.min(axis=0) + self.vertices.max(axis=0)) / 2

    @property
    def radius(self) -> float:
        """Radius of the bounding sphere about :attr:`centre`, mm."""
        return float(np.linalg.norm(self.vertices - self.centre, axis=1).max())


# --------------------------------------------------------------------------------------------
# primitives


def _grid_faces(na: int, nb: int, offset: int) -> np.ndarray:
    """Triangles of an ``na x nb`` vertex grid (row-major, a fastest), counter-clockwise."""
    a, b = np.meshgrid(np.arange(na - 1), np.arange(nb - 1), indexing="xy")
    v00 = (b * na + a).ravel() + offset
    v10, v01 = v00 + 1, v00 + na
    v11 = v01 + 1
    return np.concatenate([np.stack([v00, v10, v11], 1), np.stack([v00, v11, v01], 1)]).astype(
        np.int64
    )


def rounded_box(
    extents: tuple[float, float, float], radius: float, cells: int = 12, arc: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """A closed box with rounded edges and corners, centred at the origin.

    Each side is a grid of ``cells`` interior cells plus ``arc`` cells on each rounded band
    (spaced by equal angles), mapped onto the rounded surface, so the flat faces are finely
    enough tessellated for local defects and the edges catch highlights like a real part.

    Args:
        extents: ``(x, y, z)`` side lengths, mm (> 0).
        radius: edge radius, mm, ``0 < radius < min(extents) / 2``.
        cells: grid cells across the flat part of each side (>= 1).
        arc: cells across each quarter-round edge (>= 1).

    Returns:
        ``(vertices (V, 3) float64 mm, faces (F, 3) int64)``, watertight, outward winding.
    """
    half = np.asarray(extents, dtype=np.float64) / 2
    inner = half - radius
    bands = radius * np.tan(np.linspace(0.0, np.pi / 4, arc + 1))[1:]
    axes = [
        np.concatenate([-(i + bands[::-1]), np.linspace(-i, i, cells + 1), i + bands])
        for i in inner
    ]
    verts, faces = [], []
    n = 0
    for k in range(3):
        i, j = (k + 1) % 3, (k + 2) % 3  # e_i x e_j = e_k
        for sign in (1.0, -1.0):
            ua, ub = (axes[i], axes[j]) if sign > 0 else (axes[j], axes[i])
            ia, ib = (i, j) if sign > 0 else (j, i)
            ga, gb = np.meshgrid(ua, ub, indexing="xy")
            p = np.zeros((ga.size, 3))
            p[:, ia], p[:, ib] = ga.ravel(), gb.ravel()
            p[:, k] = sign * half[k]
            verts.append(p)
            faces.append(_grid_faces(len(ua), len(ub), n))
            n += len(p)
    v = np.concatenate(verts)
    q = np.clip(v, -inner, inner)
    d = v - q
    v = q + radius * d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    return _merge(v, np.concatenate(faces))


def _merge(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices closer than 1e-6 mm and drop faces that collapse."""
    key = np.round(vertices / 1e-6).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    faces = inverse[faces]
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    return vertices[first], faces[ok]


def _lathe(profile: np.ndarray, sections: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed surface of revolution about z of a profile ``(n, 2)`` of ``(r, z)`` from axis to axis.

    The profile runs from a point on the axis (r = 0, bottom) outwards and up to a point on the
    axis (top), so the solid is closed; faces wind outwards.
    """
    theta = np.linspace(0.0, 2 * np.pi, sections, endpoint=False)
    r, z = profile[:, 0], profile[:, 1]
    x = r[:, None] * np.cos(theta)[None]
    y = r[:, None] * np.sin(theta)[None]
    v = np.stack([x, y, np.broadcast_to(z[:, None], x.shape)], -1).reshape(-1, 3)
    rows, s = len(profile), sections
    i, j = np.meshgrid(np.arange(rows - 1), np.arange(s), indexing="ij")
    a = i * s + j
    b = i * s + (j + 1) % s
    c, d = a + s, b + s
    faces = np.concatenate([np.stack([a, b, d], -1), np.stack([a, d, c], -1)]).reshape(-1, 3)
    return _merge(v, faces)


def _stud(
    x: float, y: float, base: float, top: float, radius: float, fillet: float
) -> tuple[np.ndarray, np.ndarray]:
    """One stud: a cylinder from ``base`` to ``top`` (mm) with a rounded top rim."""
    angles = np.linspace(0.0, np.pi / 2, 5)
    rim = np.stack(
        [radius - fillet + fillet * np.cos(angles), top - fillet + fillet * np.sin(angles)], 1
    )
    profile = np.concatenate([[[0.0, base], [radius, base]], rim, [[0.0, top]]])
    v, f = _lathe(profile, 48)
    return v + [x, y, 0.0], f


def _combine(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    verts, faces, n = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + n)
        n += len(v)
    return np.concatenate(verts), np.concatenate(faces)


# --------------------------------------------------------------------------------------------
# parts


def brick_part(studs: tuple[int, int] = (4, 2)) -> Part:
    """A LEGO-like brick (seed 003's part): 8 mm pitch, body 9.6 mm high, studs 4.8 x 1.7 mm.

    Args:
        studs: studs along x and y (the 2 x 4 brick: ``(4, 2)``), each >= 1.
    """
    nx, ny = studs
    pitch, body_h = 8.0, 9.6
    size = (nx * pitch - 0.2, ny * pitch - 0.2, body_h)
    body_v, body_f = rounded_box(size, 0.25, cells=max(12, 4 * nx), arc=3)
    body_v = body_v + [0.0, 0.0, body_h / 2]
    items = [(body_v, body_f)]
    for i in range(nx):
        for j in range(ny):
            x = (i + 0.5) * pitch - nx * pitch / 2
            y = (j + 0.5) * pitch - ny * pitch / 2
            items.append(_stud(x, y, body_h - 0.4, body_h + 1.7, 2.4, 0.25))
    v, f = _combine(items)
    return Part(f"brick_{nx}x{ny}" if (nx, ny) != (4, 2) else "brick", v, f, "moulded")


def box_part(size: tuple[float, float, float] = (40.0, 30.0, 20.0)) -> Part:
    """A plain FDM-printed box of ``size`` mm (x, y, z) with 0.6 mm rounded edges."""
    v, f = rounded_box(size, 0.6, cells=16, arc=3)
    return Part("box", v + [0.0, 0.0, size[2] / 2], f, "printed")


def make_part(name: str) -> Part:
    """The parametric part ``name`` (one of :data:`PARTS`).

    Raises:
        ConfigError: unknown name.
    """
    builders = {"brick": brick_part, "box": box_part}
    if name not in builders:
        raise ConfigError(
            f"unknown part {name!r}", f"use one of: {', '.join(PARTS)}, or --mesh FILE.stl"
        )
    return builders[name]()


def load_part(path: Path | str, units: str = "mm", finish: str = "moulded") -> Part:
    """Read a CAD mesh (STL, OBJ, PLY or OFF via ``trimesh``) and rest it on the holder.

    The mesh keeps its orientation (z up); it is moved so its lowest point is at ``z = 0`` and its
    bounding box is centred on the z axis, and scaled to millimetres by ``units``. Several bodies
    in one file are concatenated.

    Args:
        path: mesh file.
        units: the file's length unit: ``mm``, ``cm``, ``m`` or ``in``.
        finish: surface texture: ``moulded`` or ``printed``.

    Raises:
        DataError: the file is missing, not a supported type, unreadable, or has no triangles.
        ConfigError: unknown ``units`` or ``finish``.
    """
    import trimesh

    path = Path(path)
    if units not in UNITS:
        raise ConfigError(f"unknown mesh units {units!r}", f"use one of: {', '.join(UNITS)}")
    if finish not in FINISHES:
        raise ConfigError(f"unknown finish {finish!r}", f"use one of: {', '.join(FINISHES)}")
    if not path.is_file():
        state = "is a folder" if path.is_dir() else "does not exist"
        raise DataError(f"mesh file {path} {state}", "pass an existing STL, OBJ, PLY or OFF file")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise DataError(
            f"mesh file {path.name} has an unsupported type {path.suffix or '(none)'}",
            "export the CAD model as STL, OBJ, PLY or OFF",
        )
    try:
        mesh = trimesh.load(path, force="mesh", process=True)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise DataError(
            f"cannot read mesh file {path.name}: {str(exc).splitlines()[0] if str(exc) else exc!r}",
            "export it again from the CAD tool as binary STL",
        ) from exc
    faces = np.asarray(getattr(mesh, "faces", np.zeros((0, 3))), dtype=np.int64)
    verts = np.asarray(getattr(mesh, "vertices", np.zeros((0, 3))), dtype=np.float64)
    if len(faces) == 0 or not np.all(np.isfinite(verts)):
        raise DataError(
            f"mesh file {path.name} holds no triangles (or non-finite coordinates)",
            "export the part's surface as a triangle mesh (STL, OBJ, PLY or OFF)",
        )
    verts = verts * UNITS[units]
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    verts = verts - [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]]
    if float(np.ptp(verts, axis=0).max()) <= 0:
        raise DataError(f"mesh file {path.name} has zero size", "check the file's content")
    return Part(path.stem, verts, faces, finish)


def holder_plane(half_size: float, cells: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """The holder: a square plane at ``z = 0``, ``2 half_size`` mm wide, facing up (+z).

    Tessellated into ``cells x cells`` quads so no triangle reaches far behind a camera above it
    (the rasteriser drops triangles with a vertex behind the camera instead of clipping them).
    """
    u = np.linspace(-half_size, half_size, cells + 1)
    gx, gy = np.meshgrid(u, u, indexing="xy")
    v = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    return v, _grid_faces(cells + 1, cells + 1, 0)


# --------------------------------------------------------------------------------------------
# normals


def shading_normals(
    vertices: np.ndarray, faces: np.ndarray, crease_deg: float = 40.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smooth vertex normals with sharp creases: vertices are split between smoothing groups.

    Faces are grouped into smoothing groups (connected components of the face graph over edges
    whose dihedral angle is below ``crease_deg``, like Blender's auto smooth); a vertex shared by
    several groups is duplicated, one copy per group, and each copy's normal is the
    corner-angle-weighted mean of its group's face normals there. Face order is kept.

    Args:
        vertices: ``(V, 3)`` positions, mm.
        faces: ``(F, 3)`` vertex indices.
        crease_deg: dihedral angle (degrees) from which an edge is sharp.

    Returns:
        ``(vertices (V', 3), faces (F, 3), normals (V', 3) unit float64)``.
    """
    import trimesh
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    mesh = trimesh.Trimesh(vertices, faces, process=False, validate=False)
    n_faces = len(faces)
    adjacency = mesh.face_adjacency
    smooth = adjacency[mesh.face_adjacency_angles < np.radians(crease_deg)]
    graph = coo_matrix(
        (np.ones(len(smooth)), (smooth[:, 0], smooth[:, 1])), shape=(n_faces, n_faces)
    )
    n_groups, group = connected_components(graph, directed=False)
    key = faces.ravel().astype(np.int64) * n_groups + np.repeat(group, 3)
    unique, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.ravel()
    weights = np.nan_to_num(mesh.face_angles).ravel()[:, None]
    normals = np.zeros((len(unique), 3))
    np.add.at(normals, inverse, np.repeat(mesh.face_normals, 3, axis=0) * weights)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.where(length > 1e-12, normals / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])
    return vertices[unique // n_groups], inverse.reshape(-1, 3), normals
