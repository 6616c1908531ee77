"""Anomaly maps, image-score aggregation and thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from flawscope.scoring import (
    HoldoutStats,
    aggregate,
    gaussian_smooth,
    residual_map,
    squared_residual,
    ssim_residual,
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


def test_ssim_residual_finds_structure_and_tolerates_a_brightness_offset() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0.2, 0.8, (1, 1, 48, 48)).astype(np.float32)
    assert np.abs(ssim_residual(img, img)).max() < 1e-5  # identical -> 0 everywhere
    broken = img.copy()
    broken[0, 0, 20:28, 20:28] = 0.5  # local texture erased
    m = ssim_residual(img, broken)
    assert m.shape == (1, 48, 48) and m.dtype == np.float32
    assert m[0, 24, 24] > 0.5 and m[0, 4, 4] < 0.01  # high inside, ~0 far away
    brighter = np.clip(img + 0.05, 0, 1)  # global offset: every pixel off in l2
    ssim_offset = ssim_residual(img, brighter).mean() / ssim_residual(img, broken).max()
    l2_offset = squared_residual(img, brighter).mean() / squared_residual(img, broken).max()
    assert ssim_offset < l2_offset
    rgb = np.repeat(img, 3, axis=1)
    np.testing.assert_allclose(ssim_residual(rgb, np.repeat(broken, 3, axis=1)), m, atol=1e-5)


def test_residual_map_dispatches_and_rejects_unknown() -> None:
    x = np.zeros((1, 1, 16, 16), np.float32)
    assert residual_map(x, x, "l2").shape == residual_map(x, x, "ssim").shape == (1, 16, 16)
    with pytest.raises(ValueError, match="unknown residual map"):
        residual_map(x, x, "l1")
