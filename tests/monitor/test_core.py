"""The I/O-free core: verify_successor and verify_evidence, exhaustively and under mutation."""

from __future__ import annotations

from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import FormatError, ProofError, VerificationError
from overt.formats.checkpoint import (
    Checkpoint,
    OriginError,
    SignedCheckpoint,
    open_checkpoint,
    sign_checkpoint,
)
from overt.formats.merkle import EMPTY_ROOT, MemoryTree, leaf_hash
from overt.formats.note import Ed25519Signer
from overt.monitor.verify import (
    EquivocationError,
    ForkError,
    RollbackError,
    TilesMismatchError,
    check_same_tree,
    verify_evidence,
    verify_successor,
)

ORIGIN = "core.example/log"
SIGNER = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
VERIFIER = SIGNER.verifier()
N = 48
FORK_AT = 20  # the forked tree shares the first 20 entries


def _tree(tag: bytes, shared: int = 0) -> MemoryTree:
    return MemoryTree(
        leaf_hash(b"entry %d" % i if i < shared else tag + b" %d" % i) for i in range(N)
    )


HONEST = _tree(b"honest", N)
FORKED = _tree(b"forked", FORK_AT)


@cache
def signed(tree_name: str, size: int) -> SignedCheckpoint:
    tree = HONEST if tree_name == "honest" else FORKED
    note = sign_checkpoint(Checkpoint(ORIGIN, size, tree.root(size)), SIGNER)
    return open_checkpoint(note, VERIFIER)


def test_every_honest_extension_is_accepted() -> None:
    for m in range(N + 1):
        for n in range(m, N + 1):
            proof = HONEST.consistency_proof(m, n) if 0 < m < n else []
            got = verify_successor(signed("honest", m), signed("honest", n), proof, HONEST.root(m))
            assert got == signed("honest", n)


def test_every_fork_after_the_shared_prefix_is_a_fork_with_convincing_evidence() -> None:
    for m in range(1, N + 1):
        for n in range(m + 1, N + 1):
            kept, new = signed("honest", m), signed("forked", n)
            proof, prefix = FORKED.consistency_proof(m, n), FORKED.root(m)
            if m <= FORK_AT:  # the forked tree really does extend the kept one
                assert verify_successor(kept, new, proof, prefix) == new
                continue
            with pytest.raises(ForkError) as caught:
                verify_successor(kept, new, proof, prefix)
            err = caught.value
            assert err.evidence == (kept.raw, new.raw)
            assert err.prefix_root == prefix and err.proof == tuple(proof)
            a, b = verify_evidence("fork", err.evidence, VERIFIER, err.proof, err.prefix_root)
            assert (a.checkpoint.size, b.checkpoint.size) == (m, n)


def test_every_rollback_is_refused() -> None:
    for m in range(1, N + 1):
        for n in range(m):
            with pytest.raises(RollbackError) as caught:
                verify_successor(signed("honest", m), signed("honest", n))
            verify_evidence("rollback", caught.value.evidence, VERIFIER)


def test_every_equivocation_is_refused() -> None:
    for m in range(FORK_AT + 1, N + 1):
        with pytest.raises(EquivocationError) as caught:
            verify_successor(signed("honest", m), signed("forked", m))
        verify_evidence("equivocation", caught.value.evidence, VERIFIER)
        with pytest.raises(EquivocationError):
            check_same_tree(signed("forked", m), signed("honest", m))


@pytest.mark.parametrize(("m", "n"), [(1, 2), (3, 7), (16, 17), (21, 48), (32, 48), (47, 48)])
def test_every_mutated_proof_or_prefix_is_bad_tiles_not_evidence(m: int, n: int) -> None:
    kept, new = signed("honest", m), signed("honest", n)
    proof, prefix = HONEST.consistency_proof(m, n), HONEST.root(m)
    for i in range(len(proof)):
        for bit in (0, 7, 255 * 8 - 1):
            bad = list(proof)
            h = bytearray(bad[i])
            h[(bit // 8) % 32] ^= 1 << (bit % 8)
            bad[i] = bytes(h)
            with pytest.raises(TilesMismatchError):
                verify_successor(kept, new, bad, prefix)
    for cut in range(len(proof)):
        with pytest.raises(TilesMismatchError):
            verify_successor(kept, new, proof[:cut], prefix)
    with pytest.raises(TilesMismatchError):
        verify_successor(kept, new, [*proof, proof[0]], prefix)
    wrong_prefix = bytes(32)
    with pytest.raises(TilesMismatchError):
        verify_successor(kept, new, proof, wrong_prefix)


def test_a_proof_without_prefix_root_is_checked_against_the_kept_root() -> None:
    kept, new = signed("honest", 30), signed("forked", 40)
    # Without the tiles' prefix root, a failing proof cannot tell a fork from bad tiles.
    with pytest.raises(TilesMismatchError):
        verify_successor(kept, new, FORKED.consistency_proof(30, 40))
    assert verify_successor(kept, signed("honest", 40), HONEST.consistency_proof(30, 40))


def test_an_empty_tree_with_a_non_empty_root_is_a_fork() -> None:
    liar = open_checkpoint(sign_checkpoint(Checkpoint(ORIGIN, 0, bytes(32)), SIGNER), VERIFIER)
    with pytest.raises(ForkError):
        verify_successor(liar, liar)
    with pytest.raises(ForkError):
        verify_successor(signed("honest", 0), liar)
    assert signed("honest", 0).checkpoint.root_hash == EMPTY_ROOT
    assert verify_successor(signed("honest", 0), signed("honest", 5)) == signed("honest", 5)


def test_checkpoints_of_two_logs_are_not_compared() -> None:
    other = Ed25519Signer("other.example/log", Ed25519PrivateKey.generate())
    note = sign_checkpoint(Checkpoint("other.example/log", 3, HONEST.root(3)), other)
    theirs = open_checkpoint(note, other.verifier())
    with pytest.raises(OriginError):
        verify_successor(signed("honest", 3), theirs)
    with pytest.raises(OriginError):
        check_same_tree(signed("honest", 3), theirs)


def test_evidence_that_proves_nothing_is_refused() -> None:
    honest = (signed("honest", 30).raw, signed("honest", 40).raw)
    for kind in ("equivocation", "rollback", "fork"):
        with pytest.raises(ProofError):
            verify_evidence(
                kind, honest, VERIFIER, HONEST.consistency_proof(30, 40), HONEST.root(30)
            )
    same_size = (signed("honest", 30).raw, signed("forked", 30).raw)
    with pytest.raises(ProofError, match="not a rollback"):
        verify_evidence("rollback", same_size, VERIFIER)
    with pytest.raises(ProofError):
        verify_evidence("bribery", same_size, VERIFIER)
    with pytest.raises(ProofError):
        verify_evidence("equivocation", same_size[:1], VERIFIER)
    # A fork claimed with the honest tree's proof and prefix is no fork.
    kept_new = (signed("honest", 30).raw, signed("forked", 40).raw)
    with pytest.raises(ProofError):
        verify_evidence(
            "fork", kept_new, VERIFIER, HONEST.consistency_proof(30, 40), HONEST.root(30)
        )


def test_evidence_with_a_tampered_note_is_refused() -> None:
    a, b = signed("honest", 30).raw, signed("forked", 30).raw
    verify_evidence("equivocation", (a, b), VERIFIER)
    for i in range(0, len(b)):
        mutated = b[:i] + bytes([b[i] ^ 1]) + b[i + 1 :]
        with pytest.raises((FormatError, VerificationError)):
            verify_evidence("equivocation", (a, mutated), VERIFIER)


@settings(max_examples=60, deadline=None)
@given(
    fork_at=st.integers(0, 40),
    m=st.integers(1, 60),
    extra=st.integers(0, 60),
)
def test_fork_is_reported_exactly_when_the_prefix_differs(fork_at: int, m: int, extra: int) -> None:
    n = m + extra
    honest = MemoryTree(leaf_hash(b"h%d" % i) for i in range(n))
    forked = MemoryTree(leaf_hash(b"h%d" % i if i < fork_at else b"f%d" % i) for i in range(n))

    def sign(tree: MemoryTree, size: int) -> SignedCheckpoint:
        cp = Checkpoint(ORIGIN, size, tree.root(size))
        return open_checkpoint(sign_checkpoint(cp, SIGNER), VERIFIER)

    kept, new = sign(honest, m), sign(forked, n)
    proof = forked.consistency_proof(m, n) if m < n else []
    if honest.root(m) == forked.root(m):
        assert verify_successor(kept, new, proof, forked.root(m)) == new
    elif m == n:
        with pytest.raises(EquivocationError):
            verify_successor(kept, new, proof, forked.root(m))
    else:
        with pytest.raises(ForkError):
            verify_successor(kept, new, proof, forked.root(m))
