"""Backends under test: SQLite files and the real PostgreSQL, each test in its own schema."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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
