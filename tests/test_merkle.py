"""Merkle trees: every proof for every tree up to 128 leaves, against a naive RFC 6962 tree.

The naive implementation below transcribes RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 recursively
with hashlib directly, sharing no code with :mod:`overt.formats.merkle`. Every generated proof
must equal it and verify, and every mutation of it (a flipped byte, a missing or extra hash, a
wrong index, size, leaf or root) must be refused.
"""

from __future__ import annotations

import hashlib
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import NotFoundError, ProofError
from overt.formats import merkle
from overt.formats.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    MemoryTree,
    ProofRequestError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

MAX = 128


# --- the naive reference (RFC 9162 §2.1, recursive, straight from the text) -------------------


def _sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


ENTRIES = [f"entry {i}".encode() * (i % 5) for i in range(MAX + 2)]  # includes empty entries
LEAVES = [_sha(b"\x00" + e) for e in ENTRIES]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def naive_mth(lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 0:
        return _sha(b"")
    if n == 1:
        return LEAVES[lo]
    k = _k(n)
    return _sha(b"\x01" + naive_mth(lo, lo + k) + naive_mth(lo + k, hi))


def naive_path(m: int, lo: int, hi: int) -> list[bytes]:
    n = hi - lo
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*naive_path(m, lo, lo + k), naive_mth(lo + k, hi)]
    return [*naive_path(m - k, lo + k, hi), naive_mth(lo, lo + k)]


def naive_subproof(m: int, lo: int, hi: int, b: bool) -> list[bytes]:
    n = hi - lo
    if m == n:
        return [] if b else [naive_mth(lo, hi)]
    k = _k(n)
    if m <= k:
        return [*naive_subproof(m, lo, lo + k, b), naive_mth(lo + k, hi)]
    return [*naive_subproof(m - k, lo + k, hi, False), naive_mth(lo, lo + k)]


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    return MemoryTree(LEAVES)


def _flip(h: bytes, pos: int, bit: int = 1) -> bytes:
    return h[:pos] + bytes([h[pos] ^ bit]) + h[pos + 1 :]


def _refused(fn: object, *args: object) -> bool:
    try:
        fn(*args)  # type: ignore[operator]
    except ProofError:
        return True
    return False


# --- hashing -----------------------------------------------------------------------------------


def test_exported_names() -> None:
    assert set(merkle.__all__) == {
        "EMPTY_ROOT",
        "HASH_SIZE",
        "CompactRange",
        "MemoryTree",
        "ProofRequestError",
        "SubtreeHash",
        "consistency_proof",
        "inclusion_proof",
        "leaf_hash",
        "leaf_hashes",
        "node_hash",
        "root_from_inclusion_proof",
        "root_hash",
        "verify_consistency",
        "verify_inclusion",
    }


def test_hash_primitives() -> None:
    assert HASH_SIZE == 32
    assert _sha(b"") == EMPTY_ROOT
    assert leaf_hash(b"") == _sha(b"\x00")
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    big = bytes(range(256)) * 300  # takes the streaming branch
    assert leaf_hash(big) == _sha(b"\x00" + big)
    entries = [b"", b"abc", big, bytearray(b"xy"), memoryview(b"z" * 5000)]
    assert merkle.leaf_hashes(entries) == [_sha(b"\x00" + bytes(e)) for e in entries]
    assert merkle.leaf_hashes([]) == []
    a, b = LEAVES[0], LEAVES[1]
    assert node_hash(a, b) == _sha(b"\x01" + a + b)
    assert node_hash(a, b) != node_hash(b, a)
    # Domain separation: a leaf whose data is two hashes is not the node over them.
    assert leaf_hash(a + b) != node_hash(a, b)


def test_roots_of_every_size_agree(tree: MemoryTree) -> None:
    cr = CompactRange()
    for n in range(MAX + 1):
        want = naive_mth(0, n)
        assert root_hash(LEAVES[:n]) == want, n
        assert tree.root(n) == want, n
        assert cr.root() == want, n
        assert cr.size == n
        assert len(cr.hashes) == n.bit_count()
        cr.append(LEAVES[n])


def test_root_hash_accepts_any_sequence() -> None:
    assert root_hash(tuple(LEAVES[:7])) == naive_mth(0, 7)
    assert root_hash([LEAVES[3]]) == LEAVES[3]


# --- inclusion: exhaustive ----------------------------------------------------------------------


def _contract_checking(
    tree: MemoryTree, size: int, asked: list[tuple[int, int]]
) -> merkle.SubtreeHash:
    """A SubtreeHash that asserts the documented promise about which ranges are asked for."""

    def subtree(lo: int, hi: int) -> bytes:
        n = hi - lo
        assert 0 <= lo < hi <= size
        if n & (n - 1) == 0:
            assert lo % n == 0, (lo, hi)  # a complete, aligned subtree
        else:
            assert hi == size, (lo, hi)  # the right edge, starting on a boundary covering it
            assert lo % (1 << (n - 1).bit_length()) == 0, (lo, hi)
        asked.append((lo, hi))
        return tree.subtree(lo, hi)

    return subtree


@pytest.mark.parametrize("size", range(1, MAX + 1))
def test_every_inclusion_proof_verifies_and_every_mutation_fails(
    tree: MemoryTree, size: int
) -> None:
    root = naive_mth(0, size)
    bigger_root = naive_mth(0, size + 1)
    smaller_root = naive_mth(0, size - 1)
    for index in range(size):
        asked: list[tuple[int, int]] = []
        proof = inclusion_proof(index, size, _contract_checking(tree, size, asked))
        assert proof == naive_path(index, 0, size)
        assert len(asked) == len(proof)
        assert tree.inclusion_proof(index, size) == proof
        leaf = LEAVES[index]
        verify_inclusion(leaf, index, size, proof, root)
        assert root_from_inclusion_proof(leaf, index, size, proof) == root

        every_byte = size <= 16
        for j, h in enumerate(proof):
            positions = range(HASH_SIZE) if every_byte else [(j * 7 + index) % HASH_SIZE]
            for pos in positions:
                bad = [*proof[:j], _flip(h, pos), *proof[j + 1 :]]
                assert _refused(verify_inclusion, leaf, index, size, bad, root), (index, j, pos)
            assert _refused(verify_inclusion, leaf, index, size, proof[:j] + proof[j + 1 :], root)
        assert _refused(verify_inclusion, leaf, index, size, [*proof, LEAVES[0]], root)
        assert _refused(verify_inclusion, leaf, index, size, [LEAVES[0], *proof], root)
        assert _refused(verify_inclusion, _flip(leaf, index % 32), index, size, proof, root)
        assert _refused(verify_inclusion, leaf, index, size, proof, _flip(root, 0))
        if index + 1 < size:
            assert _refused(verify_inclusion, leaf, index + 1, size, proof, root)
            assert _refused(verify_inclusion, LEAVES[index + 1], index, size, proof, root)
        if index > 0:
            assert _refused(verify_inclusion, leaf, index - 1, size, proof, root)
        assert _refused(verify_inclusion, leaf, index, size + 1, proof, bigger_root)
        assert _refused(verify_inclusion, leaf, size, size, proof, root)
        if index < size - 1:
            assert _refused(verify_inclusion, leaf, index, size - 1, proof, smaller_root)


def test_inclusion_proof_shape_errors_say_why() -> None:
    proof = naive_path(5, 0, 8)
    root = naive_mth(0, 8)
    leaf = LEAVES[5]
    cases = [
        ((leaf, 8, 8, proof, root), "not in a tree of size 8"),
        ((leaf, 2**64 - 1, 8, proof, root), "not in a tree of size 8"),
        ((leaf, -1, 8, proof, root), "negative"),
        ((leaf, 0, 0, [], root), "not in a tree of size 0"),
        ((leaf[:31], 5, 8, proof, root), "leaf hash is 31 bytes"),
        ((b"", 5, 8, proof, root), "leaf hash is 0 bytes"),
        ((leaf, 5, 8, proof, root[:16]), "root hash is 16 bytes"),
        ((leaf, 5, 8, proof[:2], root), "has 2 hashes, expected 3"),
        ((leaf, 5, 8, [*proof, leaf], root), "has 4 hashes, expected 3"),
        ((leaf, 5, 8, [proof[0], proof[1][:31], proof[2]], root), "proof hash 1 is 31 bytes"),
        ((leaf, 5, 8, proof, naive_mth(0, 7)), "leads to root"),
    ]
    for args, reason in cases:
        with pytest.raises(ProofError, match=reason):
            verify_inclusion(*args)


def test_single_leaf_tree_needs_an_empty_proof() -> None:
    verify_inclusion(LEAVES[0], 0, 1, [], LEAVES[0])
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[0], 0, 1, [LEAVES[1]], node_hash(LEAVES[0], LEAVES[1]))


def test_inclusion_proof_generator_refuses_what_does_not_exist(tree: MemoryTree) -> None:
    for index, size in [(0, 0), (5, 5), (6, 5), (-1, 5)]:
        with pytest.raises(ProofRequestError) as err:
            inclusion_proof(index, size, tree.subtree)
        assert isinstance(err.value, NotFoundError)
        assert isinstance(err.value, ValueError)
    with pytest.raises(ProofRequestError):
        tree.inclusion_proof(0, tree.size + 1)


# --- consistency: exhaustive --------------------------------------------------------------------


@pytest.mark.parametrize("new", range(1, MAX + 1))
def test_every_consistency_proof_verifies_and_every_mutation_fails(
    tree: MemoryTree, new: int
) -> None:
    new_root = naive_mth(0, new)
    for old in range(1, new + 1):
        old_root = naive_mth(0, old)
        asked: list[tuple[int, int]] = []
        proof = consistency_proof(old, new, _contract_checking(tree, new, asked))
        assert proof == naive_subproof(old, 0, new, True)
        assert len(asked) == len(proof)
        assert tree.consistency_proof(old, new) == proof
        verify_consistency(old, new, old_root, new_root, proof)

        every_byte = new <= 16
        for j, h in enumerate(proof):
            positions = range(HASH_SIZE) if every_byte else [(j * 5 + old) % HASH_SIZE]
            for pos in positions:
                bad = [*proof[:j], _flip(h, pos), *proof[j + 1 :]]
                assert _refused(verify_consistency, old, new, old_root, new_root, bad), (old, j)
            dropped = proof[:j] + proof[j + 1 :]
            assert _refused(verify_consistency, old, new, old_root, new_root, dropped)
        extra = LEAVES[0]
        assert _refused(verify_consistency, old, new, old_root, new_root, [*proof, extra])
        assert _refused(verify_consistency, old, new, old_root, new_root, [extra, *proof])
        assert _refused(verify_consistency, old, new, _flip(old_root, 3), new_root, proof)
        assert _refused(verify_consistency, old, new, old_root, _flip(new_root, 3), proof)
        if old != new:
            assert _refused(verify_consistency, old, new, new_root, old_root, proof)
        for m in (old - 1, old + 1):
            if 0 <= m <= MAX:
                assert _refused(verify_consistency, m, new, naive_mth(0, m), new_root, proof)
        for n in (new - 1, new + 1):
            if 0 <= n <= MAX:
                assert _refused(verify_consistency, old, n, old_root, naive_mth(0, n), proof)


def test_consistency_edge_cases_say_why() -> None:
    r1, r2, r3, r8 = naive_mth(0, 1), naive_mth(0, 2), naive_mth(0, 3), naive_mth(0, 8)
    proof = naive_subproof(3, 0, 8, True)
    cases = [
        ((0, 0, EMPTY_ROOT, EMPTY_ROOT, []), "old size 0"),
        ((0, 8, EMPTY_ROOT, r8, []), "old size 0"),
        ((0, 8, EMPTY_ROOT, r8, [r8]), "old size 0"),
        ((3, 2, r3, r2, []), "larger than new tree size"),
        ((-1, 2, r1, r2, []), "negative"),
        ((2, 2, r2, r2, [r2]), "sizes are equal \\(2\\) but the proof has 1 hashes"),
        ((2, 2, r2, r3, []), "sizes are equal \\(2\\) but the roots differ"),
        ((1, 2, r1, r2, []), "empty consistency proof"),
        ((3, 8, r3, r8, proof[:-1]), f"has {len(proof) - 1} hashes, expected {len(proof)}"),
        ((3, 8, r3[:20], r8, proof), "root hashes must be 32 bytes"),
        ((3, 8, r3, r8, [proof[0][:1], *proof[1:]]), "proof hash 0 is 1 bytes"),
        ((3, 8, r2, r8, proof), "old root"),
        ((3, 8, r3, r2, proof), "new root"),
    ]
    for args, reason in cases:
        with pytest.raises(ProofError, match=reason):
            verify_consistency(*args)
    # Equal sizes: only the roots are compared (the transparency-dev vectors rely on it).
    verify_consistency(5, 5, b"any root", b"any root", [])


def test_consistency_proof_generator_refuses_what_does_not_exist(tree: MemoryTree) -> None:
    for old, new in [(0, 0), (0, 5), (6, 5), (-1, 3)]:
        with pytest.raises(ProofRequestError):
            consistency_proof(old, new, tree.subtree)
    assert consistency_proof(7, 7, tree.subtree) == []
    with pytest.raises(ProofRequestError):
        tree.consistency_proof(1, tree.size + 1)


# --- larger trees (hypothesis) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_leaves() -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(5000)]


@pytest.fixture(scope="module")
def big_tree(big_leaves: list[bytes]) -> MemoryTree:
    return MemoryTree(big_leaves)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_proofs_in_larger_trees(
    big_leaves: list[bytes], big_tree: MemoryTree, data: st.DataObject
) -> None:
    new = data.draw(st.integers(1, len(big_leaves)))
    old = data.draw(st.integers(1, new))
    index = data.draw(st.integers(0, new - 1))
    new_root = big_tree.root(new)
    assert new_root == root_hash(big_leaves[:new])
    proof = big_tree.inclusion_proof(index, new)
    verify_inclusion(big_leaves[index], index, new, proof, new_root)
    old_root = big_tree.root(old)
    cproof = big_tree.consistency_proof(old, new)
    verify_consistency(old, new, old_root, new_root, cproof)
    if cproof:
        with pytest.raises(ProofError):
            verify_consistency(old, new, old_root, new_root, cproof[1:])


# --- MemoryTree and CompactRange ----------------------------------------------------------------


def test_memory_tree_subtree_of_any_range(tree: MemoryTree) -> None:
    for lo in range(41):
        for hi in range(lo, 41):
            assert tree.subtree(lo, hi) == naive_mth(lo, hi), (lo, hi)
    for lo, hi in [(-1, 3), (3, 2), (0, tree.size + 1)]:
        with pytest.raises(ProofRequestError):
            tree.subtree(lo, hi)


def test_memory_tree_append_and_defaults() -> None:
    t = MemoryTree()
    assert t.size == 0
    assert t.root() == EMPTY_ROOT
    for i in range(20):
        assert t.append(LEAVES[i]) == i
    assert t.size == 20
    assert t.root() == naive_mth(0, 20)
    assert t.inclusion_proof(3) == naive_path(3, 0, 20)
    assert t.consistency_proof(3) == naive_subproof(3, 0, 20, True)
    with pytest.raises(ValueError, match="32 bytes"):
        t.append(b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        MemoryTree([LEAVES[0], b""])


def test_compact_range_extend_equals_append_at_every_split() -> None:
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(300)]
    one = CompactRange()
    for h in leaves:
        one.append(h)
    for split in range(0, 300, 7):
        two = CompactRange()
        two.extend(leaves[:split])
        two.extend(iter(leaves[split:]))
        assert two == one
    assert one.root() == root_hash(leaves)


def test_compact_range_from_subtrees_resumes_a_log() -> None:
    leaves = [leaf_hash(i.to_bytes(2, "big")) for i in range(300)]
    t = MemoryTree(leaves)
    grown = CompactRange()
    for size in range(301):
        resumed = CompactRange.from_subtrees(size, t.subtree)
        assert resumed == grown
        assert resumed.root() == t.root(size)
        if size < 300:
            grown.append(leaves[size])


def test_compact_range_validation_and_copy() -> None:
    with pytest.raises(ValueError, match="edge hashes"):
        CompactRange(3, [LEAVES[0]])
    with pytest.raises(ValueError, match="edge hashes"):
        CompactRange(-1, [])
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange(1, [b"x"])
    cr = CompactRange(3, [naive_mth(0, 2), LEAVES[2]])
    assert cr.root() == naive_mth(0, 3)
    c2 = cr.copy()
    c2.append(LEAVES[3])
    assert cr.size == 3
    assert c2.hashes == [naive_mth(0, 4)]
    assert cr != c2
    assert "size=3" in repr(cr)
    with pytest.raises(ValueError):
        cr.append(b"\x00" * 31)
    partial = CompactRange()
    with pytest.raises(ValueError):
        partial.extend([LEAVES[0], LEAVES[1], b"bad"])
    assert partial == CompactRange(2, [naive_mth(0, 2)])  # the leaves before the bad one stay


# --- an independent implementation --------------------------------------------------------------


def test_pymerkle_agrees_on_roots_and_paths() -> None:
    pymerkle = pytest.importorskip("pymerkle")
    other = pymerkle.InmemoryTree(algorithm="sha256")
    data = [bytes([i]) * (i + 1) for i in range(70)]
    for d in data:
        other.append_entry(d)
    leaves = [leaf_hash(d) for d in data]
    t = MemoryTree(leaves)
    for n in range(1, 71):
        assert other.get_root(n) == t.root(n) == root_hash(leaves[:n])
    for n in (1, 7, 64, 70):
        for i in range(n):
            theirs = other.prove_inclusion(i + 1, n).serialize()["path"]  # 1-based, leaf first
            assert [bytes.fromhex(h) for h in theirs[1:]] == t.inclusion_proof(i, n)
