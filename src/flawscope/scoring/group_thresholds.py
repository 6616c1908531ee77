"""Thresholds per group (camera view, family of layers) with a global fallback.

The thesis (seed 003, Sec. 5.3) found that one global threshold fails on images from 24 view
angles while a threshold per view works; seed 000 groups 3D-printed layers that look alike. Each
group's threshold comes from the anomaly scores of its good hold-out images (never trained on)
with the rule of :func:`flawscope.scoring.threshold.threshold_from_good`; a group with fewer
than ``min_images`` hold-out images uses the global threshold of all hold-out images. With a
labelled validation set, :meth:`GroupThresholds.tune` picks the F-beta-optimal threshold per
group instead (seed 002).

Group ``""`` means "no group": such images are judged by the global threshold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from flawscope.scoring.threshold import ThresholdMethod, threshold_from_good

log = logging.getLogger("flawscope")

NO_GROUP = ""


def _sensitive(rule: float, median: float, sensitivity: float) -> float:
    """``median + (rule - median) / sensitivity``: > 1 moves the threshold towards the median."""
    return float(median + (rule - median) / sensitivity)


@dataclass(frozen=True)
class GroupThresholds:
    """Image-score thresholds: one global, and one per group that had enough hold-out images.

    Attributes:
        global_threshold: threshold of images without a group or in a fallback group.
        global_median: median good hold-out score (the 0 of normalised scores).
        thresholds: ``{group: threshold}`` of groups with their own threshold.
        medians: ``{group: median good hold-out score}`` of those groups.
        counts: ``{group: number of good hold-out images}`` of every group seen at calibration.
        fallback: groups seen with fewer than ``min_images`` hold-out images (global threshold).

    An image fails when its score is strictly greater than its group's threshold.
    """

    global_threshold: float
    global_median: float
    thresholds: dict[str, float] = field(default_factory=dict)
    medians: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    fallback: list[str] = field(default_factory=list)

    @classmethod
    def from_good(
        cls,
        scores: np.ndarray,
        groups: Sequence[str] | None = None,
        method: ThresholdMethod = "max",
        quantile: float = 0.99,
        z: float = 3.0,
        sensitivity: float = 1.0,
        min_images: int = 10,
    ) -> GroupThresholds:
        """Thresholds from the scores of good hold-out images.

        Args:
            scores: ``(N,)`` anomaly scores of good hold-out images, N >= 1.
            groups: N group keys (``""`` = none), or None for a global threshold only.
            method, quantile, z: the rule (:func:`threshold_from_good`).
            sensitivity: > 0; 1 keeps the rule, 2 halves the margin above the median good score
                (more images fail), 0.5 doubles it.
            min_images: fewer hold-out images than this in a group -> the group uses the global
                threshold and a warning is logged.

        Raises:
            ValueError: empty scores, groups of another length, sensitivity <= 0, or an invalid
                rule parameter.
        """
        s = np.asarray(scores, dtype=np.float64)
        if s.size == 0:
            raise ValueError("cannot set a threshold from zero hold-out scores")
        if not sensitivity > 0:
            raise ValueError(f"sensitivity must be > 0, got {sensitivity}")
        keys = list(groups) if groups is not None else [NO_GROUP] * len(s)
        if len(keys) != len(s):
            raise ValueError(f"{len(keys)} group keys for {len(s)} scores")

        def rule(values: np.ndarray) -> tuple[float, float]:
            median = float(np.median(values))
            return _sensitive(
                threshold_from_good(values, method, quantile, z), median, sensitivity
            ), median

        global_t, global_m = rule(s)
        key_arr = np.asarray(keys, dtype=object)
        thresholds, medians, counts, fallback = {}, {}, {}, []
        for g in dict.fromkeys(k for k in keys if k != NO_GROUP):
            values = s[key_arr == g]
            counts[g] = len(values)
            if len(values) < min_images:
                fallback.append(g)
                continue
            thresholds[g], medians[g] = rule(values)
        if fallback:
            log.warning(
                "%d group(s) have fewer than %d good hold-out images and use the global "
                "threshold: %s (add good images of them, or lower groups.min_images)",
                len(fallback),
                min_images,
                ", ".join(fallback[:8]) + (" ..." if len(fallback) > 8 else ""),
            )
        return cls(global_t, global_m, thresholds, medians, counts, fallback)

    # ----------------------------------------------------------------- lookup
    def threshold_of(self, group: str) -> float:
        """The threshold that judges an image of ``group`` (global when it has none)."""
        return self.thresholds.get(group, self.global_threshold)

    def median_of(self, group: str) -> float:
        """The median good hold-out score of ``group`` (global when it has no own threshold)."""
        return self.medians.get(group, self.global_median)

    def for_groups(self, groups: Sequence[str]) -> np.ndarray:
        """``(N,)`` float64 threshold of every image's group."""
        return np.array([self.threshold_of(g) for g in groups], dtype=np.float64)

    def verdicts(self, scores: np.ndarray, groups: Sequence[str]) -> list[str]:
        """``"fail"`` where the score exceeds its group's threshold, else ``"pass"``."""
        t = self.for_groups(groups)
        return ["fail" if float(s) > float(th) else "pass" for s, th in zip(scores, t, strict=True)]

    def normalise(self, scores: np.ndarray, groups: Sequence[str]) -> np.ndarray:
        """Scores rescaled per group: 0 = median good score, 1.0 = the group's threshold.

        ``(score - median) / (threshold - median)``; where threshold == median (e.g. one
        hold-out image) the shift ``score - threshold + 1`` is used. Returns ``(N,)`` float64;
        the verdict is unchanged: normalised > 1 exactly when score > threshold.
        """
        out = np.empty(len(groups), dtype=np.float64)
        for i, (s, g) in enumerate(zip(np.asarray(scores, dtype=np.float64), groups, strict=True)):
            t, m = self.threshold_of(g), self.median_of(g)
            out[i] = (s - m) / (t - m) if t > m else s - t + 1.0
        return out

    # ----------------------------------------------------------------- tuning
    def tune(
        self, labels: np.ndarray, scores: np.ndarray, groups: Sequence[str], beta: float = 1.0
    ) -> tuple[GroupThresholds, dict[str, Any]]:
        """F-beta-optimal thresholds on labelled validation images, per group and global.

        For the global threshold and for every group with its own threshold: with good and
        defective validation images, the threshold of the best F-beta
        (:func:`flawscope.metrics.best_f_beta`); with good images only, the larger of the
        current threshold and the highest good validation score, so a validation set without
        defects never makes a threshold that flags a good image; with defective images only,
        the current threshold is kept.

        Args:
            labels: ``(N,)`` 0 good / 1 defective.
            scores: ``(N,)`` anomaly scores.
            groups: N group keys.
            beta: > 0 (1 = F1, 2 = F2).

        Returns:
            ``(tuned thresholds, {group or "(global)": how it was set})``.

        Raises:
            ConfigError: ``beta <= 0``.
            ValueError: lengths differ.
        """
        from flawscope.metrics import best_f_beta

        y = np.asarray(labels, dtype=np.int64)
        s = np.asarray(scores, dtype=np.float64)
        keys = np.asarray(list(groups), dtype=object)
        if not len(y) == len(s) == len(keys):
            raise ValueError(f"{len(y)} labels, {len(s)} scores, {len(keys)} groups")

        def pick(sel: np.ndarray, current: float) -> tuple[float, str]:
            yy, ss = y[sel], s[sel]
            if len(yy) and yy.min() == 0 and yy.max() == 1:
                f, t = best_f_beta(yy, ss, beta)
                if (ss[yy == 0] > t).all():
                    log.warning(
                        "the best F%g threshold fails every good validation image (%d): the "
                        "scores do not separate good from defective here; check the detector "
                        "with `flawscope evaluate`",
                        beta,
                        int((yy == 0).sum()),
                    )
                return (
                    t,
                    f"max F{beta:g} = {f:.3f} on {int((yy == 0).sum())} good + "
                    f"{int(yy.sum())} defective",
                )
            if len(yy) and yy.max() == 0:
                return max(
                    current, float(ss.max())
                ), f"no defective images: kept above all {len(yy)} good"
            return current, "no good images: kept"

        every = np.ones(len(y), dtype=bool)
        new_global, how_global = pick(every, self.global_threshold)
        report = {"(global)": how_global}
        tuned = {}
        for g, t in self.thresholds.items():
            sel = keys == g
            tuned[g], report[g] = pick(sel, t) if sel.any() else (t, "no validation images: kept")
        return replace(self, global_threshold=new_global, thresholds=tuned), report

    # ----------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (kept in ``inspector.json``)."""
        return {
            "global_threshold": self.global_threshold,
            "global_median": self.global_median,
            "thresholds": dict(self.thresholds),
            "medians": dict(self.medians),
            "counts": dict(self.counts),
            "fallback": list(self.fallback),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroupThresholds:
        """Inverse of :meth:`to_dict`."""
        return cls(
            float(data["global_threshold"]),
            float(data.get("global_median", data["global_threshold"])),
            {k: float(v) for k, v in data.get("thresholds", {}).items()},
            {k: float(v) for k, v in data.get("medians", {}).items()},
            {k: int(v) for k, v in data.get("counts", {}).items()},
            list(data.get("fallback", [])),
        )
