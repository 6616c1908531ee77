"""Thresholds from good images only, and pass/fail verdicts.

Without defect labels, the threshold is set from the anomaly scores of good hold-out images that the
detector never trained on: by default their maximum (the thesis, seed 003, Sec. 3.9: every good
validation image passes), or a quantile of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

ThresholdMethod = Literal["max", "quantile", "sigma"]


@dataclass(frozen=True)
class HoldoutStats:
    """Summary of the hold-out good scores (same units as the image scores)."""

    count: int
    mean: float
    std: float
    min: float
    max: float
    q50: float
    q95: float
    q99: float

    @classmethod
    def of(cls, scores: np.ndarray) -> HoldoutStats:
        """Statistics of a non-empty ``(N,)`` score array."""
        s = np.asarray(scores, dtype=np.float64)
        q50, q95, q99 = np.quantile(s, [0.5, 0.95, 0.99])
        return cls(
            len(s),
            float(s.mean()),
            float(s.std()),
            float(s.min()),
            float(s.max()),
            float(q50),
            float(q95),
            float(q99),
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def threshold_from_good(
    scores: np.ndarray, method: ThresholdMethod = "max", quantile: float = 0.99, z: float = 3.0
) -> float:
    """Threshold from the anomaly scores of good hold-out images.

    Args:
        scores: ``(N,)`` scores of good images, N >= 1.
        method: ``"max"``: the largest score; ``"quantile"``: the ``quantile`` (in ``(0, 1]``,
            linear interpolation) of the scores; ``"sigma"``: mean + ``z`` x the population
            standard deviation (0 for one score).
        z: standard deviations above the mean for ``"sigma"``, >= 0.

    Returns:
        The threshold; an image fails when its score is strictly greater.

    Raises:
        ValueError: empty ``scores``, unknown method, quantile outside ``(0, 1]`` or z < 0.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        raise ValueError("cannot set a threshold from zero hold-out scores")
    if method == "max":
        return float(s.max())
    if method == "quantile":
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        return float(np.quantile(s, quantile))
    if method == "sigma":
        if not z >= 0:
            raise ValueError(f"z must be >= 0, got {z}")
        return float(s.mean() + z * s.std())
    raise ValueError(f"unknown threshold method {method!r}; use max, quantile or sigma")


def verdicts(scores: np.ndarray, threshold: float) -> list[str]:
    """``"fail"`` where score > threshold, else ``"pass"``, for an ``(N,)`` score array."""
    return ["fail" if float(s) > threshold else "pass" for s in np.asarray(scores)]
