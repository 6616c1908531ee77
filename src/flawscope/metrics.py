"""Evaluation metrics for unsupervised defect detection.

Image level (one anomaly score per image, higher = more anomalous; label 0 = good, 1 = defective):
image-level AUROC, AUPRC (average precision), precision / recall / F1 / F2 at a threshold, and
F1-max over all thresholds. Pixel level (one anomaly map per image against its ground-truth
mask): pixel-level AUROC and AUPRO, the normalised area under the per-region-overlap (PRO) curve
up to a false-positive-rate limit (Bergmann et al., "The MVTec Anomaly Detection Dataset: A
Comprehensive Real-World Dataset for Unsupervised Anomaly Detection", IJCV 129, 2021, Sec. 4.2;
semantics of the MVTec AD evaluation code).

Conventions shared by every function here:

* Verdict rule: an image is predicted defective when ``score > threshold`` (strictly greater),
  so a threshold equal to the highest good score passes that good image.
* A metric that needs both classes (AUROC, AUPRC, F1-max, AUPRO) is ``float("nan")`` when only
  one class is present, rather than an exception: a test set of good parts only is legal input.
* Bad input (mismatched shapes, non-finite scores, labels outside {0, 1}) raises
  :class:`flawscope.errors.DataError`; an out-of-range option raises
  :class:`flawscope.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from flawscope.errors import ConfigError, DataError

__all__ = [
    "aupro",
    "f_beta",
    "image_metrics",
    "per_defect_metrics",
    "per_defect_pixel_metrics",
    "pixel_auroc",
    "pro_curve",
    "roc_pr_curves",
]

_NAN = float("nan")
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


# --------------------------------------------------------------------------- validation helpers


def _check_labels_scores(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels as int64 0/1, scores as float64), both (N,); raise DataError if unusable."""
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    if labels.ndim != 1 or scores.ndim != 1 or labels.shape != scores.shape:
        raise DataError(
            f"labels {labels.shape} and scores {scores.shape} must be 1-D arrays of equal length",
            "pass one label and one anomaly score per image, both shaped (N,)",
        )
    if labels.size == 0:
        raise DataError("no images to evaluate (labels and scores are empty)", "pass N >= 1 images")
    if not np.isin(labels, (0, 1)).all():
        raise DataError(
            f"labels must be 0 (good) or 1 (defective), got values {np.unique(labels)[:10]}",
            "map every good image to 0 and every defective image to 1",
        )
    scores = scores.astype(np.float64, copy=False)
    if not np.isfinite(scores).all():
        raise DataError(
            "anomaly scores contain NaN or infinity",
            "check the detector output; every image needs a finite anomaly score",
        )
    return labels.astype(np.int64, copy=False), scores


def _check_masks_maps(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (masks as bool, maps), both (N, H, W); raise DataError if unusable."""
    masks = np.asarray(masks)
    maps = np.asarray(maps)
    if masks.ndim != 3 or masks.shape != maps.shape:
        raise DataError(
            f"masks {masks.shape} and anomaly maps {maps.shape} must both be (N, H, W) and equal",
            "resize the anomaly maps to the ground-truth mask size (or vice versa) before scoring",
        )
    if masks.size == 0:
        raise DataError("no pixels to evaluate (masks and maps are empty)", "pass N >= 1 maps")
    if not np.issubdtype(maps.dtype, np.floating):
        maps = maps.astype(np.float64)
    if not np.isfinite(maps).all():
        raise DataError(
            "anomaly maps contain NaN or infinity",
            "check the detector output; every pixel needs a finite anomaly value",
        )
    return masks != 0, maps


# ------------------------------------------------------------------------------- image level


def f_beta(precision: float, recall: float, beta: float) -> float:
    """F-beta score ``(1 + b^2) * P * R / (b^2 * P + R)``; 0.0 when precision and recall are 0.

    Args:
        precision: in [0, 1].
        recall: in [0, 1].
        beta: > 0; recall counts ``beta`` times as much as precision (F2: missed defects cost
            more than false alarms).

    Returns:
        A float in [0, 1].

    Raises:
        ConfigError: ``beta <= 0``.

    Source: van Rijsbergen, "Information Retrieval", 2nd ed., 1979 (the effectiveness measure F).
    """
    if not beta > 0:
        raise ConfigError(f"beta must be > 0, got {beta}", "use beta=1 for F1 or beta=2 for F2")
    b2 = beta * beta
    denominator = b2 * precision + recall
    if denominator == 0:
        return 0.0
    return float((1.0 + b2) * precision * recall / denominator)


def best_f_beta(labels: np.ndarray, scores: np.ndarray, beta: float = 1.0) -> tuple[float, float]:
    """The best F-beta over all thresholds, and a threshold that reaches it.

    Candidate thresholds are every distinct score (scikit-learn ``precision_recall_curve``), i.e.
    the precision / recall / F search over thresholds of seed 002. The returned threshold ``t``
    works with the strictly-greater rule: ``score > t`` flags exactly the images of the best
    operating point. It lies halfway between the lowest flagged score and the highest score
    below it (just below the lowest score when every image is flagged).

    Args:
        labels: (N,) 0 = good, 1 = defective; both classes present.
        scores: (N,) finite float, higher = more anomalous.
        beta: > 0 (1 = F1, 2 = F2: recall weighs more).

    Returns:
        ``(best F-beta in [0, 1], threshold)``.

    Raises:
        DataError: as :func:`image_metrics`, or only one class present.
        ConfigError: ``beta <= 0``.
    """
    labels, scores = _check_labels_scores(labels, scores)
    if not beta > 0:
        raise ConfigError(f"beta must be > 0, got {beta}", "use beta=1 for F1 or beta=2 for F2")
    if labels.min() == labels.max():
        raise DataError(
            "choosing a threshold needs good and defective images; only one kind was given",
            "add images of the missing kind (test/good and test/<defect> folders)",
        )
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    # The last point (precision 1, recall 0) has no threshold; drop it.
    precision, recall = precision[:-1], recall[:-1]
    b2 = beta * beta
    denominator = b2 * precision + recall
    f = np.divide(
        (1 + b2) * precision * recall,
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    best = int(np.argmax(f))
    lowest_flagged = float(thresholds[best])  # sklearn flags scores >= this value
    below = scores[scores < lowest_flagged]
    if below.size == 0:
        return float(f[best]), float(np.nextafter(lowest_flagged, -np.inf))
    highest_passed = float(below.max())
    threshold = highest_passed + (lowest_flagged - highest_passed) / 2
    if not highest_passed <= threshold < lowest_flagged:  # adjacent floats: midpoint rounds up
        threshold = highest_passed
    return float(f[best]), threshold


def image_metrics(
    labels: np.ndarray, scores: np.ndarray, threshold: float | np.ndarray
) -> dict[str, float]:
    """Image-level metrics of anomaly scores against good / defective labels.

    An image is predicted defective when ``score > threshold`` (strictly greater).

    Args:
        labels: (N,) int or bool, 0 = good, 1 = defective.
        scores: (N,) float, finite, higher = more anomalous.
        threshold: decision threshold for precision / recall / F1 / F2 and the confusion counts:
            one float, or ``(N,)`` per-image thresholds (each image's group threshold).

    Returns:
        A dict with

        * ``"auroc"``: image-level AUROC in [0, 1] (``roc_auc_score``).
        * ``"auprc"``: average precision in [0, 1] (``average_precision_score``).
        * ``"precision"``, ``"recall"``, ``"f1"``, ``"f2"``: in [0, 1] at ``threshold``;
          precision is 0.0 when no image is predicted defective, recall 0.0 when there is no
          defective image.
        * ``"f1_max"``: best F1 in [0, 1] over every threshold of ``precision_recall_curve``.
        * ``"f1_max_threshold"``: a threshold at which the strictly-greater rule reaches
          ``f1_max``, i.e. ``image_metrics(labels, scores, t)["f1"] == f1_max``: halfway between
          the lowest score flagged at the best operating point and the highest score below it
          (just below the lowest score when every image is flagged).
        * ``"n_good"``, ``"n_defective"``, ``"tp"``, ``"fp"``, ``"tn"``, ``"fn"``: counts (int).

        ``auroc``, ``auprc``, ``f1_max`` and ``f1_max_threshold`` are ``nan`` when only one class
        is present.

    Raises:
        DataError: shapes differ or are not 1-D, N == 0, labels outside {0, 1}, non-finite
            scores.

    Sources: Fawcett, "An introduction to ROC analysis", Pattern Recognition Letters 27, 2006
    (AUROC); scikit-learn ``average_precision_score`` (AUPRC as step-wise average precision).
    """
    labels, scores = _check_labels_scores(labels, scores)
    predicted = (scores > threshold).astype(np.int64)
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    precision = float(precision_score(labels, predicted, labels=[0, 1], zero_division=0))
    recall = float(recall_score(labels, predicted, labels=[0, 1], zero_division=0))

    n_defective = int(labels.sum())
    n_good = int(labels.size - n_defective)
    if n_good > 0 and n_defective > 0:
        auroc = float(roc_auc_score(labels, scores))
        auprc = float(average_precision_score(labels, scores))
        f1_max, f1_max_threshold = best_f_beta(labels, scores, 1.0)
    else:
        auroc = auprc = f1_max = f1_max_threshold = _NAN

    return {
        "auroc": auroc,
        "auprc": auprc,
        "precision": precision,
        "recall": recall,
        "f1": f_beta(precision, recall, 1.0),
        "f2": f_beta(precision, recall, 2.0),
        "f1_max": f1_max,
        "f1_max_threshold": f1_max_threshold,
        "n_good": n_good,
        "n_defective": n_defective,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def per_defect_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    defect_types: Sequence[str],
    threshold: float | np.ndarray,
) -> dict[str, dict[str, float]]:
    """Image-level metrics of the good images against each defect type on its own.

    Args:
        labels: (N,) int or bool, 0 = good, 1 = defective.
        scores: (N,) float, finite, higher = more anomalous.
        defect_types: N names, ``"good"`` for every good image and the defect type (e.g.
            ``"scratch"``) for every defective one, as in the MVTec AD test folders.
        threshold: as in :func:`image_metrics` (defective when ``score > threshold``; a float
            or ``(N,)`` per-image thresholds).

    Returns:
        ``{defect_type: image_metrics(good images + that type's images)}`` for every type other
        than ``"good"``, in sorted order. Its AUROC etc. are ``nan`` when there is no good image.

    Raises:
        DataError: as :func:`image_metrics`; ``defect_types`` not of length N; an image typed
            ``"good"`` with label 1 or a defect type with label 0.
    """
    labels, scores = _check_labels_scores(labels, scores)
    subsets = _defect_type_subsets(defect_types, labels.size, "images")
    types = np.asarray([str(t) for t in defect_types], dtype=object)
    if np.any((types == "good") != (labels == 0)):
        raise DataError(
            "defect types and labels disagree: an image typed 'good' has label 1 or a defect "
            "type has label 0",
            "label exactly the images of type 'good' as 0",
        )
    th = np.broadcast_to(np.asarray(threshold, dtype=np.float64), labels.shape)
    return {
        name: image_metrics(labels[subset], scores[subset], th[subset])
        for name, subset, _ in subsets
    }


def _defect_type_subsets(
    defect_types: Sequence[str], n: int, what: str
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, good-or-that-type mask, that-type mask)`` per defect type other than "good",
    sorted by name; both masks ``(n,)`` bool.

    Raises:
        DataError: ``defect_types`` is not of length ``n`` (``what`` names the items).
    """
    types = np.asarray([str(t) for t in defect_types], dtype=object)
    if types.shape != (n,):
        raise DataError(
            f"{types.size} defect types for {n} {what}",
            f"pass one defect type name per item of the {what} ('good' for good images)",
        )
    good = types == "good"
    return [(name, good | (types == name), types == name) for name in sorted(set(types[~good]))]


def per_defect_pixel_metrics(
    masks: np.ndarray, maps: np.ndarray, defect_types: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Pixel-level AUROC and AUPRO of the good images' pixels against each defect type alone.

    Pooled pixel metrics are dominated by the defect types with the largest masks (e.g. a type
    whose regions cover a quarter of the image outweighs one with pin-holes); the per-type
    figures show where localisation succeeds and where it does not.

    Args:
        masks: (N, H, W) bool or integer ground truth, nonzero = defect pixel (all zero for good
            images).
        maps: (N, H, W) float anomaly maps, finite, higher = more anomalous.
        defect_types: N names, ``"good"`` for every good image, else the defect type.

    Returns:
        ``{defect_type: {"pixel_auroc", "aupro", "defect_pixel_share"}}`` for every type other
        than ``"good"``, in sorted order: :func:`pixel_auroc` and :func:`aupro` over the good
        images plus that type's images, and the fraction of that type's pixels that are defect
        pixels (in [0, 1]). Metrics are ``nan`` where undefined (e.g. no defect pixel).

    Raises:
        DataError: as :func:`pixel_auroc`; ``defect_types`` not of length N.

    Source: the pooled metrics of Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV
    2021, Sec. 4.2, restricted to one defect type at a time.
    """
    defect, maps = _check_masks_maps(masks, maps)
    return {
        name: {
            "pixel_auroc": pixel_auroc(defect[subset], maps[subset]),
            "aupro": aupro(defect[subset], maps[subset]),
            "defect_pixel_share": float(defect[own].mean()),
        }
        for name, subset, own in _defect_type_subsets(defect_types, len(defect), "anomaly maps")
    }


def roc_pr_curves(labels: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
    """ROC and precision-recall curves of image-level anomaly scores, for plotting.

    Args:
        labels: (N,) int or bool, 0 = good, 1 = defective.
        scores: (N,) float, finite, higher = more anomalous.

    Returns:
        ``{"fpr", "tpr"}`` from ``sklearn.metrics.roc_curve`` (increasing, from 0 to 1) and
        ``{"precision", "recall"}`` from ``sklearn.metrics.precision_recall_curve`` (recall
        decreasing to 0), as lists of Python floats in [0, 1]. All four lists are empty when only
        one class is present.

    Raises:
        DataError: as :func:`image_metrics`.
    """
    labels, scores = _check_labels_scores(labels, scores)
    if labels.min() == labels.max():
        return {"fpr": [], "tpr": [], "precision": [], "recall": []}
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    return {
        "fpr": fpr.astype(float).tolist(),
        "tpr": tpr.astype(float).tolist(),
        "precision": precision.astype(float).tolist(),
        "recall": recall.astype(float).tolist(),
    }


# ------------------------------------------------------------------------------- pixel level


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    """Pixel-level AUROC: every pixel of every image is one sample.

    Args:
        masks: (N, H, W) bool or integer ground truth, nonzero = defect pixel.
        maps: (N, H, W) float anomaly maps, finite, higher = more anomalous.

    Returns:
        ``roc_auc_score(masks.ravel() != 0, maps.ravel())`` in [0, 1]; ``nan`` when every pixel
        is defect or every pixel is defect-free.

    Raises:
        DataError: shapes differ or are not (N, H, W), no pixels, non-finite map values.

    Source: Bergmann et al., "MVTec AD", CVPR 2019 (pixel-wise ROC as a segmentation metric).
    """
    defect, maps = _check_masks_maps(masks, maps)
    n_defect = int(np.count_nonzero(defect))
    if n_defect == 0 or n_defect == defect.size:
        return _NAN
    return float(roc_auc_score(defect.ravel(), maps.ravel()))


def pro_curve(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-region-overlap (PRO) curve at every distinct anomaly-map value.

    Regions are the 8-connected components of each ground-truth mask, counted over all images.
    At threshold ``t`` a pixel is flagged when ``map >= t``;
    ``PRO(t) = mean over regions of |region & flagged| / |region|`` and
    ``FPR(t) = |defect-free pixels flagged| / |defect-free pixels|`` (defect-free pixels of all
    images, good images included). Computed exactly in one sort: pixels in descending score
    order, each defect pixel weighted ``1 / (n_regions * |its region|)``; cumulative sums
    (float64) give PRO and FPR, read at the last pixel of each run of tied scores.

    Args:
        masks: (N, H, W) bool or integer ground truth, nonzero = defect pixel.
        maps: (N, H, W) float anomaly maps, finite, higher = more anomalous.

    Returns:
        ``(fpr, pro)``: float64 arrays of equal length, both non-decreasing in [0, 1], starting
        with the point (0, 0) and ending at (1, 1). Both are empty when the curve is undefined
        (no defect region, or no defect-free pixel).

    Raises:
        DataError: shapes differ or are not (N, H, W), no pixels, non-finite map values.

    Source: Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021, Sec. 4.2, and
    the MVTec AD evaluation code (``compute_pro``).
    """
    defect, maps = _check_masks_maps(masks, maps)
    empty = np.empty(0, dtype=np.float64)

    # Per-pixel weight 1 / |its region| (0 for defect-free pixels); divided by n_regions below.
    weights = np.zeros(defect.shape, dtype=np.float64)
    n_regions = 0
    for i in range(defect.shape[0]):
        regions, n = ndimage.label(defect[i], structure=_EIGHT_CONNECTED)
        if n:
            inverse_size = np.zeros(n + 1, dtype=np.float64)
            inverse_size[1:] = 1.0 / np.bincount(regions.ravel(), minlength=n + 1)[1:]
            weights[i] = inverse_size[regions]
            n_regions += n
    n_defect_free = int(defect.size - np.count_nonzero(defect))
    if n_regions == 0 or n_defect_free == 0:
        return empty, empty

    scores = maps.ravel()
    order = np.argsort(scores)[::-1]  # descending; order inside ties does not matter
    sorted_scores = scores[order]
    run_ends = np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1])
    run_ends = np.append(run_ends, scores.size - 1)
    del sorted_scores

    weights = weights.ravel()[order]
    np.cumsum(weights, out=weights)
    pro = weights[run_ends] / n_regions
    del weights
    false_positives = np.cumsum(~defect.ravel()[order], dtype=np.int64)[run_ends]
    fpr = false_positives / n_defect_free

    np.clip(pro, 0.0, 1.0, out=pro)  # float round-off can overshoot 1 by an ulp
    zero = np.zeros(1, dtype=np.float64)
    return np.concatenate([zero, fpr]), np.concatenate([zero, pro])


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under (x, y) for x in [0, x_max]; y interpolated linearly at x_max.

    ``x`` is non-decreasing, starts at 0 and ends at or beyond ``x_max``.
    """
    end = int(np.searchsorted(x, x_max, side="right"))  # first index with x > x_max
    area = float(np.sum((x[1:end] - x[: end - 1]) * (y[1:end] + y[: end - 1]) / 2))
    if end < x.size and x[end - 1] < x_max:
        x0, x1, y0, y1 = x[end - 1], x[end], y[end - 1], y[end]
        y_at_max = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += float((x_max - x0) * (y0 + y_at_max) / 2)
    return area


def aupro(masks: np.ndarray, maps: np.ndarray, fpr_limit: float = 0.3) -> float:
    """AUPRO: area under the PRO curve for FPR in [0, fpr_limit], divided by ``fpr_limit``.

    The curve is :func:`pro_curve`; the area is the trapezoid rule over its points up to
    ``fpr_limit``, with PRO linearly interpolated at exactly ``fpr_limit``. Memory is a few
    arrays of N*H*W values (no thresholds x pixels matrix): 500 maps of 256 x 256 are fine.

    Args:
        masks: (N, H, W) bool or integer ground truth, nonzero = defect pixel.
        maps: (N, H, W) float anomaly maps, finite, higher = more anomalous.
        fpr_limit: upper integration limit of the false positive rate, in (0, 1]; 0.3 is the
            standard MVTec AD setting.

    Returns:
        A float in [0, 1] (1.0 for a map that ranks every defect pixel above every defect-free
        pixel); ``nan`` when there is no defect region or no defect-free pixel.

    Raises:
        DataError: shapes differ or are not (N, H, W), no pixels, non-finite map values.
        ConfigError: ``fpr_limit`` outside (0, 1].

    Source: Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021, Sec. 4.2, and
    the MVTec AD evaluation code.
    """
    if not 0 < fpr_limit <= 1:
        raise ConfigError(
            f"fpr_limit must be in (0, 1], got {fpr_limit}", "use 0.3, the MVTec AD standard"
        )
    fpr, pro = pro_curve(masks, maps)
    if fpr.size == 0:
        return _NAN
    return min(_area_up_to(fpr, pro, fpr_limit) / fpr_limit, 1.0)  # round-off guard
