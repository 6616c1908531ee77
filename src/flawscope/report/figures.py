"""Figures for the HTML report, rendered to PNG data URIs (no files, no network).

Everything here draws on :class:`matplotlib.figure.Figure` objects with the Agg canvas, never
through ``pyplot``, so no global figure state is touched and nothing needs a display.

Shapes and ranges used throughout:

- ``labels``: ``(N,)`` int, 0 = good, 1 = defective.
- ``scores``: ``(N,)`` float, image-level anomaly scores (higher = more anomalous).
- ``image``: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` float in ``[0, 1]`` (uint8 also accepted).
- ``anomaly_map``: ``(H, W)`` float32 in the units of the score.

:func:`overlay` is also used by ``flawscope inspect`` to write overlay PNGs.
"""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

GOOD_COLOUR = "#2e7d32"
DEFECT_COLOUR = "#c62828"
HOLDOUT_COLOUR = "#1565c0"
THRESHOLD_COLOUR = "#212121"
FIGURE_DPI = 110
THUMBNAIL_SIDE = 256


def to_rgb_float(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as ``(H, W, 3)`` float32 in ``[0, 1]``.

    Accepts ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; uint8 input is scaled by 1/255, float input
    is clipped to ``[0, 1]`` and NaNs become 0.
    """
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be (H,W), (H,W,1) or (H,W,3), got shape {arr.shape}")
    return np.clip(arr, 0.0, 1.0)


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Return ``image`` (see :func:`to_rgb_float`) as ``(H, W, 3)`` uint8 RGB.

    Grey images are converted in 8 bits before they are expanded to 3 channels (no float
    ``(H, W, 3)`` copy).
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        if arr.dtype != np.uint8:
            arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
            arr = np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    return np.round(to_rgb_float(arr) * 255.0).astype(np.uint8)


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Map ``values`` in ``[0, 1]`` (any shape ``S``) to JET colours, ``S + (3,)`` uint8 RGB.

    0 maps to dark blue, 0.5 to green-yellow, 1 to dark red (OpenCV's ``COLORMAP_JET``).
    """
    levels = np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)
    bgr = cv2.applyColorMap(levels.reshape(levels.shape[0], -1), cv2.COLORMAP_JET)
    return bgr[..., ::-1].reshape(*levels.shape, 3)


def overlay(
    image: np.ndarray, anomaly_map: np.ndarray, vmax: float, alpha: float = 0.5
) -> np.ndarray:
    """Blend a JET heat map of ``anomaly_map`` over ``image``.

    Args:
        image: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` float in ``[0, 1]`` (or uint8); grey is
            expanded to 3 channels.
        anomaly_map: ``(H, W)`` float, in the units of the anomaly score. NaNs count as 0. A map of
            another size is resized (bilinear) to the image.
        vmax: map value shown as the hottest colour; the colour scale is
            ``clip(anomaly_map / vmax, 0, 1)``. The report uses ``2 * threshold`` so the threshold
            sits mid-scale. A non-finite or non-positive ``vmax`` falls back to the map's maximum
            (or 1 when the map is all zeros).
        alpha: weight of the heat map, in ``[0, 1]``; 0 returns the image, 1 the heat map alone.

    Returns:
        ``(H, W, 3)`` uint8 RGB: ``(1 - alpha) * image + alpha * heat`` (rounded).

    Works in 8 bits per channel (OpenCV ``addWeighted``), so a full-resolution overlay of a
    large photograph needs about three ``(H, W, 3)`` uint8 arrays and one ``(H, W)`` float32
    map, not float copies of the image.
    """
    rgb = to_uint8_rgb(image)
    amap = np.nan_to_num(np.asarray(anomaly_map, dtype=np.float32), nan=0.0, posinf=0.0)
    if amap.ndim == 3 and amap.shape[2] == 1:
        amap = amap[:, :, 0]
    if amap.ndim != 2:
        raise ValueError(f"anomaly_map must be (H,W), got shape {amap.shape}")
    if amap.shape != rgb.shape[:2]:
        amap = cv2.resize(amap, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    if not np.isfinite(vmax) or vmax <= 0:
        vmax = float(amap.max()) if amap.max() > 0 else 1.0
    heat = heat_colours(amap / vmax)
    del amap
    alpha = float(np.clip(alpha, 0.0, 1.0))
    return cv2.addWeighted(rgb, 1.0 - alpha, heat, alpha, 0.0)


def mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool (or 0/1) mask -> ``(H, W, 3)`` uint8: defect white, background black."""
    m = np.asarray(mask)
    if m.ndim == 3:
        m = m[..., 0]
    return np.repeat((m > 0).astype(np.uint8)[:, :, None] * 255, 3, axis=2)


def thumbnail(rgb: np.ndarray, side: int = THUMBNAIL_SIDE, nearest: bool = False) -> np.ndarray:
    """Shrink ``(H, W, 3)`` uint8 so its longer side is at most ``side`` px (never enlarges)."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(rgb, size, interpolation=interp)


def png_data_uri(rgb: np.ndarray) -> str:
    """``(H, W, 3)`` uint8 RGB -> ``"data:image/png;base64,..."``."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arrays
        raise ValueError("could not encode image as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def figure_data_uri(fig: Figure) -> str:
    """Render ``fig`` with Agg to a PNG data URI and release its artists."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    fig.clear()
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def fmt_score(value: float) -> str:
    """Format a score or threshold: 3 decimals, or 3 significant digits when ``|value| < 0.01``.

    Reconstruction errors are often ~1e-3, where 3 decimals would lose every digit.
    """
    if value is None or not np.isfinite(value):
        return "n/a"
    if value != 0 and abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.3f}"


def has_both_classes(labels: np.ndarray) -> bool:
    """True when ``labels`` contains at least one good (0) and one defective (1) image."""
    lab = np.asarray(labels).astype(int)
    return bool((lab == 0).any() and (lab == 1).any())


def _finite(value: float | None) -> bool:
    return value is not None and bool(np.isfinite(value))


def roc_pr_figure(
    labels: np.ndarray,
    scores: np.ndarray,
    auroc: float | None = None,
    auprc: float | None = None,
) -> Figure | None:
    """ROC curve (left) and precision-recall curve (right), side by side.

    Args:
        labels: ``(N,)`` int, 0 good / 1 defective.
        scores: ``(N,)`` float anomaly scores.
        auroc, auprc: values for the legends; computed from the data when None/NaN.

    Returns:
        The figure, or None when ``labels`` lacks one of the two classes (no curve exists).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    from flawscope.metrics import roc_pr_curves

    lab = np.asarray(labels).astype(int)
    sc = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    if not has_both_classes(lab):
        return None
    auroc = auroc if _finite(auroc) else roc_auc_score(lab, sc)
    auprc = auprc if _finite(auprc) else average_precision_score(lab, sc)
    curves = roc_pr_curves(lab, sc)
    fpr, tpr = curves["fpr"], curves["tpr"]
    precision, recall = curves["precision"], curves["recall"]

    fig = Figure(figsize=(10, 4.2))
    ax_roc, ax_pr = fig.subplots(1, 2)
    ax_roc.plot(fpr, tpr, color=DEFECT_COLOUR, lw=2, label=f"AUROC = {auroc:.3f}")
    ax_roc.plot([0, 1], [0, 1], color="#9e9e9e", lw=1, ls="--", label="chance")
    _style_axes(ax_roc, "ROC curve", "false positive rate", "true positive rate")
    ax_pr.step(recall, precision, where="post", color=HOLDOUT_COLOUR, lw=2)
    ax_pr.plot([], [], color=HOLDOUT_COLOUR, lw=2, label=f"AUPRC = {auprc:.3f}")
    ax_pr.axhline(lab.mean(), color="#9e9e9e", lw=1, ls="--", label="chance")
    _style_axes(ax_pr, "Precision-recall curve", "recall", "precision")
    fig.tight_layout()
    return fig


def _style_axes(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")


def histogram_figure(
    labels: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    holdout_scores: np.ndarray | None = None,
    bins: int = 30,
) -> Figure:
    """Overlapping histograms of good and defective scores, sharing bins, plus a threshold line.

    Args:
        labels: ``(N,)`` int, 0 good / 1 defective.
        scores: ``(N,)`` float anomaly scores.
        threshold: score above which the verdict is "fail"; drawn as a labelled vertical line.
        holdout_scores: ``(M,)`` scores of the hold-out good images the threshold came from,
            drawn as a third (outlined) distribution when given.
        bins: number of shared bins over the range of all scores and the threshold.
    """
    lab = np.asarray(labels).astype(int)
    sc = np.asarray(scores, dtype=np.float64)
    hold = None if holdout_scores is None else np.asarray(holdout_scores, dtype=np.float64)
    edges = _shared_bins([sc, hold, np.array([threshold])], bins)

    fig = Figure(figsize=(10, 3.8))
    ax = fig.subplots()
    for name, colour, values in (
        ("good", GOOD_COLOUR, sc[lab == 0]),
        ("defective", DEFECT_COLOUR, sc[lab == 1]),
    ):
        values = values[np.isfinite(values)]
        if values.size:
            ax.hist(values, bins=edges, color=colour, alpha=0.55, label=f"{name} (n={values.size})")
    if hold is not None and hold.size:
        hold = hold[np.isfinite(hold)]
        ax.hist(
            hold,
            bins=edges,
            histtype="step",
            color=HOLDOUT_COLOUR,
            lw=2,
            ls="--",
            label=f"hold-out good (n={hold.size})",
        )
    if np.isfinite(threshold):
        ax.axvline(
            threshold, color=THRESHOLD_COLOUR, lw=2, label=f"threshold = {fmt_score(threshold)}"
        )
        ax.annotate(
            "threshold",
            xy=(threshold, 0.97),
            xycoords=ax.get_xaxis_transform(),
            xytext=(-4, 0),
            textcoords="offset points",
            rotation=90,
            ha="right",
            va="top",
            fontsize=9,
            bbox={"fc": "white", "ec": "none", "pad": 1},
        )
    ax.set_title("Anomaly score distribution")
    ax.set_xlabel("image anomaly score")
    ax.set_ylabel("number of images")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def _shared_bins(arrays: list[np.ndarray | None], bins: int) -> np.ndarray:
    """Bin edges spanning the finite values of all ``arrays`` (a unit span if all equal)."""
    values = np.concatenate([a.ravel() for a in arrays if a is not None])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


def loss_figure(loss_history: dict[str, list[float]]) -> Figure | None:
    """Loss per epoch for every series in ``loss_history`` (e.g. ``train_loss``, ``val_loss``).

    Returns None when no series has a value. A log y-axis is used when all values are positive
    and span more than two decades.
    """
    series = {k: np.asarray(v, dtype=np.float64) for k, v in loss_history.items() if len(v)}
    if not series:
        return None
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots()
    for name, values in series.items():
        epochs = np.arange(1, values.size + 1)
        ax.plot(epochs, values, marker="o", ms=3, lw=1.8, label=name.replace("_", " "))
    finite = np.concatenate(list(series.values()))
    finite = finite[np.isfinite(finite)]
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
        ax.set_yscale("log")
    ax.set_title("Training and validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig
