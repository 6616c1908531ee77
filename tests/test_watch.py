"""The folder watcher: settle, unreadable files, --once, exactly once across SIGKILL, alerts."""

from __future__ import annotations

import csv
import dataclasses
import logging
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from flawscope.config import InspectorConfig
from flawscope.data.dataset import Sample
from flawscope.inspector import Inspector
from flawscope.service import watch as watch_module
from flawscope.service.alerts import Webhook
from flawscope.service.watch import Watcher
from flawscope.store import ResultStore, file_hash
from tests.test_alerts import StubServer, closed_port_url

EXE = Path(sys.executable).parent / "flawscope"
THRESHOLD = 2.5  # good textures score about 1.1-1.4, a bright square about 4.4


def texture(seed: int, square: bool = False) -> np.ndarray:
    """A 64 px grey stripe texture with noise (distinct per seed); ``square``: a bright defect."""
    rng = np.random.default_rng(seed)
    x = np.arange(64)[None, :]
    img = 110 + 40 * np.sin(x / 3.0 + rng.uniform(0, 0.3)) + rng.normal(0, 6, (64, 64))
    if square:
        img[20:40, 20:40] = 255
    return np.clip(img, 0, 255).astype(np.uint8)


def png_bytes(seed: int, square: bool = False) -> bytes:
    return cv2.imencode(".png", texture(seed, square))[1].tobytes()


def drop(path: Path, seed: int, square: bool = False) -> Path:
    """Write an image atomically (a hidden temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(png_bytes(seed, square))
    tmp.rename(path)
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny PatchCore on 20 textures, threshold set to pass textures and fail squares."""
    root = tmp_path_factory.mktemp("watch_model")
    (root / "train").mkdir()
    for i in range(20):
        cv2.imwrite(str(root / "train" / f"good{i:02d}.png"), texture(i))
    cfg = InspectorConfig.model_validate(
        {
            "model": {"name": "patchcore", "image_size": 64, "params": {"feature_dim": 8}},
            "training": {"progress": False},
        }
    )
    insp = Inspector.fit(root / "train", cfg)
    insp.thresholds = dataclasses.replace(insp.thresholds, global_threshold=THRESHOLD)
    return insp.save(root / "model")


@pytest.fixture(scope="module")
def insp(model: Path) -> Inspector:
    return Inspector.load_dir(model)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Path, Path, ResultStore]]:
    """(watched folder, out folder, open store)."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    with ResultStore(out / "results.db") as store:
        yield folder, out, store


def csv_paths(out: Path) -> list[str]:
    path = out / "results.csv"
    return [row["path"] for row in csv.DictReader(path.open())] if path.exists() else []


def test_a_file_written_slowly_is_inspected_once_complete(
    insp: Inspector, env: tuple[Path, Path, ResultStore], caplog: pytest.LogCaptureFixture
) -> None:
    folder, out, store = env
    clock = FakeClock()
    w = Watcher(insp, folder, out, store, settle_s=1.0, clock=clock)
    data = png_bytes(1)
    path = folder / "sub" / "a.png"
    path.parent.mkdir()
    path.write_bytes(data[: len(data) // 2])
    assert w.process_pending() == 0 and w.pending == [path]  # noticed, not settled
    clock.now += 2.0
    with caplog.at_level(logging.WARNING, logger="flawscope"):
        assert w.process_pending() == 0  # settled but truncated: waits, no warning yet
    assert w.pending == [path] and not caplog.records
    with path.open("ab") as fh:  # the writer goes on
        fh.write(data[len(data) // 2 :])
    assert w.process_pending() == 0  # it changed: settling starts again
    clock.now += 0.5
    assert w.process_pending() == 0
    clock.now += 0.6
    assert w.process_pending() == 1 and w.pending == []
    clock.now += 100  # a rescan finds it again, as done
    assert w.process_pending() == 0
    records = store.records()
    assert [r.path for r in records] == [str(path.resolve())]
    assert records[0].content_hash == file_hash(path) and records[0].verdict == "pass"
    assert csv_paths(out) == [str(path.resolve())]
    assert w.summary.n_pass == 1 and w.summary.unreadable == []


def test_an_unreadable_file_is_reported_once_and_retried_when_replaced(
    insp: Inspector, env: tuple[Path, Path, ResultStore], caplog: pytest.LogCaptureFixture
) -> None:
    folder, out, store = env
    clock = FakeClock()
    w = Watcher(insp, folder, out, store, settle_s=0.5, clock=clock)
    bad = folder / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with caplog.at_level(logging.WARNING, logger="flawscope"):
        for _ in range(4):  # settle, then the retries of 5 x settle, then long after
            w.process_pending()
            clock.now += 2.0
        for _ in range(3):
            clock.now += 100  # rescans: left alone while unchanged
            w.process_pending()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "bad.png" in warnings[0] and "\n" not in warnings[0]
    assert len(w.summary.unreadable) == 1 and w.pending == [] and store.records() == []
    drop(bad, 2)  # fixed in place
    clock.now += 100
    w.process_pending()  # noticed by the rescan (an event, when running)
    clock.now += 1.0
    assert w.process_pending() == 1
    assert [Path(r.path).name for r in store.records()] == ["bad.png"]


def test_an_image_that_breaks_the_inspection_does_not_stop_the_watcher(
    insp: Inspector,
    env: tuple[Path, Path, ResultStore],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, out, store = env
    real = watch_module.inspect_samples

    def fragile(insp: Inspector, samples: list[Sample], *args: object, **kw: object) -> object:
        if any(s.path.name == "poison.png" for s in samples):
            raise RuntimeError("unexpected")
        return real(insp, samples, *args, **kw)

    monkeypatch.setattr(watch_module, "inspect_samples", fragile)
    for name, seed in (("a.png", 40), ("poison.png", 41), ("z.png", 42)):
        drop(folder / name, seed)
    with caplog.at_level(logging.WARNING, logger="flawscope"):
        summary = Watcher(insp, folder, out, store, settle_s=0.05).run(once=True)
    assert sorted(Path(r.path).name for r in store.records()) == ["a.png", "z.png"]
    assert summary.n_inspected == 2 and len(summary.unreadable) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "poison.png" in warnings[0] and "RuntimeError" in warnings[0]


def test_events_trigger_inspection_of_slow_and_renamed_writes(
    insp: Inspector, env: tuple[Path, Path, ResultStore]
) -> None:
    folder, out, store = env
    seen: list[Path] = []
    w = Watcher(
        insp,
        folder,
        out,
        store,
        settle_s=0.4,
        rescan_s=1e6,
        on_result=lambda o: seen.append(o.sample.path),
    )
    thread = threading.Thread(target=w.run, kwargs={"handle_signals": False})
    thread.start()
    try:
        time.sleep(0.3)  # the observer is up
        slow = folder / "slow.png"
        data = png_bytes(3)
        with slow.open("wb") as fh:
            for i in range(0, len(data), len(data) // 4 + 1):
                fh.write(data[i : i + len(data) // 4 + 1])
                fh.flush()
                time.sleep(0.15)  # shorter than the settle time
                assert seen == []
        renamed = drop(folder / "nested" / "deep" / "b.png", 4)
        deadline = time.monotonic() + 15
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        w.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert sorted(seen) == sorted([slow.resolve(), renamed.resolve()])
    records = {Path(r.path).name: r for r in store.records()}
    assert records["slow.png"].content_hash == file_hash(slow)
    assert records["b.png"].content_hash == file_hash(renamed)


def test_a_down_alert_server_warns_and_keeps_the_result(
    insp: Inspector, env: tuple[Path, Path, ResultStore], caplog: pytest.LogCaptureFixture
) -> None:
    folder, out, store = env
    drop(folder / "ok.png", 5)
    drop(folder / "defect.png", 6, square=True)
    hook = Webhook(closed_port_url(), model_id=insp.model_id, retries=1, backoff_s=0.01)
    w = Watcher(insp, folder, out, store, settle_s=0.05, alerts=[hook])
    with caplog.at_level(logging.WARNING, logger="flawscope"):
        summary = w.run(once=True, handle_signals=False)
    assert summary.n_fail == 1 and summary.n_pass == 1 and summary.alerts_failed == 1
    verdicts = {Path(r.path).name: r.verdict for r in store.records()}
    assert verdicts == {"ok.png": "pass", "defect.png": "fail"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "defect.png" in warnings[0] and "webhook" in warnings[0]


def run_cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "flawscope"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def start_watcher(*args: object) -> subprocess.Popen[str]:
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "flawscope"]
    return subprocess.Popen(
        [*cmd, "watch", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored_paths(db: Path) -> list[str]:
    """Paths in the store, read with plain sqlite3 (the watcher may be creating it)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return [row[0] for row in con.execute("SELECT path FROM inspections")]
    except sqlite3.OperationalError:  # the table is not created yet
        return []


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_once_inspects_what_is_there_alerts_fails_and_the_store_remembers(
    model: Path, insp: Inspector, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    for i in range(3):
        drop(folder / f"good{i}.png", 10 + i)
    drop(folder / "line2" / "defect.png", 20, square=True)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = folder / "results"  # inside the watched folder: its overlays must not be inspected
    with StubServer() as stub:
        r = run_cli(
            "watch", folder, model, "--out", out, "--once", "--settle", 0.1, "--batch", "L1",
            "--webhook", stub.url + "/qa", "--octoprint-url", stub.url, "--octoprint-key", "K3Y",
        )  # fmt: skip
    assert r.returncode == 1, r.stderr  # exit status 1: an unreadable file
    assert "4 inspected: 3 pass, 1 fail, 1 unreadable" in r.stdout
    err = " ".join(r.stderr.split())
    assert "warning: skipping" in err and "broken.png" in err and "Traceback" not in err
    # the alerts: one webhook call and one OctoPrint pause, for the fail only
    calls = sorted(stub.calls, key=lambda c: c["path"])
    assert [(c["method"], c["path"]) for c in calls] == [("POST", "/api/job"), ("POST", "/qa")]
    pause, hook = calls
    assert pause["headers"]["x-api-key"] == "K3Y"
    assert pause["json"] == {"command": "pause", "action": "pause"}
    body = hook["json"]
    assert body["verdict"] == "fail" and Path(body["path"]).name == "defect.png"
    assert body["batch"] == "L1" and body["model_id"] == insp.model_id
    assert body["score"] > body["threshold"] == pytest.approx(THRESHOLD)
    assert set(body) >= {"verdict", "score", "threshold", "path", "group", "batch", "time"}
    # the results
    assert len(list((out / "anomaly_maps").rglob("*.png"))) == 4
    with ResultStore(out / "results.db") as store:
        records = store.records()
        assert sorted(Path(r.path).name for r in records) == [
            "defect.png",
            "good0.png",
            "good1.png",
            "good2.png",
        ]
        assert {r.batch for r in records} == {"L1"}
        assert len(csv_paths(out)) == 4
        # a second run: the store remembers what was inspected
        drop(folder / "good3.png", 13)
        w = Watcher(insp, folder, out, store, batch="L1", settle_s=0.05)
        summary = w.run(once=True, handle_signals=False)
    assert summary.n_inspected == 1 and summary.n_known == 4 and len(summary.unreadable) == 1
    assert len(csv_paths(out)) == 5  # no CSV row for images already in the store


def test_killed_and_restarted_every_image_is_inspected_exactly_once(
    model: Path, tmp_path: Path
) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    db = out / "results.db"
    names: list[str] = []
    for i in range(6):  # there before the start
        names.append(drop(folder / f"a{i}.png", 100 + i).name)
    proc = start_watcher(folder, model, "--out", out, "--settle", 0.2)
    try:
        wait_for(lambda: len(stored_paths(db)) >= 1, 60, "the first result")
        for i in range(6):  # arriving while it runs
            names.append(drop(folder / "late" / f"b{i}.png", 200 + i).name)
            time.sleep(0.03)
        half = folder / "c_half.png"  # being written when the watcher dies
        data = png_bytes(300)
        half.write_bytes(data[: len(data) // 2])
        names.append(half.name)
        time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    n_before = len(stored_paths(db))
    assert 1 <= n_before < len(names)
    with half.open("ab") as fh:
        fh.write(data[len(data) // 2 :])
    for i in range(3):  # arriving while it is down
        names.append(drop(folder / f"d{i}.png", 400 + i).name)
    proc = start_watcher(folder, model, "--out", out, "--settle", 0.2)
    try:
        wait_for(lambda: len(stored_paths(db)) >= len(names), 60, "all results")
        time.sleep(0.5)  # would anything be inspected twice?
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    paths = stored_paths(db)
    assert sorted(Path(p).name for p in paths) == sorted(names)  # each exactly once
    with ResultStore(db) as store:
        by_name = {Path(r.path).name: r for r in store.records()}
    assert by_name["c_half.png"].content_hash == file_hash(half)  # the complete file
    rows = [Path(p).name for p in csv_paths(out)]
    assert set(rows) == set(names)
    assert len(rows) <= len(names) + 1  # at most the image in flight at the kill, twice
    assert re.search(r"^(\d+) inspected:", stdout, re.M).group(1) == str(len(names) - n_before)


def test_bad_arguments_are_one_line_errors(model: Path, tmp_path: Path) -> None:
    def assert_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
        assert r.returncode == 2, r.stdout
        err = " ".join(r.stderr.split())
        assert "Traceback" not in err and "error:" in err
        for n in needles:
            assert n in err, err

    folder = tmp_path / "in"
    folder.mkdir()
    assert_error(run_cli("watch", tmp_path / "nope", model, "--once"), "nope", "does not exist")
    assert_error(run_cli("watch", folder, tmp_path / "nomodel", "--once"), "does not exist")
    assert_error(
        run_cli("watch", folder, model, "--octoprint-url", "http://octopi"), "--octoprint-key"
    )
    assert_error(run_cli("watch", folder, model, "--webhook", "hooks.example"), "http://")
    assert_error(run_cli("watch", folder, model, "--settle", 0), "--settle")
