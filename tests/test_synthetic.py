"""Synthetic printed layers: shapes, ranges, determinism, defect masks and the data set layout."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flawscope.data.synthetic import DEFECT_TYPES, render_layer, write_dataset
from flawscope.errors import ConfigError


def _render(seed: int, size: int = 96, defect: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    return render_layer(np.random.default_rng(seed), size, defect)


@pytest.mark.parametrize("defect", [None, *DEFECT_TYPES])
@pytest.mark.parametrize("size", [64, 256])
def test_shape_dtype_range(size: int, defect: str | None) -> None:
    image, mask = _render(1, size, defect)
    assert image.shape == (size, size) and image.dtype == np.float32
    assert mask.shape == (size, size) and mask.dtype == np.bool_
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    assert image.std() > 0.05  # a part on a plate, not a flat field
    assert mask.any() == (defect is not None)


def test_default_size_is_256() -> None:
    image, mask = render_layer(np.random.default_rng(0))
    assert image.shape == mask.shape == (256, 256)


def test_same_seed_same_image_different_seed_different() -> None:
    for defect in (None, "blob"):
        a, ma = _render(5, defect=defect)
        b, mb = _render(5, defect=defect)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ma, mb)
    c, _ = _render(6)
    assert np.abs(_render(5)[0] - c).mean() > 0.01


def test_generator_advances_identically_with_and_without_defect() -> None:
    rng_good, rng_bad = np.random.default_rng(9), np.random.default_rng(9)
    render_layer(rng_good, 64)
    render_layer(rng_bad, 64, "scratch")
    assert rng_good.integers(1 << 30) == rng_bad.integers(1 << 30)


def test_good_images_vary_but_share_brightness_range() -> None:
    images = np.stack([_render(s, 64)[0] for s in range(8)])
    means = images.mean(axis=(1, 2))
    assert means.min() > 0.15 and means.max() < 0.7
    assert np.abs(images - images.mean(axis=0)).mean() > 0.02  # not one image eight times


@pytest.mark.parametrize("defect", DEFECT_TYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defect_is_localised_in_its_mask(defect: str, seed: int) -> None:
    size = 128
    good, _ = _render(seed, size)
    image, mask = _render(seed, size, defect)
    assert 0.003 < mask.mean() < 0.08, f"{defect} covers {mask.mean():.2%} of the image"
    diff = np.abs(image - good)
    assert np.percentile(diff[mask], 90) > 0.08, "the defect is too faint to see"
    assert diff[mask].sum() > 0.95 * diff.sum(), "the image changed outside the mask"
    assert (diff[~mask] > 0.05).sum() == 0
    # the defect lies on the part (bright material), not on the dark build plate
    part = cv2.GaussianBlur(good, (0, 0), 3) > 0.3
    assert (mask & part).sum() > 0.8 * mask.sum()
    # one object or a few strands, not scattered speckle
    n_parts, _ = cv2.connectedComponents(mask.astype(np.uint8))
    assert n_parts - 1 <= 6


@pytest.mark.parametrize("bad", ["dust", "Blob", ""])
def test_unknown_defect_raises_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        _render(0, 64, bad)
    assert repr(bad) in info.value.problem
    assert info.value.fix and "missing_infill" in info.value.fix


def test_too_small_size_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        _render(0, 16)


def _pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


def test_write_dataset_layout_counts_and_masks(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", n_train=3, n_test_good=2, n_test_per_defect=2, size=64)
    assert root == tmp_path / "ds"
    assert _pngs(root / "train" / "good") == ["000.png", "001.png", "002.png"]
    assert _pngs(root / "test" / "good") == ["000.png", "001.png"]
    assert sorted(p.name for p in (root / "test").iterdir()) == sorted(["good", *DEFECT_TYPES])
    assert sorted(p.name for p in (root / "ground_truth").iterdir()) == sorted(DEFECT_TYPES)
    for defect in DEFECT_TYPES:
        assert _pngs(root / "test" / defect) == ["000.png", "001.png"]
        assert _pngs(root / "ground_truth" / defect) == ["000_mask.png", "001_mask.png"]
        for stem in ("000", "001"):
            image = cv2.imread(str(root / "test" / defect / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
            mask = cv2.imread(str(root / "ground_truth" / defect / f"{stem}_mask.png"), -1)
            assert image.shape == mask.shape == (64, 64)
            assert image.dtype == mask.dtype == np.uint8
            assert set(np.unique(mask)) == {0, 255}
            assert 0.003 < (mask > 0).mean() < 0.15
            # the mask marks the printed part, which is brighter than the build plate
            part = cv2.GaussianBlur(image, (0, 0), 2) > 0.3 * 255
            assert (part & (mask > 0)).sum() > 0.7 * (mask > 0).sum()


def test_write_dataset_is_byte_identical_and_order_independent(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", n_train=2, n_test_good=1, n_test_per_defect=1, size=64)
    b = write_dataset(tmp_path / "b", n_train=4, n_test_good=0, n_test_per_defect=1, size=64)
    c = write_dataset(
        tmp_path / "c", n_train=2, n_test_good=1, n_test_per_defect=1, size=64, seed=1
    )
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 2 + 1 + 2 * len(DEFECT_TYPES)
    for rel in files:
        if rel.parts[:2] != ("test", "good"):  # b has no good test images
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "train/good/000.png").read_bytes() != (c / "train/good/000.png").read_bytes()
    # rewriting into the same folder overwrites with identical bytes
    before = (a / "test/blob/000.png").read_bytes()
    write_dataset(a, n_train=0, n_test_good=0, n_test_per_defect=1, size=64)
    assert (a / "test/blob/000.png").read_bytes() == before


@pytest.mark.parametrize("kwargs", [{"n_train": -1}, {"seed": -3}, {"size": 8}])
def test_write_dataset_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        write_dataset(tmp_path, **kwargs)
