"""The mirror's records join the chain: per-log state and pending checkpoints.

Revision ID: 0003
Revises: 0002

Mirrors before this revision created ``mirror_logs`` and ``mirror_pending``
themselves on open (``CREATE TABLE IF NOT EXISTS``, sizes as ``INTEGER``). Such
a database is adopted as it is, its rows kept: the tables are created only when
missing, and on PostgreSQL the size columns of adopted tables are widened to
``BIGINT`` (SQLite's ``INTEGER`` is already 64-bit).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["down_revision", "downgrade", "revision", "upgrade"]

revision = "0003"
down_revision: str | None = "0002"

# Size columns: a log's size or an entry index (64-bit, as in the log's tables).
_SIZES = {"mirror_logs": ("min_index", "next_entry", "mirror_size"), "mirror_pending": ("size",)}


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    # overt.mirror.state: one row per mirrored log (next_entry: the stored size;
    # mirror_*: the mirror checkpoint it cosigned, never rewound).
    if "mirror_logs" not in existing:
        op.create_table(
            "mirror_logs",
            sa.Column("origin", sa.Text, primary_key=True),
            sa.Column("min_index", sa.BigInteger, nullable=False),
            sa.Column("next_entry", sa.BigInteger, nullable=False),
            sa.Column("mirror_size", sa.BigInteger, nullable=True),
            sa.Column("mirror_root", sa.LargeBinary, nullable=True),
            sa.Column("mirror_note", sa.LargeBinary, nullable=True),
        )
    # The log's last pending checkpoints (signed notes), per origin.
    if "mirror_pending" not in existing:
        op.create_table(
            "mirror_pending",
            sa.Column("origin", sa.Text, primary_key=True),
            sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("root_hash", sa.LargeBinary, nullable=False),
            sa.Column("note", sa.LargeBinary, nullable=False),
        )
    if bind.dialect.name == "postgresql":
        for table, columns in _SIZES.items():
            if table in existing:
                for column in columns:
                    op.alter_column(table, column, type_=sa.BigInteger, existing_type=sa.Integer)


def downgrade() -> None:
    for table in ("mirror_pending", "mirror_logs"):
        op.drop_table(table)
