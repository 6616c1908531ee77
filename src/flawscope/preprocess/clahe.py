"""Contrast Limited Adaptive Histogram Equalisation inside a foreground mask.

Source: seed 003 (master's thesis on LEGO brick inspection), section 3.4.2 and listing 3.2
("CLAHE"), discussed in section 5.3; the algorithm is Zuiderveld's, "Contrast Limited Adaptive
Histogram Equalization", Graphics Gems IV, 1994, as implemented by OpenCV ``cv2.createCLAHE``.
"""

from __future__ import annotations

import cv2
import numpy as np

from flawscope.errors import ConfigError, DataError

__all__ = ["masked_clahe"]

#: the thesis' final settings (listing 3.2 line 1): ``clipLimit = 9, tileGridSize = (9, 9)``
CLIP_LIMIT = 9.0
TILE_GRID = 9

# L* of CIE L*a*b* as OpenCV returns it for float32 RGB in [0, 1]: 0 ... 100
_L_MAX = 100.0


def _to_u8(x: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(x * (255.0 / scale)), 0, 255).astype(np.uint8)


def masked_clahe(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    clip_limit: float = CLIP_LIMIT,
    tile_grid: int = TILE_GRID,
) -> np.ndarray:
    """CLAHE (Zuiderveld 1994) on the part only, the background kept black (thesis listing 3.2).

    Follows listing 3.2: the background is zeroed with the mask, OpenCV CLAHE
    (``cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile_grid, tile_grid))``) is applied to
    the masked image, and the mask is applied again, because "the background would become lightly
    more grey of about 10-pixel intensity value" (thesis 3.4.2). As in the listing, the zeroed
    background pixels take part in the tile histograms.

    CLAHE runs on an 8-bit image, as in the thesis (``cv2.imread(path, 0)``). OpenCV also accepts
    16-bit input, but then its per-bin clip limit is ``max(int(clip_limit * tile_area / 65536),
    1)`` counts, which floors to 1 for tiles smaller than ``65536 / clip_limit`` pixels, so the
    effective contrast limit would depend on the image size (measured on a low-contrast patch with
    the 9/9 settings: gain x23 at 64 px, x21 at 256 px, x5 at 1024 px, against x8-x9 at every size
    in 8 bits). The result is therefore quantised to 1/255 steps.

    Colour images: CLAHE is applied to the L* channel of CIE L*a*b* (OpenCV ``COLOR_RGB2Lab`` on
    float32, L* in [0, 100] scaled to 0-255), a* and b* are kept, and the result is converted back
    to RGB and clipped to [0, 1]; so hue is preserved and only lightness is equalised. The thesis
    worked on grey images only.

    Args:
        image: ``(H, W)`` grey or ``(H, W, 3)`` RGB float32 in ``[0, 1]`` (values outside are
            clipped).
        mask: ``(H, W)`` foreground mask (bool, numeric read as ``!= 0``), or ``None`` to equalise
            the whole image without masking.
        clip_limit: OpenCV clip limit, ``> 0``: the maximum slope of each tile's mapping relative
            to plain histogram equalisation of a flat histogram (thesis: 9).
        tile_grid: number of tiles per side, ``>= 1`` (thesis: 9, i.e. a 9 x 9 grid).

    Returns:
        float32 array of ``image``'s shape in ``[0, 1]``, exactly 0 (all channels) where ``mask``
        is ``False``.

    Raises:
        ConfigError: ``clip_limit <= 0`` or ``tile_grid < 1`` (or not an integer).
        DataError: the image is not ``(H, W)`` / ``(H, W, 3)``, is empty, or the mask's shape
            differs from the image's ``(H, W)``.
    """
    if not clip_limit > 0:
        raise ConfigError(f"CLAHE clip limit must be > 0, got {clip_limit!r}", "thesis value: 9")
    if int(tile_grid) != tile_grid or tile_grid < 1:
        raise ConfigError(
            f"CLAHE tile grid must be an integer >= 1, got {tile_grid!r}", "thesis value: 9"
        )
    image = np.asarray(image)
    colour = image.ndim == 3 and image.shape[2] == 3
    if not (image.ndim == 2 or colour) or image.size == 0:
        raise DataError(
            f"CLAHE needs an (H, W) grey or (H, W, 3) RGB image, got shape {image.shape}",
            "pass one non-empty image with 1 or 3 channels",
        )
    keep: np.ndarray | None = None
    if mask is not None:
        keep = np.asarray(mask)
        if keep.shape != image.shape[:2]:
            raise DataError(
                f"mask shape {keep.shape} does not match image shape {image.shape}",
                "resize the mask to the image's (H, W) first",
            )
        keep = keep.astype(bool, copy=False)

    img = np.clip(image.astype(np.float32), 0.0, 1.0)
    if keep is not None:
        img = np.where(keep[:, :, None] if colour else keep, img, np.float32(0.0))
    clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tile_grid),) * 2)
    if colour:
        lab = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2Lab)
        lab[:, :, 0] = clahe.apply(_to_u8(lab[:, :, 0], _L_MAX)).astype(np.float32) * (
            _L_MAX / 255.0
        )
        out = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0.0, 1.0)
    else:
        out = clahe.apply(_to_u8(img, 1.0)).astype(np.float32) / np.float32(255.0)
    if keep is not None:
        out = np.where(keep[:, :, None] if colour else keep, out, np.float32(0.0))
    return out.astype(np.float32, copy=False)
