"""Pixel metrics of predicted against true foreground masks, for ``flawscope segment evaluate``.

Source: seed 003 (master's thesis on LEGO brick inspection), sections 3.6-3.7 compare
segmentation methods visually only; these are the standard pixel-classification scores
(precision, recall, F1 = Dice, IoU = Jaccard) and the ROC AUC of scikit-learn's
``roc_auc_score``. A predicted probability counts as foreground when ``> 0.5``, the rule of thesis
listing 3.7 line 3 (``preds_mask > 0.5``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from flawscope.errors import DataError

__all__ = ["mask_metrics"]

_NAN = float("nan")


def _ratio(num: int, den: int) -> float:
    return float(num) / float(den) if den > 0 else _NAN


def _check(
    true_masks: Sequence[np.ndarray], predicted: Sequence[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(true_masks) != len(predicted):
        raise DataError(
            f"{len(true_masks)} true masks but {len(predicted)} predictions",
            "pass one prediction per true mask, in the same order",
        )
    if len(true_masks) == 0:
        raise DataError("no masks to evaluate", "pass at least one (true, predicted) pair")
    pairs = []
    for i, (t, p) in enumerate(zip(true_masks, predicted, strict=True)):
        t, p = np.asarray(t), np.asarray(p)
        if t.ndim != 2 or t.shape != p.shape:
            raise DataError(
                f"image {i}: true mask shape {t.shape} and prediction shape {p.shape} must be the "
                "same (H, W)",
                "resize the predictions to the true masks' size",
            )
        if p.dtype != bool:
            p = p.astype(np.float64)
            if not np.all(np.isfinite(p)) or p.min() < 0.0 or p.max() > 1.0:
                raise DataError(
                    f"image {i}: predicted values must be bool or probabilities in [0, 1], "
                    f"got range [{np.nanmin(p):.4g}, {np.nanmax(p):.4g}]",
                    "pass bool masks or foreground probabilities",
                )
        pairs.append((t != 0, p))
    return pairs


def mask_metrics(
    true_masks: Sequence[np.ndarray], predicted: Sequence[np.ndarray]
) -> dict[str, float]:
    """Pixel precision, recall, F1, IoU, per-image mean IoU and ROC AUC of foreground masks.

    Pixel counts ``tp``, ``fp``, ``fn`` are pooled over all pixels of all images:
    ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``,
    ``f1 = 2 tp / (2 tp + fp + fn)`` (the Dice coefficient), ``iou = tp / (tp + fp + fn)``.
    ``mean_iou`` is the mean over images of each image's own IoU. A bool prediction is used as
    is; a numeric one is a foreground probability, foreground when ``> 0.5`` (thesis listing 3.7).

    ``roc_auc`` is ``sklearn.metrics.roc_auc_score`` of the pooled true pixels against the pooled
    predicted values: a ranking score when probabilities are given; for bool predictions it is
    computed on the binary masks and equals ``(TPR + TNR) / 2`` (balanced accuracy). Mixing bool
    and numeric predictions is allowed; bools count as 0 / 1.

    Empty cases are ``nan``, never an exception: ``precision`` when nothing is predicted
    foreground; ``recall`` when no pixel of any image is truly foreground; ``f1`` and ``iou``
    when both are empty; ``roc_auc`` when the true pixels are all foreground or all background.
    An image whose true and predicted masks are both empty has no IoU and is left out of
    ``mean_iou`` (``nan`` if that holds for every image).

    Args:
        true_masks: N ``(H_i, W_i)`` true masks (bool, numeric read as ``!= 0``).
        predicted: N arrays of the same shapes: bool masks or float probabilities in ``[0, 1]``.

    Returns:
        ``{"precision", "recall", "f1", "iou", "mean_iou", "roc_auc"}``, each a float in
        ``[0, 1]`` or ``nan``.

    Raises:
        DataError: no images, different numbers of true and predicted masks, a shape mismatch or
            a non-2-D mask, or predicted values that are not bool nor finite numbers in [0, 1].
    """
    pairs = _check(true_masks, predicted)
    tp = fp = fn = 0
    ious: list[float] = []
    for truth, pred in pairs:
        fg = pred if pred.dtype == bool else pred > 0.5
        i_tp = int(np.count_nonzero(truth & fg))
        i_fp = int(np.count_nonzero(fg & ~truth))
        i_fn = int(np.count_nonzero(truth & ~fg))
        tp, fp, fn = tp + i_tp, fp + i_fp, fn + i_fn
        ious.append(_ratio(i_tp, i_tp + i_fp + i_fn))
    y_true = np.concatenate([t.ravel() for t, _ in pairs])
    y_score = np.concatenate([p.ravel().astype(np.float64) for _, p in pairs])
    both_classes = 0 < np.count_nonzero(y_true) < y_true.size
    defined = [v for v in ious if not np.isnan(v)]
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "mean_iou": float(np.mean(defined)) if defined else _NAN,
        "roc_auc": float(roc_auc_score(y_true, y_score)) if both_classes else _NAN,
    }
