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

Schema migrations (Alembic, ``overt/db/_migrations``): :func:`upgrade` brings a
database to the newest schema this overt knows, inside one transaction, and is
what every command given ``--db`` runs on start (``overt db upgrade`` runs it
by hand). The applied revision is kept in ``overt_schema_version``. A database
at a revision this overt does not know (written by a newer release) is refused
rather than guessed at. On PostgreSQL concurrent upgrades (several front ends
starting at once) serialise on an advisory lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from overt.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["HEAD", "current_revision", "engine_from_url", "normalize_url", "upgrade"]

#: The newest schema revision this overt knows (the last module in _migrations/versions).
HEAD = "0004"
# Any constant: the advisory lock key that serialises migrations on PostgreSQL.
_MIGRATION_LOCK = 0x6F76_7274_6462_0001

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
    try:
        return create_engine(url, connect_args=connect_args or {}, pool_pre_ping=True)
    except ImportError as err:  # SQLAlchemy loads the driver here
        raise ConfigError(
            f"PostgreSQL needs the psycopg driver: pip install 'overt[postgresql]' ({err})"
        ) from err


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "_migrations"))
    config.attributes["connection"] = connection
    return config


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database (None: no overt schema yet). Raises ConfigError."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": "overt_schema_version"}
            )
            revision: str | None = context.get_current_revision()
    except SQLAlchemyError as err:
        raise ConfigError(f"cannot read the database schema revision: {_reason(err)}") from err
    return revision


def upgrade(engine: Engine) -> str:
    """Migrate the database to :data:`HEAD`; returns the revision it was at ("none" if new).

    Raises ConfigError: the database cannot be reached, or is at a revision this
    overt does not know (a newer release wrote it).
    """
    from alembic import command
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            from alembic.runtime.migration import MigrationContext

            before = MigrationContext.configure(
                conn, opts={"version_table": "overt_schema_version"}
            ).get_current_revision()
            if before not in (None, *_known_revisions()):
                raise ConfigError(
                    f"the database schema is at revision {before!r}, newer than this overt"
                    f" knows ({HEAD}): upgrade overt"
                )
            if before != HEAD:
                command.upgrade(_alembic_config(conn), HEAD)
    except SQLAlchemyError as err:
        raise ConfigError(f"cannot migrate the database: {_reason(err)}") from err
    except CommandError as err:
        raise ConfigError(f"cannot migrate the database: {err}") from err
    return before or "none"


def _known_revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(Path(__file__).parent / "_migrations"))
    return [rev.revision for rev in script.walk_revisions()]


def _reason(err: BaseException) -> str:
    return str(getattr(err, "orig", None) or err).splitlines()[0]
