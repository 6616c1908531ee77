"""Image-level anomaly scores aggregated from anomaly maps."""

from __future__ import annotations

from typing import Literal

import numpy as np

Aggregation = Literal["max", "mean", "topk"]


def aggregate(
    maps: np.ndarray, method: Aggregation = "topk", top_k_percent: float = 1.0
) -> np.ndarray:
    """Aggregate ``(N, H, W)`` anomaly maps into ``(N,)`` float32 image scores.

    Args:
        maps: float32 anomaly maps.
        method: ``"max"`` (largest pixel), ``"mean"`` (mean pixel) or ``"topk"`` (mean of the
            ``top_k_percent`` % largest pixels, at least one pixel: between max and mean, robust to
            single hot pixels yet sensitive to small defects).
        top_k_percent: share of pixels for ``"topk"``, in ``(0, 100]``.

    Raises:
        ValueError: unknown method or ``top_k_percent`` outside ``(0, 100]``.
    """
    flat = maps.reshape(len(maps), -1)
    if method == "max":
        return flat.max(axis=1).astype(np.float32)
    if method == "mean":
        return flat.mean(axis=1).astype(np.float32)
    if method == "topk":
        if not 0 < top_k_percent <= 100:
            raise ValueError(f"top_k_percent must be in (0, 100], got {top_k_percent}")
        k = max(1, int(round(flat.shape[1] * top_k_percent / 100.0)))
        top = np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:]
        return top.mean(axis=1).astype(np.float32)
    raise ValueError(f"unknown aggregation {method!r}; use max, mean or topk")
