"""One checkpoint trust decision (log key, or log key plus witness quorum with an age).

``open_trusted_checkpoint`` is the only place it is decided; the proof verifier, the
log client and the monitor all go through it, so each case below must give the same
answer through each of them.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.errors import OvertError, PolicyError, StaleError, UnknownKeyError
from overt.formats.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from overt.formats.cosignature import CosignatureSigner
from overt.formats.merkle import MemoryTree, leaf_hash
from overt.formats.note import Ed25519Signer, Verifier, parse_note, sign_note
from overt.formats.policy import Policy, open_trusted_checkpoint, parse_policy
from overt.formats.proof import TlogProof, verify_proof
from overt.formats.tiles import EntryMismatchError, verify_entries

ORIGIN = "example.com/log"
NOW = 1_700_000_000.0


class Setup:
    def __init__(self) -> None:
        self.log = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
        self.other_log = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())  # same origin
        self.witnesses = [
            CosignatureSigner(f"w{i}.example", Ed25519PrivateKey.generate(), lambda: NOW)
            for i in range(2)
        ]
        self.tree = MemoryTree([leaf_hash(b"entry %d" % i) for i in range(5)])

    def policy(self, log: Ed25519Signer | None = None) -> Policy:
        lines = f"log {(log or self.log).vkey}\n"
        lines += "".join(f"witness w{i} {w.vkey}\n" for i, w in enumerate(self.witnesses))
        return parse_policy((lines + "group all-w all w0 w1\nquorum all-w\n").encode())

    def note(self, signer: Ed25519Signer | None = None, cosigned_at: float | None = NOW) -> bytes:
        cp = Checkpoint(ORIGIN, self.tree.size, self.tree.root())
        note = sign_checkpoint(cp, signer or self.log)
        if cosigned_at is not None:
            for w in self.witnesses:
                cosigner = CosignatureSigner(w.name, w._private, lambda: cosigned_at)
                parsed = parse_note(note)
                note = sign_note(parsed.text, [cosigner], existing=parsed)
        return note


Opener = Callable[[bytes, Verifier | None, Policy | None, float | None], SignedCheckpoint]


def _direct(
    note: bytes, key: Verifier | None, policy: Policy | None, age: float | None
) -> SignedCheckpoint:
    return open_trusted_checkpoint(note, key, policy, now=NOW, max_age=age)


def _via_proof(
    note: bytes, key: Verifier | None, policy: Policy | None, age: float | None
) -> SignedCheckpoint:
    assert key is not None
    tree = MemoryTree([leaf_hash(b"entry %d" % i) for i in range(5)])
    proof = TlogProof(2, tuple(tree.inclusion_proof(2, 5)), note)
    return verify_proof(
        proof, leaf_hash(b"entry 2"), key, policy=policy, now=NOW, max_age=age
    ).checkpoint


def _via_monitor(
    note: bytes, key: Verifier | None, policy: Policy | None, age: float | None
) -> SignedCheckpoint:
    from overt.monitor.events import EventSink
    from overt.monitor.follow import Monitor
    from overt.monitor.state import MonitorState

    assert key is not None
    sink = EventSink(io.StringIO())
    monitor = Monitor(
        None,  # type: ignore[arg-type]  # _open reads no tiles
        key,
        MonitorState(None),
        sink,
        policy=policy,
        max_age=age,
        clock=lambda: NOW,
    )
    signed = monitor._open(note)
    if signed is None:
        raise UnknownKeyError(str(sink.events[-1]))
    return signed


OPENERS = [_direct, _via_proof]


@pytest.mark.parametrize("opener", OPENERS)
def test_the_log_key_alone_opens_its_checkpoint(opener: Opener) -> None:
    s = Setup()
    assert opener(s.note(cosigned_at=None), s.log.verifier(), None, None).checkpoint.size == 5


@pytest.mark.parametrize("opener", OPENERS)
def test_another_logs_key_is_refused(opener: Opener) -> None:
    s = Setup()
    with pytest.raises(OvertError):
        opener(s.note(s.other_log), s.log.verifier(), None, None)


@pytest.mark.parametrize("opener", OPENERS)
def test_max_age_without_witnesses_is_refused_not_skipped(opener: Opener) -> None:
    # A freeze cannot be detected without witness timestamps: asking for freshness
    # without a policy must fail loudly, never pass silently.
    s = Setup()
    with pytest.raises(PolicyError, match="needs a witness policy"):
        opener(s.note(), s.log.verifier(), None, 3600)


@pytest.mark.parametrize("opener", OPENERS)
def test_witness_quorum_and_age_are_required_with_a_policy(opener: Opener) -> None:
    s = Setup()
    assert opener(s.note(), s.log.verifier(), s.policy(), 3600).checkpoint.size == 5
    with pytest.raises(PolicyError, match="quorum"):
        opener(s.note(cosigned_at=None), s.log.verifier(), s.policy(), None)
    with pytest.raises(StaleError):
        opener(s.note(cosigned_at=NOW - 7200), s.log.verifier(), s.policy(), 3600)


@pytest.mark.parametrize("opener", OPENERS)
def test_the_given_log_key_must_have_signed_even_with_a_policy(opener: Opener) -> None:
    # The policy trusts another key of the same origin; the caller pinned ours.
    s = Setup()
    note = s.note(s.other_log)
    assert _direct(note, None, s.policy(s.other_log), None).checkpoint.size == 5
    with pytest.raises(UnknownKeyError):
        opener(note, s.log.verifier(), s.policy(s.other_log), None)


def test_no_log_key_and_no_policy_is_refused() -> None:
    with pytest.raises(PolicyError, match="no log key"):
        open_trusted_checkpoint(Setup().note(), None)


def test_the_monitor_decides_the_same_way() -> None:
    s = Setup()
    assert _via_monitor(s.note(), s.log.verifier(), s.policy(), 3600).checkpoint.size == 5
    with pytest.raises(UnknownKeyError):
        _via_monitor(s.note(cosigned_at=NOW - 7200), s.log.verifier(), s.policy(), 3600)
    with pytest.raises(UnknownKeyError):
        _via_monitor(s.note(s.other_log), s.log.verifier(), s.policy(s.other_log), None)
    with pytest.raises(PolicyError, match="needs a witness policy"):
        _via_monitor(s.note(), s.log.verifier(), None, 3600)


def test_entries_are_held_against_their_tile_hashes_in_one_place() -> None:
    entries = [b"a", b"b", b"c"]
    tile = b"".join(leaf_hash(e) for e in entries)
    assert verify_entries(entries, tile, 0) == [leaf_hash(e) for e in entries]
    assert verify_entries(entries, tile, 0, start=2) == [leaf_hash(b"c")]
    with pytest.raises(EntryMismatchError, match="entry 257 ") as err:
        verify_entries([b"a", b"x"], tile[:64], 1)
    assert (err.value.index, err.value.tile) == (257, 1)
    with pytest.raises(EntryMismatchError):
        verify_entries(entries, tile[:64], 0)  # an entry with no hash in the tile
