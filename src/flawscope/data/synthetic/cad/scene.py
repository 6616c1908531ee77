"""The scene of one render: the part on its holder, clutter, a spotlight and the camera's look.

Seed 003 (section 3.5) rendered its CAD bricks on the scanner's brick holder under one spotlight
"that simulated the spotlight source from the real data"; its conclusion (5.2, 6.1) is that the
synthetic images were too clean: they lacked the real surface texture, the real range of
brightness and a varied background. :func:`build_scene` therefore randomises, per scene:

* the part's pose on the holder (rotation about z +-15 degrees, shift +-4 % of its size: placed
  by hand);
* the holder: a dark textured plate (albedo 0.015-0.07, fabric-like noise);
* 3-7 clutter objects beside the part (blocks, pins, cables, albedo 0.06-0.45, some glossy),
  never touching the part's footprint;
* the spotlight: position (elevation 45-80 degrees, 5-9 part radii away), aim (up to 0.6 part
  radii off the centre, so the cone's falloff can cross the part), cone half angle 14-28 degrees,
  blend 0.25-0.7 (Blender's ``spot_blend``), lamp radius (shadow softness);
* the part's material (grey ABS or PLA: albedo, Blinn-Phong highlight) and its texture seed;
* the look of the camera: brightness (exposure) 0.45-1.3, fill light, blur, noise, vignette.

:class:`SceneSettings` changes the number of clutter objects, or fixes everything but the part's
pose and texture, as at an inspection station. Lengths are in mm, angles in degrees, intensities
are relative (see :class:`Look`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from flawscope.data.synthetic.cad.meshes import Part, holder_plane, rounded_box, shading_normals

__all__ = [
    "Look",
    "Material",
    "Scene",
    "SceneObject",
    "SceneSettings",
    "Spotlight",
    "build_scene",
]

ROLES = ("part", "holder", "clutter")


@dataclass(frozen=True)
class Material:
    """A grey surface: Lambert diffuse + Blinn-Phong highlight + a procedural texture.

    Attributes:
        albedo: diffuse reflectance, 0..1.
        specular: weight of the highlight, 0..1 (energy-normalised Blinn-Phong lobe).
        shininess: Blinn-Phong exponent (larger = smaller, sharper highlight); Blender roughness
            ~ ``sqrt(2 / (shininess + 2))``.
        finish: texture: ``moulded`` (fine polymer grain), ``printed`` (FDM layer lines on the
            walls, raster lines on top), ``fabric`` (coarse weave-like noise) or ``plain``.
        bump: bump strength: the largest surface slope the texture adds (dimensionless).
        grain_mm: feature size of the noise texture, mm.
        mottle: relative albedo variation of the low-frequency texture, 0..1.
        layer_mm: printed: layer height and raster line width, mm.
        raster_deg: printed: direction of the top raster lines about z, degrees.
    """

    albedo: float
    specular: float
    shininess: float
    finish: str = "plain"
    bump: float = 0.0
    grain_mm: float = 0.2
    mottle: float = 0.05
    layer_mm: float = 0.2
    raster_deg: float = 45.0


@dataclass
class SceneObject:
    """One mesh in the scene.

    Attributes:
        name: label.
        role: ``part`` (the foreground), ``holder`` or ``clutter``.
        vertices: ``(V, 3)`` world positions, mm.
        faces: ``(F, 3)`` vertex indices.
        material: its surface.
        to_local: ``(4, 4)`` world -> object coordinates (the texture is fixed to the object).
        defect: ``(F,)`` bool, faces made or moved by a mesh defect (all False for a good part).
        crease_deg: smoothing angle of :func:`~flawscope.data.synthetic.cad.meshes.shading_normals`.
        defect_tint: albedo factor on the defect faces (a fracture's stress-whitened surface).
        defect_rough: extra bump strength on the defect faces, in multiples of the material's.
    """

    name: str
    role: str
    vertices: np.ndarray
    faces: np.ndarray
    material: Material
    to_local: np.ndarray = field(default_factory=lambda: np.eye(4))
    defect: np.ndarray | None = None
    crease_deg: float = 40.0
    defect_tint: float = 1.0
    defect_rough: float = 0.0

    def __post_init__(self) -> None:
        if self.defect is None:
            self.defect = np.zeros(len(self.faces), dtype=bool)


@dataclass(frozen=True)
class Spotlight:
    """A spotlight (Blender's spot lamp): position, aim, cone, blend and lamp size.

    Attributes:
        position: ``(3,)`` lamp position, mm.
        target: ``(3,)`` point on the cone's axis, mm.
        cone_deg: half angle of the cone, degrees (Blender ``spot_size / 2``).
        blend: share of the cone over which the light fades to zero at its edge, 0..1 (Blender
            ``spot_blend``).
        radius_mm: lamp radius, mm: the size of the shadows' penumbra.
    """

    position: np.ndarray
    target: np.ndarray
    cone_deg: float
    blend: float
    radius_mm: float

    @property
    def axis(self) -> np.ndarray:
        """Unit vector from the lamp along the cone's axis."""
        d = np.asarray(self.target, dtype=np.float64) - self.position
        return d / np.linalg.norm(d)

    def falloff(self, points: np.ndarray) -> np.ndarray:
        """Cone factor 0..1 of ``(N, 3)`` points: 1 inside the inner cone, smooth to 0 at the edge.

        With ``c = cos`` of the angle off the axis, ``c_out = cos(cone)`` and the inner half angle
        ``cone (1 - blend)``: ``smoothstep((c - c_out) / (c_in - c_out))``.
        """
        d = np.asarray(points) - self.position
        cos = np.einsum("nd,d->n", d, self.axis) / np.maximum(np.linalg.norm(d, axis=-1), 1e-9)
        outer = np.cos(np.radians(self.cone_deg))
        inner = np.cos(np.radians(self.cone_deg * (1.0 - self.blend)))
        x = np.clip((cos - outer) / max(inner - outer, 1e-9), 0.0, 1.0)
        return x * x * (3 - 2 * x)


@dataclass(frozen=True)
class Look:
    """Exposure and camera effects.

    Attributes:
        brightness: display-linear value of a white diffuse surface facing the lamp at the
            part's centre (values > 1 saturate); the exposure of the shot.
        ambient: fill light (a bright sky above a dark floor) relative to the lamp's irradiance
            at the part's centre.
        background: radiance beyond the holder (display-linear).
        blur_px: optical blur, Gaussian sigma in output pixels.
        noise: sensor noise, standard deviation at mid-grey (display units, 0..1).
        vignette: relative darkening at the image corners, 0..1.
        gamma: display gamma (2.2).
    """

    brightness: float = 0.9
    ambient: float = 0.08
    background: float = 0.01
    blur_px: float = 0.6
    noise: float = 0.012
    vignette: float = 0.2
    gamma: float = 2.2


@dataclass
class Scene:
    """Everything one render needs except the camera.

    Attributes:
        part: the part (its size sets the scale of the cameras and defects).
        objects: the meshes; exactly one has ``role == "part"``.
        light: the spotlight.
        look: exposure and camera effects.
        target: ``(3,)`` aim point of the cameras (the part's centre on the holder), mm.
        seed: seed of the textures and the sensor noise (shared by the defective variant).
        scratch: a scratch drawn in the render
            (:class:`~flawscope.data.synthetic.cad.defects.Scratch`) or None.
    """

    part: Part
    objects: list[SceneObject]
    light: Spotlight
    look: Look
    target: np.ndarray
    seed: int
    scratch: object | None = None

    @property
    def part_object(self) -> SceneObject:
        """The object with ``role == "part"``."""
        return next(o for o in self.objects if o.role == "part")

    def with_part(self, obj: SceneObject, scratch: object | None = None) -> Scene:
        """A copy with the part object replaced (and a scratch), everything else shared."""
        objects = [obj if o.role == "part" else o for o in self.objects]
        return replace(self, objects=objects, scratch=scratch)

    @cached_property
    def geometry(self) -> Geometry:
        """All objects in one mesh with split shading normals (computed once)."""
        return Geometry.of(self.objects)


@dataclass
class Geometry:
    """The scene's objects concatenated, with per-face object index and defect flags.

    Attributes:
        vertices: ``(N, 3)`` float64 world positions, mm (split at creases).
        normals: ``(N, 3)`` float64 unit shading normals.
        faces: ``(F, 3)`` int64.
        face_normals: ``(F, 3)`` float64 unit geometric normals (by winding).
        face_object: ``(F,)`` int64 index into the scene's objects.
        face_defect: ``(F,)`` bool.
    """

    vertices: np.ndarray
    normals: np.ndarray
    faces: np.ndarray
    face_normals: np.ndarray
    face_object: np.ndarray
    face_defect: np.ndarray

    @classmethod
    def of(cls, objects: list[SceneObject]) -> Geometry:
        verts, norms, faces, owner, defect = [], [], [], [], []
        n = 0
        for i, o in enumerate(objects):
            v, f, nn = shading_normals(o.vertices, o.faces, o.crease_deg)
            verts.append(v)
            norms.append(nn)
            faces.append(f + n)
            owner.append(np.full(len(f), i, dtype=np.int64))
            defect.append(np.asarray(o.defect, dtype=bool))
            n += len(v)
        v, f = np.concatenate(verts), np.concatenate(faces)
        fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        fn /= np.maximum(np.linalg.norm(fn, axis=1, keepdims=True), 1e-12)
        return cls(v, np.concatenate(norms), f, fn, np.concatenate(owner), np.concatenate(defect))


# --------------------------------------------------------------------------------------------
# building a random scene


def _rz(angle_rad: float) -> np.ndarray:
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _pose(rotation: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(object -> world 4x4, world -> object 4x4) of a rotation and a shift."""
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rotation, shift
    inv = np.eye(4)
    inv[:3, :3], inv[:3, 3] = rotation.T, -rotation.T @ shift
    return m, inv


def part_material(rng: np.random.Generator, finish: str) -> Material:
    """A random grey polymer: moulded ABS (glossy, fine grain) or printed PLA (layer lines)."""
    if finish == "printed":
        return Material(
            albedo=rng.uniform(0.4, 0.6),
            specular=rng.uniform(0.12, 0.3),
            shininess=rng.uniform(15, 40),
            finish="printed",
            bump=rng.uniform(0.35, 0.6),
            grain_mm=0.15,
            mottle=rng.uniform(0.02, 0.06),
            layer_mm=float(rng.choice([0.12, 0.16, 0.2, 0.28])),
            raster_deg=float(rng.choice([45.0, -45.0])) + rng.uniform(-3, 3),
        )
    return Material(
        albedo=rng.uniform(0.32, 0.52),
        specular=rng.uniform(0.3, 0.65),
        shininess=rng.uniform(35, 110),
        finish="moulded",
        bump=rng.uniform(0.015, 0.045),
        grain_mm=rng.uniform(0.08, 0.15),
        mottle=rng.uniform(0.03, 0.08),
    )


def _clutter(
    rng: np.random.Generator, part: Part, keep_out: float, count: tuple[int, int]
) -> list[SceneObject]:
    """``count`` (inclusive range) blocks, pins and cables beside the part, none within
    ``keep_out`` mm of the z axis."""
    import trimesh

    r = part.radius
    objects: list[SceneObject] = []
    placed: list[tuple[float, float, float]] = []
    for i in range(int(rng.integers(count[0], count[1] + 1))):
        kind = rng.choice(["block", "pin", "cable"], p=[0.45, 0.3, 0.25])
        if kind == "block":
            size = (
                rng.uniform(0.3, 1.1) * r,
                rng.uniform(0.2, 0.8) * r,
                rng.uniform(0.08, 0.5) * r,
            )
            v, f = rounded_box(size, min(size) * rng.uniform(0.03, 0.2), cells=2, arc=2)
            v = v + [0.0, 0.0, size[2] / 2]
            footprint = float(np.hypot(size[0], size[1]) / 2)
        else:
            radius = rng.uniform(0.04, 0.1) * r if kind == "pin" else rng.uniform(0.05, 0.12) * r
            length = rng.uniform(0.5, 1.2) * r if kind == "pin" else rng.uniform(2.0, 4.0) * r
            mesh = trimesh.creation.cylinder(radius=radius, height=length, sections=24)
            v = mesh.vertices @ np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
            v = v + [0.0, 0.0, radius]  # lying on the holder
            f = np.asarray(mesh.faces)
            footprint = length / 2
        for _ in range(20):  # find a free spot beside the part
            angle = rng.uniform(0, 2 * np.pi)
            dist = keep_out + footprint + rng.uniform(0.05, 1.2) * r
            x, y = dist * np.cos(angle), dist * np.sin(angle)
            if all(np.hypot(x - px, y - py) > footprint + pr for px, py, pr in placed):
                break
        placed.append((x, y, footprint))
        rot = _rz(rng.uniform(0, 2 * np.pi))
        to_world, to_local = _pose(rot, np.array([x, y, 0.0]))
        glossy = rng.random() < 0.4
        material = Material(
            albedo=rng.uniform(0.06, 0.45),
            specular=rng.uniform(0.3, 0.8) if glossy else rng.uniform(0.02, 0.15),
            shininess=rng.uniform(40, 150) if glossy else rng.uniform(5, 20),
            finish="plain",
            bump=0.02,
            grain_mm=0.3,
            mottle=rng.uniform(0.05, 0.2),
        )
        world = v @ rot.T + to_world[:3, 3]
        objects.append(SceneObject(f"{kind}{i}", "clutter", world, f, material, to_local))
    return objects


@dataclass(frozen=True)
class SceneSettings:
    """What varies between scenes.

    Attributes:
        clutter: inclusive range of the number of clutter objects.
        station_seed: None: every scene draws its own holder, clutter, lamp, exposure and part
            material (a scanner moved around parts on varied backgrounds, the default). An
            integer: those are drawn once from this seed, as at a fixed inspection station, and
            only the part's pose, texture, a +-5 % exposure flicker and the noise vary.
    """

    clutter: tuple[int, int] = (3, 7)
    station_seed: int | None = None


def build_scene(
    part: Part, rng: np.random.Generator, settings: SceneSettings | None = None
) -> Scene:
    """A random scene of ``part`` on its holder (see the module docstring for the ranges).

    Args:
        part: the part (mm, resting on z = 0).
        rng: the scene's randomness: the same state gives the same scene.
        settings: what varies between scenes (default :class:`SceneSettings`).

    Returns:
        The :class:`Scene` (a good part; see
        :func:`~flawscope.data.synthetic.cad.defects.apply_defect` for a defective one).
    """
    settings = settings or SceneSettings()
    station = settings.station_seed is not None
    srng = np.random.default_rng(settings.station_seed) if station else rng
    r = part.radius
    extent = part.extent
    rot = _rz(np.radians(rng.uniform(-15, 15)))
    shift = np.array([*rng.uniform(-0.04, 0.04, 2) * extent, 0.0])
    _, to_local = _pose(rot, shift)
    part_obj = SceneObject(
        part.name,
        "part",
        part.vertices @ rot.T + shift,
        part.faces,
        part_material(srng, part.finish),
        to_local,
    )
    hv, hf = holder_plane(14 * r, cells=28)
    holder = SceneObject(
        "holder",
        "holder",
        hv,
        hf,
        Material(
            albedo=srng.uniform(0.015, 0.07),
            specular=srng.uniform(0.02, 0.1),
            shininess=srng.uniform(4, 15),
            finish="fabric",
            bump=srng.uniform(0.08, 0.25),
            grain_mm=srng.uniform(0.3, 0.8),
            mottle=srng.uniform(0.15, 0.35),
        ),
        np.eye(4),
        crease_deg=10.0,
    )
    # keep clutter clear of the part wherever the pose puts it
    footprint = float(np.linalg.norm(part.vertices[:, :2], axis=1).max()) + 0.06 * extent
    clutter = _clutter(srng, part, footprint + 0.1 * r, settings.clutter)
    target = np.array([shift[0], shift[1], part.height / 2])
    centre = np.array([0.0, 0.0, part.height / 2]) if station else target
    az, el = srng.uniform(0, 2 * np.pi), np.radians(srng.uniform(45, 80))
    dist = srng.uniform(5, 9) * r
    position = centre + dist * np.array(
        [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)]
    )
    aim = centre + np.array([*srng.uniform(-0.6, 0.6, 2) * r, 0.0])
    light = Spotlight(
        position,
        aim,
        srng.uniform(14, 28),
        srng.uniform(0.25, 0.7),
        srng.uniform(0.02, 0.06) * dist,
    )
    look = Look(
        brightness=srng.uniform(0.45, 1.3) * (rng.uniform(0.95, 1.05) if station else 1.0),
        ambient=srng.uniform(0.03, 0.12),
        background=srng.uniform(0.0, 0.02),
        blur_px=srng.uniform(0.4, 0.9),
        noise=srng.uniform(0.006, 0.02),
        vignette=srng.uniform(0.1, 0.35),
    )
    return Scene(
        part,
        [part_obj, holder, *clutter],
        light,
        look,
        target,
        int(rng.integers(0, 2**31 - 1)),
    )
