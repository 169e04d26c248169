"""One mirrored log's copy: c2sp.org/tlog-tiles objects in the log's own tile backends.

Each mirrored log lives under ``<tiles>/<hex sha256(origin)>/`` (the path the
mirror serves it at) in any :class:`overt.log.backend.TileBackend`: a directory
(``file:///...``) or a bucket (``s3://...``), opened by
:func:`overt.log.stores.open_tiles`. The layout is the log's::

    <hash>/checkpoint                 the mirror checkpoint (the log's signature + the mirror's)
    <hash>/tile/<L>/<N>[.p/<W>]       hash tiles
    <hash>/tile/entries/<N>[.p/<W>]   entry bundles, one per authenticated package

Entries are appended with the log's own pure integration step
(:func:`overt.log.integration.integrate`), so the tiles a mirror serves are
byte for byte the ones the log serves. Crash consistency: :meth:`MirroredTiles.append`
returns once every object is durable (``write_batch``); the caller records the
new stored size only after that, and cosigns a checkpoint only once the stored
size covers it and :meth:`MirroredTiles.root` at its size is its root hash.
Objects beyond the recorded size may exist after a crash: they are never served
and are written again (with the same bytes: every entry was proven against the
log's checkpoints) by the next upload.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from overt.errors import FormatError, LogError, NotFoundError
from overt.formats import merkle, tiles
from overt.log.backend import TileBackend, read_edge
from overt.log.integration import integrate, root_of

__all__ = ["MirroredTiles", "origin_hash", "prefixed_tiles_url"]


def origin_hash(origin: str) -> str:
    """The path segment a mirror serves ``origin`` under: hex SHA-256 of the origin, lower case."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def prefixed_tiles_url(url: str, origin: str) -> str:
    """The ``--tiles`` URL of one mirrored log: ``url`` with ``/<origin hash>`` appended to its path."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + "/" + origin_hash(origin)
    return urlunsplit(parts._replace(path=path))


class MirroredTiles:
    """The stored copy of one log: append authenticated entries, read tiles, compute roots.

    Not thread-safe for appends: the server appends to one log from one task at a time.
    """

    def __init__(self, backend: TileBackend, size: int) -> None:
        """Opens the copy whose stored size is ``size``. Raises LogError."""
        self.backend = backend
        try:
            self.edge = read_edge(backend, size)
        except (OSError, FormatError) as err:
            raise LogError(f"cannot read the stored tree of size {size}: {err}") from err
        self.cache = tiles.TileCache(256)

    @property
    def size(self) -> int:
        """Entries stored (every one below it is durable)."""
        return self.edge.size

    def held_hashes(self, start: int, end: int) -> list[bytes]:
        """Leaf hashes of stored entries ``[start, end)``, all in one entry bundle.

        Raises:
            LogError: not stored, or the bundle cannot be read.
        """
        if start == end:
            return []
        width = tiles.TILE_WIDTH
        n = start // width
        if not (n * width <= start < end <= min(self.size, (n + 1) * width)):
            raise LogError(f"entries [{start}, {end}) are not held in one stored bundle")
        edge = self.edge
        if edge.bundle and n == edge.size // width:
            entries = edge.bundle
        else:
            count = min(width, self.size - n * width)
            try:
                entries = tiles.parse_entry_bundle(
                    self.backend.read(tiles.entries_path(n, count)), count
                )
            except (OSError, FormatError) as err:
                raise LogError(f"cannot read entries [{start}, {end}): {err}") from err
        lo = n * width
        return [merkle.leaf_hash(e) for e in entries[start - lo : end - lo]]

    def append(self, first: int, entries: Sequence[bytes], hashes: Sequence[bytes]) -> int:
        """Stores authenticated entries ``[first, first + len(entries))``; returns the stored size.

        Entries already stored are skipped (another upload stored them first: they
        are the same, both being proven against the log's consistent checkpoints).
        Durable on return.

        Raises:
            LogError: ``first`` is past the stored size (a gap), or the write failed
                (the stored size is unchanged then).
        """
        size = self.size
        if first > size:
            raise LogError(f"entries from {first} would leave a gap after {size}")
        skip = size - first
        if skip >= len(entries):
            return size
        step = integrate(self.edge, list(entries[skip:]), list(hashes[skip:]))
        try:
            self.backend.write_batch(step.writes)
        except OSError as err:
            raise LogError(f"cannot store entries [{size}, {step.edge.size}): {err}") from err
        self.edge = step.edge
        return self.edge.size

    def root(self, size: int) -> bytes:
        """The root hash of the stored tree of ``size`` (at most the stored size).

        Raises:
            LogError: ``size`` is beyond what is stored, or a tile is unreadable.
        """
        edge = self.edge
        if size == edge.size:
            return root_of(edge.size, edge.partials)
        if size > edge.size:
            raise LogError(f"size {size} is beyond the {edge.size} entries stored")
        if size == 0:
            return merkle.EMPTY_ROOT
        try:
            return tiles.root_from_tiles(self._tile, size, self.cache)
        except (OSError, FormatError) as err:
            raise LogError(f"cannot compute the root at size {size}: {err}") from err

    def _tile(self, level: int, index: int, width: int) -> bytes:
        # A partial tile of an older size may never have been written (the tree grew
        # past it in one append): the tile as stored now starts with the same hashes.
        stored = tiles.tile_width(level, index, self.size)
        data = self.backend.read(tiles.tile_path(level, index, stored))
        return data[: width * merkle.HASH_SIZE]

    def complete(self, size: int) -> None:
        """Store the partial tiles and bundle of the tree of ``size`` (at most the stored size)
        that are missing, so that the tree of ``size`` is laid out as a log of that size
        serves it. They are missing when the stored tree grew past ``size`` in one append
        (another upload went further); each is the start of the wider one stored. Durable
        on return.

        Raises:
            LogError: a tile or bundle cannot be read, or the write failed.
        """
        if size > self.size:
            raise LogError(f"size {size} is beyond the {self.size} entries stored")
        wanted: list[tuple[int | None, int, int]] = []
        level = 0
        while size >> (tiles.TILE_HEIGHT * level):
            count = size >> (tiles.TILE_HEIGHT * level)
            if count % tiles.TILE_WIDTH:
                wanted.append((level, count // tiles.TILE_WIDTH, count % tiles.TILE_WIDTH))
            level += 1
        if size % tiles.TILE_WIDTH:
            wanted.append((None, size // tiles.TILE_WIDTH, size % tiles.TILE_WIDTH))
        writes: list[tuple[str, bytes]] = []
        try:
            for level_, index, width in wanted:
                path = tiles.TilePath(level_, index, width).path
                try:
                    self.backend.read(path)
                    continue
                except NotFoundError:
                    pass
                stored = tiles.tile_width(level_ or 0, index, self.size)
                wider = tiles.TilePath(level_, index, stored).path
                data = self.backend.read(wider)
                if level_ is None:
                    data = tiles.format_entry_bundle(tiles.parse_entry_bundle(data, stored)[:width])
                else:
                    data = data[: width * merkle.HASH_SIZE]
                writes.append((path, data))
            if writes:
                self.backend.write_batch(writes)
        except (OSError, FormatError) as err:
            raise LogError(f"cannot lay out the tree of size {size}: {err}") from err

    def publish(self, note: bytes) -> None:
        """Serve ``note`` as ``checkpoint``. Callers made every entry it covers durable first.

        Raises:
            LogError: the write failed.
        """
        try:
            self.backend.write_checkpoint(note)
        except OSError as err:
            raise LogError(f"cannot publish the mirror checkpoint: {err}") from err
