"""Backends under test: SQLite files and the real PostgreSQL, each test in its own schema."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's S3 emulator (not Amazon S3) on a loopback port, for one test module."""
    pytest.importorskip("moto")
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "emulator"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.skip("moto's S3 emulator did not start")
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class PrivatePostgres:
    """A PostgreSQL server of the test's own (initdb in a temporary directory, a free
    loopback port), so that a test may restart or crash it: the machine's server is
    shared with every other test and must not be touched."""

    def __init__(self, bindir: Path, root: Path, as_user: list[str]) -> None:
        self.bindir, self.root, self.as_user = bindir, root, as_user
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._options = f"-p {self.port} -k {root} -c listen_addresses=127.0.0.1"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def initdb(self) -> None:
        subprocess.run(
            [
                *(*self.as_user, str(self.bindir / "initdb"), "-D", str(self.root / "data")),
                *("-A", "trust", "-U", "postgres", "--no-sync"),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._pg_ctl("-o", self._options, "-l", str(self.root / "log"), "-w", "start")

    def restart(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash: no shutdown checkpoint, WAL replay on start."""
        self._pg_ctl("-m", mode, "-o", self._options, "-l", str(self.root / "log"), "-w", "restart")

    def stop(self) -> None:
        self._pg_ctl("-m", "immediate", "-w", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server for this test alone; skipped without PostgreSQL's binaries."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    bindir = found[-1].parent
    root = Path(tempfile.mkdtemp(prefix="overt-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser: cannot start a private PostgreSQL")
        os.chown(root, pwd.getpwnam("postgres").pw_uid, -1)
        as_user = [runuser, "-u", "postgres", "--"]
    server = PrivatePostgres(bindir, root, as_user)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
