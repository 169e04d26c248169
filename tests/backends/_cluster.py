"""Helpers for the several-front-ends tests: a TCP proxy that can be cut, front-end
processes, a load of concurrent submitters, and the checks run after every fault.

The proxy stands in for a network failure between the front ends and PostgreSQL
or the object store: the machine's PostgreSQL is shared with other tests and
cannot be restarted safely, and moto keeps its buckets in memory (stopping it
would lose them), so the tests cut the path to them instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from tests.backends.conftest import PostgresSchema, free_port

from overt.formats import merkle, tiles
from overt.formats.checkpoint import open_checkpoint
from overt.formats.note import parse_vkey
from overt.log.backend import TileBackend
from overt.log.client import verify_log
from overt.log.log import LogView
from overt.log.shared import SharedLog

ROOT = Path(__file__).resolve().parents[2]


class Proxy:
    """A loopback TCP proxy to ``upstream``; :meth:`cut` drops every connection and
    refuses new ones (as a dead network path would), :meth:`restore` lets them through."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)

    def cut(self) -> None:
        self._cut = True
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self._cut = False

    def close(self) -> None:
        self._stop = True
        self.cut()
        self._listener.close()
        self._thread.join(5)


class FrontEnd:
    """One ``overt log serve`` process on a copy of the log directory."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory, self.name = directory, name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = directory.parent / f"{name}.out"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "overt.cli.main", "log", "serve"),
                    *(str(self.directory), "--listen", f"127.0.0.1:{self.port}"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                cwd=ROOT,
            )

    def wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/checkpoint", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not start: {self.output.read_text()}")

    def metrics(self) -> dict[str, int]:
        text = httpx.get(self.url + "/metrics", timeout=2).text
        return {
            line.split()[0]: int(line.split()[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    def holds_lease(self) -> bool:
        try:
            return self.metrics()["overt_log_sequencer_lease"] == 1
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """kill -9: no clean shutdown, no lease released by the process itself."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Load:
    """Concurrent submitters spread over the front ends; every 200 is recorded.

    A submitter whose front end fails moves to the next one, as a load balancer
    would send it; failed requests are counted, never recorded as acknowledged.
    """

    def __init__(self, front_ends: list[FrontEnd], token: str, clients: int = 8) -> None:
        self.front_ends, self.token = front_ends, token
        self.acked: dict[bytes, int] = {}
        self.failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)
        ]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _client(self, n: int) -> None:
        headers = {"authorization": f"Bearer {self.token}"}
        target = n % len(self.front_ends)
        count = 0
        with httpx.Client(timeout=20, headers=headers) as client:
            while not self._stop.is_set():
                entry = b"submitter %d entry %d" % (n, count)
                url = self.front_ends[target].url
                try:
                    reply = client.post(url + "/add", content=entry)
                except httpx.HTTPError:
                    reply = None
                if reply is None or reply.status_code != 200:
                    with self._lock:
                        self.failures += 1
                    target = (target + 1) % len(self.front_ends)
                    time.sleep(0.05)
                    continue  # never acknowledged: the same entry is sent again
                with self._lock:
                    self.acked[entry] = int(reply.text)
                count += 1

    def count(self) -> int:
        with self._lock:
            return len(self.acked)


class Checkpoints:
    """Polls the front ends' and the store's checkpoints: every one seen must be
    consistent with the final tree (no fork, no rollback)."""

    def __init__(self, front_ends: list[FrontEnd], store: TileBackend) -> None:
        self.front_ends, self.store = front_ends, store
        self.seen: set[bytes] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Checkpoints:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _poll(self) -> None:
        while not self._stop.is_set():
            for fe in self.front_ends:
                with contextlib.suppress(httpx.HTTPError):
                    reply = httpx.get(fe.url + "/checkpoint", timeout=2)
                    if reply.status_code == 200:
                        self.seen.add(reply.content)
            with contextlib.suppress(Exception):
                self.seen.add(self.store.read("checkpoint"))
            self._stop.wait(0.1)


def wait_until(predicate: object, seconds: float, what: str) -> float:
    """Seconds until ``predicate()`` held; AssertionError after ``seconds``."""
    assert callable(predicate)
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"{what}: not within {seconds} s")
        time.sleep(0.05)
    return time.monotonic() - started


def wait_published(front_end: FrontEnd, size: int, seconds: float = 30) -> None:
    def covered() -> bool:
        try:
            return front_end.metrics()["overt_log_published_size"] >= size
        except httpx.HTTPError:
            return False

    wait_until(covered, seconds, f"{front_end.name} publishing size {size}")


def check_log(store: TileBackend, vkey: str, acked: dict[bytes, int], seen: set[bytes]) -> LogView:
    """After a fault: the log verifies from the store, every acknowledged entry is at
    its index, no entry is in the log twice, and every checkpoint seen is one
    version of the same tree (consistency proofs to the final one)."""
    verifier = parse_vkey(vkey)
    verified = verify_log(store, verifier)  # every tile, bundle and the root
    view = LogView(store, verifier)
    size = view.published_size
    assert verified.checkpoint.checkpoint.size == size
    entries: list[bytes] = []
    for n in range(0, size, tiles.TILE_WIDTH):  # each bundle read once
        width = min(tiles.TILE_WIDTH, size - n)
        bundle = view.read_bundle(n // tiles.TILE_WIDTH, width)
        entries += tiles.parse_entry_bundle(bundle, width)
    assert len(set(entries)) == size, "an entry is in the log twice"
    for entry, index in acked.items():
        assert index < size and entries[index] == entry, f"acknowledged {entry!r} at {index} moved"
    for note in tuple(seen):  # a copy: the poller may still be adding (witnesses re-cosign)
        old = open_checkpoint(note, verifier).checkpoint
        assert old.size <= size, "a checkpoint beyond the final one was served"
        if old.size > 0:
            proof = view.consistency_proof(old.size, size)
            merkle.verify_consistency(old.size, size, old.root_hash, view.root_hash, proof)
    return view


@contextlib.contextmanager
def running(front_ends: list[FrontEnd]) -> Iterator[list[FrontEnd]]:
    try:
        for fe in front_ends:
            fe.launch()
        for fe in front_ends:
            fe.wait_ready()
        yield front_ends
    finally:
        for fe in front_ends:
            fe.stop()


def db_url(postgres: PostgresSchema, port: int = 5432) -> str:
    """The URL of this test's own schema on the PostgreSQL at ``port``."""
    return f"postgresql://postgres@127.0.0.1:{port}/test?options=-csearch_path%3D{postgres.schema}"


@contextlib.contextmanager
def two_front_ends(
    where: Path, origin: str, tiles: str, db: str
) -> Iterator[tuple[SharedLog, SharedLog]]:
    """Two front ends of one new shared log, in this process (closed afterwards)."""
    a = SharedLog.create(where / "a", origin, tiles=tiles, index=db)
    shutil.copytree(where / "a", where / "b")
    b = SharedLog(where / "b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()
