"""Reading a tiled log as a client: over HTTP or from a log directory.

A :class:`TileSource` has one method, ``read(path)``, returning the bytes a
tlog-tiles server serves at ``<prefix>/<path>``. :func:`verify_log` checks a
whole log through any source, trusting nothing it reads:

1. the checkpoint's signature by the log key (and origin);
2. every entry bundle: each entry's leaf hash equals the hash in the level-0 tile;
3. every tile above level 0: each hash equals the Merkle root of the full tile below;
4. the root recomputed from the tiles equals the checkpoint's root hash.

:class:`LogClient` adds ``POST /add`` for writers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx

from overt._http import Reply, fetch
from overt.errors import LogError, NotFoundError, ProofError, TilePathError, VerificationError
from overt.formats import merkle, tiles
from overt.formats.checkpoint import SignedCheckpoint
from overt.formats.note import MAX_NOTE_SIZE, Verifier
from overt.formats.policy import Policy, open_trusted_checkpoint
from overt.formats.proof import MAX_PROOF_SIZE, TlogProof, parse_proof
from overt.log.fs import read_beneath

if TYPE_CHECKING:
    from overt.log.backend import TileBackend

__all__ = [
    "DirectorySource",
    "HTTPSource",
    "LogClient",
    "TileSource",
    "VerifiedLog",
    "max_object_size",
    "open_source",
    "open_with_policy",
    "tile_reader",
    "verify_log",
]


class TileSource(Protocol):
    def read(self, path: str) -> bytes:
        """Bytes served at ``<prefix>/<path>``. Raises NotFoundError or LogError."""
        ...

    def close(self) -> None: ...


class DirectorySource:
    """A log directory (``overt log init``) or a plain tiles directory, read without locking."""

    def __init__(self, directory: Path | str) -> None:
        root = Path(directory)
        self.root = root / "tiles" if (root / "log.json").exists() else root
        # A log whose tiles live elsewhere (log.json "tiles": s3://...) is read from there.
        self._remote: TileBackend | None = None
        if (root / "log.json").exists():
            from overt.log.stores import configured_tiles

            self._remote = configured_tiles(root)

    def read(self, path: str) -> bytes:
        """Bytes of ``root/path``, never through a symlink (see overt.log.fs.read_beneath)."""
        if self._remote is not None:
            return self._remote.read(path)
        try:
            return read_beneath(self.root, path)
        except NotFoundError as err:
            raise NotFoundError(f"{self.root}: {err}") from err

    def close(self) -> None:
        """Nothing to release; present so every source can be closed alike."""


def max_object_size(path: str) -> int:
    """The largest object a tlog-tiles server may serve at ``path``.

    A checkpoint is a signed note (1 MiB at most), a tile ``width`` hashes, an
    entry bundle ``width`` entries of at most 65535 bytes, each with its 2-byte length.

    Raises:
        TilePathError: ``path`` is neither ``checkpoint`` nor a tile path.
    """
    if path == "checkpoint":
        return MAX_NOTE_SIZE
    where = tiles.parse_tile_path(path)
    if where.level is None:
        return where.width * (2 + tiles.MAX_ENTRY_SIZE)
    return where.width * merkle.HASH_SIZE


class HTTPSource:
    """A tlog-tiles server, over HTTP(S) with keep-alive.

    Each read stops at the largest size its object may have (:func:`max_object_size`)
    and within four times ``timeout`` in all, so a hostile server costs bounded memory
    and time (:func:`overt._http.fetch`).
    """

    def __init__(self, url: str, timeout: float = 30.0, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.client = client or httpx.Client(timeout=timeout, headers={"user-agent": "overt"})

    def read(self, path: str) -> bytes:
        """Raises NotFoundError (404), LogError (any other failure, or a reply too large)."""
        url = f"{self.url}/{path}"
        try:
            limit = max_object_size(path)
        except TilePathError as err:
            raise LogError(f"GET {url}: not a tlog-tiles object: {err}") from err
        response = fetch(self.client, "GET", url, limit, LogError)
        if response.status == 404:
            raise NotFoundError(f"GET {url}: 404")
        if response.status != 200:
            raise LogError(f"GET {url}: HTTP {response.status}")
        return response.content

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> HTTPSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(url_or_dir: str) -> TileSource:
    if url_or_dir.startswith(("http://", "https://")):
        return HTTPSource(url_or_dir)
    return DirectorySource(url_or_dir)


def tile_reader(source: TileSource) -> Callable[[int, int, int], bytes]:
    """``get_tile(level, index, width)`` over a source, with a length check."""

    def get_tile(level: int, index: int, width: int) -> bytes:
        data = source.read(tiles.tile_path(level, index, width))
        if len(data) != width * merkle.HASH_SIZE:
            raise VerificationError(
                f"tile {tiles.tile_path(level, index, width)} has {len(data)} bytes, want {width * 32}"
            )
        return data

    return get_tile


@dataclass(frozen=True)
class VerifiedLog:
    checkpoint: SignedCheckpoint
    entries: int
    seconds: float


def open_with_policy(
    note: bytes,
    verifier: Verifier | None,
    policy: Policy | None = None,
    origin: str | None = None,
    max_age: float | None = None,
) -> SignedCheckpoint:
    """Verify a checkpoint by the log key, and by the witness quorum of ``policy`` if given.

    With a policy, the log key may come from the policy's ``log`` lines or from
    ``verifier``; ``max_age`` (seconds) demands a quorum of cosignatures that recent.
    Raises VerificationError subclasses (PolicyError, StaleError, ...).
    """
    return open_trusted_checkpoint(
        note, verifier, policy, now=time.time(), max_age=max_age, origin=origin
    )


def verify_log(
    source: TileSource | str | Path,
    verifier: Verifier | None,
    origin: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    checkpoint: bytes | None = None,
    policy: Policy | None = None,
    max_age: float | None = None,
) -> VerifiedLog:
    """Check every entry, tile and the root of the log against its signed checkpoint.

    ``source`` is a :class:`TileSource`, or a URL or log directory (:func:`open_source`).
    With ``policy`` the checkpoint must also carry the policy's witness quorum
    (and be no older than ``max_age`` seconds, if given).

    Raises VerificationError (or a subclass) on the first inconsistency, and
    NotFoundError/LogError if a resource cannot be read.
    """
    if isinstance(source, str | Path):
        opened = open_source(str(source))
        try:
            return verify_log(opened, verifier, origin, progress, checkpoint, policy, max_age)
        finally:
            opened.close()
    started = time.perf_counter()
    note = checkpoint if checkpoint is not None else source.read("checkpoint")
    signed = open_with_policy(note, verifier, policy, origin, max_age)
    size = signed.checkpoint.size
    get_tile = tile_reader(source)
    width_full = tiles.TILE_WIDTH
    # Level 0: bundles against leaf hashes; keep each level's tile roots to check the level above.
    roots_below: list[bytes] = []
    for n in range((size + width_full - 1) // width_full):
        width = min(width_full, size - n * width_full)
        tile = get_tile(0, n, width)
        entries = tiles.parse_entry_bundle(source.read(tiles.entries_path(n, width)), width)
        tiles.verify_entries(entries, tile, n)
        if width == width_full:
            roots_below.append(
                merkle.root_hash([tile[i : i + 32] for i in range(0, len(tile), 32)])
            )
        if progress is not None:
            progress(n * width_full + width, size)
    level = 1
    while size >> (tiles.TILE_HEIGHT * level):
        count = size >> (tiles.TILE_HEIGHT * level)
        roots: list[bytes] = []
        for n in range((count + width_full - 1) // width_full):
            width = min(width_full, count - n * width_full)
            tile = get_tile(level, n, width)
            expected = b"".join(roots_below[n * width_full : n * width_full + width])
            if tile != expected:
                raise ProofError(
                    f"tile {tiles.tile_path(level, n, width)} does not match the tiles below it"
                )
            if width == width_full:
                roots.append(merkle.root_hash([tile[i : i + 32] for i in range(0, len(tile), 32)]))
        roots_below = roots
        level += 1
    root = tiles.root_from_tiles(get_tile, size)
    if root != signed.checkpoint.root_hash:
        raise ProofError(
            f"root recomputed from the tiles does not match the checkpoint (size {size})"
        )
    return VerifiedLog(signed, size, time.perf_counter() - started)


class LogClient:
    """A writer and reader of one log server."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"user-agent": "overt"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.http = httpx.Client(timeout=timeout, headers=headers)
        self.source = HTTPSource(self.url, client=self.http)

    def _post(self, entry: bytes, params: dict[str, str]) -> Reply:
        url = f"{self.url}/add"
        response = fetch(
            self.http, "POST", url, MAX_PROOF_SIZE, LogError, content=entry, params=params
        )
        if response.status != 200:
            raise LogError(f"POST {url}: HTTP {response.status}: {response.reason}")
        return response

    def add(self, entry: bytes) -> tuple[int, bytes]:
        """Append an entry and wait for its integration; returns (index, tlog-proof). Raises LogError."""
        response = self._post(entry, {"proof": "1"})
        proof: TlogProof = parse_proof(response.content)
        return proof.index, response.content

    def sequence(self, entry: bytes) -> int:
        """Append an entry; returns its index once durable, without waiting for integration."""
        reply = self._post(entry, {}).content
        if re.fullmatch(rb"(0|[1-9][0-9]{0,18})\n", reply) is None:
            raise LogError(f"POST {self.url}/add: not an index: {reply[:40]!r}")
        return int(reply)

    def checkpoint(self) -> bytes:
        return self.source.read("checkpoint")

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """Consistency proof between two sizes, computed from the server's tiles."""
        if not 0 < old <= new:
            raise NotFoundError(f"no consistency proof from size {old} to size {new}")
        return merkle.consistency_proof(
            old, new, tiles.subtree_from_tiles(tile_reader(self.source), new)
        )

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof(
            index, size, tiles.subtree_from_tiles(tile_reader(self.source), size)
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LogClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
