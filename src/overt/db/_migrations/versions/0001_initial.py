"""The first schema: the log's dedup index, the witness's records, the monitor's state.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["down_revision", "downgrade", "revision", "upgrade"]

revision = "0001"
down_revision: str | None = None


def upgrade() -> None:
    # overt.log.index: leaf hash -> first index, and how many entries are indexed.
    op.create_table(
        "dedup",
        sa.Column("leaf_hash", sa.LargeBinary(32), primary_key=True),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(1024), nullable=False),
    )
    # overt.witness.state: the latest cosigned checkpoint per log origin.
    op.create_table(
        "checkpoints",
        sa.Column("origin", sa.Text, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.LargeBinary, nullable=False),
    )
    # overt.monitor.state: the position and the evidence records, per state name.
    op.create_table(
        "monitor_position",
        sa.Column("state", sa.String(255), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "monitor_evidence",
        sa.Column("state", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in ("monitor_evidence", "monitor_position", "checkpoints", "meta", "dedup"):
        op.drop_table(table)
