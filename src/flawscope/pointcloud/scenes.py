"""Synthetic training scenes for teacher pretraining, and clouds of built-in parts.

Teacher pretraining needs no real data (Bergmann & Sattlegger, WACV 2023, Sec. 3: scenes of
randomly scaled, rotated and placed ModelNet10 objects, 64,000 points sampled from their
surfaces; seed 004: 500 scenes of 16,000 points). Meshes come from ModelNet10 ``.off`` files
when a folder of them is given, else from built-in parametric shapes (:data:`SHAPES`, made
with ``trimesh.creation``), so pretraining runs anywhere, offline.

Units: built-in shapes are about 1 scene unit across; scenes place objects with bounding-box
diagonals in ``[0.5, 1.5]`` inside a cube of side ``spread``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

from flawscope.errors import ConfigError, DataError
from flawscope.pointcloud.cloud import PointCloud

#: LEGO 2x4 brick in mm (Lego design guide: 8 mm stud pitch, 9.6 mm brick height, studs 4.8 mm
#: across and 1.7 mm high)
_BRICK = {"pitch": 8.0, "height": 9.6, "stud_radius": 2.4, "stud_height": 1.7}


def _brick(columns: int = 4, rows: int = 2) -> trimesh.Trimesh:
    """A LEGO-like brick: a box with ``columns x rows`` cylindrical studs on top, in mm."""
    p, h = _BRICK["pitch"], _BRICK["height"]
    body = trimesh.creation.box(extents=(columns * p, rows * p, h))
    studs = []
    for i in range(columns):
        for j in range(rows):
            x = (i - (columns - 1) / 2) * p
            y = (j - (rows - 1) / 2) * p
            z = h / 2 + _BRICK["stud_height"] / 2
            studs.append(
                trimesh.creation.cylinder(
                    _BRICK["stud_radius"],
                    _BRICK["stud_height"],
                    sections=32,
                    transform=trimesh.transformations.translation_matrix((x, y, z)),
                )
            )
    return trimesh.util.concatenate([body, *studs])


def _bracket() -> trimesh.Trimesh:
    """An L-shaped bracket of two plates."""
    base = trimesh.creation.box(extents=(1.0, 0.6, 0.12))
    wall = trimesh.creation.box(
        extents=(0.12, 0.6, 0.6),
        transform=trimesh.transformations.translation_matrix((-0.44, 0.0, 0.36)),
    )
    return trimesh.util.concatenate([base, wall])


SHAPES: dict[str, Callable[[], trimesh.Trimesh]] = {
    "box": lambda: trimesh.creation.box(extents=(1.0, 0.6, 0.4)),
    "cylinder": lambda: trimesh.creation.cylinder(0.35, 1.0, sections=48),
    "sphere": lambda: trimesh.creation.icosphere(subdivisions=3, radius=0.5),
    "torus": lambda: trimesh.creation.torus(0.5, 0.16),
    "cone": lambda: trimesh.creation.cone(0.45, 1.0, sections=48),
    "capsule": lambda: trimesh.creation.capsule(height=0.8, radius=0.25),
    "washer": lambda: trimesh.creation.annulus(0.2, 0.5, 0.15, sections=48),
    "bracket": _bracket,
    "brick": _brick,
}
"""Built-in parametric shapes by name (``brick`` in mm, the others about 1 unit across)."""


def shape_mesh(name: str) -> trimesh.Trimesh:
    """The built-in mesh ``name`` (see :data:`SHAPES`).

    Raises:
        ConfigError: unknown name (the message lists the known ones).
    """
    if name not in SHAPES:
        raise ConfigError(f"unknown shape {name!r}", f"choose one of: {', '.join(SHAPES)}")
    return _cached_shape(name).copy()


@cache
def _cached_shape(name: str) -> trimesh.Trimesh:
    return SHAPES[name]()


def load_off(path: Path | str) -> trimesh.Trimesh:
    """Read an OFF mesh (ModelNet10), including its ``OFF<nv> <nf> <ne>`` one-line headers.

    Polygons are triangulated as fans.

    Raises:
        DataError: missing file or malformed content.
    """
    path = Path(path)
    try:
        tokens = path.read_text().split()
        if not tokens or not tokens[0].upper().startswith("OFF"):
            raise ValueError("no OFF header")
        head = tokens[0][3:]
        rest = ([head] if head else []) + tokens[1:]
        nv, nf = int(rest[0]), int(rest[1])
        values = rest[3:]
        vertices = np.array(values[: 3 * nv], dtype=np.float64).reshape(nv, 3)
        pos, faces = 3 * nv, []
        for _ in range(nf):
            n = int(values[pos])
            idx = [int(v) for v in values[pos + 1 : pos + 1 + n]]
            faces += [(idx[0], idx[i], idx[i + 1]) for i in range(1, n - 1)]
            pos += 1 + n
    except (OSError, ValueError, IndexError) as exc:
        raise DataError(f"{path} is not a readable OFF mesh ({exc})", "check the file") from exc
    if not faces:
        raise DataError(f"{path} has no faces", "use a mesh with triangles or polygons")
    return trimesh.Trimesh(vertices, np.asarray(faces), process=False)


def modelnet_files(folder: Path | str, split: str = "train") -> list[Path]:
    """The ``.off`` files of a ModelNet10 folder (``<class>/<split>/*.off``), sorted.

    Files not under a ``train``/``test`` folder are all returned.

    Raises:
        DataError: the folder does not exist or holds no ``.off`` file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"ModelNet folder {folder} does not exist", "pass the ModelNet10 folder")
    files = sorted(folder.rglob("*.off"))
    in_split = [f for f in files if f.parent.name == split]
    files = in_split or files
    if not files:
        raise DataError(f"{folder} holds no .off meshes", "pass the unpacked ModelNet10 folder")
    return files


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random ``(3, 3)`` rotation matrix."""
    return Rotation.random(random_state=rng).as_matrix()


def sample_surface(mesh: trimesh.Trimesh, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_points, 3)`` float32 points uniform on the surface (area-weighted)."""
    pts, _ = trimesh.sample.sample_surface(mesh, n_points, seed=rng)
    return np.asarray(pts, dtype=np.float32)


def random_scene(
    meshes: Sequence[trimesh.Trimesh],
    n_points: int,
    rng: np.random.Generator,
    spread: float = 2.0,
) -> np.ndarray:
    """One pretraining scene: every mesh randomly scaled, rotated and placed; points sampled.

    Each mesh is centred, scaled to a bounding-box diagonal uniform in ``[0.5, 1.5]``, rotated
    uniformly at random and moved to a uniform position in a cube of side ``spread`` (objects
    may touch or overlap, as in the paper's scenes). ``n_points`` are sampled uniformly from
    the union of the surfaces.

    Returns:
        ``(n_points, 3)`` float32, scene units.
    """
    placed = []
    for mesh in meshes:
        m = mesh.copy()
        m.apply_translation(-m.bounds.mean(0))
        diagonal = float(np.linalg.norm(m.extents)) or 1.0
        transform = np.eye(4)
        transform[:3, :3] = random_rotation(rng) * (rng.uniform(0.5, 1.5) / diagonal)
        transform[:3, 3] = rng.uniform(-spread / 2, spread / 2, 3)
        m.apply_transform(transform)
        placed.append(m)
    return sample_surface(trimesh.util.concatenate(placed), n_points, rng)


def scene_clouds(
    count: int,
    n_points: int,
    n_objects: int = 10,
    seed: int = 0,
    modelnet: Path | str | None = None,
) -> list[PointCloud]:
    """``count`` pretraining scenes of ``n_objects`` meshes each (see :func:`random_scene`).

    Args:
        count: number of scenes, >= 1.
        n_points: points per scene (seed 004: 16,000; paper: 64,000).
        n_objects: meshes per scene, >= 1.
        seed: random seed; the same arguments give the same scenes.
        modelnet: ModelNet10 folder (its ``train`` meshes are used), or None for the built-in
            shapes.

    Raises:
        ConfigError: ``count``, ``n_points`` or ``n_objects`` < 1.
        DataError: the ModelNet folder is missing, empty or has unreadable meshes.
    """
    if min(count, n_points, n_objects) < 1:
        raise ConfigError(
            f"scenes need count, n_points, n_objects >= 1, got {count}, {n_points}, {n_objects}",
            "use e.g. 100 scenes of 16000 points with 10 objects",
        )
    rng = np.random.default_rng(seed)
    files = modelnet_files(modelnet) if modelnet is not None else None
    load = lru_cache(maxsize=256)(load_off)
    clouds = []
    for i in range(count):
        if files is not None:
            meshes = [load(files[j]) for j in rng.integers(0, len(files), n_objects)]
        else:
            names = list(SHAPES)
            meshes = [shape_mesh(names[j]) for j in rng.integers(0, len(names), n_objects)]
        points = random_scene(meshes, n_points, rng)
        clouds.append(PointCloud(points, meta={"name": f"scene_{i:04d}"}))
    return clouds


def part_cloud(
    shape: str,
    n_points: int,
    rng: np.random.Generator,
    tilt_deg: float = 5.0,
    noise: float = 0.0,
) -> PointCloud:
    """A defect-free instance of a built-in part in a random pose, as a sensor might see it.

    The part is rotated by a uniform yaw about z and tilted by up to ``tilt_deg`` degrees,
    then ``n_points`` points are sampled from its surface with Gaussian noise of standard
    deviation ``noise`` (units of the shape).

    Returns:
        A cloud named ``<shape>``, ``(n_points, 3)`` float32, centred on the origin.
    """
    mesh = shape_mesh(shape)
    mesh.apply_translation(-mesh.bounds.mean(0))
    axis = rng.normal(size=3)
    axis[2] = 0.0
    axis /= np.linalg.norm(axis) or 1.0
    tilt = Rotation.from_rotvec(axis * np.deg2rad(rng.uniform(0, tilt_deg)))
    yaw = Rotation.from_euler("z", rng.uniform(0, 360), degrees=True)
    transform = np.eye(4)
    transform[:3, :3] = (tilt * yaw).as_matrix()
    mesh.apply_transform(transform)
    points = sample_surface(mesh, n_points, rng)
    if noise > 0:
        points = points + rng.normal(0, noise, points.shape).astype(np.float32)
    return PointCloud(points, meta={"name": shape})
