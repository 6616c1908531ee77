"""Dataset discovery (MVTec layout, plain folders), hold-out splits, loading with bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flawscope.data.dataset import (
    collect_inputs,
    labelled_samples,
    load_images,
    split_holdout,
    training_samples,
)
from flawscope.errors import DataError
from flawscope.preprocess.enhance import crop_box, to_model_input


def _write(path: Path, shape: tuple[int, ...] = (40, 50), value: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full(shape, value, np.uint8))
    return path


def _mvtec(root: Path) -> Path:
    for i in range(3):
        _write(root / "train" / "good" / f"{i:03d}.png")
    _write(root / "test" / "good" / "000.png")
    _write(root / "test" / "crack" / "000.png")
    _write(root / "test" / "crack" / "001.png")
    _write(root / "ground_truth" / "crack" / "000_mask.png", value=255)
    return root


def test_mvtec_layout(tmp_path: Path) -> None:
    root = _mvtec(tmp_path / "set")
    assert len(training_samples(root)) == 3
    test = labelled_samples(root)
    assert [(s.label, s.defect_type) for s in test] == [(1, "crack"), (1, "crack"), (0, "good")]
    assert test[0].mask_path is not None and test[1].mask_path is None


def test_plain_folder_recursive_all_formats(tmp_path: Path) -> None:
    for name in ["a.png", "b.JPG", "sub/c.bmp", "sub/d.tiff"]:
        _write(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    assert len(training_samples(tmp_path)) == 4
    assert len(collect_inputs([tmp_path / "a.png", tmp_path / "sub"])) == 3


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        training_samples(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="contains no images"):
        training_samples(tmp_path / "empty")
    with pytest.raises(DataError, match="no test/"):
        labelled_samples(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        collect_inputs([tmp_path / "missing.png"])


def test_holdout_split_is_disjoint_seeded_and_sized() -> None:
    items = list(range(100))
    train, hold = split_holdout(items, 0.15, seed=1)
    assert len(hold) == 15 and len(train) == 85
    assert not set(train) & set(hold) and set(train) | set(hold) == set(items)
    assert split_holdout(items, 0.15, seed=1) == (train, hold)
    assert split_holdout(items, 0.15, seed=2)[1] != hold
    assert [len(x) for x in split_holdout([1, 2], 0.15, 0)] == [1, 1]
    with pytest.raises(DataError, match="at least 2"):
        split_holdout([1], 0.15, 0)


def test_load_images_resizes_converts_and_skips_bad(tmp_path: Path) -> None:
    from flawscope.data.dataset import Sample

    good_grey = _write(tmp_path / "g.png", (40, 60))
    rgb = _write(tmp_path / "c.png", (100, 30, 3))
    tiny = _write(tmp_path / "t.png", (8, 8))
    corrupt = tmp_path / "x.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    samples = [Sample(p) for p in (good_grey, corrupt, rgb, tiny)]
    batch = load_images(samples, size=32, channels=1, min_side=16, keep_originals=True)
    assert batch.images.shape == (2, 1, 32, 32)
    assert [s.path.name for s in batch.samples] == ["g.png", "c.png"]
    assert batch.sizes == [(40, 60), (100, 30)]
    assert [s.path.name for s, _ in batch.skipped] == ["x.png", "t.png"]
    assert "smaller than the 16 px minimum" in batch.skipped[1][1]
    assert batch.originals is not None and batch.originals[1].shape == (100, 30, 3)


def test_to_model_input_channels() -> None:
    grey = np.random.default_rng(0).random((20, 30)).astype(np.float32)
    img, box = to_model_input(grey, 16, 3)
    assert img.shape == (3, 16, 16) and box == (0, 0, 16, 16)
    rgb = np.random.default_rng(0).random((20, 30, 3)).astype(np.float32)
    out, _ = to_model_input(rgb, 16, 1)
    assert out.shape == (1, 16, 16) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_keep_aspect_letterboxes_a_strip_without_squashing() -> None:
    strip = np.tile(np.linspace(0, 1, 400, dtype=np.float32), (100, 1))  # 100 x 400, 1:4
    img, box = to_model_input(strip, 64, 1, keep_aspect=True)
    assert img.shape == (1, 64, 64)
    assert box == (24, 0, 16, 64)  # long side 64, short side 16, centred
    content = crop_box(img[0], box)
    np.testing.assert_allclose(content[8], np.linspace(0, 1, 64), atol=0.02)  # not squashed
    np.testing.assert_allclose(img[0, 23], img[0, 25], atol=1e-6)  # mirrored padding


def test_load_images_reports_boxes(tmp_path: Path) -> None:
    from flawscope.data.dataset import Sample

    wide = _write(tmp_path / "w.png", (50, 200))
    batch = load_images([Sample(wide)], 32, 1, 16, keep_aspect=True)
    assert batch.boxes == [(12, 0, 8, 32)]
    assert load_images([Sample(wide)], 32, 1, 16).boxes == [(0, 0, 32, 32)]


def test_normalize_exposure_equalises_the_mean_and_keeps_relative_contrast() -> None:
    from flawscope.preprocess.enhance import normalize_exposure

    base = np.random.default_rng(0).uniform(0.2, 0.6, (20, 30)).astype(np.float32)
    dark, bright = normalize_exposure(base * 0.5), normalize_exposure(base * 1.5)
    assert dark.mean() == pytest.approx(0.4, abs=1e-4)
    np.testing.assert_allclose(dark, bright, atol=1e-5)  # the exposure difference is gone
    np.testing.assert_allclose(dark / dark.mean(), base / base.mean(), rtol=1e-4)
    black = np.zeros((4, 4), np.float32)
    assert normalize_exposure(black) is black
    assert normalize_exposure(np.full((4, 4), 0.01, np.float32)).max() <= 1.0


def test_load_images_applies_preprocess_to_the_model_input_only(tmp_path: Path) -> None:
    from flawscope.data.dataset import Sample

    path = _write(tmp_path / "a.png", (40, 40))
    plain = load_images([Sample(path)], 32, 1, 16, keep_originals=True)
    assert plain.foreground is None

    def double_and_mask(im: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray]:
        fg = np.zeros(im.shape[:2], bool)
        fg[:, :20] = True  # left half is the part
        return np.clip(im * 2, 0, 1), fg

    doubled = load_images(
        [Sample(path)], 32, 1, 16, keep_originals=True, preprocess=double_and_mask
    )
    np.testing.assert_allclose(
        doubled.images.numpy(), np.clip(plain.images.numpy() * 2, 0, 1), atol=1e-5
    )
    np.testing.assert_array_equal(doubled.originals[0], plain.originals[0])
    assert doubled.foreground.shape == (1, 32, 32)
    assert doubled.foreground[0, :, :15].all() and not doubled.foreground[0, :, 17:].any()
    part = doubled.slice(0, 1)
    assert len(part) == 1 and part.foreground.shape == (1, 32, 32)
