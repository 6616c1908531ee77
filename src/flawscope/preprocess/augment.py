"""Label-preserving augmentation of good training images (seed 003, thesis 3.5.1 and 5.5).

The thesis trains its autoencoder with small random rotations (-5 to 5 degrees), translations
and brightness / contrast changes, so that the normal variation of part placement and lighting
is not reported as a defect. :class:`Augmenter` builds that pipeline with albumentations;
:class:`AugmentedImages` applies it on the fly, reproducibly: the random draw of image ``i`` in
epoch ``e`` depends only on ``(seed, e, i)``, so the same seed gives the same epochs whatever
the batch order or the number of data-loader workers.
"""

from __future__ import annotations

import albumentations as A
import cv2
import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import Dataset

from flawscope.config import TrainingConfig


class Augmenter:
    """Random affine (rotation, translation) + brightness/contrast (+ flips) of one image.

    Settings from :class:`~flawscope.config.TrainingConfig`: ``aug_rotate`` (degrees, uniform in
    +-value), ``aug_translate`` (fraction of the side, uniform in +-value per axis),
    ``aug_brightness`` and ``aug_contrast`` (albumentations ``RandomBrightnessContrast``
    limits), ``aug_flip`` (horizontal and vertical flips, each with p = 0.5). Pixels moved in
    from outside are mirrored (``BORDER_REFLECT_101``), so no black wedges appear that the
    detector would have to learn as normal.
    """

    def __init__(self, cfg: TrainingConfig) -> None:
        transforms: list[A.BasicTransform] = [
            A.Affine(
                translate_percent=(-cfg.aug_translate, cfg.aug_translate),
                rotate=(-cfg.aug_rotate, cfg.aug_rotate),
                border_mode=cv2.BORDER_REFLECT_101,
                p=1.0,
            ),
            A.RandomBrightnessContrast(
                brightness_limit=cfg.aug_brightness, contrast_limit=cfg.aug_contrast, p=1.0
            ),
        ]
        if cfg.aug_flip:
            transforms += [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
        self.transform = A.Compose(transforms)

    def __call__(self, image: torch.Tensor, seed: int) -> torch.Tensor:
        """Augment one ``(C, H, W)`` float32 image in [0, 1]; same ``seed``, same result.

        Returns:
            ``(C, H, W)`` float32 tensor, clipped to ``[0, 1]``.
        """
        self.transform.set_random_seed(seed)
        hwc = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        out = self.transform(image=hwc)["image"]
        if out.ndim == 2:
            out = out[:, :, None]
        return torch.from_numpy(np.clip(out, 0.0, 1.0).transpose(2, 0, 1).copy())


class AugmentedImages(Dataset):
    """``(images[i] augmented,)`` items for the training loop; ``epoch`` set by the trainer.

    Args:
        images: ``(N, C, H, W)`` float32 tensor in [0, 1].
        augmenter: the transform.
        seed: base seed (``training.seed``).
    """

    def __init__(self, images: torch.Tensor, augmenter: Augmenter, seed: int) -> None:
        self.images, self.augmenter, self.seed = images, augmenter, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor]:
        seed = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
        return (self.augmenter(self.images[index], seed),)


class EpochCounter(Callback):
    """Tells an :class:`AugmentedImages` which epoch is starting (new draws every epoch)."""

    def __init__(self, dataset: AugmentedImages) -> None:
        self.dataset = dataset

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.dataset.epoch = trainer.current_epoch
