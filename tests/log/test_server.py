"""The HTTP API: tlog-tiles reads, POST /add, and bad input never being a 500."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from overt._asgi import make_server
from overt.formats import merkle
from overt.formats.note import parse_vkey
from overt.formats.proof import parse_proof, verify_proof
from overt.log.client import HTTPSource, LogClient, verify_log
from overt.log.log import Log
from overt.log.server import LogApp

ORIGIN = "http.example/log"


class Served:
    def __init__(self, log: Log, url: str) -> None:
        self.log = log
        self.url = url
        self.token = log.token


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    log = Log.create(tmp_path / "log", ORIGIN)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(LogApp(log), "127.0.0.1", port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    yield Served(log, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(10)
    sock.close()
    log.close()


def test_add_returns_index_and_verifiable_proof(served: Served) -> None:
    with LogClient(served.url, served.token) as client:
        index, raw = client.add(b"hello overt")
    assert index == 0
    proof = parse_proof(raw)
    verify_proof(proof, merkle.leaf_hash(b"hello overt"), parse_vkey(served.log.vkey), ORIGIN)


def test_concurrent_writers_are_batched_and_all_verify(served: Served) -> None:
    items = [f"concurrent {i}".encode() for i in range(300)]
    with LogClient(served.url, served.token) as client, ThreadPoolExecutor(32) as pool:
        results = list(pool.map(client.add, items))
    assert sorted(i for i, _ in results) == list(range(300))
    verifier = parse_vkey(served.log.vkey)
    for item, (_, raw) in zip(items, results, strict=True):
        verify_proof(parse_proof(raw), merkle.leaf_hash(item), verifier, ORIGIN)
    with HTTPSource(served.url) as source:
        result = verify_log(source, verifier, ORIGIN)
    assert result.entries == 300


def test_duplicate_add_returns_existing_index(served: Served) -> None:
    with LogClient(served.url, served.token) as client:
        assert client.add(b"a")[0] == 0
        assert client.add(b"b")[0] == 1
        assert client.add(b"a")[0] == 0


def test_tiles_and_cache_headers(served: Served) -> None:
    served.log.add_many([b"x%d" % i for i in range(300)])
    with httpx.Client() as http:
        r = http.get(f"{served.url}/checkpoint")
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert "max-age=2" in r.headers["cache-control"]
        r = http.get(f"{served.url}/tile/0/000")
        assert r.status_code == 200 and len(r.content) == 8192
        assert "immutable" in r.headers["cache-control"]
        assert r.headers["content-type"] == "application/octet-stream"
        r = http.get(f"{served.url}/tile/0/001.p/44")
        assert r.status_code == 200 and len(r.content) == 44 * 32
        r = http.get(f"{served.url}/tile/1/000.p/1")
        assert r.status_code == 200 and r.content == merkle.root_hash(
            [http.get(f"{served.url}/tile/0/000").content[i : i + 32] for i in range(0, 8192, 32)]
        )
        r = http.get(f"{served.url}/tile/entries/001.p/44", headers={"accept-encoding": "gzip"})
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        assert r.content.startswith(b"\x00\x04x256")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/tile/0/1", 400),
        ("GET", "/tile/0/001.p/0", 400),
        ("GET", "/tile/0/001.p/256", 400),
        ("GET", "/tile/00/001", 400),
        ("GET", "/tile/0/x1/001", 400),
        ("GET", "/tile/entries/0001", 400),
        ("GET", "/tile/0/005", 404),
        ("GET", "/tile/0/000.p/9", 404),
        ("GET", "/tile/entries/000.p/9", 404),
        ("GET", "/nothing", 404),
        ("GET", "/add", 405),
        ("POST", "/checkpoint", 405),
    ],
)
def test_bad_reads_get_clear_statuses(served: Served, method: str, path: str, status: int) -> None:
    served.log.add_many([b"a", b"b"])
    r = httpx.request(method, served.url + path)
    assert r.status_code == status, r.text


def test_add_rejects_bad_input(served: Served) -> None:
    url = f"{served.url}/add"
    auth = {"authorization": f"Bearer {served.token}"}
    assert httpx.post(url, content=b"x").status_code == 401
    assert (
        httpx.post(url, content=b"x", headers={"authorization": "Bearer wrong"}).status_code == 401
    )
    assert httpx.post(url, content=b"x", headers={"authorization": served.token}).status_code == 401
    assert httpx.post(url, content=b"", headers=auth).status_code == 400
    assert httpx.post(url, content=b"x" * 65536, headers=auth).status_code == 413
    assert httpx.post(url, content=b"x" * 65535, headers=auth).status_code == 200
    assert served.log.sequenced_size == 1


def test_add_without_proof_returns_index_once_durable(served: Served) -> None:
    auth = {"authorization": f"Bearer {served.token}"}
    r = httpx.post(f"{served.url}/add", content=b"fast", headers=auth)
    assert r.status_code == 200 and r.text == "0\n" and r.headers["overt-index"] == "0"
    # The entry is in the journal now, and integrated shortly after.
    with LogClient(served.url, served.token) as client:
        index, raw = client.add(b"fast")
    assert index == 0
    verify_proof(parse_proof(raw), merkle.leaf_hash(b"fast"), parse_vkey(served.log.vkey), ORIGIN)
