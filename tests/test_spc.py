"""SPC of production batches: nQI (thesis eq. 1.1), Shewhart limits, Western Electric rules,
the whole analysis on synthetic batches, its errors, and the HTML page."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from flawscope.errors import DataError
from flawscope.report import spc_report
from flawscope.report.spc_report import control_chart_figure, write_spc_report
from flawscope.spc import (
    RULES,
    Limits,
    batch_table,
    control_limits,
    nqi,
    out_of_control,
    spc_analysis,
)

R1, R2, R4 = RULES  # "beyond 3 sigma", "2 of 3 beyond 2 sigma", "8 in a row on one side ..."
IMG_RE = re.compile(r'<img[^>]*src="data:image/png;base64,[A-Za-z0-9+/=]+"')
UNIT = Limits(centre=0.0, lcl=-3.0, ucl=3.0, sigma=1.0)
BAD = "batch-07"


@dataclass
class Obs:
    batch: str
    group: str
    score: float
    verdict: str
    anomalous_fraction: float | None = None


def _batches(seed: int = 0, n_batches: int = 10, bad: int | None = 7) -> list[Obs]:
    """``n_batches`` of 20 scores from N(1, 0.1), two view groups; in batch ``bad`` 30 % of the
    scores are 3.0 with verdict fail (every other image passes)."""
    rng = np.random.default_rng(seed)
    obs = []
    for b in range(n_batches):
        scores = rng.normal(1.0, 0.1, 20)
        fail = np.zeros(20, dtype=bool)
        if b == bad:
            scores[:6], fail[:6] = 3.0, True
        for i in range(20):
            obs.append(
                Obs(
                    batch=f"batch-{b:02d}",
                    group=("front", "side")[i % 2],
                    score=float(scores[i]),
                    verdict="fail" if fail[i] else "pass",
                    anomalous_fraction=float(max(scores[i] - 1.0, 0.0) / 4.0),
                )
            )
    return obs


def _flagged(result, chart: str) -> list[str]:
    violations = result.charts[chart].violations
    return [name for name, v in zip(result.table.names, violations, strict=True) if v]


# ---- nQI ------------------------------------------------------------------------------------


def test_nqi_hand_computed_3x2() -> None:
    # group 0: [1, 3, 5], min 1, population sd sqrt(8/3) -> [0, sqrt(1.5), sqrt(6)]
    # group 1: [2, 2, 8], min 2, population sd sqrt(8)   -> [0, 0, sqrt(4.5)]
    values = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 8.0]])
    expected = np.array([[0.0, 0.0], [math.sqrt(1.5), 0.0], [math.sqrt(6.0), math.sqrt(4.5)]])
    out = nqi(values)
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_nqi_ignores_and_keeps_nan() -> None:
    # group 1 has no image in batch 0: min and sd over [2, 4] -> sd 1 -> [nan, 0, 2]
    values = np.array([[1.0, np.nan], [3.0, 2.0], [5.0, 4.0]])
    out = nqi(values)
    assert np.isnan(out[0, 1]) and not np.isnan(out[:, 0]).any()
    np.testing.assert_allclose(out[1:, 1], [0.0, 2.0])
    np.testing.assert_allclose(out[:, 0], [0.0, math.sqrt(1.5), math.sqrt(6.0)])


def test_nqi_zero_sigma_is_zero() -> None:
    values = np.array([[2.0, np.nan], [2.0, 7.0], [2.0, np.nan]])  # constant; one batch only
    out = nqi(values)
    np.testing.assert_array_equal(out[:, 0], 0.0)
    assert out[1, 1] == 0.0 and np.isnan(out[[0, 2], 1]).all()


def test_batch_table_statistics() -> None:
    obs = [
        Obs("A", "top", 1.0, "pass"),
        Obs("A", "top", 3.0, "fail"),
        Obs("A", "side", 2.0, "pass"),
        Obs("B", "top", 1.0, "pass"),
        Obs("B", "side", 4.0, " FAIL "),
    ]
    t = batch_table(obs)
    assert t.names == ["A", "B"] and t.groups == ["top", "side"]
    np.testing.assert_array_equal(t.n, [3, 2])
    np.testing.assert_array_equal(t.n_fail, [1, 1])
    np.testing.assert_allclose(t.fail_rate, [1 / 3, 0.5])
    np.testing.assert_allclose(t.mean_score, [2.0, 2.5])
    np.testing.assert_allclose(t.max_score, [3.0, 4.0])
    # C = mean score per image of the (batch, group): A top (1+3)/2
    np.testing.assert_allclose(t.values, [[2.0, 2.0], [1.0, 4.0]])
    np.testing.assert_allclose(t.nqi, np.nanmean(nqi(t.values), axis=1))


# ---- limits and rules -----------------------------------------------------------------------


def test_control_limits_known_values() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0, np.nan])
    reference = np.array([True, True, True, True, False, True])  # NaN reference value ignored
    lim = control_limits(values, reference)
    sd = math.sqrt(5.0 / 3.0)  # sample sd (ddof=1) of 1..4
    assert lim.centre == pytest.approx(2.5)
    assert lim.sigma == pytest.approx(sd)
    assert lim.lcl == pytest.approx(2.5 - 3 * sd) and lim.ucl == pytest.approx(2.5 + 3 * sd)


def test_control_limits_need_two_reference_batches() -> None:
    with pytest.raises(DataError, match="at least 2 reference batches"):
        control_limits(np.array([1.0, 2.0, 3.0]), np.array([True, False, False]))


@pytest.mark.parametrize(
    ("values", "rule", "expected"),
    [
        ([0.0, 3.5, 0.0, -3.2, 3.0], R1, [1, 3]),  # exactly on the limit is not beyond
        ([0.0, 2.5, 0.5, 2.2, 0.0], R2, [1, 3]),  # 2 of 3 above +2 sigma
        ([-2.5, -2.1, 0.0, 0.0], R2, [0, 1]),  # below -2 sigma
        ([0.1] + [0.5] * 8 + [-0.5], R4, list(range(9))),  # the whole run of 9
        ([-0.2] * 8, R4, list(range(8))),
    ],
)
def test_rule_triggers(values: list[float], rule: str, expected: list[int]) -> None:
    flags = out_of_control(np.array(values), UNIT)
    assert [i for i, f in enumerate(flags) if rule in f] == expected


@pytest.mark.parametrize(
    "values",
    [
        [0.5, -0.5] * 10,  # in control: alternating within 1 sigma
        [2.5, -2.5, 0.0, -0.5, 2.5, -2.5],  # beyond 2 sigma but on opposite sides
        [2.5, 0.0, 0.0, 2.5],  # 1 of 3, twice
        [0.5] * 7 + [0.0] + [0.5] * 7,  # runs of 7, broken by a point on the centre
        [0.5] * 4 + [np.nan] + [0.5] * 4,  # a missing batch breaks the run
    ],
)
def test_rules_quiet_in_control(values: list[float]) -> None:
    assert out_of_control(np.array(values), UNIT) == [[] for _ in values]


def test_upper_side_ignores_decreases() -> None:
    values = np.array([-4.0, 4.0, -2.5, -2.5, 0.0])
    assert out_of_control(values, UNIT, side="upper") == [[], [R1], [], [], []]
    assert out_of_control(values, UNIT)[0] == [R1, R2]  # -4 and -2.5: 2 of 3 below -2 sigma


# ---- the whole analysis ---------------------------------------------------------------------


def test_analysis_flags_the_bad_batch() -> None:
    result = spc_analysis(_batches(seed=0))
    assert len(result.table) == 10
    assert result.reference == [f"batch-{b:02d}" for b in range(5)]  # first half by default
    assert _flagged(result, "mean_score") == [BAD]
    assert _flagged(result, "fail_rate") == [BAD]
    assert BAD in result.out_of_control_batches
    bad = result.table.names.index(BAD)
    assert result.table.n_fail[bad] == 6 and result.table.fail_rate[bad] == pytest.approx(0.3)
    assert result.table.nqi_matrix.shape == (10, 2)
    assert result.table.nqi[bad] == pytest.approx(np.nanmax(result.table.nqi))
    assert result.charts["nqi"].limits.lcl == 0.0  # upper-sided
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert json.loads(text)["out_of_control_batches"] == result.out_of_control_batches


def test_analysis_explicit_reference_and_fraction() -> None:
    ref = ["batch-00", "batch-01", "batch-02"]
    result = spc_analysis(_batches(seed=0), reference=ref, quantity="anomalous_fraction")
    assert result.reference == ref and result.quantity == "anomalous_fraction"
    assert result.reference_mask.sum() == 3


def test_error_no_observations() -> None:
    with pytest.raises(DataError, match="no observations") as err:
        spc_analysis([])
    assert "\n" not in str(err.value) and err.value.fix


def test_error_too_few_batches() -> None:
    with pytest.raises(DataError, match="need at least 3 batches for control limits"):
        spc_analysis(_batches(n_batches=2, bad=None))


def test_error_unknown_reference() -> None:
    with pytest.raises(DataError, match="nope") as err:
        spc_analysis(_batches(), reference=["batch-00", "nope"])
    assert "batch-09" in str(err.value)  # lists the known batches


def test_error_single_reference_batch() -> None:
    with pytest.raises(DataError, match="at least 2 reference batches"):
        spc_analysis(_batches(), reference=["batch-00"])


def test_error_missing_anomalous_fraction() -> None:
    obs = _batches(n_batches=3, bad=None)
    obs[5].anomalous_fraction = None
    spc_analysis(obs)  # fine for the score
    with pytest.raises(DataError, match="anomalous_fraction") as err:
        spc_analysis(obs, quantity="anomalous_fraction")
    assert "anomaly maps" in err.value.fix


# ---- report ---------------------------------------------------------------------------------


def test_write_spc_report(tmp_path: Path) -> None:
    result = spc_analysis(_batches(seed=0))
    path = write_spc_report(result, tmp_path / "out" / "spc.html", title="Line 3")
    html = path.read_text(encoding="utf-8")
    for name in result.table.names:
        assert name in html
    assert len(IMG_RE.findall(html)) == 3
    assert "{{" not in html and "{%" not in html and "}}" not in html
    assert "Line 3" in html and 'class="ooc"' in html
    assert sorted(p.name for p in path.parent.iterdir()) == ["spc.html"]  # no temp file left


def test_write_spc_report_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "spc.html"
    path.write_text("old report", encoding="utf-8")

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(spc_report.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_spc_report(spc_analysis(_batches(n_batches=3, bad=None)), path)
    assert path.read_text(encoding="utf-8") == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["spc.html"]


def test_control_chart_figure_many_batches_and_zero_sigma() -> None:
    names = [f"B{i:03d}" for i in range(60)]
    values = np.zeros(60)
    values[[40, 41]] = 0.1
    lim = Limits(centre=0.0, lcl=0.0, ucl=0.0, sigma=0.0)
    fig = control_chart_figure(
        names, values, lim, out_of_control(values, lim), "Fail rate", "fail rate", [True] * 30
    )
    labels = [t.get_text() for t in fig.axes[1].get_xticklabels()]
    assert 0 < len(labels) <= 40 and labels[0] == "B000"


def test_inspection_records_and_missing_batch() -> None:
    from flawscope.store import InspectionRecord

    def record(path: str, score: float, batch: str = "") -> InspectionRecord:
        return InspectionRecord(
            path=path,
            content_hash="h",
            model_id="m",
            score=score,
            threshold=1.5,
            verdict="pass",
            batch=batch,
        )

    records = [record(f"img{i}.png", 1.0 + 0.01 * i, f"L{i % 3}") for i in range(9)]
    assert spc_analysis(records).table.names == ["L0", "L1", "L2"]
    records.append(record("loose.png", 1.0))
    with pytest.raises(DataError, match="loose.png"):
        spc_analysis(records)
