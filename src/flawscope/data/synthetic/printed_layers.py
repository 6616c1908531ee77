"""Procedural top-down images of FDM 3D-printed layers, with injected defects and their masks.

This is a stand-in for the camera photos of printed layers in seed 000 (a camera above the build
plate photographs every layer; a convolutional autoencoder learns what good layers look like).
Those photos are not public, so the embedded demo, the tests and early benchmarks use these
deterministic renders instead. Only NumPy and OpenCV are used.

A render shows, seen from above:

* the build plate: dark, with a fine speckle texture and a soft shadow around the part;
* one printed part (rectangle, rounded rectangle, circle or L-shape; position, size and
  rotation jittered a little) made of 2-3 perimeter lines along its outline and parallel infill
  lines at +45 or -45 degrees; every extrusion line has a rounded cross-section (bright centre,
  dark edges) and the lower layer, at right angles, shows through the narrow gaps;
* lighting (a smooth gradient and a vignette, brightness and contrast jitter), a slight blur and
  Gaussian sensor noise.

Defects (:data:`DEFECT_TYPES`) are drawn on the part and cover roughly 0.5-5 % of the image:

* ``under_extrusion``: thinned and broken segments in a few adjacent infill lines;
* ``blob``: a bright, irregular dome of excess material with a shadowed rim;
* ``stringing``: thin, wispy, curved strands of filament across part of the part;
* ``scratch``: a thin straight dark (gouged) or bright (scraped) line across the infill lines;
* ``missing_infill``: an irregular region where the top infill is absent and the lower layer
  shows through.

A defective render shares every random choice with the good render from the same generator
state (the defect draws from its own stream), so ``image - good_image`` is exactly the defect.
All lengths are in pixels and scale with the image size (they are designed at 256 x 256).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flawscope.data.synthetic.drawing import blend, box_sdf, pick_point, write_png
from flawscope.errors import ConfigError

DEFECT_TYPES: tuple[str, ...] = (
    "under_extrusion",
    "blob",
    "stringing",
    "scratch",
    "missing_infill",
)

_REF_SIZE = 256  # every length below is in pixels at this image size and scales with it
_MIN_SIZE = 32
_SHAPES = ("rectangle", "rounded_rect", "circle", "l_shape")
_CHANGE_THRESHOLD = 0.02  # a pixel counts as changed by a defect above this intensity difference
_F32 = np.float32


@dataclass
class _Scene:
    """Everything a defect needs to know about one good layer, before lighting and noise."""

    size: int
    scale: float  # size / 256
    xx: np.ndarray  # (size, size) float32 pixel x coordinates
    yy: np.ndarray  # (size, size) float32 pixel y coordinates
    depth: np.ndarray  # signed distance into the part in px (> 0 inside)
    infill_zone: np.ndarray  # bool, where infill (not perimeter, not bed) is drawn
    along: np.ndarray  # coordinate along the infill lines, px
    across: np.ndarray  # coordinate across the infill lines (with wobble), px
    line_index: np.ndarray  # int, which infill line each pixel belongs to
    line_offset: int  # index of line -line_offset in the per-line tables is 0
    line_gain: np.ndarray  # per-line brightness factor
    line_width: np.ndarray  # per-line bead width as a fraction of the pitch
    infill_angle: float  # radians, direction of the infill lines
    pitch: float  # infill line spacing, px
    filament: float  # brightness of the top of a bead
    groove: float  # relative brightness at the edge of a bead
    asym: float  # side lighting of the bead flanks
    lower: np.ndarray  # the lower layer (infill at right angles), what shows through gaps
    clean: np.ndarray  # the good layer before lighting, blur and noise
    light: np.ndarray  # multiplicative lighting field
    contrast: float
    offset: float
    blur_sigma: float
    noise: np.ndarray  # additive sensor noise


# --------------------------------------------------------------------------------------------
# geometry


def _polygon_sdf(px: np.ndarray, py: np.ndarray, verts: np.ndarray) -> np.ndarray:
    """Signed distance (px, negative inside) to a simple polygon given as (n, 2) vertices."""
    dist2 = (px - verts[0, 0]) ** 2 + (py - verts[0, 1]) ** 2
    sign = np.ones_like(px)
    for i in range(len(verts)):
        vx, vy = verts[i]
        ex, ey = verts[i - 1, 0] - vx, verts[i - 1, 1] - vy
        wx, wy = px - vx, py - vy
        h = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0, 1)
        dist2 = np.minimum(dist2, (wx - ex * h) ** 2 + (wy - ey * h) ** 2)
        c1, c2, c3 = py >= vy, py < verts[i - 1, 1], ex * wy > ey * wx
        sign = np.where((c1 & c2 & c3) | (~c1 & ~c2 & ~c3), -sign, sign)
    return sign * np.sqrt(dist2)


def _part_sdf(rng: np.random.Generator, px: np.ndarray, py: np.ndarray, size: int) -> np.ndarray:
    """Signed distance to a randomly chosen, jittered part outline in part coordinates."""
    shape = _SHAPES[rng.integers(len(_SHAPES))]
    hx, hy = rng.uniform(0.28, 0.36, size=2) * size
    if shape == "rectangle":
        return box_sdf(px, py, hx, hy, 0.0)
    if shape == "rounded_rect":
        return box_sdf(px, py, hx, hy, rng.uniform(0.12, 0.3) * min(hx, hy))
    if shape == "circle":
        return np.hypot(px, py) - rng.uniform(0.3, 0.36) * size
    nx, ny = rng.uniform(0.8, 1.1, size=2) * np.array([hx, hy])  # size of the cut-out corner
    verts = np.array(
        [(-hx, -hy), (hx, -hy), (hx, hy - ny), (hx - nx, hy - ny), (hx - nx, hy), (-hx, hy)]
    )
    flip = rng.choice([-1.0, 1.0], size=2)  # which corner is cut out
    return _polygon_sdf(px * flip[0], py * flip[1], verts)


def _rotate(dx: np.ndarray, dy: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (along, across) of offsets (dx, dy) in a frame rotated by ``angle`` rad."""
    c, s = np.cos(angle), np.sin(angle)
    return (c * dx + s * dy).astype(_F32), (-s * dx + c * dy).astype(_F32)


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian noise blurred by ``sigma`` px and rescaled to unit standard deviation."""
    field = rng.standard_normal((size, size), dtype=_F32)
    if sigma > 0.3:
        field = cv2.GaussianBlur(field, (0, 0), sigma)
    return field / max(float(field.std()), 1e-6)


# --------------------------------------------------------------------------------------------
# extrusion lines


def _beads(
    coord: np.ndarray,
    pitch: float,
    width: np.ndarray | float,
    base: np.ndarray | float,
    under: np.ndarray | float,
    groove: float,
    asym: float,
) -> np.ndarray:
    """Brightness of parallel extrusion lines with a rounded cross-section.

    ``coord`` is the pixel position across the lines (px), ``width`` the bead width as a
    fraction of ``pitch``, ``base`` the brightness of a bead's crest, ``under`` what shows between
    beads; ``groove`` is the relative brightness at a bead's edge, ``asym`` side lighting.
    """
    half = 0.5 * np.maximum(width, 1e-3)
    u = ((coord / pitch) % 1.0 - 0.5) / half  # -1 .. 1 across a bead
    height = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    shade = base * (groove + (1.0 - groove) * height**0.6 + asym * u * height)
    coverage = np.clip((1.0 - np.abs(u)) * half * pitch + 0.5, 0.0, 1.0)  # anti-aliased edge
    return (coverage * shade + (1.0 - coverage) * under).astype(_F32)


def _infill(scene: _Scene, width_factor: np.ndarray | float = 1.0) -> np.ndarray:
    """The top infill layer, optionally with bead widths scaled per pixel (under-extrusion)."""
    idx = scene.line_index + scene.line_offset
    width = scene.line_width[idx] * width_factor
    # a thinner bead is also lower, hence a little darker
    base = scene.filament * scene.line_gain[idx] * (0.75 + 0.25 * np.minimum(width_factor, 1.0))
    return _beads(
        scene.across, scene.pitch, width, base, 0.7 * scene.lower, scene.groove, scene.asym
    )


# --------------------------------------------------------------------------------------------
# the good layer


def _build_scene(rng: np.random.Generator, size: int) -> _Scene:
    """Draw every random choice of a good layer and render it before lighting and noise."""
    k = size / _REF_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(_F32) + 0.5
    cx, cy = (0.5 + rng.uniform(-0.05, 0.05, size=2)) * size
    rotation = np.deg2rad(rng.uniform(-4.0, 4.0))
    dx, dy = xx - cx, yy - cy
    px, py = _rotate(dx, dy, rotation)
    depth = -_part_sdf(rng, px, py, size).astype(_F32)

    filament = rng.uniform(0.6, 0.75)
    groove = rng.uniform(0.35, 0.5)
    asym = rng.uniform(-0.15, 0.15)
    pitch = rng.uniform(5.0, 5.8) * k
    n_perimeters = int(rng.integers(2, 4))
    perimeter_pitch = pitch * rng.uniform(0.95, 1.05)

    # infill lines at +-45 degrees (alternating layers), rotated with the part, slight wobble
    infill_angle = rotation + np.deg2rad(rng.choice([45.0, -45.0]))
    along, across = _rotate(dx, dy, infill_angle)
    wobble = rng.uniform(0.1, 0.35) * k
    wavelength = rng.uniform(30.0, 80.0) * k
    across = (
        across
        + rng.uniform(0, pitch)
        + wobble * np.sin(along * (2 * np.pi / wavelength) + rng.uniform(0, 2 * np.pi)).astype(_F32)
    )
    line_index = np.floor(across / pitch).astype(np.int64)
    line_offset = int(np.ceil(size / pitch)) + 2
    n_lines = 2 * line_offset + 1
    line_gain = 1.0 + rng.normal(0, 0.03, n_lines)
    line_width = rng.uniform(0.86, 0.94) * (1.0 + rng.normal(0, 0.02, n_lines))

    lower = _beads(along, pitch, 0.9, 0.8 * filament, 0.3 * filament, groove, -asym)
    bed = rng.uniform(0.12, 0.22) * (1.0 + 0.25 * _smooth_noise(rng, size, 0.8 * k))
    bed *= 1.0 - 0.35 * np.exp(np.minimum(depth, 0) / (4.0 * k))  # shadow around the part
    grain = 1.0 + 0.03 * _smooth_noise(rng, size, 0.7 * k)

    scene = _Scene(
        size=size,
        scale=k,
        xx=xx,
        yy=yy,
        depth=depth,
        infill_zone=depth >= n_perimeters * perimeter_pitch,
        along=along,
        across=across,
        line_index=line_index,
        line_offset=line_offset,
        line_gain=line_gain.astype(_F32),
        line_width=line_width.astype(_F32),
        infill_angle=float(infill_angle),
        pitch=float(pitch),
        filament=float(filament),
        groove=float(groove),
        asym=float(asym),
        lower=lower,
        clean=np.empty(0, _F32),
        light=_lighting(rng, xx / size * 2 - 1, yy / size * 2 - 1),
        contrast=float(rng.uniform(0.9, 1.1)),
        offset=float(rng.uniform(-0.04, 0.04)),
        blur_sigma=float(rng.uniform(0.5, 0.9) * k),
        noise=rng.standard_normal((size, size), dtype=_F32) * _F32(rng.uniform(0.008, 0.02)),
    )
    perimeter = _beads(depth, perimeter_pitch, 0.92, filament * 1.02, 0.3 * filament, groove, asym)
    part = np.where(scene.infill_zone, _infill(scene), perimeter) * grain
    scene.clean = np.where(depth > 0, part, bed).astype(_F32)
    return scene


def _lighting(rng: np.random.Generator, xn: np.ndarray, yn: np.ndarray) -> np.ndarray:
    """Multiplicative lighting: a smooth linear gradient times a vignette (xn, yn in -1..1)."""
    gx, gy = rng.uniform(-0.12, 0.12, size=2)
    vignette = rng.uniform(0.05, 0.2)
    return ((1.0 + gx * xn + gy * yn) * (1.0 - vignette * (xn * xn + yn * yn))).astype(_F32)


def _finish(scene: _Scene, clean: np.ndarray) -> np.ndarray:
    """Apply the scene's lighting, contrast, blur and sensor noise; clip to [0, 1]."""
    image = (clean * scene.light - 0.5) * scene.contrast + 0.5 + scene.offset
    if scene.blur_sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), scene.blur_sigma)
    return np.clip(image + scene.noise, 0.0, 1.0).astype(_F32)


# --------------------------------------------------------------------------------------------
# defect helpers


def _depth_at(scene: _Scene, x: float, y: float) -> float:
    """Depth into the part (px) at the nearest pixel; -1 outside the image."""
    ix, iy = int(np.floor(x)), int(np.floor(y))
    if 0 <= ix < scene.size and 0 <= iy < scene.size:
        return float(scene.depth[iy, ix])
    return -1.0


def _segment_on_part(
    scene: _Scene, x: float, y: float, angle: float, length: float
) -> tuple[np.ndarray, np.ndarray]:
    """End points of a segment centred at (x, y), shortened until both ends lie on the part."""
    direction = np.array([np.cos(angle), np.sin(angle)])
    centre = np.array([x, y])
    for _ in range(12):
        a, b = centre - 0.5 * length * direction, centre + 0.5 * length * direction
        if min(_depth_at(scene, *a), _depth_at(scene, *b)) > 2.0 * scene.scale:
            break
        length *= 0.85
    return a, b


def _irregular_disc(
    rng: np.random.Generator, scene: _Scene, x: float, y: float, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """An irregular blob-like region around (x, y) with mean ``radius`` px.

    Returns ``(rel, edge)``: the distance to (x, y) relative to the local radius (< 1 inside),
    and the approximate distance to the outline in px (> 0 inside).
    """
    dx, dy = scene.xx - x, scene.yy - y
    theta = np.arctan2(dy, dx)
    wobble = np.zeros_like(theta)
    for lobe in range(2, 6):
        wobble += rng.uniform(0.0, 0.22 / lobe**0.5) * np.cos(lobe * theta + rng.uniform(0, 7))
    local = (radius * (1.0 + wobble)).astype(_F32)
    rho = np.hypot(dx, dy)
    return rho / local, local - rho


def _stroke_alpha(scene: _Scene, polylines: list[np.ndarray], thickness: int) -> np.ndarray:
    """Anti-aliased coverage (0..1, float32) of polylines given as (n, 2) arrays of (x, y) px."""
    canvas = np.zeros((scene.size, scene.size), np.uint8)
    shift = 4  # sub-pixel precision: coordinates in 1/16 px
    pts = [np.round((p - 0.5) * (1 << shift)).astype(np.int32) for p in polylines]
    cv2.polylines(canvas, pts, False, 255, thickness, cv2.LINE_AA, shift)
    return canvas.astype(_F32) / 255.0


def _defect_mask(footprint: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """Pixels of the defect's footprint (grown by 1 px for the blur) that really changed."""
    kernel = np.ones((3, 3), np.uint8)
    grown = cv2.dilate(footprint.astype(np.uint8), kernel) > 0
    changed = cv2.dilate((diff > _CHANGE_THRESHOLD).astype(np.uint8), kernel) > 0
    mask = grown & changed
    return mask if mask.any() else footprint


# --------------------------------------------------------------------------------------------
# defects: each returns (clean image with the defect, footprint of the defect)

_Defect = Callable[[np.random.Generator, _Scene], tuple[np.ndarray, np.ndarray]]


def _under_extrusion(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """Thinned and broken segments in 3-5 adjacent infill lines."""
    size, k = scene.size, scene.scale
    length = rng.uniform(0.18, 0.3) * size
    x, y = pick_point(rng, scene, scene.depth > scene.depth.max() * 0.25 + 0.3 * length)
    iy, ix = int(y), int(x)
    n_lines = int(rng.integers(3, 6))
    first = int(scene.line_index[iy, ix]) - n_lines // 2
    centre = float(scene.along[iy, ix])
    j = np.clip(scene.line_index - first, 0, n_lines - 1)
    # middle lines are hit hardest; segment ends are staggered and taper back to full width
    weight = np.sin(np.pi * (np.arange(n_lines) + 0.5) / n_lines)
    seg_len = length * (0.35 + 0.65 * weight) * rng.uniform(0.8, 1.0, n_lines)
    seg_mid = centre + rng.normal(0, 0.12 * length, n_lines)
    pos = np.abs(scene.along - seg_mid[j]) / (0.5 * seg_len[j])  # 0 mid-segment .. 1 at ends
    hit = (scene.line_index >= first) & (scene.line_index < first + n_lines) & (pos < 1.0)
    hit &= scene.infill_zone
    # per line a base thinning, broken up along the line into gaps and thin stretches
    thin = rng.uniform(0.0, 0.35, n_lines)[j] + 0.35 * np.sin(
        scene.along * (2 * np.pi / (rng.uniform(12, 24) * k)) + rng.uniform(0, 7, n_lines)[j]
    )
    taper = np.clip((pos - 0.6) / 0.4, 0.0, 1.0)
    thin = np.clip(thin, 0.0, 0.6) * (1.0 - taper) + taper
    factor = np.where(hit, thin, 1.0).astype(_F32)
    return np.where(hit, _infill(scene, factor), scene.clean).astype(_F32), hit


def _blob(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """A bright irregular dome of excess material with a shadowed rim."""
    k = scene.scale
    radius = rng.uniform(0.045, 0.075) * scene.size
    x, y = pick_point(rng, scene, scene.depth > 0.8 * radius)
    rel, edge = _irregular_disc(rng, scene, x, y, radius)
    dome = np.sqrt(np.clip(1.0 - rel * rel, 0.0, 1.0))
    hx, hy = rng.uniform(-0.35, 0.35, 2) * radius  # specular highlight position
    highlight = np.exp(-((scene.xx - x - hx) ** 2 + (scene.yy - y - hy) ** 2) / (0.18 * radius**2))
    surface = scene.filament * (0.95 + 0.3 * dome**0.5) + 0.2 * highlight
    rim = 2.5 * k
    shadow = blend(scene.clean, 0.55 * scene.clean, np.clip(1.0 + edge / rim, 0.0, 1.0))
    alpha = np.clip(edge / max(k, 0.5) + 0.5, 0.0, 1.0)
    return blend(shadow, np.minimum(surface, 1.0), alpha), edge > -rim


def _stringing(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """3-5 thin, wispy, curved strands of filament running roughly the same way."""
    size, k = scene.size, scene.scale
    x, y = pick_point(rng, scene, scene.depth > 0.12 * size)
    angle = rng.uniform(0, np.pi)
    normal = np.array([-np.sin(angle), np.cos(angle)])
    u = np.linspace(0.0, 1.0, 24)[:, None]
    strands = []
    for _ in range(int(rng.integers(3, 6))):
        start = np.array([x, y]) + normal * rng.normal(0, 0.07 * size)
        turn = angle + rng.normal(0, 0.2)
        a, b = _segment_on_part(scene, *start, turn, rng.uniform(0.15, 0.3) * size)
        sag = rng.normal(0, 0.05 * size) * np.sin(np.pi * u)
        ripple = rng.normal(0, 1.2 * k) * np.sin(2 * np.pi * rng.uniform(1, 3) * u)
        strands.append(a + (b - a) * u + normal * (sag + ripple))
    thickness = max(1, round(1.2 * k))
    alpha = _stroke_alpha(scene, strands, thickness) * rng.uniform(0.75, 0.95)
    offset = np.float32([[1, 0, 1.5 * k], [0, 1, 1.5 * k]])  # faint shadow below-right
    shadow = cv2.warpAffine(alpha, offset, (size, size)) * 0.35
    alpha *= scene.depth > 0
    shadow *= scene.depth > 0
    image = blend(blend(scene.clean, 0.0, shadow), 0.95, alpha)
    return image, (alpha > 0.1) | (shadow > 0.1)


def _scratch(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """A thin straight scratch across the infill lines, gouged (dark) or scraped (bright)."""
    size, k = scene.size, scene.scale
    x, y = pick_point(rng, scene, scene.depth > 0.1 * size)
    angle = scene.infill_angle + np.deg2rad(rng.uniform(35, 145))
    a, b = _segment_on_part(scene, x, y, angle, rng.uniform(0.3, 0.5) * size)
    thickness = max(1, round(rng.uniform(2.0, 3.2) * k))
    alpha = _stroke_alpha(scene, [np.stack([a, b])], thickness) * (scene.depth > 0)
    value = 0.3 * scene.clean if rng.random() < 0.6 else np.float32(0.95)
    return blend(scene.clean, value, alpha), alpha > 0.1


def _missing_infill(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """An irregular patch where the top infill is missing and the lower layer shows."""
    k = scene.scale
    radius = rng.uniform(0.07, 0.105) * scene.size
    x, y = pick_point(rng, scene, scene.depth > scene.depth.max() * 0.3 + 0.6 * radius)
    _, edge = _irregular_disc(rng, scene, x, y, radius)
    alpha = np.clip(edge / max(k, 0.5) + 0.5, 0.0, 1.0) * scene.infill_zone
    # the hole is deeper than the top layer: darker, with the surrounding beads' shadow at its rim
    lower = scene.lower * 0.85 * (1.0 - 0.3 * np.exp(-np.maximum(edge, 0) / (3.0 * k)))
    return blend(scene.clean, lower, alpha), alpha > 0.1


_DEFECTS: dict[str, _Defect] = {
    "under_extrusion": _under_extrusion,
    "blob": _blob,
    "stringing": _stringing,
    "scratch": _scratch,
    "missing_infill": _missing_infill,
}


# --------------------------------------------------------------------------------------------
# public API


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < _MIN_SIZE:
        raise ConfigError(
            f"image size {size!r} is not an integer of at least {_MIN_SIZE} pixels",
            f"pass size >= {_MIN_SIZE} (256 is the default)",
        )


def render_layer(
    rng: np.random.Generator, size: int = 256, defect: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Render one top-down grayscale image of a printed layer, optionally with a defect.

    A procedural stand-in for the layer photos of seed 000 (see the module docstring).

    Args:
        rng: source of randomness; exactly two integers are drawn from it per call, whatever the
            defect, so a generator in the same state gives the same layer with and without a
            defect, and ``image - good_image`` is confined to the defect.
        size: side length of the square image in pixels (>= 32; geometry scales with it).
        defect: ``None`` for a good layer or one of :data:`DEFECT_TYPES`.

    Returns:
        ``(image, mask)``: ``image`` is ``(size, size)`` float32 in ``[0, 1]``; ``mask`` is
        ``(size, size)`` bool, True on the pixels the defect changed (all False for a good
        layer). Defect masks cover roughly 0.5-5 % of the image and lie on the part.

    Raises:
        ConfigError: ``defect`` is not ``None`` or a name in :data:`DEFECT_TYPES`, or ``size`` is
            not an integer >= 32.
    """
    if defect is not None and defect not in _DEFECTS:
        raise ConfigError(
            f"unknown defect type {defect!r}",
            f"use None for a good layer or one of: {', '.join(DEFECT_TYPES)}",
        )
    _check_size(size)
    scene_seed, defect_seed = (int(s) for s in rng.integers(0, 2**63 - 1, size=2))
    scene = _build_scene(np.random.default_rng(scene_seed), int(size))
    good = _finish(scene, scene.clean)
    if defect is None:
        return good, np.zeros((size, size), bool)
    clean, footprint = _DEFECTS[defect](np.random.default_rng(defect_seed), scene)
    image = _finish(scene, clean)
    return image, _defect_mask(footprint, np.abs(image - good))


def write_dataset(
    root: Path,
    *,
    n_train: int = 200,
    n_test_good: int = 20,
    n_test_per_defect: int = 8,
    size: int = 256,
    seed: int = 0,
) -> Path:
    """Write a synthetic printed-layer data set in the MVTec AD folder layout.

    A procedural stand-in for the layer photos of seed 000 (see the module docstring)::

        root/train/good/000.png ...                      n_train good layers
        root/test/good/000.png ...                       n_test_good good layers
        root/test/<defect>/000.png ...                   n_test_per_defect per defect type
        root/ground_truth/<defect>/000_mask.png ...      0 = good, 255 = defect

    Images are 8-bit grayscale PNGs of ``size`` x ``size`` pixels; masks are uint8 0/255 of the
    same size. File numbers have at least 3 digits. Each image has its own child seed derived
    from ``(seed, split, defect type, index)``, so the files are byte-identical for the same
    arguments and an image does not change when other counts change. Folders are created and
    existing files are overwritten; files of an earlier, larger run are not removed.

    Args:
        root: output folder (created if missing).
        n_train: good training images (>= 0).
        n_test_good: good test images (>= 0).
        n_test_per_defect: test images per entry of :data:`DEFECT_TYPES` (>= 0).
        size: image side in pixels (>= 32).
        seed: non-negative integer seed.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: a count or the seed is negative, or ``size`` is below 32.
        DataError: a file cannot be written.
    """
    counts = {
        "n_train": n_train,
        "n_test_good": n_test_good,
        "n_test_per_defect": n_test_per_defect,
    }
    for name, value in {**counts, "seed": seed}.items():
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigError(
                f"{name} must be a non-negative integer, got {value!r}",
                f"pass {name}=0 or a larger whole number",
            )
    _check_size(size)
    root = Path(root)
    # (folder, defect or None, split code, count); the split code keeps seeds of splits apart
    jobs: list[tuple[Path, str | None, int, int]] = [
        (root / "train" / "good", None, 0, n_train),
        (root / "test" / "good", None, 1, n_test_good),
    ]
    jobs += [(root / "test" / d, d, 2, n_test_per_defect) for d in DEFECT_TYPES]
    for folder, defect, split, count in jobs:
        folder.mkdir(parents=True, exist_ok=True)
        masks = root / "ground_truth" / defect if defect else None
        if masks is not None:
            masks.mkdir(parents=True, exist_ok=True)
        digits = max(3, len(str(max(count - 1, 0))))
        code = DEFECT_TYPES.index(defect) + 1 if defect else 0
        for i in range(count):
            sequence = np.random.SeedSequence(int(seed), spawn_key=(split, code, i))
            image, mask = render_layer(np.random.default_rng(sequence), size, defect)
            stem = f"{i:0{digits}d}"
            write_png(folder / f"{stem}.png", np.round(image * 255).astype(np.uint8))
            if masks is not None:
                write_png(masks / f"{stem}_mask.png", mask.astype(np.uint8) * 255)
    return root
