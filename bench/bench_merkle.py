"""Merkle hashing and proofs from tiles (``python -m bench merkle``).

Figures: ``root_hash`` and ``CompactRange.extend`` throughput (a log appending 50,000 entries/s
needs at least that many leaves/s, with headroom), and inclusion / consistency proofs computed
from warm tiles on a 1,000,000-entry log (target <= 20 us per inclusion proof). Times are CPU
time of this process, best of three runs.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from bench import Result
from overt.formats.merkle import (
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_inclusion,
)
from overt.formats.tiles import TILE_WIDTH, TileCache, subtree_from_tiles, tile_width


def _best(fn: Callable[[], object], repeats: int) -> float:
    """The best of ``repeats`` runs, in CPU seconds of this process (all of this is single-
    threaded CPU work, and CPU time does not count the time other processes hold the CPU)."""
    best = float("inf")
    for _ in range(repeats):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def _tiles(leaves: list[bytes]) -> list[bytes]:
    """Each level's hashes, concatenated: level 0 is the leaves, level L+1 the full tiles' roots."""
    levels = [b"".join(leaves)]
    while len(levels[-1]) >= 32 * TILE_WIDTH:
        prev = levels[-1]
        full = len(prev) // (32 * TILE_WIDTH)
        levels.append(
            b"".join(
                root_hash([prev[j : j + 32] for j in range(i, i + 32 * TILE_WIDTH, 32)])
                for i in range(0, full * 32 * TILE_WIDTH, 32 * TILE_WIDTH)
            )
        )
    return levels


def run(quick: bool) -> list[Result]:
    n = 100_000 if quick else 1_000_000
    proofs = 2_000 if quick else 20_000
    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(n)]
    out: list[Result] = []

    t = _best(lambda: leaf_hash(b"x" * 200), 1)  # warm up
    t = _best(lambda: [leaf_hash(i.to_bytes(8, "big")) for i in range(100_000)], 3)
    out.append(Result("leaf_hash (8-byte entries)", 100_000 / t, "hashes/s"))

    t = _best(lambda: root_hash(leaves), 3)
    rate = n / t
    out.append(
        Result(f"root_hash over {n:,} leaves", rate, "leaves/s", ">= 50,000", rate >= 50_000)
    )

    def extend() -> None:
        cr = CompactRange()
        cr.extend(leaves)

    t = _best(extend, 3)
    rate = n / t
    out.append(Result("CompactRange.extend", rate, "leaves/s", ">= 50,000", rate >= 50_000))

    def append() -> None:
        cr = CompactRange()
        for h in leaves[:100_000]:
            cr.append(h)

    t = _best(append, 3)
    out.append(Result("CompactRange.append", 100_000 / t, "leaves/s", ">= 50,000"))

    levels = _tiles(leaves)

    def get_tile(level: int, index: int, width: int) -> bytes:
        start = index * TILE_WIDTH * 32
        return levels[level][start : start + width * 32]

    assert all(tile_width(0, i, n) for i in range(n // TILE_WIDTH))
    root = root_hash(leaves)
    cache = TileCache(max_tiles=n // TILE_WIDTH + 64)
    rng = random.Random(0)
    indices = [rng.randrange(n) for _ in range(proofs)]

    reader = subtree_from_tiles(get_tile, n, cache)
    t = time.process_time()
    for i in indices:
        inclusion_proof(i, n, reader)
    cold = (time.process_time() - t) / proofs * 1e6
    out.append(Result("inclusion proof, cold tiles", cold, "us/proof", note=f"{n:,} leaves"))

    for i in range(0, n, TILE_WIDTH):  # warm every tile
        inclusion_proof(i, n, reader)
    fresh = subtree_from_tiles(get_tile, n, cache)  # a new reader, as per request, shared cache

    def incl() -> None:
        for i in indices:
            inclusion_proof(i, n, fresh)

    us = _best(incl, 3) / proofs * 1e6
    out.append(
        Result("inclusion proof, warm tiles", us, "us/proof", "<= 20", us <= 20, f"{n:,} leaves")
    )

    olds = [max(1, i) for i in indices]

    def cons() -> None:
        for m in olds:
            consistency_proof(m, n, fresh)

    us = _best(cons, 3) / proofs * 1e6
    out.append(Result("consistency proof, warm tiles", us, "us/proof", note=f"to {n:,}"))

    sample = indices[:2000]
    made = [inclusion_proof(i, n, fresh) for i in sample]

    def verify() -> None:
        for i, p in zip(sample, made, strict=True):
            verify_inclusion(leaves[i], i, n, p, root)

    us = _best(verify, 3) / len(sample) * 1e6
    out.append(Result("verify_inclusion", us, "us/proof", note=f"{n:,} leaves"))
    return out
