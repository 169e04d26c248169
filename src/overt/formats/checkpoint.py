"""Transparency log checkpoints (c2sp.org/tlog-checkpoint@v1.0.0).

A checkpoint is a signed note (:mod:`overt.formats.note`) whose text is::

    checkpoint = origin LF size LF base64(root hash) LF *(extension LF)
    origin     = 1*char                  ; non-empty, the log's identity
    size       = "0" / %x31-39 *DIGIT    ; decimal, no leading zeros, < 2^63
    root hash  = 32 bytes                ; RFC 6962 Merkle tree hash at that size
    extension  = 1*char                  ; opaque, non-empty, NOT RECOMMENDED

Example (the spec's)::

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

    — example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=

The spec says the log's key name SHOULD equal the origin; overt makes it a MUST
on both sides (:func:`sign_checkpoint`, :func:`open_checkpoint`), so that a key
for one log can never vouch for another log's checkpoints. Other signatures on
the note (witness cosignatures) are ignored unless their keys are passed as
``cosigners``.

Versioning: the three mandatory lines are fixed by v1; new information goes in
extension lines (or, better, in a new spec), never in a changed line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overt.errors import ConfigError, FormatError, UnknownKeyError, VerificationError
from overt.formats.note import (
    MAX_NOTE_SIZE,
    Note,
    Signature,
    Signer,
    Verifier,
    _check_text,
    open_note,
    sign_note,
)
from overt.formats.strict import MAX_INT63, parse_decimal
from overt.formats.strict import b64decode_strict as _b64decode
from overt.formats.strict import b64encode as _b64encode

__all__ = [
    "MAX_TREE_SIZE",
    "Checkpoint",
    "OriginError",
    "SignedCheckpoint",
    "format_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

MAX_TREE_SIZE = MAX_INT63
"""Largest tree size accepted (Go's sumdb/tlog and Sunlight use int64 sizes)."""


class OriginError(VerificationError):
    """A checkpoint from another log than the one expected (or its key's name).

    Attributes:
        origin: the checkpoint's origin line.
        expected: the origin the caller (or the log key's name) required.
    """

    def __init__(self, origin: str, expected: str) -> None:
        self.origin = origin
        self.expected = expected
        super().__init__(f"checkpoint origin {origin!r} is not the expected {expected!r}")


@dataclass(frozen=True)
class Checkpoint:
    """The tree head a log commits to: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def parse_checkpoint(text: bytes) -> Checkpoint:
    """Parses a checkpoint note *text* (the body, without blank line and signatures).

    Raises:
        FormatError: not UTF-8, a control character, no final newline, fewer than three
            lines, an empty line, a non-canonical size, or a root hash that is not the
            canonical base64 of 32 bytes.
    """
    if len(text) > MAX_NOTE_SIZE:
        raise FormatError("checkpoint", f"larger than {MAX_NOTE_SIZE} bytes", text[:60])
    body = _check_text(text, "checkpoint")
    if not body.endswith("\n"):
        raise FormatError("checkpoint", "does not end in a newline", text)
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise FormatError("checkpoint", "fewer than three lines", text)
    if any(not line for line in lines):
        raise FormatError("checkpoint", "empty line", text)
    size = parse_decimal(lines[1], "checkpoint size", MAX_TREE_SIZE)
    root = _b64decode(lines[2], "checkpoint root hash")
    if len(root) != 32:
        raise FormatError("checkpoint root hash", "not 32 bytes", lines[2])
    return Checkpoint(origin=lines[0], size=size, root_hash=root, extensions=tuple(lines[3:]))


def format_checkpoint(cp: Checkpoint) -> bytes:
    """Encodes a checkpoint's note text; the exact inverse of :func:`parse_checkpoint`.

    Raises:
        FormatError: a field that :func:`parse_checkpoint` would not read back as-is.
    """
    if type(cp.size) is not int or not 0 <= cp.size <= MAX_TREE_SIZE:
        raise FormatError("checkpoint size", "not an int in [0, 2^63)", repr(cp.size))
    if len(cp.root_hash) != 32:
        raise FormatError("checkpoint root hash", "not 32 bytes", cp.root_hash)
    lines = [cp.origin, str(cp.size), _b64encode(cp.root_hash), *cp.extensions]
    try:
        out = "".join(line + "\n" for line in lines).encode("utf-8")
    except UnicodeEncodeError as err:
        raise FormatError("checkpoint", "not encodable as UTF-8", cp.origin) from err
    if parse_checkpoint(out) != cp:  # e.g. a newline hidden inside the origin
        raise FormatError("checkpoint", "a field contains a newline", out)
    return out


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose log signature verified.

    ``raw`` is the signed note exactly as received (keep it: it is the evidence).
    ``verified`` lists every verified signature, the log's first, then those of the
    ``cosigners`` passed to :func:`open_checkpoint` in note order.
    """

    checkpoint: Checkpoint
    note: Note
    raw: bytes
    verified: tuple[tuple[Verifier, Signature], ...] = ()

    def cosignatures(self) -> tuple[tuple[Verifier, Signature], ...]:
        """The verified signatures other than the log's (witness cosignatures)."""
        return self.verified[1:]


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> bytes:
    """Formats and signs a checkpoint as its log; returns the signed note.

    Raises:
        FormatError: a malformed checkpoint.
        ConfigError: the signer's key name is not the checkpoint's origin.
    """
    text = format_checkpoint(cp)
    if signer.name != cp.origin:
        raise ConfigError(f"log key name {signer.name!r} must equal the origin {cp.origin!r}")
    return sign_note(text, [signer])


def open_checkpoint(
    data: bytes,
    log_verifier: Verifier,
    origin: str | None = None,
    *,
    cosigners: Sequence[Verifier] = (),
) -> SignedCheckpoint:
    """Verifies a signed checkpoint from the log whose key is ``log_verifier``.

    The checkpoint's origin must equal the log key's name, and ``origin`` if given.
    Signatures by ``cosigners`` are verified too (a bad one refuses the note, as
    c2sp.org/signed-note recommends); how many are needed is the caller's policy.

    Raises:
        FormatError: a malformed note or checkpoint.
        InvalidSignatureError: a signature by the log or a cosigner does not verify.
        UnknownKeyError: the log did not sign.
        OriginError: the origin is not ``origin`` or the log key's name.
    """
    opened = open_note(data, [log_verifier, *cosigners])
    cp = parse_checkpoint(opened.note.text)
    if origin is not None and cp.origin != origin:
        raise OriginError(cp.origin, origin)
    if cp.origin != log_verifier.name:
        raise OriginError(cp.origin, log_verifier.name)
    log_key = (log_verifier.name, log_verifier.key_id)
    by_log = [vs for vs in opened.verified if (vs[1].name, vs[1].key_id) == log_key]
    if not by_log:
        raise UnknownKeyError(f"checkpoint not signed by the log key {log_verifier.name}")
    others = tuple(vs for vs in opened.verified if vs is not by_log[0])
    return SignedCheckpoint(
        checkpoint=cp, note=opened.note, raw=data, verified=(by_log[0], *others)
    )
