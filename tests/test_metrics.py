"""Tests for flawscope.metrics: scikit-learn cross-checks, hand-worked cases, brute-force AUPRO."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from flawscope.errors import ConfigError, DataError
from flawscope.metrics import (
    aupro,
    best_f_beta,
    f_beta,
    image_metrics,
    per_defect_metrics,
    per_defect_pixel_metrics,
    pixel_auroc,
    pro_curve,
    roc_pr_curves,
)

# Hand-worked image-level example (7 images, 4 good, 3 defective).
LABELS = np.array([0, 0, 0, 0, 1, 1, 1])
SCORES = np.array([0.1, 0.2, 0.5, 0.7, 0.4, 0.6, 0.9])


# ----------------------------------------------------------------------------- image level


def test_image_metrics_hand_worked_at_threshold() -> None:
    # threshold 0.3, defective when score > 0.3:
    #   flagged good 0.5, 0.7 -> fp = 2; passed good 0.1, 0.2 -> tn = 2
    #   flagged defective 0.4, 0.6, 0.9 -> tp = 3, fn = 0
    # precision = 3/5, recall = 3/3 = 1
    # F1 = 2 * 0.6 * 1 / (0.6 + 1) = 0.75
    # F2 = 5 * 0.6 * 1 / (4 * 0.6 + 1) = 3 / 3.4 = 15/17
    m = image_metrics(LABELS, SCORES, 0.3)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 2, 2, 0)
    assert (m["n_good"], m["n_defective"]) == (4, 3)
    assert m["precision"] == pytest.approx(0.6)
    assert m["recall"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(0.75)
    assert m["f2"] == pytest.approx(15 / 17)


def test_image_metrics_f1_max_hand_worked() -> None:
    # Flag the top k scores (0.9 d, 0.7 g, 0.6 d, 0.5 g, 0.4 d, 0.2 g, 0.1 g):
    #   k=1 F1=1/2, k=2 2/5, k=3 2/3, k=4 4/7, k=5 P=3/5 R=1 F1=3/4, k=6 2/3, k=7 3/5.
    # Best: k=5 (flag scores >= 0.4), F1 = 0.75; the strictly-greater threshold lies halfway
    # between 0.4 (lowest flagged) and 0.2 (highest passed): 0.3.
    # AUROC: of the 12 (good, defective) pairs, the defective scores more in 9 -> 0.75.
    m = image_metrics(LABELS, SCORES, 0.5)
    assert m["f1_max"] == pytest.approx(0.75)
    assert m["f1_max_threshold"] == pytest.approx(0.3)
    assert m["auroc"] == pytest.approx(9 / 12)


def test_threshold_rule_is_strictly_greater() -> None:
    labels = np.array([0, 1])
    scores = np.array([0.5, 0.8])
    # A good image scoring exactly the threshold passes.
    m = image_metrics(labels, scores, 0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (1, 0, 1, 0)
    # A defective image scoring exactly the threshold passes too (a miss).
    m = image_metrics(labels, scores, 0.8)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (0, 0, 1, 1)
    # No positive prediction: precision is 0, not an exception.
    assert m["precision"] == 0.0 and m["f1"] == 0.0 and m["f2"] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_image_metrics_against_sklearn_random(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    labels = (rng.random(n) < 0.3).astype(int)
    scores = np.round(rng.normal(size=n) + 1.2 * labels, 1)  # rounding makes ties
    m = image_metrics(labels, scores, 0.5)
    assert m["auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m["auprc"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    # F1-max by brute force over every distinct score as a ">=" threshold.
    best = max(f1_score(labels, scores >= t, zero_division=0) for t in np.unique(scores))
    assert m["f1_max"] == pytest.approx(best, abs=1e-12)
    # f1_max_threshold reproduces F1-max under the strictly-greater rule.
    again = image_metrics(labels, scores, m["f1_max_threshold"])
    assert again["f1"] == pytest.approx(m["f1_max"], abs=1e-12)
    assert again["f1"] == pytest.approx(f1_score(labels, scores > m["f1_max_threshold"]))


def test_f1_max_threshold_when_every_image_is_flagged() -> None:
    # Flag all: P = 3/4, R = 1, F1 = 6/7; flag 0.3, 0.4 only: F1 = 0.8. So the best operating
    # point flags every image and the threshold must lie just below the lowest score.
    labels = np.array([1, 1, 0, 1])
    scores = np.array([0.2, 0.3, 0.25, 0.4])
    m = image_metrics(labels, scores, 0.0)
    assert m["f1_max"] == pytest.approx(f1_score(labels, np.ones(4, dtype=int)))
    assert image_metrics(labels, scores, m["f1_max_threshold"])["f1"] == pytest.approx(m["f1_max"])


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1, 1]])
def test_single_class_gives_nan(labels: list[int]) -> None:
    m = image_metrics(np.array(labels), np.array([0.1, 0.5, 0.9]), 0.3)
    for key in ("auroc", "auprc", "f1_max", "f1_max_threshold"):
        assert math.isnan(m[key])
    assert m["tp"] + m["fp"] + m["tn"] + m["fn"] == 3
    assert roc_pr_curves(np.array(labels), np.array([0.1, 0.5, 0.9])) == {
        "fpr": [],
        "tpr": [],
        "precision": [],
        "recall": [],
    }


def test_f_beta() -> None:
    assert f_beta(0.0, 0.0, 1.0) == 0.0
    assert f_beta(0.5, 0.5, 1.0) == pytest.approx(0.5)
    # F2 with P = 1/2, R = 1: 5 * 0.5 / (4 * 0.5 + 1) = 5/6
    assert f_beta(0.5, 1.0, 2.0) == pytest.approx(5 / 6)
    with pytest.raises(ConfigError):
        f_beta(0.5, 0.5, 0.0)


def test_per_defect_metrics_split() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 0.25, 0.05])
    types = ["good", "good", "good", "scratch", "scratch", "dent", "dent"]
    result = per_defect_metrics(labels, scores, types, threshold=0.5)
    assert list(result) == ["dent", "scratch"]
    # scratch (0.8, 0.9) is above every good score: perfect.
    assert result["scratch"]["auroc"] == 1.0
    assert result["scratch"]["n_good"] == 3 and result["scratch"]["n_defective"] == 2
    # dent (0.25, 0.05) vs good (0.1, 0.2, 0.3): 0.25 beats 2 goods, 0.05 beats none -> 2/6.
    assert result["dent"]["auroc"] == pytest.approx(2 / 6)
    subset = [0, 1, 2, 5, 6]
    assert result["dent"] == image_metrics(labels[subset], scores[subset], 0.5)


def test_per_defect_metrics_rejects_inconsistent_input() -> None:
    with pytest.raises(DataError):
        per_defect_metrics(np.array([0, 1]), np.array([0.1, 0.2]), ["good"], 0.5)
    with pytest.raises(DataError):
        per_defect_metrics(np.array([0, 1]), np.array([0.1, 0.2]), ["good", "good"], 0.5)


def test_roc_pr_curves_match_sklearn() -> None:
    curves = roc_pr_curves(LABELS, SCORES)
    fpr, tpr, _ = roc_curve(LABELS, SCORES)
    precision, recall, _ = precision_recall_curve(LABELS, SCORES)
    assert curves["fpr"] == fpr.tolist() and curves["tpr"] == tpr.tolist()
    assert curves["precision"] == precision.tolist() and curves["recall"] == recall.tolist()
    assert all(type(v) is float for values in curves.values() for v in values)


@pytest.mark.parametrize(
    ("labels", "scores"),
    [
        (np.array([0, 1, 1]), np.array([0.1, 0.2])),  # length mismatch
        (np.array([[0, 1]]), np.array([[0.1, 0.2]])),  # not 1-D
        (np.array([0, 2]), np.array([0.1, 0.2])),  # label outside {0, 1}
        (np.array([0, 1]), np.array([0.1, np.nan])),  # non-finite score
        (np.array([], dtype=int), np.array([])),  # empty
    ],
)
def test_image_input_errors(labels: np.ndarray, scores: np.ndarray) -> None:
    with pytest.raises(DataError):
        image_metrics(labels, scores, 0.5)


# ----------------------------------------------------------------------------- pixel level


def _blob_masks(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, size, size) uint8 masks of random blobs; image 0 is always good (empty mask)."""
    noise = ndimage.gaussian_filter(rng.normal(size=(n, size, size)), sigma=(0, 1.5, 1.5))
    masks = (noise > np.quantile(noise, 0.85)).astype(np.uint8)
    masks[0] = 0
    return masks


def test_pixel_auroc_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    masks = _blob_masks(rng, 4, 20) * 255
    maps = rng.random(masks.shape) + 0.5 * (masks > 0)
    expected = roc_auc_score(masks.ravel() != 0, maps.ravel())
    assert pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)
    assert math.isnan(pixel_auroc(np.zeros((2, 4, 4)), maps[:2, :4, :4]))


def test_aupro_perfect_map_is_one() -> None:
    rng = np.random.default_rng(1)
    masks = _blob_masks(rng, 5, 24)
    assert aupro(masks, masks.astype(np.float32)) == pytest.approx(1.0, abs=1e-12)


def test_aupro_constant_map() -> None:
    # All pixels tied: one operating point, (FPR, PRO) = (1, 1), so the curve is the diagonal
    # from (0, 0). Area up to 0.3 = 0.3 * 0.3 / 2 = 0.045; divided by 0.3 -> 0.15.
    masks = _blob_masks(np.random.default_rng(2), 3, 16)
    fpr, pro = pro_curve(masks, np.full(masks.shape, 0.7))
    np.testing.assert_array_equal(fpr, [0.0, 1.0])
    np.testing.assert_array_equal(pro, [0.0, 1.0])
    assert aupro(masks, np.full(masks.shape, 0.7)) == pytest.approx(0.15, abs=1e-12)
    assert aupro(masks, np.full(masks.shape, 0.7), fpr_limit=1.0) == pytest.approx(0.5)


def test_aupro_two_regions_hand_worked() -> None:
    # One 5x5 image: a 1-pixel region S at (0, 0) and a 2x2 region L at rows/cols 3-4;
    # 25 - 5 = 20 defect-free pixels.
    mask = np.zeros((5, 5), dtype=np.uint8)
    mask[0, 0] = 1
    mask[3:5, 3:5] = 1
    amap = np.zeros((5, 5))
    amap[0, 0] = 3.0  # all of S
    amap[3, 3:5] = 3.0  # half of L
    amap[1, 1:3] = 3.0  # 2 defect-free pixels
    amap[4, 3:5] = 2.0  # the other half of L
    amap[2, 0:5] = 2.0  # 5 more defect-free pixels...
    amap[1, 3] = 2.0  # ...and one more: 6 at 2.0
    # t = 3: PRO = (1 + 1/2) / 2 = 0.75, FPR = 2/20 = 0.1
    # t = 2: PRO = 1,                   FPR = 8/20 = 0.4
    # t = 0: PRO = 1,                   FPR = 1
    # Curve (0, 0) -> (0.1, 0.75) -> (0.4, 1) -> (1, 1). Up to FPR 0.3:
    #   [0, 0.1]:   0.1 * (0 + 0.75) / 2 = 0.0375
    #   PRO(0.3) = 0.75 + 0.25 * (0.2 / 0.3) = 11/12
    #   [0.1, 0.3]: 0.2 * (0.75 + 11/12) / 2 = 1/6
    #   area = 0.0375 + 1/6 = 49/240; / 0.3 = 49/72
    fpr, pro = pro_curve(mask[None], amap[None])
    np.testing.assert_allclose(fpr, [0.0, 0.1, 0.4, 1.0])
    np.testing.assert_allclose(pro, [0.0, 0.75, 1.0, 1.0])
    assert aupro(mask[None], amap[None]) == pytest.approx(49 / 72, abs=1e-12)
    # Up to FPR 0.1 exactly (no interpolation): 0.0375 / 0.1 = 0.375.
    assert aupro(mask[None], amap[None], fpr_limit=0.1) == pytest.approx(0.375, abs=1e-12)


def _brute_force_pro_curve(masks: np.ndarray, maps: np.ndarray) -> tuple[list, list]:
    """Reference: loop over every distinct threshold, count regions and false positives."""
    defect = masks != 0
    regions = []
    for i in range(len(masks)):
        labelled, n = ndimage.label(defect[i], structure=np.ones((3, 3)))
        regions += [(i, labelled == k) for k in range(1, n + 1)]
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        flagged = maps >= t
        pros.append(float(np.mean([flagged[i][region].mean() for i, region in regions])))
        fprs.append(float((flagged & ~defect).sum() / (~defect).sum()))
    return fprs, pros


def _brute_force_area(fprs: list, pros: list, limit: float) -> float:
    area = 0.0
    for j in range(1, len(fprs)):
        x0, y0, x1, y1 = fprs[j - 1], pros[j - 1], fprs[j], pros[j]
        if x0 >= limit:
            break
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y_limit) / 2
            break
    return area / limit


@pytest.mark.parametrize("seed", range(6))
def test_aupro_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    masks = _blob_masks(rng, 4, 16)
    maps = np.round(rng.random(masks.shape) + 0.6 * masks, 1)  # ~17 levels, many ties
    fprs, pros = _brute_force_pro_curve(masks, maps)
    fpr, pro = pro_curve(masks, maps)
    np.testing.assert_allclose(fpr, fprs, atol=1e-12)
    np.testing.assert_allclose(pro, pros, atol=1e-12)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)
    for limit in (0.05, 0.3, 1.0):
        expected = _brute_force_area(fprs, pros, limit)
        assert abs(aupro(masks, maps, fpr_limit=limit) - expected) < 1e-9


def test_aupro_undefined_gives_nan() -> None:
    maps = np.random.default_rng(3).random((2, 8, 8))
    assert math.isnan(aupro(np.zeros((2, 8, 8)), maps))  # no defect region
    assert math.isnan(aupro(np.ones((2, 8, 8)), maps))  # no defect-free pixel
    fpr, pro = pro_curve(np.zeros((2, 8, 8)), maps)
    assert fpr.size == 0 and pro.size == 0


@pytest.mark.parametrize("fn", [pixel_auroc, aupro, pro_curve])
def test_pixel_shape_mismatch_raises(fn) -> None:
    with pytest.raises(DataError):
        fn(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)))
    with pytest.raises(DataError):
        fn(np.zeros((8, 8)), np.zeros((8, 8)))  # not (N, H, W)


@pytest.mark.parametrize("limit", [0.0, -0.1, 1.5])
def test_aupro_rejects_bad_fpr_limit(limit: float) -> None:
    with pytest.raises(ConfigError):
        aupro(np.ones((1, 2, 2)), np.ones((1, 2, 2)), fpr_limit=limit)


def test_best_f_beta_f2_hand_worked_and_errors() -> None:
    # Same ranking as above; F2 = 5PR / (4P + R). Flag top k: k=5 P=3/5 R=1 -> 15/17 = 0.882;
    # k=7 P=3/7 R=1 -> 15/19 = 0.789; k=3 P=2/3 R=2/3 -> 2/3. Best: k=5, threshold 0.3.
    best, threshold = best_f_beta(LABELS, SCORES, 2.0)
    assert best == pytest.approx(15 / 17)
    assert threshold == pytest.approx(0.3)
    assert image_metrics(LABELS, SCORES, threshold)["f2"] == pytest.approx(best)
    assert best_f_beta(LABELS, SCORES, 1.0) == pytest.approx((0.75, 0.3))
    with pytest.raises(DataError, match="only one kind"):
        best_f_beta(np.array([0, 0]), np.array([0.1, 0.2]))
    with pytest.raises(ConfigError, match="beta"):
        best_f_beta(LABELS, SCORES, 0.0)


def test_per_defect_pixel_metrics_separate_a_well_and_a_badly_localised_type() -> None:
    # 2 good maps (noise), 2 "pit" images whose map peaks on the mask, 2 "band" images with a
    # large mask that the map misses: the per-type figures must tell the two apart.
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 16, 16), dtype=bool)
    maps = rng.uniform(0, 0.5, size=(6, 16, 16))
    masks[2:4, 5:7, 5:7] = True
    maps[2:4, 5:7, 5:7] = 1.0
    masks[4:6, :8] = True
    maps[4:6, 8:10] = 1.0  # the seam next to the band, not the band
    types = ["good", "good", "pit", "pit", "band", "band"]
    result = per_defect_pixel_metrics(masks, maps, types)
    assert list(result) == ["band", "pit"]
    assert result["pit"]["pixel_auroc"] == pytest.approx(1.0)
    assert result["pit"]["aupro"] == pytest.approx(1.0)
    assert result["band"]["pixel_auroc"] < 0.6
    assert result["band"]["aupro"] < 0.5
    assert result["pit"]["defect_pixel_share"] == pytest.approx(4 / 256)
    assert result["band"]["defect_pixel_share"] == pytest.approx(0.5)
    sel = [0, 1, 2, 3]
    assert result["pit"]["pixel_auroc"] == pytest.approx(pixel_auroc(masks[sel], maps[sel]))


def test_per_defect_pixel_metrics_rejects_a_wrong_number_of_types() -> None:
    with pytest.raises(DataError, match="defect types for 2 anomaly maps"):
        per_defect_pixel_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), ["good"])
