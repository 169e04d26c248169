"""Several front ends on one log: the sequence counter, pending entries, the signed checkpoint.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["down_revision", "downgrade", "revision", "upgrade"]

revision = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    # overt.log.shared: one row each (id 1); a log per schema, like its dedup table.
    op.create_table(
        "log_sequence",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("next", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "log_checkpoint",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("note", sa.LargeBinary, nullable=False),
    )
    # Entries sequenced (acknowledged) but not yet covered by the checkpoint above.
    op.create_table(
        "log_pending",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("entry", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in ("log_pending", "log_checkpoint", "log_sequence"):
        op.drop_table(table)
