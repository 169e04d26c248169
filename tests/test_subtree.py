"""Merkle subtrees (draft-ietf-plants-merkle-tree-certs-03 §4): hashes, inclusion, consistency.

The draft's "Subtree Test Vectors" appendix folds the output of each algorithm, over every
valid input in the tree of 130 entries ``d[i] = bytes([i])``, into one rolling SHA-256 per
algorithm; the three digests below are the published ones (the same harness that the draft's
Go reference code runs). The harness lists empty ranges ``[k, k)`` as that code does (empty hash,
empty proof); overt's API refuses them, since a subtree is non-empty (§4.1: start < end).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.errors import ProofError
from overt.formats.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    ProofRequestError,
    consistency_proof,
    leaf_hash,
)
from overt.formats.subtree import (
    MAX_PROOF_HASHES,
    check_subtree,
    is_valid_subtree,
    root_from_subtree_consistency_proof,
    subtree_consistency_proof,
    subtree_hash,
    subtree_inclusion_proof,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

VECTOR_SIZE = 130
TREE = MemoryTree(leaf_hash(bytes([i])) for i in range(VECTOR_SIZE))


def _listed(start: int, end: int) -> bool:
    """The reference harness's IsValidSubtree: every subtree, and the empty ranges."""
    return start == end or is_valid_subtree(start, end)


def _line(prefix: str, proof: list[bytes]) -> bytes:
    return (prefix + "".join(" " + h.hex() for h in proof) + "\n").encode()


def test_subtree_hash_vectors() -> None:
    h = hashlib.sha256()
    for end in range(VECTOR_SIZE + 1):
        for start in range(end + 1):
            if _listed(start, end):
                got = EMPTY_ROOT if start == end else subtree_hash(start, end, TREE.subtree)
                h.update(b"[%d, %d) %s\n" % (start, end, got.hex().encode()))
    assert h.hexdigest() == "b82806ad4265bb151c1119c0f4db437bb4d1a1f887b3a7fba1cd4ebf552e3e81"


def test_subtree_inclusion_proof_vectors() -> None:
    h = hashlib.sha256()
    for end in range(VECTOR_SIZE + 1):
        for start in range(end + 1):
            if not _listed(start, end):
                continue
            for index in range(start, end):
                proof = subtree_inclusion_proof(index, start, end, TREE.subtree)
                h.update(_line(f"{index} [{start}, {end})", proof))
                leaf = leaf_hash(bytes([index]))
                verify_subtree_inclusion(leaf, index, start, end, proof, TREE.subtree(start, end))
    assert h.hexdigest() == "ac2a8f989e44d99e399db448050ff5f19757df53cfb716aa81015d3955d8163f"


def test_subtree_consistency_proof_vectors() -> None:
    h = hashlib.sha256()
    for n in range(VECTOR_SIZE + 1):
        for end in range(n + 1):
            for start in range(end + 1):
                if _listed(start, end):
                    empty = start == end
                    proof = [] if empty else subtree_consistency_proof(start, end, n, TREE.subtree)
                    h.update(_line(f"[{start}, {end}) {n}", proof))
    assert h.hexdigest() == "10fa99b37bf9bf9ffa26b412fbd98bd75363256d0b75d61bc4538b9c9c5a0a74"


def test_validity_is_the_drafts_rule() -> None:
    assert is_valid_subtree(8, 13) and is_valid_subtree(0, 13) and is_valid_subtree(8, 16)
    assert is_valid_subtree(256, 512) and is_valid_subtree((1 << 63) - 1, 1 << 63)
    assert not is_valid_subtree(4, 12)  # BIT_CEIL(8) = 8 does not divide 4
    assert not is_valid_subtree(5, 5) and not is_valid_subtree(6, 5)
    assert not is_valid_subtree(-1, 3) and not is_valid_subtree(0, (1 << 63) + 1)
    assert not is_valid_subtree(True, 2)  # bools are not sizes
    for start in range(64):
        for end in range(start + 1, 130):
            ceil = 1
            while ceil < end - start:
                ceil *= 2
            assert is_valid_subtree(start, end) == (start % ceil == 0), (start, end)


def test_a_subtree_from_zero_is_the_rfc_consistency_proof() -> None:
    for n in range(1, 70):
        for end in range(1, n):
            assert subtree_consistency_proof(0, end, n, TREE.subtree) == consistency_proof(
                end, n, TREE.subtree
            )


def _mutations(proof: list[bytes]) -> list[list[bytes]]:
    out: list[list[bytes]] = [[*proof, bytes(32)], [bytes(32), *proof]]
    if proof:
        out.append(proof[:-1])
        out.append(proof[1:])
        out.append([proof[0][:-1], *proof[1:]])
    for i in range(len(proof)):
        for pos in (0, 31):
            flipped = bytearray(proof[i])
            flipped[pos] ^= 1
            out.append([*proof[:i], bytes(flipped), *proof[i + 1 :]])
    return out


def test_every_subtree_consistency_proof_verifies_and_every_mutation_fails() -> None:
    for n in range(1, 41):
        root = TREE.root(n)
        for end in range(1, n + 1):
            for start in range(end):
                if not is_valid_subtree(start, end):
                    continue
                h = TREE.subtree(start, end)
                proof = subtree_consistency_proof(start, end, n, TREE.subtree)
                verify_subtree_consistency(start, end, n, h, root, proof)
                for bad in _mutations(proof):
                    with pytest.raises(ProofError):
                        verify_subtree_consistency(start, end, n, h, root, bad)
                with pytest.raises(ProofError):  # a forged subtree hash
                    verify_subtree_consistency(start, end, n, leaf_hash(b"forged"), root, proof)
                with pytest.raises(ProofError):  # another tree
                    verify_subtree_consistency(start, end, n, h, leaf_hash(b"x"), proof)
                if end < n:
                    with pytest.raises(ProofError):  # the same proof claimed for a larger tree
                        verify_subtree_consistency(start, end, n + 1, h, TREE.root(n + 1), proof)


def test_every_subtree_inclusion_proof_mutation_fails() -> None:
    for end in range(1, 34):
        for start in range(end):
            if not is_valid_subtree(start, end):
                continue
            h = TREE.subtree(start, end)
            for index in range(start, end):
                leaf = leaf_hash(bytes([index]))
                proof = subtree_inclusion_proof(index, start, end, TREE.subtree)
                for bad in _mutations(proof):
                    with pytest.raises(ProofError):
                        verify_subtree_inclusion(leaf, index, start, end, bad, h)
                with pytest.raises(ProofError):  # the proof of one entry for another
                    verify_subtree_inclusion(leaf_hash(b"other"), index, start, end, proof, h)


@pytest.mark.parametrize(("start", "end"), [(4, 12), (3, 5), (5, 5), (7, 3), (-2, 2)])
def test_a_range_that_is_not_a_subtree_is_refused_everywhere(start: int, end: int) -> None:
    with pytest.raises(ProofError, match="not a subtree"):
        check_subtree(start, end)
    with pytest.raises(ProofError, match="not a subtree"):
        verify_subtree_consistency(start, end, 16, bytes(32), TREE.root(16), [])
    with pytest.raises(ProofError, match="not a subtree"):
        verify_subtree_inclusion(bytes(32), max(start, 0), start, end, [], bytes(32))
    for generate in (
        lambda: subtree_hash(start, end, TREE.subtree),
        lambda: subtree_consistency_proof(start, end, 16, TREE.subtree),
        lambda: subtree_inclusion_proof(max(start, 0), start, end, TREE.subtree),
    ):
        with pytest.raises(ProofRequestError):
            generate()


def test_a_subtree_beyond_the_tree_is_refused() -> None:
    with pytest.raises(ProofError, match="ends after"):
        verify_subtree_consistency(8, 16, 12, TREE.subtree(8, 16), TREE.root(12), [])
    with pytest.raises(ProofRequestError):
        subtree_consistency_proof(8, 16, 12, TREE.subtree)
    with pytest.raises(ProofRequestError):
        subtree_inclusion_proof(7, 8, 16, TREE.subtree)


def test_proof_shape_is_checked_before_hashing() -> None:
    with pytest.raises(ProofError, match="more than"):
        root_from_subtree_consistency_proof(
            0, 1, 2, bytes(32), [bytes(32)] * (MAX_PROOF_HASHES + 1)
        )
    with pytest.raises(ProofError, match="not 32"):
        root_from_subtree_consistency_proof(0, 1, 2, bytes(31), [bytes(32)])
    with pytest.raises(ProofError, match="not 32"):
        verify_subtree_consistency(0, 1, 2, bytes(32), bytes(33), [bytes(32)])


def _counting(calls: list[tuple[int, int]]) -> Callable[[int, int], bytes]:
    def subtree(lo: int, hi: int) -> bytes:
        calls.append((lo, hi))
        return TREE.subtree(lo, hi)

    return subtree


def test_generators_ask_only_for_ranges_a_tile_reader_answers() -> None:
    # Complete aligned subtrees, or ranges that end at the tree size (overt.formats.merkle).
    for n in range(1, 66):
        for end in range(1, n + 1):
            for start in range(end):
                if not is_valid_subtree(start, end):
                    continue
                calls: list[tuple[int, int]] = []
                subtree_consistency_proof(start, end, n, _counting(calls))
                subtree_hash(start, end, _counting(calls))
                for lo, hi in calls:
                    k = hi - lo
                    assert hi == n or (k & (k - 1) == 0 and lo % k == 0), (start, end, n, lo, hi)


@given(st.integers(1, 1 << 40), st.data())
def test_large_trees_verify_by_shape(size: int, data: st.DataObject) -> None:
    # Proof lengths for huge trees: generate against a fake hasher, verify the round trip.
    end = data.draw(st.integers(1, size))
    height = data.draw(st.integers(0, (end - 1).bit_length()))
    start = (end - 1) >> height << height
    if not is_valid_subtree(start, end):
        return

    points = (start, end - 1, size - 1)

    @functools.cache
    def node(lo: int, hi: int) -> bytes:
        # A complete node: made up where no proof looks inside it, else from its children,
        # so that every hash the proof and the verifier touch belongs to one tree.
        if hi - lo == 1 or not any(lo <= p < hi for p in points):
            return hashlib.sha256(b"%d-%d" % (lo, hi)).digest()
        mid = (lo + hi) // 2
        return hashlib.sha256(b"\x01" + node(lo, mid) + node(mid, hi)).digest()

    def mth(lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return node(lo, hi)
        k = 1 << ((n - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi)).digest()

    proof = subtree_consistency_proof(start, end, size, mth)
    assert len(proof) <= MAX_PROOF_HASHES
    verify_subtree_consistency(start, end, size, mth(start, end), mth(0, size), proof)
