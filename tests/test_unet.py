"""The seed-003 U-Net background segmenter (tiny sizes and filters, a few seconds on a CPU)."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from flawscope.config import TrainingConfig
from flawscope.errors import ConfigError, DataError, ModelDirError
from flawscope.models.unet import FILTERS, UNet
from flawscope.preprocess.unet_segmenter import (
    STATE_FILE,
    SegmentationModule,
    UNetSegmenter,
    pair_files,
)

TINY = (4, 8, 16, 32, 64)
SIZE = 32


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """One torch thread: on a busy 2-core machine two OpenMP threads slow tiny networks down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def disc(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc on a dark noisy background: float32 image in [0, 1] and its bool mask."""
    yy, xx = np.mgrid[:height, :width]
    side = min(height, width)
    r = rng.uniform(0.22, 0.35) * side
    cy = rng.uniform(r + 1, height - r - 1)
    cx = rng.uniform(r + 1, width - r - 1)
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    image = rng.uniform(0.0, 0.3, (height, width)) + mask * rng.uniform(0.5, 0.65)
    return np.clip(image, 0, 1).astype(np.float32), mask


def write_pairs(root: Path, n: int, seed: int = 0, suffix: str = "_mask") -> tuple[Path, Path]:
    """``n`` disc images (40 x 48 px) in ``root/images`` and masks ``<stem><suffix>.png``."""
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        image, mask = disc(rng, 40, 48)
        cv2.imwrite(str(images / f"img{i:02d}.png"), (image * 255).astype(np.uint8))
        cv2.imwrite(str(masks / f"img{i:02d}{suffix}.png"), mask.astype(np.uint8) * 255)
    return images, masks


def tiny_training(**kw: object) -> TrainingConfig:
    return TrainingConfig.model_validate(
        {"epochs": 2, "batch_size": 4, "progress": False, "accelerator": "cpu", **kw}
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[UNetSegmenter, Path]:
    """A tiny segmenter fitted for 2 epochs on 6 generated pairs and saved."""
    root = tmp_path_factory.mktemp("unet")
    images, masks = write_pairs(root, 6)
    out = root / "model"
    seg = UNetSegmenter.fit(images, masks, out, size=SIZE, training=tiny_training(), filters=TINY)
    return seg, out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


# ------------------------------------------------------------------------------------ network


@pytest.mark.parametrize("channels", [1, 3])
def test_unet_output_shape_and_range(channels: int) -> None:
    net = UNet(channels, TINY)
    x = torch.rand(2, channels, SIZE, SIZE)
    logits = net(x)
    assert logits.shape == (2, 1, SIZE, SIZE) and logits.dtype == torch.float32
    p = net.predict(x)
    assert p.shape == (2, 1, SIZE, SIZE) and 0.0 <= float(p.min()) <= float(p.max()) <= 1.0
    assert net.training  # predict leaves the mode as it was


def test_unet_default_filters_match_the_keras_listing() -> None:
    net = UNet(3)
    assert net.filters == FILTERS == (16, 32, 64, 128, 256)
    # the Keras summary of Listing A.1 with IMG_CHANNELS = 3
    assert sum(p.numel() for p in net.parameters()) == 1_941_105
    drops = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops == [0.1, 0.1, 0.1, 0.2, 0.3, 0.2, 0.2, 0.1, 0.1]


def test_unet_rejects_bad_sizes_and_filters() -> None:
    with pytest.raises(ConfigError, match="multiples of 16"):
        UNet(1, TINY)(torch.rand(1, 1, 24, 32))
    with pytest.raises(ConfigError, match="five positive integers"):
        UNet(1, (4, 8, 16))
    with pytest.raises(ConfigError, match="multiple of 16"):
        UNetSegmenter(size=40, filters=TINY)
    with pytest.raises(ConfigError, match="1 or 3"):
        UNetSegmenter(size=SIZE, channels=2, filters=TINY)


def test_loss_decreases_over_a_few_steps() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    pairs = [disc(rng, SIZE, SIZE) for _ in range(4)]
    x = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
    y = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.float32))[:, None]
    module = SegmentationModule(UNet(1, TINY), learning_rate=3e-3)
    opt = module.configure_optimizers()

    def eval_loss() -> float:
        module.network.eval()
        with torch.no_grad():
            return float(module.loss_fn(module.network(x), y))

    before = eval_loss()
    module.network.train()
    for _ in range(10):
        opt.zero_grad()
        module.loss_fn(module.network(x), y).backward()
        opt.step()
    assert eval_loss() < 0.9 * before


# ---------------------------------------------------------------------------------- segmenter


def test_fit_saves_and_load_gives_identical_predictions(
    fitted: tuple[UNetSegmenter, Path],
) -> None:
    seg, out = fitted
    assert (out / "weights.safetensors").is_file()
    state = json.loads((out / STATE_FILE).read_text())
    assert state["size"] == SIZE and state["channels"] == 1 and state["filters"] == list(TINY)
    assert state["format_version"] == 1 and state["pairs"]["train"] + state["pairs"]["holdout"] == 6
    assert len(state["history"]["val_loss"]) == 2
    loaded = UNetSegmenter.load(out)
    image = disc(np.random.default_rng(7), 45, 70)[0]
    np.testing.assert_array_equal(seg.predict_proba(image), loaded.predict_proba(image))
    np.testing.assert_array_equal(seg.predict_mask(image), loaded.predict_mask(image))


def test_predict_keeps_the_original_non_square_size(fitted: tuple[UNetSegmenter, Path]) -> None:
    seg, _ = fitted
    grey = disc(np.random.default_rng(8), 45, 70)[0]
    for image in (grey, np.repeat(grey[:, :, None], 3, axis=2), grey[:, :, None]):
        mask = seg.predict_mask(image)
        assert mask.shape == (45, 70) and mask.dtype == bool
        proba = seg.predict_proba(image)
        assert proba.shape == (45, 70) and proba.dtype == np.float32
        assert 0.0 <= float(proba.min()) <= float(proba.max()) <= 1.0
    with pytest.raises(DataError, match="grey or"):
        seg.predict_mask(np.zeros((4, 45, 70), np.float32))


def test_pairing_by_stem_with_and_without_mask_suffix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images, masks = write_pairs(tmp_path, 2)  # img00 / img00_mask, img01 / img01_mask
    shutil.move(masks / "img01_mask.png", masks / "img01.png")  # plain <stem>.png
    shutil.copy(images / "img00.png", images / "lonely.png")  # no mask
    shutil.copy(masks / "img00_mask.png", masks / "orphan_mask.png")  # no image
    with caplog.at_level(logging.WARNING, logger="flawscope"):
        pairs = pair_files(images, masks)
    assert [(i.name, m.name) for i, m in pairs] == [
        ("img00.png", "img00_mask.png"),
        ("img01.png", "img01.png"),
    ]
    assert "lonely.png" in caplog.text and "orphan_mask.png" in caplog.text


def test_pairing_in_one_folder_uses_mask_suffix(tmp_path: Path) -> None:
    images, masks = write_pairs(tmp_path, 2)
    for m in masks.iterdir():
        shutil.move(m, images / m.name)
    pairs = pair_files(images, images)
    assert [(i.name, m.name) for i, m in pairs] == [
        ("img00.png", "img00_mask.png"),
        ("img01.png", "img01_mask.png"),
    ]


def test_unreadable_pair_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    images, masks = write_pairs(tmp_path, 3)
    (masks / "img02_mask.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING, logger="flawscope"):
        cfg = tiny_training(epochs=1)
        seg = UNetSegmenter.fit(images, masks, tmp_path / "m", SIZE, training=cfg, filters=TINY)
    assert "img02" in caplog.text and "skipping" in caplog.text
    assert seg.info["pairs"] == {"train": 1, "holdout": 1, "skipped": 1}


def test_no_pairs_raises_data_error_naming_both_folders(tmp_path: Path) -> None:
    images, masks = write_pairs(tmp_path, 2, suffix="_label")  # wrong mask names
    with pytest.raises(DataError) as err:
        UNetSegmenter.fit(images, masks, tmp_path / "m", size=SIZE, filters=TINY)
    assert str(images) in str(err.value) and str(masks) in str(err.value)
    with pytest.raises(DataError, match="does not exist"):
        UNetSegmenter.fit(tmp_path / "nope", masks, tmp_path / "m", size=SIZE, filters=TINY)
    with pytest.raises(ConfigError, match="multiple of 16"):
        UNetSegmenter.fit(images, masks, tmp_path / "m", size=40, filters=TINY)


def test_damaged_or_missing_model_files_raise_model_dir_error(
    fitted: tuple[UNetSegmenter, Path], tmp_path: Path
) -> None:
    _, out = fitted
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "weights.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ModelDirError, match="weights.safetensors") as err:
        UNetSegmenter.load(copy)
    assert "\n" not in str(err.value) and "UNetSegmenter.fit" in str(err.value)
    shutil.copy(out / "weights.safetensors", copy / "weights.safetensors")
    state = json.loads((copy / STATE_FILE).read_text())
    (copy / STATE_FILE).write_text(json.dumps({**state, "filters": [4, 8, 16, 32, 32]}))
    with pytest.raises(ModelDirError, match="does not match"):
        UNetSegmenter.load(copy)
    (copy / STATE_FILE).write_text("{not json")
    with pytest.raises(ModelDirError, match="damaged"):
        UNetSegmenter.load(copy)
    (copy / STATE_FILE).unlink()
    with pytest.raises(ModelDirError, match=STATE_FILE):
        UNetSegmenter.load(copy)
    with pytest.raises(ModelDirError, match="does not exist"):
        UNetSegmenter.load(tmp_path / "nope")


def test_learns_to_segment_a_disc(tmp_path: Path) -> None:
    """60 Adam steps on 8 disc images at 32 px: IoU with the true disc of new images > 0.7.

    Base filters 8 rather than 4: with 4 some seeds are still below the 0.5 threshold after 60
    steps (loss falling, not collapsed). With these settings 36 data/training seed combinations
    gave a worst IoU of 0.80.
    """
    images, masks = write_pairs(tmp_path, 8, seed=5)
    cfg = tiny_training(epochs=30, patience=30, learning_rate=3e-3)  # 7 train pairs: 2 steps/epoch
    seg = UNetSegmenter.fit(
        images, masks, tmp_path / "m", size=SIZE, training=cfg, filters=(8, 16, 32, 64, 128)
    )
    assert len(seg.history["train_loss"]) == 30
    rng = np.random.default_rng(99)
    new = [disc(rng, 40, 48), disc(rng, 56, 44), disc(rng, 64, 64)]
    scores = [iou(seg.predict_mask(image), truth) for image, truth in new]
    assert min(scores) > 0.7, scores
