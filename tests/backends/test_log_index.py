"""The log's dedup index on SQLite and PostgreSQL by URL (``overt log init --db``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from overt.db import HEAD
from overt.errors import ConfigError
from overt.log.log import Log

from .conftest import PostgresSchema


@pytest.fixture(params=["sqlite", "postgresql"])
def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.db'}"
    pg: PostgresSchema = request.getfixturevalue("postgres")
    return f"{pg.url}?options=-csearch_path%3D{pg.schema}"


def test_duplicates_keep_their_index_across_restarts_on_every_database(
    tmp_path: Path, index_url: str
) -> None:
    """A resubmitted entry is never logged twice, whichever database holds the index."""
    entries = [b"entry %d" % i for i in range(1000)]
    with Log.create(tmp_path / "log", "index.example/log", index=index_url) as log:
        assert log.add_many(entries) == list(range(1000))
        log.flush_index()
    assert not (tmp_path / "log" / "index.db").exists()
    with Log.open(tmp_path / "log") as log:
        assert log.add_many([entries[7], b"new", entries[999]]) == [7, 1000, 999]
        assert log.size == 1001
        log.flush_index()
    engine = create_engine(index_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dedup")).scalar_one() == 1001
        assert conn.execute(text("SELECT version_num FROM overt_schema_version")).scalar() == HEAD
    engine.dispose()


def test_an_unsupported_index_url_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported database URL 'mysql'"):
        Log.create(tmp_path / "log", "index.example/log", index="mysql://x/y")
    assert not (tmp_path / "log").exists()
