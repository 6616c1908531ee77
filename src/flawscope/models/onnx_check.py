"""Compare the PyTorch and onnxruntime paths of a model directory on the same images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from flawscope.models.base import Prediction


def input_shape(insp: Any) -> tuple[int, int, int]:
    """``(C, H, W)`` of the images an Inspector's detector takes (the tile target when tiled)."""
    m, p = insp.config.model, insp.config.preprocess
    h, w = (m.image_size, m.image_size) if p.tile is None else p.tile_target
    return int(m.channels), int(h), int(w)


def differences(reference: Prediction, other: Prediction) -> dict[str, float]:
    """Largest absolute differences of scores and maps, and the largest reference score.

    Returns:
        ``max_score_diff``, ``max_map_diff`` (absolute, in score units), ``max_rel_score_diff``
        (relative to ``max(|score|, 1e-12)``), ``max_score`` (largest reference ``|score|``).
    """
    a, b = reference.image_scores.astype(np.float64), other.image_scores.astype(np.float64)
    diff = np.abs(a - b)
    maps = np.abs(reference.anomaly_maps.astype(np.float64) - other.anomaly_maps)
    return {
        "max_score_diff": float(diff.max(initial=0.0)),
        "max_map_diff": float(maps.max(initial=0.0)),
        "max_rel_score_diff": float((diff / np.maximum(np.abs(a), 1e-12)).max(initial=0.0)),
        "max_score": float(np.abs(a).max(initial=0.0)),
    }


def compare_runtimes(
    model_dir: Path | str,
    onnx_path: Path | str | None = None,
    images: torch.Tensor | None = None,
    n: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """Score the same images with the model directory's PyTorch detector and its ONNX export.

    Args:
        model_dir: the model directory; onnx_path: its export (None = ``model_dir/model.onnx``).
        images: ``(N, C, H, W)`` float32 in [0, 1] at the detector's input size; None = ``n``
            uniform random images drawn with ``seed``.

    Returns:
        ``images`` (N) and the :func:`differences` of the two predictions.

    Raises:
        ModelDirError: as :func:`flawscope.models.onnx_runtime.load_onnx_inspector`.
    """
    from flawscope.inspector import Inspector
    from flawscope.models.onnx_runtime import load_onnx_inspector

    exported = load_onnx_inspector(model_dir, onnx_path)
    reference = Inspector.load_dir(model_dir)
    if images is None:
        gen = torch.Generator().manual_seed(seed)
        images = torch.rand(n, *input_shape(reference), generator=gen)
    ours = reference.detector.predict(images)
    theirs = exported.detector.predict(images)
    return {"images": len(images), **differences(ours, theirs)}
