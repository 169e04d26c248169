"""The mirror's decisions, with no I/O: state and request in, a new state or a refusal out.

c2sp.org/tlog-mirror in four pure steps, which :mod:`overt.mirror.server` runs
around its storage:

1. :func:`advance_pending` (``add-checkpoint``): a checkpoint verified as a
   witness verifies it (:func:`overt.witness.core.verify_submission`) becomes the
   new *pending checkpoint* iff its old size is the pending size (else 409 with
   that size) and the consistency proof from the pending checkpoint holds (else
   422). Nothing is cosigned.
2. :func:`check_upload` (``add-entries``, before the body): the origin is known
   (404), a pending checkpoint exists (422), ``upload_end`` is a pending size
   the mirror still knows or its checkpoint's size and not below the
   checkpoint (409), ``upload_start`` is not past the next entry and not too
   far behind it (409). Returns the checkpoint the packages are proven against.
3. :func:`verify_package`: the package's entries, after the ones the mirror
   holds before them in the subtree, hash to a subtree that the package's
   subtree consistency proof ties to that checkpoint's root (else 422).
4. :func:`cosign`: once every entry up to ``upload_end`` is durable and the
   stored tree's root at ``upload_end`` is the checkpoint's, the mirror's
   cosignature/v1 on it (c2sp.org/tlog-cosignature) and the note it serves.

Example::

    pending = advance_pending(record, verify_submission(request, logs))   # persist, reply 200
    target = check_upload(record, header)                                 # or MirrorError
    hashes = verify_package(rng, package, held_before, target)            # then store the entries
    mirror = cosign(target, signer)                                       # once all are durable
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from overt.errors import ConfigError, ProofError
from overt.formats import merkle
from overt.formats.cosignature import cosignature_timestamp
from overt.formats.keytypes import KeySigner
from overt.formats.merkle import EMPTY_ROOT, verify_consistency
from overt.formats.mirror import (
    EntryPackage,
    MirrorInfo,
    PackageRange,
    UploadHeader,
)
from overt.formats.note import Note, Signature, format_note, parse_note
from overt.formats.subtree import verify_subtree_consistency
from overt.formats.witness import format_cosignature_lines
from overt.mirror.errors import (
    MirrorConflictError,
    MirrorVerificationError,
    UnknownMirrorLogError,
)
from overt.witness.core import CosignedCheckpoint, Submission
from overt.witness.errors import WitnessConflictError, WitnessConsistencyError

__all__ = [
    "MAX_EXCESS_ENTRIES",
    "PENDING_KEPT",
    "MirrorRecord",
    "PendingCheckpoint",
    "advance_pending",
    "check_upload",
    "cosign",
    "mirror_info",
    "verify_package",
]

#: Pending checkpoints kept per log, so that uploads against a slightly older one
#: still succeed (the spec: "accept any of the last several pending checkpoint values").
PENDING_KEPT = 16
#: Entries an upload may resend that the mirror already holds (``excess_entries``);
#: beyond that it is told its next entry (409) instead of streaming them again.
MAX_EXCESS_ENTRIES = 4096


@dataclass(frozen=True)
class PendingCheckpoint:
    """A checkpoint signed by the log (``note``: its text and the log's verified
    signatures), accepted as pending: entries up to ``size`` may be uploaded."""

    origin: str
    size: int
    root_hash: bytes
    note: bytes


@dataclass(frozen=True)
class MirrorRecord:
    """What the mirror holds for one log.

    ``pending``: the latest pending checkpoints, oldest first (the current one
    last; empty before the first ``add-checkpoint``). ``mirror``: the mirror
    checkpoint, cosigned by the mirror (None before the first). ``next_entry``:
    every entry in ``[0, next_entry)`` is durably stored. ``min_index``: entry
    bundles that end at or below it are no longer served (c2sp.org/tlog-tiles
    pruning, by denying requests); clients must not count the mirror for them.
    """

    origin: str
    min_index: int = 0
    next_entry: int = 0
    pending: tuple[PendingCheckpoint, ...] = ()
    mirror: CosignedCheckpoint | None = None

    @property
    def pending_size(self) -> int:
        """The current pending checkpoint's size (0 before the first)."""
        return self.pending[-1].size if self.pending else 0

    @property
    def mirror_size(self) -> int:
        """The mirror checkpoint's size (0 before the first)."""
        return 0 if self.mirror is None else self.mirror.size


def mirror_info(record: MirrorRecord, size: int | None = None) -> MirrorInfo:
    """The mirror-info a 409 or 202 carries (``size``: default the current pending size)."""
    return MirrorInfo(record.pending_size if size is None else size, record.next_entry, b"")


def advance_pending(record: MirrorRecord, submission: Submission) -> MirrorRecord:
    """``add-checkpoint``: the record with the submitted checkpoint as its pending one.

    ``submission`` passed :func:`overt.witness.core.verify_submission` (signed by
    the log). As a witness: the old size must be the pending size, a size-0
    checkpoint has the empty root, and the consistency proof must hold.

    Raises:
        WitnessConflictError: the old size is not the pending size (409, ``.size``).
        WitnessConsistencyError: a bad proof, a wrong empty root, or the pending
            size with another root (422).
        ConfigError: ``record`` is another origin's.
    """
    request, cp = submission.request, submission.checkpoint
    if record.origin != cp.origin:
        raise ConfigError(f"record for {record.origin!r} used for {cp.origin!r}")
    current = record.pending[-1] if record.pending else None
    size = 0 if current is None else current.size
    if request.old_size != size:
        raise WitnessConflictError(size, request.old_size)
    if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
        raise WitnessConsistencyError("a checkpoint of size 0 must have the empty tree's root")
    if current is not None and size > 0:
        if cp.size == size and cp.root_hash != current.root_hash:
            raise WitnessConsistencyError(
                f"{cp.origin} size {size}: root {cp.root_hash.hex()} differs from the pending"
                f" root {current.root_hash.hex()} (a fork)"
            )
        try:
            verify_consistency(size, cp.size, current.root_hash, cp.root_hash, request.proof)
        except ProofError as err:
            raise WitnessConsistencyError(str(err)) from err
    elif request.proof:
        raise WitnessConsistencyError("the consistency proof from size 0 must be empty")
    note = request.note.text + b"\n" + format_cosignature_lines(submission.log_signatures)
    new = PendingCheckpoint(cp.origin, cp.size, cp.root_hash, note)
    kept = tuple(p for p in record.pending if p.size != new.size)
    return replace(record, pending=(*kept, new)[-PENDING_KEPT:])


def _target(record: MirrorRecord, size: int) -> PendingCheckpoint | None:
    for pending in reversed(record.pending):
        if pending.size == size:
            return pending
    mirror = record.mirror
    if mirror is not None and mirror.size == size:
        return PendingCheckpoint(mirror.origin, mirror.size, mirror.root_hash, mirror.note)
    return None


def check_upload(record: MirrorRecord | None, header: UploadHeader) -> PendingCheckpoint:
    """``add-entries``, before the packages: the checkpoint they must be proven against.

    ``record`` is the mirror's record for ``header.origin`` (None: not mirrored).

    Raises:
        UnknownMirrorLogError: the origin is not mirrored (404).
        MirrorVerificationError: no pending checkpoint was ever accepted (422).
        MirrorConflictError: ``upload_end`` is not a known pending size nor the
            mirror checkpoint's, or is below the mirror checkpoint; or
            ``upload_start`` is past the next entry, or more than
            :data:`MAX_EXCESS_ENTRIES` behind it (409, carrying the mirror-info).
    """
    if record is None:
        raise UnknownMirrorLogError(header.origin)
    if not record.pending:
        raise MirrorVerificationError(f"no checkpoint of {header.origin!r} was added yet")
    start, end = header.upload_start, header.upload_end
    target = _target(record, end)
    if target is None:
        raise MirrorConflictError(
            mirror_info(record), f"upload_end {end} is not a pending checkpoint size"
        )
    info = mirror_info(record, end)
    if end < record.mirror_size:
        raise MirrorConflictError(
            mirror_info(record), f"upload_end {end} is below the mirror checkpoint"
        )
    next_entry = record.next_entry
    if start > next_entry:
        raise MirrorConflictError(info, f"upload_start {start} is past the next entry {next_entry}")
    if min(end, next_entry) - start > MAX_EXCESS_ENTRIES:
        raise MirrorConflictError(
            info, f"upload_start {start} resends entries held up to {next_entry}"
        )
    return target


def verify_package(
    rng: PackageRange,
    package: EntryPackage,
    held: Sequence[bytes],
    target: PendingCheckpoint,
) -> list[bytes]:
    """Authenticates one package; returns the leaf hashes of its entries.

    ``held`` are the leaf hashes of ``[rng.subtree_start, rng.start)``, entries
    the mirror already stores (a package starting mid-bundle).

    Raises:
        MirrorVerificationError: the entries with ``held`` do not make the subtree
            the proof ties to ``target``'s root, or the counts are off (422).
    """
    if len(package.entries) != rng.count or len(held) != rng.start - rng.subtree_start:
        raise MirrorVerificationError(
            f"package [{rng.start}, {rng.end}) has {len(package.entries)} entries", rng.start
        )
    leaf = merkle.leaf_hash
    hashes = [leaf(e) for e in package.entries]
    subtree = merkle.root_hash([*held, *hashes])
    try:
        verify_subtree_consistency(
            rng.subtree_start, rng.end, target.size, subtree, target.root_hash, package.proof
        )
    except ProofError as err:
        raise MirrorVerificationError(
            f"entries [{rng.start}, {rng.end}) are not the log's: {err}", rng.start
        ) from err
    return hashes


def cosign(target: PendingCheckpoint, signer: KeySigner) -> tuple[CosignedCheckpoint, bytes]:
    """The mirror checkpoint for ``target`` and the reply's cosignature line(s).

    Call only once every entry up to ``target.size`` is durable and the stored
    tree's root at that size is ``target.root_hash``.

    Raises:
        ConfigError: the signer's clock gave a zero (or invalid) timestamp.
        FormatError: ``target.note`` is not a signed note (never: it was parsed on entry).
    """
    note = parse_note(target.note)
    signature = Signature(signer.name, signer.key_id, signer.sign(note.text))
    if cosignature_timestamp(signature.signature) == 0:
        raise ConfigError("the mirror clock reads 0: refusing to cosign without a timestamp")
    lines = format_cosignature_lines([signature])
    # The log's signatures, and this mirror's new cosignature instead of an older one.
    others = tuple(s for s in note.signatures if (s.name, s.key_id) != (signer.name, signer.key_id))
    note_bytes = format_note(Note(note.text, (*others, signature)))
    return CosignedCheckpoint(target.origin, target.size, target.root_hash, note_bytes), lines
