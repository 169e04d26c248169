"""Shared fixtures: where the reference data lives, and servers on 127.0.0.1.

The small third-party vectors (RFC 6962 proofs, Rekor bundles, C2SP spec examples) are in
``tests/data`` (origin and licences: ``tests/data/README.md``), so a fresh clone passes alone.
The large YARA rule corpora are not redistributed: they are read from ``$OVERT_CORPORA`` or
``../shared/corpora/yara`` beside the checkout; without them their tests skip, and fail under
``CI=true``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "data"
CORPORA = ROOT.parent / "shared" / "corpora" / "yara"


@pytest.fixture(scope="session")
def reference() -> Path:
    """The project's own copy of the reference vectors and spec texts (``tests/data``)."""
    if not (REFERENCE / "README.md").is_file():
        pytest.fail(f"reference data missing at {REFERENCE} (see tests/data/README.md)")
    return REFERENCE


@pytest.fixture(scope="session")
def corpora() -> Path:
    """The real YARA rule corpora (not redistributed): skip without them, fail under CI=true."""
    where = Path(os.environ.get("OVERT_CORPORA") or CORPORA)
    if not where.is_dir():
        reason = (
            f"the YARA rule corpora are not at {where}: set OVERT_CORPORA to a folder holding "
            "reversinglabs/ and signature-base/ (see tests/data/README.md)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return where


class Server:
    """A uvicorn server on 127.0.0.1 in a thread; can be stopped and restarted on its port."""

    def __init__(self, app: Any) -> None:
        self.app = app
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="error", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(10)
            self.server = None

    def close(self) -> None:
        self.stop()


@pytest.fixture
def asgi_server() -> Iterator[Callable[[Any], Server]]:
    """Start ASGI apps on 127.0.0.1 in threads; all are stopped at the end of the test."""
    servers: list[Server] = []

    def start(app: Any) -> Server:
        server = Server(app)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
