"""Publisher keys: Ed25519 keys that sign overt publications (DSSE envelopes).

A publisher key travels in the signed-note key text formats
(c2sp.org/signed-note, :mod:`overt.formats.note`), type byte ``0x01``::

    public  (KEY.pub):  NAME+KEYID8+base64(0x01 || 32-byte public key)
    private (KEY):      PRIVATE+KEY+NAME+KEYID8+base64(0x01 || 32-byte seed)   ; mode 0600

Example public key: ``acme.example/release+1a2b3c4d+AX5k...``. In a DSSE
envelope the signature's ``keyid`` is :attr:`PublisherKey.keyid`, the lowercase
hex SHA-256 of the raw 32-byte public key (the name is not part of it, so a
key keeps its DSSE key ID when renamed). Key-set statements
(:mod:`overt.publish.keyset`) list keys by their public text.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from overt.errors import ConfigError, FormatError
from overt.formats.note import Ed25519Signer, Ed25519Verifier, generate_key, parse_skey, parse_vkey

__all__ = [
    "PublisherKey",
    "PublisherSigner",
    "generate_publisher_key",
    "load_publisher_key",
    "load_publisher_signer",
    "parse_publisher_key",
    "write_key_files",
]


@dataclass(frozen=True)
class PublisherKey:
    """A publisher's public key (Ed25519)."""

    vkey: str
    public_key: Ed25519PublicKey = field(compare=False, repr=False)
    raw: bytes = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.vkey.split("+", 1)[0]

    @property
    def keyid(self) -> str:
        """The DSSE key ID: hex SHA-256 of the raw public key."""
        return hashlib.sha256(self.raw).hexdigest()


def parse_publisher_key(vkey: str) -> PublisherKey:
    """Parse a publisher public key (an Ed25519, type 0x01, signed-note vkey).

    Raises:
        FormatError: malformed, or not a plain Ed25519 key.
    """
    verifier = parse_vkey(vkey)
    if not isinstance(verifier, Ed25519Verifier):
        raise FormatError("publisher key", "not an Ed25519 (type 0x01) key", vkey)
    return PublisherKey(vkey, verifier.public_key, verifier.public_key.public_bytes_raw())


@dataclass(frozen=True)
class PublisherSigner:
    """A publisher's private key; ``sign`` makes raw Ed25519 signatures (for DSSE PAE)."""

    signer: Ed25519Signer = field(repr=False)
    key: PublisherKey

    def sign(self, data: bytes, /) -> bytes:
        return self.signer.sign(data)

    @property
    def keyid(self) -> str:
        return self.key.keyid


def _signer_from_skey(skey: str) -> PublisherSigner:
    signer = parse_skey(skey)
    if not isinstance(signer, Ed25519Signer):
        raise FormatError("publisher key", "not an Ed25519 (type 0x01) private key")
    return PublisherSigner(signer, parse_publisher_key(signer.vkey))


def generate_publisher_key(name: str) -> tuple[str, PublisherSigner]:
    """A fresh publisher key: ``(private key text, signer)``. Keep the text secret.

    Raises:
        FormatError: ``name`` is not a valid key name.
    """
    skey, _vkey = generate_key(name)
    return skey, _signer_from_skey(skey)


def write_key_files(path: Path, skey: str, signer: PublisherSigner) -> Path:
    """Write the private key to ``path`` (0600, never overwritten) and ``path.pub``.

    Returns the public key path.

    Raises:
        ConfigError: ``path`` exists or cannot be written.
    """
    pub = path.with_name(path.name + ".pub")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        raise ConfigError(f"cannot create key file {path}: {err.strerror}") from err
    try:
        os.write(fd, skey.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        pub.write_text(signer.key.vkey + "\n")
    except OSError as err:
        raise ConfigError(f"cannot write {pub}: {err.strerror}") from err
    return pub


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {what} {path}: {err}") from err


def load_publisher_signer(path: Path) -> PublisherSigner:
    """Load a private key file written by :func:`write_key_files`.

    Raises:
        ConfigError: unreadable, a public key instead of a private one, readable by
            group or others, or malformed.
    """
    try:
        mode = path.stat().st_mode
    except OSError as err:
        raise ConfigError(f"cannot read publisher key {path}: {err.strerror}") from err
    text = _read(path, "publisher key")
    if not text.startswith("PRIVATE+KEY+") and _is_vkey(text):
        # A .pub file is world-readable by design: "chmod 600 it" would be the wrong advice.
        raise ConfigError(
            f"{path} is a public (verifier) key; signing needs the publisher's private key"
            f" (the file without .pub, written by `overt publisher keygen`)"
        )
    if mode & 0o077:
        raise ConfigError(f"publisher key {path} is readable by others (chmod 600 it)")
    try:
        return _signer_from_skey(text)
    except FormatError as err:
        raise ConfigError(f"{path} is not a publisher private key: {err.reason}") from err


def _is_vkey(text: str) -> bool:
    try:
        parse_vkey(text)
    except FormatError:
        return False
    return True


def load_publisher_key(text_or_path: str) -> PublisherKey:
    """A publisher public key given inline or as a file holding one.

    Raises:
        ConfigError: unreadable file; FormatError: malformed key.
    """
    text = text_or_path
    if "+" not in text_or_path or Path(text_or_path).is_file():
        text = _read(Path(text_or_path), "publisher public key")
    return parse_publisher_key(text)
