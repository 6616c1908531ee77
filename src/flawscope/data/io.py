"""Reading image files into float arrays.

Formats: PNG, JPEG, BMP, TIFF (anything Pillow decodes); grey or RGB (alpha and palette images are
converted to RGB); 8- or 16-bit. Decoding is strict: a truncated or corrupt file raises
:class:`~flawscope.errors.ImageReadError` naming the file instead of returning a partial image.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from flawscope.errors import ImageReadError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})

# Decompression-bomb guard: refuse images above this many pixels (e.g. 20000 x 20000).
MAX_PIXELS = 400_000_000


def is_image_file(path: Path) -> bool:
    """True when ``path`` has one of the supported image suffixes (case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def _to_float(img: Image.Image) -> np.ndarray:
    """Convert a decoded PIL image to float32 in [0, 1]: (H, W) for grey, (H, W, 3) for colour."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(img, dtype=np.float32) / 65535.0
    if mode == "I":  # 32-bit int, used by Pillow for 16-bit PNGs
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(arr / scale, 0.0, 1.0).astype(np.float32)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        hi = float(arr.max(initial=0.0))
        return np.clip(arr / hi if hi > 1.0 else arr, 0.0, 1.0).astype(np.float32)
    if mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    if mode == "LA":
        return np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _colour_16bit(path: Path) -> np.ndarray | None:
    """16-bit colour PNG/TIFF as ``(H, W, 3)`` RGB float32 (Pillow keeps only 8 bits), else None."""
    data = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None or data.dtype != np.uint16 or data.ndim != 3:
        return None
    code = cv2.COLOR_BGRA2RGB if data.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(data, code).astype(np.float32) / 65535.0


def read_image(path: Path | str) -> np.ndarray:
    """Read one image file.

    Args:
        path: an image file (PNG, JPEG, BMP, TIFF).

    Returns:
        float32 array in ``[0, 1]``: ``(H, W)`` for grey images, ``(H, W, 3)`` RGB for colour.
        16-bit images (grey or colour) are scaled by 1/65535, 8-bit by 1/255.

    Raises:
        ImageReadError: the file is missing, empty, truncated, corrupt, not an image, or larger
            than :data:`MAX_PIXELS`.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image {path} does not exist", "check the path")
    if path.stat().st_size == 0:
        raise ImageReadError(f"image {path} is an empty file", "re-export or remove the file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ImageReadError(
                        f"image {path} has {img.width}x{img.height} pixels, above the "
                        f"{MAX_PIXELS:,} limit",
                        "downscale it before inspection",
                    )
                img.load()  # forces full decoding: truncated files raise here
                if img.mode in ("RGB", "RGBA") and img.format in ("PNG", "TIFF"):
                    deep = _colour_16bit(path)
                    if deep is not None:
                        return deep
                return _to_float(img)
    except ImageReadError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ImageReadError(
            f"image {path} cannot be decoded ({type(exc).__name__}: {exc})",
            "the file is corrupt, truncated or not an image; re-export or remove it",
        ) from exc


def read_mask(path: Path | str) -> np.ndarray:
    """Read a ground-truth mask: ``(H, W)`` bool, True where the pixel is defective (value > 0).

    Raises:
        ImageReadError: as :func:`read_image`.
    """
    img = read_image(path)
    if img.ndim == 3:
        img = img.max(axis=2)
    return img > 0
