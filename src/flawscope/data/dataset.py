"""Samples and datasets: MVTec AD folders, plain folders of images, hold-out splits, loading.

Layouts read:

* MVTec AD: ``ROOT/train/good/*``, ``ROOT/test/good/*``, ``ROOT/test/<defect>/*`` and optional
  masks ``ROOT/ground_truth/<defect>/<stem>_mask.png`` (Bergmann et al., CVPR 2019).
* Plain: a folder (searched recursively) of good images to learn from, and any files or folders
  to inspect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from flawscope.data.io import is_image_file, read_image, read_mask
from flawscope.errors import DataError, FlawscopeError
from flawscope.preprocess.enhance import Box, to_model_input

log = logging.getLogger("flawscope")

GOOD = "good"


@dataclass(frozen=True)
class Sample:
    """One image on disk and what is known about it.

    Attributes:
        path: the image file.
        label: 0 good, 1 defective, -1 unknown (images to inspect).
        defect_type: ``"good"``, the defect folder name, or ``""`` when unknown.
        mask_path: the ground-truth mask file (defect = nonzero) or None.
        group: the image's group (camera view, layer family) from a manifest, ``""`` if none.
        batch: the production batch (lot) from a manifest or the command line, ``""`` if none.
    """

    path: Path
    label: int = -1
    defect_type: str = ""
    mask_path: Path | None = None
    group: str = ""
    batch: str = ""


def _require_dir(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"{what} {path} does not exist", "check the path and spelling")
    if not path.is_dir():
        raise DataError(f"{what} {path} is not a folder", "pass a folder of images")
    return path


def list_images(folder: Path) -> list[Path]:
    """All image files under ``folder`` (recursive, sorted; hidden files skipped)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and is_image_file(p) and not any(s.startswith(".") for s in p.parts[-1:])
    )


def is_mvtec_root(path: Path) -> bool:
    """True when ``path`` looks like an MVTec AD category (has ``train/good`` or ``test``)."""
    return (path / "train" / "good").is_dir() or (path / "test").is_dir()


def training_samples(path: Path | str) -> list[Sample]:
    """Good images to learn from: ``path/train/good`` of an MVTec folder, else all in ``path``.

    Raises:
        DataError: the folder is missing or holds no images (an empty training set).
    """
    path = _require_dir(Path(path), "training folder")
    folder = path / "train" / "good" if (path / "train" / "good").is_dir() else path
    files = list_images(folder)
    if not files:
        raise DataError(
            f"training folder {folder} contains no images (png, jpg, bmp, tif)",
            "point flawscope fit at a folder of good images or an MVTec folder with train/good",
        )
    return [Sample(p, 0, GOOD) for p in files]


def labelled_samples(root: Path | str) -> list[Sample]:
    """Labelled test images of an MVTec folder: ``test/good`` (label 0), ``test/<defect>`` (1).

    Masks are attached from ``ground_truth/<defect>/<stem>_mask.png`` where that file exists.

    Raises:
        DataError: ``root/test`` is missing or holds no images.
    """
    root = _require_dir(Path(root), "dataset folder")
    test = root / "test"
    if not test.is_dir():
        raise DataError(
            f"dataset folder {root} has no test/ subfolder",
            "evaluate needs the MVTec layout: test/good and test/<defect> (masks in ground_truth/)",
        )
    samples: list[Sample] = []
    for sub in sorted(p for p in test.iterdir() if p.is_dir()):
        defect = sub.name
        for f in list_images(sub):
            mask = root / "ground_truth" / defect / f"{f.stem}_mask.png"
            samples.append(
                Sample(
                    f,
                    0 if defect == GOOD else 1,
                    defect,
                    mask if defect != GOOD and mask.is_file() else None,
                )
            )
    if not samples:
        raise DataError(f"{test} contains no images", "add test/good and test/<defect> folders")
    return samples


def collect_inputs(paths: Iterable[Path | str]) -> list[Sample]:
    """Images to inspect from files and folders (folders searched recursively), label unknown.

    Raises:
        DataError: a path does not exist, or no image was found at all.
    """
    samples: list[Sample] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise DataError(f"input {p} does not exist", "check the path and spelling")
        files = list_images(p) if p.is_dir() else [p]
        samples.extend(Sample(f) for f in files)
    if not samples:
        raise DataError(
            "no images found in the given paths", "pass image files or folders of images"
        )
    return samples


T = TypeVar("T")


def split_holdout(samples: Sequence[T], fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """Split good training samples (or their indices) into (train, hold-out), order kept.

    The hold-out serves early stopping and sets the threshold; it is never trained on.

    Args:
        samples: good samples, at least 2.
        fraction: share of samples held out, in (0, 1); at least one sample is held out and at
            least one kept for training.
        seed: RNG seed; the same seed gives the same split.

    Raises:
        DataError: fewer than 2 samples.
    """
    n = len(samples)
    if n < 2:
        raise DataError(
            f"only {n} usable training image(s)",
            "flawscope needs at least 2 good images (one for training, one for the hold-out)",
        )
    n_hold = min(n - 1, max(1, round(n * fraction)))
    order = np.random.default_rng(seed).permutation(n)
    hold = sorted(order[:n_hold].tolist())
    train = sorted(order[n_hold:].tolist())
    return [samples[i] for i in train], [samples[i] for i in hold]


def detect_channels(samples: Sequence[Sample], probe: int = 8) -> int:
    """3 when any of the first ``probe`` readable images has colour, else 1.

    An RGB file whose three channels are equal (a grey picture saved as colour) counts as grey.
    Unreadable files are passed over here (they are warned about and skipped when loaded).

    Returns:
        1 or 3; 1 when none of the probed images can be read.
    """
    seen = 0
    for s in samples:
        if seen == probe:
            break
        try:
            img = read_image(s.path)
        except FlawscopeError:
            continue
        seen += 1
        if img.ndim == 3 and float(np.ptp(img[::4, ::4], axis=2).max()) > 1.5 / 255:
            return 3
    return 1


#: per-image preprocessing: (``(H, W[, 3])`` float32 image as read, its file) -> (corrected
#: image of the same shape, ``(H, W)`` bool foreground mask or None)
Preprocess = Callable[[np.ndarray, Path], tuple[np.ndarray, "np.ndarray | None"]]


@dataclass
class LoadedBatch:
    """Images loaded for a detector.

    Attributes:
        images: ``(N, C, S, S)`` float32 tensor in ``[0, 1]`` at the model input size S.
        samples: the N samples that loaded (unreadable ones are left out).
        originals: the N images as read, ``(H, W)`` or ``(H, W, 3)`` float32, only when kept.
        sizes: the N original sizes ``(H, W)`` in pixels.
        boxes: the N regions ``(top, left, height, width)`` of the image content in the model
            input (the whole S x S input unless the aspect ratio is kept).
        skipped: ``(sample, reason)`` for every sample that could not be used.
        foreground: ``(N, S, S)`` bool foreground masks at the model input size when the
            preprocessing segments the background, else None.
    """

    images: torch.Tensor
    samples: list[Sample]
    sizes: list[tuple[int, int]]
    boxes: list[Box]
    skipped: list[tuple[Sample, str]]
    originals: list[np.ndarray] | None = None
    foreground: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def slice(self, start: int, stop: int) -> LoadedBatch:
        """The images ``start`` to ``stop - 1`` as a batch of their own (views, no copies)."""
        return LoadedBatch(
            self.images[start:stop],
            self.samples[start:stop],
            self.sizes[start:stop],
            self.boxes[start:stop],
            [],
            None if self.originals is None else self.originals[start:stop],
            None if self.foreground is None else self.foreground[start:stop],
        )


def load_images(
    samples: Sequence[Sample],
    size: int | tuple[int, int],
    channels: int,
    min_side: int,
    keep_originals: bool = False,
    keep_aspect: bool = False,
    preprocess: Preprocess | None = None,
) -> LoadedBatch:
    """Read, convert and resize ``samples`` into one tensor, skipping unusable files with a warning.

    Args:
        samples: images to read.
        size: model input side length S in pixels, or ``(height, width)`` (overlap tiling).
        channels: 1 (grey) or 3 (RGB).
        min_side: images whose shorter side is below this many pixels are skipped.
        keep_originals: also return the images as read (for overlays at full resolution).
        keep_aspect: letterbox instead of squashing (see ``preprocess.enhance.letterbox``).
        preprocess: applied to each image as read, before resizing: returns the corrected
            image and its foreground mask or None (see
            :class:`flawscope.preprocess.pipeline.Preprocessor`); ``originals`` stay as read.

    Returns:
        A :class:`LoadedBatch`; ``images`` has shape ``(0, C, S, S)`` when nothing loaded.
    """
    # filled row by row: no list of arrays plus a stacked copy (twice the memory) at any time
    shape = size if isinstance(size, tuple) else (size, size)
    out = np.empty((len(samples), channels, *shape), dtype=np.float32)
    kept: list[Sample] = []
    sizes: list[tuple[int, int]] = []
    boxes: list[Box] = []
    originals: list[np.ndarray] = []
    skipped: list[tuple[Sample, str]] = []
    masks: list[np.ndarray] = []
    for s in samples:
        try:
            img = read_image(s.path)
            h, w = img.shape[:2]
            if min(h, w) < min_side:
                raise DataError(
                    f"image {s.path} is {w}x{h} px, smaller than the {min_side} px minimum side",
                    "use a larger image or crop, or lower min_image_side in the model config",
                )
        except FlawscopeError as exc:
            log.warning("skipping %s", exc)
            skipped.append((s, str(exc)))
            continue
        fg = None
        if preprocess is not None:
            img_in, fg = preprocess(img, s.path)
        else:
            img_in = img
        out[len(kept)], box = to_model_input(img_in, size, channels, keep_aspect)
        if fg is not None:
            fg_in, _ = to_model_input(fg.astype(np.float32), size, 1, keep_aspect)
            masks.append(fg_in[0] > 0.5)
        boxes.append(box)
        kept.append(s)
        sizes.append((h, w))
        if keep_originals:
            originals.append(img)
    images = torch.from_numpy(out[: len(kept)])
    foreground = np.stack(masks) if masks else None
    return LoadedBatch(
        images, kept, sizes, boxes, skipped, originals if keep_originals else None, foreground
    )


def load_mask(sample: Sample, shape: tuple[int, int]) -> np.ndarray:
    """Mask of ``sample`` resized (nearest) to ``shape`` = (H, W); all False without a mask."""
    import cv2

    if sample.mask_path is None:
        return np.zeros(shape, dtype=bool)
    m = read_mask(sample.mask_path).astype(np.uint8)
    if m.shape != shape:
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return m.astype(bool)
