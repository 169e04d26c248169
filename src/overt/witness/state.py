"""The witness's durable state: per log origin, the latest checkpoint it cosigned.

One SQLite file (``state.db`` in the witness directory), through SQLAlchemy Core::

    checkpoints(origin TEXT PRIMARY KEY, size INTEGER, root_hash BLOB(32), note BLOB)

``note`` is the cosigned checkpoint a monitor reads: the log's verified
signature(s) and this witness's cosignature (:class:`~overt.witness.core.CosignedCheckpoint`).

Atomicity (c2sp.org/tlog-witness: "checking the old size against the latest
checkpoint and persisting the new checkpoint must be performed atomically"):
every write is a transaction opened with ``BEGIN IMMEDIATE``, which takes
SQLite's write lock before the first read, so the record a decision is based on
cannot change before the decision is stored, whichever process or thread
writes. Inside it each record is replaced by a compare-and-set
(``UPDATE ... WHERE origin = :origin AND size = :old_size AND root_hash = :old_root``,
or ``INSERT ... ON CONFLICT DO NOTHING`` for a first checkpoint) whose row
count is checked, as a second line of defence.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so a
transaction's commit has reached the disk (the WAL is fsynced) when
:meth:`WitnessState.apply` returns; the server replies only after that. A crash
before the commit loses the transaction, and no cosignature from it was ever
sent. :meth:`WitnessState.apply` takes many requests in one transaction (one
fsync for all: group commit), deciding them in order against the record as
updated by the ones before.

Versioning: ``PRAGMA user_version`` holds the schema version (1); another
version is refused rather than guessed at.

PostgreSQL (:class:`PostgresWitnessState`, several witness processes on one
database): the same table and compare-and-set; every write transaction first
takes a transaction-scoped advisory lock (``pg_advisory_xact_lock``), which
serialises writers as ``BEGIN IMMEDIATE`` does for SQLite while readers go on.
A commit is durable when it returns (``synchronous_commit`` on, PostgreSQL's
default). Its schema is migrated by Alembic (:func:`overt.db.upgrade`) on open.

Both implement :class:`WitnessStore`, the protocol the server and the CLI use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    select,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from overt.db import engine_from_url, upgrade
from overt.errors import ConfigError
from overt.witness.core import Cosigned, CosignedCheckpoint, Submission
from overt.witness.errors import WitnessError

__all__ = [
    "SCHEMA_VERSION",
    "Decide",
    "PostgresWitnessState",
    "StateError",
    "WitnessState",
    "WitnessStore",
    "open_state",
]

SCHEMA_VERSION = 1

_metadata = MetaData()
_checkpoints = Table(
    "checkpoints",
    _metadata,
    Column("origin", Text, primary_key=True),
    Column("size", Integer, nullable=False),
    Column("root_hash", LargeBinary, nullable=False),
    Column("note", LargeBinary, nullable=False),
)

_SELECT = select(
    _checkpoints.c.origin, _checkpoints.c.size, _checkpoints.c.root_hash, _checkpoints.c.note
)
# Statements built once: building one per request costs more than running it.
_SELECT_MANY = _SELECT.where(_checkpoints.c.origin.in_(bindparam("origins", expanding=True)))
_VALUES: dict[str, Any] = {
    "origin": bindparam("key"),
    "size": bindparam("new_size"),
    "root_hash": bindparam("new_root"),
    "note": bindparam("new_note"),
}
# RETURNING counts the rows inserted: psycopg reports no row count for
# INSERT ... ON CONFLICT DO NOTHING through SQLAlchemy (-1).
_INSERT_SQLITE = (
    sqlite_insert(_checkpoints)
    .values(_VALUES)
    .on_conflict_do_nothing()
    .returning(_checkpoints.c.origin)
)
_INSERT_POSTGRES = (
    postgresql_insert(_checkpoints)
    .values(_VALUES)
    .on_conflict_do_nothing()
    .returning(_checkpoints.c.origin)
)
# Any constant: the key of the advisory lock PostgreSQL writers serialise on.
_PG_WRITE_LOCK = 0x6F76_7274_7769_7401
_UPDATE = (
    _checkpoints.update()
    .where(_checkpoints.c.origin == bindparam("key"))
    .where(_checkpoints.c.size == bindparam("old_size"))
    .where(_checkpoints.c.root_hash == bindparam("old_root"))
    .values(size=bindparam("new_size"), root_hash=bindparam("new_root"), note=bindparam("new_note"))
)


class StateError(ConfigError):
    """The state database cannot be opened, read or written."""


Decide = Callable[[CosignedCheckpoint | None, Submission], Cosigned]
"""Step 2 of :mod:`overt.witness.core` with the signer bound (``decide(stored, submission)``)."""


def _row(row: Any) -> CosignedCheckpoint:
    return CosignedCheckpoint(row.origin, row.size, bytes(row.root_hash), bytes(row.note))


class WitnessStore(Protocol):
    """What the witness needs of its state: read records, and decide-and-store atomically."""

    def get(self, origin: str) -> CosignedCheckpoint | None: ...

    def origins(self) -> list[str]: ...

    def compare_and_set(
        self, expected: CosignedCheckpoint | None, new: CosignedCheckpoint
    ) -> bool: ...

    def apply(
        self, submissions: Sequence[Submission], decide: Decide
    ) -> list[Cosigned | Exception]: ...

    def close(self) -> None: ...


class _SQLState:
    """The records in a SQLAlchemy engine; a subclass opens it and begins write transactions."""

    engine: Engine

    def _write(self) -> contextlib.AbstractContextManager[Connection]:
        """A transaction that holds the writer lock from its first statement."""
        raise NotImplementedError

    def _insert(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        self.engine.dispose()

    # -- reads ---------------------------------------------------------------

    def get(self, origin: str) -> CosignedCheckpoint | None:
        """The latest cosigned checkpoint for ``origin``, or None. Raises StateError."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(_SELECT.where(_checkpoints.c.origin == origin)).first()
        except SQLAlchemyError as err:
            raise StateError(f"cannot read witness state: {err}") from err
        return None if row is None else _row(row)

    def origins(self) -> list[str]:
        """Every origin with a cosigned checkpoint, sorted. Raises StateError."""
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(_checkpoints.c.origin).order_by(_checkpoints.c.origin))
                return [r.origin for r in rows]
        except SQLAlchemyError as err:
            raise StateError(f"cannot read witness state: {err}") from err

    # -- writes ----------------------------------------------------------------

    def compare_and_set(self, expected: CosignedCheckpoint | None, new: CosignedCheckpoint) -> bool:
        """Stores ``new`` iff the record for its origin is still ``expected``; durable on return.

        Raises:
            StateError: the write failed (nothing was stored).
        """
        try:
            if expected is not None and expected.origin != new.origin:
                raise StateError(
                    f"compare-and-set across origins {expected.origin!r}, {new.origin!r}"
                )
            with self._write() as conn:
                return _cas_many(conn, self._insert(), [(expected, new)])
        except SQLAlchemyError as err:
            raise StateError(f"cannot write witness state: {err}") from err

    def apply(
        self, submissions: Sequence[Submission], decide: Decide
    ) -> list[Cosigned | Exception]:
        """Decides ``submissions`` in order against the records, and stores the outcome.

        One transaction: the records are read under the write lock, each submission
        is decided against its origin's record as updated by the accepted ones
        before it, and every changed record is written back by compare-and-set.
        Returns, per submission, its :class:`Cosigned` or the exception ``decide``
        raised. Everything returned is durable.

        Raises:
            StateError: the transaction failed; nothing was stored and no
                cosignature may be released.
        """
        origins = sorted({s.origin for s in submissions})
        results: list[Cosigned | Exception] = []
        try:
            with self._write() as conn:
                rows = conn.execute(_SELECT_MANY, {"origins": origins})
                before = {r.origin: _row(r) for r in rows}
                current: dict[str, CosignedCheckpoint | None] = dict(before)
                for submission in submissions:
                    try:
                        outcome = decide(current.get(submission.origin), submission)
                    except (WitnessError, ConfigError) as err:
                        results.append(err)
                        continue
                    current[submission.origin] = outcome.state
                    results.append(outcome)
                changed = [
                    (before.get(origin), record)
                    for origin, record in current.items()
                    if record is not None and record is not before.get(origin)
                ]
                if changed and not _cas_many(conn, self._insert(), changed):
                    # Unreachable under BEGIN IMMEDIATE; roll everything back if not.
                    raise StateError("a record changed under the write lock")
        except SQLAlchemyError as err:
            raise StateError(f"cannot write witness state: {err}") from err
        return results


class WitnessState(_SQLState):
    """The witness's records, in a SQLite file. Thread-safe; several processes may share it.

    Raises:
        StateError: on construction, the file cannot be opened or has another schema.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StateError(f"no directory for the witness state: {self.path.parent}")
        # SQLAlchemy's default pool for a SQLite file (QueuePool): a connection is
        # used by one thread at a time, possibly a different one each time.
        self.engine: Engine = create_engine(
            f"sqlite:///{self.path}",
            connect_args={"timeout": 30.0, "check_same_thread": False},
        )
        event.listen(self.engine, "connect", _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        try:
            with self._write() as conn:
                version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
                if version == 0:
                    _checkpoints.create(conn)
                    conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
                elif version != SCHEMA_VERSION:
                    raise StateError(
                        f"{self.path}: state schema version {version}, expected {SCHEMA_VERSION}"
                    )
        except SQLAlchemyError as err:
            raise StateError(f"cannot open witness state {self.path}: {err}") from err

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction: BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception)."""
        with self.engine.connect() as conn:
            conn.execution_options(overt_write=True)
            with conn.begin():
                yield conn

    def _insert(self) -> Any:
        return _INSERT_SQLITE

    def __enter__(self) -> WitnessState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PostgresWitnessState(_SQLState):
    """The witness's records in PostgreSQL (tables in the connection's ``search_path``).

    ``url`` is a SQLAlchemy URL; ``postgresql://...`` is taken as psycopg 3
    (``postgresql+psycopg://...``). Thread-safe; several processes may share
    the database.

    Raises:
        StateError: on construction, the database cannot be reached or has another schema.
    """

    def __init__(self, url: str, *, connect_args: dict[str, Any] | None = None) -> None:
        if not url.startswith(("postgresql://", "postgresql+psycopg://")):
            raise StateError("the PostgreSQL witness state needs a postgresql:// URL")
        self.engine = engine_from_url(url, connect_args=connect_args)
        try:
            upgrade(self.engine)  # Alembic: overt/db/_migrations
        except ConfigError as err:
            self.engine.dispose()
            raise StateError(f"cannot open the witness state database: {err}") from err

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction holding the writers' advisory lock (readers go on)."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_WRITE_LOCK})")
            yield conn

    def _insert(self) -> Any:
        return _INSERT_POSTGRES

    def __enter__(self) -> PostgresWitnessState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_state(url: str) -> WitnessState | PostgresWitnessState:
    """The state in the database ``url``: ``sqlite:///PATH`` (the embedded file format) or
    ``postgresql://...`` (migrated on open). Raises StateError, ConfigError (another scheme).
    """
    from overt.db import normalize_url

    url = normalize_url(url)
    if url.startswith("sqlite:///"):
        return WitnessState(url.removeprefix("sqlite:///"))
    return PostgresWitnessState(url)


def _cas_many(
    conn: Connection,
    insert: Any,
    changes: Sequence[tuple[CosignedCheckpoint | None, CosignedCheckpoint]],
) -> bool:
    """Compare-and-set of several records (distinct origins) at once; True iff all took.

    Each statement matches at most one row (the origin is the primary key), so
    the total row count says whether every one of them did.
    """
    inserts = [_values(new) for old, new in changes if old is None]
    updates = [
        {**_values(new), "old_size": old.size, "old_root": old.root_hash}
        for old, new in changes
        if old is not None
    ]
    done = 0
    for row in inserts:  # one statement per new origin (rare)
        done += len(conn.execute(insert, row).all())
    if updates and conn.dialect.supports_sane_multi_rowcount:
        done += conn.execute(_UPDATE, updates).rowcount
    else:
        for row in updates:
            done += conn.execute(_UPDATE, row).rowcount
    return done == len(changes)


def _values(record: CosignedCheckpoint) -> dict[str, object]:
    return {
        "key": record.origin,
        "new_size": record.size,
        "new_root": record.root_hash,
        "new_note": record.note,
    }


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event, not the sqlite3 module, open transactions
    # (the SQLAlchemy docs' recipe for SQLite transactions that mean what they say).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _on_begin(conn: Connection) -> None:
    # Writers take the write lock before their first read; readers never block anyone (WAL).
    write = conn.get_execution_options().get("overt_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
