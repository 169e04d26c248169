"""Simulators for the witness's attack tests: a log that can roll back, fork or freeze.

No mocks: the log is a real Merkle tree (``MemoryTree``) with a real Ed25519 key
signing real checkpoints, and its consistency proofs are real RFC 6962 proofs.
It is *dishonest on demand*: :meth:`LogSimulator.rollback` rewrites history
from an earlier size, :meth:`LogSimulator.fork` makes a second view with the
same key (a split view), :meth:`LogSimulator.freeze` stops it at one checkpoint.
What is tested is whether the witness notices.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt._asgi import ServerLimits, make_server
from overt.formats.checkpoint import Checkpoint, sign_checkpoint
from overt.formats.cosignature import CosignatureSigner, CosignatureVerifier
from overt.formats.merkle import MemoryTree, leaf_hash
from overt.formats.note import Ed25519Signer, Ed25519Verifier
from overt.formats.witness import AddCheckpointRequest, format_add_checkpoint
from overt.witness.core import KnownLogs, known_logs
from overt.witness.server import WitnessApp
from overt.witness.state import WitnessState

T0 = 1_750_000_000.0


@dataclass
class Clock:
    """An injectable clock (POSIX seconds) that tests move by hand."""

    now: float = T0

    def __call__(self) -> float:
        return self.now


class LogSimulator:
    """An in-memory log with a real key, that can grow, roll back, fork and freeze."""

    def __init__(self, origin: str = "log.example/sim", key: Ed25519PrivateKey | None = None):
        self.key = key or Ed25519PrivateKey.generate()
        self.signer = Ed25519Signer(origin, self.key)
        self.tree = MemoryTree()
        self.label = hashlib.sha256(origin.encode() + self.key.public_key().public_bytes_raw())
        self.counter = 0
        self.frozen: bytes | None = None

    @property
    def origin(self) -> str:
        return self.signer.name

    @property
    def verifier(self) -> Ed25519Verifier:
        return self.signer.verifier()

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    @property
    def size(self) -> int:
        return self.tree.size

    def grow(self, n: int = 1, tag: bytes = b"") -> bytes:
        """Appends ``n`` fresh entries; returns the new signed checkpoint."""
        for _ in range(n):
            self.counter += 1
            self.tree.append(leaf_hash(tag + b"entry %d" % self.counter))
        return self.checkpoint()

    def checkpoint(self, size: int | None = None) -> bytes:
        """The signed checkpoint at ``size`` (default: now); a frozen log shows its freeze."""
        if self.frozen is not None and size is None:
            return self.frozen
        size = self.tree.size if size is None else size
        return sign_checkpoint(Checkpoint(self.origin, size, self.tree.root(size)), self.signer)

    def proof(self, old: int, new: int | None = None) -> list[bytes]:
        new = self.tree.size if new is None else new
        return [] if old == 0 else self.tree.consistency_proof(old, new)

    def request(self, old: int, new: int | None = None) -> tuple[int, list[bytes], bytes]:
        """What a log sends to a witness: old size, consistency proof, checkpoint."""
        return old, self.proof(old, new), self.checkpoint(new)

    def body(self, old: int, new: int | None = None) -> bytes:
        old, proof, note = self.request(old, new)
        return format_add_checkpoint(AddCheckpointRequest(old, tuple(proof), note))

    # -- dishonesty ----------------------------------------------------------

    def rollback(self, size: int, regrow: int = 0) -> bytes:
        """Rewrites history: keeps the first ``size`` leaves, then ``regrow`` different ones."""
        self.tree = MemoryTree(self.tree.subtree(i, i + 1) for i in range(size))
        return self.grow(regrow, tag=b"rewritten ")

    def fork(self) -> LogSimulator:
        """A second view (same key, same history so far) that will diverge (a split view)."""
        other = LogSimulator(self.origin, self.key)
        other.tree = MemoryTree(self.tree.subtree(i, i + 1) for i in range(self.tree.size))
        other.counter = self.counter
        return other

    def freeze(self) -> bytes:
        """Stops showing new checkpoints: the current one is served from now on."""
        self.frozen = self.checkpoint()
        return self.frozen


class WitnessUnderTest:
    """A real witness: its key, the logs it trusts, its SQLite state file."""

    def __init__(self, directory: Path, name: str, logs: list[LogSimulator], clock: Clock):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.clock = clock
        self.signer = CosignatureSigner(name, Ed25519PrivateKey.generate(), clock)
        self.logs: KnownLogs = known_logs([log.verifier for log in logs])
        self.reload: Callable[[], KnownLogs | None] | None = None

    @property
    def verifier(self) -> CosignatureVerifier:
        return self.signer.verifier()

    def state(self) -> WitnessState:
        return WitnessState(self.directory / "state.db")

    def app(self, state: WitnessState) -> WitnessApp:
        return WitnessApp(state, self.logs, self.signer, reload=self.reload)

    @contextmanager
    def serve(self, limits: ServerLimits | None = None) -> Iterator[str]:
        """Runs the witness on 127.0.0.1 (a real uvicorn server, as served); yields its URL."""
        with self.state() as state:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            server = make_server(self.app(state), "127.0.0.1", port, limits)
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while not server.started:
                assert time.monotonic() < deadline, "witness server did not start"
                assert thread.is_alive(), "witness server died"
                time.sleep(0.01)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
                thread.join(10)
                sock.close()
