"""Pixel-level anomaly maps from reconstructions.

Two residual maps (``scoring.residual``): ``"l2"``, the per-pixel squared reconstruction error
(seed 000; Bergmann et al., MVTec AD, CVPR 2019, Sec. 4.1 "l2-autoencoder"), and ``"ssim"``,
1 - local structural similarity (Bergmann et al., "Improving unsupervised defect segmentation by
applying structural similarity to autoencoders", VISAPP 2019), which reacts to changes of local
luminance, contrast and structure rather than to small intensity offsets. Either is then
Gaussian-smoothed so single noisy pixels do not dominate the image score.
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


#: Gaussian window of the local SSIM statistics (Wang et al., IEEE TIP 2004: sigma 1.5 px, 11x11)
SSIM_SIGMA = 1.5


def ssim_residual(images: np.ndarray, reconstructions: np.ndarray) -> np.ndarray:
    """Per-pixel ``1 - SSIM`` between images and reconstructions, averaged over channels.

    Local SSIM with a Gaussian window (sigma :data:`SSIM_SIGMA` px, 11 x 11 support), data range
    1 and the constants of Wang et al. (K1 = 0.01, K2 = 0.03), computed by scikit-image's
    ``structural_similarity(..., full=True)``.

    Args:
        images, reconstructions: ``(N, C, H, W)`` float32 in ``[0, 1]``; H and W >= 7 pixels.

    Returns:
        ``(N, H, W)`` float32 in ``[0, 2]`` (0 = locally identical).
    """
    from skimage.metrics import structural_similarity

    out = np.empty((images.shape[0], *images.shape[2:]), dtype=np.float32)
    for i, (img, rec) in enumerate(zip(images, reconstructions, strict=True)):
        _, local = structural_similarity(
            img.astype(np.float64),
            rec.astype(np.float64),
            data_range=1.0,
            channel_axis=0,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
            full=True,
        )
        out[i] = 1.0 - local.mean(axis=0)
    return out


def residual_map(images: np.ndarray, reconstructions: np.ndarray, kind: str = "l2") -> np.ndarray:
    """The residual map named by ``kind``: ``"l2"`` (:func:`squared_residual`) or ``"ssim"``.

    Args:
        images, reconstructions: ``(N, C, H, W)`` float32 in ``[0, 1]``.

    Returns:
        ``(N, H, W)`` float32, >= 0.

    Raises:
        ValueError: unknown ``kind`` (the config validates it before this is reached).
    """
    if kind == "l2":
        return squared_residual(images, reconstructions)
    if kind == "ssim":
        return ssim_residual(images, reconstructions)
    raise ValueError(f"unknown residual map {kind!r}; use 'l2' or 'ssim'")


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
