"""Train, save, load and apply the U-Net background segmenter of seed 003.

Source: seed 003 (master's thesis, LEGO polymer surfaces): section 3.6.3 "U-Net implementation"
(images resized to 512x512, ReLU and sigmoid, Adam, binary cross-entropy, early stopping on the
validation loss, the best model kept), section 3.7 "Using the U-Net model" (listings 3.6 / 3.7:
resize to the model size, predict, ``> 0.5``, closing with a 5x5 cross for 3 iterations, resize
back to the original size), section 5.1 and Appendix A, Listing A.1 (the network,
:mod:`flawscope.models.unet`). Architecture: Ronneberger et al., MICCAI 2015.

A model directory holds:

* ``weights.safetensors``: the network weights (:mod:`flawscope.models.weights`);
* ``segmenter.json``: format version, flawscope version, input size and channels, filters,
  training settings, pair counts and the per-epoch loss history.

Training pairs: every image under ``images_dir`` (recursive) with a mask under ``masks_dir`` named
``<stem>_mask.<ext>`` or ``<stem>.<ext>`` (any supported image format; the same sub-folder is
preferred, otherwise a unique stem anywhere under ``masks_dir``). A mask pixel is foreground when
its value is nonzero (:func:`flawscope.data.io.read_mask`).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from torch import nn

from flawscope import __version__
from flawscope.config import TrainingConfig
from flawscope.data.dataset import list_images, split_holdout
from flawscope.data.io import read_image, read_mask
from flawscope.errors import ConfigError, DataError, FlawscopeError, ModelDirError
from flawscope.models.unet import FILTERS, SIZE_MULTIPLE, UNet, check_filters
from flawscope.models.weights import read_tensors, save_tensors
from flawscope.preprocess.enhance import to_model_input
from flawscope.preprocess.segment import clean_mask
from flawscope.training import fit_network

log = logging.getLogger("flawscope")

FORMAT_VERSION = 1
STATE_FILE = "segmenter.json"
#: suffix of a mask's stem besides the plain ``<stem>`` (MVTec AD style ``<stem>_mask.png``)
MASK_SUFFIX = "_mask"
#: probability above which a pixel is foreground (thesis listing 3.7, ``preds_mask > 0.5``)
THRESHOLD = 0.5

_REFIT = "re-train it with UNetSegmenter.fit(images_dir, masks_dir, out_dir)"


class SegmentationModule(L.LightningModule):
    """Trains a :class:`UNet` with binary cross-entropy and Adam (thesis section 3.6.3).

    :func:`flawscope.training.fit_network` feeds ``(x,)`` batches of one tensor, so each sample
    is the image and its mask stacked on the channel axis: ``(N, C + 1, S, S)`` float32, the first
    C channels the image in ``[0, 1]``, the last one the mask (0 background, 1 foreground). The
    loss is ``BCEWithLogitsLoss`` on the network's logits, i.e. the listing's
    ``binary_crossentropy`` on the sigmoid output, computed stably. Optimiser: Adam (the listing's
    ``optimizer='adam'``) with the configured learning rate and weight decay, no schedule.
    """

    def __init__(
        self,
        network: UNet,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.network = network
        self.channels = network.channels
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.loss_fn = nn.BCEWithLogitsLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def _step(self, batch: tuple[torch.Tensor, ...], name: str) -> torch.Tensor:
        (xy,) = batch
        x, y = xy[:, : self.channels], xy[:, self.channels :]
        loss = self.loss_fn(self.network(x), y)
        self.log(name, loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(xy))
        return loss

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train_loss")

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val_loss")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )


# --------------------------------------------------------------------------------- pairing


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        state = "is not a folder" if path.exists() else "does not exist"
        raise DataError(f"{what} {path} {state}", f"pass the folder of {what.split()[0]}s")
    return path


def _names(paths: Sequence[Path], limit: int = 5) -> str:
    shown = ", ".join(p.name for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def pair_files(images_dir: Path | str, masks_dir: Path | str) -> list[tuple[Path, Path]]:
    """Pair every image under ``images_dir`` with its mask under ``masks_dir`` by file stem.

    The mask of ``<sub>/<stem>.<ext>`` is ``<sub>/<stem>_mask.*`` or ``<sub>/<stem>.*`` relative
    to ``masks_dir`` (``_mask`` first), else the one file anywhere under ``masks_dir`` with that
    stem. Images without a mask and masks without an image are left out with one warning each
    (logger ``flawscope``). When both folders are the same, only ``*_mask`` files are masks.

    Returns:
        ``(image, mask)`` paths, sorted by image path; possibly empty.

    Raises:
        DataError: a folder does not exist or is not a folder.
    """
    images_dir = _require_dir(Path(images_dir), "image folder")
    masks_dir = _require_dir(Path(masks_dir), "mask folder")
    same = images_dir.resolve() == masks_dir.resolve()
    masks = list_images(masks_dir)
    if same:
        masks = [m for m in masks if m.stem.endswith(MASK_SUFFIX)]
    mask_set = set(masks)
    images = [p for p in list_images(images_dir) if p not in mask_set]
    by_rel = {m.relative_to(masks_dir).with_suffix(""): m for m in masks}
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for m in masks:
        by_stem[m.stem].append(m)

    pairs: list[tuple[Path, Path]] = []
    lonely: list[Path] = []
    for img in images:
        rel = img.relative_to(images_dir).with_suffix("")
        names = (rel.name + MASK_SUFFIX,) if same else (rel.name + MASK_SUFFIX, rel.name)
        found = next((by_rel[k] for n in names if (k := rel.with_name(n)) in by_rel), None)
        if found is None:
            found = next((by_stem[n][0] for n in names if len(by_stem[n]) == 1), None)
        if found is None:
            lonely.append(img)
        else:
            pairs.append((img, found))
    if lonely:
        log.warning(
            "skipping %d image(s) in %s without a mask <stem>%s.png or <stem>.png in %s: %s",
            len(lonely),
            images_dir,
            MASK_SUFFIX,
            masks_dir,
            _names(lonely),
        )
    used = {m for _, m in pairs}
    unused = [m for m in masks if m not in used]
    if unused:
        log.warning(
            "ignoring %d mask(s) in %s without an image in %s: %s",
            len(unused),
            masks_dir,
            images_dir,
            _names(unused),
        )
    return pairs


# ------------------------------------------------------------------------------- segmenter


def _check_format(size: int, channels: int) -> tuple[int, int]:
    """``(size, channels)`` as ints; ConfigError unless a multiple of 16 and 1 or 3."""
    whole = isinstance(size, (int, np.integer)) and not isinstance(size, bool)
    if not whole or size < SIZE_MULTIPLE or size % SIZE_MULTIPLE:
        fixed = max(SIZE_MULTIPLE, int(size) - int(size) % SIZE_MULTIPLE) if whole else 512
        raise ConfigError(
            f"U-Net input size {size!r} is not a positive multiple of {SIZE_MULTIPLE} "
            "(the network pools four times by 2)",
            f"choose e.g. size={fixed} (the thesis uses 512)",
        )
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ConfigError(f"U-Net channels must be 1 or 3, got {channels!r}", "use 1 (grey) or 3")
    return int(size), int(channels)


def _check_image(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` view of an image; DataError for any other shape."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or image.size == 0:
        raise DataError(
            f"the U-Net segmenter needs an (H, W) grey or (H, W, 3) RGB image, got shape "
            f"{image.shape}",
            "pass one image at a time, float32 in [0, 1], with 1 or 3 channels",
        )
    return image


class UNetSegmenter:
    """Foreground/background segmentation with the thesis' U-Net (seed 003, Listing A.1).

    Images of any size are resized to the square model input ``size`` x ``size`` (area
    interpolation when shrinking, bilinear when enlarging), converted to ``channels``, predicted,
    and the result is resized back to the image size.

    Args:
        size: model input side S in pixels, a multiple of 16 (the thesis: 512).
        channels: 1 (grey; RGB images are converted with BT.601 luma) or 3 (RGB).
        filters: filters of the five U-Net levels (the thesis: 16, 32, 64, 128, 256).
        seed: seed of the weight initialisation.

    Attributes:
        network: the :class:`UNet`, on the CPU, in eval mode.
        history: per-epoch ``{"train_loss": [...], "val_loss": [...]}`` (mean BCE), empty until
            trained.
        info: what :meth:`fit` recorded (pair counts, training settings); saved with the model.

    Raises:
        ConfigError: ``size`` not a positive multiple of 16, ``channels`` not 1 or 3, or
            ``filters`` not five positive integers.
    """

    def __init__(
        self,
        size: int = 512,
        channels: int = 1,
        filters: Sequence[int] = FILTERS,
        seed: int = 42,
    ) -> None:
        self.size, self.channels = _check_format(size, channels)
        self.filters = check_filters(filters)
        torch.manual_seed(seed)
        self.network = UNet(channels, self.filters).eval()
        self.history: dict[str, list[float]] = {}
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------------------ training
    @classmethod
    def fit(
        cls,
        images_dir: Path | str,
        masks_dir: Path | str,
        out_dir: Path | str,
        size: int = 512,
        channels: int = 1,
        training: TrainingConfig | None = None,
        filters: Sequence[int] = FILTERS,
    ) -> UNetSegmenter:
        """Train a segmenter on image/mask pairs and save it to ``out_dir``.

        Pairs are found by :func:`pair_files`; a pair whose image or mask cannot be read is
        skipped with a warning. Images are resized to ``size`` x ``size`` (area / bilinear),
        masks with nearest-neighbour interpolation (nonzero = foreground). A seeded share
        ``training.holdout_fraction`` (default 15 %, at least one pair) is held out for early
        stopping on its BCE; the weights of the best hold-out epoch are kept
        (:func:`flawscope.training.fit_network`: Lightning, ``training.epochs``,
        ``batch_size``, ``patience``, ``accelerator``). The thesis trained with batch size 16,
        early-stopping patience 9-50 and at most 100-400 epochs (figures 3.24/3.25, listing 3.5).

        Args:
            images_dir: folder of training images (recursive), any size, grey or RGB.
            masks_dir: folder of their masks (may be ``images_dir`` with ``*_mask`` files).
            out_dir: model directory to write (created if needed).
            size: model input side S in pixels, a multiple of 16 (the thesis: 512).
            channels: 1 (grey) or 3 (RGB).
            training: loop settings; ``lr_patience``/``lr_factor`` are not used (plain Adam,
                as in Listing A.1).
            filters: filters of the five U-Net levels.

        Returns:
            The trained segmenter (also saved to ``out_dir``).

        Raises:
            ConfigError: bad ``size``, ``channels`` or ``filters``.
            DataError: a folder is missing, or fewer than 2 usable pairs (none: the message names
                both folders).
        """
        t = training or TrainingConfig()
        seg = cls(size, channels, filters, seed=t.seed)
        size, channels = seg.size, seg.channels
        images_dir, masks_dir = Path(images_dir), Path(masks_dir)
        pairs = pair_files(images_dir, masks_dir)
        data = np.empty((len(pairs), channels + 1, size, size), dtype=np.float32)
        n = 0
        skipped = 0
        for img_path, mask_path in pairs:
            try:
                img = read_image(img_path)
                mask = read_mask(mask_path)
            except FlawscopeError as exc:
                log.warning("skipping pair %s / %s: %s", img_path.name, mask_path.name, exc)
                skipped += 1
                continue
            if mask.shape != img.shape[:2]:
                log.warning(
                    "mask %s is %dx%d px, image %s is %dx%d px; both are resized to %d px",
                    mask_path,
                    mask.shape[1],
                    mask.shape[0],
                    img_path,
                    img.shape[1],
                    img.shape[0],
                    size,
                )
            data[n, :channels] = to_model_input(img, size, channels)[0]
            data[n, channels] = cv2.resize(
                mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST
            )
            n += 1
        if n == 0:
            what = "no image/mask pairs" if not pairs else "no readable image/mask pairs"
            raise DataError(
                f"{what} in {images_dir} (images) and {masks_dir} (masks)",
                f"name each mask <stem>{MASK_SUFFIX}.png or <stem>.png after its image",
            )
        if n < 2:
            raise DataError(
                f"only 1 usable image/mask pair in {images_dir} and {masks_dir}",
                "the U-Net needs at least 2 (one is held out for early stopping)",
            )
        train_idx, hold_idx = split_holdout(list(range(n)), t.holdout_fraction, t.seed)
        log.info("training the U-Net on %d pairs, %d held out", len(train_idx), len(hold_idx))
        tensors = torch.from_numpy(data[:n])
        seg.network.train()
        module = SegmentationModule(seg.network, t.learning_rate, t.weight_decay)
        seg.history = fit_network(module, tensors[train_idx], tensors[hold_idx], t)
        seg.network = module.network.cpu().eval()
        seg.info = {
            "pairs": {"train": len(train_idx), "holdout": len(hold_idx), "skipped": skipped},
            "training": t.model_dump(mode="json"),
        }
        seg.save(out_dir)
        return seg

    # --------------------------------------------------------------------------- persistence
    def save(self, directory: Path | str) -> Path:
        """Write ``weights.safetensors`` and ``segmenter.json`` to ``directory`` (created).

        Returns:
            The directory.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_tensors(d, self.network.state_dict())
        state = {
            "format_version": FORMAT_VERSION,
            "flawscope_version": __version__,
            "model": "unet-segmenter",
            "size": self.size,
            "channels": self.channels,
            "filters": list(self.filters),
            **self.info,
            "history": self.history,
        }
        path = d / STATE_FILE
        tmp = path.with_suffix(".json.tmp")  # replaced in one step: never half-written
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)
        return d

    @classmethod
    def load(cls, directory: Path | str) -> UNetSegmenter:
        """Load a segmenter written by :meth:`fit` / :meth:`save` (on the CPU, eval mode).

        Raises:
            ModelDirError: the folder, ``segmenter.json`` or ``weights.safetensors`` is missing or
                damaged, the format version differs, or the weights do not fit the network.
        """
        d = Path(directory)
        if not d.is_dir():
            raise ModelDirError(f"segmenter directory {d} does not exist", _REFIT)
        path = d / STATE_FILE
        if not path.is_file():
            raise ModelDirError(f"{d} is not a U-Net segmenter directory (no {STATE_FILE})", _REFIT)
        try:
            state = json.loads(path.read_text())
            fmt = state["format_version"]
            if fmt != FORMAT_VERSION:
                raise ModelDirError(
                    f"{path} has format version {fmt}; this flawscope {__version__} reads "
                    f"format {FORMAT_VERSION}",
                    _REFIT + ", or use the flawscope version that wrote it",
                )
            seg = cls(state["size"], state["channels"], state["filters"])
        except ModelDirError:
            raise
        except (OSError, ValueError, TypeError, KeyError, FlawscopeError) as exc:
            raise ModelDirError(
                f"{path} is damaged ({type(exc).__name__}: {str(exc)[:120]})", _REFIT
            ) from exc
        try:
            tensors = read_tensors(d)
        except ModelDirError as exc:
            raise ModelDirError(exc.problem, _REFIT) from exc
        try:
            seg.network.load_state_dict(tensors)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1].strip()[:120]
            raise ModelDirError(
                f"{d / 'weights.safetensors'} does not match the U-Net in {STATE_FILE} ({first})",
                _REFIT,
            ) from exc
        seg.network.eval()
        seg.history = state.get("history", {})
        seg.info = {k: state[k] for k in ("pairs", "training") if k in state}
        return seg

    # ---------------------------------------------------------------------------- prediction
    def _proba_model(self, image: np.ndarray) -> np.ndarray:
        """Foreground probabilities ``(S, S)`` float32 of a checked image, at the model size."""
        x = torch.from_numpy(to_model_input(image, self.size, self.channels)[0])[None]
        device = next(self.network.parameters()).device
        return self.network.predict(x.to(device))[0, 0].float().cpu().numpy()

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Foreground probability of every pixel, before thresholding (e.g. for ROC AUC).

        Args:
            image: ``(H, W)`` grey or ``(H, W, 3)`` RGB float32 in ``[0, 1]``, any size.

        Returns:
            ``(H, W)`` float32 in ``[0, 1]``: the U-Net's sigmoid output at ``size`` x ``size``,
            resized back bilinearly.

        Raises:
            DataError: the image is not ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, or is empty.
        """
        image = _check_image(image)
        h, w = image.shape[:2]
        proba = self._proba_model(image)
        if proba.shape != (h, w):
            proba = cv2.resize(proba, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(proba, 0.0, 1.0).astype(np.float32, copy=False)

    def predict_mask(self, image: np.ndarray) -> np.ndarray:
        """Foreground mask of an image (thesis section 3.7, listing 3.7).

        At the model size: probability ``> 0.5``, closing with a 5x5 cross for 3 iterations and
        hole filling (:func:`flawscope.preprocess.segment.clean_mask`); then resized back to
        the image size with nearest-neighbour interpolation. (The listing resizes the 0/255 mask
        bilinearly and re-thresholds at 220, which is nearly the same boundary.)

        Args:
            image: ``(H, W)`` grey or ``(H, W, 3)`` RGB float32 in ``[0, 1]``, any size.

        Returns:
            ``(H, W)`` bool, True on the part (foreground).

        Raises:
            DataError: the image is not ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, or is empty.
        """
        image = _check_image(image)
        h, w = image.shape[:2]
        mask = clean_mask(self._proba_model(image) > THRESHOLD).astype(np.uint8)
        if mask.shape != (h, w):
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        return mask.astype(bool)
