"""Drawing helpers shared by the synthetic generators (float32 images in pixel coordinates)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from flawscope.errors import DataError


class SceneGrid(Protocol):
    """What :func:`pick_point` needs of a scene: pixel-centre coordinates and a depth map."""

    xx: np.ndarray
    yy: np.ndarray
    depth: np.ndarray


def box_sdf(px: np.ndarray, py: np.ndarray, hx: float, hy: float, radius: float) -> np.ndarray:
    """Signed distance (px, negative inside) to a rounded box of half sides ``hx``, ``hy`` px
    and corner ``radius`` px, centred at the origin; float32 of the shape of ``px``."""
    qx = np.abs(px) - (hx - radius)
    qy = np.abs(py) - (hy - radius)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    inside = np.minimum(np.maximum(qx, qy), 0)
    return (outside + inside - radius).astype(np.float32, copy=False)


def blend(base: np.ndarray, value: np.ndarray | float, alpha: np.ndarray) -> np.ndarray:
    """``base`` with ``value`` laid over it at opacity ``alpha`` in [0, 1] (float32)."""
    return (base + alpha * (value - base)).astype(np.float32)


def pick_point(
    rng: np.random.Generator, scene: SceneGrid, allowed: np.ndarray
) -> tuple[float, float]:
    """A random pixel centre (x, y) among ``allowed``; the deepest part pixel if none is."""
    candidates = np.flatnonzero(allowed)
    flat = candidates[rng.integers(len(candidates))] if len(candidates) else scene.depth.argmax()
    return float(scene.xx.flat[flat]), float(scene.yy.flat[flat])


def write_png(path: Path, array: np.ndarray) -> None:
    """Write an 8-bit grey PNG (via OpenCV's encoder; works with any path characters).

    Raises:
        DataError: the file cannot be written (permissions, disk full).
    """
    ok, encoded = cv2.imencode(".png", array)
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 2-D array
        raise DataError(f"could not encode {path.name} as PNG", "report this as a bug")
    try:
        path.write_bytes(encoded.tobytes())
    except OSError as exc:
        raise DataError(
            f"cannot write {path}: {exc.strerror or exc}",
            "choose an output folder you can write to, with free disk space",
        ) from exc
