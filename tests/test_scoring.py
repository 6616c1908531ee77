"""Anomaly maps, image-score aggregation and thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from flawscope.scoring import (
    HoldoutStats,
    aggregate,
    gaussian_smooth,
    squared_residual,
    threshold_from_good,
    verdicts,
)


def test_squared_residual_averages_channels() -> None:
    x = np.zeros((1, 3, 2, 2), np.float32)
    r = x.copy()
    r[0, 0, 0, 0] = 0.5
    m = squared_residual(x, r)
    assert m.shape == (1, 2, 2)
    assert m[0, 0, 0] == pytest.approx(0.25 / 3) and m[0, 1, 1] == 0


def test_gaussian_smooth_keeps_mass_and_spreads_peak() -> None:
    m = np.zeros((1, 31, 31), np.float32)
    m[0, 15, 15] = 1.0
    s = gaussian_smooth(m, 2.0)
    assert s.sum() == pytest.approx(1.0, abs=1e-3)
    assert s[0, 15, 15] < 0.1 and s[0, 15, 17] > 0
    assert gaussian_smooth(m, 0) is m


def test_aggregation_hand_worked() -> None:
    m = np.zeros((1, 10, 10), np.float32)
    m[0, 0, :3] = [9.0, 5.0, 1.0]
    assert aggregate(m, "max")[0] == 9.0
    assert aggregate(m, "mean")[0] == pytest.approx(0.15)
    assert aggregate(m, "topk", 2.0)[0] == pytest.approx(7.0)  # mean of the 2 largest of 100
    assert aggregate(m, "topk", 0.1)[0] == pytest.approx(9.0)  # at least one pixel
    with pytest.raises(ValueError):
        aggregate(m, "median")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        aggregate(m, "topk", 0)


def test_threshold_max_and_quantile() -> None:
    s = np.arange(1, 101, dtype=np.float32)
    assert threshold_from_good(s) == 100
    assert threshold_from_good(s, "quantile", 0.5) == pytest.approx(50.5)
    with pytest.raises(ValueError):
        threshold_from_good(np.array([]))
    with pytest.raises(ValueError):
        threshold_from_good(s, "quantile", 1.5)


def test_max_threshold_passes_every_holdout_image_and_verdict_is_strict() -> None:
    s = np.random.default_rng(0).random(50)
    t = threshold_from_good(s)
    assert verdicts(s, t) == ["pass"] * 50
    assert verdicts(np.array([t, t + 1e-6]), t) == ["pass", "fail"]


def test_holdout_stats() -> None:
    st = HoldoutStats.of(np.array([1.0, 2.0, 3.0]))
    assert (st.count, st.min, st.max, st.mean, st.q50) == (3, 1.0, 3.0, 2.0, 2.0)
