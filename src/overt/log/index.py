"""The log's relational side: the deduplication index and durable metadata.

SQLAlchemy Core over SQLite (the embedded default; PostgreSQL can follow with
the same tables). Two tables::

    dedup(leaf_hash BLOB PRIMARY KEY, idx INTEGER)   -- leaf hash -> first index
    meta(key TEXT PRIMARY KEY, value TEXT)            -- "size": integrated tree size

The ``size`` row is advanced in the same transaction that records the batch's
leaf hashes, after the batch's tiles are durable, so on restart the index never
claims more than the tiles hold. SQLite runs in WAL mode with
``synchronous=FULL``: a commit is on disk when it returns.
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
    cur.close()


class DedupIndex:
    """Leaf hash -> index, plus the integrated size. One writer at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _metadata.create_all(engine)

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
                rows = conn.execute(
                    select(dedup.c.leaf_hash, dedup.c.idx).where(dedup.c.leaf_hash.in_(chunk))
                )
                found.update((bytes(h), int(ix)) for h, ix in rows)
        return found

    def record(self, pairs: Iterable[tuple[bytes, int]], new_size: int) -> None:
        """Record a batch's leaf hashes and advance the size, in one durable transaction."""
        rows = [{"leaf_hash": h, "idx": ix} for h, ix in pairs]
        with self.engine.begin() as conn:
            if rows:
                conn.execute(dedup.insert(), rows)
            self._set(conn, "size", str(new_size))

    @staticmethod
    def _set(conn: Any, key: str, value: str) -> None:
        updated = conn.execute(meta.update().where(meta.c.key == key).values(value=value))
        if updated.rowcount == 0:
            conn.execute(meta.insert().values(key=key, value=value))

    def close(self) -> None:
        self.engine.dispose()
