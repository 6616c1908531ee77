"""The results CSV: rows on disk as soon as written, append mode, foreign files refused."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from flawscope.errors import DataError
from flawscope.results import FIELDS, ResultsCSV


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_rows_are_on_disk_before_close(tmp_path: Path) -> None:
    out = ResultsCSV(tmp_path / "r" / "results.csv")
    out.write(path="a.png", score=1.5, verdict="fail")
    # a crash now (no close) must not lose the row
    rows = _rows(tmp_path / "r" / "results.csv")
    assert rows[0]["path"] == "a.png" and rows[0]["verdict"] == "fail" and rows[0]["time"]
    out.close()


def test_append_keeps_earlier_rows_and_rewrite_does_not(tmp_path: Path) -> None:
    p = tmp_path / "results.csv"
    with ResultsCSV(p) as out:
        out.write(path="a.png")
    with ResultsCSV(p, append=True) as out:
        out.write(path="b.png")
    assert [r["path"] for r in _rows(p)] == ["a.png", "b.png"]
    with ResultsCSV(p) as out:
        out.write(path="c.png")
    assert [r["path"] for r in _rows(p)] == ["c.png"]


def test_append_refuses_a_foreign_csv(tmp_path: Path) -> None:
    p = tmp_path / "results.csv"
    p.write_text("name,value\nx,1\n")
    with pytest.raises(DataError, match="other columns"):
        ResultsCSV(p, append=True)
    assert p.read_text() == "name,value\nx,1\n"  # untouched
    assert FIELDS[0] == "time"
