"""Per-image results written as CSV, one flushed row at a time (a crash loses nothing written)."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from flawscope.errors import DataError

FIELDS = [
    "time",
    "path",
    "score",
    "threshold",
    "verdict",
    "group",
    "batch",
    "label",
    "defect_type",
    "model_id",
    "anomaly_map",
]


class ResultsCSV:
    """CSV of inspection results; use as a context manager.

    Columns: ``time`` (UTC, ISO 8601), ``path``, ``score``, ``threshold`` (of the image's group),
    ``verdict``, ``group``, ``batch`` (empty when none), ``label``
    (``good``/``defective``/empty when unknown), ``defect_type``, ``model_id``, ``anomaly_map``
    (the written PNG path or empty). Every row is flushed as soon as it is written.

    Args:
        path: the CSV file; parent folders are created.
        append: keep the rows of an existing file and add to them (an inspection log); otherwise
            the file is rewritten.

    Raises:
        DataError: ``append`` and the existing file has other columns (written by another
            flawscope version or another program).
    """

    def __init__(self, path: Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = append and self.path.is_file() and self.path.stat().st_size > 0
        if keep:
            with self.path.open(newline="") as fh:
                header = next(csv.reader(fh), [])
            if header != FIELDS:
                raise DataError(
                    f"{self.path} exists with other columns than flawscope writes",
                    "choose another --out folder or move the old results.csv away",
                )
        self._fh = self.path.open("a" if keep else "w", newline="")
        self._writer = csv.DictWriter(self._fh, fieldnames=FIELDS)
        if not keep:
            self._writer.writeheader()
            self._fh.flush()
        self.rows = 0

    def write(self, **row: object) -> None:
        """Write one row (``time`` filled with now, missing columns empty) and flush it."""
        row.setdefault("time", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self._writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in FIELDS})
        self._fh.flush()
        self.rows += 1

    def close(self) -> None:
        """Close the file."""
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
