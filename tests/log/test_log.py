"""The log library: appends, dedup, proofs, persistence and crash recovery."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import overt.log.log
from overt.errors import ConfigError, EntryError, LogLockedError, NotFoundError
from overt.formats import merkle, tiles
from overt.formats.checkpoint import open_checkpoint
from overt.formats.note import parse_vkey
from overt.formats.proof import parse_proof, verify_proof
from overt.log.client import DirectorySource, verify_log
from overt.log.log import MAX_BATCH, Log

ORIGIN = "test.example/log"


@pytest.fixture
def log(tmp_path: Path) -> Log:
    lg = Log.create(tmp_path / "log", ORIGIN)
    yield lg
    lg.close()


def entries(n: int, start: int = 0, size: int = 40) -> list[bytes]:
    return [f"entry {i}".encode().ljust(size, b".") for i in range(start, start + n)]


def test_new_log_has_signed_empty_checkpoint(log: Log) -> None:
    signed = open_checkpoint(log.checkpoint(), parse_vkey(log.vkey), ORIGIN)
    assert signed.checkpoint.size == 0
    assert signed.checkpoint.root_hash == merkle.EMPTY_ROOT


def test_keys_and_token_are_private(log: Log) -> None:
    for name in ("log.skey", "token"):
        mode = stat.S_IMODE(os.stat(log.directory / name).st_mode)
        assert mode == 0o600, name


def test_appends_match_reference_tree(log: Log) -> None:
    ref = merkle.MemoryTree()
    # Batches that cross tile boundaries at several levels, one entry at a time too.
    for batch in (
        entries(1),
        entries(300, 1),
        entries(1, 301),
        entries(65536 - 302, 302),
        entries(700, 65534),
    ):
        log.add_many(batch)
    # Rebuild the reference from what the log says it holds.
    for i in range(log.size):
        ref.append(merkle.leaf_hash(log.entry(i)))
    cp = open_checkpoint(log.checkpoint(), parse_vkey(log.vkey)).checkpoint
    assert cp.size == log.size == 65536 + 698
    assert cp.root_hash == ref.root()


def test_dedup_returns_existing_index(log: Log) -> None:
    first = log.add_many(entries(10))
    assert first == list(range(10))
    again = log.add_many(entries(5, start=8))  # 8, 9 exist; 10..12 new
    assert again == [8, 9, 10, 11, 12]
    within = log.add_many([b"same", b"same", b"other", b"same"])
    assert within == [13, 13, 14, 13]
    assert log.size == 15


def test_dedup_survives_reopen(tmp_path: Path) -> None:
    with Log.create(tmp_path / "l", ORIGIN) as lg:
        lg.add_many(entries(600))
    with Log.open(tmp_path / "l") as lg:
        assert lg.add_many(entries(3, start=597)) == [597, 598, 599]
        assert lg.add(b"new") == 600


def test_entry_bounds(log: Log) -> None:
    with pytest.raises(EntryError):
        log.add(b"")
    with pytest.raises(EntryError):
        log.add(b"x" * 65536)
    # A bad entry anywhere in a batch appends nothing.
    with pytest.raises(EntryError):
        log.add_many([b"ok", b""])
    assert log.size == 0
    assert log.add(b"x" * 65535) == 0
    assert log.entry(0) == b"x" * 65535


def test_proofs_verify_for_every_index(log: Log) -> None:
    batch = entries(530)
    log.add_many(batch)
    verifier = parse_vkey(log.vkey)
    for i, e in enumerate(batch):
        proof = parse_proof(log.proof(i))
        assert proof.index == i
        verify_proof(proof, merkle.leaf_hash(e), verifier, ORIGIN)


def test_inclusion_and_consistency_against_reference(log: Log) -> None:
    ref = merkle.MemoryTree()
    sizes = []
    for n in (1, 2, 255, 1, 3000, 7):
        batch = entries(n, start=ref.size)
        log.add_many(batch)
        for e in batch:
            ref.append(merkle.leaf_hash(e))
        sizes.append(ref.size)
    for size in sizes:
        for index in {0, size // 2, size - 1}:
            assert log.inclusion_proof(index, size) == ref.inclusion_proof(index, size)
        for old in sizes:
            if old <= size:
                assert log.consistency_proof(old, size) == ref.consistency_proof(old, size)
    with pytest.raises(NotFoundError):
        log.inclusion_proof(ref.size, ref.size)
    with pytest.raises(NotFoundError):
        log.consistency_proof(0, 5)


def test_reads_beyond_tree_are_refused(log: Log) -> None:
    log.add_many(entries(10))
    assert len(log.read_tile(0, 0, 10)) == 320
    with pytest.raises(NotFoundError):
        log.read_tile(0, 0, 11)
    with pytest.raises(NotFoundError):
        log.read_tile(0, 0)
    with pytest.raises(NotFoundError):
        log.read_bundle(1, 1)
    with pytest.raises(NotFoundError):
        log.entry(10)


def test_second_process_is_locked_out(log: Log) -> None:
    with pytest.raises(LogLockedError):
        Log.open(log.directory)


def test_open_requires_a_log(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Log.open(tmp_path)
    with pytest.raises(ConfigError):
        Log.create(tmp_path / "x", "bad origin")


def test_create_refuses_existing_log(log: Log) -> None:
    with pytest.raises(ConfigError):
        Log.create(log.directory, ORIGIN)


def test_bulk_add_larger_than_one_batch(log: Log) -> None:
    n = overt.log.log._BULK_ENTRIES + 10
    batch = entries(n, size=16)
    assert log.add_many(batch) == list(range(n))
    result = verify_log(DirectorySource(log.directory), parse_vkey(log.vkey), ORIGIN)
    assert result.entries == n
    assert n > MAX_BATCH  # the server's passes are smaller


def test_bulk_add_dedups_across_its_passes(log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pass's hashes are looked up on a helper thread, possibly before the passes
    ahead of it are integrated: a duplicate of an entry an earlier pass of the same call
    logged must still get that entry's index, not a second one."""
    monkeypatch.setattr(overt.log.log, "_BULK_ENTRIES", 256)
    logged = entries(300, start=10_000)
    assert log.add_many(logged) == list(range(300))
    first = entries(500)
    batch = first + first[:256] + logged[::7] + entries(40, start=500) + first[255:260]
    want = [*range(300, 800), *range(300, 556), *range(0, 300, 7), *range(800, 840)]
    want += [*range(555, 560)]
    ref = merkle.MemoryTree()
    for e in logged + first + entries(40, start=500):
        ref.append(merkle.leaf_hash(e))
    for _ in range(3):  # again: every entry is logged by now
        assert log.add_many(batch) == want
        assert log.size == 840
        assert log.inclusion_proof(555) == ref.inclusion_proof(555)


def test_bulk_passes_are_capped_in_bytes(log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overt.log.log, "_BULK_BYTES", 256 * 1000)
    sizes = [40] * 300 + [3000] * 200 + [65535] * 3 + [5] * 700
    batch = [(b"%d." % i).ljust(n, b"x")[:n] for i, n in enumerate(sizes)]
    batch += [bytes([i]) for i in range(200)]  # 1 byte each
    ends = overt.log.log._check_entries(batch)
    log.add_many(entries(10))
    passes = overt.log.log._bulk_passes(batch, ends, 10)
    assert [e for p in passes for e in p] == batch
    # The first pass ends where the log's first tile does (a whole tile fits); in the
    # next ones less than a tile of 3000-byte and 64 KiB entries fits; the rest fits in one.
    assert [len(p) for p in passes] == [246, 138, 85, 33, 901]
    for p in passes:
        assert sum(map(len, p)) <= 256 * 1000
    assert log.add_many(batch) == list(range(10, 10 + len(batch)))
    result = verify_log(DirectorySource(log.directory), parse_vkey(log.vkey), ORIGIN)
    assert result.entries == 10 + len(batch)


def test_bulk_add_refuses_a_bad_entry_anywhere(log: Log) -> None:
    for bad in (b"", b"x" * (tiles.MAX_ENTRY_SIZE + 1)):
        with pytest.raises(EntryError):
            log.add_many([*entries(1000), bad, *entries(5, start=1000)])
    assert log.size == 0


def test_lagging_dedup_index_is_rebuilt_from_bundles(tmp_path: Path) -> None:
    """A crash after publishing but before the background index commit."""
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as lg:
        lg.add_many(entries(100))
    with Log.open(directory) as lg:
        lg.index.truncate(37)  # as if the last commits never happened
    with Log.open(directory) as lg:
        assert lg.index.size() == 100
        assert lg.add_many(entries(5, start=98)) == [98, 99, 100, 101, 102]


def test_unacknowledged_batch_beyond_checkpoint_is_dropped(tmp_path: Path) -> None:
    """A crash after tiles were written but before the checkpoint was published."""
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as lg:
        lg.add_many(entries(100))
        old_checkpoint = lg.checkpoint()
        lg.add_many(entries(50, start=100))
    (directory / "checkpoint").write_bytes(old_checkpoint)
    (directory / "tiles" / "checkpoint").write_bytes(old_checkpoint)
    with Log.open(directory) as lg:
        assert lg.size == 100 and lg.index.size() == 100
        # The dropped entries were never acknowledged; they are new again.
        assert lg.add_many(entries(2, start=149)) == [100, 101]
        verify_log(DirectorySource(directory), parse_vkey(lg.vkey), ORIGIN)


def test_interrupted_publication_is_finished_on_open(tmp_path: Path) -> None:
    """A crash after signing a checkpoint but before serving it (no witnesses)."""
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as lg:
        lg.add_many(entries(10))
        old = lg.checkpoint()
        lg.add_many(entries(10, start=10))
        new = lg.checkpoint()
    (directory / "tiles" / "checkpoint").write_bytes(old)
    with Log.open(directory) as lg:
        assert lg.checkpoint() == new
        assert (directory / "tiles" / "checkpoint").read_bytes() == new


def test_stray_tiles_from_an_unfinished_batch_are_overwritten(tmp_path: Path) -> None:
    """A crash before the index commit leaves tiles beyond the size; they must not matter."""
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as lg:
        lg.add_many(entries(10))
    # Tiles a crashed batch would have written for size 20 with other content.
    store = directory / "tiles"
    (store / tiles.tile_path(0, 0, 20)).parent.mkdir(parents=True, exist_ok=True)
    (store / tiles.tile_path(0, 0, 20)).write_bytes(b"\xff" * 640)
    with Log.open(directory) as lg:
        with pytest.raises(NotFoundError):
            lg.read_tile(0, 0, 20)
        lg.add_many(entries(10, start=10))
        verify_log(DirectorySource(directory), parse_vkey(lg.vkey), ORIGIN)
