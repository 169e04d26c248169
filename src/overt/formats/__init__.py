"""overt's wire formats, one module per spec (see each module's docstring).

The verification core: bytes in, verified objects or a typed error out, no I/O.

- :mod:`~overt.formats.note` (c2sp.org/signed-note), :mod:`~overt.formats.checkpoint`
  (tlog-checkpoint), :mod:`~overt.formats.cosignature` (tlog-cosignature),
  :mod:`~overt.formats.tiles` (tlog-tiles), :mod:`~overt.formats.proof` (tlog-proof),
  :mod:`~overt.formats.policy` (tlog-policy), :mod:`~overt.formats.witness` (tlog-witness),
  :mod:`~overt.formats.merkle` (RFC 6962/9162), :mod:`~overt.formats.dsse` (DSSE v1),
  :mod:`~overt.formats.statement` (in-toto Statement v1 and overt's predicates).

Signature key types live in one registry, :mod:`~overt.formats.keytypes` (type byte ->
algorithm, key ID, message, what it may sign). Importing the package registers every type,
so ``parse_vkey`` knows the cosignature types (0x04 Ed25519, 0x06 ML-DSA-44, declared in
:mod:`~overt.formats.cosignature`) however the caller got here (``note`` itself does not
import the formats built on it).
The names below are re-exported lazily (imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports
from overt.formats import cosignature as _cosignature  # noqa: F401  (registers 0x04, 0x06)

if TYPE_CHECKING:
    from overt.formats.checkpoint import (
        Checkpoint,
        SignedCheckpoint,
        format_checkpoint,
        open_checkpoint,
        parse_checkpoint,
        sign_checkpoint,
    )
    from overt.formats.cosignature import CosignatureSigner, CosignatureVerifier
    from overt.formats.dsse import (
        Envelope,
        VerifiedEnvelope,
        format_envelope,
        parse_envelope,
        sign_envelope,
        verify_envelope,
    )
    from overt.formats.merkle import (
        MemoryTree,
        leaf_hash,
        root_hash,
        verify_consistency,
        verify_inclusion,
    )
    from overt.formats.note import (
        Ed25519Signer,
        Ed25519Verifier,
        Note,
        Signer,
        VerifiedNote,
        Verifier,
        format_note,
        generate_key,
        open_note,
        parse_note,
        parse_skey,
        parse_vkey,
        sign_note,
    )
    from overt.formats.policy import (
        Policy,
        VerifiedCheckpoint,
        format_policy,
        parse_policy,
        verify_checkpoint,
    )
    from overt.formats.proof import (
        TlogProof,
        VerifiedProof,
        format_proof,
        parse_proof,
        verify_proof,
    )
    from overt.formats.statement import (
        Statement,
        Subject,
        format_statement,
        make_statement,
        parse_statement,
    )

__all__ = [
    "Checkpoint",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Envelope",
    "MemoryTree",
    "Note",
    "Policy",
    "SignedCheckpoint",
    "Signer",
    "Statement",
    "Subject",
    "TlogProof",
    "VerifiedCheckpoint",
    "VerifiedEnvelope",
    "VerifiedNote",
    "VerifiedProof",
    "Verifier",
    "format_checkpoint",
    "format_envelope",
    "format_note",
    "format_policy",
    "format_proof",
    "format_statement",
    "generate_key",
    "leaf_hash",
    "make_statement",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_envelope",
    "parse_note",
    "parse_policy",
    "parse_proof",
    "parse_skey",
    "parse_statement",
    "parse_vkey",
    "root_hash",
    "sign_checkpoint",
    "sign_envelope",
    "sign_note",
    "verify_checkpoint",
    "verify_consistency",
    "verify_envelope",
    "verify_inclusion",
    "verify_proof",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.formats.note": [
                "Ed25519Signer",
                "Ed25519Verifier",
                "Note",
                "Signer",
                "VerifiedNote",
                "Verifier",
                "format_note",
                "generate_key",
                "open_note",
                "parse_note",
                "parse_skey",
                "parse_vkey",
                "sign_note",
            ],
            "overt.formats.checkpoint": [
                "Checkpoint",
                "SignedCheckpoint",
                "format_checkpoint",
                "open_checkpoint",
                "parse_checkpoint",
                "sign_checkpoint",
            ],
            "overt.formats.cosignature": ["CosignatureSigner", "CosignatureVerifier"],
            "overt.formats.merkle": [
                "MemoryTree",
                "leaf_hash",
                "root_hash",
                "verify_consistency",
                "verify_inclusion",
            ],
            "overt.formats.proof": [
                "TlogProof",
                "VerifiedProof",
                "format_proof",
                "parse_proof",
                "verify_proof",
            ],
            "overt.formats.policy": [
                "Policy",
                "VerifiedCheckpoint",
                "format_policy",
                "parse_policy",
                "verify_checkpoint",
            ],
            "overt.formats.dsse": [
                "Envelope",
                "VerifiedEnvelope",
                "format_envelope",
                "parse_envelope",
                "sign_envelope",
                "verify_envelope",
            ],
            "overt.formats.statement": [
                "Statement",
                "Subject",
                "format_statement",
                "make_statement",
                "parse_statement",
            ],
        },
    )
