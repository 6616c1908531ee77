"""Anomaly maps, image-score aggregation and thresholds."""

from flawscope.scoring.aggregate import aggregate
from flawscope.scoring.maps import (
    gaussian_smooth,
    residual_map,
    resize_map,
    squared_residual,
    ssim_residual,
)
from flawscope.scoring.threshold import HoldoutStats, threshold_from_good, verdicts

__all__ = [
    "HoldoutStats",
    "aggregate",
    "gaussian_smooth",
    "resize_map",
    "residual_map",
    "squared_residual",
    "ssim_residual",
    "threshold_from_good",
    "verdicts",
]
