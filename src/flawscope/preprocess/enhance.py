"""Colour conversion and resizing of images into the detector's input format."""

from __future__ import annotations

import cv2
import numpy as np


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert ``(H, W)`` grey or ``(H, W, 3)`` RGB float32 to ``(H, W, C)`` with C = ``channels``.

    RGB -> grey uses ITU-R BT.601 luma (OpenCV ``COLOR_RGB2GRAY``); grey -> RGB repeats the channel.
    """
    if image.ndim == 2:
        image = image[:, :, None]
    c = image.shape[2]
    if c == channels:
        return image
    if channels == 1:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[:, :, None]
    return np.repeat(image, channels, axis=2)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an ``(H, W)`` or ``(H, W, C)`` float32 array to ``(height, width[, C])`` pixels.

    Area interpolation when shrinking (no aliasing), bilinear when enlarging.
    """
    if image.shape[:2] == (height, width):
        return image
    shrink = height * width < image.shape[0] * image.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out


def to_model_input(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Image as read -> ``(C, size, size)`` float32 in ``[0, 1]``, the detector's input layout."""
    img = resize(to_channels(image.astype(np.float32, copy=False), channels), size, size)
    if img.ndim == 2:
        img = img[:, :, None]
    return np.ascontiguousarray(np.clip(img, 0.0, 1.0).transpose(2, 0, 1))
