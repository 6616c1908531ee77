"""The folder watcher: inspect every new image in a folder exactly once, as soon as it is complete.

How a file gets inspected:

1. It is noticed: by a file-system event (watchdog; created, modified, closed, moved in), by the
   scan of the whole folder at start, or by the periodic rescan (every ``rescan_s`` seconds, a
   safety net for lost events, e.g. an inotify queue overflow or a network share).
2. It settles: its size and modification time stay unchanged for ``settle_s`` seconds, as seen
   by the watcher's own checks (a file still being written keeps changing and waits).
3. It is not known yet: the results store is the memory. A file whose SHA-256 content hash the
   store already holds for this model and batch (:meth:`ResultStore.find`) was inspected before
   (by this or an earlier run) and is passed over, without a CSV row.
4. It decodes. A settled file that does not decode may still be half-written by a writer that
   paused, so it is retried while it stays unchanged, for ``5 x settle_s`` seconds; then it is
   reported once (a warning) and skipped until its size or time changes. Unreadable files are
   not recorded anywhere: after a restart each is checked, and reported, once again.
5. It is inspected by :func:`flawscope.inspection.inspect_samples` (overlay PNG, a results.csv
   row, a committed store row), then the alerts of a ``fail`` are sent
   (:func:`flawscope.service.alerts.notify`).

Restarts: nothing but the store is needed. Every image present at start that the store does not
hold is inspected; the others are not, so after a crash (even SIGKILL) no image is inspected
twice or skipped. Stopping (SIGINT/SIGTERM, or :meth:`Watcher.stop`) finishes the batch being
inspected (at most ``training.batch_size`` images) and exits; a second SIGINT aborts at once.
"""

from __future__ import annotations

import logging
import queue
import signal
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from flawscope.data.dataset import Sample, list_images
from flawscope.data.io import is_image_file, read_image
from flawscope.errors import FlawscopeError, StoreError
from flawscope.inspection import Outcome, inspect_samples
from flawscope.inspector import Inspector
from flawscope.service.alerts import Alert, notify
from flawscope.store import ResultStore, file_hash

log = logging.getLogger("flawscope")

RESCAN_S = 30.0
"""Default interval of the safety-net rescan of the whole folder (seconds)."""

FALLBACK_RESCAN_S = 2.0
"""Rescan interval (seconds) when file-system events are unavailable."""

UNREADABLE_RETRY = 5.0
"""A settled file that does not decode is retried for this many times ``settle_s``."""

_Signature = tuple[int, int]  # (size in bytes, modification time in ns)


@dataclass
class WatchSummary:
    """What a watcher did so far.

    Attributes:
        n_pass, n_fail: images inspected by this run, by verdict.
        n_known: settled files passed over because the store already held their content.
        unreadable: one message per file skipped as unreadable (corrupt, truncated, too small).
        alerts_failed: alerts that could not be delivered.
    """

    n_pass: int = 0
    n_fail: int = 0
    n_known: int = 0
    unreadable: list[str] = field(default_factory=list)
    alerts_failed: int = 0

    @property
    def n_inspected(self) -> int:
        """Images inspected by this run (pass + fail)."""
        return self.n_pass + self.n_fail


@dataclass
class _Pending:
    sig: _Signature
    since: float  # clock time the signature was first seen
    bad_since: float | None = None  # clock time decoding first failed at this signature


def _signature(path: Path) -> _Signature | None:
    """``(size, mtime_ns)`` of a regular file, or None when it is gone or not a file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None


class _EventQueue(FileSystemEventHandler):
    """watchdog handler: queues the paths of file-system events for the watcher's own thread."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()

    def dispatch(self, event: FileSystemEvent) -> None:
        """Called by the watchdog observer thread for every event."""
        if event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        path = getattr(event, "dest_path", "") or event.src_path
        self.paths.put((path.decode() if isinstance(path, bytes) else path, event.is_directory))

    def drain(self) -> list[tuple[str, bool]]:
        items = []
        while True:
            try:
                items.append(self.paths.get_nowait())
            except queue.Empty:
                return items


class Watcher:
    """Inspect every new image under a folder exactly once; see the module docstring.

    Args:
        inspector: a fitted inspector (its ``model_id`` keys the store).
        folder: the folder to watch, recursively.
        out: folder for results.csv and anomaly_maps/; may lie inside ``folder`` (the overlays
            in ``out/anomaly_maps`` are never inspected).
        store: the results store (the watcher's memory across restarts).
        batch: production batch (lot) recorded with every image, ``""`` for none.
        maps: write anomaly-map overlay PNGs.
        settle_s: seconds a file's size and modification time must stay unchanged (> 0).
        alerts: actions for failed images (:mod:`flawscope.service.alerts`).
        rescan_s: seconds between safety-net rescans of the whole folder.
        on_result: called with every recorded :class:`Outcome` (after its alerts).
        clock: monotonic clock in seconds (tests pass a fake one).

    Raises:
        FlawscopeError: ``folder`` is not a folder, or ``settle_s`` is not positive.
    """

    def __init__(
        self,
        inspector: Inspector,
        folder: Path,
        out: Path,
        store: ResultStore,
        *,
        batch: str = "",
        maps: bool = True,
        settle_s: float = 1.0,
        alerts: Sequence[Alert] = (),
        rescan_s: float = RESCAN_S,
        on_result: Callable[[Outcome], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise FlawscopeError(
                f"watch folder {folder} "
                + ("is not a folder" if folder.exists() else "does not exist"),
                "check the path, or create the folder the images are written to",
            )
        if not settle_s > 0:
            raise FlawscopeError(
                f"--settle {settle_s} is not a positive number of seconds", "use e.g. --settle 1.0"
            )
        self.inspector, self.store = inspector, store
        self.folder = folder.resolve()
        self.out = Path(out).resolve()
        self.batch, self.maps, self.settle_s = batch, maps, settle_s
        self.alerts = list(alerts)
        self.rescan_s = rescan_s
        self.on_result = on_result
        self.clock = clock
        self.summary = WatchSummary()
        self._pending: dict[Path, _Pending] = {}
        self._done: dict[Path, _Signature] = {}  # inspected or known, at this signature
        self._unreadable: dict[Path, _Signature] = {}  # reported, at this signature
        self._events = _EventQueue()
        self._stop = threading.Event()
        self._last_scan = float("-inf")
        self._rescan = True
        self._maps_dir = self.out / "anomaly_maps"

    # ------------------------------------------------------------------ noticing files
    @property
    def pending(self) -> list[Path]:
        """Files noticed but not inspected yet (still settling, or not decoding yet)."""
        return sorted(self._pending)

    def _wanted(self, path: Path) -> bool:
        """An image file, not hidden, not one of the overlays this watcher writes."""
        if not is_image_file(path) or path.name.startswith("."):
            return False
        return not path.is_relative_to(self._maps_dir)

    def notice(self, path: Path) -> None:
        """Consider ``path`` (an absolute path under the folder) for inspection."""
        if not self._wanted(path):
            return
        sig = _signature(path)
        if sig is None:
            self._pending.pop(path, None)
        elif path not in self._pending and sig not in (
            self._done.get(path),
            self._unreadable.get(path),
        ):
            self._pending[path] = _Pending(sig, self.clock())

    def scan(self) -> None:
        """Notice every image under the folder (recursive; hidden files skipped)."""
        self._last_scan = self.clock()
        for path in list_images(self.folder):
            self.notice(path)

    def _drain_events(self) -> None:
        for raw, is_dir in self._events.drain():
            path = Path(raw)
            if is_dir:  # a folder moved in: its files may come without events of their own
                for f in list_images(path) if path.is_dir() else []:
                    self.notice(f)
            else:
                self.notice(path)

    # ------------------------------------------------------------------ processing
    def _ready(self) -> list[Sample]:
        """Pending files that settled, are not in the store and decode (oldest first)."""
        now = self.clock()
        ready: list[tuple[_Signature, Path]] = []
        for path, p in list(self._pending.items()):
            sig = _signature(path)
            if sig is None:  # deleted or replaced by a folder
                del self._pending[path]
                continue
            if sig != p.sig:  # still being written
                self._pending[path] = _Pending(sig, now)
                continue
            if now - p.since < self.settle_s:
                continue
            if self._known(path, sig):
                continue
            try:
                read_image(path)
            except FlawscopeError as exc:
                if p.bad_since is None:
                    p.bad_since = now
                if now - p.bad_since >= UNREADABLE_RETRY * self.settle_s:
                    self._give_up(path, sig, str(exc))
                continue
            ready.append((sig, path))
        ready.sort(key=lambda item: (item[0][1], item[1]))
        return [Sample(path, batch=self.batch) for _, path in ready]

    def _known(self, path: Path, sig: _Signature) -> bool:
        """True (and the file done) when the store holds its content for this model and batch."""
        try:
            digest = file_hash(path)
        except OSError:
            return False  # vanished or unreadable right now: looked at again next time
        if self.store.find(digest, self.inspector.model_id, self.batch) is None:
            return False
        log.debug("%s was inspected before (found in the results store)", path)
        self.summary.n_known += 1
        self._finish(path, sig)
        return True

    def _finish(self, path: Path, sig: _Signature) -> None:
        self._pending.pop(path, None)
        self._done[path] = sig

    def _give_up(self, path: Path, sig: _Signature, reason: str) -> None:
        self._pending.pop(path, None)
        self._unreadable[path] = sig
        self.summary.unreadable.append(reason)
        log.warning("skipping %s (retried only when the file changes)", " ".join(reason.split()))

    def process_pending(self) -> int:
        """Take in queued events, rescan when due, and inspect every pending file that is ready.

        Stops early, between batches, when :meth:`stop` was called.

        Returns:
            The number of images inspected (results recorded) by this call.

        Raises:
            StoreError: the results store cannot be read or written.
        """
        self._drain_events()
        if self._rescan and self.clock() - self._last_scan >= self.rescan_s:
            self.scan()
        samples = self._ready()
        size = max(1, self.inspector.config.training.batch_size)
        before = self.summary.n_inspected
        for i in range(0, len(samples), size):
            if self._stop.is_set():
                break
            self._inspect(samples[i : i + size])
        return self.summary.n_inspected - before

    def _inspect(self, chunk: list[Sample]) -> None:
        """Inspect, record and alert ``chunk``; mark each file done or unreadable."""
        sigs = {s.path: self._pending[s.path].sig for s in chunk}
        recorded: set[Path] = set()

        def record(o: Outcome) -> None:  # called once the result is committed
            recorded.add(o.sample.path)
            self.summary.n_fail += o.verdict == "fail"
            self.summary.n_pass += o.verdict == "pass"
            self.summary.alerts_failed += notify(self.alerts, o)
            if self.on_result is not None:
                self.on_result(o)

        try:
            result = inspect_samples(self.inspector, chunk, self.out, self.maps, self.store, record)
        except StoreError:
            raise
        except Exception as exc:  # one odd image must not stop the watcher (nor every restart)
            if len(chunk) > 1:  # find the culprit: one by one
                for s in chunk:
                    if s.path in recorded:
                        self._finish(s.path, sigs[s.path])
                    elif not self._stop.is_set():
                        self._inspect([s])
                return
            reason = f"{chunk[0].path} failed to inspect ({type(exc).__name__}: {exc})"
            self._give_up(chunk[0].path, sigs[chunk[0].path], reason)
            return
        for s in chunk:
            if s.path in recorded:
                self._finish(s.path, sigs[s.path])
            else:  # rejected while loading (e.g. too small): already warned about
                reason = next((r for r in result.skipped if str(s.path) in r), str(s.path))
                self._pending.pop(s.path, None)
                self._unreadable[s.path] = sigs[s.path]
                self.summary.unreadable.append(reason)

    # ------------------------------------------------------------------ running
    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch being inspected (thread- and signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop.is_set()

    def run(self, once: bool = False, handle_signals: bool = True) -> WatchSummary:
        """Watch until stopped, or with ``once`` until every image present now is done.

        Args:
            once: scan, wait for the files found to settle, inspect them, return; no events.
            handle_signals: on the main thread, SIGINT and SIGTERM call :meth:`stop` (a second
                SIGINT raises KeyboardInterrupt); the previous handlers are restored on return.

        Returns:
            :attr:`summary`.

        Raises:
            StoreError: the results store cannot be read or written.
        """
        poll_s = min(0.5, max(0.02, self.settle_s / 4))
        observer = None if once else self._start_observer()
        restore = self._install_signals() if handle_signals else {}
        try:
            self.scan()
            self._rescan = not once
            while not self._stop.is_set():
                self.process_pending()
                if once and not self._pending:
                    break
                self._stop.wait(poll_s)
        finally:
            for sig, handler in restore.items():
                signal.signal(sig, handler)
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)
        return self.summary

    def _start_observer(self) -> Any:
        """A started watchdog observer feeding the event queue, or None (rescans only)."""
        observer = Observer()
        try:
            observer.schedule(self._events, str(self.folder), recursive=True)
            observer.start()
        except OSError as exc:
            self.rescan_s = min(self.rescan_s, FALLBACK_RESCAN_S)
            log.warning(
                "no file-system events for %s (%s); rescanning every %g s instead -- raise "
                "fs.inotify.max_user_watches if the folder is large",
                self.folder,
                exc.strerror or exc,
                self.rescan_s,
            )
            return None
        return observer

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handle(signum: int, frame: FrameType | None) -> None:
            if self._stop.is_set() and signum == signal.SIGINT:
                raise KeyboardInterrupt
            log.info("stopping after the current image (Ctrl-C again to abort)")
            self.stop()

        return {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
