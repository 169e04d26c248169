"""Timestamped Ed25519 checkpoint cosignatures (c2sp.org/tlog-cosignature, cosignature/v1).

A cosignature is a note signature (:mod:`overt.formats.note`) of type byte
``0x04`` on a checkpoint (:mod:`overt.formats.checkpoint`)::

    signature = u64 big-endian timestamp || Ed25519 signature (64 bytes)   ; 72 bytes
    key ID    = SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]

The Ed25519 signature is over this message: a header line, a time line (POSIX
seconds, canonical decimal) and the whole checkpoint note text, extension lines
included::

    cosignature/v1
    time 1679315147
    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

Example signature line (from the spec; key ID ``8d66cf3f``, time 1679315147)::

    — witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==

The message does not commit to the cosigner's name: one Ed25519 key must serve
one cosigner only. A cosignature says "as of this time, this is the largest
consistent tree head I have seen for this origin"; no statement is made about
extension lines. The timestamp is at most 2^63 - 1; how fresh it must be is
the caller's policy (:func:`cosignature_timestamp`).

Versioning: ``cosignature/v1`` is the header of this format; another message
layout gets another header and another type byte (0x06 is ML-DSA-44, not
implemented here).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.errors import ConfigError, FormatError, InvalidSignatureError
from overt.formats.checkpoint import parse_checkpoint
from overt.formats.note import (
    Signature,
    Signer,
    _Ed25519Key,
    _Ed25519SignerKey,
    _format_signature_line,
    register_key_type,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "MAX_TIMESTAMP",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosign_line",
    "cosignature_timestamp",
    "cosigned_message",
]

ALG_COSIGNATURE_V1 = 0x04
"""Signature type byte of Ed25519 cosignature/v1."""

MAX_TIMESTAMP = (1 << 63) - 1
"""Largest timestamp the spec allows."""

_SIGNATURE_SIZE = 8 + 64


def cosigned_message(timestamp: int, checkpoint_text: bytes) -> bytes:
    """The exact bytes an Ed25519 cosignature/v1 signs.

    Raises:
        FormatError: ``checkpoint_text`` is not a checkpoint, or the timestamp is out of range.
    """
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise FormatError("cosignature timestamp", "not in [0, 2^63)", repr(timestamp))
    parse_checkpoint(checkpoint_text)
    return b"cosignature/v1\ntime %d\n" % timestamp + checkpoint_text


def cosignature_timestamp(signature: bytes) -> int:
    """The POSIX timestamp inside a cosignature/v1 signature (key ID already removed).

    Only meaningful once the signature has been verified.

    Raises:
        FormatError: not 72 bytes, or a timestamp above 2^63 - 1.
    """
    if len(signature) != _SIGNATURE_SIZE:
        raise FormatError("cosignature", f"not {_SIGNATURE_SIZE} bytes", signature)
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise FormatError("cosignature", "timestamp above 2^63 - 1", signature)
    return timestamp


class CosignatureVerifier(_Ed25519Key):
    """Verifies cosignature/v1 signatures by ``(name, public_key)``.

    Raises:
        FormatError: on construction, if ``name`` is not a valid key name.
    """

    alg = ALG_COSIGNATURE_V1

    def verify(self, text: bytes, signature: bytes) -> None:
        """Raises InvalidSignatureError unless ``signature`` cosigns checkpoint ``text``."""
        try:
            message = cosigned_message(cosignature_timestamp(signature), text)
        except FormatError as err:
            # A malformed signature, or text that is no checkpoint: nothing this key
            # could have signed.
            raise InvalidSignatureError(self.name, self.key_id) from err
        self._verify_ed25519(message, signature[8:])


class CosignatureSigner(_Ed25519SignerKey):
    """Cosigns checkpoints with Ed25519 cosignature/v1, timestamped by ``clock``.

    ``clock`` returns POSIX seconds (``time.time`` by default); tests inject a fixed one.
    """

    alg = ALG_COSIGNATURE_V1

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, private_key)
        self.clock = clock

    def sign(self, text: bytes) -> bytes:
        """Returns ``timestamp || Ed25519 signature`` over the cosigned message for ``text``.

        Raises:
            FormatError: ``text`` is not a checkpoint note text.
            ConfigError: the clock returned a time outside [0, 2^63).
        """
        now = self.clock()
        if not math.isfinite(now) or not 0 <= now <= MAX_TIMESTAMP:
            raise ConfigError(f"clock returned {now!r}, not a POSIX time")
        timestamp = int(now)
        message = cosigned_message(timestamp, text)
        return timestamp.to_bytes(8, "big") + self._private.sign(message)

    def verifier(self) -> CosignatureVerifier:
        """The matching verifier."""
        return CosignatureVerifier(self.name, self.public_key)


def cosign_line(signer: Signer, checkpoint_text: bytes) -> bytes:
    """Signs ``checkpoint_text`` and returns the note signature line ``— name base64\\n``.

    This is what a witness returns (c2sp.org/tlog-witness) and what a log appends.

    Raises:
        FormatError: the text is not a checkpoint (for cosigners), or the signer's name
            is not a valid key name.
    """
    parse_checkpoint(checkpoint_text)
    signature = Signature(signer.name, signer.key_id, signer.sign(checkpoint_text))
    return _format_signature_line(signature)


register_key_type(ALG_COSIGNATURE_V1, CosignatureSigner, CosignatureVerifier)
