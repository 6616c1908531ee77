"""Colour conversion and resizing of images into the detector's input format."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

#: an intensity correction applied to each image as read: ``(H, W[, 3])`` float32 in [0, 1] ->
#: the same shape and range
Enhancer = Callable[[np.ndarray], np.ndarray]

#: mean intensity that :func:`normalize_exposure` brings every image to
EXPOSURE_TARGET = 0.4


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


def normalize_exposure(image: np.ndarray, target: float = EXPOSURE_TARGET) -> np.ndarray:
    """Scale an image so its mean intensity is ``target`` (gain normalisation).

    Exposure time and camera gain multiply the recorded intensities, so dividing by the image
    mean removes differences between acquisitions (e.g. the six exposures of the magnetic-tile
    set, mean grey 0.26 to 0.59) while keeping the contrast of defects relative to their
    surroundings. Values are clipped to ``[0, 1]`` afterwards. An all-black image is returned
    unchanged.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` float32 in ``[0, 1]``.
        target: mean intensity after scaling, in ``(0, 1)``.

    Returns:
        float32 array of the same shape, in ``[0, 1]``.
    """
    mean = float(image.mean())
    if mean <= 1e-6:
        return image
    return np.clip(image * (target / mean), 0.0, 1.0).astype(np.float32, copy=False)


#: the intensity corrections ``model.exposure`` can name
EXPOSURE_MODES: dict[str, Enhancer | None] = {"none": None, "gain": normalize_exposure}


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


#: where the image content lies in the model input: (top, left, height, width) in pixels
Box = tuple[int, int, int, int]


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Box]:
    """Resize ``(H, W[, C])`` so its long side is ``size`` px, then pad the short side to ``size``.

    The aspect ratio is kept (long strips and wide views are not squashed); the padding mirrors
    the image (OpenCV ``BORDER_REFLECT_101``), so it adds no edges that could look like defects.

    Returns:
        ``(size, size[, C])`` float32 and the :data:`Box` of the image content in it.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    img = resize(image, nh, nw)
    top, left = (size - nh) // 2, (size - nw) // 2
    out = cv2.copyMakeBorder(
        np.ascontiguousarray(img),
        top,
        size - nh - top,
        left,
        size - nw - left,
        cv2.BORDER_REFLECT_101,
    )
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out, (top, left, nh, nw)


def to_model_input(
    image: np.ndarray, size: int | tuple[int, int], channels: int, keep_aspect: bool = False
) -> tuple[np.ndarray, Box]:
    """Image as read -> ``(C, S, S)`` float32 in ``[0, 1]``, the detector's input layout.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` float32 in ``[0, 1]``.
        size: model input side S in pixels, or ``(height, width)`` for a non-square input
            (overlap tiling resizes whole images to a multiple of the tile side; no letterbox).
        channels: 1 (grey) or 3 (RGB).
        keep_aspect: :func:`letterbox` instead of squashing the image to S x S.

    Returns:
        The model input and the :data:`Box` of the image content in it (the whole input unless
        ``keep_aspect``).
    """
    img = to_channels(image.astype(np.float32, copy=False), channels)
    if isinstance(size, tuple):
        img, box = resize(img, *size), (0, 0, *size)
    elif keep_aspect:
        img, box = letterbox(img, size)
    else:
        img, box = resize(img, size, size), (0, 0, size, size)
    if img.ndim == 2:
        img = img[:, :, None]
    return np.ascontiguousarray(np.clip(img, 0.0, 1.0).transpose(2, 0, 1)), box


def crop_box(array: np.ndarray, box: Box) -> np.ndarray:
    """The ``box`` region of an array whose last two axes are the model input's (S, S)."""
    top, left, h, w = box
    return array[..., top : top + h, left : left + w]
