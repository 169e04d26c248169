"""``overt db``: the schema of a database given by URL (Alembic migrations).

Commands given ``--db`` migrate their database on start; ``overt db upgrade``
does it by hand (before a rolling restart, or with a database user that may
change the schema while the services' user may not).
"""

from __future__ import annotations

import argparse

#: Top-level commands this module registers, with their one-line help.
COMMANDS = {
    "db": "migrate a database (--db sqlite:///... or postgresql://...) to this overt's schema",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("db", help=COMMANDS["db"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True

    p = cmds.add_parser("upgrade", help="migrate the database to the newest schema")
    p.add_argument("--db", required=True, metavar="URL", help="sqlite:///PATH or postgresql://...")
    p.set_defaults(func=_upgrade)

    p = cmds.add_parser("revision", help="print the database's schema revision and overt's")
    p.add_argument("--db", required=True, metavar="URL", help="sqlite:///PATH or postgresql://...")
    p.set_defaults(func=_revision)


def _upgrade(args: argparse.Namespace) -> int:
    from overt.db import HEAD, engine_from_url, upgrade

    engine = engine_from_url(args.db)
    try:
        before = upgrade(engine)
    finally:
        engine.dispose()
    print(f"schema at revision {HEAD} (was {before})")
    return 0


def _revision(args: argparse.Namespace) -> int:
    from overt.db import HEAD, current_revision, engine_from_url

    engine = engine_from_url(args.db)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    print(f"database: {revision or 'none'}; this overt: {HEAD}")
    return 0
