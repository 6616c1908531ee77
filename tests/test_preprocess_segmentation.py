"""Tests for classical segmentation, masked CLAHE and mask metrics (tiny 64 px images)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from flawscope.errors import ConfigError, DataError
from flawscope.preprocess.clahe import masked_clahe
from flawscope.preprocess.mask_metrics import mask_metrics
from flawscope.preprocess.segment import (
    METHODS,
    apply_mask,
    clean_mask,
    kmeans_mask,
    mean_mask,
    otsu_mask,
    segment,
    watershed_mask,
)

SIZE = 64


def disc(cy: float, cx: float, r: float, size: int = SIZE) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


def part_image(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bright part (disc r = 20) with a dark hole and a specular highlight on a noisy, unevenly
    lit dark background; returns (image float32 in [0, 1], true disc mask)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    truth = disc(32, 32, 20)
    img = 0.05 + 0.15 * xx / SIZE  # light falling off from right to left
    img = np.where(truth, 0.55 + 0.1 * yy / SIZE, img)
    img = np.where(disc(26, 38, 4), 0.08, img)  # dark hole (a defect) inside the part
    img = img + 0.5 * np.exp(-((yy - 38) ** 2 + (xx - 26) ** 2) / 8.0) * truth  # highlight
    img = img + rng.normal(0.0, 0.03, img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32), truth


@pytest.mark.parametrize("method", ["otsu", "kmeans", "watershed"])
def test_each_method_finds_the_disc(method: str) -> None:
    image, truth = part_image()
    mask = segment(image, method)
    assert mask.shape == truth.shape and mask.dtype == bool
    assert iou(mask, truth) > 0.9
    assert mask[26, 38]  # the dark hole is filled
    assert np.count_nonzero(mask & ~truth) < 0.01 * mask.size  # at most a few noise speckles


@pytest.mark.parametrize("method", ["otsu", "kmeans", "watershed"])
def test_rgb_input_and_dark_polarity(method: str) -> None:
    image, truth = part_image(seed=1)
    rgb = np.repeat(image[:, :, None], 3, axis=2)
    assert iou(METHODS[method](rgb), truth) > 0.9
    # a dark part on a bright background: "dark" finds it, "bright" does not
    inverted = 1.0 - image
    assert iou(segment(inverted, method, foreground="dark"), truth) > 0.9
    assert iou(segment(inverted, method, foreground="bright"), truth) < 0.5


def test_flat_image_gives_empty_mask() -> None:
    flat = np.full((16, 16), 0.3, dtype=np.float32)
    for fn in (otsu_mask, kmeans_mask, watershed_mask):
        assert not fn(flat).any()
        assert not fn(flat, foreground="dark").any()


def test_kmeans_subsamples_large_images_reproducibly() -> None:
    image, truth = part_image()
    big = np.kron(image, np.ones((5, 5), dtype=np.float32))  # 320 x 320 > 65,536 pixels
    a, b = kmeans_mask(big, seed=3), kmeans_mask(big, seed=3)
    np.testing.assert_array_equal(a, b)
    assert iou(a, np.kron(truth, np.ones((5, 5), dtype=bool))) > 0.9


def test_clean_mask_fills_hole_closes_gap_keeps_far_blob() -> None:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[5:45, 5:45] = True
    mask[15:35, 15:35] = False  # a 20 px hole: too wide for the closing, filled by hole filling
    mask[5:45, 25] = False  # a 1 px gap cutting the square in two
    mask[54:60, 54:60] = True  # a blob 9 px away (corner to corner 14 px)
    assert ndimage.label(mask)[1] == 3
    cleaned = clean_mask(mask)
    assert cleaned.dtype == bool and cleaned.shape == mask.shape
    assert cleaned[15:35, 15:35].all()  # hole filled
    assert cleaned[8:42, 25].all()  # gap closed (a 2 px notch stays where it meets the outline)
    assert ndimage.label(cleaned)[1] == 2  # the halves joined, the far blob stays separate
    assert cleaned[54:60, 54:60].all()
    assert not cleaned[0:5, :].any()  # the closing does not join the square to the image edge
    # a part touching the image edge is not eroded from it
    edge = np.zeros((SIZE, SIZE), dtype=bool)
    edge[:, :20] = True
    np.testing.assert_array_equal(clean_mask(edge), edge)


def test_unknown_method_and_polarity_raise_config_error() -> None:
    image, _ = part_image()
    with pytest.raises(ConfigError, match="otsu, kmeans, watershed") as info:
        segment(image, "unet")
    assert "unet" in str(info.value)
    with pytest.raises(ConfigError, match="bright"):
        segment(image, "otsu", foreground="grey")  # type: ignore[arg-type]
    with pytest.raises(DataError):
        segment(np.zeros((4, 4, 2), dtype=np.float32), "otsu")


def test_mean_mask_is_the_majority_region() -> None:
    shifts = (-6, 0, 6)
    masks = [disc(32, 32 + s, 14) for s in shifts]
    expected = np.sum(masks, axis=0) >= 2
    result = mean_mask(masks, (SIZE, SIZE))
    np.testing.assert_array_equal(result, clean_mask(expected))
    assert iou(result, expected) > 0.98
    assert not result[32, 32 + 6 + 14 - 1]  # covered by one disc only
    # masks of another size are resized (nearest) to the requested shape
    small = [m[::2, ::2] for m in masks]
    assert iou(mean_mask(small, (SIZE, SIZE)), expected) > 0.9
    with pytest.raises(DataError):
        mean_mask([], (SIZE, SIZE))


def test_apply_mask_zeros_background_keeps_dtype() -> None:
    image, truth = part_image()
    rgb = np.repeat(image[:, :, None], 3, axis=2)
    out = apply_mask(rgb, truth)
    assert out.shape == rgb.shape and out.dtype == rgb.dtype
    assert np.all(out[~truth] == 0) and np.array_equal(out[truth], rgb[truth])
    with pytest.raises(DataError):
        apply_mask(image, truth[:-1])


# ---------------------------------------------------------------------------------- CLAHE


def low_contrast_part() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    mask = disc(32, 32, 24)
    img = 0.5 + 0.02 * rng.standard_normal((SIZE, SIZE)) + 0.05 * np.linspace(0, 1, SIZE)
    img = np.where(mask, img, 0.1 + 0.05 * rng.random((SIZE, SIZE)))
    return np.clip(img, 0, 1).astype(np.float32), mask


def test_masked_clahe_raises_local_contrast_and_keeps_background_black() -> None:
    image, mask = low_contrast_part()
    out = masked_clahe(image, mask)
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.all(out[~mask] == 0.0)
    patch = (slice(26, 38), slice(26, 38))
    assert out[patch].std() > 3 * image[patch].std()
    # without a mask the background is equalised too, so it is no longer black
    assert masked_clahe(image)[~mask].max() > 0.0


def test_masked_clahe_rgb() -> None:
    image, mask = low_contrast_part()
    rgb = np.stack([image, 0.8 * image, 0.6 * image], axis=2)
    out = masked_clahe(rgb, mask)
    assert out.shape == rgb.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.all(out[~mask] == 0.0)
    patch = (slice(26, 38), slice(26, 38))
    assert out[patch].mean(axis=2).std() > 3 * rgb[patch].mean(axis=2).std()
    # hue is kept: the channel order R > G > B survives on the part
    assert np.all(out[mask][:, 0] >= out[mask][:, 2])


@pytest.mark.parametrize("kwargs", [{"clip_limit": 0.0}, {"tile_grid": 0}, {"tile_grid": 2.5}])
def test_masked_clahe_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    image, mask = low_contrast_part()
    with pytest.raises(ConfigError):
        masked_clahe(image, mask, **kwargs)
    with pytest.raises(DataError):
        masked_clahe(image, mask[:-1])


# ---------------------------------------------------------------------------- mask metrics


def test_mask_metrics_hand_worked() -> None:
    t1 = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    p1 = np.array([[1, 0, 1], [1, 0, 0]], dtype=bool)  # tp 2, fp 1, fn 1 -> IoU 2/4
    t2 = np.array([[0, 0], [1, 1]], dtype=bool)
    p2 = np.array([[0, 0], [1, 0]], dtype=bool)  # tp 1, fp 0, fn 1 -> IoU 1/2
    # pooled: tp 3, fp 1, fn 2 -> P 3/4, R 3/5, F1 6/9 = 2/3, IoU 3/6 = 1/2, mean IoU 1/2
    m = mask_metrics([t1, t2], [p1, p2])
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.6)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["iou"] == pytest.approx(0.5)
    assert m["mean_iou"] == pytest.approx(0.5)
    # binary AUC = (TPR + TNR) / 2: TPR 3/5, TN = 10 - 5 true - 1 fp = 4 of 5 negatives
    assert m["roc_auc"] == pytest.approx((0.6 + 0.8) / 2)


def test_mask_metrics_probabilities_and_empty_cases() -> None:
    truth = disc(8, 8, 5, size=16)
    perfect = np.where(truth, 0.9, 0.1)
    m = mask_metrics([truth], [perfect])
    assert m["roc_auc"] == 1.0 and m["iou"] == 1.0 and m["f1"] == 1.0
    # threshold is > 0.5: 0.5 everywhere predicts nothing
    m = mask_metrics([truth], [np.full(truth.shape, 0.5)])
    assert math.isnan(m["precision"]) and m["recall"] == 0.0 and m["iou"] == 0.0
    # no true foreground anywhere: recall and AUC undefined; empty/empty image left out of mIoU
    empty = np.zeros((4, 4), dtype=bool)
    m = mask_metrics([empty], [empty])
    assert math.isnan(m["recall"]) and math.isnan(m["roc_auc"]) and math.isnan(m["mean_iou"])
    m = mask_metrics([empty, truth], [empty, truth])
    assert m["mean_iou"] == 1.0


def test_mask_metrics_rejects_bad_input() -> None:
    a = np.zeros((4, 4), dtype=bool)
    with pytest.raises(DataError):
        mask_metrics([a], [np.zeros((4, 5), dtype=bool)])
    with pytest.raises(DataError):
        mask_metrics([a, a], [a])
    with pytest.raises(DataError):
        mask_metrics([], [])
    with pytest.raises(DataError):
        mask_metrics([a], [np.full((4, 4), 1.5)])
