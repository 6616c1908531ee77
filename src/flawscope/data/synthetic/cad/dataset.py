"""Write CAD renders as an MVTec-style data set with foreground and defect masks.

Layout (the same as :func:`flawscope.data.synthetic.parts.write_parts_dataset`, so ``flawscope
fit``, ``evaluate``, ``tune`` and ``segment fit`` read it as it is)::

    root/train/good/000.png ...                      good renders to learn from
    root/test/good/000.png ...                       good renders to test
    root/test/<defect>/000.png ...                   defective renders
    root/ground_truth/<defect>/000_mask.png ...      defect masks: 0 = good, 255 = defect
    root/foreground/<split>/<class>/000.png ...      foreground masks: 255 = part
    root/synth.json                                  how every image was made (not an image)

Images are 8-bit grey PNGs, masks uint8 0/255 of the same size. Images come in stereo pairs:
image ``2k`` is the left and ``2k + 1`` the right camera of scene ``k`` (same part pose, light,
defect). Each scene has its own seed derived from ``(seed, split, class, k)``, so files are
byte-identical for the same arguments and an image does not change when other counts change.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flawscope.data.synthetic.cad.cameras import PATHS, orbit_arc, stereo_rig
from flawscope.data.synthetic.cad.defects import DEFECT_TYPES, apply_defect, check_defects
from flawscope.data.synthetic.cad.meshes import PARTS, Part, load_part, make_part
from flawscope.data.synthetic.cad.render import Renderer, View, make_renderer, render_view
from flawscope.data.synthetic.cad.scene import Scene, SceneSettings, build_scene
from flawscope.data.synthetic.drawing import write_png
from flawscope.errors import ConfigError

__all__ = [
    "FOREGROUND_DIR",
    "RigSettings",
    "render_pair",
    "resolve_part",
    "station_rig",
    "write_demo_renders",
    "write_renders",
]

log = logging.getLogger("flawscope")

FOREGROUND_DIR = "foreground"
_MIN_SIDE = 32
_RETRIES = 6  # defect placements tried before a defect is accepted as (nearly) invisible


@dataclass(frozen=True)
class RigSettings:
    """How the stereo rig sees the part (and what varies in the scene).

    Attributes:
        distance: camera distance from the part's centre, in part radii (range).
        fill: share of the image's half-side the part's bounding sphere spans (range).
        baseline: distance between the two cameras over the camera distance (0.4: ~5 cm for
            the 2 x 4 brick at ~12 cm, like the thesis' scanner model).
        paths: camera paths to draw from (keys of
            :data:`~flawscope.data.synthetic.cad.cameras.PATHS`).
        heading_deg: range of the path's heading (azimuth of its middle), degrees.
        path_t: range of the position along the path (0..1; a single value: a fixed camera).
        scene: what varies between scenes (clutter, or a fixed inspection station).
    """

    distance: tuple[float, float] = (5.5, 7.0)
    fill: tuple[float, float] = (0.55, 0.75)
    baseline: float = 0.4
    paths: tuple[str, ...] = ("sweep", "rise")
    heading_deg: tuple[float, float] = (-180.0, 180.0)
    path_t: tuple[float, float] = (0.0, 1.0)
    scene: SceneSettings = SceneSettings()


def station_rig(seed: int) -> RigSettings:
    """A fixed inspection station: one camera pose, holder, lamp and 3 fixtures for every image.

    The stereo rig stays at the middle of the ``top`` path (elevation 80 degrees, heading -90:
    the part's long side horizontal), 6 part radii away, the part filling 80 % of the image;
    :class:`SceneSettings` with ``station_seed = seed + 100`` fixes the background and light.
    Only the part's pose (placed by hand), texture, exposure flicker and noise vary: the setting
    in which an unsupervised detector is used.
    """
    return RigSettings(
        distance=(6.0, 6.0),
        fill=(0.8, 0.8),
        paths=("top",),
        heading_deg=(-90.0, -90.0),
        path_t=(0.5, 0.5),
        scene=SceneSettings(clutter=(3, 3), station_seed=seed + 100),
    )


def resolve_part(part: str | Path | Part, units: str = "mm", finish: str = "moulded") -> Part:
    """A :class:`Part` from a parametric name, a mesh file path or a :class:`Part`.

    A string that names a parametric part (:data:`PARTS`) builds it; anything else is a path,
    read with ``units`` and given the surface ``finish`` (``moulded`` or ``printed``).

    Raises:
        ConfigError: unknown part name (a string without a mesh suffix).
        DataError: a mesh file that is missing or unreadable.
    """
    if isinstance(part, Part):
        return part
    if isinstance(part, str) and part in PARTS:
        return make_part(part)
    path = Path(part)
    if path.suffix == "" and not path.exists():
        return make_part(str(part))  # raises ConfigError naming the parts
    return load_part(path, units, finish)


def _check_size(size: int | tuple[int, int]) -> tuple[int, int]:
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    ok = len(hw) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= _MIN_SIDE for v in hw
    )
    if not ok:
        raise ConfigError(
            f"image size {size!r} is not an integer or (height, width) of at least {_MIN_SIDE} px",
            "pass e.g. --size 512",
        )
    return int(hw[0]), int(hw[1])


def _check_count(name: str, value: object) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ConfigError(
            f"{name} must be a non-negative integer, got {value!r}",
            f"pass {name}=0 or a larger whole number",
        )
    return int(value)


def render_pair(
    part: Part,
    rng: np.random.Generator,
    size: tuple[int, int],
    renderer: Renderer,
    defect: str | None = None,
    supersample: int = 2,
    rig: RigSettings | None = None,
) -> tuple[list[View], dict[str, object]]:
    """One scene seen by the stereo rig: two views (left, right) and how they were made.

    Args:
        part: the part.
        rng: the scene's randomness (scene, rig position, defect).
        size: ``(H, W)`` px.
        renderer: the renderer.
        defect: None or one of :data:`DEFECT_TYPES`.
        supersample: G-buffer samples per pixel side.
        rig: camera settings.

    Returns:
        ``([left, right], info)`` with ``info`` the scene's parameters (JSON-able).
    """
    rig = rig or RigSettings()
    h, w = size
    scene = build_scene(part, rng, rig.scene)
    path = str(rng.choice(list(rig.paths)))
    (az0, az1), elevation = PATHS[path]
    heading = rng.uniform(*rig.heading_deg)
    t = float(rng.uniform(*rig.path_t))
    distance = rng.uniform(*rig.distance) * part.radius
    fill = rng.uniform(*rig.fill)
    centre = orbit_arc(t, scene.target, distance, (heading + az0, heading + az1), elevation)[0]
    focal = fill * min(h, w) / 2 * distance / part.radius
    cameras = stereo_rig(centre, scene.target, rig.baseline * distance, focal, w, h)
    defect_seed = int(rng.integers(0, 2**63 - 1))
    views: list[View] = []
    shown: Scene = scene
    for attempt in range(_RETRIES if defect else 1):
        if defect:
            drng = np.random.default_rng([defect_seed, attempt])
            shown = apply_defect(scene, defect, drng, centre - scene.target)
        clean = scene if defect and defect != "scratch" else None
        views = [
            render_view(shown, cam, renderer, supersample, clean, noise_seed=i)
            for i, cam in enumerate(cameras)
        ]
        if not defect or all(v.defect.any() for v in views):
            break
    else:
        log.warning("a %s defect stayed (nearly) invisible after %d placements", defect, _RETRIES)
    info = {
        "path": path,
        "path_t": round(t, 4),
        "heading_deg": round(float(heading), 2),
        "distance_mm": round(float(distance), 2),
        "baseline_mm": round(float(rig.baseline * distance), 2),
        "focal_px": round(float(focal), 2),
        "light_cone_deg": round(scene.light.cone_deg, 2),
        "brightness": round(scene.look.brightness, 3),
        "defect": defect,
    }
    return views, info


def write_renders(
    root: Path | str,
    part: str | Path | Part = "brick",
    *,
    n_train: int = 80,
    n_test_good: int = 20,
    n_test_defective: int | Mapping[str, int] = 30,
    defects: Sequence[str] = DEFECT_TYPES,
    size: int | tuple[int, int] = 512,
    seed: int = 0,
    renderer: str | Renderer = "light",
    supersample: int = 2,
    units: str = "mm",
    finish: str = "moulded",
    rig: RigSettings | None = None,
) -> Path:
    """Render a CAD part as an MVTec-style data set (see the module docstring for the layout).

    Args:
        root: output folder (created if missing; existing files are overwritten, files of an
            earlier, larger run are not removed).
        part: ``"brick"``, ``"box"``, a mesh file (STL, OBJ, PLY, OFF) or a :class:`Part`.
        n_train: good training images.
        n_test_good: good test images.
        n_test_defective: defective test images, spread over ``defects`` in turn (the first types
            get one more when it does not divide), or a ``{defect: count}`` mapping.
        defects: defect types to use (of :data:`DEFECT_TYPES`).
        size: image side, or ``(H, W)``, px (>= 32).
        seed: non-negative seed.
        renderer: ``"light"``, ``"blender"`` or a :class:`Renderer`.
        supersample: G-buffer samples per pixel side (anti-aliasing, mask coverage).
        units: length unit of a mesh file (``mm``, ``cm``, ``m``, ``in``).
        finish: surface of a mesh file's part: ``moulded`` or ``printed``.
        rig: camera settings and what varies between scenes.

    Returns:
        ``root`` as a Path.

    Raises:
        ConfigError: a bad count, seed, size, defect, part name or renderer (also ``blender``
            without ``bpy``).
        DataError: the mesh file is missing or unreadable, or a file cannot be written.
    """
    n_train = _check_count("n_train", n_train)
    n_test_good = _check_count("n_test_good", n_test_good)
    seed = _check_count("seed", seed)
    shape = _check_size(size)
    if _check_count("supersample", supersample) not in (1, 2, 3, 4):
        raise ConfigError(
            f"supersample must be 1 to 4, got {supersample}", "use 2 (the default) or 1 (faster)"
        )
    if isinstance(n_test_defective, Mapping):
        per_type = {check_defects([k])[0]: _check_count(k, v) for k, v in n_test_defective.items()}
    else:
        kinds = check_defects(list(defects))
        total = _check_count("n_test_defective", n_test_defective)
        per_type = {d: total // len(kinds) + (i < total % len(kinds)) for i, d in enumerate(kinds)}
    the_part = resolve_part(part, units, finish)
    engine = make_renderer(renderer) if isinstance(renderer, str) else renderer
    root = Path(root)
    jobs: list[tuple[str, str, str | None, int, int]] = [
        ("train", "good", None, 0, n_train),
        ("test", "good", None, 1, n_test_good),
    ]
    jobs += [("test", d, d, 2, n) for d, n in per_type.items()]
    records: list[dict[str, object]] = []
    started = time.perf_counter()
    for split, cls, defect, code, count in jobs:
        images = root / split / cls
        fg_dir = root / FOREGROUND_DIR / split / cls
        gt_dir = root / "ground_truth" / cls if defect else None
        for folder in (images, fg_dir, gt_dir):
            if folder is not None and count:
                folder.mkdir(parents=True, exist_ok=True)
        digits = max(3, len(str(max(count - 1, 0))))
        kind = DEFECT_TYPES.index(defect) + 1 if defect else 0
        for k in range((count + 1) // 2):
            sequence = np.random.SeedSequence(seed, spawn_key=(code, kind, k))
            views, info = render_pair(
                the_part, np.random.default_rng(sequence), shape, engine, defect, supersample, rig
            )
            for j, view in enumerate(views[: count - 2 * k]):
                stem = f"{2 * k + j:0{digits}d}"
                write_png(images / f"{stem}.png", np.round(view.image * 255).astype(np.uint8))
                write_png(fg_dir / f"{stem}.png", view.foreground.astype(np.uint8) * 255)
                if gt_dir is not None:
                    write_png(gt_dir / f"{stem}_mask.png", view.defect.astype(np.uint8) * 255)
                records.append(
                    {"file": f"{split}/{cls}/{stem}.png", "camera": view.camera.name, "scene": k}
                    | info
                )
    meta = {
        "generator": "flawscope.data.synthetic.cad.write_renders",
        "synthetic": True,
        "part": the_part.name,
        "part_extent_mm": round(the_part.extent, 3),
        "finish": the_part.finish,
        "renderer": engine.name,
        "size_hw": list(shape),
        "supersample": supersample,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "images": records,
    }
    (root / "synth.json").write_text(json.dumps(meta, indent=1) + "\n")
    return root


def write_demo_renders(
    root: Path | str,
    *,
    n_train: int = 200,
    n_test_good: int = 20,
    n_test_per_defect: int = 8,
    size: int = 256,
    seed: int = 0,
) -> Path:
    """Write light-renderer images of the 2 x 4 brick for the demo (MVTec layout, masks).

    The counterpart of :func:`flawscope.data.synthetic.write_dataset` for rendered parts:
    ``n_train`` good training images, ``n_test_good`` good test images and ``n_test_per_defect``
    images of each of :data:`DEFECT_TYPES`, ``size`` x ``size`` px, deterministic per ``seed``,
    all at one inspection station (:func:`station_rig`). About 0.5 s per 256 px image on one CPU
    core (a defective one about twice that: its mask needs the clean render too).

    Returns:
        ``root`` as a Path.

    Raises:
        ConfigError: a bad count, size or seed.
        DataError: a file cannot be written.
    """
    n = _check_count("n_test_per_defect", n_test_per_defect)
    return write_renders(
        root,
        "brick",
        n_train=n_train,
        n_test_good=n_test_good,
        n_test_defective={d: n for d in DEFECT_TYPES},
        size=size,
        seed=seed,
        renderer="light",
        rig=station_rig(seed),
    )
