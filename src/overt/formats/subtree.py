"""Merkle subtrees: their hashes, inclusion proofs and consistency proofs.

draft-ietf-plants-merkle-tree-certs-03 §4 defines a *subtree* of the RFC 9162 tree over
``D[0:n]`` as the tree ``MTH(D[start:end])`` for integers with::

    0 <= start < end <= n   and   start is a multiple of BIT_CEIL(end - start)

(``BIT_CEIL(x)``: the smallest power of two >= x). So a subtree has no ragged left edge: it is
either a node of some tree containing it (``[256, 512)``) or the left part of one that its end
cuts short (``[8, 13)``; ``[0, end)`` for any end, which is the tree of size ``end`` itself).
``[8, 16)`` and ``[0, 13)`` are subtrees, ``[4, 12)`` is not (4 is not a multiple of 8).

Three things are proved about a subtree, each as a list of 32-byte hashes:

- *subtree inclusion* (§4.3): entry ``index`` is in ``[start, end)``: the RFC 9162 inclusion
  proof of ``index - start`` in the tree ``D[start:end]``;
- *subtree consistency* (§4.4): ``[start, end)`` with hash ``h`` is part of the tree of size
  ``n`` with root ``r``. For ``start == 0`` this is exactly the RFC 9162 consistency proof from
  size ``end`` to size ``n`` (:func:`overt.formats.merkle.consistency_proof`).
- the subtree's hash itself (§4.2): :func:`subtree_hash`.

Example (the tree of 14 entries of c2sp.org/tlog-witness's ``sign-subtree`` example shape)::

    >>> tree = MemoryTree(leaf_hash(bytes([i])) for i in range(14))
    >>> h = subtree_hash(8, 13, tree.subtree)
    >>> proof = subtree_consistency_proof(8, 13, 14, tree.subtree)
    >>> verify_subtree_consistency(8, 13, 14, h, tree.root(), proof)   # None, or raises

Generators ask a :data:`~overt.formats.merkle.SubtreeHash` callback only for ranges that
:mod:`overt.formats.merkle` documents (complete aligned subtrees, or ranges ending at the tree
size), so a log answers them from its tiles. Verifiers do no I/O: bytes in, a hash out or a
:class:`~overt.errors.ProofError` that says why.

Spec: https://datatracker.ietf.org/doc/html/draft-ietf-plants-merkle-tree-certs-03#section-4
(tested against the accumulated vectors of the draft's "Subtree Test Vectors" appendix).
Versioning: the definitions are the draft's; a later draft that changes them is a new module.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256 as _sha256

from overt.errors import ProofError
from overt.formats.merkle import (
    HASH_SIZE,
    ProofRequestError,
    SubtreeHash,
    inclusion_proof,
    root_from_inclusion_proof,
)

__all__ = [
    "MAX_PROOF_HASHES",
    "check_subtree",
    "is_valid_subtree",
    "root_from_subtree_consistency_proof",
    "root_from_subtree_inclusion_proof",
    "subtree_consistency_proof",
    "subtree_hash",
    "subtree_inclusion_proof",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]

MAX_PROOF_HASHES = 63
"""No subtree proof in a tree below 2^63 entries is longer (one hash per level at most)."""

_NODE = b"\x01"
_MAX_SIZE = 1 << 63


def is_valid_subtree(start: int, end: int) -> bool:
    """Whether ``[start, end)`` is a subtree (§4.1), ignoring the tree's size."""
    if type(start) is not int or type(end) is not int or not 0 <= start < end <= _MAX_SIZE:
        return False
    # start is a multiple of BIT_CEIL(end - start) = 2^bitlen(end - start - 1) iff its low
    # bitlen(end - start - 1) bits are zero (no 2^k is built, so no overflow near 2^63).
    return start & ((1 << (end - start - 1).bit_length()) - 1) == 0


def check_subtree(start: int, end: int, size: int | None = None) -> None:
    """Raises ProofError unless ``[start, end)`` is a subtree (of the tree of ``size``).

    Raises:
        ProofError: the range is empty, negative, not aligned, or ends after ``size``.
    """
    if not is_valid_subtree(start, end):
        raise ProofError(
            f"[{start}, {end}) is not a subtree (needs 0 <= start < end and start a multiple"
            " of the smallest power of two >= end - start)"
        )
    if size is not None and end > size:
        raise ProofError(f"subtree [{start}, {end}) ends after the tree of size {size}")


def _complete(start: int, end: int, subtree: SubtreeHash) -> bytes:
    """``MTH(D[start:end])`` of a subtree, from its maximal complete subtrees, right to left.

    Each piece is aligned and complete, so any SubtreeHash can answer it.
    """
    pieces = []
    lo = start
    for bit in reversed(range((end - start).bit_length())):
        if (end - start) >> bit & 1:
            pieces.append(subtree(lo, lo + (1 << bit)))
            lo += 1 << bit
    r = pieces[-1]
    for h in reversed(pieces[:-1]):
        r = _sha256(_NODE + h + r).digest()
    return r


def subtree_hash(start: int, end: int, subtree: SubtreeHash) -> bytes:
    """``MTH(D[start:end])`` of a subtree (§4.2), asking ``subtree`` for complete pieces only.

    Raises:
        ProofRequestError: ``[start, end)`` is not a subtree.
    """
    if not is_valid_subtree(start, end):
        raise ProofRequestError(f"[{start}, {end}) is not a subtree")
    return _complete(start, end, subtree)


def _shifted(start: int, end: int, subtree: SubtreeHash) -> SubtreeHash:
    """The callback of the tree ``D[start:end]`` (indices from 0) over the whole tree's."""

    def shifted(lo: int, hi: int) -> bytes:
        # Ranges ending at the subtree's end are cut short: rebuild them from complete pieces.
        if hi == end - start:
            return _complete(start + lo, end, subtree)
        return subtree(start + lo, start + hi)

    return shifted


def subtree_inclusion_proof(index: int, start: int, end: int, subtree: SubtreeHash) -> list[bytes]:
    """The subtree inclusion proof (§4.3) of entry ``index`` in subtree ``[start, end)``.

    Raises:
        ProofRequestError: not a subtree, or ``index`` is not in it.
    """
    if not is_valid_subtree(start, end):
        raise ProofRequestError(f"[{start}, {end}) is not a subtree")
    if not start <= index < end:
        raise ProofRequestError(f"index {index} is not in the subtree [{start}, {end})")
    return inclusion_proof(index - start, end - start, _shifted(start, end, subtree))


def root_from_subtree_inclusion_proof(
    leaf: bytes, index: int, start: int, end: int, proof: Sequence[bytes]
) -> bytes:
    """The subtree hash that ``proof`` binds ``leaf`` at ``index`` to (§4.3.2).

    Raises:
        ProofError: not a subtree, the index outside it, or a malformed proof (wrong number of
            hashes, a hash that is not 32 bytes).
    """
    check_subtree(start, end)
    if not start <= index < end:
        raise ProofError(f"index {index} is not in the subtree [{start}, {end})")
    return root_from_inclusion_proof(leaf, index - start, end - start, proof)


def verify_subtree_inclusion(
    leaf: bytes, index: int, start: int, end: int, proof: Sequence[bytes], subtree_root: bytes
) -> None:
    """Check that ``leaf`` is entry ``index`` of the subtree ``[start, end)`` with that hash.

    Raises:
        ProofError: see :func:`root_from_subtree_inclusion_proof`, or another subtree hash.
    """
    got = root_from_subtree_inclusion_proof(leaf, index, start, end, proof)
    if got != subtree_root:
        raise ProofError(
            f"inclusion proof of {index} in subtree [{start}, {end}) leads to {got.hex()},"
            f" not {subtree_root.hex()}"
        )


def subtree_consistency_proof(start: int, end: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """The subtree consistency proof (§4.4) from ``[start, end)`` to the tree of ``size``.

    ``SUBTREE_PROOF(start, end, D[0:size]) = SUBTREE_SUBPROOF(start, end, D[0:size], true)``:
    descend the RFC 9162 split of the tree towards the subtree, collecting each sibling; the
    subtree's own hash is left out while the verifier knows it (it does, unless the subtree
    straddles a split, which only happens at its left edge: then its right part is sent).

    Raises:
        ProofRequestError: not a subtree, or it ends after ``size``.
    """
    if not is_valid_subtree(start, end):
        raise ProofRequestError(f"[{start}, {end}) is not a subtree")
    if end > size:
        raise ProofRequestError(f"subtree [{start}, {end}) ends after the tree of size {size}")
    out: list[bytes] = []
    siblings: list[tuple[int, int]] = []
    lo, hi, known = 0, size, True
    # Iterative SUBTREE_SUBPROOF: siblings are appended bottom-up, so collect them top-down
    # and reverse. Every window [lo, hi) is a node of the tree of size `size`.
    while not (start == lo and end == hi):
        split = lo + (1 << ((hi - lo - 1).bit_length() - 1))
        if end <= split:
            siblings.append((split, hi))
            hi = split
        elif split <= start:
            siblings.append((lo, split))
            lo = split
        else:  # start == lo < split < end: the subtree's right part is no longer known
            siblings.append((lo, split))
            start, lo, known = split, split, False
    if not known:
        out.append(subtree(lo, hi))
    out.extend(subtree(a, b) for a, b in reversed(siblings))
    return out


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError(f"subtree proof has {len(proof)} hashes, more than {MAX_PROOF_HASHES}")
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"proof hash {i} is {len(h)} bytes, not {HASH_SIZE}")


def root_from_subtree_consistency_proof(
    start: int, end: int, size: int, subtree_root: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root of the tree of ``size`` that ``proof`` connects the subtree to (§4.4.2).

    Raises:
        ProofError: not a subtree of a tree of ``size``, a hash that is not 32 bytes, a proof
            too long or too short, or one that does not lead back to ``subtree_root``.
    """
    check_subtree(start, end, size)
    if len(subtree_root) != HASH_SIZE:
        raise ProofError(f"subtree hash is {len(subtree_root)} bytes, not {HASH_SIZE}")
    _check_proof_hashes(proof)
    sha = _sha256
    # fn, sn, tn: the paths to the subtree's first and last entries and the tree's last.
    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:  # the subtree ends the tree: its root is a node on the tree's right edge
        while fn != sn:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    else:  # climb while sn is a right child inside the subtree: those nodes are complete
        while fn != sn and sn & 1:
            fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    rest = list(proof)
    if fn == sn:  # the subtree is a node of the tree: its hash is known, not sent
        fr = sr = subtree_root
    else:
        if not rest:
            raise ProofError(f"empty consistency proof for subtree [{start}, {end}) in {size}")
        fr = sr = rest.pop(0)
    for c in rest:
        if tn == 0:
            raise ProofError(f"consistency proof of subtree [{start}, {end}) is too long")
        if sn & 1 or sn == tn:
            if fn < sn:
                fr = sha(_NODE + c + fr).digest()
            sr = sha(_NODE + c + sr).digest()
            while not sn & 1:
                fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
        else:
            sr = sha(_NODE + sr + c).digest()
        fn, sn, tn = fn >> 1, sn >> 1, tn >> 1
    if tn != 0:
        raise ProofError(f"consistency proof of subtree [{start}, {end}) is too short")
    if fr != subtree_root:
        raise ProofError(
            f"consistency proof does not lead back to subtree [{start}, {end})'s hash"
            f" (got {fr.hex()}, expected {subtree_root.hex()})"
        )
    return sr


def verify_subtree_consistency(
    start: int,
    end: int,
    size: int,
    subtree_root: bytes,
    root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that subtree ``[start, end)`` with hash ``subtree_root`` is in tree ``(size, root)``.

    Raises:
        ProofError: see :func:`root_from_subtree_consistency_proof`, or another root.
    """
    if len(root) != HASH_SIZE:
        raise ProofError(f"root hash is {len(root)} bytes, not {HASH_SIZE}")
    got = root_from_subtree_consistency_proof(start, end, size, subtree_root, proof)
    if got != root:
        raise ProofError(
            f"subtree [{start}, {end}) is not consistent with the tree of size {size}"
            f" (proof leads to {got.hex()}, not {root.hex()})"
        )
