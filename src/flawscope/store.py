"""The results store: every inspection recorded in a database (SQLite file or PostgreSQL).

One row per inspected image and model and batch, in table ``inspections``. Each :meth:`add`
commits at once, so a crash mid-run loses nothing already written; an image whose content was
already inspected by the same model is found again by its SHA-256 content hash (:meth:`find`,
:meth:`find_any`) and need not be scored twice.

Databases: a plain path (``results.db``) is a SQLite file, opened in WAL journal mode so readers
(reports, SPC charts) do not block the writer; ``sqlite:///...`` URLs are used as given; a
``postgresql://user[:password]@host[:port]/db`` (or ``postgres://``) URL is a PostgreSQL
database, reached with the psycopg 3 driver.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from sqlalchemy import (
    DateTime,
    Engine,
    Float,
    Integer,
    Select,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    case,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from flawscope.errors import ConfigError, StoreError

SCHEMES = ("sqlite", "postgresql", "postgres")
"""URL schemes :func:`database_url` accepts (``postgres`` is rewritten to ``postgresql``)."""

CONNECT_TIMEOUT_S = 10
"""PostgreSQL connect timeout (seconds) unless the URL sets ``?connect_timeout=``."""

_CHUNK = 1 << 20  # bytes read at a time by file_hash


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes as 64 lowercase hex characters, read in 1 MiB chunks.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def database_url(db: str | Path) -> str:
    """The SQLAlchemy URL of a ``--db`` value.

    A plain path becomes ``sqlite:///<absolute path>``; ``sqlite://`` URLs pass unchanged;
    ``postgresql://`` and ``postgres://`` URLs get the psycopg 3 driver
    (``postgresql+psycopg://``). For a SQLite file the parent folder is created.

    Raises:
        StoreError: another scheme, an unparsable URL, or the parent folder cannot be created.
    """
    text = str(db)
    if "://" not in text:
        url: URL = URL.create("sqlite", database=str(Path(text).expanduser().resolve()))
    else:
        scheme = text.split("://", 1)[0].lower()
        if scheme.split("+", 1)[0] not in SCHEMES:
            raise StoreError(
                f"unsupported database URL scheme {scheme}:// in {_mask(text)}",
                "use a file path, sqlite:///path/to/results.db or "
                "postgresql://user@host:port/database",
            )
        try:
            url = make_url(text)
        except ArgumentError as exc:
            raise StoreError(
                f"cannot parse database URL {_mask(text)}",
                "write it as postgresql://user:password@host:port/database",
            ) from exc
        if url.get_backend_name() in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        parent = Path(url.database).expanduser().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create folder {parent} for the results database ({exc.strerror})",
                "pass a --db path in a writable folder",
            ) from exc
    return url.render_as_string(hide_password=False)


@dataclass
class InspectionRecord:
    """One inspection of one image by one model.

    ``score`` and ``threshold`` are in the model's anomaly-score units (``fail`` when
    score > threshold); ``anomalous_fraction`` is the share of anomaly-map pixels above the
    threshold, in [0, 1] (``None`` when not computed); ``time`` is tz-aware UTC.
    """

    path: str
    content_hash: str  # SHA-256 hex of the image bytes (file_hash)
    model_id: str
    score: float
    threshold: float
    verdict: str  # "pass" | "fail"
    model_version: str = ""  # flawscope version that wrote it
    batch: str = ""  # production lot, "" when none
    group: str = ""  # view angle / layer group, "" when none (column group_key)
    anomaly_map: str = ""  # path of the written overlay PNG, "" when none
    anomalous_fraction: float | None = None
    label: str = ""  # "good" | "defective" | "" unknown
    defect_type: str = ""
    time: datetime | None = None  # UTC; filled with now by ResultStore.add when None
    id: int | None = None  # database row id, set by ResultStore.add


VERDICTS = ("pass", "fail")
"""The verdicts a record can have (:meth:`ResultStore.query` filters on them)."""


@dataclass
class BatchSummary:
    """One batch of one model's inspections, summed up (:meth:`ResultStore.batch_summaries`).

    Attributes:
        batch: the batch name (``""`` for records without one).
        count: number of records (images) in the batch.
        fails: number of them with verdict ``"fail"``.
        mean_score: mean anomaly score, in the model's score units.
        first: time of the earliest record (UTC), or None.
        last: time of the latest record (UTC), or None.
    """

    batch: str
    count: int
    fails: int
    mean_score: float
    first: datetime | None = None
    last: datetime | None = None

    @property
    def fail_rate(self) -> float:
        """``fails / count`` in [0, 1] (0 for an empty batch)."""
        return self.fails / self.count if self.count else 0.0


class _UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware DateTime stored as UTC; SQLite drops the zone, so UTC is re-attached."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else _utc(value)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else _utc(value)


class _Base(DeclarativeBase):
    pass


class _Inspection(_Base):
    __tablename__ = "inspections"
    __table_args__ = (UniqueConstraint("content_hash", "model_id", "batch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(_UTCDateTime())
    path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    model_id: Mapped[str] = mapped_column(String(255), index=True)
    model_version: Mapped[str] = mapped_column(String(64), default="")
    batch: Mapped[str] = mapped_column(String(255), index=True, default="")
    group_key: Mapped[str] = mapped_column(String(255), default="")
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16))
    anomaly_map: Mapped[str] = mapped_column(Text, default="")
    anomalous_fraction: Mapped[float | None] = mapped_column(Float, nullable=True)
    label: Mapped[str] = mapped_column(String(32), default="")
    defect_type: Mapped[str] = mapped_column(String(255), default="")


_COLUMNS = {
    f.name: ("group_key" if f.name == "group" else f.name) for f in fields(InspectionRecord)
}


class ResultStore:
    """The inspection results database; use as a context manager.

    Args:
        db: a file path (SQLite) or a ``sqlite://`` / ``postgresql://`` URL (see
            :func:`database_url`). The ``inspections`` table is created when missing.

    Attributes:
        url: the resolved URL with any password masked, for messages.

    Raises:
        StoreError: the database cannot be opened or created (unreachable server, wrong
            credentials, unwritable file, a folder or a file that is not a SQLite database); also
            raised by the methods when a read or write fails.
    """

    def __init__(self, db: str | Path) -> None:
        resolved = make_url(database_url(db))
        self.url = resolved.render_as_string(hide_password=True)
        self._sqlite = resolved.get_backend_name() == "sqlite"
        if self._sqlite and resolved.database and Path(resolved.database).is_dir():
            raise StoreError(
                f"results database {resolved.database} is a folder",
                f"pass a file path such as {Path(resolved.database) / 'results.db'}",
            )
        self._engine = self._create_engine(resolved)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        try:
            _Base.metadata.create_all(self._engine)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise self._error("cannot open", exc) from exc

    def _create_engine(self, url: URL) -> Engine:
        if self._sqlite:
            engine = create_engine(url)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        connect_args = (
            {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}
        )
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)

    def _error(self, action: str, exc: SQLAlchemyError) -> StoreError:
        """A one-line StoreError for a failed database call."""
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if self._sqlite and "not a database" in reason:
            fix = "pass another --db file; that one is not a SQLite database"
        elif self._sqlite:
            fix = "check that the --db file and its folder are writable and the disk is not full"
        else:
            fix = (
                "check that the PostgreSQL server is running and the URL's host, port, user, "
                "password and database are right"
            )
        return StoreError(f"{action} results database {self.url}: {reason}", fix)

    def find(self, content_hash: str, model_id: str, batch: str = "") -> InspectionRecord | None:
        """The record of that image content by that model in that batch, or ``None``."""
        query = select(_Inspection).filter_by(
            content_hash=content_hash, model_id=model_id, batch=batch
        )
        rows = self._select(query)
        return rows[0] if rows else None

    def find_any(self, content_hash: str, model_id: str) -> InspectionRecord | None:
        """The latest record of that image content by that model in any batch, or ``None``."""
        query = (
            select(_Inspection)
            .filter_by(content_hash=content_hash, model_id=model_id)
            .order_by(_Inspection.id.desc())
            .limit(1)
        )
        rows = self._select(query)
        return rows[0] if rows else None

    def add(self, record: InspectionRecord) -> InspectionRecord:
        """Insert a record and commit it at once; returns a copy with ``id`` and ``time`` set.

        ``time`` None is filled with now (UTC); a naive time is taken as UTC. When a record of the
        same (``content_hash``, ``model_id``, ``batch``) exists, that stored record is returned
        unchanged and nothing is written. The argument is not modified.
        """
        existing = self.find(record.content_hash, record.model_id, record.batch)
        if existing is not None:
            return existing
        values = {col: getattr(record, name) for name, col in _COLUMNS.items() if name != "id"}
        values["time"] = datetime.now(timezone.utc) if record.time is None else _utc(record.time)
        row = _Inspection(**values)
        try:
            with self._sessions() as session:
                session.add(row)
                session.commit()
                return _record(row)
        except IntegrityError:  # another writer stored the same key between find and insert
            existing = self.find(record.content_hash, record.model_id, record.batch)
            if existing is None:
                raise
            return existing
        except SQLAlchemyError as exc:
            raise self._error("cannot write to", exc) from exc

    def records(
        self, model_id: str | None = None, batches: Sequence[str] | None = None
    ) -> list[InspectionRecord]:
        """All records, optionally of one model and/or some batches, in insertion order."""
        query = select(_Inspection).order_by(_Inspection.id)
        if model_id is not None:
            query = query.where(_Inspection.model_id == model_id)
        if batches is not None:
            query = query.where(_Inspection.batch.in_(list(batches)))
        return self._select(query)

    def get(self, record_id: int) -> InspectionRecord | None:
        """The record with that database row id, or ``None``."""
        rows = self._select(select(_Inspection).where(_Inspection.id == int(record_id)))
        return rows[0] if rows else None

    def query(
        self,
        model_id: str | None = None,
        batch: str | None = None,
        verdict: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[InspectionRecord], int]:
        """One page of records, newest first, and how many records match the filters in all.

        Args:
            model_id: only this model's records (None = all models).
            batch: only this batch (``""`` = records without a batch; None = all batches).
            verdict: ``"pass"`` or ``"fail"`` (None = both).
            since: only records at or after this time (inclusive; a naive time is UTC).
            until: only records before this time (exclusive; a naive time is UTC).
            limit: page size, >= 0 (0 returns no records, only the total).
            offset: records to skip (newest first), >= 0.

        Returns:
            ``(records, total)``: at most ``limit`` records ordered by descending row id (the
            insertion order, newest first), and the number of records matching the filters.

        Raises:
            ConfigError: a negative ``limit`` or ``offset``, or an unknown ``verdict``.
            StoreError: the database cannot be read.
        """
        if limit < 0 or offset < 0:
            raise ConfigError(
                f"limit and offset must be >= 0, got limit={limit}, offset={offset}",
                "pass a page size >= 0 and an offset >= 0",
            )
        if verdict is not None and verdict not in VERDICTS:
            raise ConfigError(f"unknown verdict {verdict!r}", "filter on pass or fail")
        where = []
        if model_id is not None:
            where.append(_Inspection.model_id == model_id)
        if batch is not None:
            where.append(_Inspection.batch == batch)
        if verdict is not None:
            where.append(_Inspection.verdict == verdict)
        if since is not None:
            where.append(_Inspection.time >= _utc(since))
        if until is not None:
            where.append(_Inspection.time < _utc(until))
        page = select(_Inspection).where(*where).order_by(_Inspection.id.desc())
        total = select(func.count()).select_from(_Inspection).where(*where)
        records = self._select(page.limit(limit).offset(offset)) if limit else []
        return records, int(self._scalars(total)[0])

    def batch_summaries(self, model_id: str | None = None) -> list[BatchSummary]:
        """Per batch: record count, fails, mean score, first and last time; first-seen order.

        Args:
            model_id: only this model's records (None = all models together).

        Raises:
            StoreError: the database cannot be read.
        """
        ins = _Inspection
        query: Select = select(
            ins.batch,
            func.count(),
            func.sum(case((ins.verdict == "fail", 1), else_=0)),
            func.avg(ins.score),
            func.min(ins.time),
            func.max(ins.time),
        ).group_by(ins.batch)
        if model_id is not None:
            query = query.where(ins.model_id == model_id)
        query = query.order_by(func.min(ins.id))
        try:
            with self._sessions() as session:
                rows = session.execute(query).all()
        except SQLAlchemyError as exc:
            raise self._error("cannot read", exc) from exc
        return [
            BatchSummary(
                batch=batch,
                count=int(count),
                fails=int(fails or 0),
                mean_score=float(mean),
                first=_time(first),
                last=_time(last),
            )
            for batch, count, fails, mean, first, last in rows
        ]

    def batches(self, model_id: str | None = None) -> list[str]:
        """Distinct batch names (``""`` for records without one) in first-seen order."""
        query = select(_Inspection.batch).group_by(_Inspection.batch)
        if model_id is not None:
            query = query.where(_Inspection.model_id == model_id)
        return self._scalars(query.order_by(func.min(_Inspection.id)))

    def model_ids(self) -> list[str]:
        """Distinct model ids in first-seen order."""
        query = select(_Inspection.model_id).group_by(_Inspection.model_id)
        return self._scalars(query.order_by(func.min(_Inspection.id)))

    def _select(self, query: object) -> list[InspectionRecord]:
        try:
            with self._sessions() as session:
                return [_record(row) for row in session.scalars(query)]
        except SQLAlchemyError as exc:
            raise self._error("cannot read", exc) from exc

    def _scalars(self, query: object) -> list[str]:
        try:
            with self._sessions() as session:
                return list(session.scalars(query))
        except SQLAlchemyError as exc:
            raise self._error("cannot read", exc) from exc

    def close(self) -> None:
        """Close all connections (records already added stay committed)."""
        self._engine.dispose()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _record(row: _Inspection) -> InspectionRecord:
    return InspectionRecord(**{name: getattr(row, col) for name, col in _COLUMNS.items()})


def _time(value: datetime | str | None) -> datetime | None:
    """An aggregated time column as a UTC datetime (SQLite may hand back the stored text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _utc(value)


def _utc(value: datetime) -> datetime:
    """A datetime in UTC; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _sqlite_pragmas(dbapi_connection: object, connection_record: object) -> None:
    """WAL journal mode, so readers do not block the writer (and the writer no reader)."""
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def _mask(text: str) -> str:
    """A URL with any password replaced by ``***`` (best effort, for messages)."""
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return text
