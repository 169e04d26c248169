"""RFC 6962 / RFC 9162 Merkle trees: hashing, proof generation and proof verification.

The tree over the leaf data ``D[0:n]`` is the one RFC 9162 §2.1.1 defines::

    MTH({})       = SHA-256()                                   (EMPTY_ROOT)
    MTH({d(0)})   = SHA-256(0x00 || d(0))                        (leaf_hash)
    MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))  (node_hash)
                    where k is the largest power of two smaller than n

Every function below works on *leaf hashes* (``leaf_hash(entry)``), never on raw entries,
and every hash is exactly :data:`HASH_SIZE` bytes. Example::

    >>> leaves = [leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")]
    >>> tree = MemoryTree(leaves)
    >>> proof = tree.inclusion_proof(2)          # RFC 9162 §2.1.3.1 PATH(2, D[3])
    >>> verify_inclusion(leaves[2], 2, 3, proof, tree.root())   # returns None or raises

Proof generators do no I/O and know nothing about storage: they ask a :data:`SubtreeHash`
callback for ``MTH(D[lo:hi])``, and only ever for ranges where ``lo`` is a multiple of a power
of two ``k`` and either ``hi - lo == k`` (a complete subtree) or ``hi`` is the tree size. A
log answers those from its tiles (:func:`overt.formats.tiles.subtree_from_tiles`).

Verifiers follow RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) step by step, after
checking the proof's shape (sizes, hash lengths, exact proof length) so that a refusal says
why. A consistency proof from the empty tree (``old_size == 0``) is refused: it proves nothing
(anything is consistent with nothing), and a caller who has no old tree has nothing to check.

Spec: https://www.rfc-editor.org/rfc/rfc9162#section-2.1 (same tree and proofs as RFC 6962).
Versioning: the hash function and tree shape are fixed by the RFC; a different hash would be a
different module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from hashlib import sha256 as _sha256

from overt.errors import NotFoundError, ProofError

__all__ = [
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
]

HASH_SIZE = 32
EMPTY_ROOT: bytes = _sha256(b"").digest()

SubtreeHash = Callable[[int, int], bytes]
"""``subtree(lo, hi)`` returns ``MTH(D[lo:hi])``; see the module docstring for the ranges asked."""

_LEAF = b"\x00"
_NODE = b"\x01"


class ProofRequestError(NotFoundError, ValueError):
    """A proof was asked for an index or tree size that the tree does not have.

    It is a :class:`~overt.errors.NotFoundError` (an HTTP server answers 404) and a
    :class:`ValueError` (the arguments are out of range).
    """


def leaf_hash(data: bytes) -> bytes:
    """The RFC 6962 leaf hash ``SHA-256(0x00 || data)``."""
    if len(data) < 4096:
        return _sha256(_LEAF + data).digest()
    h = _sha256(_LEAF)
    h.update(data)
    return h.digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """:func:`leaf_hash` of each entry (a bulk append's: the 0x00 prefix is hashed once)."""
    prefix = _sha256(_LEAF)
    out: list[bytes] = []
    append = out.append
    for data in entries:
        h = prefix.copy()
        h.update(data)
        append(h.digest())
    return out


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE + left + right).digest()


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """``MTH`` of a list of leaf hashes (:data:`EMPTY_ROOT` for none).

    Hashes level by level; a level with an odd count carries its last node up unchanged, which
    yields exactly RFC 9162's split at the largest power of two (the left subtrees are complete).
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    sha = _sha256
    while len(level) > 1:
        buf = b"".join(level)
        pairs = len(level) >> 1
        nxt = [sha(_NODE + buf[i : i + 64]).digest() for i in range(0, pairs * 64, 64)]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """The audit path ``PATH(index, D[size])`` of RFC 9162 §2.1.3.1, leaf-side first.

    Raises:
        ProofRequestError: unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ProofRequestError(f"no inclusion proof for index {index} in a tree of size {size}")
    return _audit_path(index, size, 0, subtree)


def _audit_path(index: int, size: int, start: int, subtree: SubtreeHash) -> list[bytes]:
    """The siblings on the path from the node of height ``start`` above ``index`` to the root.

    Bottom-up, by height (the shape RFC 9162's PATH recursion produces): below the height
    where index and size - 1 diverge every node has a sibling, which is complete except the
    one just below it (it ends at the size); above it, only right children have a sibling.
    """
    path: list[bytes] = []
    append = path.append
    inner = (index ^ (size - 1)).bit_length()
    for h in range(start, inner):
        lo = ((index >> h) ^ 1) << h
        hi = lo + (1 << h)
        append(subtree(lo, hi if hi <= size else size))
    node = index >> inner
    h = inner
    while node:
        if node & 1:
            lo = (node ^ 1) << h
            append(subtree(lo, lo + (1 << h)))
        node >>= 1
        h += 1
    return path


def consistency_proof(old_size: int, new_size: int, subtree: SubtreeHash) -> list[bytes]:
    """The consistency proof ``PROOF(old_size, D[new_size])`` of RFC 9162 §2.1.4.1.

    Empty when the sizes are equal.

    Raises:
        ProofRequestError: unless ``0 < old_size <= new_size``.
    """
    if not 0 < old_size <= new_size:
        raise ProofRequestError(
            f"no consistency proof from size {old_size} to size {new_size}"
            " (needs 0 < old size <= new size)"
        )
    if old_size == new_size:
        return []
    # SUBPROOF(m, D[n], true) unrolled bottom-up, as for PATH: the last complete subtree of the
    # old tree (unless that is the whole old tree, which the verifier already has), then the
    # siblings on its path to the new root. (transparency-dev/merkle builds it the same way.)
    shift = (old_size & -old_size).bit_length() - 1  # height of the old tree's last subtree
    first = [] if old_size == 1 << shift else [subtree(old_size - (1 << shift), old_size)]
    return first + _audit_path(old_size - 1, new_size, shift, subtree)


def _check_hashes(proof: Sequence[bytes]) -> None:
    for i, h in enumerate(proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"proof hash {i} is {len(h)} bytes, not {HASH_SIZE}")


def _inclusion_proof_length(index: int, size: int) -> int:
    # Below the level where index and size-1 diverge every level contributes a sibling; above it,
    # only the levels where the path turns right (a set bit of index) do.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` binds ``leaf`` at ``index`` to (RFC 9162 §2.1.3.2 steps 1-4).

    Raises:
        ProofError: the index is not in the tree, the leaf or a proof hash is not 32 bytes, or
            the proof has the wrong number of hashes for ``(index, size)``.
    """
    if index < 0 or size < 0:
        raise ProofError(f"negative index {index} or tree size {size}")
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf)} bytes, not {HASH_SIZE}")
    want = _inclusion_proof_length(index, size)
    if len(proof) != want:
        raise ProofError(
            f"inclusion proof for index {index} in size {size} has {len(proof)} hashes,"
            f" expected {want}"
        )
    _check_hashes(proof)
    sha = _sha256
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:  # unreachable after the length check; kept as the RFC states it
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = sha(_NODE + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha(_NODE + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable after the length check
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is at ``index`` in the tree of ``size`` whose head is ``root``.

    Raises:
        ProofError: the proof is malformed (see :func:`root_from_inclusion_proof`) or leads to
            a different root.
    """
    if len(root) != HASH_SIZE:
        raise ProofError(f"root hash is {len(root)} bytes, not {HASH_SIZE}")
    got = root_from_inclusion_proof(leaf, index, size, proof)
    if got != root:
        raise ProofError(
            f"inclusion proof for index {index} in size {size} leads to root {got.hex()},"
            f" not {root.hex()}"
        )


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    shift = (old_size & -old_size).bit_length() - 1  # trailing zero bits of old_size
    inner = ((old_size - 1) ^ (new_size - 1)).bit_length()
    border = ((old_size - 1) >> inner).bit_count()
    seeded = old_size == 1 << shift  # old root is a complete subtree: not sent in the proof
    return (0 if seeded else 1) + inner - shift + border


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``(new_size, new_root)`` extends ``(old_size, old_root)``.

    RFC 9162 §2.1.4.2, with the edge cases made explicit: equal sizes need an empty proof and
    equal roots; an old size of 0 is refused (see the module docstring).

    Raises:
        ProofError: with the reason (sizes out of order, wrong proof length, bad hash length,
            roots that the proof does not connect).
    """
    if old_size < 0 or new_size < 0:
        raise ProofError(f"negative tree size ({old_size}, {new_size})")
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size == 0:
        raise ProofError("consistency with the empty tree (old size 0) proves nothing")
    if old_size == new_size:
        if proof:
            raise ProofError(f"sizes are equal ({old_size}) but the proof has {len(proof)} hashes")
        if old_root != new_root:
            raise ProofError(f"sizes are equal ({old_size}) but the roots differ")
        return
    if not proof:
        raise ProofError(f"empty consistency proof from size {old_size} to {new_size}")
    want = _consistency_proof_length(old_size, new_size)
    if len(proof) != want:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} has {len(proof)} hashes,"
            f" expected {want}"
        )
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        raise ProofError(f"root hashes must be {HASH_SIZE} bytes")
    _check_hashes(proof)

    sha = _sha256
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # step 2: an exact power of two
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1  # step 3
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # unreachable after the length check
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = sha(_NODE + c + fr).digest()
            sr = sha(_NODE + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha(_NODE + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable after the length check
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError(
            f"consistency proof does not lead to the old root at size {old_size}"
            f" (got {fr.hex()}, expected {old_root.hex()})"
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof does not lead to the new root at size {new_size}"
            f" (got {sr.hex()}, expected {new_root.hex()})"
        )


def _check_leaf(h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(h)}")


class MemoryTree:
    """A whole Merkle tree held in memory: every complete subtree's hash, by height.

    The reference the tests check everything else against, and handy for small tools. Proofs
    for any earlier size are available (``root(size)``, ``inclusion_proof(i, size)``).
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        # _levels[h][i] is MTH(D[i * 2**h : (i + 1) * 2**h]), for every complete subtree.
        self._levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf_hash: bytes) -> int:
        """Add one leaf hash; returns its index.

        Raises:
            ValueError: the hash is not 32 bytes.
        """
        _check_leaf(leaf_hash)
        levels = self._levels
        index = len(levels[0])
        levels[0].append(leaf_hash)
        h, n = 0, index + 1
        while n & 1 == 0:  # the new leaf completed a subtree of height h + 1
            if len(levels) == h + 1:
                levels.append([])
            below = levels[h]
            levels[h + 1].append(node_hash(below[-2], below[-1]))
            h += 1
            n >>= 1
        return index

    def subtree(self, lo: int, hi: int) -> bytes:
        """``MTH(D[lo:hi])`` for any ``0 <= lo <= hi <= size``.

        Raises:
            ProofRequestError: the range is not inside the tree.
        """
        if not 0 <= lo <= hi <= self.size:
            raise ProofRequestError(f"range [{lo}, {hi}) is not in a tree of size {self.size}")
        if lo == hi:
            return EMPTY_ROOT
        return self._mth(lo, hi)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n & (n - 1) == 0 and lo & (n - 1) == 0:
            h = n.bit_length() - 1
            return self._levels[h][lo >> h]
        k = _largest_power_of_two_below(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (default: all)."""
        return self.subtree(0, self.size if size is None else size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """``PATH(index, D[size])``; see :func:`inclusion_proof`.

        Raises:
            ProofRequestError: the index or size is not in the tree.
        """
        size = self.size if size is None else size
        if size > self.size:
            raise ProofRequestError(f"tree size {size} is larger than the tree ({self.size})")
        return inclusion_proof(index, size, self.subtree)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """``PROOF(old, D[new])``; see :func:`consistency_proof`.

        Raises:
            ProofRequestError: the sizes are out of order or larger than the tree.
        """
        new = self.size if new is None else new
        if new > self.size:
            raise ProofRequestError(f"tree size {new} is larger than the tree ({self.size})")
        return consistency_proof(old, new, self.subtree)


class CompactRange:
    """The right edge of the tree ``[0, size)``: the hashes of its maximal complete subtrees.

    ``hashes`` runs left to right, largest subtree first; there is one per set bit of ``size``.
    This is all a log needs in memory to append leaves and compute its root.
    """

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Start from a known edge (default: the empty tree).

        Raises:
            ValueError: the number or length of ``hashes`` does not fit ``size``.
        """
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(
                f"a tree of size {size} has {size.bit_count()} edge hashes, not {len(hashes)}"
            )
        for h in hashes:
            _check_leaf(h)
        self.size = size
        self.hashes = list(hashes)

    @classmethod
    def from_subtrees(cls, size: int, subtree: SubtreeHash) -> CompactRange:
        """The edge of the tree of ``size``, asking ``subtree`` for each maximal complete subtree
        (e.g. :func:`overt.formats.tiles.subtree_from_tiles` when a log restarts)."""
        hashes = []
        lo = 0
        for bit in reversed(range(size.bit_length())):
            if size >> bit & 1:
                hashes.append(subtree(lo, lo + (1 << bit)))
                lo += 1 << bit
        return cls(size, hashes)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash.

        Raises:
            ValueError: the hash is not 32 bytes.
        """
        if len(leaf_hash) != HASH_SIZE:
            _check_leaf(leaf_hash)
        hashes = self.hashes
        hashes.append(leaf_hash)
        n = self.size
        while n & 1:  # merge equal-sized subtrees, like a binary carry
            right = hashes.pop()
            hashes[-1] = _sha256(_NODE + hashes[-1] + right).digest()
            n >>= 1
        self.size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add many leaf hashes (same result as calling :meth:`append` on each).

        Raises:
            ValueError: a hash is not 32 bytes (the range keeps the leaves before it).
        """
        sha = _sha256
        hashes = self.hashes
        size = self.size
        try:
            for h in leaf_hashes:
                if len(h) != HASH_SIZE:
                    _check_leaf(h)
                hashes.append(h)
                n = size
                while n & 1:
                    right = hashes.pop()
                    hashes[-1] = sha(_NODE + hashes[-1] + right).digest()
                    n >>= 1
                size += 1
        finally:
            self.size = size

    def root(self) -> bytes:
        """The tree head of ``[0, size)``: the edge hashes folded right to left."""
        hashes = self.hashes
        if not hashes:
            return EMPTY_ROOT
        r = hashes[-1]
        for h in reversed(hashes[:-1]):
            r = _sha256(_NODE + h + r).digest()
        return r

    def copy(self) -> CompactRange:
        """An independent copy (appending to it leaves this one unchanged)."""
        return CompactRange(self.size, self.hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self.size == other.size and self.hashes == other.hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self.size}, hashes=[{len(self.hashes)} hashes])"
