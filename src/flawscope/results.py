"""Per-image results written as CSV, one flushed row at a time (a crash loses nothing written)."""

from __future__ import annotations

import csv
from pathlib import Path
from types import TracebackType

FIELDS = ["path", "score", "threshold", "verdict", "label", "defect_type", "anomaly_map"]


class ResultsCSV:
    """Append-only CSV of inspection results; use as a context manager.

    Columns: ``path, score, threshold, verdict, label, defect_type, anomaly_map`` (label is
    ``good``/``defective``/empty when unknown; anomaly_map is the written PNG path or empty).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=FIELDS)
        self._writer.writeheader()
        self._fh.flush()
        self.rows = 0

    def write(self, **row: object) -> None:
        """Write one row (missing columns empty) and flush it to disk."""
        self._writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in FIELDS})
        self._fh.flush()
        self.rows += 1

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> ResultsCSV:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
