"""Anomaly maps, image-score aggregation and thresholds."""

from flawscope.scoring.aggregate import aggregate
from flawscope.scoring.maps import gaussian_smooth, resize_map, squared_residual
from flawscope.scoring.threshold import HoldoutStats, threshold_from_good, verdicts

__all__ = [
    "HoldoutStats",
    "aggregate",
    "gaussian_smooth",
    "resize_map",
    "squared_residual",
    "threshold_from_good",
    "verdicts",
]
