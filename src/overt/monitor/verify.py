"""The monitor's verification core: is a new checkpoint an honest successor of the kept one?

No I/O happens here. The shells (:mod:`overt.monitor.follow`, :mod:`overt.monitor.gossip`)
fetch checkpoints and read the log's tiles; these functions decide, returning the verified
checkpoint or raising a typed error that carries the evidence (the signed notes exactly as
received). The relation between two log-signed checkpoints *kept* (size m, root r) and *new*
(size n, root r') of one log::

    n == m, r' == r         the same tree                          -> accepted
    n == m, r' != r         equivocation: two trees at one size    -> EquivocationError
    n <  m                  rollback: the log went back in time    -> RollbackError
    n >  m                  the tiles of the new tree give a proof P and the root p of their
                            first m entries ("prefix root"); P must connect p to r':
        P fails             the tiles contradict the log's own     -> TilesMismatchError
                            checkpoint (not evidence: tiles are unsigned)
        P holds, p == r     an append-only extension               -> accepted
        P holds, p != r     fork: the new tree rewrote history     -> ForkError
    size 0                  must have the empty root SHA-256(), else ForkError

Every error but TilesMismatchError is evidence a third party can check with the log's key
alone (:func:`verify_evidence`): an equivocation is two notes of one size and different
roots; a fork also carries P and p, and anyone can verify that P connects p to r' and that
p differs from r. A rollback is two genuine notes, the larger seen first: it proves the log
served an older tree after a newer one, which c2sp.org/tlog-checkpoint logs never do.

Spec: https://c2sp.org/tlog-checkpoint; consistency proofs per RFC 9162 §2.1.4.
"""

from __future__ import annotations

from collections.abc import Sequence

from overt.errors import InconsistentCheckpointError, ProofError
from overt.formats.checkpoint import OriginError, SignedCheckpoint, open_checkpoint
from overt.formats.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from overt.formats.note import Verifier

__all__ = [
    "EVIDENCE_KINDS",
    "EquivocationError",
    "ForkError",
    "RollbackError",
    "TilesMismatchError",
    "check_same_tree",
    "verify_evidence",
    "verify_successor",
]

EVIDENCE_KINDS = ("equivocation", "fork", "rollback")


class EquivocationError(InconsistentCheckpointError):
    """Two log-signed checkpoints for one origin and size with different root hashes.

    ``evidence`` is the two signed notes (first the one kept, then the new one).
    """

    kind = "equivocation"


class RollbackError(InconsistentCheckpointError):
    """A log-signed checkpoint smaller than one the log already published.

    ``evidence`` is the two signed notes (the larger one kept, then the smaller new one).
    """

    kind = "rollback"


class ForkError(InconsistentCheckpointError):
    """A log-signed tree whose first entries are not the tree the log signed before.

    ``evidence`` is the two signed notes (the smaller, then the larger); ``proof`` and
    ``prefix_root`` show that the larger tree's prefix at the smaller size has another root
    (both empty for a size-0 checkpoint with a non-empty root).
    """

    kind = "fork"

    def __init__(
        self,
        message: str,
        evidence: tuple[bytes, ...] = (),
        proof: Sequence[bytes] = (),
        prefix_root: bytes | None = None,
    ) -> None:
        super().__init__(message, evidence)
        self.proof = tuple(proof)
        self.prefix_root = prefix_root


class TilesMismatchError(ProofError):
    """The log's tiles do not hash to the root of the log's own checkpoint.

    The log misbehaves (or its storage is damaged), but tiles are not signed: this is an
    alert, not evidence against the log's checkpoints.
    """


def _describe(signed: SignedCheckpoint) -> str:
    cp = signed.checkpoint
    return f"size {cp.size} root {cp.root_hash.hex()[:16]}"


def check_same_tree(a: SignedCheckpoint, b: SignedCheckpoint) -> None:
    """Checks that two checkpoints of one size commit to the same tree.

    Raises:
        OriginError: the checkpoints are of different logs.
        ValueError: the sizes differ (a caller bug; use :func:`verify_successor`).
        EquivocationError: same size, different roots.
    """
    if a.checkpoint.origin != b.checkpoint.origin:
        raise OriginError(b.checkpoint.origin, a.checkpoint.origin)
    if a.checkpoint.size != b.checkpoint.size:
        raise ValueError(f"sizes differ: {a.checkpoint.size} and {b.checkpoint.size}")
    if a.checkpoint.root_hash != b.checkpoint.root_hash:
        raise EquivocationError(
            f"log {a.checkpoint.origin} equivocated: two checkpoints at size"
            f" {a.checkpoint.size} with roots {a.checkpoint.root_hash.hex()[:16]}"
            f" and {b.checkpoint.root_hash.hex()[:16]}",
            (a.raw, b.raw),
        )


def verify_successor(
    kept: SignedCheckpoint,
    new: SignedCheckpoint,
    proof: Sequence[bytes] = (),
    prefix_root: bytes | None = None,
) -> SignedCheckpoint:
    """Returns ``new`` if it is the same tree as ``kept`` or an append-only extension of it.

    Both checkpoints must already carry the log's verified signature. When ``new`` is larger
    (and ``kept`` not empty), ``proof`` is the consistency proof from ``kept``'s size to
    ``new``'s and ``prefix_root`` the root of ``new``'s first ``kept.size`` entries, both as
    the log's tiles of ``new``'s tree give them. Without ``prefix_root`` the proof is taken
    to be for ``kept``'s root, and a failure cannot tell a fork from bad tiles: it raises
    TilesMismatchError.

    Raises:
        OriginError: the checkpoints are of different logs.
        EquivocationError: same size, different roots.
        RollbackError: ``new`` is smaller than ``kept``.
        TilesMismatchError: the proof does not connect ``prefix_root`` to ``new``'s root.
        ForkError: it does, but ``prefix_root`` is not ``kept``'s root; or a size-0
            checkpoint whose root is not the empty tree's.
    """
    old, cur = kept.checkpoint, new.checkpoint
    if old.origin != cur.origin:
        raise OriginError(cur.origin, old.origin)
    for signed in (kept, new):
        if signed.checkpoint.size == 0 and signed.checkpoint.root_hash != EMPTY_ROOT:
            raise ForkError(
                f"log {old.origin} signed an empty tree whose root is not SHA-256()",
                (kept.raw, new.raw),
            )
    if cur.size < old.size:
        raise RollbackError(
            f"log {old.origin} rolled back from {_describe(kept)} to {_describe(new)}",
            (kept.raw, new.raw),
        )
    if cur.size == old.size:
        check_same_tree(kept, new)
        return new
    if old.size == 0:
        return new  # everything extends the empty tree (RFC 9162 has no proof for it)
    prefix = old.root_hash if prefix_root is None else prefix_root
    try:
        verify_consistency(old.size, cur.size, prefix, cur.root_hash, proof)
    except ProofError as err:
        raise TilesMismatchError(
            f"log {old.origin}: the tiles of {_describe(new)} do not match its checkpoint: {err}"
        ) from err
    if prefix != old.root_hash:
        raise ForkError(
            f"log {old.origin} forked: its tree at {_describe(new)} starts with a tree of"
            f" root {prefix.hex()[:16]}, not the {_describe(kept)} it signed before",
            (kept.raw, new.raw),
            proof,
            prefix,
        )
    return new


def verify_evidence(
    kind: str,
    notes: Sequence[bytes],
    verifier: Verifier,
    proof: Sequence[bytes] = (),
    prefix_root: bytes | None = None,
) -> tuple[SignedCheckpoint, SignedCheckpoint]:
    """Checks that evidence of ``kind`` proves what it claims, with the log key alone.

    Returns the two verified checkpoints (in the evidence's order).

    Raises:
        FormatError, VerificationError: a note does not verify under the log key.
        ProofError: the notes (and proof) do not show an inconsistency of ``kind``.
    """
    if kind not in EVIDENCE_KINDS or len(notes) != 2:
        raise ProofError(f"evidence must be two notes of a kind in {EVIDENCE_KINDS}")
    a, b = (open_checkpoint(n, verifier) for n in notes)
    try:
        if kind == "equivocation":
            if a.checkpoint.size != b.checkpoint.size:
                raise ProofError("equivocation evidence with two different sizes")
            check_same_tree(a, b)
        elif kind == "rollback":
            verify_successor(a, b)  # a rollback raises; anything else is no rollback
        else:
            if prefix_root is None or len(prefix_root) != HASH_SIZE:
                verify_successor(a, b)  # only the empty-root fork needs no proof
            else:
                verify_successor(a, b, proof, prefix_root)
    except (EquivocationError, RollbackError, ForkError) as err:
        if err.kind != kind:
            raise ProofError(f"the notes show a {err.kind}, not a {kind}") from err
        return a, b
    raise ProofError(f"the notes are consistent: no {kind}")
