"""Synthetic parts on a cluttered background: determinism, masks, the data set layout, errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flawscope.data.synthetic.parts import (
    DEFECT_TYPES,
    FOREGROUND_DIR,
    render_part,
    write_parts_dataset,
)
from flawscope.errors import ConfigError

SIZE = (48, 72)


def _render(
    seed: int, defect: str | None = None, size: tuple[int, int] = SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return render_part(np.random.default_rng(seed), size, defect)


@pytest.mark.parametrize("defect", [None, *DEFECT_TYPES])
def test_shapes_dtypes_ranges(defect: str | None) -> None:
    image, fg, mask = _render(1, defect)
    assert image.shape == fg.shape == mask.shape == SIZE
    assert image.dtype == np.float32 and fg.dtype == np.bool_ and mask.dtype == np.bool_
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    assert image.std() > 0.05  # a part on a background, not a flat field


def test_default_size() -> None:
    image, fg, mask = render_part(np.random.default_rng(0))
    assert image.shape == fg.shape == mask.shape == (256, 384)


@pytest.mark.parametrize("defect", [None, "chip"])
def test_same_seed_same_render_different_seed_different(defect: str | None) -> None:
    a, b = _render(5, defect), _render(5, defect)
    for x, y in zip(a, b, strict=True):
        assert x.tobytes() == y.tobytes()
    assert np.abs(a[0] - _render(6, defect)[0]).mean() > 0.01


def test_generator_advances_identically_with_and_without_defect() -> None:
    rng_good, rng_bad = np.random.default_rng(9), np.random.default_rng(9)
    render_part(rng_good, SIZE)
    render_part(rng_bad, SIZE, "dent")
    assert rng_good.integers(1 << 30) == rng_bad.integers(1 << 30)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("defect", DEFECT_TYPES)
def test_defect_mask_inside_foreground_and_confined(defect: str, seed: int) -> None:
    good, fg_good, empty = _render(seed, None, (64, 96))
    image, fg, mask = _render(seed, defect, (64, 96))
    assert not empty.any()
    np.testing.assert_array_equal(fg, fg_good)  # the scene (and the outline) is shared
    assert fg.any() and mask.any()
    assert not (mask & ~fg).any()  # the defect lies on the part
    assert mask.mean() < 0.05
    # the defect changes the image, and only near its mask (blur spreads it by ~1 px)
    diff = np.abs(image - good)
    assert diff[mask].max() > 0.05
    near = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert diff[~near].max() < 1e-6


def test_foreground_is_a_plausible_part() -> None:
    for seed in range(4):
        image, fg, _ = _render(seed, None, (64, 96))
        assert 0.15 < fg.mean() < 0.6  # a brick of about a quarter of the image
        assert not fg[0].any() and not fg[-1].any()  # it does not touch the border
        assert image[fg].mean() > image[~fg].mean() + 0.1  # grey part, darker background


def test_minimum_size_renders() -> None:
    for defect in (None, *DEFECT_TYPES):
        image, fg, mask = _render(3, defect, (32, 32))
        assert image.shape == (32, 32) and fg.any() and mask.any() == (defect is not None)
        assert not (mask & ~fg).any()


def _png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def test_dataset_layout_and_contents(tmp_path: Path) -> None:
    root = write_parts_dataset(tmp_path / "parts", 3, 2, 1, SIZE, 4)
    assert root == tmp_path / "parts"
    assert sorted(p.name for p in (root / "train" / "good").iterdir()) == [
        "000.png",
        "001.png",
        "002.png",
    ]
    assert sorted(p.name for p in (root / "test").iterdir()) == sorted(["good", *DEFECT_TYPES])
    assert len(list((root / "test" / "good").iterdir())) == 2
    assert not (root / "ground_truth" / "good").exists()
    for defect in DEFECT_TYPES:
        image = _png(root / "test" / defect / "000.png")
        gt = _png(root / "ground_truth" / defect / "000_mask.png")
        fg = _png(root / FOREGROUND_DIR / "test" / defect / "000.png")
        assert image.dtype == gt.dtype == fg.dtype == np.uint8
        assert image.shape == gt.shape == fg.shape == SIZE
        assert set(np.unique(gt)) == {0, 255} and set(np.unique(fg)) == {0, 255}
        assert not ((gt > 0) & (fg == 0)).any()
    for split, cls, n in (("train", "good", 3), ("test", "good", 2)):
        masks = sorted((root / FOREGROUND_DIR / split / cls).iterdir())
        assert [p.name for p in masks] == [f"{i:03d}.png" for i in range(n)]
    # an image does not depend on how many others are written
    first = write_parts_dataset(tmp_path / "again", 1, 0, 0, SIZE, 4)
    a = (root / "train" / "good" / "000.png").read_bytes()
    assert a == (first / "train" / "good" / "000.png").read_bytes()


def test_dataset_is_byte_identical_and_independent_of_counts(tmp_path: Path) -> None:
    a = write_parts_dataset(tmp_path / "a", 2, 1, 1, SIZE, 7)
    b = write_parts_dataset(tmp_path / "b", 3, 2, 1, SIZE, 7)
    c = write_parts_dataset(tmp_path / "c", 2, 1, 1, SIZE, 8)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 2 + 1 + 2 * len(DEFECT_TYPES) + (2 + 1 + len(DEFECT_TYPES))
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    image = Path("train/good/000.png")
    assert (a / image).read_bytes() != (c / image).read_bytes()


def test_dataset_reads_as_mvtec_and_pairs_for_the_unet(tmp_path: Path) -> None:
    from flawscope.data.dataset import labelled_samples, training_samples
    from flawscope.preprocess.unet_segmenter import pair_files

    root = write_parts_dataset(tmp_path, 2, 1, 1, SIZE, 0)
    assert len(training_samples(root)) == 2
    samples = labelled_samples(root)
    assert len(samples) == 1 + len(DEFECT_TYPES)
    assert all((s.mask_path is not None) == (s.label == 1) for s in samples)
    pairs = pair_files(root / "train" / "good", root / FOREGROUND_DIR / "train" / "good")
    assert [(i.name, m.name) for i, m in pairs] == [("000.png", "000.png"), ("001.png", "001.png")]
    assert len(pair_files(root / "test", root / FOREGROUND_DIR / "test")) == len(samples)


@pytest.mark.parametrize(
    "size", [(31, 64), (64,), 64, (64.0, 64), (True, 64), "64x64", (64, 64, 1), None]
)
def test_bad_size(size: object) -> None:
    with pytest.raises(ConfigError, match="size"):
        render_part(np.random.default_rng(0), size)  # type: ignore[arg-type]


def test_unknown_defect() -> None:
    with pytest.raises(ConfigError, match="unknown defect"):
        render_part(np.random.default_rng(0), SIZE, "crack")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_train": -1},
        {"n_test_good": -2},
        {"n_test_per_defect": 1.5},
        {"seed": -1},
        {"seed": True},
        {"size": (16, 64)},
    ],
)
def test_bad_dataset_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"n_train": 1, "n_test_good": 1, "n_test_per_defect": 1}
    args["size"] = SIZE
    with pytest.raises(ConfigError):
        write_parts_dataset(tmp_path / "x", **{**args, **kwargs})  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()  # nothing written before the arguments are checked
