"""How a shared log (overt.log.shared) keeps sequenced entries in PostgreSQL: one
``log_batches`` row per sequenced batch, duplicates of sequenced entries given their
index, whole batches integrated, and pending entries carried across the schema
migration that introduced the batches (0003 -> 0004 and back).

Two front ends in this process on the real PostgreSQL (a schema per test); the tiles
in a directory, since the object store plays no part here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from overt.db import HEAD, _alembic_config
from overt.errors import LogError
from overt.log.shared import _BARRIER, SharedLog

from ._cluster import db_url, two_front_ends
from .conftest import PostgresSchema

ORIGIN = "shared.example/batches"


@pytest.fixture(autouse=True)
def every_pass_integrates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("overt.log.shared.INTERVAL", 0.0)


@pytest.fixture
def pair(tmp_path: Path, postgres: PostgresSchema) -> Iterator[tuple[SharedLog, SharedLog]]:
    with two_front_ends(tmp_path, ORIGIN, f"file://{tmp_path}/tiles", db_url(postgres)) as pair:
        yield pair


def _rows(log: SharedLog, query: str) -> list[tuple[Any, ...]]:
    conn = log._int_db.get()
    rows = conn.execute(query).fetchall()
    conn.commit()
    return rows


def _entries(log: SharedLog) -> list[bytes]:
    return [log.entry(i) for i in range(log.published_size)]


def test_a_sequenced_batch_is_one_row_until_a_checkpoint_covers_it(
    pair: tuple[SharedLog, SharedLog],
) -> None:
    a, b = pair
    first = [b"entry %d" % i for i in range(100)]
    assert a.sequence(first) == list(range(100))
    assert b.sequence([b"other"]) == [100]
    assert _rows(a, "SELECT start FROM log_batches ORDER BY start") == [(0,), (100,)]
    assert _rows(a, "SELECT count(*) FROM dedup") == [(101,)]
    a.integrate()
    assert a.published_size == 101 and _entries(a) == [*first, b"other"]
    assert _rows(a, "SELECT count(*) FROM log_batches") == [(0,)]  # deleted with the swap


def test_a_batch_holding_sequenced_entries_gives_them_their_index_and_numbers_the_rest(
    pair: tuple[SharedLog, SharedLog],
) -> None:
    """The optimistic statement fails on the first known hash; the batch is sequenced
    again with every hash looked up, and only the new entries are numbered and stored."""
    a, b = pair
    assert a.sequence([b"e%d" % i for i in range(10)]) == list(range(10))
    batch = [b"e5", b"new 1", b"e7", b"new 2", b"new 1", b"e5"]
    assert b.sequence(batch) == [5, 10, 7, 11, 10, 5]
    assert b.sequence([b"e1", b"e2"]) == [1, 2]  # all known: no row, no index used
    assert a.sequence([b"new 3"]) == [12]
    assert _rows(a, "SELECT start FROM log_batches ORDER BY start") == [(0,), (10,), (12,)]
    a.integrate()
    assert _entries(a) == [*(b"e%d" % i for i in range(10)), b"new 1", b"new 2", b"new 3"]


def test_integration_takes_whole_batches_up_to_its_limit(
    pair: tuple[SharedLog, SharedLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every checkpoint size is a batch boundary: a pass stops before the batch that
    would take it past MAX_BATCH entries, but always takes at least one."""
    a, b = pair
    monkeypatch.setattr("overt.log.shared.MAX_BATCH", 10)
    a.sequence([b"a%d" % i for i in range(6)])
    b.sequence([b"b%d" % i for i in range(6)])
    a.sequence([b"c%d" % i for i in range(12)])
    sizes = []
    for _ in range(3):
        a.integrate()
        sizes.append(a.published_size)
    assert sizes == [6, 12, 24]
    assert _entries(a)[5:7] == [b"a5", b"b0"]


def test_pending_entries_survive_the_migration_to_batches_and_back(
    pair: tuple[SharedLog, SharedLog], postgres: PostgresSchema, tmp_path: Path
) -> None:
    """Front ends upgraded while entries wait for integration: revision 0003 kept one
    ``log_pending`` row per entry, 0004 one ``log_batches`` row per batch. Downgrading
    unpacks the batches; upgrading turns each pending row into a one-entry batch. Every
    acknowledged entry is integrated at its index afterwards."""
    a, b = pair
    a.sequence([b"one", b"two"])
    a.integrate()
    a.sequence([b"three", b"four", b"five"])
    b.sequence([b"six"])
    a.close()
    b.close()
    from alembic import command

    engine = create_engine(postgres.url, connect_args=postgres.connect_args)
    try:
        with engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0003")
        with engine.connect() as conn:
            pending = conn.execute(text("SELECT idx, entry FROM log_pending ORDER BY idx"))
            assert [(i, bytes(e)) for i, e in pending] == [
                (2, b"three"),
                (3, b"four"),
                (4, b"five"),
                (5, b"six"),
            ]
        log = SharedLog(tmp_path / "a")  # opening upgrades the schema again
        try:
            with engine.connect() as conn:
                version = conn.execute(text("SELECT version_num FROM overt_schema_version"))
                assert version.scalar_one() == HEAD
                starts = conn.execute(text("SELECT start FROM log_batches ORDER BY start"))
                assert starts.scalars().all() == [2, 3, 4, 5]
            assert log.sequence([b"seven", b"two"]) == [6, 1]
            log.integrate()
            assert _entries(log) == [b"one", b"two", b"three", b"four", b"five", b"six", b"seven"]
        finally:
            log.close()
    finally:
        engine.dispose()


def test_the_barrier_returns_only_once_the_wal_is_flushed_past_earlier_commits(
    pair: tuple[SharedLog, SharedLog],
) -> None:
    """Sequencing commits asynchronously (the counter's row lock is not held through a
    WAL flush) and acknowledges after _BARRIER: a synchronous commit of a transaction
    that wrote WAL. One that wrote none (``SELECT txid_current()``, say) returns at
    once, before anything is flushed, and would acknowledge entries a crash loses."""
    a, _ = pair
    conn = a._seq_db.get()
    assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
    conn.execute("CREATE TABLE barrier_probe (n integer)")
    unflushed = 0
    for n in range(30):
        conn.execute("INSERT INTO barrier_probe VALUES (%s)", (n,))
        lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        conn.execute(_BARRIER)
        behind = conn.execute(
            "SELECT pg_current_wal_flush_lsn() < %s::pg_lsn", (lsn[0] if lsn else None,)
        ).fetchone()
        unflushed += behind == (True,)
    assert unflushed == 0


def test_sequencing_on_the_event_loop_numbers_concurrent_batches_once(
    pair: tuple[SharedLog, SharedLog],
) -> None:
    """Two front ends, batches in flight on each at once (as ``overt log serve`` runs
    them), duplicates across and within batches: every distinct entry gets one index,
    the indices run from 0 without a gap, and the integrated log holds each entry at
    its index."""
    a, b = pair

    async def run() -> list[list[int]]:
        batches = [
            [b"batch %d entry %d" % (n, i % 7) for i in range(10)] + [b"shared %d" % (n % 3)]
            for n in range(24)
        ]
        return await asyncio.gather(
            *((a if n % 2 else b).sequence_async(batch) for n, batch in enumerate(batches))
        )

    results = asyncio.run(run())
    index: dict[bytes, int] = {}
    for n, indices in enumerate(results):
        batch = [b"batch %d entry %d" % (n, i % 7) for i in range(10)] + [b"shared %d" % (n % 3)]
        for entry, i in zip(batch, indices, strict=True):
            assert index.setdefault(entry, i) == i
    assert sorted(index.values()) == list(range(len(index))) == list(range(24 * 7 + 3))
    a.integrate()
    assert a.published_size == len(index)
    assert {a.entry(i): i for i in range(a.published_size)} == index


def test_a_lost_sequencing_connection_fails_one_batch_then_reconnects(
    pair: tuple[SharedLog, SharedLog],
) -> None:
    a, b = pair

    async def run() -> None:
        assert await a.sequence_async([b"before"]) == [0]
        conn = await a._aseq.get()
        killer = b._int_db.get()
        killer.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        killer.commit()
        with pytest.raises(LogError, match="database: cannot sequence entries"):
            await a.sequence_async([b"lost"])
        assert await a.sequence_async([b"after", b"before"]) == [1, 0]

    asyncio.run(run())


def test_an_empty_batch_takes_no_index(pair: tuple[SharedLog, SharedLog]) -> None:
    a, b = pair
    assert a.sequence([]) == []
    assert asyncio.run(b.sequence_async([])) == []
    assert a.sequence([b"first"]) == [0]
    assert _rows(a, "SELECT start FROM log_batches") == [(0,)]
