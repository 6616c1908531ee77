"""Thresholds from good images only, per group with a global fallback, sensitivity, tuning."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from flawscope.scoring.group_thresholds import GroupThresholds
from flawscope.scoring.threshold import threshold_from_good


def test_sigma_rule_is_mean_plus_z_sd() -> None:
    s = np.array([1.0, 2.0, 3.0, 4.0])
    assert threshold_from_good(s, "sigma", z=2.0) == pytest.approx(2.5 + 2 * np.std(s))
    assert threshold_from_good(s, "sigma", z=0.0) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="z must be"):
        threshold_from_good(s, "sigma", z=-1)


def _two_groups(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Good hold-out scores of a dark view (around 1) and a bright view (around 5)."""
    scores = np.concatenate([rng.normal(1, 0.1, 30), rng.normal(5, 0.5, 30)])
    return scores, ["dark"] * 30 + ["bright"] * 30


def test_per_group_thresholds_follow_each_group() -> None:
    scores, groups = _two_groups(np.random.default_rng(0))
    t = GroupThresholds.from_good(scores, groups)
    assert t.threshold_of("dark") == pytest.approx(scores[:30].max())
    assert t.threshold_of("bright") == pytest.approx(scores[30:].max())
    assert t.global_threshold == pytest.approx(scores.max())
    assert t.threshold_of("never seen") == t.global_threshold
    assert t.counts == {"dark": 30, "bright": 30} and t.fallback == []
    # a defect of the dark view at 2.0 passes the global threshold but fails its group's
    assert t.verdicts(np.array([2.0, 2.0]), ["dark", ""]) == ["fail", "pass"]
    np.testing.assert_array_equal(
        t.for_groups(["bright", "dark"]), [t.thresholds["bright"], t.thresholds["dark"]]
    )


def test_small_groups_fall_back_to_the_global_threshold_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scores = np.array([1.0, 1.1, 0.9, 1.2, 9.0])
    with caplog.at_level(logging.WARNING, logger="flawscope"):
        t = GroupThresholds.from_good(scores, ["a"] * 4 + ["b"], min_images=3)
    assert t.fallback == ["b"] and "b" not in t.thresholds
    assert t.threshold_of("b") == t.global_threshold == 9.0
    assert t.threshold_of("a") == 1.2
    assert "fewer than 3" in caplog.text and "global threshold" in caplog.text


def test_sensitivity_moves_the_threshold_towards_the_median() -> None:
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    base = GroupThresholds.from_good(scores).global_threshold
    strict = GroupThresholds.from_good(scores, sensitivity=2.0).global_threshold
    loose = GroupThresholds.from_good(scores, sensitivity=0.5).global_threshold
    assert base == 5.0 and strict == pytest.approx(4.0) and loose == pytest.approx(7.0)
    with pytest.raises(ValueError, match="sensitivity"):
        GroupThresholds.from_good(scores, sensitivity=0)


def test_normalised_scores_put_the_threshold_at_one() -> None:
    scores, groups = _two_groups(np.random.default_rng(1))
    t = GroupThresholds.from_good(scores, groups)
    probe = np.array([t.thresholds["dark"], t.medians["bright"], t.thresholds["bright"] * 2])
    n = t.normalise(probe, ["dark", "bright", "bright"])
    assert n[0] == pytest.approx(1.0) and n[1] == pytest.approx(0.0) and n[2] > 1
    # normalising never changes a verdict
    test = np.random.default_rng(2).uniform(0, 10, 50)
    keys = ["dark", "bright"] * 25
    assert [("fail" if v > 1 else "pass") for v in t.normalise(test, keys)] == t.verdicts(
        test, keys
    )
    # one hold-out image: threshold == median, the shift keeps 1.0 at the threshold
    single = GroupThresholds.from_good(np.array([3.0]))
    assert single.normalise(np.array([3.0, 4.0]), ["", ""]).tolist() == [1.0, 2.0]


def test_tuning_on_labelled_images_per_group() -> None:
    rng = np.random.default_rng(3)
    scores, groups = _two_groups(rng)
    t = GroupThresholds.from_good(scores, groups)
    # validation: per group 20 good + 10 defective, defects just above the good range
    val_scores = np.concatenate(
        [
            rng.normal(1, 0.1, 20),
            rng.normal(1.8, 0.1, 10),
            rng.normal(5, 0.5, 20),
            rng.normal(8.5, 0.3, 10),
        ]
    )
    val_groups = ["dark"] * 30 + ["bright"] * 30
    labels = np.array(([0] * 20 + [1] * 10) * 2)
    tuned, how = t.tune(labels, val_scores, val_groups, beta=1.0)
    verdicts = np.array(tuned.verdicts(val_scores, val_groups)) == "fail"
    assert (verdicts == labels.astype(bool)).all()  # perfectly separable per group
    assert set(how) == {"(global)", "dark", "bright"} and "F1" in how["dark"]


def test_a_validation_set_without_defects_never_flags_everything() -> None:
    rng = np.random.default_rng(4)
    scores, groups = _two_groups(rng)
    t = GroupThresholds.from_good(scores, groups)
    val = np.concatenate([rng.normal(1, 0.2, 40), rng.normal(5, 1.0, 40)])  # wider than hold-out
    keys = ["dark"] * 40 + ["bright"] * 40
    tuned, how = t.tune(np.zeros(80, dtype=int), val, keys)
    assert tuned.verdicts(val, keys).count("fail") == 0
    assert tuned.thresholds["dark"] >= t.thresholds["dark"]
    assert "no defective" in how["dark"] and "no defective" in how["(global)"]


def test_dict_round_trip_and_input_checks() -> None:
    scores, groups = _two_groups(np.random.default_rng(5))
    t = GroupThresholds.from_good(scores, groups, method="quantile", quantile=0.9)
    assert GroupThresholds.from_dict(t.to_dict()) == t
    with pytest.raises(ValueError, match="zero hold-out"):
        GroupThresholds.from_good(np.zeros(0))
    with pytest.raises(ValueError, match="group keys"):
        GroupThresholds.from_good(np.ones(3), ["a"])


def test_tuning_warns_when_the_best_f_beta_fails_every_good_image(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = GroupThresholds.from_good(np.array([1.0, 1.1, 1.2]))
    # an inverted detector: defects score lower than good images, and defects dominate
    scores = np.array([2.0, 2.1, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    with caplog.at_level(logging.WARNING, logger="flawscope"):
        tuned, _ = t.tune(labels, scores, [""] * 8)
    assert tuned.verdicts(scores, [""] * 8).count("pass") == 0
    assert "fails every good validation image" in caplog.text
