"""The per-image preprocessing pipeline of an inspector (seed 003, ch. 3.4-3.8).

Order, the same at fit and at inspect: background segmentation on the image as read (a
foreground mask), exposure correction, background set to 0, CLAHE inside the mask. The
detector then sees the corrected image; the mask also travels with it so that pixels outside
the part never raise the anomaly score (:meth:`flawscope.inspector.Inspector.predict`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flawscope.config import PreprocessConfig
from flawscope.preprocess.enhance import EXPOSURE_MODES


class Preprocessor:
    """Callable ``image -> (corrected image, foreground mask or None)``.

    Args:
        config: the inspector's :class:`~flawscope.config.PreprocessConfig`.
        exposure: ``model.exposure`` (``"none"`` or ``"gain"``).

    Raises:
        ModelDirError: ``segment="unet"`` and the segmenter folder is missing or damaged.
    """

    def __init__(self, config: PreprocessConfig, exposure: str = "none") -> None:
        self.config = config
        self.exposure = EXPOSURE_MODES[exposure]
        self.unet = None
        if config.segment == "unet":
            from flawscope.segmentation.segmenter import UNetSegmenter

            self.unet = UNetSegmenter.load(Path(str(config.segmenter)))

    @property
    def active(self) -> bool:
        """Whether this pipeline changes anything (else the loader skips it)."""
        c = self.config
        return self.exposure is not None or c.segment != "none" or c.clahe

    def mask(self, image: np.ndarray) -> np.ndarray | None:
        """Foreground mask ``(H, W)`` bool of an image as read, or None without segmentation."""
        c = self.config
        if c.segment == "none":
            return None
        if self.unet is not None:
            return self.unet.predict_mask(image)
        from flawscope.preprocess.segmentation import segment

        return segment(image, c.segment, c.foreground)

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Preprocess one image.

        Args:
            image: ``(H, W)`` or ``(H, W, 3)`` float32 in ``[0, 1]``, as read.

        Returns:
            The corrected image (same shape, float32 in ``[0, 1]``, background 0 when
            segmenting) and the ``(H, W)`` bool foreground mask (None without segmentation).
        """
        c = self.config
        fg = self.mask(image)
        out = self.exposure(image) if self.exposure is not None else image
        if fg is not None:
            from flawscope.preprocess.segmentation import apply_mask

            out = apply_mask(out, fg)
        if c.clahe:
            from flawscope.preprocess.clahe import masked_clahe

            out = masked_clahe(out, fg, c.clahe_clip, c.clahe_grid)
        return out.astype(np.float32, copy=False), fg
