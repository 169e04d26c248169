"""``--db URL`` on the commands and ``overt db``: migrations by hand and on start."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from overt.cli import main as cli_main
from overt.db import HEAD
from overt.formats.note import parse_vkey
from overt.log.log import Log
from overt.monitor.state import DatabaseStore, MonitorState, log_id

from .conftest import PostgresSchema


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    try:
        code = cli_main.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_db_upgrade_by_hand_then_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'overt.db'}"
    assert run(capsys, "db", "revision", "--db", url)[1] == f"database: none; this overt: {HEAD}\n"
    assert run(capsys, "db", "upgrade", "--db", url)[1] == f"schema at revision {HEAD} (was none)\n"
    assert (
        run(capsys, "db", "upgrade", "--db", url)[1] == f"schema at revision {HEAD} (was {HEAD})\n"
    )
    with sqlite3.connect(tmp_path / "overt.db") as raw:
        assert raw.execute("SELECT version_num FROM overt_schema_version").fetchall() == [(HEAD,)]


def test_a_database_from_a_newer_overt_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'overt.db'}"
    run(capsys, "db", "upgrade", "--db", url)
    with sqlite3.connect(tmp_path / "overt.db") as raw:
        raw.execute("UPDATE overt_schema_version SET version_num = '0099'")
    code, _, err = run(capsys, "db", "upgrade", "--db", url)
    assert code == 1 and err.count("\n") == 1
    assert "revision '0099', newer than this overt" in err


def test_database_url_with_a_password_is_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "db", "upgrade", "--db", "mysql://root:hunter2@db/overt")
    assert code == 1 and "unsupported database URL 'mysql'" in err and "hunter2" not in err
    assert run(capsys, "db", "upgrade")[0] == 2  # --db is required


def test_db_upgrade_on_postgres(
    postgres: PostgresSchema, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"{postgres.url}?options=-csearch_path%3D{postgres.schema}"
    code, out, err = run(capsys, "db", "upgrade", "--db", url)
    assert code == 0, err
    assert out == f"schema at revision {HEAD} (was none)\n"
    assert (
        run(capsys, "db", "revision", "--db", url)[1] == f"database: {HEAD}; this overt: {HEAD}\n"
    )


def test_monitor_keeps_its_state_in_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Log.create(tmp_path / "log", "db.example/log") as log:
        log.add_many([b"a", b"b", b"c"])
        vkey = log.vkey
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    code, _, err = run(capsys, "monitor", tmp_path / "log", "--vkey", vkey, "--once", "--db", url)
    assert code == 0, err
    store = DatabaseStore(url, log_id(parse_vkey(vkey)))
    position = MonitorState(None, store=store).load(parse_vkey(vkey))
    store.close()
    assert position is not None and position.next == 3
    code, _, err = run(
        capsys,
        "monitor",
        tmp_path / "log",
        "--vkey",
        vkey,
        "--once",
        "--db",
        url,
        "--state",
        tmp_path,
    )
    assert code == 2 and "--state or --db" in err


def test_overt_help_does_not_import_alembic_or_sqlalchemy() -> None:
    code = (
        "import sys; from overt.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'alembic' not in sys.modules and 'sqlalchemy' not in sys.modules, 'heavy import'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()


def test_postgres_without_its_driver_is_one_clear_line(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from overt.cli.main import main\n"
        "sys.exit(main(['db', 'upgrade', '--db', 'postgresql://u@127.0.0.1:9/x']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    err = done.stderr.decode()
    assert done.returncode == 1 and err.count("\n") == 1, err
    assert "pip install 'overt[postgresql]'" in err
