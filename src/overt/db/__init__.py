"""Databases by URL: one place that turns ``--db`` into a SQLAlchemy engine.

Accepted URLs (anything else is a :class:`~overt.errors.ConfigError`)::

    sqlite:///relative/path.db       sqlite:////absolute/path.db
    postgresql://user@host:5432/db   (psycopg 3; also postgresql+psycopg://...)

SQLite runs in WAL mode with ``synchronous=FULL``, so a commit has reached the
disk when it returns; PostgreSQL commits are durable with its default
``synchronous_commit = on``. PostgreSQL connections are checked before use
(``pool_pre_ping``), so a server restart costs one failed statement at most,
not every pooled connection. ``search_path`` in ``connect_args`` (or the URL's
``options``) puts overt's tables in a schema of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from overt.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["engine_from_url", "normalize_url"]

_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://")


def normalize_url(url: str) -> str:
    """``url`` with the driver overt uses spelled out. Raises ConfigError (another scheme)."""
    if not url.startswith(_SCHEMES):
        raise ConfigError(
            f"unsupported database URL {url.split(':', 1)[0]!r}:..."
            " (use sqlite:///PATH or postgresql://USER@HOST/DB)"
        )
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


def engine_from_url(url: str, *, connect_args: dict[str, Any] | None = None) -> Engine:
    """An engine for ``url`` with overt's durability settings. Raises ConfigError."""
    from sqlalchemy import create_engine, event

    url = normalize_url(url)
    if url.startswith("sqlite:"):
        engine = create_engine(url, connect_args=connect_args or {})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, connect_args=connect_args or {}, pool_pre_ping=True)
