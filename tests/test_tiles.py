"""c2sp.org/tlog-tiles: paths, entry bundles, the tiles of a tree, and proofs computed from tiles.

Proofs from tiles are checked against :class:`MemoryTree` (itself checked against a naive RFC 6962
tree in test_merkle.py) for every tree size up to 600 and for the spec's 70,000-entry example,
with a tile source that fails the test if asked for a tile the tree does not have.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import EntryError, FormatError, TilePathError
from overt.formats import tiles
from overt.formats.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryTree,
    ProofRequestError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from overt.formats.tiles import (
    MAX_ENTRY_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    TileCache,
    TilePath,
    entries_path,
    format_entry_bundle,
    format_index,
    parse_entry_bundle,
    parse_tile_path,
    read_tile_hashes,
    root_from_tiles,
    subtree_from_tiles,
    tile_path,
    tile_width,
    tiles_for_size,
)


def test_exported_names() -> None:
    assert set(tiles.__all__) == {
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
    }
    assert (TILE_HEIGHT, TILE_WIDTH, MAX_ENTRY_SIZE) == (8, 256, 65535)


# --- paths ---------------------------------------------------------------------------------------


def test_spec_examples(reference: Path) -> None:
    spec = (reference / "specs" / "c2sp" / "tlog-tiles.md").read_text()
    assert "index 1234067 will be encoded as\n`x001/x234/067`" in spec
    assert format_index(1234067) == "x001/x234/067"
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(0, 1234, 5) == "tile/0/x001/234.p/5"
    assert entries_path(273, 112) == "tile/entries/273.p/112"
    assert entries_path(0) == "tile/entries/000"
    assert tile_path(63, 0, 255) == "tile/63/000.p/255"


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "000"),
        (5, "005"),
        (999, "999"),
        (1000, "x001/000"),
        (1001, "x001/001"),
        (999_999, "x999/999"),
        (1_000_000, "x001/x000/000"),
        (1234067, "x001/x234/067"),
        (2**64 - 1, "x018/x446/x744/x073/x709/x551/615"),
    ],
)
def test_format_index(n: int, text: str) -> None:
    assert format_index(n) == text


def test_formatters_refuse_impossible_tiles() -> None:
    with pytest.raises(ValueError):
        format_index(-1)
    for level, index, width in [(64, 0, 1), (-1, 0, 1), (0, -1, 1), (0, 0, 0), (0, 0, 257)]:
        with pytest.raises(ValueError):
            tile_path(level, index, width)
        with pytest.raises(ValueError):
            TilePath(level, index, width)
    with pytest.raises(ValueError):
        entries_path(0, 0)
    with pytest.raises(ValueError):
        entries_path(2**64)


tile_paths = st.builds(
    TilePath,
    level=st.none() | st.integers(0, 63),
    index=st.integers(0, 2000) | st.integers(0, 2**64 - 1),
    width=st.integers(1, 256) | st.just(256),
)


@settings(max_examples=500)
@given(tile_paths)
def test_parse_format_round_trip(tp: TilePath) -> None:
    text = tp.path
    assert str(tp) == text
    assert parse_tile_path(text) == tp
    if tp.level is None:
        assert text == entries_path(tp.index, tp.width)
    else:
        assert text == tile_path(tp.level, tp.index, tp.width)
    assert (".p/" in text) == (tp.width != 256)


MALFORMED = [
    "",
    "tile",
    "tile/",
    "tile/0",
    "tile/0/",
    "/tile/0/000",
    "https://log.example/tile/0/000",
    "tiles/0/000",
    "Tile/0/000",
    "./tile/0/000",
    # level
    "tile/00/000",
    "tile/01/000",
    "tile/64/000",
    "tile/100/000",
    "tile/999999999999999999999/000",
    "tile/-1/000",
    "tile/+1/000",
    "tile/ 1/000",
    "tile/1 /000",
    "tile/1_0/000",
    "tile/0x1/000",
    "tile//000",
    "tile/entry/000",
    "tile/data/000",
    "tile/Entries/000",
    # index
    "tile/0/0",
    "tile/0/00",
    "tile/0/0000",
    "tile/0/x000",
    "tile/0/x001",
    "tile/0/001/000",
    "tile/0/x001/x000",
    "tile/0/x000/001",
    "tile/0/x000/x001/000",
    "tile/0/x01/000",
    "tile/0/x0001/000",
    "tile/0/X001/000",
    "tile/0/xx01/000",
    "tile/0/x001//000",
    "tile/0//000",
    "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
    "tile/entries/x000",
    "tile/entries/x000/000",
    # width
    "tile/0/000.p/0",
    "tile/0/000.p/256",
    "tile/0/000.p/05",
    "tile/0/000.p/005",
    "tile/0/000.p/",
    "tile/0/000.p",
    "tile/0/000.p/1000",
    "tile/0/000.p/-1",
    "tile/0/000.p/+5",
    "tile/0/000.p/1/",
    "tile/0/000.P/5",
    "tile/0/000.p./5",
    "tile/0/x001.p/5",
    "tile/0/000.p/5.p/5",
    "tile/0/000.p/5/000",
    "tile/entries/000.p/256",
    "tile/entries/000.p/0",
    # trailing slash, whitespace, non-ASCII digits
    "tile/0/000/",
    "tile/entries/000/",
    "tile/0/000.p/5/",
    "tile/0/000\n",
    " tile/0/000",
    "tile/0/000 ",
    "tile/0/\u0663\u0663\u0663",
    "tile/\u0663/000",
    "tile/0/000.p/\u0663",
    "tile/0/\uff10\uff10\uff11",
    "tile/0/x\u0661\u0662\u0663/000",
    "tile/0/000\x00",
]


@pytest.mark.parametrize("path", MALFORMED)
def test_malformed_paths_are_rejected(path: str) -> None:
    with pytest.raises(TilePathError) as err:
        parse_tile_path(path)
    assert err.value.path == path
    assert err.value.reason


def test_rejection_reasons_are_specific() -> None:
    reasons = {
        "tile/64/000": "larger than 63",
        "tile/01/000": "not a canonical decimal",
        "tile/0/001/000": "is not 'x' and 3 digits",
        "tile/0/x000": "last index element",
        "tile/0/x000/001": "leading zero group",
        "tile/0/000.p/256": "partial width",
        "tile/0/\u0663\u0663\u0663": "non-ASCII",
        "/tile/0/000": "does not start with 'tile/'",
    }
    for path, reason in reasons.items():
        with pytest.raises(TilePathError, match=reason):
            parse_tile_path(path)


VALID = ["tile/0/000", "tile/63/x001/x234/067.p/255", "tile/entries/x012/345.p/7", "tile/1/999"]


@pytest.mark.parametrize("path", VALID)
def test_every_one_character_change_is_rejected_or_canonical(path: str) -> None:
    """Deleting, replacing or inserting one character never yields a non-canonical accept."""
    alphabet = "0123456789xp./-e\u0663 "
    variants = {path[:i] + path[i + 1 :] for i in range(len(path))}
    for i in range(len(path) + 1):
        for c in alphabet:
            variants.add(path[:i] + c + path[i:])
            if i < len(path):
                variants.add(path[:i] + c + path[i + 1 :])
    accepted = 0
    for v in variants:
        try:
            tp = parse_tile_path(v)
        except TilePathError:
            continue
        accepted += 1
        assert tp.path == v  # anything accepted is exactly what the formatter writes
    assert accepted < len(variants) // 4


@settings(max_examples=500)
@given(st.text(alphabet="tile/entrsx0123456789.p\u0663", max_size=30))
def test_accepted_paths_are_canonical(text: str) -> None:
    try:
        tp = parse_tile_path(text)
    except TilePathError:
        return
    assert tp.path == text


# --- entry bundles -------------------------------------------------------------------------------


entry_lists = st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=256)


@settings(max_examples=200)
@given(entry_lists)
def test_entry_bundle_round_trip(entries: list[bytes]) -> None:
    data = format_entry_bundle(entries)
    assert len(data) == sum(2 + len(e) for e in entries)
    assert parse_entry_bundle(data) == entries
    assert parse_entry_bundle(data, len(entries)) == entries


def test_entry_bundle_encoding() -> None:
    assert format_entry_bundle([b"a", b"bc"]) == b"\x00\x01a\x00\x02bc"
    big = b"\xff" * MAX_ENTRY_SIZE
    data = format_entry_bundle([big, b"x"])
    assert data[:2] == b"\xff\xff"
    assert parse_entry_bundle(data, 2) == [big, b"x"]
    full = [bytes([i]) for i in range(256)]
    assert parse_entry_bundle(format_entry_bundle(full), 256) == full


def test_entry_bundle_refuses_unloggable_entries() -> None:
    with pytest.raises(EntryError, match="entry 1 is 0 bytes"):
        format_entry_bundle([b"a", b""])
    with pytest.raises(EntryError, match="65536 bytes"):
        format_entry_bundle([b"a" * (MAX_ENTRY_SIZE + 1)])
    with pytest.raises(ValueError):
        format_entry_bundle([])
    with pytest.raises(ValueError):
        format_entry_bundle([b"a"] * 257)


def test_every_truncation_of_a_bundle_is_rejected() -> None:
    entries = [b"first", b"\x00" * 300, b"x", bytes(range(256))]
    data = format_entry_bundle(entries)
    boundaries = set()
    pos = 0
    for e in entries:
        pos += 2 + len(e)
        boundaries.add(pos)
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            parse_entry_bundle(data[:cut], len(entries))
        if cut not in boundaries:  # at a boundary it is a shorter, well-formed bundle
            with pytest.raises(FormatError):
                parse_entry_bundle(data[:cut])


@pytest.mark.parametrize(
    ("data", "count", "reason"),
    [
        (b"", None, "empty"),
        (b"\x00\x01a\x00", None, "truncated length"),
        (b"\x00\x01a\x00\x00", None, "zero-length entry 1"),
        (b"\x00\x00", None, "zero-length entry 0"),
        (b"\x00\x01a\x00\x01b", 1, "trailing bytes after 1 entries"),
        (b"\x00\x01a", 2, "has 1 entries, expected 2"),
        (b"\x00\x05abc", None, "5 bytes announced, 3 left"),
        (b"\x00\x01a" * 257, None, "more than 256 entries"),
    ],
)
def test_malformed_bundles(data: bytes, count: int | None, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_entry_bundle(data, count)


def test_bundle_count_must_be_possible() -> None:
    for count in (0, 257, -1):
        with pytest.raises(ValueError):
            parse_entry_bundle(b"\x00\x01a", count)


# --- the tiles of a tree -------------------------------------------------------------------------


def test_tiles_for_size_spec_example() -> None:
    got = tiles_for_size(70_000)
    level0 = [t for t in got if t.level == 0]
    assert len(level0) == 274
    assert level0[:273] == [TilePath(0, n) for n in range(273)]
    assert level0[273] == TilePath(0, 273, 112)
    assert [t for t in got if t.level != 0] == [
        TilePath(1, 0),
        TilePath(1, 1, 17),
        TilePath(2, 0, 1),
    ]
    assert tiles_for_size(256) == [TilePath(0, 0), TilePath(1, 0, 1)]
    assert tiles_for_size(0) == []
    assert tiles_for_size(1) == [TilePath(0, 0, 1)]
    assert tiles_for_size(65536)[-2:] == [TilePath(1, 0), TilePath(2, 0, 1)]


@pytest.mark.parametrize("size", [*range(0, 700), 65535, 65536, 65537, 70_000, 16_777_217])
def test_tile_width_agrees_with_tiles_for_size(size: int) -> None:
    listed = tiles_for_size(size)
    order = [(t.level or 0, t.index) for t in listed]
    assert order == sorted(order)
    assert all(t.level is not None for t in listed)
    for t in listed:
        assert t.level is not None
        assert tile_width(t.level, t.index, size) == t.width
    # Every tile is a real slice of the tree: its last hash ends at or before the size.
    for t in listed:
        assert t.level is not None
        assert ((t.index * 256 + t.width) << (8 * t.level)) <= size
    # And nothing else exists.
    by_level: dict[int, int] = {}
    for t in listed:
        assert t.level is not None
        by_level[t.level] = by_level.get(t.level, 0) + 1
    for level in range(8):
        n = by_level.get(level, 0)
        assert tile_width(level, n, size) == 0
    assert tile_width(-1, 0, size) == tile_width(0, -1, size) == 0


def test_read_tile_hashes() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(5)]
    assert read_tile_hashes(b"".join(hashes), 5) == hashes
    with pytest.raises(FormatError, match="expected 160"):
        read_tile_hashes(b"".join(hashes)[:-1], 5)
    with pytest.raises(FormatError):
        read_tile_hashes(b"".join(hashes), 4)


# --- proofs from tiles ---------------------------------------------------------------------------

BIG = 70_000


@pytest.fixture(scope="module")
def leaves() -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(BIG)]


@pytest.fixture(scope="module")
def tree(leaves: list[bytes]) -> MemoryTree:
    return MemoryTree(leaves)


Fetch = tuple[int, int, int]


def tile_source(
    tree: MemoryTree, size: int, fetched: list[Fetch] | None = None
) -> Callable[[int, int, int], bytes]:
    """Serve the tiles of ``tree`` at ``size``, failing on a tile that size does not have."""

    def get_tile(level: int, index: int, width: int) -> bytes:
        assert width == tile_width(level, index, size) > 0, (level, index, width, size)
        if fetched is not None:
            fetched.append((level, index, width))
        span = 1 << (TILE_HEIGHT * level)
        first = index * TILE_WIDTH
        return b"".join(
            tree.subtree((first + i) * span, (first + i + 1) * span) for i in range(width)
        )

    return get_tile


def _proof_points(size: int) -> list[int]:
    points = {0, 1, size // 2, size - 2, size - 1, 127, 128, 255, 256, 257, 511, 512, 513}
    return sorted(p for p in points if 0 <= p < size)


@pytest.mark.parametrize("start", range(0, 601, 50))
def test_proofs_from_tiles_match_memory_tree(tree: MemoryTree, start: int) -> None:
    for size in range(start, min(start + 50, 601)):
        cache = TileCache()
        reader = subtree_from_tiles(tile_source(tree, size), size, cache)
        assert reader(0, size) == tree.root(size)
        assert root_from_tiles(tile_source(tree, size), size) == tree.root(size)
        for i in _proof_points(size):
            assert inclusion_proof(i, size, reader) == tree.inclusion_proof(i, size), (i, size)
            if i > 0:
                assert consistency_proof(i, size, reader) == tree.consistency_proof(i, size)


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 300, 511, 512, 513, 600])
def test_every_subtree_the_generators_ask_for(tree: MemoryTree, size: int) -> None:
    reader = subtree_from_tiles(tile_source(tree, size), size)
    for height in range(size.bit_length()):
        n = 1 << height
        for lo in range(0, size - n + 1, n):
            assert reader(lo, lo + n) == tree.subtree(lo, lo + n)
    for lo in range(size):  # every right edge, aligned or not
        assert reader(lo, size) == tree.subtree(lo, size), lo
    for i in range(size):
        assert inclusion_proof(i, size, reader) == tree.inclusion_proof(i, size)
    assert reader(size, size) == reader(0, 0) == EMPTY_ROOT


def test_arbitrary_ranges_are_computed_too(tree: MemoryTree) -> None:
    rng = random.Random(1)
    size = 5000
    reader = subtree_from_tiles(tile_source(tree, size), size)
    for _ in range(300):
        lo = rng.randrange(size)
        hi = rng.randrange(lo, size + 1)
        assert reader(lo, hi) == tree.subtree(lo, hi), (lo, hi)
    for lo, hi in [(-1, 3), (3, 2), (0, size + 1), (size, size + 1)]:
        with pytest.raises(ProofRequestError):
            reader(lo, hi)


def test_root_of_the_spec_example_fetches_one_tile_per_edge_level(tree: MemoryTree) -> None:
    # 70,000 = 65536 + 4096 + 256 + 64 + 32 + 16: the one hash of tile/2/000.p/1; from
    # tile/1/001.p/17, 16 hashes expanded 4 heights and one more hash; 112 leaf hashes.
    fetched: list[Fetch] = []
    assert root_from_tiles(tile_source(tree, BIG, fetched), BIG) == tree.root()
    assert sorted(fetched) == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]


def test_proofs_in_the_spec_example(tree: MemoryTree, leaves: list[bytes]) -> None:
    rng = random.Random(2)
    fetched: list[Fetch] = []
    reader = subtree_from_tiles(tile_source(tree, BIG, fetched), BIG)
    root = tree.root()
    for i in [0, 255, 256, 65535, 65536, 69631, 69632, BIG - 1, *rng.sample(range(BIG), 60)]:
        before = len(fetched)
        proof = inclusion_proof(i, BIG, reader)
        assert proof == tree.inclusion_proof(i)
        verify_inclusion(leaves[i], i, BIG, proof, root)
        assert len(fetched) - before <= 4  # at most one tile per level, plus the edge
    for old in [1, 255, 256, 257, 65536, 65537, 69999, *rng.sample(range(1, BIG), 40)]:
        proof = consistency_proof(old, BIG, reader)
        assert proof == tree.consistency_proof(old)
        verify_consistency(old, BIG, tree.root(old), root, proof)
    assert len(set(fetched)) == len(fetched)  # nothing fetched twice: the cache holds
    assert CompactRange.from_subtrees(BIG, reader) == CompactRange(
        BIG, CompactRange.from_subtrees(BIG, tree.subtree).hashes
    )


def test_warm_cache_serves_without_fetching(tree: MemoryTree) -> None:
    cache = TileCache()
    fetched: list[Fetch] = []
    first = subtree_from_tiles(tile_source(tree, BIG, fetched), BIG, cache)
    proofs = [inclusion_proof(i, BIG, first) for i in range(0, BIG, 997)]
    assert fetched
    fetched.clear()
    second = subtree_from_tiles(tile_source(tree, BIG, fetched), BIG, cache)
    assert [inclusion_proof(i, BIG, second) for i in range(0, BIG, 997)] == proofs
    assert fetched == []
    # A full tile in the cache also answers for a smaller tree's partial tile.
    fetched_small: list[Fetch] = []
    small = subtree_from_tiles(tile_source(tree, 300, fetched_small), 300, cache)
    assert small(0, 256) == tree.subtree(0, 256)
    assert small(0, 128) == tree.subtree(0, 128)
    assert fetched_small == []
    assert inclusion_proof(5, 300, small) == tree.inclusion_proof(5, 300)
    assert fetched_small == [(0, 1, 44)]


def test_tiny_cache_evicts_but_stays_correct(tree: MemoryTree) -> None:
    cache = TileCache(max_tiles=1)
    reader = subtree_from_tiles(tile_source(tree, BIG), BIG, cache)
    for i in range(0, BIG, 1999):
        assert inclusion_proof(i, BIG, reader) == tree.inclusion_proof(i)
        assert len(cache) <= 1
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError):
        TileCache(max_tiles=0)


def test_threads_share_a_cache(tree: MemoryTree) -> None:
    cache = TileCache(max_tiles=3)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(150):
                size = rng.randrange(1, BIG + 1)
                reader = subtree_from_tiles(tile_source(tree, size), size, cache)
                i = rng.randrange(size)
                assert inclusion_proof(i, size, reader) == tree.inclusion_proof(i, size)
        except BaseException as e:  # re-raised below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_tile_of_the_wrong_length_is_refused(tree: MemoryTree) -> None:
    good = tile_source(tree, 1000)

    def short(level: int, index: int, width: int) -> bytes:
        return good(level, index, width)[:-1]

    with pytest.raises(FormatError, match=r"tile/1/000\.p/3 has 95 bytes, expected 96"):
        root_from_tiles(short, 1000)
    with pytest.raises(ValueError):
        subtree_from_tiles(good, -1)
    assert root_from_tiles(good, 0) == EMPTY_ROOT
