"""SPC control charts and a self-contained HTML page for an :class:`~flawscope.spc.SPCResult`.

:func:`control_chart_figure` draws one Shewhart chart (matplotlib :class:`Figure`, Agg, no
``pyplot``); :func:`write_spc_report` renders ``templates/spc.html`` (Jinja2) with the batch table,
the three control charts (embedded as base64 PNG data URIs) and the per-group nQI heat table. The
page references no CDN, script, font or external file, so it opens offline.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from flawscope.report import figures as fg
from flawscope.report.html import template_environment
from flawscope.spc import CHARTS, RULES, Limits, SPCResult

#: Short codes of the rules (Western Electric rule numbers), used in the rule strip and flags.
RULE_CODES: dict[str, str] = dict(zip(RULES, ("R1", "R2", "R4"), strict=True))

LINE_COLOUR = "#1565c0"
LIMIT_COLOUR = "#455a64"
OOC_COLOUR = fg.DEFECT_COLOUR
REFERENCE_COLOUR = "#e3f2fd"
HEAT_RGB = (198, 40, 40)  # --fail of the page
YLABELS = {
    "mean_score": "mean anomaly score",
    "fail_rate": "fail rate",
    "nqi": "nQI (mean over groups)",
}
TITLES = {
    "mean_score": "Mean anomaly score per batch",
    "fail_rate": "Fail rate per batch",
    "nqi": "Batch quality index nQI",
}
QUANTITY_TEXT = {
    "score": "anomaly score (mean per image)",
    "anomalous_fraction": "anomalous pixel fraction (mean per image)",
}


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the contiguous True runs of a 1-D bool array."""
    runs, start = [], None
    for i, flag in enumerate(list(mask) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _fmt(value: float, sigma: float | None = None) -> str:
    """A value of a chart: :func:`~flawscope.report.figures.fmt_score`, or, given the chart's
    ``sigma``, enough decimals (3 to 8) to resolve a tenth of sigma, so limits never look equal."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if sigma is not None and math.isfinite(sigma) and sigma > 0:
        decimals = min(max(1 - math.floor(math.log10(sigma)), 3), 8)
        return f"{value:.{decimals}f}"
    return fg.fmt_score(value)


def _label_limits(ax, limits: Limits, upper_only: bool) -> None:
    """Centre line, dashed UCL/LCL and dotted 2-sigma lines, each labelled at the right edge.

    ``upper_only`` (one-sided chart): no LCL and no lower 2-sigma line.
    """
    ax.axhline(limits.centre, color=LIMIT_COLOUR, lw=1.4, zorder=1)
    lines = [(limits.centre, f"CL {_fmt(limits.centre, limits.sigma)}", "center")]
    if limits.sigma > 0:
        bounds = [(limits.ucl, "UCL", "bottom", +1)]
        if not upper_only:
            bounds.append((limits.lcl, "LCL", "top", -1))
        for y, name, va, sign in bounds:
            ax.axhline(limits.centre + sign * 2 * limits.sigma, color=LIMIT_COLOUR, lw=0.8, ls=":")
            ax.axhline(y, color=LIMIT_COLOUR, lw=1.4, ls="--", zorder=1)
            lines.append((y, f"{name} {_fmt(y, limits.sigma)}", va))
    else:
        # sigma = 0: the limits coincide with the centre line
        lines[0] = (limits.centre, f"CL {_fmt(limits.centre)}, σ = 0", "bottom")
    for y, text, va in lines:
        ax.annotate(
            text,
            xy=(1.0, y),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 2 if va == "bottom" else (-2 if va == "top" else 0)),
            textcoords="offset points",
            ha="right",
            va=va,
            fontsize=8.5,
            color=LIMIT_COLOUR,
            bbox={"fc": "white", "ec": "none", "pad": 0.5, "alpha": 0.85},
            zorder=5,
        )


def _batch_ticks(ax, names: Sequence[str]) -> None:
    """One tick per batch (every k-th beyond 40 batches), rotated when the names would collide."""
    n = len(names)
    step = max(1, math.ceil(n / 40))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks)
    longest = max((len(str(s)) for s in names), default=1)
    rotate = len(ticks) * (longest + 1) > 90
    ax.set_xticklabels(
        [str(names[i]) for i in ticks],
        rotation=45 if rotate else 0,
        ha="right" if rotate else "center",
        rotation_mode="anchor" if rotate else "default",
        fontsize=9 if len(ticks) <= 20 else 8,
    )


def control_chart_figure(
    names: Sequence[str],
    values: np.ndarray,
    limits: Limits,
    violations: Sequence[Sequence[str]],
    title: str,
    ylabel: str,
    reference: Sequence[bool] | np.ndarray | None = None,
    side: str = "both",
    rules: Sequence[str] = tuple(RULE_CODES),
) -> Figure:
    """One Shewhart control chart: a statistic per batch against its control limits.

    Layout: a thin strip on top with one row per Western Electric rule (R1, R2, R4; a red square
    where a batch breaks the rule), and below it the chart itself sharing the batch axis.

    Args:
        names: ``B`` batch names, in production order (the x axis; every k-th name beyond 40
            batches, rotated when they would collide).
        values: ``(B,)`` float, the statistic per batch; NaN points are left out.
        limits: centre line and limits (:class:`~flawscope.spc.Limits`); the centre is drawn
            solid, UCL/LCL dashed, ``centre +/- 2 sigma`` dotted, each labelled with its value in
            an empty margin right of the last batch.
        violations: ``B`` lists of violated rule names (keys of :data:`flawscope.spc.RULES`);
            violating points are drawn red and marked in the rule strip; the legend spells out
            the rule codes.
        title, ylabel: chart title and y label.
        reference: ``(B,)`` bool, True for the reference batches; shaded light blue.
        side: ``"both"``, or ``"upper"`` for a one-sided chart (no LCL / lower 2-sigma line).
        rules: the rules that were applied (rows of the rule strip and legend entries).

    Returns:
        A 10 x 4.4 inch :class:`Figure` (no ``pyplot`` state); render with
        :func:`flawscope.report.figures.figure_data_uri`.
    """
    vals = np.asarray(values, dtype=np.float64).ravel()
    x = np.arange(vals.size)
    fig = Figure(figsize=(10, 4.4))
    ax_rules, ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 5.2]})
    handles: list[Any] = []

    if reference is not None:
        ref = np.asarray(reference, dtype=bool).ravel()
        for start, stop in _runs(ref):
            for a in (ax_rules, ax):
                a.axvspan(start - 0.5, stop - 0.5, color=REFERENCE_COLOUR, zorder=0, lw=0)
        if ref.any():
            handles.append(Patch(color=REFERENCE_COLOUR, label="reference batches"))

    upper_only = side == "upper"
    _label_limits(ax, limits, upper_only)
    ax.plot(x, vals, color=LINE_COLOUR, lw=1.5, marker="o", ms=5, zorder=3)
    handles.append(Line2D([], [], color=LINE_COLOUR, lw=1.5, marker="o", ms=5, label=ylabel))
    handles.append(Line2D([], [], color=LIMIT_COLOUR, lw=1.4, label="centre line (CL)"))
    if limits.sigma > 0:
        limit_label = "UCL (3σ)" if upper_only else "UCL / LCL (3σ)"
        handles.append(Line2D([], [], color=LIMIT_COLOUR, lw=1.4, ls="--", label=limit_label))
        two = "+2σ" if upper_only else "±2σ"
        handles.append(Line2D([], [], color=LIMIT_COLOUR, lw=0.8, ls=":", label=two))

    bad = [i for i, rules in enumerate(violations) if rules and np.isfinite(vals[i])]
    if bad:
        ax.plot(x[bad], vals[bad], ls="none", marker="o", ms=8, color=OOC_COLOUR, zorder=4)
        handles.append(
            Line2D([], [], ls="none", marker="o", ms=8, color=OOC_COLOUR, label="out of control")
        )
    _rule_strip(ax_rules, violations, vals.size, rules)
    for rule in rules:
        handles.append(Line2D([], [], ls="none", label=f"{RULE_CODES[rule]}: {rule}"))

    finite = vals[np.isfinite(vals)]
    bounds = (limits.ucl,) if upper_only else (limits.lcl, limits.ucl)
    span = [v for v in (limits.centre, *bounds, *finite.tolist()) if math.isfinite(v)]
    if span:
        lo, hi = min(span), max(span)
        pad = 0.1 * (hi - lo) if hi > lo else max(abs(hi) * 0.1, 0.05)
        bottom = lo - pad
        if lo >= 0 > bottom:  # a non-negative statistic: show only a sliver below 0
            bottom = -0.03 * (hi + pad)
        ax.set_ylim(bottom, hi + pad)

    _batch_ticks(ax, list(names))
    # Empty room right of the last batch for the CL / UCL / LCL labels, so they never cover a point.
    ax.set_xlim(-0.6, vals.size - 0.4 + max(1.4, 0.14 * vals.size))
    ax_rules.set_title(title)
    ax.set_xlabel("batch (production order)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize=9,
        handlelength=2.2,
    )
    fig.tight_layout(h_pad=0.2)
    return fig


def _rule_strip(ax, violations: Sequence[Sequence[str]], n: int, rules: Sequence[str]) -> None:
    """One row per applied rule (R1 on top): a red square at each batch that breaks it."""
    codes = [(rule, RULE_CODES[rule]) for rule in rules]
    for row, (rule, _) in enumerate(codes):
        y = len(codes) - 1 - row
        ax.axhline(y, color=LIMIT_COLOUR, lw=0.5, alpha=0.3, zorder=1)
        hits = [i for i in range(n) if rule in violations[i]]
        if hits:
            ax.plot(hits, [y] * len(hits), ls="none", marker="s", ms=6, color=OOC_COLOUR, zorder=3)
    ax.set_yticks(range(len(codes)))
    ax.set_yticklabels([code for _, code in reversed(codes)], fontsize=8, color=OOC_COLOUR)
    ax.set_ylim(-0.7, len(codes) - 0.3)
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", bottom=False, labelbottom=False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color(LIMIT_COLOUR)
    ax.spines["bottom"].set_alpha(0.3)
    if not any(violations):
        ax.text(
            0.5,
            0.5,
            "no rule broken",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=8.5,
            color=LIMIT_COLOUR,
        )


def _heat_style(value: float, vmax: float) -> str:
    """Inline CSS of one heat-table cell: white (0) to red (``vmax``), white text when dark."""
    if not math.isfinite(value):
        return ""
    t = min(max(value / vmax, 0.0), 1.0) if vmax > 0 else 0.0
    r, g, b = (round(255 + (c - 255) * t) for c in HEAT_RGB)
    text = "#ffffff" if t > 0.55 else "#1f2933"
    return f"background: rgb({r}, {g}, {b}); color: {text};"


def _heat_table(result: SPCResult) -> dict[str, Any]:
    t = result.table
    matrix = np.asarray(t.nqi_matrix, dtype=np.float64)
    finite = matrix[np.isfinite(matrix)]
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    ooc = set(result.out_of_control_batches)
    rows = []
    for b, name in enumerate(t.names):
        cells = [
            {
                "text": f"{v:.2f}" if math.isfinite(v) else "–",
                "style": _heat_style(v, vmax),
                "na": not math.isfinite(v),
            }
            for v in matrix[b]
        ]
        rows.append({"name": name, "cells": cells, "ooc": name in ooc})
    return {
        "groups": [g if g else "(all images)" for g in t.groups],
        "rows": rows,
        "vmax": f"{vmax:.2f}",
    }


def _batch_rows(result: SPCResult) -> list[dict[str, Any]]:
    t = result.table
    ref = set(result.reference)
    chart = result.charts.get("mean_score")
    sigma = chart.limits.sigma if chart is not None else None  # score decimals
    rows = []
    for b, name in enumerate(t.names):
        flags = [
            {
                "chart": chart.label,
                "codes": " ".join(RULE_CODES.get(r, r) for r in chart.violations[b]),
                "rules": ", ".join(chart.violations[b]),
            }
            for chart in result.charts.values()
            if chart.violations[b]
        ]
        rows.append(
            {
                "name": name,
                "reference": name in ref,
                "n": int(t.n[b]),
                "fails": int(t.n_fail[b]),
                "fail_rate": f"{100.0 * float(t.fail_rate[b]):.1f} %",
                "mean_score": _fmt(float(t.mean_score[b]), sigma),
                "max_score": _fmt(float(t.max_score[b]), sigma),
                "nqi": f"{float(t.nqi[b]):.2f}" if math.isfinite(t.nqi[b]) else "n/a",
                "flags": flags,
                "ooc": bool(flags),
            }
        )
    return rows


def _chart_contexts(result: SPCResult) -> list[dict[str, Any]]:
    names = result.table.names
    ref = result.reference_mask
    out = []
    for key, chart in result.charts.items():
        fig = control_chart_figure(
            names,
            chart.values,
            chart.limits,
            chart.violations,
            TITLES.get(key, CHARTS.get(key, key)),
            YLABELS.get(key, CHARTS.get(key, key)),
            reference=ref,
            side=chart.side,
            rules=result.rules,
        )
        lim = chart.limits
        out.append(
            {
                "key": key,
                "label": chart.label,
                "uri": fg.figure_data_uri(fig),
                "centre": _fmt(lim.centre, lim.sigma),
                "lcl": _fmt(lim.lcl, lim.sigma),
                "ucl": _fmt(lim.ucl, lim.sigma),
                "sigma": f"{lim.sigma:.3g}",
                "zero_sigma": not lim.sigma > 0,
                "upper_only": chart.side == "upper",
                "flagged": [n for n, v in zip(names, chart.violations, strict=True) if v],
            }
        )
    return out


def _name_ranges(names: Sequence[str], mask: np.ndarray) -> str:
    """The masked names, runs of 3 or more consecutive batches written ``first – last``."""
    parts = []
    for start, stop in _runs(mask):
        if stop - start >= 3:
            parts.append(f"{names[start]} – {names[stop - 1]}")
        else:
            parts.extend(names[start:stop])
    return ", ".join(parts)


def _context(result: SPCResult, title: str) -> dict[str, Any]:
    from flawscope import __version__

    t = result.table
    return {
        "title": title,
        "version": __version__,
        "created": datetime.now().isoformat(timespec="seconds"),
        "n_batches": len(t.names),
        "n_images": int(np.sum(t.n)),
        "n_groups": len(t.groups),
        "ooc": result.out_of_control_batches,
        "reference": _name_ranges(t.names, result.reference_mask),
        "n_reference": len(result.reference),
        "quantity": QUANTITY_TEXT.get(t.quantity, t.quantity),
        "rows": _batch_rows(result),
        "charts": _chart_contexts(result),
        "heat": _heat_table(result),
        "rules": [{"code": RULE_CODES.get(r, ""), "name": r} for r in result.rules],
    }


def render_spc_report(result: SPCResult, title: str = "flawscope SPC") -> str:
    """Render ``result`` to the HTML text of the SPC page (see :func:`write_spc_report`)."""
    return template_environment().get_template("spc.html").render(**_context(result, title))


def write_spc_report(result: SPCResult, path: Path, title: str = "flawscope SPC") -> Path:
    """Write the self-contained SPC HTML page for ``result`` to ``path``.

    The page has a summary (number of batches, out-of-control batches, reference batches, the nQI
    quantity), the batch table (out-of-control rows highlighted, reference batches tagged), the
    mean-score, fail-rate and nQI control charts as embedded PNGs, and the per-group nQI heat
    table (batches x groups).

    The page is rendered in memory, written to a temporary file next to ``path`` and moved over
    ``path`` with :func:`os.replace`, so a failure never leaves a half-written report (an older
    report at ``path`` stays as it was). Parent folders are created.

    Returns:
        ``path`` as a :class:`Path`.
    """
    path = Path(path)
    html = render_spc_report(result, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
