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
:data:`ALG_ED25519` (``0x01``) for plain Ed25519 and ``0x04`` for
c2sp.org/tlog-cosignature (see :mod:`overt.formats.cosignature`). Keys travel as
text::

    vkey = name "+" hex(key ID) "+" base64(type || public key)
    skey = "PRIVATE+KEY+" name "+" hex(key ID) "+" base64(type || private seed)

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

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from overt.errors import ConfigError, FormatError, InvalidSignatureError, UnknownKeyError
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
    "register_key_type",
    "sign_note",
    "valid_name",
]

ALG_ED25519 = 0x01
"""Signature type byte of plain Ed25519 note signatures."""

MAX_NOTE_SIZE = 1 << 20
"""Largest signed note accepted, in bytes (room for 16+ post-quantum signatures)."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (the spec requires at least 16; Go uses 100)."""

_MAX_KEY_SIZE = 1 << 13
_SIG_PREFIX = "\u2014 ".encode()
_CONTROL = re.compile(rb"[\x00-\x09\x0b-\x1f]")
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")
_ASCII_NAME = re.compile(r"[\x21-\x7e]+")


def _check_text(data: bytes, what: str) -> str:
    """Checks the signed-note character rules: UTF-8, no control but newline."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(what, "not valid UTF-8", data) from err
    if _CONTROL.search(data):
        raise FormatError(what, "contains an ASCII control character", data)
    return text


def valid_name(name: str) -> bool:
    """Reports whether ``name`` may name a key: non-empty UTF-8, no '+', no space or control."""
    if not isinstance(name, str) or not name or "+" in name:
        return False
    if name.isascii():  # the common case, one regex instead of a loop
        return _ASCII_NAME.fullmatch(name) is not None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    # str.isspace covers Unicode White_Space (Go's unicode.IsSpace) plus \x1c-\x1f.
    return not any(ch.isspace() or ch < " " or ch == "\x7f" for ch in name)


def key_id(name: str, key_bytes_with_type: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || 0x0A || type byte || public key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + key_bytes_with_type).digest()[:4]


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
    _check_text(data, "note")
    split = data.rfind(b"\n\n")
    if split < 0:
        raise FormatError("note", "no blank line before the signatures", data)
    text, sigs = data[: split + 1], data[split + 2 :]
    if not sigs or not sigs.endswith(b"\n"):
        raise FormatError("note", "no signature lines, or no final newline", data)
    lines = sigs[:-1].split(b"\n")
    if len(lines) > MAX_SIGNATURES:
        raise FormatError("note", f"more than {MAX_SIGNATURES} signatures", data[:60])
    return Note(text=text, signatures=tuple(_parse_signature_line(line) for line in lines))


def _parse_signature_line(line: bytes) -> Signature:
    if not line.startswith(_SIG_PREFIX):
        raise FormatError("note signature", "line does not start with an em dash and space", line)
    name, sep, b64 = line[len(_SIG_PREFIX) :].decode("utf-8").partition(" ")
    if not sep or not valid_name(name):
        raise FormatError("note signature", "invalid key name", line)
    raw = _b64decode(b64, "note signature")
    if len(raw) < 5:
        raise FormatError("note signature", "shorter than a key ID and one byte", line)
    return Signature(name=name, key_id=raw[:4], signature=raw[4:])


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


def _check_name(name: str) -> None:
    if not valid_name(name):
        raise FormatError("key name", "empty, or contains '+', a space or a control", name)


class _Ed25519Key:
    """The common part of every Ed25519-based key: name, type byte, public key, key ID."""

    alg: ClassVar[int] = ALG_ED25519

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        _check_name(name)
        self.name = name
        self.public_key = public_key
        self._public = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id(name, bytes([self.alg]) + self._public)

    @property
    def vkey(self) -> str:
        """The verifier key text, ``name+hexkeyid+base64(type||pubkey)``."""
        return f"{self.name}+{self.key_id.hex()}+{_b64encode(bytes([self.alg]) + self._public)}"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.vkey == self.vkey

    def __hash__(self) -> int:
        return hash((type(self), self.vkey))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"

    def _verify_ed25519(self, message: bytes, signature: bytes) -> None:
        if len(signature) != 64:
            raise InvalidSignatureError(self.name, self.key_id)
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature as err:
            raise InvalidSignatureError(self.name, self.key_id) from err


class _Ed25519SignerKey(_Ed25519Key):
    """An Ed25519-based signing key; subclasses choose the type byte and the message."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        super().__init__(name, private_key.public_key())
        self._private = private_key

    @property
    def skey(self) -> str:
        """The signer key text, ``PRIVATE+KEY+name+hexkeyid+base64(type||seed)``. Secret."""
        seed = self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{_b64encode(bytes([self.alg]) + seed)}"

    def __repr__(self) -> str:  # never print the private key
        return f"{type(self).__name__}({self.vkey!r})"

    def sign(self, text: bytes) -> bytes:
        """Returns the signature over ``text``; each type byte defines what it signs."""
        raise NotImplementedError


class Ed25519Verifier(_Ed25519Key):
    """Verifies plain Ed25519 note signatures (type 0x01) by ``(name, public_key)``.

    Raises:
        FormatError: on construction, if ``name`` is not a valid key name.
    """

    alg = ALG_ED25519

    def verify(self, text: bytes, signature: bytes) -> None:
        """Raises InvalidSignatureError unless ``signature`` is this key's over ``text``."""
        self._verify_ed25519(text, signature)


class Ed25519Signer(_Ed25519SignerKey):
    """Signs note text with plain Ed25519 (type 0x01)."""

    alg = ALG_ED25519

    def sign(self, text: bytes) -> bytes:
        """Returns the 64-byte Ed25519 signature over ``text``."""
        return self._private.sign(text)

    def verifier(self) -> Ed25519Verifier:
        """The matching verifier."""
        return Ed25519Verifier(self.name, self.public_key)


def generate_key(name: str, alg: int = ALG_ED25519) -> tuple[str, str]:
    """Generates a fresh key; returns ``(skey, vkey)``.

    ``alg`` is :data:`ALG_ED25519` or ``overt.formats.cosignature.ALG_COSIGNATURE_V1``.

    Raises:
        FormatError: invalid name or unsupported type byte.
    """
    signer = _new_signer(alg, name, Ed25519PrivateKey.generate())
    return signer.skey, signer.vkey


#: Key types by type byte: how to build a signer and a verifier of that type. The
#: cosignature/v1 type registers itself from :mod:`overt.formats.cosignature` (imported
#: by the package), so this module does not import the formats built on it.
_KEY_TYPES: dict[
    int,
    tuple[
        Callable[[str, Ed25519PrivateKey], _Ed25519SignerKey],
        Callable[[str, Ed25519PublicKey], Verifier],
    ],
] = {}


def register_key_type(
    alg: int,
    signer: Callable[[str, Ed25519PrivateKey], _Ed25519SignerKey],
    verifier: Callable[[str, Ed25519PublicKey], Verifier],
) -> None:
    """Make :func:`parse_vkey`, :func:`parse_skey` and :func:`generate_key` know type ``alg``.

    Raises:
        ConfigError: another key type already uses ``alg``.
    """
    known = _KEY_TYPES.get(alg)
    if known is not None and known != (signer, verifier):
        raise ConfigError(f"signature type 0x{alg:02x} is already registered")
    _KEY_TYPES[alg] = (signer, verifier)


register_key_type(ALG_ED25519, Ed25519Signer, Ed25519Verifier)


def _new_signer(alg: int, name: str, private_key: Ed25519PrivateKey) -> _Ed25519SignerKey:
    if alg not in _KEY_TYPES:
        raise FormatError("key", f"unsupported signature type 0x{alg:02x}")
    return _KEY_TYPES[alg][0](name, private_key)


def _new_verifier(alg: int, name: str, public_key: Ed25519PublicKey) -> Verifier:
    if alg not in _KEY_TYPES:
        raise FormatError("vkey", f"unsupported signature type 0x{alg:02x}")
    return _KEY_TYPES[alg][1](name, public_key)


def _split_key(text: str, parts: int, what: str) -> list[str]:
    if not isinstance(text, str) or len(text) > _MAX_KEY_SIZE:
        raise FormatError(what, "not a string of reasonable size")
    # maxsplit: the base64 part may itself contain '+'; names never do.
    fields = text.split("+", parts - 1)
    if len(fields) != parts:
        raise FormatError(what, f"expected {parts} '+'-separated fields", text)
    return fields


def _parse_key_fields(name: str, hex_id: str, b64: str, what: str) -> tuple[bytes, int, bytes]:
    if not valid_name(name):
        raise FormatError(what, "invalid key name", name)
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise FormatError(what, "key ID is not 8 lowercase hex digits", hex_id)
    raw = _b64decode(b64, what)
    if len(raw) != 33:
        raise FormatError(what, "key is not a type byte and 32 bytes", b64)
    return bytes.fromhex(hex_id), raw[0], raw[1:]


def parse_vkey(vkey: str) -> Verifier:
    """Parses a verifier key, dispatching on its type byte (0x01 Ed25519, 0x04 cosignature/v1).

    Raises:
        FormatError: malformed, unsupported type, or a key ID that does not match the key.
    """
    name, hex_id, b64 = _split_key(vkey, 3, "vkey")
    kid, alg, public = _parse_key_fields(name, hex_id, b64, "vkey")
    try:
        public_key = Ed25519PublicKey.from_public_bytes(public)
    except ValueError as err:
        raise FormatError("vkey", "not an Ed25519 public key", vkey) from err
    verifier = _new_verifier(alg, name, public_key)
    if verifier.key_id != kid:
        raise FormatError("vkey", "key ID does not match the name and key", vkey)
    return verifier


def parse_skey(skey: str) -> Signer:
    """Parses a signer key, dispatching on its type byte like :func:`parse_vkey`.

    Raises:
        FormatError: malformed, unsupported type, or a key ID that does not match the
            public key derived from the seed.
    """
    private, key, name, hex_id, b64 = _split_key(skey, 5, "skey")
    if private != "PRIVATE" or key != "KEY":
        raise FormatError("skey", "does not start with PRIVATE+KEY+")
    kid, alg, seed = _parse_key_fields(name, hex_id, b64, "skey")
    signer = _new_signer(alg, name, Ed25519PrivateKey.from_private_bytes(seed))
    if signer.key_id != kid:
        raise FormatError("skey", "key ID does not match the name and key")
    return signer


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
    known: dict[tuple[str, bytes], Verifier] = {}
    for v in verifiers:
        other = known.setdefault((v.name, v.key_id), v)
        if other is not v and other != v:
            raise ConfigError(f"two verifiers for key {v.name} with key ID {v.key_id.hex()}")
    verified: list[tuple[Verifier, Signature]] = []
    seen: set[tuple[str, bytes]] = set()
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue
        if (sig.name, sig.key_id) in seen:
            raise FormatError("note", "two signatures by one known key", sig.name)
        seen.add((sig.name, sig.key_id))
        verifier.verify(note.text, sig.signature)
        verified.append((verifier, sig))
    if not verified:
        names = ", ".join(sorted({v.name for v in verifiers})) or "none configured"
        raise UnknownKeyError(f"note has no signature by a trusted key ({names})")
    return VerifiedNote(note=note, verified=tuple(verified))
