"""One self-contained HTML evaluation report: inline CSS, figures as base64 PNG data URIs.

The page opens offline in any browser: it references no CDN, script, font or external file.
:func:`write_report` renders ``templates/report.html`` (Jinja2) from a :class:`ReportData`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape

from flawscope.report import figures as fg

NA = "n/a"
NA_NO_MASKS = "n/a (no masks)"

IMAGE_METRICS = (
    ("auroc", "Image-level AUROC"),
    ("auprc", "Image-level AUPRC"),
    ("precision", "Precision at threshold"),
    ("recall", "Recall at threshold"),
    ("f1", "F1 at threshold"),
    ("f2", "F2 at threshold"),
    ("f1_max", "F1-max (best threshold)"),
)
PIXEL_METRICS = (
    ("pixel_auroc", "Pixel-level AUROC"),
    ("aupro", "AUPRO"),
)
COUNT_METRICS = (
    ("n_good", "Good test images"),
    ("n_defective", "Defective test images"),
    ("tp", "Defects caught (TP)"),
    ("fn", "Defects missed (FN)"),
    ("fp", "False alarms (FP)"),
    ("tn", "Good passed (TN)"),
    ("f1_max_threshold", "Threshold giving F1-max"),
)
DEFECT_COLUMNS = (("auroc", "AUROC"), ("auprc", "AUPRC"), ("f1", "F1"), ("recall", "Recall"))
#: shown only when some defect type has them (test sets with ground-truth masks)
DEFECT_PIXEL_COLUMNS = (
    ("pixel_auroc", "Pixel AUROC"),
    ("aupro", "AUPRO"),
    ("defect_pixel_share", "Defect pixels"),
)


@dataclass
class Panel:
    """One test image shown in the "Most / Least anomalous" sections.

    Attributes:
        name: file name shown.
        label: ``"good"`` or the defect type.
        score: image-level anomaly score.
        verdict: ``"pass"`` or ``"fail"``.
        image: ``(H, W)`` or ``(H, W, 3)`` float32 in ``[0, 1]``.
        anomaly_map: ``(H, W)`` float32, same H, W as ``image``, in the units of the score.
        reconstruction: like ``image``, for reconstruction models; else None.
        mask: ``(H, W)`` bool ground-truth defect mask; else None.
    """

    name: str
    label: str
    score: float
    verdict: str
    image: np.ndarray
    anomaly_map: np.ndarray
    reconstruction: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclass
class ReportData:
    """Everything the report shows.

    Attributes:
        title: page title.
        model_name: detector name (e.g. ``"cae"``).
        dataset: dataset path or name.
        threshold: anomaly score above which the verdict is "fail".
        threshold_method: how the threshold was chosen, e.g. ``"max of 30 hold-out good images"``.
        metrics: ``auroc, auprc, precision, recall, f1, f2, f1_max, pixel_auroc, aupro`` -> value;
            None or NaN shows as "n/a" (pixel metrics: "n/a (no masks)" when None). Extra keys are
            listed after the known ones.
        per_defect: defect type -> ``{auroc, auprc, f1, recall, n_defective, ...}``.
        labels: ``(N,)`` int, 0 good / 1 defective.
        scores: ``(N,)`` float anomaly scores.
        most_anomalous, least_anomalous: panels, shown in the given order.
        holdout_scores: ``(M,)`` scores of the hold-out good images used for the threshold.
        loss_history: ``{"train_loss": [...], "val_loss": [...]}`` per epoch, or None.
        version: flawscope version; the installed version when empty.
        created: ISO timestamp; the current time when empty.
    """

    title: str
    model_name: str
    dataset: str
    threshold: float
    threshold_method: str
    metrics: dict[str, float | None]
    per_defect: dict[str, dict[str, float]]
    labels: np.ndarray
    scores: np.ndarray
    most_anomalous: list[Panel]
    least_anomalous: list[Panel]
    holdout_scores: np.ndarray | None = None
    loss_history: dict[str, list[float]] | None = None
    version: str = ""
    created: str = ""


def fmt_metric(value: Any, missing: str = NA) -> str:
    """Format a metric to 3 decimals; None / NaN / inf -> ``missing``; integers stay integers."""
    if value is None:
        return missing
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:.3f}" if math.isfinite(number) else missing


def _metric_rows(metrics: dict[str, float | None]) -> dict[str, list[dict[str, str]]]:
    """Rows ``{name, value}`` for the image-level, pixel-level and other metrics tables."""
    image = [{"name": n, "value": fmt_metric(metrics.get(k))} for k, n in IMAGE_METRICS]
    pixel = []
    for key, name in PIXEL_METRICS:
        value = metrics.get(key)
        pixel.append(
            {"name": name, "value": fmt_metric(value, NA_NO_MASKS if value is None else NA)}
        )
    names = dict(COUNT_METRICS)
    known = {k for k, _ in IMAGE_METRICS + PIXEL_METRICS}
    other = [
        {"name": names.get(k, k), "value": fmt_metric(v)}
        for k, v in metrics.items()
        if k not in known
    ]
    return {"image": image, "pixel": pixel, "other": other}


def _has_pixel_columns(per_defect: dict[str, dict[str, float]]) -> bool:
    """Whether some defect type carries pixel-level metrics (the test set has masks)."""
    return any("pixel_auroc" in values for values in per_defect.values())


def _defect_rows(
    per_defect: dict[str, dict[str, float]], columns: tuple[tuple[str, str], ...]
) -> list[dict[str, Any]]:
    """One row per defect type: name, the formatted ``columns`` (image-level AUROC / AUPRC /
    F1 / recall, and pixel AUROC / AUPRO / defect-pixel share when masks exist), image count."""
    rows = []
    for defect, values in sorted(per_defect.items()):
        count = values.get("n_defective", values.get("count"))
        cells = [fmt_metric(values.get(k)) for k, _ in columns]
        rows.append({"name": defect, "cells": cells, "count": fmt_metric(count)})
    return rows


def _overlay_vmax(threshold: float, panels: list[Panel]) -> float:
    """``2 * threshold`` (threshold mid-scale); the largest panel map value if that is unusable."""
    if math.isfinite(threshold) and threshold > 0:
        return 2.0 * threshold
    peaks = [float(np.nan_to_num(p.anomaly_map).max()) for p in panels if np.size(p.anomaly_map)]
    peaks = [v for v in peaks if math.isfinite(v) and v > 0]
    return max(peaks) if peaks else 1.0


def _outcome(label: str, verdict: str) -> str:
    """ "false alarm" / "missed defect" when the verdict disagrees with the label, else ""."""
    good = label.strip().lower() == "good"
    if good and verdict == "fail":
        return "false alarm"
    if not good and verdict == "pass":
        return "missed defect"
    return ""


def _panel_context(panel: Panel, vmax: float) -> dict[str, Any]:
    """Template values for one panel: text fields and (caption, data URI) images."""
    images = [("input", fg.png_data_uri(fg.thumbnail(fg.to_uint8_rgb(panel.image))))]
    if panel.reconstruction is not None:
        recon = fg.to_uint8_rgb(panel.reconstruction)
        images.append(("reconstruction", fg.png_data_uri(fg.thumbnail(recon))))
    heat = fg.overlay(panel.image, panel.anomaly_map, vmax=vmax)
    images.append(("anomaly map", fg.png_data_uri(fg.thumbnail(heat))))
    if panel.mask is not None:
        mask = fg.thumbnail(fg.mask_to_rgb(panel.mask), nearest=True)
        images.append(("ground truth", fg.png_data_uri(mask)))
    verdict = str(panel.verdict).strip().lower()
    return {
        "name": panel.name,
        "label": panel.label,
        "is_good": panel.label.strip().lower() == "good",
        "score": fg.fmt_score(panel.score),
        "verdict": verdict,
        "outcome": _outcome(panel.label, verdict),
        "images": [{"caption": c, "uri": u} for c, u in images],
    }


def _colour_scale(vmax: float) -> dict[str, str]:
    """A horizontal JET gradient strip (data URI) and its tick labels for the overlay legend."""
    strip = fg.heat_colours(np.tile(np.linspace(0.0, 1.0, 256), (12, 1)))
    return {
        "uri": fg.png_data_uri(strip),
        "low": "0",
        "mid": fg.fmt_score(vmax / 2.0),
        "high": fg.fmt_score(vmax),
    }


def _figure_uris(data: ReportData) -> dict[str, str | None]:
    """Data URIs of the ROC/PR, histogram and loss figures (None where not drawable)."""
    roc_pr = fg.roc_pr_figure(
        data.labels, data.scores, data.metrics.get("auroc"), data.metrics.get("auprc")
    )
    hist = fg.histogram_figure(data.labels, data.scores, data.threshold, data.holdout_scores)
    loss = fg.loss_figure(data.loss_history) if data.loss_history else None
    return {
        "roc_pr": fg.figure_data_uri(roc_pr) if roc_pr is not None else None,
        "histogram": fg.figure_data_uri(hist),
        "loss": fg.figure_data_uri(loss) if loss is not None else None,
    }


def _counts(labels: np.ndarray) -> dict[str, int]:
    lab = np.asarray(labels).astype(int)
    return {"n": int(lab.size), "good": int((lab == 0).sum()), "defective": int((lab == 1).sum())}


def _context(data: ReportData) -> dict[str, Any]:
    """All template variables for ``data``."""
    vmax = _overlay_vmax(data.threshold, data.most_anomalous + data.least_anomalous)
    pixel_columns = _has_pixel_columns(data.per_defect)
    defect_columns = DEFECT_COLUMNS + (DEFECT_PIXEL_COLUMNS if pixel_columns else ())
    return {
        "d": data,
        "version": data.version or _installed_version(),
        "created": data.created or datetime.now().isoformat(timespec="seconds"),
        "threshold": fg.fmt_score(data.threshold),
        "counts": _counts(data.labels),
        "metrics": _metric_rows(data.metrics),
        "defect_columns": [n for _, n in defect_columns],
        "defect_pixel": pixel_columns,
        "defect_rows": _defect_rows(data.per_defect, defect_columns),
        "figures": _figure_uris(data),
        "vmax": fg.fmt_score(vmax),
        "colour_scale": _colour_scale(vmax),
        "most": [_panel_context(p, vmax) for p in data.most_anomalous],
        "least": [_panel_context(p, vmax) for p in data.least_anomalous],
    }


def _installed_version() -> str:
    from flawscope import __version__

    return __version__


def template_environment() -> Environment:
    """The Jinja2 environment of the packaged report templates (HTML autoescaped)."""
    return Environment(
        loader=PackageLoader("flawscope", "report/templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(data: ReportData) -> str:
    """Render ``data`` to the HTML text of the report (see :func:`write_report`)."""
    return template_environment().get_template("report.html").render(**_context(data))


def write_report(data: ReportData, path: Path) -> Path:
    """Write the self-contained HTML report for ``data`` to ``path``.

    Parent directories are created. The file is UTF-8 HTML with inline CSS and every figure
    embedded as a base64 PNG data URI, so it opens offline. Returns ``path`` as a :class:`Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(data), encoding="utf-8")
    return path
