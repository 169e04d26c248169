"""c2sp.org/tlog-tiles: tile and entry-bundle paths, bundle encoding, and proofs from tiles.

A tiled log serves its Merkle tree as *tiles*: the ``n``-th tile at level ``L`` holds the hashes
``MTH(D[(n*256 + i) * 256**L : (n*256 + i + 1) * 256**L])`` for ``i`` in ``0..255``, so a level-0
tile holds 256 leaf hashes and a level-``L`` hash is the root of a complete subtree of height
``8*L``. The rightmost tiles of each level may be *partial* (1 to 255 hashes). Path grammar::

    tile-path   = "tile/" ( level / "entries" ) "/" index [ ".p/" width ]
    level       = "0" / %x31-39 [ DIGIT ]             ; 0..63, no leading zeros
    index       = *( "x" 3DIGIT "/" ) 3DIGIT          ; 1234067 -> x001/x234/067, shortest form
    width       = %x31-39 *2DIGIT                     ; 1..255, no leading zeros

Example: in a tree of 70,000 entries the last level-0 tile is ``tile/0/273.p/112`` (112 hashes),
its entries are at ``tile/entries/273.p/112``, and the top tile is ``tile/2/000.p/1``.

An entry bundle is the tile's entries, each as a big-endian ``uint16`` length then the bytes::

    bundle = 1*256( length:uint16 entry:length bytes )   ; overt refuses empty entries

Parsing is strict: a path is accepted only in the exact form :func:`tile_path` writes (what a
log serves), a bundle only with no trailing bytes. :func:`subtree_from_tiles` turns a tile
source into the :data:`~overt.formats.merkle.SubtreeHash` that the proof generators need.

Spec: https://c2sp.org/tlog-tiles (tile height 8 is fixed by the spec; a different height or
hash would be a different spec).
"""

from __future__ import annotations

import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256 as _sha256

from overt.errors import EntryError, FormatError, ProofError, TilePathError
from overt.formats.merkle import EMPTY_ROOT, HASH_SIZE, ProofRequestError, leaf_hash
from overt.formats.strict import is_decimal

__all__ = [
    "MAX_ENTRY_SIZE",
    "MAX_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "EntryMismatchError",
    "GetTile",
    "TileCache",
    "TilePath",
    "TileReader",
    "entries_path",
    "format_entry_bundle",
    "format_index",
    "parse_entry_bundle",
    "parse_tile_path",
    "read_tile_hashes",
    "root_from_tiles",
    "subtree_from_tiles",
    "tile_path",
    "tile_width",
    "tiles_for_size",
    "verify_entries",
]

TILE_HEIGHT = 8
TILE_WIDTH = 256
MAX_ENTRY_SIZE = 65535
MAX_LEVEL = 63
_MAX_INDEX = 1 << 64  # tile indices are far below this in any tree of uint64 size

GetTile = Callable[[int, int, int], bytes]
"""``get_tile(level, index, width)`` returns the bytes of that tile (``32 * width`` bytes)."""

_U16 = struct.Struct(">H")  # an entry bundle's length prefix
_X_GROUP = re.compile(r"x[0-9]{3}")
_LAST_GROUP = re.compile(r"[0-9]{3}")


@dataclass(frozen=True)
class TilePath:
    """A parsed tile or entry-bundle path.

    ``level`` is ``None`` for an entry bundle (``tile/entries/...``); ``width`` is 256 for a
    full tile (no ``.p/`` suffix) and 1..255 for a partial one.
    """

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        _check_tile(self.level, self.index, self.width)

    @property
    def path(self) -> str:
        """The canonical path, as a log serves it."""
        if self.level is None:
            return entries_path(self.index, self.width)
        return tile_path(self.level, self.index, self.width)

    def __str__(self) -> str:
        return self.path


def _check_tile(level: int | None, index: int, width: int) -> None:
    if level is not None and not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"tile level must be 0..{MAX_LEVEL}, got {level}")
    if not 0 <= index < _MAX_INDEX:
        raise ValueError(f"tile index must be 0..2**64-1, got {index}")
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width must be 1..{TILE_WIDTH}, got {width}")


def format_index(n: int) -> str:
    """A tile index as zero-padded 3-digit path elements: ``1234067 -> "x001/x234/067"``.

    Raises:
        ValueError: ``n`` is negative.
    """
    if n < 0:
        raise ValueError(f"tile index must not be negative, got {n}")
    out = f"{n % 1000:03d}"
    n //= 1000
    while n > 0:
        out = f"x{n % 1000:03d}/{out}"
        n //= 1000
    return out


def _suffix(width: int) -> str:
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]``, e.g. ``tile_path(0, 1234, 5) == "tile/0/x001/234.p/5"``.

    Raises:
        ValueError: level not in 0..63, negative index, or width not in 1..256.
    """
    _check_tile(level, index, width)
    return f"tile/{level}/{format_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """``tile/entries/<N>[.p/<W>]``, the entry bundle for level-0 tile ``index``.

    Raises:
        ValueError: negative index, or width not in 1..256.
    """
    _check_tile(None, index, width)
    return f"tile/entries/{format_index(index)}{_suffix(width)}"


def parse_tile_path(path: str) -> TilePath:
    """Parse a tile or entry-bundle path, accepting only the canonical form a log serves.

    The path must start with ``tile/`` (no leading slash, no URL prefix).

    Raises:
        TilePathError: with the reason (non-canonical level, index or width, missing or
            extra ``x``, trailing slash, non-ASCII digits, ...).
    """
    if not path.startswith("tile/"):
        raise TilePathError(path, "does not start with 'tile/'")
    if not path.isascii():
        raise TilePathError(path, "contains non-ASCII characters")
    parts = path.split("/")
    if len(parts) < 3:
        raise TilePathError(path, "missing tile index")
    level: int | None
    if parts[1] == "entries":
        level = None
    elif is_decimal(parts[1]):
        if len(parts[1]) > 2 or int(parts[1]) > MAX_LEVEL:
            raise TilePathError(path, f"level {parts[1]} is larger than {MAX_LEVEL}")
        level = int(parts[1])
    else:
        raise TilePathError(path, f"level {parts[1]!r} is not a canonical decimal")
    groups = parts[2:]
    width = TILE_WIDTH
    if len(groups) >= 2 and groups[-2].endswith(".p"):
        w = groups[-1]
        if not is_decimal(w) or len(w) > 3 or not 1 <= int(w) < TILE_WIDTH:
            raise TilePathError(path, f"partial width {w!r} is not a decimal in 1..255")
        width = int(w)
        groups = [*groups[:-2], groups[-2][: -len(".p")]]
    for g in groups[:-1]:
        if not _X_GROUP.fullmatch(g):
            raise TilePathError(path, f"index element {g!r} is not 'x' and 3 digits")
    if not _LAST_GROUP.fullmatch(groups[-1]):
        raise TilePathError(path, f"last index element {groups[-1]!r} is not 3 digits")
    if len(groups) > 1 and groups[0] == "x000":
        raise TilePathError(path, "index has a leading zero group")
    index = 0
    for g in groups:
        index = index * 1000 + int(g[-3:])
    if index >= _MAX_INDEX:
        raise TilePathError(path, "index is too large")
    tile = TilePath(level, index, width)
    if tile.path != path:  # belt and braces: only the exact canonical form is accepted
        raise TilePathError(path, f"not canonical (expected {tile.path!r})")
    return tile


def format_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Encode 1..256 entries as an entry bundle.

    Raises:
        EntryError: an entry is empty or longer than 65535 bytes.
        ValueError: there are no entries, or more than 256.
    """
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise ValueError(f"an entry bundle holds 1..{TILE_WIDTH} entries, got {len(entries)}")
    sizes = list(map(len, entries))
    if min(sizes) < 1 or max(sizes) > MAX_ENTRY_SIZE:
        i = next(i for i, n in enumerate(sizes) if not 0 < n <= MAX_ENTRY_SIZE)
        raise EntryError(f"entry {i} is {sizes[i]} bytes; entries must be 1..{MAX_ENTRY_SIZE}")
    # Length prefixes and entries interleaved by C loops (a bulk append formats ~10^5).
    out: list[bytes] = [b""] * (2 * len(entries))
    out[0::2] = map(_U16.pack, sizes)
    out[1::2] = entries
    return b"".join(out)


def parse_entry_bundle(data: bytes, count: int | None = None) -> list[bytes]:
    """Decode an entry bundle; with ``count``, require exactly that many entries.

    Raises:
        FormatError: empty bundle, truncated length or entry, zero-length entry, more than 256
            entries, trailing bytes, or a different number of entries than ``count``.
        ValueError: ``count`` is not in 1..256.
    """
    if count is not None and not 1 <= count <= TILE_WIDTH:
        raise ValueError(f"an entry bundle holds 1..{TILE_WIDTH} entries, not {count}")
    if not data:
        raise FormatError("entry bundle", "empty")
    entries: list[bytes] = []
    limit = TILE_WIDTH if count is None else count
    pos, end = 0, len(data)
    while pos < end:
        if len(entries) == limit:
            what = (
                "more than 256 entries"
                if count is None
                else f"trailing bytes after {count} entries"
            )
            raise FormatError("entry bundle", f"{what} (at byte {pos})", data[pos : pos + 16])
        if end - pos < 2:
            raise FormatError("entry bundle", f"truncated length at byte {pos}")
        n = (data[pos] << 8) | data[pos + 1]
        if n == 0:
            raise FormatError("entry bundle", f"zero-length entry {len(entries)} at byte {pos}")
        pos += 2
        if end - pos < n:
            raise FormatError(
                "entry bundle",
                f"entry {len(entries)} truncated: {n} bytes announced, {end - pos} left",
            )
        entries.append(bytes(data[pos : pos + n]))
        pos += n
    if count is not None and len(entries) != count:
        raise FormatError("entry bundle", f"has {len(entries)} entries, expected {count}")
    return entries


def tile_width(level: int, index: int, size: int) -> int:
    """The width of tile ``(level, index)`` in a tree of ``size`` (0 if it does not exist)."""
    if level < 0 or index < 0 or size < 0:
        return 0
    hashes = size >> (TILE_HEIGHT * level)  # hashes at this level (complete subtrees)
    return max(0, min(TILE_WIDTH, hashes - index * TILE_WIDTH))


def tiles_for_size(size: int) -> list[TilePath]:
    """Every hash tile (level >= 0) of a tree of ``size``, by level then index, partial included.

    Size 70,000 gives 273 full level-0 tiles, ``tile/0/273.p/112``, ``tile/1/000``,
    ``tile/1/001.p/17`` and ``tile/2/000.p/1``.
    """
    out: list[TilePath] = []
    level = 0
    hashes = size
    while hashes > 0:
        full, partial = divmod(hashes, TILE_WIDTH)
        out.extend(TilePath(level, n) for n in range(full))
        if partial:
            out.append(TilePath(level, full, partial))
        level += 1
        hashes >>= TILE_HEIGHT
    return out


def read_tile_hashes(data: bytes, width: int) -> list[bytes]:
    """Split a tile into its ``width`` hashes.

    Raises:
        FormatError: ``len(data) != 32 * width``.
    """
    if len(data) != HASH_SIZE * width:
        raise FormatError(
            "tile", f"{len(data)} bytes, expected {HASH_SIZE * width} for width {width}"
        )
    return [bytes(data[i : i + HASH_SIZE]) for i in range(0, len(data), HASH_SIZE)]


_Expanded = list[list[bytes]]  # [height][position] -> hash, for the complete nodes of one tile
_Key = tuple[int, int, int]  # (level, index, width)


class EntryMismatchError(ProofError):
    """An entry whose leaf hash is not its hash in the level-0 tile.

    Attributes:
        index: the entry's index in the log.
        tile: the index of the level-0 tile (and of its entry bundle).
    """

    def __init__(self, index: int, tile: int) -> None:
        self.index = index
        self.tile = tile
        super().__init__(f"entry {index} does not match its leaf hash in tile 0/{tile}")


def verify_entries(
    entries: Sequence[bytes], tile_hashes: bytes, tile: int, start: int = 0
) -> list[bytes]:
    """The leaf hashes of ``entries[start:]``, each checked against level-0 tile ``tile``.

    ``entries`` is the entry bundle of that tile and ``tile_hashes`` the tile's bytes
    (32 bytes per leaf hash, as served). This is the one place where entries are
    held against the tree: the tiles are unsigned, but they hash up to a signed root,
    so an entry that matches its tile hash is the entry the checkpoint commits to.

    Raises:
        EntryMismatchError: the first entry from ``start`` on whose leaf hash differs
            (or has no hash in the tile).
    """
    hashes = [leaf_hash(e) for e in entries[start:]]
    if b"".join(hashes) != tile_hashes[start * HASH_SIZE : len(entries) * HASH_SIZE]:
        for i, h in enumerate(hashes, start):
            if h != tile_hashes[i * HASH_SIZE : (i + 1) * HASH_SIZE]:
                raise EntryMismatchError(tile * TILE_WIDTH + i, tile)
    return hashes


class TileCache:
    """A bounded LRU of *expanded* tiles, shared by the :class:`TileReader` s of one log.

    An expanded tile keeps, for each height ``r`` inside the tile, the hashes of its complete
    subtrees of height ``r`` (height 0 is the tile itself); heights are computed only when first
    asked for. A full tile expanded to height 7 holds 511 hashes, about 37 KiB of Python objects,
    so the default 1,024 tiles take about 38 MiB.

    Use one cache per log, and only for tiles that are trusted (the log's own storage) or that a
    verified checkpoint covers: entries are keyed by ``(level, index, width)``, and a full tile
    also answers for narrower widths of the same tile.
    """

    def __init__(self, max_tiles: int = 1024) -> None:
        if max_tiles < 1:
            raise ValueError("a tile cache holds at least one tile")
        self.max_tiles = max_tiles
        self._tiles: OrderedDict[_Key, _Expanded] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tiles)

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()

    def _get(self, key: _Key) -> tuple[_Key, _Expanded | None]:
        tiles = self._tiles
        with self._lock:
            exp = tiles.get(key)
            if exp is None and key[2] != TILE_WIDTH:
                full = (key[0], key[1], TILE_WIDTH)
                exp = tiles.get(full)
                if exp is not None:
                    key = full
            if exp is not None:
                tiles.move_to_end(key)
            return key, exp

    def _put(self, key: _Key, exp: _Expanded) -> None:
        tiles = self._tiles
        with self._lock:
            tiles[key] = exp
            tiles.move_to_end(key)
            while len(tiles) > self.max_tiles:
                tiles.popitem(last=False)


def _expanded(exp: _Expanded, height: int) -> _Expanded:
    """A copy of an expanded tile with heights added up to ``height`` (incomplete pairs dropped).

    Cached tiles are never mutated, so readers in other threads never see a half-built one.
    """
    sha = _sha256
    out = list(exp)
    while len(out) <= height:
        prev = out[-1]
        out.append(
            [sha(b"\x01" + prev[i] + prev[i + 1]).digest() for i in range(0, len(prev) - 1, 2)]
        )
    return out


class TileReader:
    """A :data:`~overt.formats.merkle.SubtreeHash` for the tree of ``size`` served as tiles.

    ``reader(lo, hi)`` returns ``MTH(D[lo:hi])``. A complete aligned subtree of height
    ``8*L + r`` is one hash of level-``L`` tile expanded ``r`` heights; a range ending at the
    tree size is assembled from the complete subtrees it splits into (and remembered); any
    other range is split the RFC 6962 way. Keep the reader (or share its :class:`TileCache`)
    to keep tiles warm between proofs.
    """

    __slots__ = ("_cache", "_edges", "_get_tile", "_last", "size")

    def __init__(self, get_tile: GetTile, size: int, cache: TileCache | None = None) -> None:
        if size < 0:
            raise ValueError(f"tree size must not be negative, got {size}")
        self._get_tile = get_tile
        self.size = size
        self._cache = TileCache() if cache is None else cache
        self._edges: dict[int, bytes] = {}
        # The last tile used, keyed (index << 6 | level), as one tuple so that threads swap it
        # atomically: the proof generators ask for up to 8 subtrees of one tile in a row.
        self._last: tuple[int, _Expanded] = (-1, [])

    def __call__(self, lo: int, hi: int) -> bytes:
        m = hi - lo - 1
        if m >= 0 and not (m + 1) & m and not lo & m and lo >= 0 and hi <= self.size:
            # A complete aligned subtree of height h = 8 * level + r: the hot path of every
            # proof, so _complete() is inlined here and the constants written out (8, 255).
            height = m.bit_length()
            shift = height & ~7
            r = height & 7
            key = (lo >> (shift + 8) << 6) | (height >> 3)
            last_key, exp = self._last
            if last_key != key or len(exp) <= r:
                exp = self._tile(height >> 3, lo >> (shift + 8), r)
                self._last = (key, exp)
            return exp[r][(lo >> (shift + r)) & (255 >> r)]
        if not 0 <= lo <= hi <= self.size:
            raise ProofRequestError(f"range [{lo}, {hi}) is not in a tree of size {self.size}")
        if m < 0:
            return EMPTY_ROOT
        if hi == self.size:
            h = self._edges.get(lo)
            if h is None:
                h = self._mth(lo, hi)
                if len(self._edges) < 256:
                    self._edges[lo] = h
            return h
        return self._mth(lo, hi)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0 and lo & (n - 1) == 0:
            return self._complete(lo, n.bit_length() - 1)
        k = 1 << ((n - 1).bit_length() - 1)
        return _sha256(b"\x01" + self._mth(lo, lo + k) + self._mth(lo + k, hi)).digest()

    def _complete(self, lo: int, height: int) -> bytes:
        """The hash of the complete subtree of ``2**height`` leaves starting at ``lo``."""
        level, r = divmod(height, TILE_HEIGHT)
        shift = TILE_HEIGHT * level
        index = lo >> (shift + TILE_HEIGHT)
        exp = self._tile(level, index, r)
        return exp[r][(lo >> (shift + r)) & ((TILE_WIDTH >> r) - 1)]

    def _tile(self, level: int, index: int, height: int) -> _Expanded:
        """Tile ``(level, index)`` expanded to at least ``height``, from the cache or fetched.

        Raises:
            FormatError: the tile source returned the wrong number of bytes.
        """
        shift = TILE_HEIGHT * level
        width = min(TILE_WIDTH, (self.size >> shift) - (index << TILE_HEIGHT))
        key, exp = self._cache._get((level, index, width))
        if exp is None:
            data = self._get_tile(level, index, width)
            if len(data) != HASH_SIZE * width:
                raise FormatError(
                    "tile",
                    f"{tile_path(level, index, width)} has {len(data)} bytes,"
                    f" expected {HASH_SIZE * width}",
                )
            exp = _expanded([read_tile_hashes(data, width)], height)
            self._cache._put(key, exp)
        elif len(exp) <= height:
            exp = _expanded(exp, height)
            self._cache._put(key, exp)
        return exp


def subtree_from_tiles(get_tile: GetTile, size: int, cache: TileCache | None = None) -> TileReader:
    """A :data:`~overt.formats.merkle.SubtreeHash` for the tree of ``size`` backed by tiles.

    ``get_tile(level, index, width)`` must return that tile's bytes; it is only asked for tiles
    that a tree of ``size`` has, at the width it has them (:func:`tile_width`). Pass a shared
    ``cache`` (one per log) to keep expanded tiles across readers and tree sizes.

    Raises (from the returned callable):
        ProofRequestError: a range outside ``[0, size)``.
        FormatError: ``get_tile`` returned the wrong number of bytes.
    """
    return TileReader(get_tile, size, cache)


def root_from_tiles(get_tile: GetTile, size: int, cache: TileCache | None = None) -> bytes:
    """The root hash of the tree of ``size`` computed from its tiles.

    Raises:
        FormatError: ``get_tile`` returned the wrong number of bytes.
    """
    return TileReader(get_tile, size, cache)(0, size)
