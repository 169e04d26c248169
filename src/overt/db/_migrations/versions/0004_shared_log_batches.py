"""A shared log keeps each sequenced batch in one row, not one row per entry.

Revision ID: 0004
Revises: 0003

``log_batches(start, entries)``: the batch's first index and its entries packed
as an entry bundle is (each entry preceded by its length, two bytes big-endian),
with no limit on the count. It replaces ``log_pending(idx, entry)``; pending rows
of a log upgraded mid-flight become one-entry batches, so nothing acknowledged
is lost. On PostgreSQL the packed column is stored out of line uncompressed
(``STORAGE EXTERNAL``): entries are mostly signatures and digests, and
compressing them costs the sequencing transaction CPU for little gain.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["down_revision", "downgrade", "revision", "upgrade"]

revision = "0004"
down_revision: str | None = "0003"


def _pack(entry: bytes) -> bytes:
    return len(entry).to_bytes(2, "big") + entry


def upgrade() -> None:
    op.create_table(
        "log_batches",
        sa.Column("start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entries", sa.LargeBinary, nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE log_batches ALTER COLUMN entries SET STORAGE EXTERNAL")
    pending = sa.table("log_pending", sa.column("idx", sa.BigInteger), sa.column("entry"))
    batches = sa.table("log_batches", sa.column("start", sa.BigInteger), sa.column("entries"))
    rows = bind.execute(sa.select(pending.c.idx, pending.c.entry)).fetchall()
    if rows:
        bind.execute(
            batches.insert(),
            [{"start": idx, "entries": _pack(bytes(entry))} for idx, entry in rows],
        )
    op.drop_table("log_pending")


def downgrade() -> None:
    op.create_table(
        "log_pending",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
    )
    bind = op.get_bind()
    batches = sa.table("log_batches", sa.column("start", sa.BigInteger), sa.column("entries"))
    pending = sa.table("log_pending", sa.column("idx", sa.BigInteger), sa.column("entry"))
    for start, packed in bind.execute(sa.select(batches.c.start, batches.c.entries)).fetchall():
        data, pos = bytes(packed), 0
        rows: list[dict[str, object]] = []
        while pos < len(data):
            n = int.from_bytes(data[pos : pos + 2], "big")
            rows.append({"idx": start + len(rows), "entry": data[pos + 2 : pos + 2 + n]})
            pos += 2 + n
        if rows:
            bind.execute(pending.insert(), rows)
    op.drop_table("log_batches")
