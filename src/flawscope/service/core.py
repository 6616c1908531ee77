"""The service's work without HTTP: an uploaded image in, a recorded verdict out; queries.

:class:`InspectionService` owns the inspector, the results store and the data folder::

    <data>/uploads/<model id>/<name>-<hash16>.<ext>   every uploaded image (content-hash name)
    <data>/anomaly_maps/<model id>/<same stem>.png     the anomaly-map overlays
    <data>/results.csv                                 one row per request
    <data>/results.db                                  the results store (unless --db)

Each image goes through :func:`flawscope.inspection.inspect_samples`, the one inspection path,
so its result is committed to the store before :meth:`InspectionService.inspect` returns, and an
image the model has already inspected is served from the store. Inspections run one at a time
(one lock): the model is not re-entrant, and on a few CPU cores parallel predictions would only
compete for them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flawscope import __version__
from flawscope.data.dataset import Sample
from flawscope.inspection import Outcome, inspect_samples
from flawscope.inspector import Inspector
from flawscope.service.charts import ChartCache
from flawscope.service.errors import ServiceError
from flawscope.service.uploads import (
    Upload,
    check_image,
    check_name,
    content_hash,
    save_upload,
    upload_name,
)
from flawscope.spc import MIN_BATCHES, SPCResult, spc_analysis
from flawscope.store import BatchSummary, InspectionRecord, ResultStore


@dataclass(frozen=True)
class Limits:
    """Request limits: ``max_upload_bytes`` per image file, ``max_pixels`` width x height."""

    max_upload_bytes: int = 20 * 2**20
    max_pixels: int = 50_000_000


def anomaly_map_url(record_id: int | None) -> str | None:
    """The app's URL path of a result's overlay PNG (None without a record id)."""
    return None if record_id is None else f"/results/{record_id}/anomaly_map.png"


def record_json(rec: InspectionRecord) -> dict[str, Any]:
    """A stored result as JSON: scores in the model's units, time in ISO 8601 UTC."""
    return {
        "id": rec.id,
        "time": rec.time.isoformat() if rec.time else None,
        "name": Path(rec.path).name,
        "batch": rec.batch,
        "group": rec.group,
        "score": rec.score,
        "threshold": rec.threshold,
        "verdict": rec.verdict,
        "anomalous_fraction": rec.anomalous_fraction,
        "model_id": rec.model_id,
        "content_hash": rec.content_hash,
        "anomaly_map_url": anomaly_map_url(rec.id) if rec.anomaly_map else None,
    }


def batch_json(b: BatchSummary) -> dict[str, Any]:
    """A batch summary as JSON (times in ISO 8601 UTC)."""
    return {
        "batch": b.batch,
        "count": b.count,
        "fails": b.fails,
        "fail_rate": b.fail_rate,
        "mean_score": b.mean_score,
        "first": b.first.isoformat() if b.first else None,
        "last": b.last.isoformat() if b.last else None,
    }


class InspectionService:
    """Inspects uploaded images with one model and answers queries on its results.

    Args:
        inspector: the fitted model.
        store: the results store (the service does not close it; :meth:`close` does).
        data: the data folder (see the module docstring); created when missing.
        limits: the request limits.
    """

    def __init__(
        self, inspector: Inspector, store: ResultStore, data: Path, limits: Limits | None = None
    ) -> None:
        self.inspector = inspector
        self.store = store
        self.data = Path(data)
        self.limits = limits or Limits()
        self.uploads = self.data / "uploads" / (inspector.model_id or "model")
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._charts = ChartCache()

    @property
    def model_id(self) -> str:
        """The model's id (as recorded in the store)."""
        return self.inspector.model_id

    def inspect(self, upload: Upload, batch: str = "", group: str = "") -> dict[str, Any]:
        """Inspect one uploaded image; its result is committed to the store when this returns.

        Args:
            upload: the image bytes and the client's file name.
            batch: production batch name (``""`` = none; such results are left out of SPC).
            group: the image's group (``""`` = the model's own grouping decides).

        Returns:
            ``id``, ``time``, ``name`` (the saved file), ``filename`` (the client's), ``batch``,
            ``group``, ``score``, ``threshold`` (score > threshold fails), ``verdict``,
            ``anomalous_fraction`` (in [0, 1], None when served from an old record without it),
            ``far``, ``stored`` (True when served from the store, not scored again),
            ``model_id``, ``content_hash`` and ``anomaly_map_url`` (the overlay PNG's path on
            this app, or None).

        Raises:
            ServiceError: 413/415 see :func:`~flawscope.service.uploads.check_image`; 422 bad
                batch or group name, or an image that cannot be decoded.
            StoreError: the store cannot be read or written.
        """
        batch, group = check_name(batch, "batch"), check_name(group, "group")
        info = check_image(upload.data, self.limits.max_pixels)
        digest = content_hash(upload.data)
        name = upload_name(upload.filename, digest, info)
        got: list[Outcome] = []
        with self._lock:
            path, created = save_upload(upload.data, self.uploads, name)
            sample = Sample(path, batch=batch, group=group)
            summary = inspect_samples(
                self.inspector, [sample], self.data, True, self.store, got.append
            )
            if not got and created:
                path.unlink(missing_ok=True)  # never readable: keep no copy
        if not got:
            reason = summary.skipped[0] if summary.skipped else "unknown reason"
            raise ServiceError(
                422,
                f"image {upload.filename or name} cannot be inspected: {reason}",
                "send an intact PNG, JPEG, BMP or TIFF file",
            )
        o = got[0]
        rec = self.store.find(digest, self.model_id, batch)
        return {
            "id": rec.id if rec else None,
            "time": rec.time.isoformat() if rec and rec.time else None,
            "name": path.name,
            "filename": upload.filename,
            "batch": batch,
            "group": o.group,
            "score": o.score,
            "threshold": o.threshold,
            "verdict": o.verdict,
            "anomalous_fraction": o.anomalous_fraction,
            "far": o.far,
            "stored": o.stored,
            "model_id": self.model_id,
            "content_hash": digest,
            "anomaly_map_url": anomaly_map_url(rec.id) if rec and o.anomaly_map else None,
        }

    def anomaly_map(self, record_id: int) -> Path:
        """The overlay PNG of a stored result.

        Raises:
            ServiceError: 404 no such result, or it has no overlay file (any more).
        """
        rec = self.store.get(record_id)
        if rec is None:
            raise ServiceError(404, f"no result with id {record_id}", "list them with /results")
        path = Path(rec.anomaly_map) if rec.anomaly_map else None
        if path is None or path.suffix.lower() != ".png" or not path.is_file():
            raise ServiceError(
                404,
                f"result {record_id} has no anomaly map file",
                "re-inspect the image to write one",
            )
        return path

    def _spc_records(self) -> list[InspectionRecord]:
        """This model's records that belong to a batch (unbatched results are not charted).

        Raises:
            ServiceError: 409 fewer than :data:`~flawscope.spc.MIN_BATCHES` batches.
        """
        records = [r for r in self.store.records(model_id=self.model_id) if r.batch.strip()]
        n = len({r.batch for r in records})
        if n < MIN_BATCHES:
            raise ServiceError(
                409,
                f"control charts need at least {MIN_BATCHES} batches, this model has {n}",
                "inspect images of more production batches (set a batch name on each upload)",
                batches=n,
                needed=MIN_BATCHES,
            )
        return records

    def spc(self, reference: list[str] | None = None, quantity: str = "score") -> SPCResult:
        """SPC of this model's batches (see :func:`flawscope.spc.spc_analysis`).

        Raises:
            ServiceError: 409 fewer than 3 batches.
            DataError: unknown reference batches, or fewer than 2 of them (-> 422).
        """
        return spc_analysis(self._spc_records(), reference or None, quantity)  # type: ignore[arg-type]

    def chart_png(self, statistic: str) -> bytes:
        """The control chart of ``statistic`` (mean_score, fail_rate or nqi) as PNG bytes.

        Re-drawn only when the store has new results (cached by result count and newest id).

        Raises:
            ServiceError: 409 fewer than 3 batches; 422 unknown statistic.
        """
        newest, total = self.store.query(model_id=self.model_id, limit=1)
        key = (total, newest[0].id if newest else None)
        return self._charts.png(key, statistic, lambda: spc_analysis(self._spc_records()))

    def health(self) -> dict[str, Any]:
        """Model, version, store (password masked) and uptime, for ``/health``."""
        insp = self.inspector
        return {
            "status": "ok",
            "model_id": self.model_id,
            "model_name": insp.config.model.name,
            "model_created": insp.created,
            "threshold": 1.0 if insp.config.threshold.normalize else insp.threshold,
            "normalised_scores": bool(insp.config.threshold.normalize),
            "version": __version__,
            "store": self.store.url,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "max_upload_mb": self.limits.max_upload_bytes / 2**20,
            "max_pixels": self.limits.max_pixels,
        }
