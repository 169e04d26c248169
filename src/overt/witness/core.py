"""The witness's decision, with no I/O: a request and the stored state in, a cosignature or a refusal out.

c2sp.org/tlog-witness@v1.0.0 (``add-checkpoint``) in two steps, so that the
server can run the first on every request concurrently and the second inside
the state's transaction:

1. :func:`verify_submission` checks what does not depend on the state: the
   checkpoint parses (else 400), its origin is a known log (else 404), a key
   trusted for that origin signed it and no trusted key's signature is bad
   (else 403), and the old size is not above the checkpoint's size (else 400).
2. :func:`decide` checks it against the latest checkpoint this witness
   cosigned for the origin: the old size is that checkpoint's size (else 409,
   carrying the size), a size-0 checkpoint has the empty root, the proof is
   empty from size 0 or else a valid RFC 6962 consistency proof from the stored
   root, and equal sizes have equal roots (else 422). Then it cosigns
   (c2sp.org/tlog-cosignature, cosignature/v1, timestamp from the signer's
   injectable clock) and returns the new state to persist and the reply.

:func:`add_checkpoint` is both steps at once. The caller must persist
:attr:`Cosigned.state` *atomically with* the read of ``stored`` (a
compare-and-set; :class:`overt.witness.state.WitnessState` does it) and only
then reply with :attr:`Cosigned.lines`; see the race the spec describes.

Example::

    logs = known_logs([parse_vkey("example.com/log+0d4f2b3e+AZ4f...")])
    request = parse_add_checkpoint(body)
    result = add_checkpoint(stored, logs, request, signer)   # or raises a WitnessError
    # persist result.state iff stored is still current, then reply result.lines
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from overt.errors import ConfigError, FormatError, InvalidSignatureError, ProofError
from overt.formats.checkpoint import Checkpoint

# The checkpoint parser that remembers the last few small texts: the witness's own
# cosignature parses the same text again for its message (ML-DSA-44, cosignature/v1).
from overt.formats.cosignature import _checkpoint as parse_checkpoint
from overt.formats.cosignature import cosignature_timestamp
from overt.formats.keytypes import KeyVerifier, Purpose
from overt.formats.merkle import EMPTY_ROOT, verify_consistency
from overt.formats.note import Signature, Signer, Verifier
from overt.formats.witness import AddCheckpointRequest, format_cosignature_lines
from overt.witness.errors import (
    UnknownLogError,
    WitnessConflictError,
    WitnessConsistencyError,
    WitnessRequestError,
    WitnessSignatureError,
)

__all__ = [
    "Cosigned",
    "CosignedCheckpoint",
    "KnownLogs",
    "Submission",
    "add_checkpoint",
    "decide",
    "known_logs",
    "verify_submission",
]

KnownLogs = Mapping[str, Sequence[Verifier]]
"""The logs a witness witnesses: origin -> the log keys trusted for it (named after it)."""


@dataclass(frozen=True)
class CosignedCheckpoint:
    """The witness's record for one log: the latest checkpoint it cosigned.

    ``note`` is that checkpoint as a signed note carrying the log signature(s)
    the witness verified and the witness's own cosignature (what monitors read).
    """

    origin: str
    size: int
    root_hash: bytes
    note: bytes


@dataclass(frozen=True)
class Submission:
    """A request whose checkpoint is signed by a trusted key of its log (step 1 passed)."""

    request: AddCheckpointRequest
    checkpoint: Checkpoint
    log_signatures: tuple[Signature, ...]

    @property
    def origin(self) -> str:
        return self.checkpoint.origin


@dataclass(frozen=True)
class Cosigned:
    """An accepted checkpoint: the record to persist and the reply body (signature lines)."""

    state: CosignedCheckpoint
    lines: bytes


def known_logs(verifiers: Iterable[Verifier]) -> dict[str, tuple[Verifier, ...]]:
    """Groups log keys by origin (a log key is named after its origin).

    Raises:
        ConfigError: a key whose type does not sign checkpoints (a log key is 0x01 or 0x06).
    """
    out: dict[str, tuple[Verifier, ...]] = {}
    for v in verifiers:
        if not (isinstance(v, KeyVerifier) and v.key_type.may_sign(Purpose.CHECKPOINT)):
            raise ConfigError(f"log key {v.name} is of a type that does not sign checkpoints")
        if v not in out.get(v.name, ()):
            out[v.name] = (*out.get(v.name, ()), v)
    return out


def verify_submission(request: AddCheckpointRequest, logs: KnownLogs) -> Submission:
    """Step 1: the checks that do not depend on the witness's state.

    Signatures by unknown keys are ignored, as the spec requires.

    Raises:
        WitnessRequestError: the checkpoint text does not parse, or the old size is
            larger than the checkpoint's size (400).
        UnknownLogError: no log with the checkpoint's origin is known (404).
        WitnessSignatureError: no signature by a key trusted for the origin, a trusted
            key's signature that does not verify, or two by one key (403).
    """
    try:
        checkpoint = parse_checkpoint(request.note.text)
    except FormatError as err:
        raise WitnessRequestError(str(err)) from err
    verifiers = logs.get(checkpoint.origin)
    if not verifiers:
        raise UnknownLogError(checkpoint.origin)
    by_id = {(v.name, v.key_id): v for v in verifiers if v.name == checkpoint.origin}
    good: list[Signature] = []
    for sig in request.note.signatures:
        verifier = by_id.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if any(g.key_id == sig.key_id for g in good):
            raise WitnessSignatureError(f"two signatures by the log key {sig.name}")
        try:
            verifier.verify(request.note.text, sig.signature)
        except InvalidSignatureError as err:
            raise WitnessSignatureError(str(err)) from err
        good.append(sig)
    if not good:
        raise WitnessSignatureError(f"no signature by a trusted key for {checkpoint.origin!r}")
    if request.old_size > checkpoint.size:
        raise WitnessRequestError(
            f"old size {request.old_size} is larger than the checkpoint size {checkpoint.size}"
        )
    return Submission(request, checkpoint, tuple(good))


def decide(stored: CosignedCheckpoint | None, submission: Submission, signer: Signer) -> Cosigned:
    """Step 2: check a verified submission against the stored record, and cosign.

    ``stored`` is the latest record for the submission's origin (None: never
    cosigned, which counts as size 0).

    Raises:
        WitnessConflictError: the old size is not the stored size (409).
        WitnessConsistencyError: a size-0 checkpoint whose root is not the empty
            tree's, a non-empty proof from size 0, a consistency proof that does not
            verify, or the stored size with another root (422).
        WitnessRequestError: a checkpoint the witness's key type cannot cosign (400).
        ConfigError: the signer's clock gave a zero (or invalid) timestamp.
    """
    request, cp = submission.request, submission.checkpoint
    if stored is not None and stored.origin != cp.origin:
        raise ConfigError(f"stored record for {stored.origin!r} used for {cp.origin!r}")
    stored_size = 0 if stored is None else stored.size
    if request.old_size != stored_size:
        raise WitnessConflictError(stored_size, request.old_size)
    if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
        raise WitnessConsistencyError("a checkpoint of size 0 must have the empty tree's root")
    if request.old_size == 0:
        if request.proof:
            raise WitnessConsistencyError("the consistency proof from size 0 must be empty")
    else:
        assert stored is not None  # stored_size == old_size > 0
        if cp.size == stored.size and cp.root_hash != stored.root_hash:
            raise WitnessConsistencyError(
                f"{cp.origin} size {cp.size}: root {cp.root_hash.hex()} differs from the"
                f" root {stored.root_hash.hex()} cosigned before (a fork)"
            )
        try:
            verify_consistency(stored.size, cp.size, stored.root_hash, cp.root_hash, request.proof)
        except ProofError as err:
            raise WitnessConsistencyError(str(err)) from err
    text = request.note.text
    try:
        signature = Signature(signer.name, signer.key_id, signer.sign(text))
    except FormatError as err:
        # A checkpoint this witness's key type cannot cosign: ML-DSA-44's message does not
        # cover extension lines (tlog-cosignature), so they would ride along unsigned.
        raise WitnessRequestError(f"this witness cannot cosign it: {err.reason}") from err
    if cosignature_timestamp(signature.signature) == 0:
        # The spec forbids omitting the timestamp (zero); a clock at the epoch is broken.
        raise ConfigError("the witness clock reads 0: refusing to cosign without a timestamp")
    lines = format_cosignature_lines([signature])
    note = text + b"\n" + format_cosignature_lines(submission.log_signatures) + lines
    state = CosignedCheckpoint(cp.origin, cp.size, cp.root_hash, note)
    return Cosigned(state=state, lines=lines)


def add_checkpoint(
    stored: CosignedCheckpoint | None,
    logs: KnownLogs,
    request: AddCheckpointRequest,
    signer: Signer,
) -> Cosigned:
    """Both steps: :func:`verify_submission`, then :func:`decide` against ``stored``.

    ``stored`` must be the record for the request's origin (or None).

    Raises:
        WitnessError: the subclass whose ``status`` is the spec's status code.
        ConfigError: see :func:`decide`.
    """
    return decide(stored, verify_submission(request, logs), signer)
