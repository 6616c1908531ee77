"""Classical background segmentation: Otsu, k-means and marker-based watershed, no training.

Source: seed 003 (master's thesis on LEGO brick inspection), section 3.6.1 "Testing Segmentation
Methods" (thresholding, k-means with k = 2, watershed), section 3.7 / listing 3.7 (the mask
post-processing: closing with a 5x5 cross, 3 iterations) and section 5.1.1 (a mean mask per
camera view). The thesis photographs parts on a dark background, hence the default
``foreground="bright"``; ``foreground="dark"`` segments dark parts on a bright background.

Every segmenter takes ``(H, W)`` grey or ``(H, W, 3)`` RGB float32 in ``[0, 1]`` (RGB is turned
into grey with ITU-R BT.601 luma, OpenCV ``COLOR_RGB2GRAY``) and returns the cleaned ``(H, W)``
bool foreground mask (:func:`clean_mask`). An image with no contrast at all (max - min below
1e-6) has no separable foreground: its mask is all ``False`` for either polarity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import sobel, threshold_otsu
from skimage.segmentation import watershed
from sklearn.cluster import KMeans

from flawscope.errors import ConfigError, DataError

__all__ = [
    "METHODS",
    "apply_mask",
    "clean_mask",
    "kmeans_mask",
    "mean_mask",
    "otsu_mask",
    "segment",
    "watershed_mask",
]

#: which intensity side of the histogram is the part: "bright" (thesis: parts on a dark
#: background) or "dark"
Foreground = Literal["bright", "dark"]

#: a segmenter: image ``(H, W[, 3])`` float32 in [0, 1] -> ``(H, W)`` bool mask
Segmenter = Callable[..., np.ndarray]

#: closing of listing 3.7: ``cv2.getStructuringElement(cv2.MORPH_CROSS, (5, 5))``, 3 iterations
CLOSE_KERNEL = cv2.getStructuringElement(cv2.MORPH_CROSS, (5, 5))
CLOSE_ITERATIONS = 3

#: k-means is fitted on at most this many randomly drawn pixels (then every pixel is assigned to
#: its nearest centre); 65,536 intensities pin down two 1-D cluster centres to well below 1/255
KMEANS_MAX_SAMPLES = 65_536

#: watershed markers: the Otsu foreground eroded / dilated by a disc of this radius (pixels)
#: gives the sure foreground / the complement of the sure background
WATERSHED_MARGIN = 3

_FOREGROUNDS = ("bright", "dark")
_FLAT = 1e-6


# --------------------------------------------------------------------------------- helpers


def _grey(image: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` -> ``(H, W)`` float32 grey, else DataError."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 3:
        rgb = np.ascontiguousarray(image, dtype=np.float32)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if image.ndim != 2:
        raise DataError(
            f"segmentation needs an (H, W) grey or (H, W, 3) RGB image, got shape {image.shape}",
            "pass one image at a time, with 1 or 3 channels",
        )
    if image.size == 0:
        raise DataError(f"cannot segment an empty image of shape {image.shape}", "pass pixels")
    return image.astype(np.float32, copy=False)


def _oriented_grey(image: np.ndarray, foreground: str) -> np.ndarray:
    """Grey image in which the foreground is the bright side (inverted for ``"dark"``)."""
    if foreground not in _FOREGROUNDS:
        raise ConfigError(
            f"unknown foreground polarity {foreground!r}",
            "use 'bright' (part brighter than the background) or 'dark'",
        )
    grey = _grey(image)
    return 1.0 - grey if foreground == "dark" else grey


def _is_flat(grey: np.ndarray) -> bool:
    return float(grey.max() - grey.min()) < _FLAT


def _check_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise DataError(f"{name} must be an (H, W) array, got shape {mask.shape}", "pass 2-D masks")
    return mask.astype(bool, copy=False)


# ----------------------------------------------------------------------------- post-processing


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Close gaps and fill holes in a foreground mask (the thesis' mask post-processing).

    Morphological closing with a 5x5 cross structuring element, 3 iterations (OpenCV
    ``morphologyEx(MORPH_CLOSE)``, i.e. 3 dilations then 3 erosions, as in thesis listing 3.7),
    followed by hole filling (``scipy.ndimage.binary_fill_holes``, 4-connected background): any
    background region not connected to the image border becomes foreground. Three passes of the
    cross act like one 13 x 13 element that reaches 6 px along rows and columns but only (3, 2) px
    diagonally: straight gaps up to 12 px wide are bridged inside the part, yet where a gap meets
    the part's outline a notch 2-4 px deep remains; blobs further apart stay separate. The mask is
    zero-padded by 6 px first (then cropped), so the outside of the image counts as background:
    with OpenCV's default border value instead, everything within 6 px of the image edge would be
    joined to the edge.

    Args:
        mask: ``(H, W)`` bool (any dtype is read as ``mask != 0``).

    Returns:
        ``(H, W)`` bool.

    Raises:
        DataError: ``mask`` is not 2-D.
    """
    mask = _check_mask(mask)
    pad = CLOSE_ITERATIONS * (CLOSE_KERNEL.shape[0] // 2)
    padded = np.pad(mask.astype(np.uint8), pad)
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, CLOSE_KERNEL, iterations=CLOSE_ITERATIONS)
    return ndimage.binary_fill_holes(closed[pad:-pad, pad:-pad].astype(bool))


# ---------------------------------------------------------------------------------- segmenters


def otsu_mask(image: np.ndarray, foreground: Foreground = "bright") -> np.ndarray:
    """Global Otsu threshold (Otsu 1979; thesis section 3.6.1, "Thresholding"), then cleaned.

    The threshold maximises the between-class variance of a 256-bin grey histogram
    (``skimage.filters.threshold_otsu``); foreground = grey ``> t`` for ``"bright"``, ``< t`` for
    ``"dark"``. The mask is post-processed with :func:`clean_mask`.

    Args:
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB float32 in ``[0, 1]``.
        foreground: ``"bright"`` (part brighter than the background, the thesis' set-up) or
            ``"dark"``.

    Returns:
        ``(H, W)`` bool foreground mask; all ``False`` for an image without contrast.

    Raises:
        DataError: the image is not ``(H, W)`` / ``(H, W, 3)`` or is empty.
        ConfigError: ``foreground`` is neither ``"bright"`` nor ``"dark"``.
    """
    grey = _oriented_grey(image, foreground)
    if _is_flat(grey):
        return np.zeros(grey.shape, dtype=bool)
    return clean_mask(grey > threshold_otsu(grey))


def kmeans_mask(image: np.ndarray, seed: int = 0, foreground: Foreground = "bright") -> np.ndarray:
    """k-means with k = 2 on pixel intensities (Lloyd's algorithm; thesis section 3.6.1), cleaned.

    ``sklearn.cluster.KMeans(n_clusters=2, algorithm="lloyd", n_init=4, random_state=seed)`` is
    fitted on the grey values of at most :data:`KMEANS_MAX_SAMPLES` pixels drawn at random with
    ``seed`` (all pixels when the image is smaller); every pixel then joins its nearest centre,
    which in 1-D is a threshold at the midpoint of the two centres. The foreground is the brighter
    cluster for ``"bright"`` and the darker one for ``"dark"``. The thesis used OpenCV's k-means
    with random initial centres; k-means++ seeding with a fixed seed is used here so the mask is
    reproducible.

    Args:
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB float32 in ``[0, 1]``.
        seed: seed of the pixel subsample and of the centre initialisation.
        foreground: ``"bright"`` or ``"dark"``, see :func:`otsu_mask`.

    Returns:
        ``(H, W)`` bool foreground mask; all ``False`` for an image without contrast.

    Raises:
        DataError: the image is not ``(H, W)`` / ``(H, W, 3)`` or is empty.
        ConfigError: ``foreground`` is neither ``"bright"`` nor ``"dark"``.
    """
    grey = _oriented_grey(image, foreground)
    if _is_flat(grey):
        return np.zeros(grey.shape, dtype=bool)
    values = grey.reshape(-1, 1).astype(np.float64)
    if values.shape[0] > KMEANS_MAX_SAMPLES:
        rng = np.random.default_rng(seed)
        values = values[rng.choice(values.shape[0], KMEANS_MAX_SAMPLES, replace=False)]
    km = KMeans(n_clusters=2, algorithm="lloyd", n_init=4, random_state=seed).fit(values)
    low, high = sorted(float(c) for c in km.cluster_centers_.ravel())
    return clean_mask(grey > (low + high) / 2.0)


def watershed_mask(image: np.ndarray, foreground: Foreground = "bright") -> np.ndarray:
    """Marker-based watershed (Beucher & Meyer 1993; thesis section 3.6.1), then cleaned.

    Markers come from the Otsu foreground ``F`` (see :func:`otsu_mask`, before cleaning): sure
    foreground = ``F`` eroded by a disc of radius :data:`WATERSHED_MARGIN` px, sure background =
    the complement of ``F`` dilated by the same disc; the band in between is unlabelled.
    ``skimage.segmentation.watershed`` floods the Sobel gradient magnitude of the grey image from
    these markers, so the boundary settles on the strongest edge within the band rather than on
    the global threshold; isolated Otsu speckles thinner than the disc vanish in the erosion. The
    foreground is the region flooded from the sure-foreground marker, post-processed with
    :func:`clean_mask`. When the erosion leaves no sure foreground the Otsu mask itself is used.

    Args:
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB float32 in ``[0, 1]``.
        foreground: ``"bright"`` or ``"dark"``, see :func:`otsu_mask`.

    Returns:
        ``(H, W)`` bool foreground mask; all ``False`` for an image without contrast.

    Raises:
        DataError: the image is not ``(H, W)`` / ``(H, W, 3)`` or is empty.
        ConfigError: ``foreground`` is neither ``"bright"`` nor ``"dark"``.
    """
    grey = _oriented_grey(image, foreground)
    if _is_flat(grey):
        return np.zeros(grey.shape, dtype=bool)
    rough = (grey > threshold_otsu(grey)).astype(np.uint8)
    size = 2 * WATERSHED_MARGIN + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    sure_fg = cv2.erode(rough, disc).astype(bool)
    sure_bg = ~cv2.dilate(rough, disc).astype(bool)
    if not sure_fg.any() or not sure_bg.any():
        return clean_mask(rough.astype(bool))
    markers = np.zeros(grey.shape, dtype=np.int32)
    markers[sure_bg] = 1
    markers[sure_fg] = 2
    labels = watershed(sobel(grey), markers)
    return clean_mask(labels == 2)


#: segmentation methods by the name ``flawscope segment --method`` takes
METHODS: dict[str, Segmenter] = {
    "otsu": otsu_mask,
    "kmeans": kmeans_mask,
    "watershed": watershed_mask,
}


def segment(image: np.ndarray, method: str, foreground: Foreground = "bright") -> np.ndarray:
    """Segment the part from the background with a method named in :data:`METHODS`.

    Args:
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB float32 in ``[0, 1]``.
        method: ``"otsu"``, ``"kmeans"`` or ``"watershed"``.
        foreground: ``"bright"`` or ``"dark"``, see :func:`otsu_mask`.

    Returns:
        ``(H, W)`` bool foreground mask, cleaned by :func:`clean_mask`.

    Raises:
        ConfigError: unknown ``method`` (the message names the known ones) or ``foreground``.
        DataError: the image is not ``(H, W)`` / ``(H, W, 3)`` or is empty.
    """
    try:
        segmenter = METHODS[method]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown segmentation method {method!r}",
            f"use one of: {', '.join(METHODS)}",
        ) from None
    return segmenter(image, foreground=foreground)


# ------------------------------------------------------------------------------ mask handling


def mean_mask(masks: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """The mean mask of one camera view (thesis section 5.1.1, "Mean mask in U-Net").

    Each training mask of the view is resized to ``shape`` with nearest-neighbour interpolation,
    the masks are averaged per pixel, and a pixel is foreground when strictly more than half of
    the masks cover it (``mean > 0.5``, the threshold of thesis listing 3.7 line 3; with an even
    number of masks a tie is background). The result is post-processed with :func:`clean_mask`.

    Args:
        masks: one or more ``(H_i, W_i)`` masks (bool, or numeric read as ``!= 0``); sizes may
            differ.
        shape: ``(H, W)`` of the mean mask, in pixels, both ``>= 1``.

    Returns:
        ``(H, W)`` bool.

    Raises:
        DataError: ``masks`` is empty or one of them is not 2-D.
        ConfigError: ``shape`` is not two positive integers.
    """
    if len(masks) == 0:
        raise DataError("cannot build a mean mask from no masks", "pass the view's training masks")
    if len(shape) != 2 or any(int(s) != s or s < 1 for s in shape):
        raise ConfigError(f"mean mask shape must be (H, W) >= 1 pixels, got {shape!r}")
    height, width = int(shape[0]), int(shape[1])
    total = np.zeros((height, width), dtype=np.float64)
    for i, mask in enumerate(masks):
        m = _check_mask(mask, name=f"mask {i}").astype(np.uint8)
        total += cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST)
    return clean_mask(total / len(masks) > 0.5)


def apply_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero the background: ``image * mask`` (thesis listings 3.2 / 3.6, ``cv2.bitwise_and``).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array of any dtype.
        mask: ``(H, W)`` bool (numeric is read as ``!= 0``); ``True`` = keep.

    Returns:
        array of ``image``'s shape and dtype, exactly 0 where ``mask`` is ``False`` (also where
        ``image`` held NaN), ``image`` elsewhere.

    Raises:
        DataError: ``mask`` is not 2-D or its ``(H, W)`` differs from the image's.
    """
    image = np.asarray(image)
    mask = _check_mask(mask)
    if image.shape[:2] != mask.shape or image.ndim not in (2, 3):
        raise DataError(
            f"mask shape {mask.shape} does not match image shape {image.shape}",
            "resize the mask to the image's (H, W) first",
        )
    keep = mask if image.ndim == 2 else mask[:, :, None]
    return np.where(keep, image, np.zeros((), dtype=image.dtype)).astype(image.dtype, copy=False)
