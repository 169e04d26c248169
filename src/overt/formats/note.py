"""Signed notes: text signed by one or more keys (c2sp.org/signed-note@v1.0.0).

Grammar (all UTF-8, no ASCII control character other than newline)::

    note      = text LF 1*sigline
    text      = *line                 ; non-empty, ends in LF; may contain blank lines
    sigline   = U+2014 SP name SP base64(key-id(4) || signature) LF
    name      = 1*(any char except '+', Unicode space, control)

The text is separated from the signatures by the *last* blank line. Example
(the spec's own, verified by ``example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k``)::

    This is an example message.

    — example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=

Keys are named by ``(name, key ID)``. The key ID is the first four bytes of
``SHA-256(name || 0x0A || type byte || public key)``; the type byte is
:data:`ALG_ED25519` (``0x01``) for plain Ed25519, ``0x04`` and ``0x06`` for
c2sp.org/tlog-cosignature's Ed25519 and ML-DSA-44 cosignatures (see
:mod:`overt.formats.cosignature`). Keys travel as text::

    vkey = name "+" hex(key ID) "+" base64(type || public key)
    skey = "PRIVATE+KEY+" name "+" hex(key ID) "+" base64(type || private seed)

Every key type (algorithm, key ID rule, message, what it may sign) is an entry of
:mod:`overt.formats.keytypes`; :func:`parse_vkey`, :func:`parse_skey` and
:func:`generate_key` are re-exported from there and dispatch on the type byte.

:func:`open_note` follows Go's ``golang.org/x/mod/sumdb/note.Open``: signatures
by unknown keys (an unknown name, or a known name with another key ID) are
ignored; a known key's signature must verify, or the whole note is refused; at
least one known key must have signed.

Parsing is strict and canonical: base64 must be the one canonical encoding of
its bytes (no stray padding bits), key IDs are lowercase hex, notes are at most
:data:`MAX_NOTE_SIZE` bytes with at most :data:`MAX_SIGNATURES` signatures.

Versioning: this module implements signed-note v1.0.0; a new signature type is
a new type byte, never a change to an existing one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from overt.errors import ConfigError, FormatError, UnknownKeyError
from overt.formats.keytypes import (
    ALG_ED25519,
    ED25519_NOTE,
    KeySigner,
    KeyVerifier,
    OfKeyType,
    generate,
    key_id,
    key_type,
    parse_skey,
    parse_vkey,
    valid_name,
)
from overt.formats.strict import b64decode_strict as _b64decode
from overt.formats.strict import b64encode as _b64encode

__all__ = [
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Ed25519Signer",
    "Ed25519Verifier",
    "Note",
    "Signature",
    "Signer",
    "VerifiedNote",
    "Verifier",
    "format_note",
    "generate_key",
    "key_id",
    "open_note",
    "parse_note",
    "parse_skey",
    "parse_vkey",
    "sign_note",
    "valid_name",
]

MAX_NOTE_SIZE = 1 << 20
"""Largest signed note accepted, in bytes (room for 16+ post-quantum signatures)."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (the spec requires at least 16; Go uses 100)."""

_SIG_PREFIX = "\u2014 ".encode()
_CONTROLS = bytes(range(0x0A)) + bytes(range(0x0B, 0x20))


def _check_text(data: bytes, what: str) -> str:
    """Checks the signed-note character rules: UTF-8, no control but newline."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(what, "not valid UTF-8", data) from err
    # translate() deletes the controls in one C pass: ~20x a regex search on a 3 kB note.
    if len(data.translate(None, _CONTROLS)) != len(data):
        raise FormatError(what, "contains an ASCII control character", data)
    return text


# --- notes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, 4-byte key ID, and the signature proper."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class Note:
    """A parsed, *unverified* note. Its text must be ignored until :func:`open_note`."""

    text: bytes
    signatures: tuple[Signature, ...]


def parse_note(data: bytes) -> Note:
    """Parses a signed note without verifying anything.

    Raises:
        FormatError: oversized, not UTF-8, a control character, no blank line before the
            signatures, a malformed signature line, or too many signatures.
    """
    if len(data) > MAX_NOTE_SIZE:
        raise FormatError("note", f"larger than {MAX_NOTE_SIZE} bytes", data[:60])
    split, lines = _last_lines(data)
    if split < 0:
        split = data.rfind(b"\n\n")
        if split < 0:
            _check_text(data, "note")  # the more telling error first
            raise FormatError("note", "no blank line before the signatures", data)
        sigs = data[split + 2 :]
        if not sigs or not sigs.endswith(b"\n"):
            _check_text(data[: split + 1], "note")
            raise FormatError("note", "no signature lines, or no final newline", data)
        lines = sigs[:-1].split(b"\n")
    text = data[: split + 1]
    # The text is checked here; each signature line is checked whole by its parser (a fixed
    # prefix, a valid UTF-8 name without controls, strict base64), so the whole note obeys
    # the character rules without decoding kilobytes of post-quantum signatures twice.
    _check_text(text, "note")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError("note", f"more than {MAX_SIGNATURES} signatures", data[:60])
    return Note(text, tuple(map(_parse_signature_line, lines)))


_FEW_LINES = 4


def _last_lines(data: bytes) -> tuple[int, list[bytes]]:
    """``(split, lines)``: the last blank line (``data[split:split + 2] == b"\\n\\n"``) and
    the lines after it, when ``data`` ends in a newline and at most a few lines follow it;
    else ``(-1, [])`` and the caller searches the whole note.

    Found line by line from the end: a newline is one ``memrchr`` away, where
    ``rfind(b"\\n\\n")`` and ``split`` step through kilobytes of post-quantum signature a
    byte at a time. Many short Ed25519 lines are the caller's (a loop here would cost more).
    """
    end = len(data) - 1
    if end < 1 or data[end] != 0x0A:
        return -1, []
    lines: list[bytes] = []
    while len(lines) <= _FEW_LINES:
        start = data.rfind(b"\n", 0, end) + 1
        if start == end:  # an empty line: the last blank line
            if not lines:
                return -1, []  # no signature line: the caller says so
            lines.reverse()
            return start - 1, lines
        if start == 0:
            return -1, []
        lines.append(data[start:end])
        end = start - 1
    return -1, []


# An em dash, a space, an ASCII key name (no '+', space or control: valid_name), a space.
_ASCII_HEAD = re.compile(rb"\xe2\x80\x94 ([\x21-\x2a\x2c-\x7e]+) ")


def _parse_signature_line(line: bytes) -> Signature:
    head = _ASCII_HEAD.match(line)
    if head is not None:  # the common case, an ASCII key name: one regex for prefix and name
        name, b64 = head[1].decode("ascii"), line[head.end() :]
    else:
        name, b64 = _unicode_head(line)
    raw = _b64decode(b64, "note signature")
    if len(raw) < 5:
        raise FormatError("note signature", "shorter than a key ID and one byte", line)
    return Signature(name, raw[:4], raw[4:])


def _unicode_head(line: bytes) -> tuple[str, bytes]:
    """``(name, base64)`` of a signature line whose key name is not ASCII (or is malformed)."""
    if not line.startswith(_SIG_PREFIX):
        raise FormatError("note signature", "line does not start with an em dash and space", line)
    # Split the bytes, decode only the name: a post-quantum signature is 3 kB of base64.
    name_bytes, sep, b64 = line[len(_SIG_PREFIX) :].partition(b" ")
    try:
        name = name_bytes.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError("note signature", "invalid key name", line) from err
    if not sep or not valid_name(name):
        raise FormatError("note signature", "invalid key name", line)
    return name, b64


def _format_signature_line(sig: Signature) -> bytes:
    if not valid_name(sig.name):
        raise FormatError("note signature", "invalid key name", sig.name)
    if len(sig.key_id) != 4 or not sig.signature:
        raise FormatError("note signature", "key ID must be 4 bytes and signature non-empty")
    b64 = _b64encode(sig.key_id + sig.signature)
    return _SIG_PREFIX + f"{sig.name} {b64}\n".encode()


def format_note(note: Note) -> bytes:
    """Encodes a note; the exact inverse of :func:`parse_note`.

    Raises:
        FormatError: the text does not end in a newline or breaks the character rules,
            there are no signatures, or a signature is malformed.
    """
    _check_text(note.text, "note text")
    if not note.text.endswith(b"\n"):
        raise FormatError("note text", "does not end in a newline", note.text)
    if not note.signatures:
        raise FormatError("note", "no signatures")
    out = note.text + b"\n" + b"".join(_format_signature_line(s) for s in note.signatures)
    if parse_note(out) != note:  # unreachable by construction; guards canonicity
        raise FormatError("note", "does not round-trip", out)
    return out


# --- keys -------------------------------------------------------------------------------


class Signer(Protocol):
    """Something that signs note text as the key ``(name, key_id)``."""

    name: str
    key_id: bytes

    def sign(self, text: bytes) -> bytes:
        """Returns the signature (without key ID) over ``text``."""
        ...


class Verifier(Protocol):
    """Something that checks signatures by the key ``(name, key_id)``."""

    name: str
    key_id: bytes

    def verify(self, text: bytes, signature: bytes) -> None:
        """Returns if ``signature`` is valid over ``text``.

        Raises:
            InvalidSignatureError: it is not.
        """
        ...


class Ed25519Verifier(KeyVerifier, metaclass=OfKeyType):
    """Verifies plain Ed25519 note signatures (type 0x01) by ``(name, public_key)``.

    Raises:
        FormatError: on construction, if ``name`` is not a valid key name.
    """

    KEY_TYPE = ED25519_NOTE

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        super().__init__(ED25519_NOTE, name, public_key)


class Ed25519Signer(KeySigner, metaclass=OfKeyType):
    """Signs note text with plain Ed25519 (type 0x01)."""

    KEY_TYPE = ED25519_NOTE

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        super().__init__(ED25519_NOTE, name, private_key)


def generate_key(name: str, alg: int = ALG_ED25519) -> tuple[str, str]:
    """Generates a fresh key of signature type ``alg``; returns ``(skey, vkey)``.

    ``alg`` is any registered type byte (:mod:`overt.formats.keytypes`): 0x01 Ed25519,
    0x04 Ed25519 cosignature/v1, 0x06 ML-DSA-44 cosignature.

    Raises:
        FormatError: invalid name or unsupported type byte.
    """
    signer = generate(key_type(alg), name)
    return signer.skey, signer.vkey


# --- signing and opening ----------------------------------------------------------------


def sign_note(text: bytes, signers: Sequence[Signer], existing: Note | None = None) -> bytes:
    """Signs ``text`` with every signer; returns the formatted note.

    Signatures of ``existing`` (which must have the same text) are kept, in order,
    before the new ones, except those by a key that signs again now (as Go's
    ``note.Sign`` does).

    Raises:
        FormatError: invalid text, no signer at all, two signers with one name and
            key ID, or ``existing`` with a different text.
    """
    _check_text(text, "note text")
    if existing is not None and existing.text != text:
        raise FormatError("note", "existing note has a different text", existing.text)
    new: list[Signature] = []
    for signer in signers:
        if any((s.name, s.key_id) == (signer.name, signer.key_id) for s in new):
            raise FormatError("note", "two signers with the same name and key ID", signer.name)
        new.append(Signature(signer.name, signer.key_id, signer.sign(text)))
    if not new:
        raise FormatError("note", "no signers")
    fresh = {(s.name, s.key_id) for s in new}
    kept = (
        []
        if existing is None
        else [s for s in existing.signatures if (s.name, s.key_id) not in fresh]
    )
    return format_note(Note(text=text, signatures=(*kept, *new)))


@dataclass(frozen=True)
class VerifiedNote:
    """A note whose ``verified`` signatures (in note order) checked out against their keys."""

    note: Note
    verified: tuple[tuple[Verifier, Signature], ...]


def open_note(data: bytes, verifiers: Sequence[Verifier]) -> VerifiedNote:
    """Parses ``data`` and verifies every signature by a key in ``verifiers``.

    Signatures whose ``(name, key ID)`` matches no verifier are ignored.

    Raises:
        FormatError: a malformed note, or two signatures by one known key.
        InvalidSignatureError: a known key's signature does not verify.
        UnknownKeyError: no known key signed (including when ``verifiers`` is empty).
        ConfigError: two different verifiers share a name and key ID.
    """
    note = parse_note(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    if len(known) < len(verifiers):  # a key given twice: fine if it is one key
        for v in verifiers:
            other = known[(v.name, v.key_id)]
            if other is not v and other != v:
                raise ConfigError(f"two verifiers for key {v.name} with key ID {v.key_id.hex()}")
    verified: list[tuple[Verifier, Signature]] = []
    seen: set[tuple[str, bytes]] = set()
    text = note.text
    for sig in note.signatures:
        key = (sig.name, sig.key_id)
        verifier = known.get(key)
        if verifier is None:
            continue
        if key in seen:
            raise FormatError("note", "two signatures by one known key", sig.name)
        seen.add(key)
        verifier.verify(text, sig.signature)
        verified.append((verifier, sig))
    if not verified:
        names = ", ".join(sorted({v.name for v in verifiers})) or "none configured"
        raise UnknownKeyError(f"note has no signature by a trusted key ({names})")
    return VerifiedNote(note, tuple(verified))
