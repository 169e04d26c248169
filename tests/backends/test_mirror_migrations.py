"""The mirror's tables under the Alembic chain (revision 0003), on SQLite and PostgreSQL.

A mirror from before 0003 created its two tables itself (``create_all``, sizes as
``INTEGER``, no schema revision): opening it, or ``overt db upgrade``, adopts it with
its rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    create_engine,
    inspect,
    text,
)
from tests.mirror.sim import ORIGIN

from overt.cli import main as cli_main
from overt.db import HEAD, _alembic_config, current_revision, engine_from_url
from overt.formats.merkle import EMPTY_ROOT
from overt.mirror.core import PendingCheckpoint
from overt.mirror.state import MirrorState
from overt.witness.core import CosignedCheckpoint

from .conftest import PostgresSchema

# The tables exactly as overt.mirror.state created them on open before revision 0003.
_old = MetaData()
Table(
    "mirror_logs",
    _old,
    Column("origin", Text, primary_key=True),
    Column("min_index", Integer, nullable=False),
    Column("next_entry", Integer, nullable=False),
    Column("mirror_size", Integer, nullable=True),
    Column("mirror_root", LargeBinary, nullable=True),
    Column("mirror_note", LargeBinary, nullable=True),
)
Table(
    "mirror_pending",
    _old,
    Column("origin", Text, primary_key=True),
    Column("size", Integer, primary_key=True),
    Column("root_hash", LargeBinary, nullable=False),
    Column("note", LargeBinary, nullable=False),
)

# Beyond a 32-bit INTEGER: what PostgreSQL's old columns could not hold.
_BIG = 2**40 + 7


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        pg: PostgresSchema = request.getfixturevalue("postgres")
        yield f"{pg.url}?options=-csearch_path%3D{pg.schema}"


def _old_mirror_database(url: str, *, at: str | None) -> None:
    """A database as a mirror before 0003 left it: its tables and one log's rows.

    ``at``: the revision other components had already migrated it to (a witness
    sharing the database), or None (the mirror alone: no revision table).
    """
    engine = engine_from_url(url)
    try:
        with engine.begin() as conn:
            if at is not None:
                from alembic import command

                command.upgrade(_alembic_config(conn), at)
            _old.create_all(conn)
            conn.execute(
                text("INSERT INTO mirror_logs VALUES (:o, 256, 700, 512, :root, :note)").bindparams(
                    o=ORIGIN, root=EMPTY_ROOT, note=b"cosigned 512"
                )
            )
            conn.execute(
                text("INSERT INTO mirror_pending VALUES (:o, 700, :root, :note)").bindparams(
                    o=ORIGIN, root=b"\x07" * 32, note=b"pending 700"
                )
            )
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = engine_from_url(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _size_types(url: str) -> dict[str, str]:
    engine = engine_from_url(url)
    try:
        insp = inspect(engine)
        return {
            f"{table}.{col['name']}": str(col["type"])
            for table in ("mirror_logs", "mirror_pending")
            for col in insp.get_columns(table)
            if col["name"] in ("min_index", "next_entry", "mirror_size", "size")
        }
    finally:
        engine.dispose()


def test_a_new_mirror_state_is_at_the_newest_revision(url: str) -> None:
    assert _revision(url) is None
    with MirrorState(url) as state:
        assert state.add_log(ORIGIN)
    assert _revision(url) == HEAD
    assert set(_size_types(url).values()) <= {"BIGINT", "INTEGER"}  # SQLite reports INTEGER


@pytest.mark.parametrize("at", [None, "0002"], ids=["mirror-alone", "shared-with-a-witness"])
def test_a_mirror_database_made_by_create_all_is_adopted_with_its_rows(
    url: str, at: str | None
) -> None:
    _old_mirror_database(url, at=at)
    assert _revision(url) == at
    with MirrorState(url) as state:
        record = state.get(ORIGIN)
        assert record is not None
        assert (record.min_index, record.next_entry) == (256, 700)
        assert record.mirror == CosignedCheckpoint(ORIGIN, 512, EMPTY_ROOT, b"cosigned 512")
        assert record.pending == (PendingCheckpoint(ORIGIN, 700, b"\x07" * 32, b"pending 700"),)
        # The adopted columns hold 64-bit sizes (PostgreSQL's old INTEGER did not).
        state.set_next_entry(ORIGIN, _BIG)
        assert state.set_mirror(CosignedCheckpoint(ORIGIN, _BIG, EMPTY_ROOT, b"big"))
        record = state.get(ORIGIN)
        assert record is not None and record.next_entry == _BIG
        assert record.mirror is not None and record.mirror.size == _BIG
    assert _revision(url) == HEAD
    if url.startswith("postgresql"):
        assert set(_size_types(url).values()) == {"BIGINT"}


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_main.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_db_upgrade_by_hand_creates_and_adopts_the_mirror_tables(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _old_mirror_database(url, at=None)
    code, out, err = _cli(capsys, "db", "upgrade", "--db", url)
    assert code == 0, err
    assert out == f"schema at revision {HEAD} (was none)\n"
    with MirrorState(url) as state:
        record = state.get(ORIGIN)
        assert record is not None and record.next_entry == 700


def test_db_upgrade_by_hand_then_a_mirror_opens_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'overt.db'}"
    assert _cli(capsys, "db", "upgrade", "--db", url)[0] == 0
    engine: Any = create_engine(url)
    try:
        assert {"mirror_logs", "mirror_pending"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    with MirrorState(url) as state:
        assert state.add_log(ORIGIN) and state.get(ORIGIN) is not None
