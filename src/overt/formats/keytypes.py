"""Signature key types: one registry from signed-note type byte to everything a key does.

A signed-note key (c2sp.org/signed-note@v1.0.0) is named by a type byte; the byte
fixes the signature algorithm, the key ID rule, the exact message signed and what
the key may sign. This module is the one place that knows them::

    type  name                  algorithm   key   sig        signs
    0x01  ed25519               Ed25519     32 B  64 B       note text (any)
    0x04  cosignature/v1        Ed25519     32 B  8+64 B     checkpoint cosignatures
    0x06  ml-dsa-44             ML-DSA-44   1312  8+2420 B   checkpoints (as log or
                                                             cosigner), subtree cosignatures

(Publisher keys, :mod:`overt.publish.keys`, reuse the 0x01 and 0x06 key texts and sign a
DSSE PAE with the bare algorithm: a different message, never a note or a cosignature.)

``0x01`` is defined here; ``0x04`` and ``0x06`` are defined (and registered) by
:mod:`overt.formats.cosignature`, because their messages are tlog-cosignature's and
need the checkpoint parser, which sits above this module. Importing
:mod:`overt.formats` registers every type.

Every type shares these rules, so a new type is one :class:`KeyType` value::

    key ID = SHA-256(name || 0x0A || type byte || public key)[:4]
    vkey   = name "+" hex(key ID) "+" base64(type || public key)
    skey   = "PRIVATE+KEY+" name "+" hex(key ID) "+" base64(type || 32-byte seed)
    sig    = [u64 big-endian timestamp ||] algorithm signature over message(name, timestamp, text)

The seed is the RFC 8032 private key for Ed25519 and the FIPS 204 ``xi`` seed for
ML-DSA-44 (what ``cryptography``'s ``private_bytes_raw`` returns for both).

The public API (stable: publisher keys, witnesses and mirrors build on it):

- :class:`Purpose` - what a key may sign; :meth:`KeyType.may_sign` and
  :func:`choose` (``--key-type ml-dsa-44`` + a purpose -> the type byte to use).
- :class:`Algorithm` (:data:`ED25519`, :data:`ML_DSA_44`) - raw key operations through
  ``cryptography``: sizes, ``generate``, ``private_from_seed``, ``public_from_bytes``.
- :class:`KeyType`, :func:`register`, :func:`key_type`, :func:`key_types`.
- :class:`KeyVerifier` and :class:`KeySigner` - one class each for every type; they
  satisfy ``overt.formats.note.Verifier`` / ``Signer`` (``name``, ``key_id``,
  ``verify(text, sig)`` / ``sign(text)``), carry ``key_type``, ``vkey`` (and ``skey``),
  and sign or verify subtrees when the type may (:meth:`KeySigner.sign_subtree`).
- :func:`parse_vkey`, :func:`parse_skey`, :func:`generate` - key text in and out.

Parsing is strict: exact key lengths per type, canonical base64, lowercase hex key
IDs that must match the key, names that are valid signed-note key names.

Versioning: a type byte's meaning never changes; a new format is a new type byte.
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from overt.errors import ConfigError, FormatError, InvalidSignatureError
from overt.formats.strict import b64decode_strict as _b64decode
from overt.formats.strict import b64encode as _b64encode

__all__ = [
    "ALG_ED25519",
    "DEFAULT_ALGORITHM",
    "ED25519",
    "ED25519_NOTE",
    "MAX_TIMESTAMP",
    "ML_DSA_44",
    "Algorithm",
    "KeySigner",
    "KeyType",
    "KeyVerifier",
    "OfKeyType",
    "Purpose",
    "RawPrivateKey",
    "RawPublicKey",
    "algorithms",
    "choose",
    "generate",
    "key_id",
    "key_type",
    "key_types",
    "parse_skey",
    "parse_vkey",
    "register",
    "valid_name",
]

ALG_ED25519 = 0x01
"""Signature type byte of plain Ed25519 note signatures."""

DEFAULT_ALGORITHM = "ed25519"
"""What ``overt log init`` and ``overt witness init`` choose without ``--key-type``
(docs/adr/0014-post-quantum-keys.md says why; ``ml-dsa-44`` is one flag away)."""

MAX_TIMESTAMP = (1 << 63) - 1
"""Largest timestamp a timestamped signature may carry (tlog-cosignature)."""

_MAX_KEY_SIZE = 1 << 13
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")
_ASCII_NAME = re.compile(r"[\x21-\x7e]+")


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


# --- algorithms -------------------------------------------------------------------------


class RawPublicKey(Protocol):
    """A ``cryptography`` public key: Ed25519PublicKey, MLDSA44PublicKey."""

    def public_bytes_raw(self) -> bytes: ...

    def verify(self, signature: bytes, data: bytes) -> None: ...


class RawPrivateKey(Protocol):
    """A ``cryptography`` private key: Ed25519PrivateKey, MLDSA44PrivateKey."""

    def private_bytes_raw(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes: ...

    def public_key(self) -> RawPublicKey: ...


@dataclass(frozen=True)
class Algorithm:
    """A signature algorithm as ``cryptography`` implements it, with its fixed sizes.

    ``name`` is what ``--key-type`` accepts (``ed25519``, ``ml-dsa-44``). ``slow_signing``
    marks an algorithm whose signatures cost over half a millisecond of CPU, during which
    ``cryptography`` 50 holds the GIL (measured: two threads signing ML-DSA-44 finish no
    sooner than one): a server signs those in worker processes, off its event loop and its
    state lock (overt.witness.signing), where a 30-microsecond Ed25519 signature would only
    pay for the hop.
    """

    name: str
    public_size: int
    seed_size: int
    signature_size: int
    generate: Callable[[], RawPrivateKey]
    _from_seed: Callable[[bytes], RawPrivateKey]
    _from_public: Callable[[bytes], RawPublicKey]
    slow_signing: bool = False

    def private_from_seed(self, seed: bytes) -> RawPrivateKey:
        """The private key of a seed.

        Raises:
            FormatError: the seed is not ``seed_size`` bytes.
        """
        if len(seed) != self.seed_size:
            raise FormatError(f"{self.name} seed", f"not {self.seed_size} bytes")
        try:
            return self._from_seed(seed)
        except ValueError as err:  # pragma: no cover - every 32-byte seed is valid
            raise FormatError(f"{self.name} seed", "rejected by the algorithm") from err

    def public_from_bytes(self, raw: bytes) -> RawPublicKey:
        """The public key of its raw encoding.

        Raises:
            FormatError: not ``public_size`` bytes, or not a valid key encoding.
        """
        if len(raw) != self.public_size:
            raise FormatError(f"{self.name} public key", f"not {self.public_size} bytes", raw)
        try:
            return self._from_public(raw)
        except ValueError as err:
            raise FormatError(f"{self.name} public key", "not a valid key", raw) from err

    def verify(self, public_key: RawPublicKey, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` (exactly ``signature_size`` bytes) is valid over ``message``."""
        if len(signature) != self.signature_size:
            return False
        try:
            public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


ED25519 = Algorithm(
    name="ed25519",
    public_size=32,
    seed_size=32,
    signature_size=64,
    generate=ed25519.Ed25519PrivateKey.generate,
    _from_seed=ed25519.Ed25519PrivateKey.from_private_bytes,
    _from_public=ed25519.Ed25519PublicKey.from_public_bytes,
)
"""Ed25519 (RFC 8032)."""

ML_DSA_44 = Algorithm(
    name="ml-dsa-44",
    public_size=1312,
    seed_size=32,
    signature_size=2420,
    generate=mldsa.MLDSA44PrivateKey.generate,
    _from_seed=mldsa.MLDSA44PrivateKey.from_seed_bytes,
    _from_public=mldsa.MLDSA44PublicKey.from_public_bytes,
    slow_signing=True,
)
"""ML-DSA-44 (FIPS 204), pure mode, empty context."""


def algorithms() -> tuple[Algorithm, ...]:
    """Every algorithm some registered key type uses, in registration order."""
    return tuple(dict.fromkeys(kt.algorithm for kt in _REGISTRY.values()))


# --- key types --------------------------------------------------------------------------


class Purpose(enum.Enum):
    """What a key of some type may sign."""

    NOTE = "note"
    """Any signed-note text (and raw bytes such as a DSSE PAE)."""
    CHECKPOINT = "checkpoint"
    """A checkpoint, as the log that made it."""
    COSIGNATURE = "cosignature"
    """A checkpoint cosignature, as a witness (tlog-cosignature, timestamp not zero)."""
    SUBTREE = "subtree"
    """A subtree cosignature (tlog-cosignature's subtree/v1 message, timestamp zero)."""


#: ``message(key name, timestamp, note text) -> bytes signed``; raises FormatError when
#: the text is nothing this type signs (e.g. not a checkpoint).
MessageRule = Callable[[str, int, bytes], bytes]

#: ``subtree(key name, timestamp, origin, start, end, root hash) -> bytes signed``; raises
#: FormatError for a subtree it cannot encode (and a timestamp with ``start`` not zero).
SubtreeRule = Callable[[str, int, str, int, int, bytes], bytes]


@dataclass(frozen=True)
class KeyType:
    """One signed-note signature type: its byte, algorithm, message and permitted uses.

    ``timestamped`` types prefix the signature with a u64 big-endian timestamp that the
    message commits to. ``max_name_size`` caps the key name in UTF-8 bytes when the
    message encodes it with a length byte.
    """

    alg: int
    name: str
    algorithm: Algorithm
    purposes: frozenset[Purpose]
    message: MessageRule
    timestamped: bool = False
    subtree_message: SubtreeRule | None = None
    max_name_size: int | None = None

    @property
    def signature_size(self) -> int:
        """Bytes of a signature of this type (timestamp included, key ID excluded)."""
        return self.algorithm.signature_size + (8 if self.timestamped else 0)

    def may_sign(self, purpose: Purpose) -> bool:
        """Whether keys of this type may sign for ``purpose``."""
        return purpose in self.purposes

    def check_name(self, name: str) -> None:
        """Raises FormatError unless ``name`` may name a key of this type."""
        if not valid_name(name):
            raise FormatError("key name", "empty, or contains '+', a space or a control", name)
        if self.max_name_size is not None and len(name.encode()) > self.max_name_size:
            raise FormatError("key name", f"longer than {self.max_name_size} bytes", name)


_REGISTRY: dict[int, KeyType] = {}


def register(kt: KeyType) -> KeyType:
    """Makes key text of type ``kt.alg`` parse, sign and verify; returns ``kt``.

    Raises:
        ConfigError: another key type already uses ``kt.alg``.
    """
    known = _REGISTRY.setdefault(kt.alg, kt)
    if known is not kt and known != kt:
        raise ConfigError(f"signature type 0x{kt.alg:02x} is already registered")
    return known


def key_type(alg: int) -> KeyType:
    """The registered key type of type byte ``alg``.

    Raises:
        FormatError: no key type has that byte.
    """
    kt = _REGISTRY.get(alg)
    if kt is None:
        raise FormatError("key", f"unsupported signature type 0x{alg:02x}")
    return kt


def key_types() -> tuple[KeyType, ...]:
    """Every registered key type, by type byte."""
    return tuple(_REGISTRY[alg] for alg in sorted(_REGISTRY))


def choose(algorithm: str, purpose: Purpose) -> KeyType:
    """The key type of ``algorithm`` (``--key-type``) for ``purpose``, lowest byte first.

    ``choose("ed25519", Purpose.CHECKPOINT)`` is 0x01, ``choose("ml-dsa-44",
    Purpose.CHECKPOINT)`` 0x06, ``choose("ed25519", Purpose.COSIGNATURE)`` 0x04.

    Raises:
        ConfigError: no registered type of that algorithm may sign for that purpose.
    """
    for kt in key_types():
        if kt.algorithm.name == algorithm and kt.may_sign(purpose):
            return kt
    names = sorted({kt.algorithm.name for kt in key_types() if kt.may_sign(purpose)})
    raise ConfigError(
        f"no {algorithm} key type may sign a {purpose.value}; choose one of {', '.join(names)}"
    )


def _plain_message(name: str, timestamp: int, text: bytes) -> bytes:
    return text


ED25519_NOTE = register(
    KeyType(
        alg=ALG_ED25519,
        name="ed25519",
        algorithm=ED25519,
        purposes=frozenset({Purpose.NOTE, Purpose.CHECKPOINT}),
        message=_plain_message,
    )
)
"""Plain Ed25519 note signatures over the note text (signed-note)."""


# --- keys -------------------------------------------------------------------------------


class KeyVerifier:
    """Verifies signatures of one key ``(name, key ID)`` of any registered type.

    Raises:
        FormatError: on construction, if ``name`` is not a valid name for the type.
    """

    def __init__(self, kt: KeyType, name: str, public_key: RawPublicKey) -> None:
        kt.check_name(name)
        self.key_type = kt
        self.name = name
        self.public_key = public_key
        self.public_bytes = public_key.public_bytes_raw()
        self.key_id = key_id(name, bytes([kt.alg]) + self.public_bytes)

    @property
    def alg(self) -> int:
        """The signature type byte."""
        return self.key_type.alg

    @property
    def vkey(self) -> str:
        """The verifier key text, ``name+hexkeyid+base64(type||pubkey)``."""
        encoded = _b64encode(bytes([self.key_type.alg]) + self.public_bytes)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def __eq__(self, other: object) -> bool:
        # One key is one (type, name, public key), whichever class holds it.
        if not isinstance(other, KeyVerifier):
            return NotImplemented
        return (other.key_type.alg, other.name, other.public_bytes) == (
            self.key_type.alg,
            self.name,
            self.public_bytes,
        )

    def __hash__(self) -> int:
        return hash((self.key_type.alg, self.name, self.public_bytes))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"

    def timestamp(self, signature: bytes) -> int:
        """The timestamp of a signature of this type (0 for untimestamped types).

        Only meaningful once the signature has been verified.

        Raises:
            FormatError: not this type's signature size, or a timestamp above 2^63 - 1.
        """
        return _timestamp(self.key_type, signature)

    def verify(self, text: bytes, signature: bytes) -> None:
        """Returns if ``signature`` is this key's over note ``text``.

        Raises:
            InvalidSignatureError: it is not (wrong size, text the type does not sign,
                or a bad signature).
        """
        kt = self.key_type
        try:
            timestamp = _timestamp(kt, signature)
            message = kt.message(self.name, timestamp, text)
        except FormatError as err:
            # A malformed signature, or text that this type never signs.
            raise InvalidSignatureError(self.name, self.key_id) from err
        self._verify(message, signature[8:] if kt.timestamped else signature)

    def verify_subtree(
        self, origin: str, start: int, end: int, root_hash: bytes, signature: bytes
    ) -> None:
        """Returns if ``signature`` is this key's cosignature of the subtree ``[start, end)``.

        A checkpoint cosignature (timestamp not zero) is one of ``[0, size)`` too, as
        in torchwood's ``VerifySubtree``; a subtree not at 0 has timestamp zero.

        Raises:
            InvalidSignatureError: it is not, or the key's type does not sign subtrees.
            FormatError: a subtree that no message can encode.
        """
        rule = self.key_type.subtree_message
        if rule is None:
            raise InvalidSignatureError(self.name, self.key_id)
        timestamp = _timestamp_or_fail(self, signature)
        try:
            message = rule(self.name, timestamp, origin, start, end, root_hash)
        except FormatError as err:
            if timestamp == 0:
                raise  # the subtree itself cannot be encoded
            raise InvalidSignatureError(self.name, self.key_id) from err
        self._verify(message, signature[8:])

    def _verify(self, message: bytes, raw_signature: bytes) -> None:
        if not self.key_type.algorithm.verify(self.public_key, raw_signature, message):
            raise InvalidSignatureError(self.name, self.key_id)


def _timestamp(kt: KeyType, signature: bytes) -> int:
    if len(signature) != kt.signature_size:
        raise FormatError(f"{kt.name} signature", f"not {kt.signature_size} bytes", signature)
    if not kt.timestamped:
        return 0
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise FormatError(f"{kt.name} signature", "timestamp above 2^63 - 1", signature)
    return timestamp


def _timestamp_or_fail(key: KeyVerifier, signature: bytes) -> int:
    try:
        return _timestamp(key.key_type, signature)
    except FormatError as err:
        raise InvalidSignatureError(key.name, key.key_id) from err


class KeySigner(KeyVerifier):
    """Signs as one key of any registered type; timestamps come from ``clock``.

    ``clock`` returns POSIX seconds (``time.time`` by default); tests inject a fixed one.

    Raises:
        FormatError: on construction, if ``name`` is not a valid name for the type.
    """

    def __init__(
        self,
        kt: KeyType,
        name: str,
        private_key: RawPrivateKey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(kt, name, private_key.public_key())
        self._private = private_key
        self.clock = clock

    @property
    def skey(self) -> str:
        """The signer key text, ``PRIVATE+KEY+name+hexkeyid+base64(type||seed)``. Secret."""
        encoded = _b64encode(bytes([self.key_type.alg]) + self.seed)
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{encoded}"

    def verifier(self) -> KeyVerifier:
        """The matching verifier (public key only)."""
        return KeyVerifier(self.key_type, self.name, self.public_key)

    def sign(self, text: bytes) -> bytes:
        """Returns the signature (without key ID) over note ``text``.

        Raises:
            FormatError: ``text`` is nothing this type signs (e.g. not a checkpoint).
            ConfigError: the clock returned a time outside [0, 2^63).
        """
        prefix, message = self.to_sign(text)
        return prefix + self._private.sign(message)

    def to_sign(self, text: bytes) -> tuple[bytes, bytes]:
        """What :meth:`sign` does before the algorithm: ``(prefix, message)``.

        The signature over ``text`` is ``prefix`` (the 8-byte timestamp of a timestamped
        type, read from the clock now; else empty) followed by the algorithm's signature
        of ``message`` with this key. For a server that makes that slow signature
        elsewhere (overt.witness.signing: ML-DSA-44 holds the GIL while it signs).

        Raises:
            FormatError: ``text`` is nothing this type signs (e.g. not a checkpoint).
            ConfigError: the clock returned a time outside [0, 2^63).
        """
        kt = self.key_type
        if not kt.timestamped:
            return b"", kt.message(self.name, 0, text)
        now = self.clock()
        if not math.isfinite(now) or not 0 <= now <= MAX_TIMESTAMP:
            raise ConfigError(f"clock returned {now!r}, not a POSIX time")
        timestamp = int(now)
        return timestamp.to_bytes(8, "big"), kt.message(self.name, timestamp, text)

    @property
    def seed(self) -> bytes:
        """The private key's seed (what :attr:`skey` encodes). Secret."""
        return self._private.private_bytes_raw()

    def sign_subtree(self, origin: str, start: int, end: int, root_hash: bytes) -> bytes:
        """Returns the subtree cosignature (timestamp zero) of ``[start, end)``.

        Raises:
            ConfigError: this key's type does not sign subtrees.
            FormatError: a subtree that the message cannot encode.
        """
        rule = self.key_type.subtree_message
        if rule is None:
            raise ConfigError(f"{self.key_type.name} keys do not sign subtrees ({self.name})")
        return bytes(8) + self._private.sign(rule(self.name, 0, origin, start, end, root_hash))


class OfKeyType(type):
    """Metaclass of the per-type convenience classes (``Ed25519Signer``, ``CosignatureVerifier``).

    Such a class sets ``KEY_TYPE`` and only fixes the constructor's type argument.
    ``isinstance`` asks the key's type, so a key parsed from text (always a plain
    :class:`KeySigner` or :class:`KeyVerifier`) is an instance of its type's classes.
    New code should ask :meth:`KeyType.may_sign` instead.
    """

    def __instancecheck__(cls, obj: object) -> bool:
        base = KeySigner if issubclass(cls, KeySigner) else KeyVerifier
        key_type = getattr(cls, "KEY_TYPE", None)
        return isinstance(obj, base) and obj.key_type is key_type


# --- key text ---------------------------------------------------------------------------


def _split_key(text: str, parts: int, what: str) -> list[str]:
    if not isinstance(text, str) or len(text) > _MAX_KEY_SIZE:
        raise FormatError(what, "not a string of reasonable size")
    # maxsplit: the base64 part may itself contain '+'; names never do.
    fields = text.split("+", parts - 1)
    if len(fields) != parts:
        raise FormatError(what, f"expected {parts} '+'-separated fields", text)
    return fields


def _parse_key_fields(
    name: str, hex_id: str, b64: str, what: str, size: Callable[[KeyType], int]
) -> tuple[bytes, KeyType, bytes]:
    if not valid_name(name):
        raise FormatError(what, "invalid key name", name)
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise FormatError(what, "key ID is not 8 lowercase hex digits", hex_id)
    raw = _b64decode(b64, what)
    if not raw:
        raise FormatError(what, "no type byte", b64)
    kt = key_type(raw[0])
    if len(raw) != 1 + size(kt):
        raise FormatError(what, f"a {kt.name} key is a type byte and {size(kt)} bytes", b64)
    kt.check_name(name)
    return bytes.fromhex(hex_id), kt, raw[1:]


def parse_vkey(vkey: str) -> KeyVerifier:
    """Parses a verifier key of any registered type.

    Raises:
        FormatError: malformed, unsupported type, wrong length, or a key ID that does
            not match the name and key.
    """
    name, hex_id, b64 = _split_key(vkey, 3, "vkey")
    kid, kt, public = _parse_key_fields(
        name, hex_id, b64, "vkey", lambda kt: kt.algorithm.public_size
    )
    verifier = KeyVerifier(kt, name, kt.algorithm.public_from_bytes(public))
    if verifier.key_id != kid:
        raise FormatError("vkey", "key ID does not match the name and key", vkey)
    return verifier


def parse_skey(skey: str, clock: Callable[[], float] = time.time) -> KeySigner:
    """Parses a signer key of any registered type.

    Raises:
        FormatError: malformed, unsupported type, wrong length, or a key ID that does
            not match the public key derived from the seed.
    """
    private, key, name, hex_id, b64 = _split_key(skey, 5, "skey")
    if private != "PRIVATE" or key != "KEY":
        raise FormatError("skey", "does not start with PRIVATE+KEY+")
    kid, kt, seed = _parse_key_fields(name, hex_id, b64, "skey", lambda kt: kt.algorithm.seed_size)
    signer = KeySigner(kt, name, kt.algorithm.private_from_seed(seed), clock)
    if signer.key_id != kid:
        raise FormatError("skey", "key ID does not match the name and key")
    return signer


def generate(kt: KeyType, name: str, clock: Callable[[], float] = time.time) -> KeySigner:
    """A fresh key of type ``kt`` named ``name`` (``.skey``, ``.vkey`` give its text).

    Raises:
        FormatError: ``name`` is not a valid name for the type.
    """
    return KeySigner(kt, name, kt.algorithm.generate(), clock)
