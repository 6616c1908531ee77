"""The per-image preprocessing pipeline of an inspector (seed 003, ch. 3.4-3.8).

Order, the same at fit and at inspect: background segmentation on the image as read (a
foreground mask), exposure correction, background set to 0, CLAHE inside the mask, then the
background filled with the part's mean intensity (``preprocess.background = "mean"``, the
default) or left black (``"black"``, the thesis). The
detector then sees the corrected image; the mask also travels with it so that pixels outside
the part never raise the anomaly score (:meth:`flawscope.inspector.Inspector.predict`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from flawscope.config import PreprocessConfig
from flawscope.preprocess.enhance import EXPOSURE_MODES

log = logging.getLogger("flawscope")


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
        #: view key -> mean foreground mask (``mean_mask``; filled by :meth:`fit_view_masks`)
        self.view_masks: dict[str, np.ndarray] = {}
        self.unet = None
        if config.segment == "unet":
            from flawscope.preprocess.unet_segmenter import UNetSegmenter

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
        from flawscope.preprocess.segment import segment

        return segment(image, c.segment, c.foreground)

    def view(self, path: Path | None) -> str | None:
        """The view key of an image file (``view_pattern`` in its name), or None."""
        from flawscope.data.manifest import name_key

        return name_key(self.config.view_pattern, path)

    def fit_view_masks(self, images: Iterable[tuple[Path, np.ndarray]]) -> dict[str, int]:
        """Build the mean mask of every view from good training images (thesis Sec. 5.1.1).

        Args:
            images: ``(path, image as read)`` pairs; images whose name matches no view are
                left out.

        Returns:
            ``{view: number of images}`` that went into each mean mask.
        """
        from flawscope.preprocess.segment import mean_mask

        masks: dict[str, list[np.ndarray]] = {}
        for path, image in images:
            key = self.view(path)
            if key is not None:
                masks.setdefault(key, []).append(self.mask(image))
        self.view_masks = {k: mean_mask(v, v[0].shape) for k, v in masks.items()}
        return {k: len(v) for k, v in masks.items()}

    def _foreground(self, image: np.ndarray, path: Path | None) -> np.ndarray | None:
        if self.config.mean_mask:
            key = self.view(path)
            if key in self.view_masks:
                m = self.view_masks[key].astype(np.uint8)
                h, w = image.shape[:2]
                return cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            log.warning("no mean mask for view %r of %s; segmenting the image itself", key, path)
        return self.mask(image)

    def __call__(
        self, image: np.ndarray, path: Path | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Preprocess one image.

        Args:
            image: ``(H, W)`` or ``(H, W, 3)`` float32 in ``[0, 1]``, as read.
            path: its file (for the view key of ``mean_mask``).

        Returns:
            The corrected image (same shape, float32 in ``[0, 1]``; when segmenting, the
            background is 0 or the part's mean, see ``preprocess.background``) and the
            ``(H, W)`` bool foreground mask (None without segmentation).
        """
        c = self.config
        fg = self._foreground(image, path)
        out = self.exposure(image) if self.exposure is not None else image
        if fg is not None:
            from flawscope.preprocess.segment import apply_mask

            out = apply_mask(out, fg)
        if c.clahe:
            from flawscope.preprocess.clahe import masked_clahe

            out = masked_clahe(out, fg, c.clahe_clip, c.clahe_grid)
        if fg is not None and c.background == "mean" and fg.any():
            out = fill_background(out, fg)
        return out.astype(np.float32, copy=False), fg


def fill_background(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Set the background (``~mask``) to the mean of the foreground, per channel.

    A uniform, neutral background keeps the clutter out like the thesis' black one, but does not
    make most pixels exactly 0: on black backgrounds the autoencoders collapsed to an all-zero
    reconstruction (benchmarks/README.md, "Ablation").

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` float32; mask: ``(H, W)`` bool, at least one True.

    Returns:
        A copy of ``image`` with the background filled.
    """
    out = np.array(image, dtype=np.float32, copy=True)
    fill = out[mask].mean(axis=0)
    out[~mask] = fill
    return out
