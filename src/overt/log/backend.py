"""The log's storage seam: where tiles go, and who holds the checkpoint.

Two narrow protocols, shaped like Sunlight's ``Backend`` and ``LockBackend``:

- :class:`TileBackend` stores the objects c2sp.org/tlog-tiles serves: entry
  bundles and hash tiles (``write_batch``, durable on return), read back by
  path, and the *published* checkpoint that readers fetch.
- :class:`CheckpointLock` holds the log's latest *signed* checkpoint, the
  integration truth, and replaces it only by compare-and-swap, so that two
  sequencers can never both extend the same tree (a fork).

The integration step between them is pure (:mod:`overt.log.integration`).
Crash consistency, whichever backend: every tile a checkpoint commits to is
durable (``write_batch`` returned) before ``CheckpointLock.replace`` is
called, and the published checkpoint is written after that. Objects beyond
the signed size may exist after a crash; they are never served and are
overwritten by the next integration.

Implementations: :class:`overt.log.fs.TileStore` and
:class:`overt.log.fs.CheckpointFile` (a log directory; the directory's
``flock`` makes the process the only writer), :class:`overt.log.s3.S3TileStore`
(a bucket). :mod:`overt.log.stores` opens a tile backend by URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from overt.errors import LogError
from overt.formats import tiles
from overt.log.integration import Edge

__all__ = ["CheckpointConflictError", "CheckpointLock", "TileBackend", "read_edge"]


class CheckpointConflictError(LogError):
    """The signed checkpoint is not the one a writer extended: another writer moved it.

    ``expected`` is the checkpoint the writer based its tree on, ``found`` the
    one stored (None if unknown).
    """

    def __init__(self, expected: bytes, found: bytes | None) -> None:
        self.expected, self.found = expected, found
        first = expected.split(b"\n", 3)[:3]
        super().__init__(
            "the log's signed checkpoint changed under this writer"
            f" (expected {b' '.join(first).decode('utf-8', 'replace')!r})"
        )


class TileBackend(Protocol):
    """Tiles, entry bundles and the published checkpoint, by tlog-tiles path."""

    def read(self, relpath: str, /) -> bytes:
        """The object at ``relpath``. Raises NotFoundError (absent), LogError."""
        ...

    def write_batch(self, items: Iterable[tuple[str, bytes]], /) -> None:
        """Durably store many tiles and bundles; returns once all of them are durable.

        Raises OSError or LogError; some objects may be stored then (never one
        a signed checkpoint covers: the log writes new tiles only).
        """
        ...

    def write_checkpoint(self, note: bytes, /) -> None:
        """Publish a checkpoint. Callers made every tile it commits to durable first.

        Raises OSError or LogError.
        """
        ...


class CheckpointLock(Protocol):
    """The latest signed checkpoint, replaced only by compare-and-swap."""

    def fetch(self) -> bytes:
        """The current signed checkpoint. Raises NotFoundError (none yet), OSError, LogError."""
        ...

    def create(self, note: bytes, /) -> None:
        """Store the first checkpoint. Raises LogError if one exists, OSError."""
        ...

    def replace(self, old: bytes, new: bytes, /) -> None:
        """Replace ``old`` by ``new``, durably, iff the stored checkpoint is still ``old``.

        Raises:
            CheckpointConflictError: another writer replaced it (nothing written).
            OSError, LogError: the write failed; the stored checkpoint is then
                ``old`` or (rarely) ``new``: :meth:`fetch` says which.
        """
        ...


def read_edge(store: TileBackend, size: int) -> Edge:
    """The right edge of the tree of ``size`` from its stored partial tiles and bundle.

    Only reads; the caller checks the edge's root against its checkpoint
    (:func:`overt.log.integration.root_of`). Raises NotFoundError, LogError,
    OSError, FormatError (a damaged tile or bundle).
    """
    partials: list[list[bytes]] = []
    level = 0
    while size >> (tiles.TILE_HEIGHT * level):
        count = size >> (tiles.TILE_HEIGHT * level)
        width = count % tiles.TILE_WIDTH
        if width:
            data = store.read(tiles.tile_path(level, count // tiles.TILE_WIDTH, width))
            partials.append(tiles.read_tile_hashes(data, width))
        else:
            partials.append([])
        level += 1
    width = size % tiles.TILE_WIDTH
    bundle: list[bytes] = []
    if width:
        raw = store.read(tiles.entries_path(size // tiles.TILE_WIDTH, width))
        bundle = tiles.parse_entry_bundle(raw, width)
    return Edge(size, partials, bundle)
