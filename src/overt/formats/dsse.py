"""DSSE v1: the Dead Simple Signing Envelope that wraps every overt publication.

Spec: https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md and
``envelope.md``. A signature covers the *pre-authentication encoding* (PAE) of
the payload type and the payload bytes, never the JSON around them::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
    SP   = one 0x20 byte
    LEN  = the byte length in ASCII decimal, no leading zeros

The envelope is a JSON object (envelope.md)::

    {"payload": base64(body), "payloadType": type,
     "signatures": [{"keyid": KEYID, "sig": base64(Sign(PAE(type, body)))}]}

Example (the spec's own PAE vector)::

    >>> pae("http://example.com/HelloWorld", b"hello world")
    b'DSSEv1 29 http://example.com/HelloWorld 11 hello world'

Parsing is strict: a JSON object with exactly those members (``keyid`` may be
absent, as the spec allows), no duplicate member names, canonical standard
padded base64 only (the URL-safe alphabet the spec also tolerates, and stray
padding bits, are refused so that one envelope has one spelling), at least one signature, and a
size cap. :func:`format_envelope` writes the canonical form overt logs: sorted
members, no insignificant whitespace, no trailing newline. The log entry of a
publication is exactly those bytes.

Versioning: the ``DSSEv1`` PAE prefix is the version; a future DSSE version
would be a new module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature

from overt.errors import FormatError, InvalidSignatureError, PolicyError, UnknownKeyError
from overt.formats.keytypes import RawPublicKey
from overt.formats.strict import (
    b64encode,
    dump_json_canonical,
    json_b64,
    json_list,
    json_members,
    load_json,
)

__all__ = [
    "MAX_ENVELOPE_SIZE",
    "PAYLOAD_TYPE_IN_TOTO",
    "Envelope",
    "RawSigner",
    "Signature",
    "VerifiedEnvelope",
    "dump_json_canonical",
    "envelope_from_json",
    "envelope_to_json",
    "format_envelope",
    "load_json_strict",
    "pae",
    "parse_envelope",
    "sign_envelope",
    "verify_envelope",
]

#: The payload type of an in-toto Statement (in-toto attestation spec, envelope.md).
PAYLOAD_TYPE_IN_TOTO = "application/vnd.in-toto+json"

#: Envelopes larger than this are refused before JSON decoding (DoS guard).
MAX_ENVELOPE_SIZE = 4 << 20

_MAX_SIGNATURES = 16
_ENVELOPE_KEYS = frozenset({"payload", "payloadType", "signatures"})


class RawSigner(Protocol):
    """Anything that signs bytes: ``Ed25519PrivateKey``, ``overt.formats.note.Ed25519Signer``."""

    def sign(self, data: bytes, /) -> bytes: ...


@dataclass(frozen=True)
class Signature:
    """One DSSE signature: an unauthenticated key hint and the signature bytes."""

    keyid: str | None
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope. ``payload`` is the raw (decoded) body that was signed."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...]


@dataclass(frozen=True)
class VerifiedEnvelope:
    """An envelope with the key IDs whose signatures verified, in envelope order."""

    envelope: Envelope
    keyids: tuple[str, ...]

    @property
    def payload(self) -> bytes:
        return self.envelope.payload

    @property
    def payload_type(self) -> str:
        return self.envelope.payload_type


def pae(payload_type: str, payload: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding of ``payload_type`` and ``payload``."""
    ptype = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)


def _short_id(keyid: str) -> bytes:
    """The first four bytes of a hex key ID (overt's), else of its UTF-8 text."""
    try:
        return bytes.fromhex(keyid[:8])
    except ValueError:
        return keyid.encode("utf-8")[:4]


#: The name this module exported before :mod:`overt.formats.strict` existed.
load_json_strict = load_json


def envelope_from_json(obj: object) -> Envelope:
    """Build an :class:`Envelope` from an already decoded JSON value (strictly)."""
    what = "DSSE envelope"
    obj = json_members(obj, what, _ENVELOPE_KEYS)
    payload = json_b64(obj["payload"], what, "payload")
    payload_type = obj["payloadType"]
    if not isinstance(payload_type, str) or not payload_type:
        raise FormatError(what, "payloadType is not a non-empty string")
    sigs = json_list(obj["signatures"], what, "signatures", nonempty=True)
    if len(sigs) > _MAX_SIGNATURES:
        raise FormatError(what, f"more than {_MAX_SIGNATURES} signatures")
    signatures = []
    for item in sigs:
        if not isinstance(item, dict) or not set(item) <= {"keyid", "sig"} or "sig" not in item:
            raise FormatError(what, "a signature is not {keyid?, sig}", repr(item)[:60])
        keyid = item.get("keyid")
        if keyid is not None and not isinstance(keyid, str):
            raise FormatError(what, "keyid is not a string", repr(keyid))
        sig = json_b64(item["sig"], what, "sig")
        if not sig:
            raise FormatError(what, "empty signature")
        signatures.append(Signature(keyid, sig))
    return Envelope(payload, payload_type, tuple(signatures))


def envelope_to_json(envelope: Envelope) -> dict[str, Any]:
    """The JSON object form of ``envelope`` (what :func:`format_envelope` serializes)."""
    sigs: list[dict[str, str]] = []
    for s in envelope.signatures:
        item = {"sig": b64encode(s.sig)}
        if s.keyid is not None:
            item["keyid"] = s.keyid
        sigs.append(item)
    return {
        "payload": b64encode(envelope.payload),
        "payloadType": envelope.payload_type,
        "signatures": sigs,
    }


def parse_envelope(data: bytes) -> Envelope:
    """Parse a DSSE envelope from its JSON bytes.

    Raises:
        FormatError: not UTF-8 JSON, duplicate or unknown members, bad base64,
            no signatures, or larger than :data:`MAX_ENVELOPE_SIZE`.
    """
    return envelope_from_json(load_json(data, "DSSE envelope", MAX_ENVELOPE_SIZE))


def format_envelope(envelope: Envelope) -> bytes:
    """Serialize ``envelope`` canonically (sorted members, compact, no newline)."""
    return dump_json_canonical(envelope_to_json(envelope))


def sign_envelope(
    payload_type: str,
    payload: bytes,
    keys: Sequence[tuple[str, RawSigner]],
) -> Envelope:
    """Sign ``payload`` with each ``(keyid, signer)`` pair over its PAE.

    A signer is an ``Ed25519PrivateKey`` or anything with the same ``sign``.

    Raises:
        PolicyError: no keys were given (an unsigned envelope is not an envelope).
    """
    if not keys:
        raise PolicyError("sign_envelope needs at least one key")
    message = pae(payload_type, payload)
    sigs = tuple(Signature(keyid, key.sign(message)) for keyid, key in keys)
    return Envelope(payload, payload_type, sigs)


def verify_envelope(
    envelope: Envelope,
    keys: Mapping[str, RawPublicKey],
    threshold: int = 1,
    payload_type: str | None = PAYLOAD_TYPE_IN_TOTO,
) -> VerifiedEnvelope:
    """Verify the envelope's signatures against trusted keys (Ed25519, ML-DSA-44) by key ID.

    Signatures whose ``keyid`` is not in ``keys`` (or absent) are ignored, as
    the spec's keyid is only a hint; a signature under a trusted key ID that
    fails to verify rejects the whole envelope (as signed-note does). At least
    ``threshold`` distinct trusted keys must have signed.

    Raises:
        PolicyError: ``keys`` is empty or ``threshold`` < 1 (never a pass).
        FormatError: ``payload_type`` is given and the envelope's differs.
        InvalidSignatureError: a trusted key's signature does not verify.
        UnknownKeyError: fewer than ``threshold`` trusted keys signed.
    """
    if not keys or threshold < 1:
        raise PolicyError("DSSE verification needs at least one trusted key and threshold >= 1")
    if payload_type is not None and envelope.payload_type != payload_type:
        raise FormatError(
            "DSSE envelope", f"payloadType is not {payload_type!r}", envelope.payload_type
        )
    message = pae(envelope.payload_type, envelope.payload)
    good: list[str] = []
    for s in envelope.signatures:
        if s.keyid is None or s.keyid not in keys:
            continue
        try:
            keys[s.keyid].verify(s.sig, message)
        except InvalidSignature as err:
            raise InvalidSignatureError(f"DSSE key {s.keyid[:16]}", _short_id(s.keyid)) from err
        if s.keyid not in good:
            good.append(s.keyid)
    if len(good) < threshold:
        raise UnknownKeyError(
            f"DSSE envelope signed by {len(good)} trusted key(s), {threshold} required"
        )
    return VerifiedEnvelope(envelope, tuple(good))
