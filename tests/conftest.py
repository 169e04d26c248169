"""Shared fixtures: where the reference material in ``../shared`` lives."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"reference material not found at {SHARED} (see SOURCES.md)")
    return SHARED


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
