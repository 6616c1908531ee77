"""HTML report of a 3D-ST evaluation: metrics, loss curves, renders of the extreme clouds.

Self-contained like :mod:`flawscope.report.html` (whose CSS it shares): figures are base64
PNG data URIs, no scripts, no network. :func:`report_sections` returns the ``<section>``
elements alone, to embed in another page; :func:`write_report` writes a whole page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from flawscope.pointcloud.evaluation import Evaluation, Scored
from flawscope.pointcloud.heatmap import map_overlay, render_labels, render_scores
from flawscope.report import figures as fg
from flawscope.report.html import fmt_metric, template_environment

RENDER_SIDE = 300


@dataclass
class CloudPanel:
    """One cloud in the "most / least anomalous" sections: text and ``(H, W, 3)`` uint8 images."""

    name: str
    defect_type: str
    score: float
    verdict: str
    images: list[tuple[str, np.ndarray]]


@dataclass
class ReportData:
    """What the report shows.

    Attributes:
        title: page title.
        dataset: data set path or description.
        model: model name and id, e.g. ``"3d-st (1a2b3c4d5e6f)"``.
        threshold, threshold_method: the model threshold and how it was set.
        colours: ``(low, high)`` of the heat-map colour scale (:func:`colour_range`).
        metrics: :attr:`Evaluation.metrics`.
        labels, scores: ``(N,)`` 0/1 labels and object scores of the test clouds.
        holdout_scores: ``(M,)`` object scores of the held-out good clouds.
        history: ``teacher_loss``, ``teacher_val_loss``, ``student_loss``,
            ``student_val_loss`` per epoch.
        most, least: panels.
        facts: extra ``(name, value)`` rows for the header (fit times, sizes, machine).
    """

    title: str
    dataset: str
    model: str
    threshold: float
    threshold_method: str
    colours: tuple[float, float]
    metrics: dict[str, Any]
    labels: np.ndarray
    scores: np.ndarray
    holdout_scores: np.ndarray
    history: dict[str, list[float]]
    most: list[CloudPanel] = field(default_factory=list)
    least: list[CloudPanel] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)


def panel(item: Scored, colours: tuple[float, float], side: int = RENDER_SIDE) -> CloudPanel:
    """Renders of one scored cloud: score colours from two sides, ground truth (if known),
    and the ``(H, W)`` map of organised scans."""
    cloud, scores = item.result.cloud, item.result.point_scores
    images = [
        ("anomaly score", render_scores(cloud, scores, *colours, side)),
        ("anomaly score, back", render_scores(cloud, scores, *colours, side, azimuth=120.0)),
    ]
    if cloud.labels is not None and cloud.labels.any():
        images.append(("ground truth", render_labels(cloud, side)))
    if cloud.organized:
        overlay = fg.thumbnail(map_overlay(cloud, scores, *colours), side)
        images.append(("(H, W) anomaly map", overlay))
    path = Path(item.path)
    folder = path.parent.parent if path.parent.name == "xyz" else path.parent
    return CloudPanel(
        f"{folder.name}/{path.name}",
        item.defect_type,
        item.result.score,
        item.result.verdict,
        images,
    )


def extreme_panels(
    ev: Evaluation, colours: tuple[float, float], n: int = 4
) -> tuple[list[CloudPanel], list[CloudPanel]]:
    """Panels of the ``n`` highest- and ``n`` lowest-scoring clouds."""
    order = np.argsort(-ev.scores, kind="stable")
    most = [panel(ev.items[i], colours) for i in order[:n]]
    least = [panel(ev.items[i], colours) for i in order[::-1][:n]]
    return most, least


def _outcome(p: CloudPanel) -> str:
    """ "false alarm" / "missed defect" when the verdict disagrees with the known type."""
    if not p.defect_type:
        return ""
    if p.defect_type == "good":
        return "false alarm" if p.verdict == "fail" else ""
    return "missed defect" if p.verdict == "pass" else ""


def _loss_uri(history: dict[str, list[float]], prefix: str, title: str, unit: str) -> str | None:
    series = {k: v for k, v in history.items() if k.startswith(prefix) and v}
    fig = fg.loss_figure(series)
    if fig is None:
        return None
    fig.axes[0].set_title(title)
    fig.axes[0].set_ylabel(unit)
    return fg.figure_data_uri(fig)


def _metric_rows(m: dict[str, Any]) -> list[dict[str, str]]:
    obj = m.get("object", {})
    rows = [
        ("Object-level AUROC", obj.get("auroc")),
        ("Object-level AUPRC", obj.get("auprc")),
        ("F1 at threshold", obj.get("f1")),
        ("Recall at threshold", obj.get("recall")),
        ("Precision at threshold", obj.get("precision")),
        ("F1-max (best threshold)", obj.get("f1_max")),
        ("Point-level AUROC", m.get("point_auroc")),
        ("AUPRO (FPR <= 0.3, organised scans)", m.get("aupro")),
    ]
    for method, value in m.get("object_auroc_by_aggregation", {}).items():
        chosen = " (the model's)" if method == m.get("aggregation") else ""
        rows.append((f"Object AUROC with {method} aggregation{chosen}", value))
    rows += [
        ("Good / defective test clouds", f"{obj.get('n_good', 0)} / {obj.get('n_defective', 0)}"),
        ("Defects caught / missed", f"{obj.get('tp', 0)} / {obj.get('fn', 0)}"),
        ("False alarms", obj.get("fp")),
    ]
    return [{"name": k, "value": fmt_metric(v, "n/a")} for k, v in rows]


def _context(data: ReportData) -> dict[str, Any]:
    hist = fg.histogram_figure(data.labels, data.scores, data.threshold, data.holdout_scores)
    hist.axes[0].set_xlabel("object anomaly score")
    hist.axes[0].set_ylabel("number of clouds")
    roc = fg.roc_pr_figure(data.labels, data.scores, data.metrics.get("object", {}).get("auroc"))
    per_defect = [
        {"name": k, "auroc": fmt_metric(v.get("auroc")), "recall": fmt_metric(v.get("recall")),
         "n": fmt_metric(v.get("n_defective"))}
        for k, v in sorted(data.metrics.get("per_defect", {}).items())
    ]  # fmt: skip
    low, high = data.colours

    def panels(ps: list[CloudPanel]) -> list[dict[str, Any]]:
        return [
            {
                "name": p.name,
                "defect_type": p.defect_type,
                "score": fg.fmt_score(p.score),
                "verdict": p.verdict,
                "outcome": _outcome(p),
                "images": [{"caption": c, "uri": fg.png_data_uri(img)} for c, img in p.images],
            }
            for p in ps
        ]

    strip = fg.heat_colours(np.tile(np.linspace(0.0, 1.0, 256), (12, 1)))
    return {
        "d": data,
        "threshold": fg.fmt_score(data.threshold),
        "metrics": _metric_rows(data.metrics),
        "per_defect": per_defect,
        "hist": fg.figure_data_uri(hist),
        "roc": fg.figure_data_uri(roc) if roc is not None else None,
        "teacher_loss": _loss_uri(
            data.history, "teacher", "Teacher pretraining", "chamfer distance (normalised units)"
        ),
        "student_loss": _loss_uri(
            data.history, "student", "Student training", "squared regression error"
        ),
        "scale": {
            "uri": fg.png_data_uri(strip),
            "low": fg.fmt_score(low),
            "high": fg.fmt_score(high),
        },
        "most": panels(data.most),
        "least": panels(data.least),
        "created": datetime.now().isoformat(timespec="seconds"),
    }


_SECTIONS = """
<section id="pc-metrics">
  <h2>3D-ST metrics</h2>
  <p class="note">A cloud fails when its object score is above the threshold {{ threshold }}
    ({{ d.threshold_method }}).</p>
  <div class="pc-grid">
    <table><thead><tr><th>Metric</th><th class="num">Value</th></tr></thead><tbody>
    {% for r in metrics %}
    <tr><td>{{ r.name }}</td><td class="num">{{ r.value }}</td></tr>
    {% endfor %}
    </tbody></table>
    {% if per_defect %}
    <table><thead><tr><th>Defect type</th><th class="num">AUROC vs good</th>
      <th class="num">Recall</th><th class="num">Clouds</th></tr></thead><tbody>
    {% for r in per_defect %}<tr><td>{{ r.name }}</td><td class="num">{{ r.auroc }}</td>
      <td class="num">{{ r.recall }}</td><td class="num">{{ r.n }}</td></tr>{% endfor %}
    </tbody></table>
    {% endif %}
  </div>
</section>
<section id="pc-scores">
  <h2>Object scores</h2>
  <img class="pc-figure" src="{{ hist }}" alt="score histogram">
  {% if roc %}<img class="pc-figure" src="{{ roc }}" alt="ROC and PR curves">{% endif %}
</section>
<section id="pc-losses">
  <h2>Training</h2>
  {% if teacher_loss %}<img class="pc-figure" src="{{ teacher_loss }}" alt="teacher loss">
  {% else %}<p class="note">No teacher loss recorded.</p>{% endif %}
  {% if student_loss %}
  <img class="pc-figure" src="{{ student_loss }}" alt="student loss">
  {% endif %}
</section>
{% for title, ps in (("Most anomalous clouds", most), ("Least anomalous clouds", least)) %}
<section class="pc-panels">
  <h2>{{ title }}</h2>
  <div class="pc-scale">{{ scale.low }} <img src="{{ scale.uri }}" alt="colour scale">
    {{ scale.high }} &nbsp;(point score; {{ scale.low }} = median good point, the threshold
    {{ threshold }} is mid-scale)</div>
  {% for p in ps %}
  <div class="pc-panel">
    <div class="pc-info"><div class="pc-name">{{ p.name }}</div>
      <div>type: <strong>{{ p.defect_type or "unknown" }}</strong></div>
      <div>score: {{ p.score }}</div>
      <div>verdict: <span class="pc-{{ p.verdict }}">{{ p.verdict }}</span>
        {% if p.outcome %}<span class="pc-wrong">({{ p.outcome }})</span>{% endif %}</div>
    </div>
    {% for im in p.images %}<figure><img src="{{ im.uri }}" alt="{{ im.caption }}">
      <figcaption>{{ im.caption }}</figcaption></figure>{% endfor %}
  </div>
  {% endfor %}
</section>
{% endfor %}
"""

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ d.title }}</title>
<style>
{% include "_base_style.html" %}
  .pc-grid { display: flex; flex-wrap: wrap; gap: 28px; align-items: flex-start; }
  img.pc-figure { max-width: 100%; height: auto; display: block; margin-bottom: 10px; }
  .pc-panel { display: flex; gap: 14px; padding: 10px 0; border-top: 1px solid var(--line);
              align-items: flex-start; flex-wrap: wrap; }
  .pc-info { width: 180px; font-size: 14px; overflow-wrap: anywhere; }
  .pc-name { font-weight: 600; }
  .pc-pass { color: var(--pass); font-weight: 600; }
  .pc-fail { color: var(--fail); font-weight: 600; }
  .pc-wrong { color: var(--fail); font-size: 13px; }
  figure { margin: 0; text-align: center; }
  figure img { width: 210px; height: auto; border: 1px solid var(--line); border-radius: 4px; }
  figcaption { font-size: 12px; color: var(--muted); }
  .pc-scale { display: flex; align-items: center; gap: 8px; font-size: 12px; color: var(--muted); }
  .pc-scale img { width: 240px; height: 12px; }
</style></head>
<body><main>
<header><h1>{{ d.title }}</h1>
  <dl class="meta">
    <dt>Model</dt><dd><code>{{ d.model }}</code></dd>
    <dt>Data</dt><dd>{{ d.dataset }}</dd>
    <dt>Threshold</dt><dd><strong>{{ threshold }}</strong> &mdash; {{ d.threshold_method }}</dd>
    {% for k, v in d.facts %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}
    <dt>Created</dt><dd>{{ created }}</dd>
  </dl>
</header>
{{ sections }}
</main></body></html>
"""


def report_sections(data: ReportData) -> str:
    """The report's ``<section>`` elements (metrics, scores, training, panels) as HTML."""
    env = template_environment()
    return env.from_string(_SECTIONS).render(**_context(data))


def write_report(data: ReportData, path: Path | str) -> Path:
    """Write the whole self-contained HTML page to ``path`` (parents created); returns it."""
    from markupsafe import Markup

    page = template_environment().from_string(_PAGE)
    html = page.render(
        d=data,
        sections=Markup(report_sections(data)),
        threshold=fg.fmt_score(data.threshold),
        created=datetime.now().isoformat(timespec="seconds"),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
