"""Pixel-level anomaly maps from reconstructions.

The residual map is the per-pixel squared reconstruction error (seed 000; Bergmann et al., MVTec AD,
CVPR 2019, Sec. 4.1 "l2-autoencoder"), Gaussian-smoothed so single noisy pixels do not dominate the
image score.
"""

from __future__ import annotations

import cv2
import numpy as np


def squared_residual(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-pixel squared error, averaged over channels.

    Args:
        images, reconstructions: ``(N, C, H, W)`` float32 in ``[0, 1]``.

    Returns:
        ``(N, H, W)`` float32 in ``[0, 1]``.
    """
    return ((images - reconstructions) ** 2).mean(axis=1).astype(np.float32)


def gaussian_smooth(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth each ``(H, W)`` map of an ``(N, H, W)`` float32 stack (sigma in pixels).

    Uses OpenCV with reflected borders and a kernel of about 6 sigma; ``sigma <= 0`` returns the
    input unchanged.
    """
    if sigma <= 0:
        return maps
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return np.stack([cv2.GaussianBlur(m, (k, k), sigmaX=sigma, sigmaY=sigma) for m in maps])


def resize_map(anomaly_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinearly resize one ``(h, w)`` float32 anomaly map to ``(height, width)`` pixels."""
    if anomaly_map.shape == (height, width):
        return anomaly_map
    src = np.ascontiguousarray(anomaly_map)  # e.g. a cropped view
    return cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR)
