"""Hostile HTTP peers: they must not stop a server, nor a client.

Servers (the log and the witness, under :func:`overt._asgi.make_server`) are
attacked with raw sockets: slowloris headers and bodies, idle connections,
huge headers, more connections than allowed, a too-large Content-Length, and a
bounded fuzz of methods, paths, queries, headers and bodies (never a 500,
never a change to stored data on refusal).

Clients (the log client, the witness client, the monitor's witness reads, and
through :class:`~overt.log.client.HTTPSource` the monitor and the gate) are
pointed at a hostile server that streams forever, lies about its length,
sends a gzip bomb, or trickles: each must stop at the format's cap, within its
deadline, with its typed error.
"""

from __future__ import annotations

import contextlib
import gzip
import random
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt._asgi import ServerLimits, make_server
from overt.errors import LogError
from overt.formats.checkpoint import Checkpoint, sign_checkpoint
from overt.formats.cosignature import CosignatureSigner
from overt.formats.merkle import MemoryTree, leaf_hash
from overt.formats.note import Ed25519Signer
from overt.formats.witness import AddCheckpointRequest, format_add_checkpoint
from overt.log.client import HTTPSource, LogClient
from overt.log.log import Log
from overt.log.server import LogApp
from overt.monitor.gossip import HTTPWitness
from overt.publish.publisher import _read_metrics
from overt.witness.client import WitnessClient
from overt.witness.core import known_logs
from overt.witness.errors import WitnessUnavailableError
from overt.witness.server import WitnessApp
from overt.witness.state import WitnessState

ORIGIN = "limits.example/log"
FAST = ServerLimits(request_timeout=1.0, keep_alive=0.5)


# --- servers under test -------------------------------------------------------------------


@dataclass
class Target:
    """A server under test: where it listens, how to make a valid request, what it stores."""

    kind: str
    port: int
    server: Any
    valid: bytes  # a complete valid request without the final CRLF of its head
    stored: Callable[[], object]

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        sock = socket.socket()
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", self.port))
        return sock

    def open_connections(self) -> int:
        return len(self.server.server_state.connections)


@contextlib.contextmanager
def serving(app: Any, limits: ServerLimits) -> Iterator[tuple[int, Any]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(app, "127.0.0.1", port, limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    try:
        yield port, server
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class WitnessedLog:
    """A log key and tree, to make valid add-checkpoint bodies for a witness."""

    def __init__(self) -> None:
        self.signer = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
        self.tree = MemoryTree()

    def body(self, grow: int) -> bytes:
        old = self.tree.size
        for i in range(grow):
            self.tree.append(leaf_hash(b"entry %d" % (old + i)))
        size = self.tree.size
        note = sign_checkpoint(Checkpoint(ORIGIN, size, self.tree.root(size)), self.signer)
        proof = () if old == 0 else tuple(self.tree.consistency_proof(old, size))
        return format_add_checkpoint(AddCheckpointRequest(old, proof, note))


@contextlib.contextmanager
def log_target(tmp_path: Path, limits: ServerLimits) -> Iterator[Target]:
    log = Log.create(tmp_path / "log", ORIGIN)
    try:
        with serving(LogApp(log), limits) as (port, server):
            valid = (
                b"POST /add HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n"
                b"authorization: Bearer " + log.token.encode() + b"\r\n\r\nentry"
            )
            yield Target("log", port, server, valid, lambda: log.sequenced_size)
    finally:
        log.close()


@contextlib.contextmanager
def witness_target(tmp_path: Path, limits: ServerLimits) -> Iterator[Target]:
    source = WitnessedLog()
    signer = CosignatureSigner("w.example/witness", Ed25519PrivateKey.generate())
    state = WitnessState(tmp_path / "state.db")
    app = WitnessApp(state, known_logs([source.signer.verifier()]), signer)
    body = source.body(3)
    try:
        with serving(app, limits) as (port, server):
            valid = (
                b"POST /add-checkpoint HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n"
                % len(body)
                + body
            )
            yield Target("witness", port, server, valid, lambda: state.get(ORIGIN))
    finally:
        state.close()


TARGETS = {"log": log_target, "witness": witness_target}


@pytest.fixture(params=sorted(TARGETS))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    with TARGETS[request.param](tmp_path, FAST) as t:
        yield t


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or ``limit`` seconds); and when it closed."""
    start = time.monotonic()
    data = b""
    sock.settimeout(0.05)
    while time.monotonic() - start < limit:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, time.monotonic() - start
        if not chunk:
            return data, time.monotonic() - start
        data += chunk
    raise AssertionError(f"still open after {limit} s; received {data[:80]!r}")


def get_checkpoint_ok(target: Target, source: str = "127.0.0.1") -> bool:
    path = b"/checkpoint" if target.kind == "log" else b"/logs"
    with target.connect(source) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        reply, _ = read_until_closed(sock, 5)
    return reply.startswith(b"HTTP/1.1 200")


# --- 1. connection limits ---------------------------------------------------------------


def test_slowloris_header_is_closed_after_the_request_timeout(target: Target) -> None:
    with target.connect() as sock:
        sock.sendall(b"GET /checkpoint HTTP/1.1\r\nhost: t\r\n")
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < 4 and not closed:
            try:
                sock.sendall(b"x-slow: 1\r\n")  # a header line every 0.2 s, never the end
            except OSError:
                closed = True
            time.sleep(0.2)
        reply, _ = read_until_closed(sock, 4)
        elapsed = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408"), reply[:80]
    assert 0.8 < elapsed < 4.5  # 1 s, swept every 0.25 s; a loaded machine is slower
    assert get_checkpoint_ok(target)


def test_idle_connection_that_sends_nothing_is_closed(target: Target) -> None:
    with target.connect() as sock:
        reply, when = read_until_closed(sock, 6)
    assert reply.startswith(b"HTTP/1.1 408") and 0.8 < when < 4


def test_slow_body_is_cut_off_and_nothing_is_stored(target: Target) -> None:
    before = target.stored()
    head, _, body = target.valid.partition(b"\r\n\r\n")
    with target.connect() as sock:
        sock.sendall(head + b"\r\n\r\n" + body[:2])  # the rest of the body never comes
        _, when = read_until_closed(sock, 6)
    assert 0.8 < when < 4
    assert target.stored() == before


def test_idle_keep_alive_connection_is_closed(target: Target) -> None:
    path = b"/checkpoint" if target.kind == "log" else b"/logs"
    with target.connect() as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nhost: t\r\n\r\n")
        reply, when = read_until_closed(sock, 6)
    assert reply.startswith(b"HTTP/1.1 200") and when < 3  # keep-alive 0.5 s


def test_huge_header_is_refused_quickly_with_bounded_memory(target: Target) -> None:
    chunk = b"a" * 65536
    tracemalloc.start()
    try:
        with target.connect() as sock:
            sock.sendall(b"GET /checkpoint HTTP/1.1\r\nhost: t\r\nx-big: ")
            sent = 0
            start = time.monotonic()
            with contextlib.suppress(OSError):
                while sent < 8 << 20:  # the server must refuse long before 8 MiB
                    sock.sendall(chunk)
                    sent += len(chunk)
            try:
                reply, _ = read_until_closed(sock, 3)
            except OSError:
                reply = b""
            elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent < 8 << 20, "the server read 8 MiB of one header"
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431"), reply[:80]
    assert elapsed < 3 and peak < 4 << 20
    assert get_checkpoint_ok(target)


def test_connections_beyond_the_caps_are_closed_at_once_and_others_are_served(
    tmp_path: Path,
) -> None:
    limits = ServerLimits(request_timeout=30.0, max_connections=6, max_connections_per_ip=3)
    with log_target(tmp_path, limits) as target, contextlib.ExitStack() as held:
        hog = [held.enter_context(target.connect("127.0.0.1")) for _ in range(3)]
        # One address may not take more than its share: refused, not left open.
        with target.connect("127.0.0.1") as extra:
            reply, when = read_until_closed(extra, 3)
        assert reply.startswith(b"HTTP/1.1 503") and when < 2
        # Another address is still served.
        assert get_checkpoint_ok(target, "127.0.0.2")
        # Fill the server: 3 + 3 from two addresses, all idle.
        [held.enter_context(target.connect("127.0.0.3")) for _ in range(3)]
        time.sleep(0.2)
        assert target.open_connections() == 6
        for _ in range(20):  # the N+1-th, many times: never held open
            with target.connect("127.0.0.4") as extra:
                reply, when = read_until_closed(extra, 3)
            assert reply.startswith(b"HTTP/1.1 503") and when < 2
        assert target.open_connections() == 6
        for sock in hog:
            sock.close()
        time.sleep(0.2)
        assert get_checkpoint_ok(target, "127.0.0.4")


def test_too_large_content_length_gets_413_before_the_body_is_sent(target: Target) -> None:
    before = target.stored()
    head, _, _ = target.valid.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"content-length")]
    with target.connect() as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\ncontent-length: 1000000000\r\n\r\n")
        reply, when = read_until_closed(sock, 3)  # no body sent at all
    assert reply.startswith(b"HTTP/1.1 413"), reply[:80]
    assert b"connection: close" in reply.lower() and when < 2
    assert target.stored() == before


def test_peer_that_never_reads_a_large_reply_is_disconnected(tmp_path: Path) -> None:
    log = Log.create(tmp_path / "log", ORIGIN)
    try:
        log.add_many([bytes([i]) * 60000 for i in range(256)])  # a 15 MiB entry bundle
        with serving(LogApp(log), FAST) as (port, server):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            with sock:
                sock.connect(("127.0.0.1", port))
                sock.sendall(b"GET /tile/entries/000 HTTP/1.1\r\nhost: t\r\n\r\n")
                time.sleep(0.3)
                assert len(server.server_state.connections) == 1
                deadline = time.monotonic() + 4  # timeout 1 s, swept every 0.25 s
                while server.server_state.connections and time.monotonic() < deadline:
                    time.sleep(0.1)
                assert not server.server_state.connections, "a reader that never reads holds on"
    finally:
        log.close()


def test_pipelining_flood_is_cut_off_with_bounded_memory(target: Target) -> None:
    path = b"/checkpoint" if target.kind == "log" else b"/logs"
    request = b"GET " + path + b" HTTP/1.1\r\nhost: t\r\n\r\n"
    with target.connect() as sock:  # a few pipelined requests are fine
        sock.sendall(request * 8 + request.replace(b"host: t", b"host: t\r\nconnection: close"))
        replies, _ = read_until_closed(sock, 3)
    assert replies.count(b"HTTP/1.1 200") == 9
    tracemalloc.start()
    try:
        with target.connect() as sock:  # 256 KiB of them in one go: refused
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            with contextlib.suppress(OSError):
                sock.sendall(request * (256 * 1024 // len(request)))
            with contextlib.suppress(OSError):
                read_until_closed(sock, 3)
        time.sleep(0.3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20 and target.open_connections() == 0
    assert get_checkpoint_ok(target)


def test_gzip_of_large_bundles_does_not_stall_other_requests(tmp_path: Path) -> None:
    log = Log.create(tmp_path / "log", ORIGIN)
    try:
        rng = random.Random(1)
        log.add_many([rng.randbytes(60000) for _ in range(256)])  # 15 MiB, incompressible
        with serving(LogApp(log), ServerLimits()) as (port, _):
            url = f"http://127.0.0.1:{port}"
            gz = {"accept-encoding": "gzip"}

            def fetch_bundle() -> None:
                with httpx.Client(timeout=30) as c:
                    c.get(f"{url}/tile/entries/000", headers=gz).raise_for_status()

            threads = [threading.Thread(target=fetch_bundle) for _ in range(4)]
            with httpx.Client(timeout=30) as client:
                client.get(f"{url}/checkpoint")  # connected
                for t in threads:
                    t.start()
                worst = 0.0
                while any(t.is_alive() for t in threads):
                    start = time.monotonic()
                    client.get(f"{url}/checkpoint").raise_for_status()
                    worst = max(worst, time.monotonic() - start)
                    time.sleep(0.01)
            for t in threads:
                t.join()
        # Compressing on the event loop stalled /checkpoint for 1.0-1.4 s here; 0.2 s now.
        assert worst < 0.8, f"/checkpoint took {worst:.2f} s while bundles were compressed"
    finally:
        log.close()


def test_a_flood_of_bad_requests_does_not_flood_the_log(target: Target) -> None:
    import logging

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("uvicorn.error").addHandler(handler)
    try:
        for _ in range(30):
            with target.connect() as sock:
                sock.sendall(b"GET /\x00 HTTP/1.1\r\n\r\n")
                reply, _ = read_until_closed(sock, 3)
                assert reply.startswith(b"HTTP/1.1 400")
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    assert len([m for m in seen if "Invalid HTTP request" in m]) <= 1, seen


def test_limits_out_of_range_are_refused() -> None:
    from overt.errors import ConfigError

    with pytest.raises(ConfigError, match="request_timeout"):
        ServerLimits(request_timeout=0)
    with pytest.raises(ConfigError, match="max_connections"):
        ServerLimits(max_connections=0)


# --- 2. no input gets a 500 -----------------------------------------------------------------


@pytest.mark.parametrize("query", [b"proof=%ff", b"proof=%FF%FE", b"proof=2", b"x=1", b"proof"])
def test_add_with_a_bad_query_is_refused_before_the_entry_is_stored(
    tmp_path: Path, query: bytes
) -> None:
    with log_target(tmp_path, FAST) as target:
        request = target.valid.replace(b"POST /add ", b"POST /add?" + query + b" ", 1)
        with target.connect() as sock:
            sock.sendall(request.replace(b"host: t", b"host: t\r\nconnection: close"))
            reply, _ = read_until_closed(sock, 3)
        assert reply.startswith(b"HTTP/1.1 400"), reply[:80]
        assert target.stored() == 0


METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"FOO", b"get"]
PATHS = [
    b"/",
    b"/add",
    b"/add-checkpoint",
    b"/checkpoint",
    b"/checkpoint/",
    b"/checkpoint/%ff",
    b"/checkpoint/%00",
    b"/checkpoint/limits.example%2Flog",
    b"/logs",
    b"/metrics",
    b"/tile/0/000",
    b"/tile/0/x000",
    b"/tile/entries/000.p/1",
    b"/tile/../log.skey",
    b"/tile/0/%2e%2e/000",
    b"//checkpoint",
    b"/%ff%fe",
    b"/" + b"a" * 3000,
    b"/" + b"0" * 64 + b"/checkpoint",
    b"*",
]
QUERIES = [b"", b"?", b"?proof=1", b"?proof=%ff", b"?%ff=%fe", b"?a=1&a=2", b"?=", b"?&&&"]
HEADERS = [
    b"",
    b"authorization: Bearer \xff\xfe\r\n",
    b"authorization: bearer\r\n",
    b"authorization: Basic dXNlcjpwYXNz\r\n",
    b"accept-encoding: \xff, gzip\r\n",
    b"content-type: \xff\r\n",
    b"x-" + b"h" * 1000 + b": v\r\n",
    b"expect: 100-continue\r\n",
    b"transfer-encoding: chunked\r\n",
    b"upgrade: websocket\r\nconnection: upgrade\r\n",
]


def fuzzed_requests(valid: bytes, seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    head, _, body = valid.partition(b"\r\n\r\n")
    auth = [line for line in head.split(b"\r\n") if line.startswith(b"authorization")]
    for _ in range(count):
        headers = rng.choice(HEADERS)
        if auth and rng.random() < 0.5:
            headers += auth[0] + b"\r\n"
        payload = rng.choice(
            [b"", body, rng.randbytes(rng.randrange(1, 200)), body[: rng.randrange(len(body))]]
        )
        if payload and rng.random() < 0.5:
            mutated = bytearray(payload)
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            payload = bytes(mutated)
        if b"chunked" in headers:
            framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload) if payload else b"0\r\n\r\n"
        else:
            headers += b"content-length: %d\r\n" % len(payload)
            framed = payload
        target = rng.choice(PATHS) + rng.choice(QUERIES)
        yield (
            rng.choice(METHODS)
            + b" "
            + target
            + b" HTTP/1.1\r\nhost: t\r\nconnection: close\r\n"
            + headers
            + b"\r\n"
            + framed
        )


def test_fuzzed_requests_never_get_a_500_nor_change_stored_data_when_refused(
    target: Target,
) -> None:
    for i, request in enumerate(fuzzed_requests(target.valid, seed=8, count=250)):
        before = target.stored()
        with target.connect() as sock:
            sock.sendall(request)
            try:
                reply, _ = read_until_closed(sock, 5)
            except OSError:
                reply = b""
        status = reply[9:12]
        assert not status.startswith(b"5"), (i, request[:200], reply[:200])
        if status != b"200":
            assert target.stored() == before, (i, request[:200], reply[:200])
    assert get_checkpoint_ok(target)


# --- 3. clients read at most what the format allows -----------------------------------------


class Hostile:
    """A raw HTTP server that answers every request with ``reply(sock)``."""

    def __init__(self, reply: Callable[[socket.socket], None]) -> None:
        self.reply = reply
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            self.reply(conn)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


STREAMED = 256 << 20  # what a hostile server sends at most before giving up (256 MiB)


def stream_forever(head: bytes) -> Callable[[socket.socket], None]:
    def reply(conn: socket.socket) -> None:
        conn.sendall(head)
        block = b"A" * 65536
        for _ in range(STREAMED // len(block)):
            conn.sendall(block)

    return reply


def chunked_forever(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    block = b"10000\r\n" + b"A" * 65536 + b"\r\n"
    for _ in range(STREAMED >> 16):
        conn.sendall(block)


def trickle(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n")
    for _ in range(2000):
        conn.sendall(b"A")
        time.sleep(0.01)


_BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)


def gzip_bomb(conn: socket.socket) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(_BOMB)
        + _BOMB
    )


HOSTILE = {
    "no length, streams forever": stream_forever(b"HTTP/1.1 200 OK\r\n\r\n"),
    "chunked forever": chunked_forever,
    "lying length": stream_forever(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000000\r\n\r\n"),
    "error status, endless reason": stream_forever(b"HTTP/1.1 500 Oops\r\n\r\n"),
    "gzip bomb": gzip_bomb,
}

CLIENT_CALLS: dict[str, tuple[type[Exception], Callable[[str], object]]] = {
    "log checkpoint": (LogError, lambda url: HTTPSource(url, timeout=2).read("checkpoint")),
    "log tile": (LogError, lambda url: HTTPSource(url, timeout=2).read("tile/0/000")),
    "log bundle": (LogError, lambda url: HTTPSource(url, timeout=2).read("tile/entries/000")),
    "log add": (LogError, lambda url: LogClient(url, "t", timeout=2).sequence(b"entry")),
    "witness add-checkpoint": (
        WitnessUnavailableError,
        lambda url: WitnessClient(url, timeout=2).add_checkpoint(
            1, [], WitnessedLog().body(1).split(b"\n\n", 1)[1]
        ),
    ),
    "witness latest": (WitnessUnavailableError, lambda url: WitnessClient(url, 2).latest(ORIGIN)),
    "witness logs": (WitnessUnavailableError, lambda url: WitnessClient(url, 2).logs()),
    "monitor gossip": (LogError, lambda url: HTTPWitness(url, timeout=2).checkpoint(ORIGIN)),
    "publish metrics": (LogError, lambda url: _read_metrics(httpx.Client(timeout=2), url)),
}


@pytest.mark.parametrize("server", sorted(HOSTILE))
@pytest.mark.parametrize("call", sorted(CLIENT_CALLS))
def test_client_stops_at_the_format_cap_against_a_hostile_server(server: str, call: str) -> None:
    hostile = Hostile(HOSTILE[server])
    error, client_call = CLIENT_CALLS[call]
    tracemalloc.start()
    try:
        start = time.monotonic()
        try:
            result = client_call(hostile.url)
        except error:
            result = None
        elapsed = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        hostile.close()
    # A bundle may be 16 MiB; everything else is 1 MiB at most.
    cap = 17 << 20 if call == "log bundle" else 1 << 20
    assert peak < 2 * cap + (4 << 20), f"{call} against {server}: {peak} bytes"
    assert elapsed < 10
    assert result is None, f"{call} against {server} returned {result!r:.80}"


def test_client_gives_up_on_a_server_that_trickles() -> None:
    hostile = Hostile(trickle)
    try:
        start = time.monotonic()
        with pytest.raises(LogError, match="deadline"):
            HTTPSource(hostile.url, timeout=0.25).read("checkpoint")
        assert time.monotonic() - start < 3
    finally:
        hostile.close()


def test_capped_client_reads_gzip_bundles_and_replies_of_an_honest_server(tmp_path: Path) -> None:
    log = Log.create(tmp_path / "log", ORIGIN)
    try:
        with serving(LogApp(log), ServerLimits()) as (port, _):
            url = f"http://127.0.0.1:{port}"
            with LogClient(url, log.token) as client:
                assert [client.sequence(b"entry %d" % i) for i in range(3)] == [0, 1, 2]
                assert client.add(b"last")[0] == 3
                bundle = client.source.read("tile/entries/000.p/4")
            assert bundle.startswith(b"\x00\x07entry 0")
            with httpx.Client() as raw:  # what HTTPSource was sent
                gz = raw.get(f"{url}/tile/entries/000.p/4", headers={"accept-encoding": "gzip"})
            assert gz.headers["content-encoding"] == "gzip"
    finally:
        log.close()


# --- the serve flags --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["log", "witness"])
def test_serve_flags_set_the_limits(tmp_path: Path, kind: str) -> None:
    import subprocess
    import sys

    directory = tmp_path / kind
    overt = [sys.executable, "-m", "overt.cli.main"]
    if kind == "log":
        subprocess.run([*overt, "log", "init", str(directory), "--origin", ORIGIN], check=True)
    else:
        subprocess.run(
            [*overt, "witness", "init", str(directory), "--name", "w.example/w"], check=True
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listen = f"127.0.0.1:{port}"
    flags = ["--request-timeout", "0.5", "--max-connections", "2"]
    proc = subprocess.Popen(
        [*overt, kind, "serve", str(directory), "--listen", listen, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        assert b"serving" in proc.stdout.readline()
        with contextlib.ExitStack() as held:
            first = held.enter_context(socket.create_connection(("127.0.0.1", port), 5))
            held.enter_context(socket.create_connection(("127.0.0.1", port), 5))
            time.sleep(0.1)
            with socket.create_connection(("127.0.0.1", port), 5) as third:
                assert read_until_closed(third, 2)[0].startswith(b"HTTP/1.1 503")
            reply, when = read_until_closed(first, 3)
            assert reply.startswith(b"HTTP/1.1 408") and when < 1.0
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_serve_flags_out_of_range_are_usage_errors(tmp_path: Path) -> None:
    import subprocess
    import sys

    for flag, value in [
        ("--request-timeout", "0"),
        ("--max-connections", "-1"),
        ("--keep-alive", "x"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "overt.cli.main", "log", "serve", str(tmp_path), flag, value],
            capture_output=True,
        )
        assert result.returncode == 2, result.stderr
        assert flag.encode() in result.stderr


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        (("203.0.113.7", 5000), "203.0.113.7"),
        (("2001:db8:1:2:3:4:5:6", 5000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff::1", 5000, 0, 0), "2001:db8:1:2::/64"),
        (("::ffff:203.0.113.7", 5000, 0, 0), "203.0.113.7"),
        (None, "?"),
    ],
)
def test_one_ipv6_host_with_a_whole_64_counts_as_one_peer(peer: object, key: str) -> None:
    from overt._asgi import peer_key

    assert peer_key(peer) == key


def test_http_source_refuses_a_path_that_is_no_tlog_object_without_asking() -> None:
    hostile = Hostile(stream_forever(b"HTTP/1.1 200 OK\r\n\r\n"))
    try:
        with pytest.raises(LogError, match="not a tlog-tiles object"):
            HTTPSource(hostile.url, timeout=2).read("../log.skey")
    finally:
        hostile.close()


def test_a_bug_is_a_logged_500_and_the_server_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = Log.create(tmp_path / "log", ORIGIN)
    app = LogApp(log)
    broken = {"on": True}
    checkpoint = log.checkpoint

    def buggy() -> bytes:
        if broken["on"]:
            raise ZeroDivisionError("a bug, not an input")
        return checkpoint()

    log.checkpoint = buggy  # type: ignore[method-assign]
    try:
        with serving(app, FAST) as (port, _), httpx.Client() as client:
            reply = client.get(f"http://127.0.0.1:{port}/checkpoint")
            assert reply.status_code == 500 and reply.headers["connection"] == "close"
            assert any("bug: request GET '/checkpoint'" in r.getMessage() for r in caplog.records)
            broken["on"] = False
            assert client.get(f"http://127.0.0.1:{port}/checkpoint").status_code == 200
    finally:
        log.close()
