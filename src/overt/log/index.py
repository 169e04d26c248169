"""The log's relational side: the deduplication index and durable metadata.

SQLAlchemy Core over SQLite (the embedded default; PostgreSQL can follow with
the same tables). Two tables::

    dedup(leaf_hash BLOB PRIMARY KEY, idx INTEGER)   -- leaf hash -> first index
    meta(key TEXT PRIMARY KEY, value TEXT)            -- "size": integrated tree size

The ``size`` row is advanced in the same transaction that records the batch's
leaf hashes. The log writes that transaction while the batch's tiles are being
written, and publishes the checkpoint only after both are durable; the
published checkpoint is therefore the truth after a crash, and
:meth:`DedupIndex.truncate` drops whatever the index holds beyond it. SQLite
runs in WAL mode with ``synchronous=FULL``: a commit is on disk when it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


class DedupIndex:
    """Leaf hash -> index, plus the integrated size. One writer at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _metadata.create_all(engine)
        marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._marker = marker
        self._insert_sql = f"INSERT INTO dedup (leaf_hash, idx) VALUES ({marker}, {marker})"

    @classmethod
    def sqlite(cls, path: Path) -> DedupIndex:
        engine = create_engine(f"sqlite:///{path}")
        event.listen(engine, "connect", _sqlite_pragmas)
        return cls(engine)

    def size(self) -> int:
        with self.engine.connect() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == "size")).first()
        return int(row[0]) if row else 0

    def lookup(self, leaf_hashes: Sequence[bytes]) -> dict[bytes, int]:
        """Indices of those hashes already in the log."""
        found: dict[bytes, int] = {}
        with self.engine.connect() as conn:
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
        """Forget every hash at an index >= size and set the size (crash recovery)."""
        with self.engine.begin() as conn:
            conn.execute(dedup.delete().where(dedup.c.idx >= size))
            self._set(conn, "size", str(size))

    def record(self, pairs: Iterable[tuple[bytes, int]], new_size: int) -> None:
        """Record a batch's leaf hashes and advance the size, in one durable transaction."""
        rows = list(pairs)
        with self.engine.begin() as conn:
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
