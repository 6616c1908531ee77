"""Synthetic grey photos of a brick-like part on a cluttered, unevenly lit dark background.

This is a *synthetic* stand-in for the photos of seed 003 (master's thesis on LEGO brick
inspection: grey polymer bricks photographed from above in a scanner, on a dark background with
other objects in view, uneven light and intense specular highlights). Those photos are not
public. The renders reproduce the thesis' hard case for background segmentation, where global
thresholds, k-means and watershed struggle and a trained U-Net is needed (thesis 3.6): the part
is not uniformly brighter than the background, because

* the illumination is uneven (a strong linear gradient, a vignette and a lamp hot spot
  multiply the whole image, so the part on the dim side can be darker than clutter on the
  bright side);
* the background is cluttered: dark fabric-like texture, and 4-8 random objects (ellipses,
  boxes, cables with a glossy streak, small screws), some nearly as bright as the part;
* specular highlights saturate small spots on the background and a broad streak on the part;
* the part casts a soft shadow on the background, which lowers the contrast of one side.

Every image shows the same product, one 2 x 4 brick seen from above: a rounded rectangle with
a bevelled, side-lit edge and eight studs (each with a lit and a shaded rim, a glint and a drop
shadow), a fine polymer surface texture and a gentle gradient across the top face. Position
(+-6 % of the image), rotation (+-15 degrees) and size (+-5 %) vary a little, as for parts
placed by hand. Lighting, blur (Gaussian, ~0.6 px) and sensor noise (Gaussian, std 0.01-0.025)
vary per image.

Defects (:data:`DEFECT_TYPES`), always on the part's top face, each covering roughly 0.05-1.2 %
of the image:

* ``scratch``: a thin, slightly curved line, gouged (dark) or scraped (bright);
* ``dent``: a small irregular dent, a shaded bowl (its side towards the light darker, the far
  side brighter) with a darker floor;
* ``chip``: a chunk broken out of the top face at its edge: a darker, rough fracture surface with
  a shadowed rim (seen from above the footprint of the brick is unchanged, so the foreground
  mask keeps its outline);
* ``missing_stud``: one of the eight studs is absent (its disc, rim and shadow are missing).

A defective render shares every random choice of the scene with the good render from the same
generator state (the defect draws from its own stream), so ``image - good_image`` is confined
to the defect. Lengths are in pixels, designed for a 256 x 384 (H x W) image and scaled by
``k = min(H / 256, W / 384)``. Only NumPy and OpenCV are used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flawscope.data.synthetic.drawing import blend, box_sdf, pick_point, write_png
from flawscope.errors import ConfigError

__all__ = ["DEFECT_TYPES", "FOREGROUND_DIR", "render_part", "write_parts_dataset"]

DEFECT_TYPES: tuple[str, ...] = ("scratch", "dent", "chip", "missing_stud")

#: folder (under the data set root) of the exact foreground masks written by
#: :func:`write_parts_dataset`: ``foreground/<split>/<class>/<stem>.png``
FOREGROUND_DIR = "foreground"

_REF_H, _REF_W = 256, 384  # every length below is in pixels at this size and scales with it
_MIN_SIDE = 32
_STUDS = (4, 2)  # studs along the brick's length and width
_F32 = np.float32


@dataclass
class _Scene:
    """Every random choice of one good image, and its layers before lighting and noise."""

    height: int
    width: int
    k: float  # scale: min(H / 256, W / 384)
    xx: np.ndarray  # (H, W) float32 pixel-centre x coordinates
    yy: np.ndarray  # (H, W) float32 pixel-centre y coordinates
    depth: np.ndarray  # signed distance into the part, px (> 0 inside)
    normal_x: np.ndarray  # outward unit normal of the outline at each pixel (x)
    normal_y: np.ndarray  # outward unit normal of the outline at each pixel (y)
    light: tuple[float, float]  # unit vector towards the light in the image plane (x, y)
    half: tuple[float, float]  # brick half length / half width, px
    studs: list[tuple[float, float, float]]  # (x, y, radius) px
    glint: list[float]  # per-stud glint strength
    top: np.ndarray  # the top face without studs (albedo x shading), float32
    background: np.ndarray  # background with clutter, glints and the part's shadow
    illumination: np.ndarray  # multiplicative light field
    blur_sigma: float
    noise: np.ndarray  # additive sensor noise
    clean: np.ndarray  # the good composite before lighting, blur and noise

    @property
    def foreground(self) -> np.ndarray:
        """The exact foreground mask: pixel centres inside the brick's outline."""
        return self.depth > 0


# --------------------------------------------------------------------------------------------
# helpers


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian noise blurred by ``sigma`` px and rescaled to unit standard deviation."""
    field = rng.standard_normal(shape, dtype=_F32)
    if sigma > 0.3:
        field = cv2.GaussianBlur(field, (0, 0), sigma)
    return field / max(float(field.std()), 1e-6)


def _gauss(
    scene: _Scene, x: float, y: float, s_along: float, s_across: float, angle: float
) -> np.ndarray:
    """Anisotropic Gaussian bump (peak 1) at (x, y), widths in px, long axis at ``angle`` rad."""
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = scene.xx - x, scene.yy - y
    u, v = c * dx + s * dy, -s * dx + c * dy
    return np.exp(-0.5 * ((u / s_along) ** 2 + (v / s_across) ** 2)).astype(_F32)


def _stamp(shape: tuple[int, int], draw: Callable[[np.ndarray], None]) -> np.ndarray:
    """Anti-aliased coverage (0..1 float32) of whatever ``draw`` paints (255) on a canvas."""
    canvas = np.zeros(shape, np.uint8)
    draw(canvas)
    return canvas.astype(_F32) / 255.0


def _pts(points: np.ndarray, shift: int = 4) -> np.ndarray:
    """(n, 2) pixel-centre coordinates -> OpenCV fixed-point int32 polygon."""
    return np.round((np.asarray(points) - 0.5) * (1 << shift)).astype(np.int32)


def _irregular_disc(
    rng: np.random.Generator, scene: _Scene, x: float, y: float, radius: float
) -> np.ndarray:
    """Distance (px, > 0 inside) to the outline of an irregular disc of mean ``radius`` px."""
    dx, dy = scene.xx - x, scene.yy - y
    theta = np.arctan2(dy, dx)
    wobble = np.zeros_like(theta)
    for lobe in range(2, 6):
        wobble += rng.uniform(0.0, 0.25 / lobe**0.5) * np.cos(lobe * theta + rng.uniform(0, 7))
    return (radius * (1.0 + wobble) - np.hypot(dx, dy)).astype(_F32)


# --------------------------------------------------------------------------------------------
# the part


def _studs_layer(
    scene: _Scene, base: np.ndarray, studs: list[tuple[float, float, float]], glint: list[float]
) -> np.ndarray:
    """The top face ``base`` with ``studs`` drawn on it: drop shadow, shaded rim, flat top, glint.

    Seen from above a stud is a disc; its cylindrical side shows as a thin rim, lit on the side
    facing the light and shaded on the other, and it throws a short shadow away from the light.
    """
    lx, ly = scene.light
    k = scene.k
    out = base.copy()
    for (sx, sy, r), g in zip(studs, glint, strict=True):
        x0, x1 = int(max(sx - 2 * r - 2, 0)), int(min(sx + 2 * r + 3, scene.width))
        y0, y1 = int(max(sy - 2 * r - 2, 0)), int(min(sy + 2 * r + 3, scene.height))
        if x0 >= x1 or y0 >= y1:
            continue
        win = (slice(y0, y1), slice(x0, x1))
        dx, dy = scene.xx[win] - sx, scene.yy[win] - sy
        d = np.hypot(dx, dy)
        off = 0.35 * r
        ds = np.hypot(dx + lx * off, dy + ly * off)  # shadow: the disc shifted away from the light
        shadow = np.clip((r + 0.6 * k - ds) / max(1.5 * k, 0.5), 0.0, 1.0)
        patch = out[win] * (1.0 - 0.4 * shadow)
        cover = np.clip(r - d + 0.5, 0.0, 1.0)  # anti-aliased stud disc
        cos = (dx * lx + dy * ly) / np.maximum(d, 1e-3)  # > 0 on the side facing the light
        rim = np.clip((d - 0.72 * r) / (0.28 * r), 0.0, 1.0)
        stud_top = base[win] * (1.06 + 0.45 * cos * rim)
        spot = np.exp(
            -0.5 * (((dx - lx * 0.8 * r) ** 2 + (dy - ly * 0.8 * r) ** 2) / (0.12 * r) ** 2)
        )
        stud_top = stud_top + g * spot
        out[win] = blend(patch, stud_top, cover)
    return out.astype(_F32)


def _top_face(
    rng: np.random.Generator, scene: _Scene, px: np.ndarray, py: np.ndarray
) -> np.ndarray:
    """Albedo x shading of the brick's top face (no studs), with a broad specular streak."""
    k = scene.k
    lx, ly = scene.light
    grey = rng.uniform(0.45, 0.6)
    hx, hy = scene.half
    tilt = rng.uniform(-0.08, 0.08, size=2)  # a gentle gradient across the face
    face = grey * (1.0 + tilt[0] * px / hx + tilt[1] * py / hy)
    face *= 1.0 + 0.04 * _smooth_noise(rng, (scene.height, scene.width), 1.2 * k)  # polymer grain
    face *= 1.0 + 0.03 * _smooth_noise(rng, (scene.height, scene.width), 10 * k)
    # bevelled edge: the outward-tilted band is lit on the light side, shaded on the other
    bevel = np.clip(1.0 - scene.depth / (5.0 * k), 0.0, 1.0) ** 1.5
    facing = scene.normal_x * lx + scene.normal_y * ly
    face *= 1.0 + 0.45 * bevel * facing - 0.1 * bevel
    # the thesis' specular highlight: a broad, elongated streak that saturates part of the face
    for _ in range(int(rng.integers(1, 3))):
        x, y = pick_point(rng, scene, scene.depth > 10 * k)
        streak = _gauss(
            scene,
            x,
            y,
            rng.uniform(25, 60) * k,
            rng.uniform(5, 14) * k,
            rng.uniform(0, np.pi),
        )
        face = face + rng.uniform(0.25, 0.7) * streak
    return face.astype(_F32)


# --------------------------------------------------------------------------------------------
# the background


def _background(rng: np.random.Generator, scene: _Scene) -> np.ndarray:
    """Dark textured background with random clutter objects and glints (before the shadow)."""
    h, w, k = scene.height, scene.width, scene.k
    shape = (h, w)
    bg = rng.uniform(0.05, 0.13) * (1.0 + 0.35 * _smooth_noise(rng, shape, 25 * k))
    bg = bg * (1.0 + 0.15 * _smooth_noise(rng, shape, 0.8 * k))  # fabric-like fine texture
    bg = bg.astype(_F32)
    shift = 4
    for _ in range(int(rng.integers(4, 9))):
        kind = rng.choice(["ellipse", "box", "cable", "screw"], p=[0.3, 0.3, 0.25, 0.15])
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        grey = rng.uniform(0.12, 0.42)
        highlight: np.ndarray | None = None
        if kind == "ellipse":
            axes = (round(rng.uniform(10, 55) * k * 16), round(rng.uniform(8, 35) * k * 16))
            ang = rng.uniform(0, 180)
            centre = tuple(int(v) for v in _pts([cx, cy], shift))

            def draw(c: np.ndarray, centre=centre, axes=axes, ang=ang) -> None:
                cv2.ellipse(c, centre, axes, ang, 0, 360, 255, -1, cv2.LINE_AA, shift)

        elif kind == "box":
            size = (rng.uniform(15, 80) * k, rng.uniform(10, 45) * k)
            corners = cv2.boxPoints(((cx, cy), size, rng.uniform(0, 180)))

            def draw(c: np.ndarray, corners=corners) -> None:
                cv2.fillPoly(c, [_pts(corners, shift)], 255, cv2.LINE_AA, shift)

        elif kind == "cable":
            t = np.linspace(0.0, 1.0, 32)[:, None]
            p0, p1, p2 = (np.array([rng.uniform(0, w), rng.uniform(0, h)]) for _ in range(3))
            curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
            thick = max(1, round(rng.uniform(3, 8) * k))
            grey = rng.uniform(0.1, 0.3)

            def draw(c: np.ndarray, curve=curve, thick=thick) -> None:
                cv2.polylines(c, [_pts(curve, shift)], False, 255, thick, cv2.LINE_AA, shift)

            glossy = curve + rng.uniform(-0.25, 0.25) * thick
            line = max(1, round(0.3 * thick))
            highlight = _stamp(
                shape,
                lambda c, g=glossy, t=line: cv2.polylines(
                    c, [_pts(g, shift)], False, 255, t, cv2.LINE_AA, shift
                ),
            )
        else:  # screw
            radius = round(rng.uniform(3, 8) * k * 16)
            centre = tuple(int(v) for v in _pts([cx, cy], shift))
            grey = rng.uniform(0.25, 0.45)

            def draw(c: np.ndarray, centre=centre, radius=radius) -> None:
                cv2.circle(c, centre, max(radius, 16), 255, -1, cv2.LINE_AA, shift)

        alpha = _stamp(shape, draw)
        # each object is lit from one side too: a linear gradient across it
        g = rng.uniform(-0.3, 0.3, size=2)
        shade = grey * (1.0 + g[0] * (scene.xx - cx) / w + g[1] * (scene.yy - cy) / h)
        bg = blend(bg, shade, alpha)
        if highlight is not None:
            bg = bg + rng.uniform(0.2, 0.5) * highlight * alpha
    # glints: small saturated specular spots on the background (clutter, glossy lint)
    for _ in range(int(rng.integers(2, 6))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        sigma = rng.uniform(1.5, 5.0) * k
        bg = bg + rng.uniform(0.5, 1.0) * _gauss(scene, x, y, sigma, sigma * rng.uniform(0.4, 1), 0)
    return bg.astype(_F32)


def _illumination(rng: np.random.Generator, scene: _Scene) -> np.ndarray:
    """Uneven multiplicative light: linear gradient, vignette and a lamp hot spot (~0.5-1.5)."""
    xn = scene.xx / scene.width * 2 - 1
    yn = scene.yy / scene.height * 2 - 1
    angle = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0.25, 0.45)
    ramp = 1.0 + strength * (np.cos(angle) * xn + np.sin(angle) * yn)
    vignette = 1.0 - rng.uniform(0.1, 0.25) * (xn * xn + yn * yn) / 2
    hx, hy = rng.uniform(-0.8, 0.8, size=2)
    spot = rng.uniform(0.1, 0.3) * np.exp(-((xn - hx) ** 2 + (yn - hy) ** 2) / 0.5)
    return (rng.uniform(0.9, 1.1) * ramp * vignette * (1.0 + spot)).astype(_F32)


# --------------------------------------------------------------------------------------------
# the scene


def _build_scene(rng: np.random.Generator, height: int, width: int) -> _Scene:
    """Draw every random choice of a good image and compose it before lighting and noise."""
    k = min(height / _REF_H, width / _REF_W)
    yy, xx = np.mgrid[0:height, 0:width].astype(_F32) + 0.5
    cx = (0.5 + rng.uniform(-0.06, 0.06)) * width
    cy = (0.5 + rng.uniform(-0.06, 0.06)) * height
    rotation = np.deg2rad(rng.uniform(-15.0, 15.0))
    scale = rng.uniform(0.95, 1.05)
    hx, hy = 105.0 * k * scale, 53.0 * k * scale
    c, s = np.cos(rotation), np.sin(rotation)
    dx, dy = xx - cx, yy - cy
    px, py = (c * dx + s * dy).astype(_F32), (-s * dx + c * dy).astype(_F32)
    depth = -box_sdf(px, py, hx, hy, 6.0 * k * scale)
    gy, gx = np.gradient(-depth)  # grows outwards
    norm = np.maximum(np.hypot(gx, gy), 1e-6)
    light_angle = rng.uniform(0, 2 * np.pi)
    # studs on a 4 x 2 grid, pitch = brick length / 4, radius 0.3 pitch
    pitch_x, pitch_y = 2 * hx / _STUDS[0], 2 * hy / _STUDS[1]
    radius = 0.3 * min(pitch_x, pitch_y)
    studs = []
    for i in range(_STUDS[0]):
        for j in range(_STUDS[1]):
            u, v = (i + 0.5) * pitch_x - hx, (j + 0.5) * pitch_y - hy
            studs.append((float(cx + c * u - s * v), float(cy + s * u + c * v), float(radius)))
    scene = _Scene(
        height=height,
        width=width,
        k=k,
        xx=xx,
        yy=yy,
        depth=depth,
        normal_x=(gx / norm).astype(_F32),
        normal_y=(gy / norm).astype(_F32),
        light=(float(np.cos(light_angle)), float(np.sin(light_angle))),
        half=(float(hx), float(hy)),
        studs=studs,
        glint=[float(g) for g in rng.uniform(0.1, 0.6, len(studs))],
        top=np.empty(0, _F32),
        background=np.empty(0, _F32),
        illumination=np.empty(0, _F32),
        blur_sigma=float(rng.uniform(0.5, 0.8) * k),
        noise=np.empty(0, _F32),
        clean=np.empty(0, _F32),
    )
    scene.top = _top_face(rng, scene, px, py)
    bg = _background(rng, scene)
    # the part's soft shadow on the background, cast away from the light
    lx, ly = scene.light
    off = 6.0 * k
    shifted = -box_sdf(
        c * (dx + lx * off) + s * (dy + ly * off),
        -s * (dx + lx * off) + c * (dy + ly * off),
        hx,
        hy,
        6.0 * k * scale,
    )
    bg *= 1.0 - 0.6 * np.clip(shifted / (5.0 * k) + 0.5, 0.0, 1.0)
    scene.background = bg.astype(_F32)
    scene.illumination = _illumination(rng, scene)
    sigma = rng.uniform(0.01, 0.025)
    scene.noise = rng.standard_normal((height, width), dtype=_F32) * _F32(sigma)
    scene.clean = _compose(scene, _studs_layer(scene, scene.top, scene.studs, scene.glint))
    return scene


def _compose(scene: _Scene, part: np.ndarray) -> np.ndarray:
    """The part's surface over the background, with an anti-aliased outline."""
    alpha = np.clip(scene.depth + 0.5, 0.0, 1.0)
    return blend(scene.background, part, alpha)


def _finish(scene: _Scene, clean: np.ndarray) -> np.ndarray:
    """Apply the uneven light, the blur and the sensor noise; clip to [0, 1]."""
    image = clean * scene.illumination
    if scene.blur_sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), scene.blur_sigma)
    return np.clip(image + scene.noise, 0.0, 1.0).astype(_F32)


# --------------------------------------------------------------------------------------------
# defects: each returns (clean image with the defect, footprint of the defect)

_Defect = Callable[[np.random.Generator, _Scene], tuple[np.ndarray, np.ndarray]]


def _on_face(scene: _Scene, margin: float) -> np.ndarray:
    """Pixels of the top face at least ``margin`` px inside the outline and off the studs."""
    ok = scene.depth > margin
    for sx, sy, r in scene.studs:
        ok &= np.hypot(scene.xx - sx, scene.yy - sy) > r + margin
    return ok


def _scratch(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """A thin, slightly curved scratch: gouged (dark) or scraped (bright)."""
    k = scene.k
    x, y = pick_point(rng, scene, scene.depth > 0.35 * scene.half[1])
    angle = rng.uniform(0, np.pi)
    length = rng.uniform(0.25, 0.5) * scene.half[0]
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    t = np.linspace(-0.5, 0.5, 24)[:, None]
    bow = rng.normal(0, 0.08) * length * (1 - 4 * t**2)
    line = np.array([x, y]) + t * length * direction + bow * normal
    thick = max(1, round(rng.uniform(1.5, 3.0) * k))
    alpha = _stamp(
        (scene.height, scene.width),
        lambda c: cv2.polylines(c, [_pts(line)], False, 255, thick, cv2.LINE_AA, 4),
    ) * (scene.depth > 1.0)
    # scraped (bright) only where the lit surface is not already near saturation (a bright
    # scratch inside a specular highlight would be invisible); otherwise gouged (dark)
    under = (scene.clean * scene.illumination)[alpha > 0.1]
    lit = float(np.percentile(under, 90)) if under.size else 1.0
    bright = rng.random() < 0.35 and lit < 0.6
    value = scene.clean + 0.3 if bright else 0.35 * scene.clean
    return blend(scene.clean, value, alpha), alpha > 0.1


def _dent(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """A small irregular dent: a shaded bowl with a darker floor."""
    k = scene.k
    radius = max(rng.uniform(4.0, 8.0) * k, 1.5)
    x, y = pick_point(rng, scene, _on_face(scene, radius + 2 * k))
    edge = _irregular_disc(rng, scene, x, y, radius)
    inside = np.clip(edge / max(k, 0.5) + 0.5, 0.0, 1.0)
    lx, ly = scene.light
    towards = ((scene.xx - x) * lx + (scene.yy - y) * ly) / radius  # +1 on the light side
    rel = np.clip(1.0 - edge / radius, 0.0, 1.0)  # 0 at the centre .. 1 at the rim
    shade = 0.7 - 0.45 * np.clip(towards, -1, 1) - 0.15 * (1.0 - rel)
    return blend(scene.clean, scene.clean * shade, inside), inside > 0.1


def _chip(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """A chunk broken out of the top face at its edge: a dark, rough fracture surface."""
    k = scene.k
    radius = max(rng.uniform(9.0, 16.0) * k, 2.0)
    x, y = pick_point(rng, scene, (scene.depth > 0.5) & (scene.depth < 2.5 * k + 0.5))
    edge = _irregular_disc(rng, scene, x, y, radius)
    region = np.clip(edge / max(k, 0.5) + 0.5, 0.0, 1.0) * (scene.depth > 0)
    rough = 1.0 + 0.2 * _smooth_noise(rng, (scene.height, scene.width), 1.0 * k)
    fracture = float(np.median(scene.top[scene.depth > 0])) * rng.uniform(0.45, 0.65) * rough
    lx, ly = scene.light
    towards = ((scene.xx - x) * lx + (scene.yy - y) * ly) / radius
    rim = np.exp(-np.maximum(edge, 0) / (2.0 * k + 0.5))  # the broken wall near the rim
    fracture = (
        fracture
        * (1.0 - 0.4 * rim * np.clip(towards, 0, 1))
        * (1 + 0.3 * rim * np.clip(-towards, 0, 1))
    )
    return blend(scene.clean, fracture, region), region > 0.1


def _missing_stud(rng: np.random.Generator, scene: _Scene) -> tuple[np.ndarray, np.ndarray]:
    """One stud is absent: the flat top face shows where its disc, rim and shadow were."""
    gone = int(rng.integers(len(scene.studs)))
    keep = [i for i in range(len(scene.studs)) if i != gone]
    part = _studs_layer(
        scene, scene.top, [scene.studs[i] for i in keep], [scene.glint[i] for i in keep]
    )
    sx, sy, r = scene.studs[gone]
    lx, ly = scene.light
    off = 0.35 * r
    disc = np.hypot(scene.xx - sx, scene.yy - sy) < r + 0.5
    shadow = np.hypot(scene.xx - sx + lx * off, scene.yy - sy + ly * off) < r + 0.5
    return _compose(scene, part), disc | shadow


_DEFECTS: dict[str, _Defect] = {
    "scratch": _scratch,
    "dent": _dent,
    "chip": _chip,
    "missing_stud": _missing_stud,
}


# --------------------------------------------------------------------------------------------
# public API


def _check_size(size: object) -> tuple[int, int]:
    """``(H, W)`` as two ints >= 32, else ConfigError."""
    ok = (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= _MIN_SIDE
            for v in size
        )
    )
    if not ok:
        raise ConfigError(
            f"image size {size!r} is not (height, width), two integers of at least {_MIN_SIDE} px",
            f"pass e.g. size=({_REF_H}, {_REF_W})",
        )
    return int(size[0]), int(size[1])  # type: ignore[index]


def render_part(
    rng: np.random.Generator,
    size: tuple[int, int] = (_REF_H, _REF_W),
    defect: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one synthetic grey photo of a 2 x 4 brick on a cluttered, unevenly lit background.

    Synthetic: a procedural stand-in for the scanner photos of seed 003 (see the module
    docstring), made to be hard to segment (uneven light, clutter, specular highlights).

    Args:
        rng: source of randomness; exactly two integers are drawn from it per call, whatever the
            defect, so a generator in the same state gives the same scene with and without a
            defect, and ``image - good_image`` is confined to the defect.
        size: ``(H, W)`` in pixels, both >= 32 (designed at 256 x 384; lengths scale with
            ``min(H / 256, W / 384)``).
        defect: ``None`` for a good part or one of :data:`DEFECT_TYPES`.

    Returns:
        ``(image, foreground, defect_mask)``: ``image`` is ``(H, W)`` float32 in ``[0, 1]``
        (intensity, no units); ``foreground`` is ``(H, W)`` bool, True on the pixels whose centre
        lies inside the brick's outline (exact, never empty); ``defect_mask`` is ``(H, W)``
        bool, True on the defect (all False for a good part), always inside ``foreground``.

    Raises:
        ConfigError: ``defect`` is not ``None`` or a name in :data:`DEFECT_TYPES`, or ``size`` is
            not two integers >= 32.
    """
    if defect is not None and defect not in _DEFECTS:
        raise ConfigError(
            f"unknown defect type {defect!r}",
            f"use None for a good part or one of: {', '.join(DEFECT_TYPES)}",
        )
    height, width = _check_size(size)
    scene_seed, defect_seed = (int(s) for s in rng.integers(0, 2**63 - 1, size=2))
    scene = _build_scene(np.random.default_rng(scene_seed), height, width)
    foreground = scene.foreground
    if defect is None:
        return _finish(scene, scene.clean), foreground, np.zeros((height, width), bool)
    clean, footprint = _DEFECTS[defect](np.random.default_rng(defect_seed), scene)
    mask = footprint & foreground
    if not mask.any():  # tiny images: keep the defect visible in the mask at least as a pixel
        mask[np.unravel_index(int(np.argmax(scene.depth)), mask.shape)] = True
    return _finish(scene, clean), foreground, mask


def write_parts_dataset(
    root: Path | str,
    n_train: int = 60,
    n_test_good: int = 20,
    n_test_per_defect: int = 8,
    size: tuple[int, int] = (_REF_H, _REF_W),
    seed: int = 0,
) -> Path:
    """Write a synthetic parts data set: MVTec AD layout plus exact foreground masks.

    Synthetic (see the module docstring: the thesis' hard case of a cluttered, unevenly lit
    dark background with specular highlights)::

        root/train/good/000.png ...                      n_train good parts
        root/test/good/000.png ...                       n_test_good good parts
        root/test/<defect>/000.png ...                   n_test_per_defect per defect type
        root/ground_truth/<defect>/000_mask.png ...      defect masks: 0 = good, 255 = defect
        root/foreground/train/good/000.png ...           foreground masks: 255 = part
        root/foreground/test/<class>/000.png ...         (<class> = good or a defect type)

    The ``root`` is a valid MVTec AD category for ``flawscope fit`` / ``evaluate`` (the extra
    ``foreground`` folder is not read by them). For the U-Net segmenter, pair
    ``root/train/good`` with ``root/foreground/train/good`` (or ``root/test`` with
    ``root/foreground/test``): masks have the image's relative path and stem
    (:func:`flawscope.preprocess.unet_segmenter.pair_files`).

    Images are 8-bit grey PNGs of ``size`` = (H, W) pixels; masks are uint8 0/255 of the same
    size. File numbers have at least 3 digits. Each image has its own child seed derived from
    ``(seed, split, defect type, index)``, so the files are byte-identical for the same
    arguments and an image does not change when other counts change. Folders are created and
    existing files are overwritten; files of an earlier, larger run are not removed.

    Args:
        root: output folder (created if missing).
        n_train: good training images (>= 0).
        n_test_good: good test images (>= 0).
        n_test_per_defect: test images per entry of :data:`DEFECT_TYPES` (>= 0).
        size: ``(H, W)`` in pixels, both >= 32.
        seed: non-negative integer seed.

    Returns:
        ``root`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: a count or the seed is not a non-negative integer, or ``size`` is not two
            integers >= 32.
        DataError: a file cannot be written.
    """
    counts = {
        "n_train": n_train,
        "n_test_good": n_test_good,
        "n_test_per_defect": n_test_per_defect,
        "seed": seed,
    }
    for name, value in counts.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ConfigError(
                f"{name} must be a non-negative integer, got {value!r}",
                f"pass {name}=0 or a larger whole number",
            )
    shape = _check_size(size)
    root = Path(root)
    # (split, class, defect or None, split code, count); the code keeps the splits' seeds apart
    jobs: list[tuple[str, str, str | None, int, int]] = [
        ("train", "good", None, 0, n_train),
        ("test", "good", None, 1, n_test_good),
    ]
    jobs += [("test", d, d, 2, n_test_per_defect) for d in DEFECT_TYPES]
    for split, cls, defect, code, count in jobs:
        images = root / split / cls
        fg_dir = root / FOREGROUND_DIR / split / cls
        gt_dir = root / "ground_truth" / cls if defect else None
        for folder in (images, fg_dir, gt_dir):
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
        digits = max(3, len(str(max(count - 1, 0))))
        kind = DEFECT_TYPES.index(defect) + 1 if defect else 0
        for i in range(count):
            sequence = np.random.SeedSequence(int(seed), spawn_key=(code, kind, i))
            image, foreground, mask = render_part(np.random.default_rng(sequence), shape, defect)
            stem = f"{i:0{digits}d}"
            write_png(images / f"{stem}.png", np.round(image * 255).astype(np.uint8))
            write_png(fg_dir / f"{stem}.png", foreground.astype(np.uint8) * 255)
            if gt_dir is not None:
                write_png(gt_dir / f"{stem}_mask.png", mask.astype(np.uint8) * 255)
    return root
