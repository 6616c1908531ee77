"""Statistical process control (SPC) of production batches from per-image inspection results.

A production line inspects every part of a batch; this module turns the per-image observations
into per-batch statistics, puts Shewhart control limits on them from a set of *reference* batches
(batches known or assumed to be in control) and flags batches that break the Western Electric
run rules. Pure numpy: the charts and the HTML page are in :mod:`flawscope.report.spc_report`.

Observations are duck-typed: any object with the attributes

- ``batch: str``: production batch name (must not be empty);
- ``group: str``: view angle / layer group; ``""`` (or None) when all images are one group;
- ``score: float``: image anomaly score, higher = worse (must be finite);
- ``verdict: str``: ``"pass"`` or ``"fail"`` (case and surrounding spaces are ignored);
- ``anomalous_fraction: float | None``: share of anomaly-map pixels above the threshold, in
  ``[0, 1]``; None when the image was inspected without an anomaly map.

The results store's ``InspectionRecord`` has these attributes.

Three statistics are charted per batch (:data:`CHARTS`): the mean anomaly score, the fail rate and
the batch quality index nQI (:func:`nqi`, thesis equation 1.1 after Hansen, Knoche & Moeslund,
"Fantastic plastic? An image-based test method to detect aesthetic defects in batches based on
reference samples", Polymer Testing 89:106585, 2020).

Sources for the control chart: W. A. Shewhart's 3-sigma limits and the Western Electric run rules
as given in D. C. Montgomery, "Introduction to Statistical Quality Control" (ch. 5, "Statistical
basis of the control chart", sensitising rules; ch. 6, control chart for individual
measurements), and Western Electric Co., "Statistical Quality Control Handbook" (1956).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from flawscope.errors import ConfigError, DataError

Quantity = Literal["score", "anomalous_fraction"]
QUANTITIES: tuple[str, ...] = ("score", "anomalous_fraction")

#: Charted per-batch statistics: attribute of :class:`BatchTable` -> human-readable name.
CHARTS: dict[str, str] = {
    "mean_score": "mean score",
    "fail_rate": "fail rate",
    "nqi": "nQI",
}

#: Statistics that cannot be negative (their lower control limit is clipped at 0) and, for rates,
#: cannot exceed 1 (upper limit clipped at 1).
_BOUNDS: dict[str, tuple[float, float]] = {
    "mean_score": (-math.inf, math.inf),
    "fail_rate": (0.0, 1.0),
    "nqi": (0.0, math.inf),
}

#: Charts that only watch for increases. The nQI is the distance above the best batch, so the
#: best batch sits at 0 by construction; a lower limit would flag it every time.
UPPER_ONLY: frozenset[str] = frozenset({"nqi"})

MIN_BATCHES = 3
MIN_REFERENCE = 2
#: Run length of Western Electric rule 4 (points in a row on one side of the centre).
RUN_LENGTH = 8


# --------------------------------------------------------------------------------------------
# nQI (thesis equation 1.1)
# --------------------------------------------------------------------------------------------


def nqi(values: np.ndarray) -> np.ndarray:
    """Batch quality index nQI per batch and view/group (thesis eq. 1.1, after Hansen et al. 2020).

    The thesis (seed 003, Sec. 1.1) writes, for one view angle ``g``::

        nQI = (C - min_C(X_C)) / sqrt( sum_C (C - mu_C)^2 / n_C )

    with ``C`` "the total sum of all anomaly pixels for a single image angle" of one batch,
    ``min_C`` the minimum of that angle over all batches, ``mu_C`` the mean of that angle over all
    batches and ``n_C`` "the sample size of all image angles and batches". The typeset formula is
    garbled (``X_C`` is called the population standard deviation but sits inside the minimum, and
    ``n_C`` could be read as angles x batches); we read it per angle, with ``n_C`` the number of
    batches that have that angle, as

        ``nQI[b, g] = (C[b, g] - min_b C[:, g]) / sigma_g``,
        ``sigma_g = sqrt(mean_b (C[b, g] - mean_b C[:, g])^2)``

    i.e. the distance of a batch above the best batch of the same view, in units of the
    population standard deviation (``ddof=0``) of that view over the batches. 0 = as good as the
    best batch; larger = worse.

    The index is relative to the batches passed in: the minimum and sigma are taken over all of
    them (out-of-control batches included), so adding a batch can change the nQI of the others.

    The thesis has exactly one image per view per batch. With several images per (batch, group)
    the caller should pass the *mean* quantity per image (not the sum), so ``C`` is comparable
    between batches of different sizes; :func:`batch_table` does so.

    Args:
        values: ``(B, G)`` float, ``C[b, g]`` = anomaly quantity of group ``g`` in batch ``b``;
            NaN where batch ``b`` has no image of group ``g``. A ``(B,)`` array is taken as one
            group.

    Returns:
        ``(B, G)`` float64, ``>= 0``, NaN exactly where ``values`` is NaN. NaNs are ignored in the
        minimum and standard deviation. Where ``sigma_g == 0`` (all batches equal, or only one
        batch has group ``g``) the nQI is 0.

    Raises:
        ValueError: ``values`` is not 1- or 2-dimensional.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"values must be (B, G), got shape {arr.shape}")
    out = np.full(arr.shape, np.nan)
    for g in range(arr.shape[1]):
        col = arr[:, g]
        ok = ~np.isnan(col)
        if not ok.any():
            continue
        sigma = float(np.std(col[ok]))  # population standard deviation (ddof=0)
        if sigma > 0 and np.isfinite(sigma):
            out[ok, g] = (col[ok] - col[ok].min()) / sigma
        else:
            out[ok, g] = 0.0
    return out


# --------------------------------------------------------------------------------------------
# Per-batch table
# --------------------------------------------------------------------------------------------


@dataclass
class BatchTable:
    """Per-batch statistics, batches in first-seen order (``B`` batches, ``G`` groups).

    Attributes:
        names: ``B`` batch names.
        n: ``(B,)`` int, number of images.
        n_fail: ``(B,)`` int, number of images with verdict "fail".
        fail_rate: ``(B,)`` float in ``[0, 1]``, ``n_fail / n``.
        mean_score: ``(B,)`` float, mean anomaly score.
        max_score: ``(B,)`` float, largest anomaly score.
        nqi: ``(B,)`` float ``>= 0``, mean over the groups present in the batch of
            ``nqi_matrix[b]``.
        groups: ``G`` group names in first-seen order (``""`` = the single unnamed group).
        values: ``(B, G)`` float, the nQI input ``C``: mean ``quantity`` per image of the group in
            the batch; NaN where the batch has no image of the group.
        nqi_matrix: ``(B, G)`` float ``>= 0``, :func:`nqi` of ``values`` (NaN where it is NaN).
        quantity: ``"score"`` or ``"anomalous_fraction"``, the nQI input.
    """

    names: list[str]
    n: np.ndarray
    n_fail: np.ndarray
    fail_rate: np.ndarray
    mean_score: np.ndarray
    max_score: np.ndarray
    nqi: np.ndarray
    groups: list[str]
    values: np.ndarray
    nqi_matrix: np.ndarray
    quantity: str = "score"

    def __len__(self) -> int:
        return len(self.names)

    def statistic(self, name: str) -> np.ndarray:
        """The ``(B,)`` float array of a charted statistic (a key of :data:`CHARTS`)."""
        if name not in CHARTS:
            raise KeyError(f"unknown statistic {name!r}; one of {', '.join(CHARTS)}")
        return np.asarray(getattr(self, name), dtype=np.float64)


def _attr(obs: Any, index: int, name: str) -> Any:
    try:
        return getattr(obs, name)
    except AttributeError:
        raise DataError(
            f"observation {index} ({type(obs).__name__}) has no attribute {name!r}",
            "pass inspection records with batch, group, score, verdict and anomalous_fraction",
        ) from None


def _describe(obs: Any) -> str:
    """The observation's ``path`` when it has one (inspection records do), else its type."""
    path = getattr(obs, "path", None)
    return str(path) if path else type(obs).__name__


def batch_table(observations: Iterable[Any], quantity: Quantity = "score") -> BatchTable:
    """Group per-image observations by batch and compute the per-batch statistics.

    Args:
        observations: per-image objects with ``batch``, ``group``, ``score``, ``verdict`` and
            ``anomalous_fraction`` attributes (see the module docstring).
        quantity: the per-image anomaly quantity that goes into the nQI: ``"score"`` (anomaly
            score) or ``"anomalous_fraction"`` (share of anomaly-map pixels above the threshold,
            the closest to the thesis' "sum of all anomaly pixels" that is comparable between
            image sizes).

    Returns:
        A :class:`BatchTable`, batches and groups in first-seen order. ``C[b, g]`` is the mean
        quantity per image of group ``g`` in batch ``b`` (see :func:`nqi`).

    Raises:
        DataError: no observations; an observation lacks an attribute, has an empty batch name or
            a non-finite score; ``quantity`` is ``"anomalous_fraction"`` but it is None (or not
            finite) for some observation.
        ValueError: ``quantity`` is not one of ``"score"``, ``"anomalous_fraction"``.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, got {quantity!r}")
    names: dict[str, int] = {}
    groups: dict[str, int] = {}
    rows: list[tuple[int, int, float, bool, float]] = []
    for i, obs in enumerate(observations):
        batch = _attr(obs, i, "batch")
        batch = "" if batch is None else str(batch)
        if not batch.strip():
            raise DataError(
                f"observation {i} ({_describe(obs)}) has no batch name",
                "inspect with the production batch name, or leave unbatched images out of SPC",
            )
        group = _attr(obs, i, "group")
        group = "" if group is None else str(group)
        score = float(_attr(obs, i, "score"))
        if not math.isfinite(score):
            raise DataError(
                f"observation {i} ({_describe(obs)}) in batch {batch!r} has a non-finite score",
                "re-inspect that image or leave it out of the SPC analysis",
            )
        fail = str(_attr(obs, i, "verdict")).strip().lower() == "fail"
        if quantity == "score":
            q = score
        else:
            frac = _attr(obs, i, "anomalous_fraction")
            if frac is None or not math.isfinite(float(frac)):
                raise DataError(
                    f"observation {i} ({_describe(obs)}) in batch {batch!r} has no "
                    "anomalous_fraction",
                    "inspect with anomaly maps enabled, or use quantity 'score'",
                )
            q = float(frac)
        b = names.setdefault(batch, len(names))
        g = groups.setdefault(group, len(groups))
        rows.append((b, g, score, fail, q))
    if not rows:
        raise DataError(
            "no observations to analyse",
            "inspect at least 3 batches of images before running SPC",
        )

    bidx = np.array([r[0] for r in rows], dtype=np.int64)
    gidx = np.array([r[1] for r in rows], dtype=np.int64)
    scores = np.array([r[2] for r in rows], dtype=np.float64)
    fails = np.array([r[3] for r in rows], dtype=bool)
    qty = np.array([r[4] for r in rows], dtype=np.float64)
    n_batches, n_groups = len(names), len(groups)

    n = np.bincount(bidx, minlength=n_batches).astype(np.int64)
    n_fail = np.bincount(bidx, weights=fails.astype(np.float64), minlength=n_batches).astype(
        np.int64
    )
    mean_score = np.bincount(bidx, weights=scores, minlength=n_batches) / n
    max_score = np.full(n_batches, -np.inf)
    np.maximum.at(max_score, bidx, scores)

    cell = bidx * n_groups + gidx
    size = n_batches * n_groups
    cell_n = np.bincount(cell, minlength=size).reshape(n_batches, n_groups)
    cell_sum = np.bincount(cell, weights=qty, minlength=size).reshape(n_batches, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(cell_n > 0, cell_sum / np.maximum(cell_n, 1), np.nan)
    matrix = nqi(values)
    batch_nqi = np.array([np.nanmean(row) for row in matrix])  # every batch has >= 1 group

    return BatchTable(
        names=list(names),
        n=n,
        n_fail=n_fail,
        fail_rate=n_fail / n,
        mean_score=mean_score,
        max_score=max_score,
        nqi=batch_nqi,
        groups=list(groups),
        values=values,
        nqi_matrix=matrix,
        quantity=quantity,
    )


# --------------------------------------------------------------------------------------------
# Shewhart control limits and Western Electric rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Shewhart control limits of one chart (all in the units of the charted statistic).

    Attributes:
        centre: centre line, the mean of the reference batches.
        lcl: lower control limit, ``centre - 3 * sigma`` (possibly clipped to the statistic's
            range, e.g. 0 for a rate).
        ucl: upper control limit, ``centre + 3 * sigma`` (possibly clipped, e.g. 1 for a rate).
        sigma: sample standard deviation (``ddof=1``) of the reference batches, ``>= 0``.
    """

    centre: float
    lcl: float
    ucl: float
    sigma: float

    def to_dict(self) -> dict[str, float | None]:
        """``{centre, lcl, ucl, sigma}``, non-finite values as None (JSON-safe)."""
        return {k: _json_float(getattr(self, k)) for k in ("centre", "lcl", "ucl", "sigma")}


def control_limits(values: np.ndarray, reference: np.ndarray) -> Limits:
    """Shewhart 3-sigma control limits from the reference batches.

    ``centre`` = mean and ``sigma`` = sample standard deviation (``ddof=1``) of the finite values
    of the reference batches; ``lcl, ucl = centre -/+ 3 sigma`` (Shewhart; Montgomery,
    "Introduction to Statistical Quality Control", ch. 5). Note that Montgomery's individuals
    chart (ch. 6) estimates sigma from the average moving range instead; the sample standard
    deviation is used here because the reference batches are chosen as in control and need not be
    consecutive.

    Args:
        values: ``(B,)`` float, one value of the statistic per batch (NaN = missing).
        reference: ``(B,)`` bool, True for the batches the limits are estimated from.

    Returns:
        :class:`Limits`. When the reference values are all equal, ``sigma`` is 0 and both limits
        equal the centre, so every batch that differs from it is beyond the limits.

    Raises:
        DataError: fewer than 2 reference batches with a finite value.
        ValueError: ``values`` and ``reference`` are not 1-D arrays of the same length.
    """
    vals = np.asarray(values, dtype=np.float64)
    ref = np.asarray(reference, dtype=bool)
    if vals.ndim != 1 or ref.shape != vals.shape:
        raise ValueError(
            f"values and reference must be (B,) of the same length, got {vals.shape}, {ref.shape}"
        )
    chosen = vals[ref]
    chosen = chosen[np.isfinite(chosen)]
    if chosen.size < MIN_REFERENCE:
        raise DataError(
            f"need at least {MIN_REFERENCE} reference batches for control limits, "
            f"got {chosen.size}",
            "choose at least 2 in-control batches as the reference",
        )
    centre = float(chosen.mean())
    sigma = float(chosen.std(ddof=1))
    return Limits(centre=centre, lcl=centre - 3.0 * sigma, ucl=centre + 3.0 * sigma, sigma=sigma)


def _rule_beyond_3_sigma(values: np.ndarray, limits: Limits) -> np.ndarray:
    """Western Electric rule 1: a point outside ``[lcl, ucl]`` (beyond 3 sigma)."""
    with np.errstate(invalid="ignore"):
        return (values < limits.lcl) | (values > limits.ucl)


def _rule_2_of_3_beyond_2_sigma(values: np.ndarray, limits: Limits) -> np.ndarray:
    """Western Electric rule 2: 2 of 3 consecutive points beyond 2 sigma on the same side.

    Every point beyond ``centre +/- 2 sigma`` that lies in a window of 3 consecutive points with
    at least 2 such points on the same side is flagged (the point within 2 sigma is not).
    """
    with np.errstate(invalid="ignore"):
        high = values > limits.centre + 2.0 * limits.sigma
        low = values < limits.centre - 2.0 * limits.sigma
    flagged = np.zeros(values.shape, dtype=bool)
    for side in (high, low):
        for start in range(max(0, values.size - 2)):
            window = side[start : start + 3]
            if window.sum() >= 2:
                flagged[start : start + 3] |= window
    return flagged


def _rule_8_in_a_row(values: np.ndarray, limits: Limits) -> np.ndarray:
    """Western Electric rule 4: 8 or more consecutive points on the same side of the centre.

    Every point of such a run is flagged (the shift began at its first point). A point exactly on
    the centre line or missing (NaN) ends a run.
    """
    with np.errstate(invalid="ignore"):
        side = np.sign(values - limits.centre)
    side = np.nan_to_num(side, nan=0.0)
    flagged = np.zeros(values.shape, dtype=bool)
    start = 0
    for i in range(1, values.size + 1):
        if i == values.size or side[i] != side[start]:
            if side[start] != 0 and i - start >= RUN_LENGTH:
                flagged[start:i] = True
            start = i
    return flagged


#: Out-of-control rules, in the order they are reported: name -> function
#: ``(values (B,) float, Limits) -> (B,) bool`` (True = the batch violates the rule).
#: Western Electric rules 1, 2 and 4 (Western Electric Statistical Quality Control Handbook,
#: 1956; Montgomery, ch. 5, sensitising rules). NaN values never violate a rule.
RULES: dict[str, Callable[[np.ndarray, Limits], np.ndarray]] = {
    "beyond 3 sigma": _rule_beyond_3_sigma,
    "2 of 3 beyond 2 sigma": _rule_2_of_3_beyond_2_sigma,
    "8 in a row on one side of the centre": _rule_8_in_a_row,
}
#: the rules applied unless others are asked for: rule 1 only. With limits estimated from a
#: handful of reference batches, adding rules 2 and 4 raised the share of fully in-control
#: simulated runs with a false alarm (10 batches: 34 % with all three rules).
DEFAULT_RULES: tuple[str, ...] = ("beyond 3 sigma",)


def check_rules(rules: Sequence[str]) -> tuple[str, ...]:
    """``rules`` as a tuple; raises ConfigError naming any rule that is not in :data:`RULES`."""
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules:
        raise ConfigError(
            f"unknown SPC rule(s): {', '.join(unknown) or '(none given)'}",
            f"choose from: {'; '.join(RULES)}",
        )
    return tuple(rules)


def out_of_control(
    values: np.ndarray,
    limits: Limits,
    side: Literal["both", "upper"] = "both",
    rules: Sequence[str] = tuple(RULES),
) -> list[list[str]]:
    """The Western Electric rules (:data:`RULES`) each batch violates.

    Args:
        values: ``(B,)`` float, the charted statistic per batch in production order; NaN values
            violate nothing.
        limits: the chart's :class:`Limits` (rule 1 uses ``lcl``/``ucl``, rules 2 and 4 use
            ``centre`` and ``sigma``).
        side: ``"both"`` (the classical two-sided chart) or ``"upper"``: only points above the
            centre line can violate a rule (a one-sided chart for "higher = worse" indices).
        rules: names of the rules to apply (keys of :data:`RULES`; default all).

    Returns:
        ``B`` lists of rule names (keys of :data:`RULES`, in that order); empty = in control.

    Raises:
        ValueError: ``side`` is not ``"both"`` or ``"upper"``.
    """
    if side not in ("both", "upper"):
        raise ValueError(f"side must be 'both' or 'upper', got {side!r}")
    vals = np.asarray(values, dtype=np.float64).ravel()
    hits = {name: RULES[name](vals, limits) for name in check_rules(rules)}
    if side == "upper":
        with np.errstate(invalid="ignore"):
            above = vals > limits.centre
        hits = {name: hit & above for name, hit in hits.items()}
    return [[name for name in RULES if name in hits and hits[name][b]] for b in range(vals.size)]


# --------------------------------------------------------------------------------------------
# The whole analysis
# --------------------------------------------------------------------------------------------


@dataclass
class Chart:
    """One control chart.

    Attributes:
        statistic: key of :data:`CHARTS` (``"mean_score"``, ``"fail_rate"`` or ``"nqi"``).
        values: ``(B,)`` float, the statistic per batch.
        limits: the :class:`Limits` from the reference batches.
        violations: ``B`` lists of violated rule names (see :func:`out_of_control`).
        side: ``"both"`` or ``"upper"`` (only increases are flagged; ``lcl`` is then the
            statistic's floor, 0 for the nQI).
    """

    statistic: str
    values: np.ndarray
    limits: Limits
    violations: list[list[str]]
    side: str = "both"

    @property
    def label(self) -> str:
        """Human-readable name of the statistic."""
        return CHARTS[self.statistic]


@dataclass
class SPCResult:
    """Result of :func:`spc_analysis`.

    Attributes:
        table: the per-batch :class:`BatchTable`.
        reference: names of the reference batches, in batch order.
        charts: statistic -> :class:`Chart`, for every key of :data:`CHARTS`.
        rules: the run rules that were applied (keys of :data:`RULES`).
    """

    table: BatchTable
    reference: list[str]
    charts: dict[str, Chart] = field(default_factory=dict)
    rules: tuple[str, ...] = DEFAULT_RULES

    @property
    def quantity(self) -> str:
        """The nQI input quantity, ``"score"`` or ``"anomalous_fraction"``."""
        return self.table.quantity

    @property
    def reference_mask(self) -> np.ndarray:
        """``(B,)`` bool, True for reference batches."""
        ref = set(self.reference)
        return np.array([name in ref for name in self.table.names], dtype=bool)

    def flags(self) -> list[list[str]]:
        """Per batch, ``"<statistic>: <rule>"`` for every violation on every chart."""
        out: list[list[str]] = [[] for _ in self.table.names]
        for chart in self.charts.values():
            for b, rules in enumerate(chart.violations):
                out[b].extend(f"{chart.label}: {rule}" for rule in rules)
        return out

    @property
    def out_of_control_batches(self) -> list[str]:
        """Names of the batches with any violation on any chart, in batch order."""
        return [name for name, f in zip(self.table.names, self.flags(), strict=True) if f]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary: plain lists, floats and strings; NaN / inf -> None."""
        t = self.table
        flags = self.flags()
        batches = [
            {
                "name": name,
                "n": int(t.n[b]),
                "n_fail": int(t.n_fail[b]),
                "fail_rate": _json_float(t.fail_rate[b]),
                "mean_score": _json_float(t.mean_score[b]),
                "max_score": _json_float(t.max_score[b]),
                "nqi": _json_float(t.nqi[b]),
                "reference": name in self.reference,
                "flags": flags[b],
            }
            for b, name in enumerate(t.names)
        ]
        return {
            "quantity": t.quantity,
            "rules": list(self.rules),
            "reference": list(self.reference),
            "out_of_control_batches": self.out_of_control_batches,
            "batches": batches,
            "groups": list(t.groups),
            "nqi_matrix": [[_json_float(v) for v in row] for row in t.nqi_matrix],
            "charts": {
                key: {
                    "side": chart.side,
                    "limits": chart.limits.to_dict(),
                    "values": [_json_float(v) for v in chart.values],
                    "violations": [list(v) for v in chart.violations],
                }
                for key, chart in self.charts.items()
            },
        }


def _json_float(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _reference_mask(names: list[str], reference: Sequence[str] | None) -> np.ndarray:
    if reference is None:
        mask = np.zeros(len(names), dtype=bool)
        mask[: max(MIN_REFERENCE, len(names) // 2)] = True
        return mask
    if isinstance(reference, str):
        reference = [reference]
    wanted = [str(r) for r in reference]
    unknown = [r for r in dict.fromkeys(wanted) if r not in names]
    if unknown:
        raise DataError(
            f"unknown reference batch(es): {', '.join(unknown)}",
            f"choose among the inspected batches: {', '.join(names)}",
        )
    chosen = set(wanted)
    return np.array([name in chosen for name in names], dtype=bool)


def spc_analysis(
    observations: Iterable[Any],
    reference: Sequence[str] | None = None,
    quantity: Quantity = "score",
    rules: Sequence[str] = DEFAULT_RULES,
) -> SPCResult:
    """Per-batch table, Shewhart limits and Western Electric violations for every chart.

    Batches are charted in first-seen order, which should be production order (the run rules
    look at consecutive batches).

    Args:
        observations: per-image observations (see the module docstring).
        reference: names of the in-control batches the limits are estimated from; default the
            first half of the batches in first-seen order (at least 2).
        quantity: nQI input, ``"score"`` or ``"anomalous_fraction"`` (see :func:`batch_table`).
        rules: the run rules applied (keys of :data:`RULES`); default :data:`DEFAULT_RULES`.

    Returns:
        :class:`SPCResult` with a :class:`Chart` for ``mean_score``, ``fail_rate`` and ``nqi``.
        The mean-score and fail-rate charts are two-sided (a drop in the mean score is a process
        change too, e.g. a darker camera) with the fail-rate limits clipped to ``[0, 1]``. The
        nQI chart is upper-sided (:data:`UPPER_ONLY`): its lower limit is the floor 0 and only
        points above the centre line can break a rule, because the best batch of every group has
        nQI 0 by construction and would otherwise always fall below a positive lower limit.

    Raises:
        DataError: no observations or bad observations (see :func:`batch_table`); fewer than 3
            batches; reference names that are not batches; fewer than 2 reference batches.
        ConfigError: an unknown rule name.
    """
    rules = check_rules(rules)
    table = batch_table(observations, quantity)
    if len(table) < MIN_BATCHES:
        raise DataError(
            f"need at least {MIN_BATCHES} batches for control limits, got {len(table)} "
            f"({', '.join(table.names)})",
            "inspect more production batches before running SPC",
        )
    mask = _reference_mask(table.names, reference)
    charts: dict[str, Chart] = {}
    for key in CHARTS:
        values = table.statistic(key)
        limits = control_limits(values, mask)
        low, high = _BOUNDS[key]
        side = "upper" if key in UPPER_ONLY else "both"
        limits = Limits(
            centre=limits.centre,
            lcl=low if side == "upper" else max(limits.lcl, low),
            ucl=min(limits.ucl, high),
            sigma=limits.sigma,
        )
        violations = out_of_control(values, limits, side=side, rules=rules)
        charts[key] = Chart(key, values, limits, violations, side)
    ref_names = [name for name, m in zip(table.names, mask, strict=True) if m]
    return SPCResult(table=table, reference=ref_names, charts=charts, rules=rules)
