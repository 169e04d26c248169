"""The log's relational side: the deduplication index (derived data).

SQLAlchemy Core over SQLite (the embedded default) or PostgreSQL (the same
tables). Two tables::

    dedup(leaf_hash BLOB PRIMARY KEY, idx INTEGER)   -- leaf hash -> first index
    meta(key TEXT PRIMARY KEY, value TEXT)            -- "size": entries indexed

When it commits: after a batch's checkpoint is signed and written, a background
thread of the log records the batch's leaf hashes and advances ``size`` in one
transaction (:meth:`DedupIndex.record`); until that commit returns the log
answers those hashes from memory. The index is never the truth: the signed
checkpoint and the entry bundles are. It may lag behind the checkpoint (a
commit that failed or had not run at a crash); the log then re-derives the
missing hashes from the bundles (``docs/adr/0002-dedup-index-is-derived.md``).
Re-recording a hash it already holds is a no-op, so a commit whose outcome was
unknown can simply be repeated. SQLite runs in WAL mode with
``synchronous=FULL``: a commit is on disk when it returns.

Every database failure (SQLite "database or disk is full", a lost PostgreSQL
connection...) is raised as :class:`overt.errors.LogError`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from overt.errors import LogError

__all__ = ["DedupIndex"]

_metadata = MetaData()
dedup = Table(
    "dedup",
    _metadata,
    Column("leaf_hash", LargeBinary(32), primary_key=True),
    Column("idx", Integer, nullable=False),
    sqlite_with_rowid=False,
)
meta = Table(
    "meta",
    _metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(1024), nullable=False),
)

# SQLite's default limit on bound parameters is 32766; stay well below it.
_LOOKUP_CHUNK = 2000


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA cache_size=-65536")  # 64 MiB: the dedup B-tree is hit at random
    cur.close()


@contextmanager
def _failures(what: str) -> Iterator[None]:
    """Raise a database failure as LogError (driver message only: no SQL, no parameters)."""
    try:
        yield
    except (SQLAlchemyError, sqlite3.Error) as err:
        reason = getattr(err, "orig", None) or err
        raise LogError(f"dedup index: cannot {what}: {reason}") from err


class DedupIndex:
    """Leaf hash -> index, plus how many entries are indexed. One writer at a time."""

    def __init__(self, engine: Engine) -> None:
        """Use (and create if needed) the tables in ``engine``. Raises LogError."""
        self.engine = engine
        with _failures("open the database"):
            _metadata.create_all(engine)
        marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._marker = marker
        # Idempotent: repeating a commit whose outcome was unknown changes nothing.
        self._insert_sql = (
            f"INSERT INTO dedup (leaf_hash, idx) VALUES ({marker}, {marker}) ON CONFLICT DO NOTHING"
        )

    @classmethod
    def sqlite(cls, path: Path) -> DedupIndex:
        engine = create_engine(f"sqlite:///{path}")
        event.listen(engine, "connect", _sqlite_pragmas)
        return cls(engine)

    def size(self) -> int:
        """Entries indexed: every leaf hash at an index below it is recorded. Raises LogError."""
        with _failures("read its size"), self.engine.connect() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == "size")).first()
        return int(row[0]) if row else 0

    def lookup(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        """Indices of those hashes already recorded. Raises LogError."""
        found: dict[bytes, int] = {}
        with _failures("look up leaf hashes"), self.engine.connect() as conn:
            for i in range(0, len(leaf_hashes), _LOOKUP_CHUNK):
                chunk = leaf_hashes[i : i + _LOOKUP_CHUNK]
                # Driver SQL: compiling an IN clause of thousands of binds costs more than the query.
                marks = ",".join([self._marker] * len(chunk))
                rows = conn.exec_driver_sql(
                    f"SELECT leaf_hash, idx FROM dedup WHERE leaf_hash IN ({marks})", tuple(chunk)
                )
                found.update((bytes(h), int(ix)) for h, ix in rows)
        return found

    def truncate(self, size: int) -> None:
        """Forget every hash at an index >= size and set the size. Raises LogError.

        Scans the whole table (``idx`` has no index of its own): recovery only.
        """
        with _failures("truncate"), self.engine.begin() as conn:
            conn.execute(dedup.delete().where(dedup.c.idx >= size))
            self._set(conn, "size", str(size))

    def record(self, pairs: Iterable[tuple[bytes, int]], new_size: int) -> None:
        """Record leaf hashes and advance the size, in one durable transaction. Raises LogError.

        ``pairs`` must hold every hash at an index between the current size and
        ``new_size``; hashes already recorded are skipped.
        """
        rows = list(pairs)
        with _failures("commit"), self.engine.begin() as conn:
            if rows:
                # The hot path of bulk appends: tuples straight to the driver's
                # executemany, skipping per-row dict and compilation work.
                conn.exec_driver_sql(self._insert_sql, rows)
            self._set(conn, "size", str(new_size))

    @staticmethod
    def _set(conn: Any, key: str, value: str) -> None:
        updated = conn.execute(meta.update().where(meta.c.key == key).values(value=value))
        if updated.rowcount == 0:
            conn.execute(meta.insert().values(key=key, value=value))

    def close(self) -> None:
        self.engine.dispose()
