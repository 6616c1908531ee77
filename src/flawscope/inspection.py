"""One inspection run: score images, write anomaly-map overlays, results.csv and the results store.

Used by ``flawscope inspect`` (and meant for the service and the folder watcher). Every result is
written as soon as it exists (CSV row flushed, store row committed), so a crash mid-run loses
nothing already written. With a results store, an image whose content the same model has
already inspected is served from the store instead of being scored again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2

from flawscope import __version__
from flawscope.data.dataset import Sample
from flawscope.inspector import BatchResult, Inspector
from flawscope.preprocess.enhance import crop_box
from flawscope.report import overlay
from flawscope.results import ResultsCSV
from flawscope.scoring import resize_map
from flawscope.store import InspectionRecord, ResultStore, file_hash


@dataclass
class Outcome:
    """The result of one image, as recorded.

    Attributes:
        sample: the image (with its group and batch).
        score: anomaly score; normalised (1.0 = threshold) when ``threshold.normalize`` is set.
        threshold: the threshold that judged it (1.0 when normalised).
        verdict: ``"pass"`` or ``"fail"``.
        group: the group key (``""`` = none).
        far: True when the image is far from every discovered group.
        anomaly_map: path of the overlay PNG, or None.
        anomalous_fraction: share in [0, 1] of anomaly-map pixels above the threshold, or None
            when served from a store record without it.
        stored: True when served from the results store (not scored again).
    """

    sample: Sample
    score: float
    threshold: float
    verdict: str
    group: str = ""
    far: bool = False
    anomaly_map: Path | None = None
    anomalous_fraction: float | None = None
    stored: bool = False


@dataclass
class RunSummary:
    """Counts of an inspection run."""

    n_pass: int = 0
    n_fail: int = 0
    n_stored: int = 0
    n_far: int = 0
    skipped: list[str] = field(default_factory=list)


def _overlay_path(out: Path, sample: Sample, used: set[Path]) -> Path:
    """``out/anomaly_maps/<parent>/<stem>.png``, with a numeric suffix if this run used it."""
    path = out / "anomaly_maps" / sample.path.parent.name / f"{sample.path.stem}.png"
    candidate, i = path, 1
    while candidate in used:
        candidate = path.with_name(f"{path.stem}_{i}{path.suffix}")
        i += 1
    used.add(candidate)
    return candidate


def _outcomes(
    insp: Inspector, batch: BatchResult, out: Path, maps: bool, used: set[Path]
) -> list[Outcome]:
    """Outcome of every image of a predicted batch (overlay PNGs written when ``maps``)."""
    scores = batch.prediction.image_scores
    normalise = insp.config.threshold.normalize
    shown = batch.normalised_scores(insp.thresholds) if normalise else scores
    results = []
    for j, s in enumerate(batch.loaded.samples):
        thr = float(batch.thresholds[j])
        amap = crop_box(batch.prediction.anomaly_maps[j], batch.loaded.boxes[j])
        map_path = None
        if maps:
            map_path = _overlay_path(out, s, used)
            orig = batch.loaded.originals[j]
            rgb = overlay(orig, resize_map(amap, *orig.shape[:2]), vmax=2 * thr)
            map_path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(map_path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        results.append(
            Outcome(
                s,
                float(shown[j]),
                1.0 if normalise else thr,
                batch.verdicts[j],
                batch.groups[j],
                bool(batch.far[j]),
                map_path,
                float((amap > thr).mean()) if amap.size else 0.0,
            )
        )
    return results


def inspect_samples(
    insp: Inspector,
    samples: Sequence[Sample],
    out: Path,
    maps: bool = True,
    store: ResultStore | None = None,
    on_result: Callable[[Outcome], None] | None = None,
) -> RunSummary:
    """Score ``samples``; append to ``out/results.csv``; record in ``store``; report each result.

    Args:
        insp: a fitted inspector.
        samples: images to inspect (their ``group``/``batch`` from a manifest or the CLI).
        out: folder for ``results.csv`` and ``anomaly_maps/``.
        maps: write anomaly-map overlay PNGs.
        store: a :class:`flawscope.store.ResultStore`, or None.
        on_result: called with every :class:`Outcome` as soon as it is recorded.

    Returns:
        The counts; unreadable images are listed in ``skipped`` (the others are all written).
    """
    summary = RunSummary()
    used: set[Path] = set()
    todo: list[Sample] = []
    hashes: dict[Path, str] = {}
    with ResultsCSV(out / "results.csv", append=True) as csv_out:

        def record(o: Outcome) -> None:
            s = o.sample
            # the store first: it is the memory of what was inspected (a crash between the two
            # writes re-inspects the image on restart instead of leaving it unrecorded)
            if store is not None and not o.stored:
                store.add(
                    InspectionRecord(
                        path=str(s.path),
                        content_hash=hashes[s.path],
                        model_id=insp.model_id,
                        score=o.score,
                        threshold=o.threshold,
                        verdict=o.verdict,
                        model_version=__version__,
                        batch=s.batch,
                        group=o.group,
                        anomaly_map=str(o.anomaly_map or ""),
                        anomalous_fraction=o.anomalous_fraction,
                    )
                )
            csv_out.write(
                path=s.path,
                score=f"{o.score:.6g}",
                threshold=f"{o.threshold:.6g}",
                verdict=o.verdict,
                group=o.group,
                batch=s.batch,
                model_id=insp.model_id,
                anomaly_map=o.anomaly_map,
            )
            summary.n_fail += o.verdict == "fail"
            summary.n_pass += o.verdict == "pass"
            summary.n_stored += o.stored
            summary.n_far += o.far
            if on_result is not None:
                on_result(o)

        for s in samples:
            if store is None:
                todo.append(s)
                continue
            try:
                hashes[s.path] = file_hash(s.path)
            except OSError as exc:
                summary.skipped.append(f"{s.path}: cannot be read ({exc})")
                continue
            rec = store.find(hashes[s.path], insp.model_id, s.batch)
            if rec is None:
                seen = store.find_any(hashes[s.path], insp.model_id)
                if seen is not None:  # same content in another batch: reuse, record here too
                    again = replace(seen, id=None, time=None, path=str(s.path), batch=s.batch)
                    rec = store.add(again)
            if rec is None:
                todo.append(s)
                continue
            record(
                Outcome(
                    s,
                    rec.score,
                    rec.threshold,
                    rec.verdict,
                    rec.group,
                    anomaly_map=Path(rec.anomaly_map) if rec.anomaly_map else None,
                    anomalous_fraction=rec.anomalous_fraction,
                    stored=True,
                )
            )
        for batch in insp.predict_batches(todo, keep_originals=maps):
            summary.skipped += [reason for _, reason in batch.loaded.skipped]
            for o in _outcomes(insp, batch, out, maps, used):
                record(o)
    return summary
