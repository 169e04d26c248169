"""Alembic's environment: run on the connection :func:`overt.db.upgrade` hands over.

No ``alembic.ini`` and no URL here: the caller opened the connection (and
holds the migration lock), so migrations run inside its transaction.
"""

from __future__ import annotations

from alembic import context

__all__: list[str] = []

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table="overt_schema_version")
with context.begin_transaction():
    context.run_migrations()
