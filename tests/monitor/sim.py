"""Simulators for the monitor's attack tests: a log that can fork, roll back or lie, witnesses.

No mocks: the log is a real Merkle tree (``MemoryTree``) served as real c2sp tlog-tiles tiles
and entry bundles, its checkpoints signed with a real Ed25519 key; a witness cosigns with a
real cosignature/v1 key. Both are *dishonest on demand* (a log that shows different trees to
different parties, a witness that cosigns whatever it is shown), so that the monitor's own
checks are what is being tested. Both serve the same bytes in process (the ``TileSource`` and
``WitnessSource`` protocols) and over HTTP (as ASGI apps, for the CLI tests).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import quote, unquote

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.errors import NotFoundError, TilePathError
from overt.formats import tiles
from overt.formats.checkpoint import Checkpoint, sign_checkpoint
from overt.formats.cosignature import CosignatureSigner, cosign_line
from overt.formats.merkle import MemoryTree, leaf_hash
from overt.formats.note import Ed25519Signer, parse_note

T0 = 1_750_000_000.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class LogSimulator:
    """A tiled log in memory. ``read(path)`` serves what a tlog-tiles server would.

    ``published`` is the size whose checkpoint and tiles are served; ``branch()`` makes a
    second log under the *same key* that shares the first ``n`` entries (a fork: show one
    branch to the monitor, the other to a witness). ``reads`` counts the paths served.
    """

    def __init__(self, origin: str = "sim.example/log", signer: Ed25519Signer | None = None):
        self.origin = origin
        self.signer = signer or Ed25519Signer(origin, Ed25519PrivateKey.generate())
        self.entries: list[bytes] = []
        self.tree = MemoryTree()
        self.published = 0
        self.served_bundles: dict[int, bytes] = {}  # index -> entry served instead (a lie)
        self.served_tiles: dict[int, bytes] = {}  # index -> leaf hash served instead (a lie)
        self.checkpoint_override: bytes | None = None
        self.reads: list[str] = []
        self.view: LogSimulator | None = None  # serve another branch instead (a split view)
        self._lock = threading.Lock()

    @property
    def vkey(self) -> str:
        return self.signer.verifier().vkey

    @property
    def verifier(self) -> Any:
        return self.signer.verifier()

    def add(self, *entries: bytes, publish: bool = True) -> None:
        for e in entries:
            self.entries.append(e)
            self.tree.append(leaf_hash(e))
        if publish:
            self.published = len(self.entries)

    def add_many(self, n: int, prefix: bytes = b"entry", publish: bool = True) -> None:
        start = len(self.entries)
        self.add(*(b"%s %d" % (prefix, i) for i in range(start, start + n)), publish=publish)

    def branch(self, n: int) -> LogSimulator:
        """Another log with the same key and origin and the first ``n`` entries."""
        other = LogSimulator(self.origin, self.signer)
        other.add(*self.entries[:n])
        return other

    def checkpoint(self, size: int | None = None) -> bytes:
        """The signed checkpoint of the tree at ``size`` (default: published)."""
        size = self.published if size is None else size
        cp = Checkpoint(self.origin, size, self.tree.root(size))
        return sign_checkpoint(cp, self.signer)

    def _tile(self, level: int, index: int, width: int) -> bytes:
        step = 1 << (tiles.TILE_HEIGHT * level)
        out = []
        for i in range(width):
            lo = (index * tiles.TILE_WIDTH + i) * step
            if level == 0 and lo in self.served_tiles:
                out.append(self.served_tiles[lo])
            else:
                out.append(self.tree.subtree(lo, lo + step))
        return b"".join(out)

    def _bundle(self, index: int, width: int) -> bytes:
        base = index * tiles.TILE_WIDTH
        entries = [self.served_bundles.get(base + i, self.entries[base + i]) for i in range(width)]
        return tiles.format_entry_bundle(entries)

    def read(self, path: str) -> bytes:
        with self._lock:
            self.reads.append(path)
        if self.view is not None:
            return self.view.read(path)
        if path == "checkpoint":
            if self.checkpoint_override is not None:
                return self.checkpoint_override
            return self.checkpoint()
        try:
            where = tiles.parse_tile_path(path)
        except TilePathError as err:
            raise NotFoundError(f"no such path {path}") from err
        level = 0 if where.level is None else where.level
        if where.width > tiles.tile_width(level, where.index, self.published):
            raise NotFoundError(f"{path} is beyond the published tree ({self.published})")
        if where.level is None:
            return self._bundle(where.index, where.width)
        return self._tile(where.level, where.index, where.width)

    def close(self) -> None:
        """Nothing to release (the ``TileSource`` protocol asks for it)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The same reads, as an ASGI app (GET /checkpoint, /tile/...)."""
        if scope["type"] != "http":
            return
        try:
            body, status = self.read(scope["path"].lstrip("/")), 200
        except NotFoundError as err:
            body, status = str(err).encode(), 404
        await _send(send, status, body)


async def _send(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class WitnessSimulator:
    """A witness that cosigns whatever checkpoint it is shown and serves the read endpoints.

    It checks nothing (a fooled or colluding witness): the monitor's comparison is under test.
    ``forge`` makes it serve a cosignature with a flipped byte.
    """

    def __init__(self, name: str = "witness.example/w1", clock: Callable[[], float] = lambda: T0):
        self.signer = CosignatureSigner(name, Ed25519PrivateKey.generate(), clock)
        self.url = f"sim://{name}"
        self.latest: dict[str, bytes] = {}
        self.forge = False

    @property
    def vkey(self) -> str:
        return self.signer.verifier().vkey

    def cosign(self, note: bytes) -> bytes:
        """Cosigns a signed checkpoint note and keeps it as the latest for its origin."""
        parsed = parse_note(note)
        cosigned = note + cosign_line(self.signer, parsed.text)
        origin = parsed.text.split(b"\n", 1)[0].decode()
        self.latest[origin] = cosigned
        return cosigned

    def logs(self) -> list[str]:
        return sorted(self.latest)

    def checkpoint(self, origin: str) -> bytes | None:
        note = self.latest.get(origin)
        if note is None or not self.forge:
            return note
        # Flip one bit inside the cosignature's Ed25519 part (the last line's base64).
        head, _, last = note[:-1].rpartition(b"\n")
        name, _, b64 = last.rpartition(b" ")
        flipped = b64[:-8] + (b"A" if b64[-8:-7] != b"A" else b"B") + b64[-7:]
        return head + b"\n" + name + b" " + flipped + b"\n"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/logs":
            await _send(send, 200, "".join(o + "\n" for o in self.logs()).encode())
            return
        if path.startswith("/checkpoint/"):
            note = self.checkpoint(unquote(path[len("/checkpoint/") :]))
            if note is not None:
                await _send(send, 200, note)
                return
        await _send(send, 404, b"not found\n")


def witness_path(origin: str) -> str:
    return f"checkpoint/{quote(origin, safe='')}"


@contextmanager
def serve(app: Any, lifespan: Literal["auto", "on", "off"] = "off") -> Iterator[str]:
    """Serves an ASGI app with uvicorn in a thread on a pre-bound loopback socket; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def lines(text: str) -> list[dict[str, Any]]:
    """The JSON-lines events in ``text``."""
    import json

    return [json.loads(line) for line in text.splitlines() if line]


def kinds(events: Sequence[Any]) -> list[str]:
    return [e.kind for e in events]
