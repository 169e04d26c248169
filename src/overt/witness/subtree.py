"""The witness's ``sign-subtree`` decision, with no I/O (c2sp.org/tlog-witness, sign-subtree).

A log asks a witness to cosign a *subtree* ``[start, end)`` of its tree
(draft-ietf-plants-merkle-tree-certs §4) by showing a checkpoint that this witness
cosigned and a subtree consistency proof from the subtree to that checkpoint. The
witness cosigned the checkpoint only after checking it against everything it had
cosigned before, so a subtree consistent with it is consistent with the log's whole
history as this witness saw it, which is exactly what a subtree cosignature states
(c2sp.org/tlog-cosignature: "consistent with all other historical views observed by
the cosigner"). No state is read: the witness's own cosignature on the checkpoint is
its record that it cosigned it, so the decision is pure and runs on every request
concurrently. Checks, in order, each with the status the spec names:

1. the range is a subtree and ends within the checkpoint, the checkpoint parses (400);
2. the checkpoint's origin is a log this witness witnesses (404);
3. the checkpoint carries a valid cosignature by one of this witness's own keys (403);
4. the subtree consistency proof leads from the subtree hash to the checkpoint's root (422).

Then the witness signs the subtree with its subtree-capable key (ML-DSA-44,
tlog-cosignature's ``subtree/v1`` message, timestamp zero) and replies with the
signature line. A witness whose key cannot sign subtrees (Ed25519 cosignature/v1)
does not offer the call (404, :func:`unsupported`).

Example::

    request = parse_sign_subtree(body)
    lines = sign_subtree(request, logs, signer, own=[signer])   # or raises a WitnessError
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from overt.errors import FormatError, InvalidSignatureError, ProofError
from overt.formats.checkpoint import Checkpoint, parse_checkpoint
from overt.formats.keytypes import Purpose
from overt.formats.note import Signature, Verifier
from overt.formats.subtree import verify_subtree_consistency
from overt.formats.witness import SignSubtreeRequest, format_cosignature_lines
from overt.witness.core import KnownLogs
from overt.witness.errors import (
    UnknownLogError,
    WitnessConsistencyError,
    WitnessRequestError,
    WitnessSignatureError,
)

__all__ = [
    "SubtreeSigner",
    "can_sign_subtrees",
    "sign_subtree",
    "unsupported",
    "verify_subtree_request",
]


class SubtreeSigner(Protocol):
    """A key that signs subtrees (:class:`overt.formats.keytypes.KeySigner` of type 0x06)."""

    name: str
    key_id: bytes

    def sign_subtree(self, origin: str, start: int, end: int, root_hash: bytes) -> bytes: ...


def unsupported(name: str) -> UnknownLogError:
    """The 404 of a witness whose key cannot sign subtrees: it does not offer the call."""
    return UnknownLogError(
        "", f"witness {name} does not offer sign-subtree (its key cannot sign subtrees)"
    )


def can_sign_subtrees(signer: object) -> bool:
    """Whether ``signer``'s key type may sign subtree cosignatures (ML-DSA-44 today)."""
    key_type = getattr(signer, "key_type", None)
    may_sign = getattr(key_type, "may_sign", None)
    return bool(may_sign is not None and may_sign(Purpose.SUBTREE))


def _own_cosignature(
    note_text: bytes, signatures: Sequence[Signature], own: Sequence[Verifier]
) -> None:
    mine = {(v.name, v.key_id): v for v in own}
    good = 0
    for sig in signatures:
        verifier = mine.get((sig.name, sig.key_id))
        if verifier is None:
            continue  # the log's signature, other witnesses': not this witness's business
        try:
            verifier.verify(note_text, sig.signature)
        except InvalidSignatureError as err:
            raise WitnessSignatureError(f"a bad cosignature by this witness's key: {err}") from err
        good += 1
    if not good:
        names = ", ".join(sorted({v.name for v in own})) or "none"
        raise WitnessSignatureError(f"the checkpoint has no cosignature by this witness ({names})")


def verify_subtree_request(
    request: SignSubtreeRequest, logs: KnownLogs, own: Sequence[Verifier]
) -> Checkpoint:
    """Checks 1-4 of the module docstring; returns the reference checkpoint.

    Raises:
        WitnessRequestError: the checkpoint does not parse, or the subtree ends after it (400).
        UnknownLogError: the checkpoint's origin is not a log this witness witnesses (404).
        WitnessSignatureError: no valid cosignature by one of ``own`` on the checkpoint (403).
        WitnessConsistencyError: the subtree consistency proof does not hold (422).
    """
    try:
        cp = parse_checkpoint(request.note.text)
    except FormatError as err:
        raise WitnessRequestError(str(err)) from err
    if request.end > cp.size:
        raise WitnessRequestError(
            f"subtree [{request.start}, {request.end}) ends after the checkpoint's size {cp.size}"
        )
    if not logs.get(cp.origin):
        raise UnknownLogError(cp.origin)
    _own_cosignature(request.note.text, request.note.signatures, own)
    try:
        verify_subtree_consistency(
            request.start, request.end, cp.size, request.subtree_hash, cp.root_hash, request.proof
        )
    except ProofError as err:
        raise WitnessConsistencyError(str(err)) from err
    return cp


def sign_subtree(
    request: SignSubtreeRequest,
    logs: KnownLogs,
    signer: SubtreeSigner,
    own: Sequence[Verifier],
) -> bytes:
    """Decides a sign-subtree request; returns the reply body (the signature line).

    ``own`` are this witness's verifier keys: a checkpoint cosigned by any of them is
    one this witness cosigned (the subtree signer's own key is usually among them).

    Raises:
        UnknownLogError: ``signer`` cannot sign subtrees (404, :func:`unsupported`).
        WitnessError: see :func:`verify_subtree_request`.
    """
    if not can_sign_subtrees(signer):
        raise unsupported(signer.name)
    cp = verify_subtree_request(request, logs, own)
    signature = signer.sign_subtree(cp.origin, request.start, request.end, request.subtree_hash)
    return format_cosignature_lines([Signature(signer.name, signer.key_id, signature)])
