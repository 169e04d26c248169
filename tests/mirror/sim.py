"""Helpers for the mirror tests: a real log directory, a mirror served on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from overt._asgi import make_server
from overt.formats import merkle
from overt.formats.mirror import EntryPackage, UploadHeader, format_package, format_upload_header
from overt.formats.note import parse_vkey
from overt.formats.subtree import subtree_consistency_proof
from overt.log.client import DirectorySource
from overt.log.log import Log
from overt.mirror.client import MirrorClient, MirrorPusher
from overt.mirror.config import init_mirror, load_mirror, trust_log
from overt.mirror.server import MirrorApp
from overt.mirror.store import origin_hash
from overt.witness.config import read_logs

ORIGIN = "mirror.test/log"


def make_log(directory: Path, count: int, origin: str = ORIGIN) -> Log:
    """A log directory holding ``count`` entries ``b"entry <i>"``."""
    log = Log.create(directory, origin)
    grow(log, count)
    return log


def grow(log: Log, count: int) -> None:
    start = log.size
    if count:
        log.add_many([b"entry %d" % i for i in range(start, start + count)])


def entries(start: int, end: int) -> list[bytes]:
    return [b"entry %d" % i for i in range(start, end)]


def upload_body(
    origin: str, start: int, end: int, tree: merkle.MemoryTree, items: list[bytes] | None = None
) -> bytes:
    """An add-entries body for [start, end) against the tree of size ``end`` (all packages)."""
    from overt.formats.mirror import package_ranges

    items = entries(start, end) if items is None else items
    out = [format_upload_header(UploadHeader(origin, start, end))]
    for rng in package_ranges(start, end):
        chunk = items[rng.start - start : rng.end - start]
        proof = subtree_consistency_proof(rng.subtree_start, rng.end, end, tree.subtree)
        out.append(format_package(EntryPackage(tuple(chunk), tuple(proof))))
    return b"".join(out)


def memory_tree(size: int) -> merkle.MemoryTree:
    return merkle.MemoryTree(merkle.leaf_hash(e) for e in entries(0, size))


class MirrorUnderTest:
    """A mirror directory trusting one log, served by a real uvicorn server."""

    def __init__(
        self,
        directory: Path,
        log_dir: Path,
        key_type: str = "ed25519",
        *,
        tiles: str | None = None,
        db: str | None = None,
    ) -> None:
        self.directory = directory
        self.log_dir = log_dir
        self.vkey = init_mirror(directory, "mirror.test/m1", key_type=key_type, tiles=tiles, db=db)
        trust_log(directory, (log_dir / "log.vkey").read_text())
        self.url = ""

    @contextlib.contextmanager
    def serve(self, port: int = 0) -> Iterator[str]:
        config = load_mirror(self.directory)
        with config.open_state() as state:
            app = MirrorApp(state, read_logs(self.directory), config.signer, config.tiles_for)
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            port = sock.getsockname()[1]
            server = make_server(app, "127.0.0.1", port)
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while not server.started:
                assert time.monotonic() < deadline, "mirror server did not start"
                assert thread.is_alive(), "mirror server died"
                time.sleep(0.01)
            self.url = f"http://127.0.0.1:{port}"
            try:
                yield self.url
            finally:
                server.should_exit = True
                thread.join(10)
                sock.close()
                app.close()

    def pusher(self) -> MirrorPusher:
        log_key = parse_vkey((self.log_dir / "log.vkey").read_text().strip())
        return MirrorPusher(
            DirectorySource(self.log_dir),
            log_key,
            MirrorClient(self.url),
            mirror_key=parse_vkey(self.vkey),
        )

    @property
    def tiles(self) -> Path:
        return self.directory / "tiles" / origin_hash(ORIGIN)

    def record(self):  # type: ignore[no-untyped-def]
        config = load_mirror(self.directory)
        with config.open_state() as state:
            return state.get(ORIGIN)
