"""The dedup index on PostgreSQL (the same SQLAlchemy Core tables as SQLite)."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text

from overt.log.index import DedupIndex

URL = os.environ.get("OVERT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def index() -> DedupIndex:
    schema = f"overt_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as err:  # no server: the suite says so instead of passing silently
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {URL}: {err}")
    engine = create_engine(URL, connect_args={"options": f"-csearch_path={schema}"})
    idx = DedupIndex(engine)
    yield idx
    idx.close()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def test_record_lookup_truncate_on_postgres(index: DedupIndex) -> None:
    hashes = [bytes([i]) * 32 for i in range(10)]
    assert index.size() == 0
    index.record([(h, i) for i, h in enumerate(hashes)], 10)
    assert index.size() == 10
    assert index.lookup([*hashes[3:5], b"\xff" * 32]) == {hashes[3]: 3, hashes[4]: 4}
    index.truncate(4)
    assert index.size() == 4
    assert index.lookup(hashes) == {h: i for i, h in enumerate(hashes[:4])}


def test_a_lost_postgres_connection_is_a_log_error_and_the_index_goes_on(
    index: DedupIndex,
) -> None:
    from overt.errors import LogError

    hashes = [bytes([i]) * 32 for i in range(4)]
    index.record([(h, i) for i, h in enumerate(hashes[:2])], 2)
    # The server drops the index's connection (restart, failover, idle timeout).
    with index.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    admin = create_engine(URL)
    with admin.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()
    with pytest.raises(LogError, match="dedup index"):
        index.record([(h, i) for i, h in enumerate(hashes[2:], 2)], 4)
    # Nothing half-written; a repeated commit (idempotent) completes it.
    assert index.size() == 2
    index.record([(h, i) for i, h in enumerate(hashes)], 4)
    assert index.size() == 4
    assert index.lookup(hashes) == {h: i for i, h in enumerate(hashes)}
