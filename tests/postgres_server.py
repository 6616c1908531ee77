"""A throwaway PostgreSQL server for tests: initdb into a temp folder, start, create DBs, stop.

Needs the PostgreSQL server binaries (``initdb``, ``pg_ctl``, ``postgres``). ``initdb`` and
``postgres`` refuse to run as root, so as root they run as the ``postgres`` user (else ``nobody``)
via ``runuser``, in a folder owned by that user. Anything that goes wrong raises
:class:`PostgresUnavailableError` with the reason, for the caller to skip its tests.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER = "flawscope"  # the database superuser initdb creates (trust authentication)
_SEARCH = ["/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]


class PostgresUnavailableError(RuntimeError):
    """The test server cannot be set up here (binaries missing, start failed, ...)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bin_dir() -> Path:
    """The first folder holding initdb, pg_ctl and postgres (symlinks resolved)."""
    which = shutil.which("initdb")
    candidates = ([str(Path(which).parent)] if which else []) + _SEARCH
    for folder in candidates:
        path = Path(folder)
        if all((path / exe).is_file() for exe in ("initdb", "pg_ctl", "postgres")):
            return (path / "pg_ctl").resolve().parent
    raise PostgresUnavailableError(
        f"initdb/pg_ctl/postgres not found in PATH or {', '.join(_SEARCH)}"
    )


class PostgresServer:
    """A running throwaway server on 127.0.0.1:``port``; call :meth:`stop` when done.

    Args:
        timeout: seconds to wait for the server to accept connections.
    """

    def __init__(self, timeout: float = 20.0) -> None:
        self.bin = _bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="flawscope-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._prefix: list[str] = []
        self._started = False
        try:
            if os.geteuid() == 0:
                self._drop_root()
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                timeout=timeout,
            )
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
            )
            self._run(
                "pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                str(int(timeout)),
                "start",
                timeout=timeout + 5,
            )
            self._started = True
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise

    def _drop_root(self) -> None:
        for name in ("postgres", "nobody"):
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            if shutil.which("runuser") is None:
                raise PostgresUnavailableError("running as root and runuser is missing")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._prefix = ["runuser", "-u", name, "--"]
            return
        raise PostgresUnavailableError("running as root and there is no postgres or nobody user")

    def _run(self, exe: str, *args: str, timeout: float) -> None:
        cmd = [*self._prefix, str(self.bin / exe), *args]
        try:
            proc = subprocess.run(
                cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailableError(f"{exe} failed: {exc}") from exc
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.is_file() else ""
            detail = (proc.stderr + log).strip().splitlines()[-3:]
            raise PostgresUnavailableError(f"{exe} exited {proc.returncode}: {' | '.join(detail)}")

    def _connect(self, dbname: str = "postgres"):  # noqa: ANN202 - psycopg.Connection
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            dbname=dbname,
            autocommit=True,
            connect_timeout=3,
        )

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._connect().close()
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailableError(
                        f"server did not accept connections: {exc}"
                    ) from exc
                time.sleep(0.1)

    def url(self, dbname: str = "postgres", password: str = "") -> str:
        """``postgresql://`` URL of a database on this server (the password is ignored: trust)."""
        auth = f"{USER}:{password}" if password else USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname: str) -> str:
        """Create an empty database and return its URL."""
        with self._connect() as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``) and delete its folder."""
        if self._started:
            with contextlib.suppress(PostgresUnavailableError):
                self._run(
                    "pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=20
                )
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)
