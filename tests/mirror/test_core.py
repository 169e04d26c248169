"""overt.mirror.core: the mirror's decisions without I/O (pending checkpoint, upload checks,
package authentication, cosigning)."""

from __future__ import annotations

import pytest

from overt.errors import ConfigError
from overt.formats.checkpoint import Checkpoint, sign_checkpoint
from overt.formats.keytypes import Purpose, choose, generate
from overt.formats.merkle import EMPTY_ROOT, MemoryTree, leaf_hash
from overt.formats.mirror import EntryPackage, UploadHeader, package_range
from overt.formats.note import parse_note
from overt.formats.subtree import subtree_consistency_proof
from overt.formats.witness import AddCheckpointRequest
from overt.mirror.core import (
    MAX_EXCESS_ENTRIES,
    PENDING_KEPT,
    MirrorRecord,
    PendingCheckpoint,
    advance_pending,
    check_upload,
    cosign,
    verify_package,
)
from overt.mirror.errors import (
    MirrorConflictError,
    MirrorVerificationError,
    UnknownMirrorLogError,
)
from overt.witness.core import known_logs, verify_submission
from overt.witness.errors import WitnessConflictError, WitnessConsistencyError

ORIGIN = "core.test/log"
LOG = generate(choose("ed25519", Purpose.CHECKPOINT), ORIGIN, clock=lambda: 1_700_000_000)
MIRROR = generate(
    choose("ed25519", Purpose.COSIGNATURE), "core.test/mirror", clock=lambda: 1_700_000_000
)
LOGS = known_logs([LOG.verifier()])


def entry(i: int) -> bytes:
    return b"core entry %d" % i


TREE = MemoryTree(leaf_hash(entry(i)) for i in range(1000))


def note(size: int, root: bytes | None = None) -> bytes:
    return sign_checkpoint(Checkpoint(ORIGIN, size, TREE.root(size) if root is None else root), LOG)


def submit(record: MirrorRecord, size: int, old: int, root: bytes | None = None) -> MirrorRecord:
    proof = tuple(TREE.consistency_proof(old, size)) if 0 < old < size else ()
    request = AddCheckpointRequest(old, proof, note(size, root))
    return advance_pending(record, verify_submission(request, LOGS))


def package(start: int, end: int, size: int, i: int = 0, forged: int | None = None):  # type: ignore[no-untyped-def]
    rng = package_range(start, end, i)
    items = [entry(k) if k != forged else b"forged" for k in range(rng.start, rng.end)]
    proof = subtree_consistency_proof(rng.subtree_start, rng.end, size, TREE.subtree)
    held = [TREE.subtree(k, k + 1) for k in range(rng.subtree_start, rng.start)]
    return rng, EntryPackage(tuple(items), tuple(proof)), held


def test_advance_pending_is_a_witness_decision_without_a_cosignature() -> None:
    record = submit(MirrorRecord(ORIGIN), 300, 0)
    assert record.pending_size == 300 and record.mirror is None
    assert (
        parse_note(record.pending[-1].note).signatures[0].name == ORIGIN
    )  # the log's signature kept
    with pytest.raises(WitnessConflictError) as err:
        submit(record, 400, 0)
    assert err.value.size == 300
    with pytest.raises(WitnessConsistencyError):
        submit(record, 400, 300, root=TREE.root(401))  # not an extension: the proof fails
    with pytest.raises(WitnessConsistencyError, match="fork"):
        submit(record, 300, 300, root=TREE.root(299))
    with pytest.raises(WitnessConsistencyError, match="empty"):
        submit(MirrorRecord(ORIGIN), 0, 0, root=bytes(32))
    assert submit(MirrorRecord(ORIGIN), 0, 0, root=EMPTY_ROOT).pending_size == 0
    with pytest.raises(ConfigError):
        advance_pending(
            MirrorRecord("other.test/log"),
            verify_submission(AddCheckpointRequest(0, (), note(5)), LOGS),
        )


def test_recent_pending_checkpoints_are_kept() -> None:
    record = MirrorRecord(ORIGIN)
    old = 0
    for size in range(1, 40):
        record = submit(record, size, old)
        old = size
    assert [p.size for p in record.pending] == list(range(40 - PENDING_KEPT, 40))


def test_check_upload_statuses() -> None:
    header = UploadHeader(ORIGIN, 0, 300)
    with pytest.raises(UnknownMirrorLogError):
        check_upload(None, header)
    with pytest.raises(MirrorVerificationError):
        check_upload(MirrorRecord(ORIGIN), header)
    record = submit(submit(MirrorRecord(ORIGIN), 300, 0), 600, 300)
    assert check_upload(record, header).size == 300  # an earlier pending size is still valid
    assert check_upload(record, UploadHeader(ORIGIN, 0, 600)).size == 600
    with pytest.raises(MirrorConflictError) as err:
        check_upload(record, UploadHeader(ORIGIN, 0, 599))
    assert (err.value.info.size, err.value.info.next_entry) == (600, 0)
    with pytest.raises(MirrorConflictError) as err:
        check_upload(record, UploadHeader(ORIGIN, 1, 600))  # past the next entry
    assert err.value.info.size == 600
    big = MAX_EXCESS_ENTRIES + 10  # check_upload reads sizes only: a stand-in checkpoint
    far = MirrorRecord(
        ORIGIN, next_entry=big, pending=(PendingCheckpoint(ORIGIN, big, EMPTY_ROOT, b""),)
    )
    with pytest.raises(MirrorConflictError, match="resends"):
        check_upload(far, UploadHeader(ORIGIN, 0, big))
    assert check_upload(far, UploadHeader(ORIGIN, 10, big)).size == big
    cosigned, _ = cosign(record.pending[-1], MIRROR)
    done = MirrorRecord(ORIGIN, next_entry=600, pending=record.pending, mirror=cosigned)
    with pytest.raises(MirrorConflictError, match="below the mirror checkpoint"):
        check_upload(done, UploadHeader(ORIGIN, 300, 300))
    assert check_upload(done, UploadHeader(ORIGIN, 600, 600)).size == 600


def test_verify_package_authenticates_entries_against_the_checkpoint() -> None:
    record = submit(MirrorRecord(ORIGIN), 700, 0)
    target = record.pending[-1]
    for start, i in ((0, 0), (0, 2), (300, 0), (300, 1)):
        rng, pkg, held = package(start, 700, 700, i)
        hashes = verify_package(rng, pkg, held, target)
        assert hashes == [leaf_hash(e) for e in pkg.entries]


def test_entries_that_are_not_the_logs_are_refused() -> None:
    target = submit(MirrorRecord(ORIGIN), 700, 0).pending[-1]
    rng, pkg, held = package(300, 700, 700, 0, forged=400)
    with pytest.raises(MirrorVerificationError, match="not the log's") as err:
        verify_package(rng, pkg, held, target)
    assert err.value.index == 300
    rng, pkg, held = package(300, 700, 700, 0)
    with pytest.raises(MirrorVerificationError):  # the held entries are part of the subtree
        verify_package(rng, pkg, [leaf_hash(b"x")] * len(held), target)
    with pytest.raises(MirrorVerificationError):  # a proof for another tree
        verify_package(rng, pkg, held, submit(MirrorRecord(ORIGIN), 701, 0).pending[-1])
    with pytest.raises(MirrorVerificationError):  # one entry short
        verify_package(rng, EntryPackage(pkg.entries[:-1], pkg.proof), held, target)


def test_cosign_is_the_mirrors_cosignature_replacing_its_older_one() -> None:
    target = submit(MirrorRecord(ORIGIN), 300, 0).pending[-1]
    first, lines = cosign(target, MIRROR)
    assert lines.startswith("\u2014 core.test/mirror ".encode())
    sigs = parse_note(first.note).signatures
    assert [s.name for s in sigs] == [ORIGIN, "core.test/mirror"]
    MIRROR.verifier().verify(parse_note(first.note).text, sigs[1].signature)
    again, _ = cosign(PendingCheckpoint(ORIGIN, 300, first.root_hash, first.note), MIRROR)
    assert [s.name for s in parse_note(again.note).signatures] == [ORIGIN, "core.test/mirror"]
    broken = generate(choose("ed25519", Purpose.COSIGNATURE), "core.test/mirror", clock=lambda: 0)
    with pytest.raises(ConfigError, match="clock"):
        cosign(target, broken)
