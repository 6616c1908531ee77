"""Score a labelled point-cloud set: object-level, point-level and (organised) AUPRO metrics.

Metrics (higher score = more anomalous; a cloud is defective when any point is):

* object level: :func:`flawscope.metrics.image_metrics` of the object scores (AUROC, AUPRC,
  precision / recall / F1 / F2 at the model threshold, F1-max), per defect type
  (:func:`flawscope.metrics.per_defect_metrics`), and the object AUROC under each aggregation
  (max, mean, top-k %) of the same per-point scores;
* point level: AUROC over every point of every cloud with known labels;
* AUPRO (Bergmann et al., IJCV 2021, Sec. 4.2; FPR limit 0.3) on the ``(H, W)`` anomaly maps
  of organised scans (:func:`flawscope.metrics.aupro`), pixels without a point scoring 0.
  The 3D-ST paper reports the same metric on MVTec 3D-AD.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from flawscope.errors import DataError, FlawscopeError
from flawscope.metrics import aupro, image_metrics, per_defect_metrics
from flawscope.pointcloud.dataset import LabelledPath, read_labelled
from flawscope.pointcloud.detector import CloudResult, PointCloudDetector
from flawscope.scoring.aggregate import aggregate

log = logging.getLogger("flawscope")

AGGREGATIONS = ("max", "mean", "topk")


@dataclass
class Scored:
    """One evaluated cloud: its result, label (0 good / 1 defective) and defect type."""

    result: CloudResult
    label: int
    defect_type: str
    path: str


@dataclass
class Evaluation:
    """Metrics and per-cloud results of :func:`evaluate`.

    Attributes:
        metrics: see :func:`evaluate`.
        items: the scored clouds, input order.
        skipped: ``(path, reason)`` of clouds that could not be scored.
    """

    metrics: dict[str, Any]
    items: list[Scored] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        """``(N,)`` int 0/1."""
        return np.asarray([s.label for s in self.items], dtype=np.int64)

    @property
    def scores(self) -> np.ndarray:
        """``(N,)`` float object scores."""
        return np.asarray([s.result.score for s in self.items], dtype=np.float64)


def score_items(det: PointCloudDetector, files: list[LabelledPath]) -> Evaluation:
    """Read and score every labelled cloud; unreadable ones are skipped with a warning."""
    ev = Evaluation({})
    for item in files:
        try:
            cloud = read_labelled(item)
            result = det.predict_cloud(cloud)
        except FlawscopeError as exc:
            log.warning("skipped %s: %s", item.path, exc)
            ev.skipped.append((str(item.path), str(exc)))
            continue
        label = 0 if item.defect_type == "good" else 1
        ev.items.append(Scored(result, label, item.defect_type, str(item.path)))
    if not ev.items:
        raise DataError("none of the test clouds could be scored", "check the warnings above")
    return ev


def evaluate(det: PointCloudDetector, files: list[LabelledPath]) -> Evaluation:
    """Score ``files`` and compute the metrics.

    Returns:
        An :class:`Evaluation` whose ``metrics`` holds ``object`` (image_metrics of the
        object scores at the model threshold), ``per_defect``, ``object_auroc_by_aggregation``
        (``max``/``mean``/``topk``), ``point_auroc`` (None when no cloud has point labels),
        ``aupro`` (None without organised labelled scans; NaN when they differ in size),
        ``n_clouds``, ``n_points``, ``n_skipped``, ``threshold``.

    Raises:
        DataError: no cloud could be scored.
    """
    ev = score_items(det, files)
    labels, scores = ev.labels, ev.scores
    th = det.threshold
    s = det.config.scoring
    by_agg = {}
    for method in AGGREGATIONS:
        agg = [
            float(aggregate(_scored_points(det, i.result)[None], method, s.top_k_percent)[0])
            for i in ev.items
        ]
        by_agg[method] = image_metrics(labels, np.asarray(agg), th)["auroc"]
    with_labels = [i for i in ev.items if i.result.cloud.labels is not None]
    point_auroc = None
    if with_labels:
        y = np.concatenate([i.result.cloud.labels for i in with_labels])
        p = np.concatenate([i.result.point_scores for i in with_labels])
        point_auroc = float(roc_auc_score(y, p)) if 0 < y.sum() < y.size else float("nan")
    ev.metrics = {
        "object": image_metrics(labels, scores, th),
        "per_defect": per_defect_metrics(labels, scores, [i.defect_type for i in ev.items], th)
        if labels.min() != labels.max()
        else {},
        "object_auroc_by_aggregation": by_agg,
        "aggregation": s.aggregation,
        "point_auroc": point_auroc,
        "aupro": _organised_aupro(with_labels),
        "threshold": th,
        "n_clouds": len(ev.items),
        "n_points": int(sum(len(i.result.cloud) for i in ev.items)),
        "n_skipped": len(ev.skipped),
    }
    return ev


def _scored_points(det: PointCloudDetector, result: CloudResult) -> np.ndarray:
    """The per-point scores of the scored subset (what the object score aggregates)."""
    return result.point_scores[det.scored_subset(len(result.cloud))]


def _organised_aupro(items: list[Scored]) -> float | None:
    organised = [i for i in items if i.result.cloud.organized]
    if not organised:
        return None
    shapes = {i.result.cloud.grid_shape for i in organised}
    if len(shapes) > 1:
        log.warning("AUPRO skipped: organised scans of %d different sizes", len(shapes))
        return float("nan")
    maps, masks = [], []
    for i in organised:
        cloud = i.result.cloud
        maps.append(cloud.to_map(i.result.point_scores))
        full = cloud.meta.get("mask")  # MVTec 3D-AD: the gt PNG, background pixels included
        masks.append(full if full is not None else cloud.to_map(cloud.labels) > 0)
    return aupro(np.stack(masks), np.stack(maps))
