"""The mirror's durable state, per mirrored log, in SQLite (default) or PostgreSQL.

Two tables, through SQLAlchemy Core::

    mirror_logs(origin TEXT PRIMARY KEY, min_index BIGINT, next_entry BIGINT,
                mirror_size BIGINT NULL, mirror_root BLOB NULL, mirror_note BLOB NULL)
    mirror_pending(origin TEXT, size BIGINT, root_hash BLOB, note BLOB,
                   PRIMARY KEY (origin, size))

``mirror_pending`` keeps the last :data:`overt.mirror.core.PENDING_KEPT`
pending checkpoints (the log's signed notes). ``next_entry`` is the stored
size: it is raised only after the tiles it covers are durable. The mirror
checkpoint (``mirror_*``) is replaced only by a larger or equal size (never
rewound) and only after the entries it covers are durable and their root
checked (:mod:`overt.mirror.server`). Every write is one transaction; a commit
is durable when it returns (SQLite: WAL with ``synchronous=FULL``;
PostgreSQL: ``synchronous_commit`` on, its default).

The tables come from the project's Alembic migrations (revision 0003,
:mod:`overt.db`), run on open like the witness's and the monitor's state, or
by hand with ``overt db upgrade``. A database that an older mirror created
itself (``CREATE TABLE IF NOT EXISTS``, no revision) is adopted with its rows
(docs/adr/0016).

One ``overt mirror serve`` writes a given state (the mirror directory's
``flock``); reads may come from anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    LargeBinary,
    MetaData,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from overt.db import engine_from_url, upgrade
from overt.errors import ConfigError
from overt.mirror.core import PENDING_KEPT, MirrorRecord, PendingCheckpoint
from overt.witness.core import CosignedCheckpoint

__all__ = ["MirrorState", "MirrorStateError"]

# The tables as :mod:`overt.db`'s migrations create them (0003); not created from here.
_metadata = MetaData()
_logs = Table(
    "mirror_logs",
    _metadata,
    Column("origin", Text, primary_key=True),
    Column("min_index", BigInteger, nullable=False),
    Column("next_entry", BigInteger, nullable=False),
    Column("mirror_size", BigInteger, nullable=True),
    Column("mirror_root", LargeBinary, nullable=True),
    Column("mirror_note", LargeBinary, nullable=True),
)
_pending = Table(
    "mirror_pending",
    _metadata,
    Column("origin", Text, primary_key=True),
    Column("size", BigInteger, primary_key=True),
    Column("root_hash", LargeBinary, nullable=False),
    Column("note", LargeBinary, nullable=False),
)


class MirrorStateError(ConfigError):
    """The mirror's state database cannot be opened, read or written."""


class MirrorState:
    """Per-log records of a mirror, in the database ``url`` (``sqlite:///PATH`` or ``postgresql://``).

    Raises:
        MirrorStateError: on construction, the database cannot be opened.
    """

    def __init__(self, url: str, *, connect_args: dict[str, Any] | None = None) -> None:
        if url.startswith("sqlite:///"):
            parent = Path(url.removeprefix("sqlite:///")).parent
            if not parent.is_dir():
                raise MirrorStateError(f"no directory for the mirror state: {parent}")
        try:
            self.engine: Engine = engine_from_url(url, connect_args=connect_args)
        except ConfigError as err:
            raise MirrorStateError(str(err)) from err
        try:
            upgrade(self.engine)  # Alembic: overt/db/_migrations (0003: the mirror's tables)
        except ConfigError as err:
            self.engine.dispose()
            raise MirrorStateError(f"cannot open the mirror state: {err}") from err

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> MirrorState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads ---------------------------------------------------------------

    def records(self) -> dict[str, MirrorRecord]:
        """Every mirrored log's record, by origin. Raises MirrorStateError."""
        try:
            with self.engine.connect() as conn:
                logs = conn.execute(select(_logs)).all()
                pending = conn.execute(
                    select(_pending).order_by(_pending.c.origin, _pending.c.size)
                ).all()
        except SQLAlchemyError as err:
            raise MirrorStateError(f"cannot read the mirror state: {err}") from err
        by_origin: dict[str, list[PendingCheckpoint]] = {}
        for row in pending:
            by_origin.setdefault(row.origin, []).append(
                PendingCheckpoint(row.origin, row.size, bytes(row.root_hash), bytes(row.note))
            )
        out: dict[str, MirrorRecord] = {}
        for row in logs:
            mirror = None
            if row.mirror_size is not None:
                mirror = CosignedCheckpoint(
                    row.origin, row.mirror_size, bytes(row.mirror_root), bytes(row.mirror_note)
                )
            out[row.origin] = MirrorRecord(
                row.origin,
                row.min_index,
                row.next_entry,
                tuple(by_origin.get(row.origin, ())[-PENDING_KEPT:]),
                mirror,
            )
        return out

    def get(self, origin: str) -> MirrorRecord | None:
        """One log's record, or None. Raises MirrorStateError."""
        return self.records().get(origin)

    # -- writes ----------------------------------------------------------------

    def _write(self, what: str, statements: list[tuple[Any, Any]]) -> list[int]:
        try:
            with self.engine.begin() as conn:
                return [conn.execute(stmt, params).rowcount for stmt, params in statements]
        except SQLAlchemyError as err:
            raise MirrorStateError(f"cannot write the mirror state ({what}): {err}") from err

    def add_log(self, origin: str, min_index: int = 0) -> bool:
        """Start mirroring ``origin`` (no-op if it is mirrored); True if added.

        Raises MirrorStateError.
        """
        if self.get(origin) is not None:
            return False
        self._write(
            "add log",
            [(insert(_logs), {"origin": origin, "min_index": min_index, "next_entry": 0})],
        )
        return True

    def set_pending(self, old: MirrorRecord, new: MirrorRecord) -> None:
        """Store ``new.pending`` (its newest checkpoint added, the oldest beyond the kept
        number dropped). ``old`` is the record it was decided on. Raises MirrorStateError."""
        latest = new.pending[-1]
        keep = [p.size for p in new.pending]
        self._write(
            "pending checkpoint",
            [
                (
                    delete(_pending).where(
                        _pending.c.origin == latest.origin, _pending.c.size == latest.size
                    ),
                    None,
                ),
                (
                    insert(_pending),
                    {
                        "origin": latest.origin,
                        "size": latest.size,
                        "root_hash": latest.root_hash,
                        "note": latest.note,
                    },
                ),
                (
                    delete(_pending).where(
                        _pending.c.origin == latest.origin, _pending.c.size.not_in(keep)
                    ),
                    None,
                ),
            ],
        )

    def set_next_entry(self, origin: str, next_entry: int) -> None:
        """Record that entries up to ``next_entry`` are durably stored (never lowers it).

        Raises MirrorStateError.
        """
        self._write(
            "next entry",
            [
                (
                    update(_logs)
                    .where(_logs.c.origin == origin, _logs.c.next_entry < next_entry)
                    .values(next_entry=next_entry),
                    None,
                )
            ],
        )

    def set_mirror(self, mirror: CosignedCheckpoint) -> bool:
        """Replace the mirror checkpoint by ``mirror`` unless it is larger; True if replaced.

        Raises MirrorStateError.
        """
        stmt = (
            update(_logs)
            .where(
                _logs.c.origin == mirror.origin,
                (_logs.c.mirror_size.is_(None)) | (_logs.c.mirror_size <= mirror.size),
            )
            .values(mirror_size=mirror.size, mirror_root=mirror.root_hash, mirror_note=mirror.note)
        )
        (count,) = self._write("mirror checkpoint", [(stmt, None)])
        return count == 1

    def set_min_index(self, origin: str, min_index: int) -> None:
        """Set the minimum index (pruning). Raises MirrorStateError."""
        self._write(
            "minimum index",
            [(update(_logs).where(_logs.c.origin == origin).values(min_index=min_index), None)],
        )
