"""The results store on SQLite and on a throwaway PostgreSQL server (skipped when unavailable)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flawscope.errors import StoreError
from flawscope.store import InspectionRecord, ResultStore, database_url, file_hash
from tests.postgres_server import PostgresServer, free_port

SRC = Path(__file__).resolve().parents[1] / "src"


def rec(content_hash: str, model_id: str = "m1", batch: str = "", **kw: object) -> InspectionRecord:
    """A record with defaults for the fields a test does not care about."""
    values: dict = {"path": f"/img/{content_hash}.png", "score": 0.5, "threshold": 1.0}
    values.update(verdict="pass", model_version="0.1.0")
    values.update(kw)
    return InspectionRecord(content_hash=content_hash, model_id=model_id, batch=batch, **values)


def test_round_trip(store_url: str) -> None:
    with ResultStore(store_url) as store:
        a = store.add(
            rec(
                "h1",
                batch="lot-1",
                group="top",
                score=2.5,
                verdict="fail",
                anomaly_map="/out/h1.png",
                anomalous_fraction=0.25,
                label="defective",
                defect_type="crack",
            )
        )
        store.add(rec("h2", batch="lot-1"))
        store.add(rec("h1", model_id="m2", batch="lot-2"))
        store.add(rec("h3", batch="lot-2"))
        assert a.id is not None
        assert a.time is not None and a.time.utcoffset() == timedelta(0)
        assert abs((datetime.now(timezone.utc) - a.time).total_seconds()) < 60
        assert store.find("h1", "m1", "lot-1") == a
        assert a.group == "top" and a.anomalous_fraction == 0.25 and a.defect_type == "crack"
        assert [r.content_hash for r in store.records()] == ["h1", "h2", "h1", "h3"]
        assert [r.content_hash for r in store.records(model_id="m1")] == ["h1", "h2", "h3"]
        assert [r.content_hash for r in store.records(batches=["lot-2"])] == ["h1", "h3"]
        assert store.records(model_id="m2", batches=["lot-1"]) == []
        assert store.batches() == ["lot-1", "lot-2"]
        assert store.batches(model_id="m2") == ["lot-2"]
        assert store.model_ids() == ["m1", "m2"]
    with ResultStore(store_url) as store:  # reopened: everything persisted, times still UTC
        again = store.records()
        assert again[0] == a
        assert all(r.time is not None and r.time.tzinfo is not None for r in again)


def test_given_time_kept_as_utc(store_url: str) -> None:
    local = datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    with ResultStore(store_url) as store:
        stored = store.add(rec("h1", time=local))
        assert stored.time == local and stored.time.utcoffset() == timedelta(0)
        assert store.find("h1", "m1").time == local


def test_duplicate_is_not_stored_twice(store_url: str) -> None:
    with ResultStore(store_url) as store:
        first = store.add(rec("h1", batch="lot-1", score=0.5))
        second = store.add(rec("h1", batch="lot-1", score=9.0, verdict="fail"))
        assert second == first  # the stored record, unchanged
        assert len(store.records()) == 1
        store.add(rec("h1", batch="lot-2"))  # same image in another batch is a new row
        assert len(store.records()) == 2


def test_find_by_other_model_or_batch_is_none(store_url: str) -> None:
    with ResultStore(store_url) as store:
        store.add(rec("h1", batch="lot-1", score=0.1))
        later = store.add(rec("h1", batch="lot-2", score=0.2))
        assert store.find("h1", "m2", "lot-1") is None
        assert store.find("h1", "m1", "lot-3") is None
        assert store.find("h1", "m1") is None  # "" is a batch of its own
        assert store.find("nope", "m1", "lot-1") is None
        assert store.find_any("h1", "m1") == later
        assert store.find_any("h1", "m2") is None


CRASH = """
import os, sys
from flawscope.store import InspectionRecord, ResultStore
store = ResultStore(sys.argv[1])
for i in range(10):
    if i == 3:
        os._exit(1)
    store.add(InspectionRecord(f"/img/{i}.png", f"h{i}", "m1", 0.5, 1.0, "pass", batch="lot"))
"""


def test_crash_mid_run_loses_nothing_committed(store_url: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH), store_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    with ResultStore(store_url) as store:
        assert [r.content_hash for r in store.records()] == ["h0", "h1", "h2"]
        assert store.batches() == ["lot"]


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    ResultStore(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_password_is_masked(postgres: PostgresServer) -> None:
    postgres.create_database("masked")
    with ResultStore(postgres.url("masked", password="s3cret")) as store:
        assert "s3cret" not in store.url and "***" in store.url


def test_database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_url("x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert database_url(Path("a/b/x.db")) == f"sqlite:///{tmp_path / 'a/b/x.db'}"
    assert (tmp_path / "a" / "b").is_dir()
    assert database_url("sqlite:///rel.db") == "sqlite:///rel.db"
    assert database_url("postgresql://u@h:5432/d") == "postgresql+psycopg://u@h:5432/d"
    assert database_url("postgres://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    with pytest.raises(StoreError, match="unsupported.*ftp.*postgresql://"):
        database_url("ftp://x")


def _one_line(exc: pytest.ExceptionInfo[StoreError]) -> str:
    message = str(exc.value)
    assert "\n" not in message and " -- " in message
    return message


def test_sqlite_path_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as exc:
        ResultStore(tmp_path)
    assert "folder" in _one_line(exc)


def test_sqlite_file_is_not_a_database(tmp_path: Path) -> None:
    garbage = tmp_path / "results.db"
    garbage.write_bytes(b"this is not sqlite\n" * 300)
    with pytest.raises(StoreError) as exc:
        ResultStore(garbage)
    assert "not a database" in _one_line(exc)
    assert garbage.read_bytes() == b"this is not sqlite\n" * 300  # left alone


def test_unreachable_postgres_fails_fast() -> None:
    start = time.monotonic()
    with pytest.raises(StoreError) as exc:
        ResultStore(f"postgresql://nobody@127.0.0.1:{free_port()}/db?connect_timeout=3")
    assert time.monotonic() - start < 10
    assert "PostgreSQL server is running" in _one_line(exc)


def test_file_hash(tmp_path: Path) -> None:
    big = os.urandom(3 * (1 << 20) + 17)  # more than one read chunk
    (tmp_path / "a").write_bytes(big)
    (tmp_path / "b").write_bytes(big)
    (tmp_path / "c").write_bytes(big[:-1] + bytes([big[-1] ^ 1]))
    ha = file_hash(tmp_path / "a")
    assert len(ha) == 64 and int(ha, 16) >= 0
    assert ha == file_hash(tmp_path / "b")
    assert ha != file_hash(tmp_path / "c")
