"""Training-image augmentation: reproducible per (seed, epoch, image), mild, optional."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from flawscope.config import TrainingConfig
from flawscope.inspector import Inspector
from flawscope.preprocess.augment import AugmentedImages, Augmenter
from tests.conftest import tiny_config


def _image() -> torch.Tensor:
    x = torch.zeros(1, 32, 32)
    x[0, 8:24, 12:20] = 0.8  # a bar: rotation and shifts move it
    return x + 0.1


def test_augmenter_is_seeded_and_stays_in_range() -> None:
    aug = Augmenter(TrainingConfig(aug_rotate=10, aug_translate=0.1))
    x = _image()
    a, b, c = aug(x, 1), aug(x, 1), aug(x, 2)
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.allclose(a, x)


def test_zero_ranges_give_the_image_back() -> None:
    cfg = TrainingConfig(aug_rotate=0, aug_translate=0, aug_brightness=0, aug_contrast=0)
    x = _image()
    torch.testing.assert_close(Augmenter(cfg)(x, 7), x, atol=1e-5, rtol=0)


def test_augmented_images_differ_between_epochs_and_repeat_for_a_seed() -> None:
    images = torch.stack([_image(), _image().flip(-1)])
    ds = AugmentedImages(images, Augmenter(TrainingConfig()), seed=3)
    e0 = [ds[i][0] for i in range(2)]
    ds.epoch = 1
    e1 = [ds[i][0] for i in range(2)]
    again = AugmentedImages(images, Augmenter(TrainingConfig()), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(e0, [again[i][0] for i in range(2)], strict=True))
    assert not torch.equal(e0[0], e1[0])
    assert not torch.equal(e0[0], e0[1].flip(-1))  # images get their own draws


def test_fit_with_augmentation(tiny_dataset: Path) -> None:
    plain = Inspector.fit(tiny_dataset, tiny_config(epochs=2))
    aug = Inspector.fit(tiny_dataset, tiny_config(epochs=2, augment=True, aug_flip=True))
    assert len(aug.history["train_loss"]) == 2
    assert aug.history["train_loss"] != plain.history["train_loss"]
    assert np.isfinite(aug.threshold)


def test_cli_augment_flag(tiny_dataset: Path, tmp_path: Path) -> None:
    from tests.test_cli import run

    r = run("fit", tiny_dataset, "--out", tmp_path / "m", "--model", "cae", "--image-size", 32,
            "--epochs", 1, "--augment", "--aug-flip")  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "m" / "config.yaml").read_text()
    assert "augment: true" in text and "aug_flip: true" in text
