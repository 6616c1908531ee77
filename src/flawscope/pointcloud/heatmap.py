"""Per-point anomaly scores made visible: coloured PLY files, PNG renders, ``(H, W)`` maps.

Colours are OpenCV's JET (as the image reports) over a range ``(low, high)``
(:func:`colour_range`): ``low`` is the median point score of the held-out good clouds (dark
blue: a typical good point) and ``high = 2 x threshold - low``, so the object threshold sits
mid-scale (green-yellow) and red points score far above it.

Renders are orthographic views from an elevation / azimuth, drawn with a z-buffer of square
splats (nearest point wins each pixel), lit with Lambert shading from PCA normals and darkened
with depth so the shape reads in 3D; no display, OpenGL or matplotlib state is needed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from flawscope.pointcloud.cloud import PointCloud
from flawscope.pointcloud.defects import NORMAL_NEIGHBOURS, estimate_normals
from flawscope.pointcloud.io import write_ply
from flawscope.report.figures import heat_colours, overlay

BACKGROUND = 255
#: fraction of brightness lost from the nearest to the farthest point
DEPTH_SHADE = 0.25
#: brightness of a surface seen edge-on (1 = facing the light)
AMBIENT = 0.45


def colour_range(threshold: float, low: float = 0.0, scores: np.ndarray | None = None) -> tuple:
    """``(low, high)`` of the colour scale: ``high = 2 x threshold - low`` (threshold mid-scale).

    ``low`` falls back to 0 when it is not finite or not below the threshold; an unusable
    threshold gives ``(0, max score)`` (or ``(0, 1)``).
    """
    if np.isfinite(threshold) and threshold > 0:
        lo = float(low) if np.isfinite(low) and 0 <= low < threshold else 0.0
        return lo, 2.0 * float(threshold) - lo
    if scores is not None and np.size(scores) and float(np.max(scores)) > 0:
        return 0.0, float(np.max(scores))
    return 0.0, 1.0


def score_colours(scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(N,)`` scores -> ``(N, 3)`` uint8 JET colours of ``clip((s - low) / (high - low))``."""
    span = (high - low) or 1.0
    return heat_colours((np.asarray(scores, dtype=np.float32) - low) / span)


def write_heatmap_ply(
    path: Path | str, points: np.ndarray, scores: np.ndarray, low: float, high: float
) -> Path:
    """Binary PLY: the points coloured by score, plus a float ``anomaly_score`` property.

    Opens in MeshLab, CloudCompare, Open3D or Blender.
    """
    scores = np.asarray(scores, dtype=np.float32)
    return write_ply(path, points, score_colours(scores, low, high), {"anomaly_score": scores})


def view_basis(elevation: float, azimuth: float) -> np.ndarray:
    """``(3, 3)`` rows: screen right, screen up, viewing direction (into the screen).

    The camera sits at ``(cos e cos a, cos e sin a, sin e)`` (degrees), looking at the origin,
    with +z up on screen.
    """
    e, a = np.deg2rad(elevation), np.deg2rad(azimuth)
    towards_camera = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    forward = -towards_camera
    up = np.array([0.0, 0.0, 1.0]) if abs(np.sin(e)) < 0.999 else np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(right, forward), forward])


def render(
    points: np.ndarray,
    colours: np.ndarray,
    size: int = 360,
    elevation: float = 35.0,
    azimuth: float = -60.0,
    splat: int | None = None,
) -> np.ndarray:
    """Orthographic z-buffer render of coloured points.

    Args:
        points: ``(N, 3)`` float, any units (the view is fitted to the cloud).
        colours: ``(N, 3)`` uint8 RGB.
        size: output side in pixels.
        elevation, azimuth: camera direction in degrees (see :func:`view_basis`).
        splat: half-width of each point's square in pixels; None = from the point density.

    Returns:
        ``(size, size, 3)`` uint8 RGB on a white background.
    """
    pts = np.asarray(points, dtype=np.float64)
    img = np.full((size, size, 3), BACKGROUND, dtype=np.uint8)
    if len(pts) == 0:
        return img
    screen = (pts - pts.mean(0)) @ view_basis(elevation, azimuth).T
    lo, hi = screen[:, :2].min(0), screen[:, :2].max(0)
    span = float((hi - lo).max()) or 1.0
    scale = 0.92 * (size - 1) / span
    offset = (size - 1 - scale * (hi - lo)) / 2
    col = np.round((screen[:, 0] - lo[0]) * scale + offset[0]).astype(np.int64)
    row = np.round((hi[1] - screen[:, 1]) * scale + offset[1]).astype(np.int64)
    depth = screen[:, 2]
    if splat is None:  # about sqrt(area per point) pixels
        splat = int(np.clip(round(size / np.sqrt(len(pts))), 1, 6))
    shade = 1.0 - DEPTH_SHADE * (depth - depth.min()) / (np.ptp(depth) or 1.0)
    if len(pts) > NORMAL_NEIGHBOURS:
        light = -view_basis(elevation + 15.0, azimuth - 20.0)[2]  # above-left of the camera
        lambert = np.abs(estimate_normals(pts) @ light)
        shade *= AMBIENT + (1.0 - AMBIENT) * lambert
    rgb = np.clip(np.asarray(colours, dtype=np.float64) * shade[:, None], 0, 255).astype(np.uint8)
    d = np.arange(-splat, splat + 1)
    dr, dc = (a.ravel() for a in np.meshgrid(d, d, indexing="ij"))
    rr = (row[:, None] + dr[None, :]).ravel()
    cc = (col[:, None] + dc[None, :]).ravel()
    owner = np.repeat(np.arange(len(pts)), len(dr))
    ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
    rr, cc, owner = rr[ok], cc[ok], owner[ok]
    pixel = rr * size + cc
    order = np.lexsort((depth[owner], pixel))  # by pixel, then nearest first
    first = np.ones(order.size, dtype=bool)
    first[1:] = pixel[order][1:] != pixel[order][:-1]
    win = order[first]
    img.reshape(-1, 3)[pixel[win]] = rgb[owner[win]]
    return img


def render_scores(
    cloud: PointCloud, scores: np.ndarray, low: float, high: float, size: int = 360, **view: float
) -> np.ndarray:
    """:func:`render` of ``cloud`` coloured by ``scores`` (see :func:`score_colours`)."""
    return render(cloud.points, score_colours(scores, low, high), size, **view)


def render_labels(cloud: PointCloud, size: int = 360, **view: float) -> np.ndarray:
    """:func:`render` of ``cloud`` with defect points red and the others grey."""
    colours = np.full((len(cloud), 3), 170, dtype=np.uint8)
    if cloud.labels is not None:
        colours[cloud.labels] = (198, 40, 40)
    return render(cloud.points, colours, size, **view)


def height_image(cloud: PointCloud) -> np.ndarray:
    """``(H, W)`` float32 in [0, 1]: the scan's z, min-max scaled over its points; 0 elsewhere."""
    z = cloud.points[:, 2].astype(np.float64)
    span = np.ptp(z) or 1.0
    return cloud.to_map((0.15 + 0.85 * (z - z.min()) / span).astype(np.float32))


def map_overlay(cloud: PointCloud, scores: np.ndarray, low: float, high: float) -> np.ndarray:
    """``(H, W, 3)`` uint8: the ``(H, W)`` anomaly map of an organised cloud over its heights,
    coloured over ``(low, high)`` like the renders (pixels without a point: ``low``)."""
    shifted = np.maximum(np.asarray(scores, dtype=np.float32) - low, 0.0)
    return overlay(height_image(cloud), cloud.to_map(shifted), vmax=(high - low) or 1.0)


def enlarge(rgb: np.ndarray, min_side: int = 360) -> np.ndarray:
    """Scale ``(H, W, 3)`` uint8 up (nearest neighbour, whole factor) until its shorter side is
    at least ``min_side``; larger images are returned unchanged."""
    factor = int(np.ceil(min_side / min(rgb.shape[:2])))
    if factor <= 1:
        return rgb
    return cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)


def caption(rgb: np.ndarray, text: str, colour: tuple[int, int, int] = (33, 33, 33)) -> np.ndarray:
    """``rgb`` with a white strip of ``text`` above it."""
    strip = np.full((28, rgb.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(strip, text, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return np.concatenate([strip, rgb], axis=0)


def write_png(path: Path | str, rgb: np.ndarray) -> Path:
    """Write ``(H, W, 3)`` uint8 RGB as PNG (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")
    return path
