"""Evaluate an Inspector on a labelled MVTec-style test set: metrics JSON, results CSV, report.

Image-level metrics use every readable test image; pixel-level AUROC and AUPRO (Bergmann et al.,
IJCV 2021) are computed at the model input resolution S x S (the anomaly map of the image content,
resized to S x S, against the mask resized to S x S) on good images and on defective images that
have a ground-truth mask, pooled over all of them and, in ``per_defect``, for the good images
against each defect type alone.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flawscope import __version__, metrics
from flawscope.data.dataset import GOOD, Sample, labelled_samples, load_mask
from flawscope.errors import DataError
from flawscope.inspector import Inspector
from flawscope.preprocess.enhance import crop_box
from flawscope.report import Panel, ReportData, write_report
from flawscope.results import ResultsCSV
from flawscope.scoring import resize_map

log = logging.getLogger("flawscope")


@dataclass
class Evaluation:
    """Outcome of :func:`evaluate`: the metrics dict (as in metrics.json) and written files."""

    metrics: dict[str, Any]
    metrics_path: Path
    results_path: Path
    report_path: Path
    skipped: list[str] = field(default_factory=list)


def _to_hwc(chw: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` -> ``(H, W)`` grey or ``(H, W, 3)`` RGB for display."""
    return chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)


def _panels(
    insp: Inspector, samples: list[Sample], scores: np.ndarray, idx: np.ndarray
) -> list[Panel]:
    """Report panels (input, reconstruction, anomaly map, mask) of the image content at model
    resolution (letterbox padding cropped away)."""
    chosen = [samples[i] for i in idx]
    if not chosen:
        return []
    loaded = insp.read(chosen)
    pred = insp.predict(loaded)
    verdicts = insp.verdicts(pred.image_scores, insp.groups_of(loaded)[0])
    panels = []
    for j, s in enumerate(loaded.samples):
        box = loaded.boxes[j]
        recon = pred.reconstructions[j] if pred.reconstructions is not None else None
        panels.append(
            Panel(
                name=f"{s.path.parent.name}/{s.path.name}",
                label=s.defect_type,
                score=float(pred.image_scores[j]),
                verdict=verdicts[j],
                image=_to_hwc(crop_box(loaded.images[j].numpy(), box)),
                anomaly_map=np.ascontiguousarray(crop_box(pred.anomaly_maps[j], box)),
                reconstruction=None if recon is None else _to_hwc(crop_box(recon, box)),
                mask=load_mask(s, box[2:]) if s.mask_path else None,
            )
        )
    return panels


def evaluate(
    insp: Inspector, dataset: Path | str, out_dir: Path | str, n_panels: int = 4
) -> Evaluation:
    """Score every test image of ``dataset`` and write ``metrics.json``, ``results.csv`` and
    ``report.html`` into ``out_dir``.

    Raises:
        DataError: the dataset has no ``test/`` folder or no images.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples = labelled_samples(dataset)
    with_masks = any(s.mask_path for s in samples)
    size = insp.config.model.image_size
    kept: list[Sample] = []
    scores: list[float] = []
    thresholds: list[float] = []
    maps: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    map_types: list[str] = []
    skipped: list[str] = []
    with ResultsCSV(out / "results.csv") as csv_out:
        for batch in insp.predict_batches(samples):
            skipped += [reason for _, reason in batch.loaded.skipped]
            for j, s in enumerate(batch.loaded.samples):
                score = float(batch.prediction.image_scores[j])
                kept.append(s)
                scores.append(score)
                thresholds.append(float(batch.thresholds[j]))
                csv_out.write(
                    path=s.path,
                    score=f"{score:.6g}",
                    threshold=f"{batch.thresholds[j]:.6g}",
                    verdict=batch.verdicts[j],
                    group=batch.groups[j],
                    label="good" if s.label == 0 else "defective",
                    defect_type=s.defect_type,
                    model_id=insp.model_id,
                )
                if with_masks and (s.label == 0 or s.mask_path is not None):
                    amap = crop_box(batch.prediction.anomaly_maps[j], batch.loaded.boxes[j])
                    amap = resize_map(amap, size, size)
                    maps.append(amap.astype(np.float16))
                    masks.append(load_mask(s, (size, size)))
                    map_types.append(s.defect_type)
    if not kept:
        raise DataError(f"no test image of {dataset} could be read", "see the warnings above")
    labels = np.array([s.label for s in kept])
    types = [s.defect_type for s in kept]
    sc = np.asarray(scores, dtype=np.float64)
    th = np.asarray(thresholds)
    image = metrics.image_metrics(labels, sc, th)
    pixel = None
    per_defect = metrics.per_defect_metrics(labels, sc, types, th)
    if maps:
        m, g = np.stack(maps).astype(np.float32), np.stack(masks)
        pixel = {"auroc": metrics.pixel_auroc(g, m), "aupro": metrics.aupro(g, m)}
        for name, values in metrics.per_defect_pixel_metrics(g, m, map_types).items():
            per_defect.setdefault(name, {}).update(values)
    result: dict[str, Any] = {
        "dataset": str(dataset),
        "model": insp.config.model.name,
        "model_id": insp.model_id,
        "flawscope_version": __version__,
        "image_size": size,
        "threshold": insp.threshold,
        "threshold_method": insp.threshold_method,
        "n_images": len(kept),
        "n_skipped": len(skipped),
        "image": image,
        "thresholds": insp.thresholds.to_dict(),
        "per_defect": per_defect,
        "pixel": pixel,
    }
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(_jsonable(result), indent=2))
    order = np.argsort(-sc, kind="stable")
    report = ReportData(
        title=f"flawscope evaluation: {Path(dataset).name}",
        model_name=f"{insp.config.model.name} ({insp.model_id or 'unsaved'})",
        dataset=str(dataset),
        threshold=insp.threshold,
        threshold_method=insp.threshold_method,
        metrics={
            **image,
            "pixel_auroc": pixel and pixel["auroc"],
            "aupro": pixel and pixel["aupro"],
        },
        per_defect=result["per_defect"],
        labels=labels,
        scores=sc,
        most_anomalous=_panels(insp, kept, sc, order[:n_panels]),
        least_anomalous=_panels(insp, kept, sc, order[::-1][:n_panels]),
        holdout_scores=insp.holdout_scores if len(insp.holdout_scores) else None,
        loss_history=insp.history or None,
        version=__version__,
    )
    report_path = write_report(report, out / "report.html")
    return Evaluation(result, metrics_path, out / "results.csv", report_path, skipped)


def _jsonable(obj: Any) -> Any:
    """Replace NaN by None and NumPy scalars by Python numbers, recursively, for strict JSON."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and np.isnan(obj):
        return None
    return obj


__all__ = ["GOOD", "Evaluation", "evaluate"]
