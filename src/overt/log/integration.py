"""The integration step of a tiled log, without I/O.

Given the right edge of the tree (its size, the partial tile of every level
and the entries of the partial entry bundle) and the leaf hashes of new
entries, :func:`integrate` computes every c2sp.org/tlog-tiles object the
append changes (new and grown entry bundles, full and partial hash tiles of
every level), the new right edge and the new root hash. It only computes: the
storage backend writes the objects and the lock backend swaps the checkpoint
(``overt.log.backend``), in that order, so the pure part can be tested alone
and shared by every backend (Tessera keeps its integration apart from its
drivers the same way).

Worked example: from the empty edge, integrating 3 entries yields the writes
``tile/entries/000.p/3`` and ``tile/0/000.p/3``, the edge
``Edge(3, [[h0, h1, h2]], [e0, e1, e2])`` and the RFC 6962 root of the three
leaves.

Tiles are 256 hashes wide (``tiles.TILE_WIDTH``); a full tile's root hash is
the next level's leaf, so the edge has one partial tile per level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from overt.formats import merkle, tiles

__all__ = ["EMPTY_EDGE", "Edge", "Integration", "integrate", "root_of"]


class Edge(NamedTuple):
    """The right edge of a tree: all an append needs besides the new entries.

    ``partials[level]`` holds the hashes of that level's partial tile (empty if
    the level ends on a tile boundary); ``bundle`` the entries of the partial
    entry bundle.
    """

    size: int
    partials: list[list[bytes]]
    bundle: list[bytes]


EMPTY_EDGE = Edge(0, [], [])


class Integration(NamedTuple):
    """What one integration changes: objects to write (path, bytes), the new edge, the root."""

    writes: list[tuple[str, bytes]]
    edge: Edge
    root: bytes


def integrate(edge: Edge, entries: Sequence[bytes], hashes: Sequence[bytes]) -> Integration:
    """Append ``entries`` (with their leaf ``hashes``) to the tree whose right edge is ``edge``.

    Pure: ``edge`` is not modified. Raises ValueError if the lengths differ.
    """
    if len(entries) != len(hashes):
        raise ValueError(f"{len(entries)} entries but {len(hashes)} leaf hashes")
    start = edge.size
    writes: list[tuple[str, bytes]] = []
    width = tiles.TILE_WIDTH

    # Entry bundles.
    bundle = list(edge.bundle)
    bundle_index = start // width
    pos = 0
    while pos < len(entries):
        take = min(width - len(bundle), len(entries) - pos)
        bundle.extend(entries[pos : pos + take])
        pos += take
        if len(bundle) == width:
            writes.append((tiles.entries_path(bundle_index), tiles.format_entry_bundle(bundle)))
            bundle_index += 1
            bundle = []
    if bundle and entries:
        writes.append(
            (tiles.entries_path(bundle_index, len(bundle)), tiles.format_entry_bundle(bundle))
        )

    # Hash tiles, level by level: a full tile's root feeds the level above.
    partials = [list(p) for p in edge.partials]
    level = 0
    new: Sequence[bytes] = hashes
    while new:
        if level == len(partials):
            partials.append([])
        part = partials[level]
        tile_index = (start >> (tiles.TILE_HEIGHT * level)) // width
        up: list[bytes] = []
        pos = 0
        while pos < len(new):
            take = min(width - len(part), len(new) - pos)
            part.extend(new[pos : pos + take])
            pos += take
            if len(part) == width:
                writes.append((tiles.tile_path(level, tile_index), b"".join(part)))
                up.append(merkle.root_hash(part))
                tile_index += 1
                part = []
        if part:
            writes.append((tiles.tile_path(level, tile_index, len(part)), b"".join(part)))
        partials[level] = part
        new = up
        level += 1

    size = start + len(entries)
    return Integration(writes, Edge(size, partials, bundle), root_of(size, partials))


def root_of(size: int, partials: Sequence[Sequence[bytes]]) -> bytes:
    """Root hash of the tree [0, size) from the partial tiles of every level (its right edge)."""
    if size == 0:
        return merkle.EMPTY_ROOT
    subtrees: list[bytes] = []
    for part in reversed(partials):
        start = 0
        width = len(part)
        bit = tiles.TILE_WIDTH >> 1
        while bit:
            if width & bit:
                subtrees.append(merkle.root_hash(part[start : start + bit]))
                start += bit
            bit >>= 1
    root = subtrees[-1]
    for left in reversed(subtrees[:-1]):
        root = merkle.node_hash(left, root)
    return root
