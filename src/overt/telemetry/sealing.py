"""Payload encryption to a region's collector: HPKE (RFC 9180) from ``cryptography``.

Every payload an endpoint sends is sealed with HPKE base mode, suite DHKEM(X25519,
HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305, to the X25519 public key of its region's
collector. HPKE rather than age: it is an IETF standard with test vectors, and pyca/
``cryptography`` (already overt's crypto library, audited and released in step with
OpenSSL) implements it, so no second crypto dependency is needed. The HPKE ``info`` binds
each ciphertext to ``overt-telemetry/v1 <region> <customer>``: a payload sealed for another
region, or passed off as another customer's, does not open.

A collector key is published as a two-line text::

    overt-telemetry-key/v1 <region> hpke DHKEM(X25519,HKDF-SHA256) HKDF-SHA256 ChaCha20Poly1305
    <base64 of the 32-byte X25519 public key>

and logged like any release (:func:`collector_key_publication`: product
:data:`KEY_PRODUCT`, channel = the region, version = the key's serial), so an endpoint
admits a region key only through the update gate (:func:`verify_collector_key`), and a
silent switch of a region's key is an entry every monitor sees.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from overt.errors import ConfigError, FormatError
from overt.formats.statement import Release
from overt.formats.strict import b64decode_strict, b64encode
from overt.telemetry.errors import SealError

__all__ = [
    "KEY_PRODUCT",
    "CollectorKey",
    "admit_collector_key",
    "collector_key_publication",
    "open_payload",
    "parse_collector_key",
    "seal_payload",
    "verify_collector_key",
]

KEY_PRODUCT = "overt-telemetry-collector-key"
_SUITE_NAME = "hpke DHKEM(X25519,HKDF-SHA256) HKDF-SHA256 ChaCha20Poly1305"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_REGION = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_KEY_TEXT = re.compile(
    r"overt-telemetry-key/v1 ([a-z][a-z0-9_.-]{0,63}) " + re.escape(_SUITE_NAME) + r"\n"
    r"([A-Za-z0-9+/]{43}=)\n"
)


def _info(region: str, customer: str) -> bytes:
    return f"overt-telemetry/v1 {region} {customer}".encode()


def seal_payload(key: X25519PublicKey, region: str, customer: str, payload: bytes) -> bytes:
    """``payload`` sealed to ``key``, bound to ``region`` and ``customer``."""
    return _SUITE.encrypt(payload, key, info=_info(region, customer))


def open_payload(key: X25519PrivateKey, region: str, customer: str, sealed: bytes) -> bytes:
    """The plaintext of a :func:`seal_payload` ciphertext.

    Raises:
        SealError: sealed to another key (another region's), for another customer, or altered.
    """
    try:
        return _SUITE.decrypt(sealed, key, info=_info(region, customer))
    except (InvalidTag, ValueError) as err:
        raise SealError(region, f"does not open for customer {customer!r}") from err


def parse_collector_key(text: bytes) -> tuple[str, X25519PublicKey]:
    """``(region, public key)`` of a published collector key (module docstring).

    Raises:
        FormatError: anything but the exact two lines.
    """
    m = _KEY_TEXT.fullmatch(text.decode("ascii", "replace"))
    if m is None:
        raise FormatError("collector key", "not an overt-telemetry-key/v1 text", text[:80])
    raw = b64decode_strict(m.group(2), "collector key", 32)
    return m.group(1), X25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True)
class CollectorKey:
    """A region collector's HPKE key pair."""

    region: str
    private: X25519PrivateKey

    @classmethod
    def generate(cls, region: str) -> CollectorKey:
        if not _REGION.fullmatch(region):
            raise ConfigError(f"region {region!r} is not lowercase letters, digits, _ . -")
        return cls(region, X25519PrivateKey.generate())

    @property
    def public(self) -> X25519PublicKey:
        return self.private.public_key()

    def published(self) -> bytes:
        """The public key text that is logged (module docstring)."""
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"overt-telemetry-key/v1 {self.region} {_SUITE_NAME}\n{b64encode(raw)}\n".encode()

    def save(self, path: Path | str) -> None:
        """Write ``REGION`` and the PKCS#8 PEM private key (0600); refuses to overwrite.

        Raises:
            ConfigError: the file exists or cannot be written.
        """
        pem = self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        body = f"{self.region}\n".encode() + pem
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as err:
            raise ConfigError(f"cannot create collector key {path}: {err.strerror}") from err
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def load(cls, path: Path | str) -> CollectorKey:
        """Raises: ConfigError: unreadable, or not a region line and an X25519 key."""
        try:
            data = Path(path).read_bytes()
            region, _, pem = data.partition(b"\n")
            key = serialization.load_pem_private_key(pem, None)
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read collector key {path}: {err}") from err
        if not isinstance(key, X25519PrivateKey) or not _REGION.fullmatch(region.decode()):
            raise ConfigError(f"{path} is not a collector key (region line, X25519 PEM)")
        return cls(region.decode(), key)


def collector_key_publication(key_text: bytes, serial: int) -> Any:
    """The :class:`overt.publish.Publication` that logs a region's key (serial >= 1)."""
    from overt.publish.publisher import Publication

    region, _ = parse_collector_key(key_text)
    predicate = Release(KEY_PRODUCT, str(serial), region, "x25519")
    name = f"collector-key-{region}-{serial}.txt"
    return Publication(name, hashlib.sha256(key_text).hexdigest(), predicate)


def verify_collector_key(
    key_text: bytes, bundle: bytes, client_policy: Any, state: Any, now: float
) -> tuple[X25519PublicKey, Any]:
    """The region key in ``key_text``, once the gate admits its publication.

    Returns ``(public key, admission)``; persist ``admission.state``.

    Raises:
        GateError: not logged, not pinned (product :data:`KEY_PRODUCT`, channel = region),
            an older serial than one admitted before.
        FormatError: not a key text, or the publication is another region's.
    """
    from overt.gate.verify import verify_publication

    digest = hashlib.sha256(key_text).digest()
    admission = verify_publication(digest, bundle, client_policy, state, now)
    return _matching(key_text, admission.publication), admission


def admit_collector_key(gate: Any, key_text: bytes, bundle: bytes) -> X25519PublicKey:
    """The region key in ``key_text`` once ``gate`` (an :class:`overt.gate.UpdateGate`)
    admits its publication; the shell around :func:`verify_collector_key`.

    Raises:
        GateError: the gate refuses it. FormatError: as :func:`verify_collector_key`.
    """
    return _matching(key_text, gate.admit(key_text, bundle))


def _matching(key_text: bytes, pub: Any) -> X25519PublicKey:
    region, key = parse_collector_key(key_text)
    if pub.product != KEY_PRODUCT or pub.channel != region:
        raise FormatError("collector key", f"published as {pub.product}/{pub.channel}", region)
    return key
