"""Timestamped checkpoint and subtree cosignatures (c2sp.org/tlog-cosignature).

A cosignature is a note signature (:mod:`overt.formats.note`) on a checkpoint
(:mod:`overt.formats.checkpoint`), of one of two types registered here with
:mod:`overt.formats.keytypes`::

    signature = u64 big-endian timestamp || algorithm signature
    key ID    = SHA-256(name || 0x0A || type || public key)[:4]

    0x04  Ed25519 cosignature/v1   32-byte keys,   8 + 64-byte signatures
    0x06  ML-DSA-44 subtree/v1     1312-byte keys, 8 + 2420-byte signatures

**0x04** signs a header line, a time line (POSIX seconds, canonical decimal) and the
whole checkpoint note text, extension lines included::

    cosignature/v1
    time 1679315147
    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

Example signature line (from the spec; key ID ``8d66cf3f``, time 1679315147)::

    — witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==

Its message does not commit to the cosigner's name: one Ed25519 key must serve one
cosigner only.

**0x06** (ML-DSA-44, FIPS 204 pure mode, empty context) signs a binary
``cosigned_message`` (RFC 8446 presentation language) that commits to the cosigner's
name and covers a subtree ``[start, end)`` of the log; a checkpoint is the subtree
``[0, size)``::

    struct {
        uint8  label[12] = "subtree/v1\\n\\0";
        opaque cosigner_name<1..2^8-1>;
        uint64 timestamp;              /* zero when start is not zero */
        opaque log_origin<1..2^8-1>;
        uint64 start;
        uint64 end;
        uint8  hash[32];
    } cosigned_message;

It does not cover checkpoint extension lines, so overt refuses to sign or accept an
ML-DSA-44 cosignature on a checkpoint that has any (they would be unsigned text
beside a valid signature). A witness's checkpoint cosignature has a non-zero
timestamp; a subtree cosignature (:func:`subtree_line`, tlog-witness ``sign-subtree``)
a zero one. The same type signs a log's own checkpoints (tlog-checkpoint: "Logs
SHOULD use ML-DSA-44 cosignatures to sign the checkpoint").

A cosignature says "as of this time, this is the largest consistent tree head I have
seen for this origin"; how fresh it must be is the caller's policy
(:func:`cosignature_timestamp`).

Versioning: a message layout is named by its header or label (``cosignature/v1``,
``subtree/v1``) and its type byte; another layout gets another of both.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from overt.errors import FormatError
from overt.formats.checkpoint import MAX_TREE_SIZE, Checkpoint, parse_checkpoint
from overt.formats.keytypes import (
    ED25519,
    MAX_TIMESTAMP,
    ML_DSA_44,
    KeySigner,
    KeyType,
    KeyVerifier,
    OfKeyType,
    Purpose,
    key_types,
    register,
)
from overt.formats.note import Signature, Signer, _format_signature_line

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ML_DSA_44",
    "COSIGNATURE_V1",
    "MAX_TIMESTAMP",
    "ML_DSA_44_COSIGNATURE",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosign_line",
    "cosignature_timestamp",
    "cosigned_message",
    "subtree_line",
    "subtree_message",
]

ALG_COSIGNATURE_V1 = 0x04
"""Signature type byte of Ed25519 cosignature/v1."""

ALG_ML_DSA_44 = 0x06
"""Signature type byte of ML-DSA-44 (sub)tree cosignatures."""

_SUBTREE_LABEL = b"subtree/v1\n\0"
_HASH_SIZE = 32
_EMPTY_HASH = hashlib.sha256(b"").digest()


_PARSED_TEXT_LIMIT = 1024


@functools.lru_cache(maxsize=64)
def _parse_small_checkpoint(text: bytes) -> Checkpoint:
    return parse_checkpoint(text)


def _checkpoint(text: bytes) -> Checkpoint:
    """``parse_checkpoint(text)``, remembered for the last few small texts.

    One checkpoint text is parsed again for every signature over it: the log's, each
    cosignature a note carries, the witness's own. The result is a frozen value that
    depends on those exact bytes alone (a text that does not parse raises and is not
    remembered), so this memo caches no trust, only parsing work. Texts above 1 kB are
    parsed every time, so that the memo stays under 64 kB.
    """
    if type(text) is not bytes or len(text) > _PARSED_TEXT_LIMIT:
        return parse_checkpoint(text)
    return _parse_small_checkpoint(text)


def _check_timestamp(timestamp: int) -> None:
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise FormatError("cosignature timestamp", "not in [0, 2^63)", repr(timestamp))


def cosigned_message(timestamp: int, checkpoint_text: bytes) -> bytes:
    """The exact bytes an Ed25519 cosignature/v1 signs.

    Raises:
        FormatError: ``checkpoint_text`` is not a checkpoint, or the timestamp is out of range.
    """
    _check_timestamp(timestamp)
    _checkpoint(checkpoint_text)
    return b"cosignature/v1\ntime %d\n" % timestamp + checkpoint_text


def _opaque8(value: str, what: str) -> bytes:
    raw = value.encode("utf-8")
    if not 1 <= len(raw) <= 255:
        raise FormatError(what, "not 1 to 255 bytes of UTF-8", value)
    return bytes([len(raw)]) + raw


def subtree_message(
    cosigner_name: str, timestamp: int, origin: str, start: int, end: int, root_hash: bytes
) -> bytes:
    """The exact bytes an ML-DSA-44 cosignature (type 0x06) signs.

    A checkpoint is the subtree ``[0, size)`` with a timestamp; any other subtree has
    timestamp zero. Whether ``[start, end)`` is a valid subtree (aligned, per
    draft-ietf-plants-merkle-tree-certs) is the caller's to check.

    Raises:
        FormatError: a name or origin not 1-255 bytes, a timestamp out of range or not
            zero with ``start`` not zero, ``start > end`` (or ``start == end`` not zero),
            a size above 2^63 - 1, a hash that is not 32 bytes, or an empty tree whose
            hash is not SHA-256 of the empty string.
    """
    _check_timestamp(timestamp)
    if type(start) is not int or type(end) is not int or not 0 <= start <= end <= MAX_TREE_SIZE:
        raise FormatError("subtree", "not 0 <= start <= end < 2^63", f"{start!r} {end!r}")
    if start == end and start != 0:
        raise FormatError("subtree", "empty subtree not at 0", f"{start} {end}")
    if start != 0 and timestamp != 0:
        raise FormatError("subtree", "a subtree not at 0 has timestamp zero", f"{timestamp}")
    if len(root_hash) != _HASH_SIZE:
        raise FormatError("subtree hash", f"not {_HASH_SIZE} bytes", root_hash)
    if start == end and root_hash != _EMPTY_HASH:
        raise FormatError("subtree hash", "an empty tree's hash is SHA-256 of nothing", root_hash)
    return b"".join(
        (
            _SUBTREE_LABEL,
            _opaque8(cosigner_name, "cosigner name"),
            timestamp.to_bytes(8, "big"),
            _opaque8(origin, "log origin"),
            start.to_bytes(8, "big"),
            end.to_bytes(8, "big"),
            root_hash,
        )
    )


def _ml_dsa_checkpoint_message(name: str, timestamp: int, text: bytes) -> bytes:
    cp = _checkpoint(text)
    if cp.extensions:
        # The message does not cover them: they would ride unsigned beside a valid
        # signature. overt logs never write extension lines.
        raise FormatError("checkpoint", "extension lines are not signed by ML-DSA-44", text)
    return subtree_message(name, timestamp, cp.origin, 0, cp.size, cp.root_hash)


COSIGNATURE_V1 = register(
    KeyType(
        alg=ALG_COSIGNATURE_V1,
        name="cosignature/v1",
        algorithm=ED25519,
        purposes=frozenset({Purpose.COSIGNATURE}),
        message=lambda _name, timestamp, text: cosigned_message(timestamp, text),
        timestamped=True,
    )
)
"""Ed25519 checkpoint cosignatures (type 0x04)."""

ML_DSA_44_COSIGNATURE = register(
    KeyType(
        alg=ALG_ML_DSA_44,
        name="ml-dsa-44",
        algorithm=ML_DSA_44,
        purposes=frozenset({Purpose.CHECKPOINT, Purpose.COSIGNATURE, Purpose.SUBTREE}),
        message=_ml_dsa_checkpoint_message,
        timestamped=True,
        subtree_message=subtree_message,
        max_name_size=255,
    )
)
"""ML-DSA-44 checkpoint and subtree cosignatures (type 0x06); also a log's own signature."""


def cosignature_timestamp(signature: bytes) -> int:
    """The POSIX timestamp inside a cosignature (key ID already removed), either type.

    Only meaningful once the signature has been verified.

    Raises:
        FormatError: not the size of any timestamped signature type, or a timestamp
            above 2^63 - 1.
    """
    sizes = {kt.signature_size for kt in key_types() if kt.timestamped}
    if len(signature) not in sizes:
        raise FormatError("cosignature", "not the size of a timestamped signature", signature)
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise FormatError("cosignature", "timestamp above 2^63 - 1", signature)
    return timestamp


class CosignatureVerifier(KeyVerifier, metaclass=OfKeyType):
    """Verifies Ed25519 cosignature/v1 signatures (type 0x04) by ``(name, public_key)``.

    Raises:
        FormatError: on construction, if ``name`` is not a valid key name.
    """

    KEY_TYPE = COSIGNATURE_V1

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        super().__init__(COSIGNATURE_V1, name, public_key)


class CosignatureSigner(KeySigner, metaclass=OfKeyType):
    """Cosigns checkpoints with Ed25519 cosignature/v1 (type 0x04), timestamped by ``clock``."""

    KEY_TYPE = COSIGNATURE_V1

    def __init__(
        self,
        name: str,
        private_key: Ed25519PrivateKey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(COSIGNATURE_V1, name, private_key, clock)


def cosign_line(signer: Signer, checkpoint_text: bytes) -> bytes:
    """Signs ``checkpoint_text`` and returns the note signature line ``— name base64\\n``.

    This is what a witness returns (c2sp.org/tlog-witness) and what a log appends.

    Raises:
        FormatError: the text is not a checkpoint (for cosigners), or the signer's name
            is not a valid key name.
    """
    _checkpoint(checkpoint_text)
    signature = Signature(signer.name, signer.key_id, signer.sign(checkpoint_text))
    return _format_signature_line(signature)


def subtree_line(signer: KeySigner, origin: str, start: int, end: int, root_hash: bytes) -> bytes:
    """Signs the subtree ``[start, end)`` of ``origin``; returns its note signature line.

    This is what a witness's ``sign-subtree`` returns (c2sp.org/tlog-witness).

    Raises:
        ConfigError: the signer's type does not sign subtrees (only ML-DSA-44 does).
        FormatError: a subtree that the message cannot encode.
    """
    signature = signer.sign_subtree(origin, start, end, root_hash)
    return _format_signature_line(Signature(signer.name, signer.key_id, signature))
