"""Backends under test: SQLite files and the real PostgreSQL, each test in its own schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from sqlalchemy import create_engine, text

POSTGRES = os.environ.get(
    "OVERT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class PostgresSchema(NamedTuple):
    """A fresh schema: connect with ``url`` and ``connect_args`` to land in it."""

    url: str
    schema: str
    connect_args: dict[str, Any]


@pytest.fixture
def postgres() -> Iterator[PostgresSchema]:
    """A schema of its own on the test database, dropped afterwards."""
    schema = f"overt_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as err:  # no server: say so instead of passing silently
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES}: {err}")
    yield PostgresSchema(POSTGRES, schema, {"options": f"-csearch_path={schema}"})
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
