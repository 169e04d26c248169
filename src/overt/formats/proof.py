"""Offline-verifiable transparency log proofs (c2sp.org/tlog-proof@v1).

A proof bundles an entry's index, its RFC 6962 inclusion proof and the signed
checkpoint (with any witness cosignatures) it is proven against::

    proof      = "c2sp.org/tlog-proof@v1" LF
                 [ "extra " base64(extra) LF ]       ; opaque, unauthenticated
                 "index " decimal LF                 ; canonical, zero-based
                 *( base64(32-byte hash) LF )         ; leaf's sibling first, at most 63
                 LF
                 signed-checkpoint                    ; c2sp.org/tlog-checkpoint, verbatim

Example (shortened from the spec)::

    c2sp.org/tlog-proof@v1
    extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
    index 73894
    gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
    B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=

    example.com/fancylog
    109482
    sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

    — example.com/fancylog hI2DJw...

:func:`parse_proof` also parses the embedded note and checkpoint (strictly) but
verifies nothing; :func:`verify_proof` follows the spec's "Verifying" steps:
the log's signature on a checkpoint of the expected origin, the cosignatures of
the known witnesses, then inclusion of the caller-computed leaf hash. The extra
data is never trusted. A witness quorum policy will be a later, keyword-only
argument of :func:`verify_proof`.

Versioning: the first line names the version; another layout is another line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overt.errors import FormatError
from overt.formats.checkpoint import (
    MAX_TREE_SIZE,
    SignedCheckpoint,
    parse_checkpoint,
)
from overt.formats.merkle import verify_inclusion
from overt.formats.note import MAX_NOTE_SIZE, Verifier, parse_note
from overt.formats.policy import Policy, open_trusted_checkpoint
from overt.formats.strict import b64decode_strict, b64encode, parse_decimal

__all__ = [
    "HEADER",
    "MAX_EXTRA_SIZE",
    "MAX_PROOF_SIZE",
    "TlogProof",
    "VerifiedProof",
    "format_proof",
    "parse_proof",
    "verify_proof",
]

HEADER = b"c2sp.org/tlog-proof@v1"
"""The first line of every v1 proof."""

MAX_EXTRA_SIZE = 1 << 16
_MAX_HASHES = 63  # tree sizes are below 2^63, so no inclusion proof is longer
MAX_PROOF_SIZE = MAX_NOTE_SIZE + 2 * MAX_EXTRA_SIZE + 4096
"""Largest proof accepted, in bytes: a maximal note, extra data and 63 hashes."""


@dataclass(frozen=True)
class TlogProof:
    """A parsed, unverified proof. ``checkpoint`` is the signed note, byte for byte."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None


def parse_proof(data: bytes) -> TlogProof:
    """Parses a tlog-proof (without verifying it).

    Raises:
        FormatError: oversized; wrong header; an empty or malformed extra line; a
            missing or non-canonical index; a hash line that is not the canonical
            base64 of 32 bytes; more than 63 hashes; or a checkpoint that is not a
            well-formed signed checkpoint.
    """
    if len(data) > MAX_PROOF_SIZE:
        raise FormatError("tlog-proof", f"larger than {MAX_PROOF_SIZE} bytes", data[:60])
    head, sep, checkpoint = data.partition(b"\n\n")
    if not sep:
        raise FormatError("tlog-proof", "no blank line before the checkpoint", data)
    lines = head.split(b"\n")
    if lines[0] != HEADER:
        raise FormatError("tlog-proof", f"first line is not {HEADER.decode()}", lines[0])
    lines = lines[1:]
    extra = None
    if lines and lines[0].startswith(b"extra "):
        extra = b64decode_strict(lines[0][len(b"extra ") :], "tlog-proof extra")
        if not extra:
            raise FormatError("tlog-proof extra", "empty (omit the line instead)", lines[0])
        if len(extra) > MAX_EXTRA_SIZE:
            raise FormatError("tlog-proof extra", f"larger than {MAX_EXTRA_SIZE} bytes")
        lines = lines[1:]
    if not lines or not lines[0].startswith(b"index "):
        raise FormatError("tlog-proof", "no index line", head)
    try:
        index_text = lines[0][len(b"index ") :].decode("ascii")
    except UnicodeDecodeError as err:
        raise FormatError("tlog-proof index", "not ASCII", lines[0]) from err
    index = parse_decimal(index_text, "tlog-proof index", MAX_TREE_SIZE - 1)
    hash_lines = lines[1:]
    if len(hash_lines) > _MAX_HASHES:
        raise FormatError("tlog-proof", f"more than {_MAX_HASHES} hashes")
    hashes = []
    for line in hash_lines:
        h = b64decode_strict(line, "tlog-proof hash")
        if len(h) != 32:
            raise FormatError("tlog-proof hash", "not 32 bytes", line)
        hashes.append(h)
    parse_checkpoint(parse_note(checkpoint).text)
    return TlogProof(index=index, hashes=tuple(hashes), checkpoint=checkpoint, extra=extra)


def format_proof(p: TlogProof) -> bytes:
    """Encodes a proof; the exact inverse of :func:`parse_proof`.

    Raises:
        FormatError: a field that :func:`parse_proof` would not read back as-is
            (negative index, a hash not 32 bytes, empty extra, a malformed checkpoint).
    """
    if type(p.index) is not int or not 0 <= p.index < MAX_TREE_SIZE:
        raise FormatError("tlog-proof index", "not an int in [0, 2^63 - 1)", repr(p.index))
    lines = [HEADER]
    if p.extra is not None:
        lines.append(b"extra " + b64encode(p.extra).encode("ascii"))
    lines.append(b"index %d" % p.index)
    lines.extend(b64encode(h).encode("ascii") for h in p.hashes)
    out = b"".join(line + b"\n" for line in lines) + b"\n" + p.checkpoint
    if parse_proof(out) != p:
        raise FormatError("tlog-proof", "does not round-trip", out)
    return out


@dataclass(frozen=True)
class VerifiedProof:
    """A proof whose checkpoint verified and whose inclusion proof binds ``leaf_hash``."""

    proof: TlogProof
    checkpoint: SignedCheckpoint
    leaf_hash: bytes


def verify_proof(
    proof: TlogProof | bytes,
    leaf_hash: bytes,
    log_verifier: Verifier,
    origin: str | None = None,
    extra_verifiers: Sequence[Verifier] = (),
    *,
    policy: Policy | None = None,
    now: float | None = None,
    max_age: float | None = None,
) -> VerifiedProof:
    """Verifies a proof for ``leaf_hash`` (step 1 of the spec, computing it, is the caller's).

    Steps 2-4 of c2sp.org/tlog-proof: the checkpoint is signed by ``log_verifier``
    and has the expected origin (``origin``, and always the log key's name); every
    signature by a key in ``extra_verifiers`` (witnesses) verifies; the inclusion
    proof leads from ``leaf_hash`` at ``proof.index`` to the checkpoint's root.
    Which witnesses are enough is not decided here: read
    ``result.checkpoint.cosignatures()``. ``proof`` may be the proof's bytes (as
    ``overt log proof`` writes them), which are parsed first (:func:`parse_proof`).

    Raises:
        FormatError: a malformed proof or checkpoint, or a leaf hash that is not 32 bytes.
        InvalidSignatureError, UnknownKeyError, OriginError: see
            :func:`overt.formats.checkpoint.open_checkpoint`.
        ProofError: the inclusion proof does not hold (including index >= tree size).
        PolicyError, StaleError: with ``policy``, the checkpoint lacks the witness
            quorum (or, with ``max_age`` and ``now``, a quorum that recent); see
            :func:`overt.formats.policy.verify_checkpoint`. ``log_verifier`` counts
            as a policy log key and must have signed. Also ``max_age`` without a
            policy (freshness needs witnesses): the decision is
            :func:`overt.formats.policy.open_trusted_checkpoint`.
    """
    if isinstance(proof, bytes | bytearray | memoryview):
        proof = parse_proof(bytes(proof))
    if len(leaf_hash) != 32:
        raise FormatError("leaf hash", "not 32 bytes", leaf_hash)
    signed = open_trusted_checkpoint(
        proof.checkpoint,
        log_verifier,
        policy,
        now=now,
        max_age=max_age,
        origin=origin,
        cosigners=extra_verifiers,
    )
    cp = signed.checkpoint
    verify_inclusion(leaf_hash, proof.index, cp.size, proof.hashes, cp.root_hash)
    return VerifiedProof(proof=proof, checkpoint=signed, leaf_hash=leaf_hash)
