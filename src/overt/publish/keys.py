"""Publisher keys: Ed25519 or ML-DSA-44 keys that sign overt publications (DSSE envelopes).

A publisher key travels in the signed-note key text formats
(c2sp.org/signed-note, :mod:`overt.formats.keytypes`), by type byte::

    public  (KEY.pub):  NAME+KEYID8+base64(type || public key)
    private (KEY):      PRIVATE+KEY+NAME+KEYID8+base64(type || 32-byte seed)   ; mode 0600

    0x01  Ed25519     32-byte public key, 64-byte DSSE signatures (existing endpoints)
    0x06  ML-DSA-44   1312-byte public key, 2420-byte DSSE signatures (post-quantum)

Example public key: ``acme.example/release+1a2b3c4d+AX5k...``. The DSSE
signature is the algorithm's plain signature over the envelope's PAE (pure
ML-DSA-44, empty context), not a note signature: the type byte only names the
algorithm and the key ID rule. In a DSSE envelope the signature's ``keyid`` is
:attr:`PublisherKey.keyid`, the lowercase hex SHA-256 of the raw public key (the
name is not part of it, so a key keeps its DSSE key ID when renamed). Key-set
statements (:mod:`overt.publish.keyset`) list keys by their public text.

Witness keys (``0x04``, cosignature/v1) are not publisher keys.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from overt.errors import ConfigError, FormatError
from overt.formats.keytypes import (
    ALG_ED25519,
    ML_DSA_44,
    KeySigner,
    KeyType,
    Purpose,
    RawPublicKey,
    choose,
    generate,
    key_type,
    parse_skey,
    parse_vkey,
)

__all__ = [
    "PUBLISHER_KEY_TYPES",
    "PublisherKey",
    "PublisherSigner",
    "generate_publisher_key",
    "load_publisher_key",
    "load_publisher_signer",
    "parse_publisher_key",
    "publisher_key_type",
    "write_key_files",
]

#: ``--key-type`` names of the publisher key types, the default first.
PUBLISHER_KEY_TYPES = ("ed25519", "ml-dsa-44")


def publisher_key_type(algorithm: str) -> KeyType:
    """The key type of a publisher key of ``algorithm`` (``ed25519``, ``ml-dsa-44``).

    Raises:
        ConfigError: not a publisher key algorithm.
    """
    if algorithm == "ed25519":
        return key_type(ALG_ED25519)
    if algorithm == ML_DSA_44.name:
        return choose(ML_DSA_44.name, Purpose.CHECKPOINT)
    raise ConfigError(
        f"no publisher key type {algorithm!r}; choose one of {', '.join(PUBLISHER_KEY_TYPES)}"
    )


def _check_type(kt: KeyType, text: str) -> None:
    name = kt.algorithm.name
    if name not in PUBLISHER_KEY_TYPES or kt is not publisher_key_type(name):
        raise FormatError(
            "publisher key", "not an Ed25519 (type 0x01) or ML-DSA-44 (type 0x06) key", text
        )


@dataclass(frozen=True)
class PublisherKey:
    """A publisher's public key (Ed25519 or ML-DSA-44)."""

    vkey: str
    public_key: RawPublicKey = field(compare=False, repr=False)
    raw: bytes = field(compare=False, repr=False)
    #: ``ed25519`` or ``ml-dsa-44``: a hybrid key set requires one signature of each.
    algorithm: str = field(default="ed25519", compare=False)

    @property
    def name(self) -> str:
        return self.vkey.split("+", 1)[0]

    @property
    def keyid(self) -> str:
        """The DSSE key ID: hex SHA-256 of the raw public key."""
        return hashlib.sha256(self.raw).hexdigest()


def parse_publisher_key(vkey: str) -> PublisherKey:
    """Parse a publisher public key (a type 0x01 Ed25519 or 0x06 ML-DSA-44 vkey).

    Raises:
        FormatError: malformed, or not a publisher key type.
    """
    verifier = parse_vkey(vkey)
    _check_type(verifier.key_type, vkey)
    return PublisherKey(
        vkey, verifier.public_key, verifier.public_bytes, verifier.key_type.algorithm.name
    )


@dataclass(frozen=True)
class PublisherSigner:
    """A publisher's private key; ``sign`` makes the algorithm's raw signature (for DSSE PAE)."""

    signer: KeySigner = field(repr=False)
    key: PublisherKey

    def sign(self, data: bytes, /) -> bytes:
        # The algorithm's plain signature over the PAE: KeySigner.sign would make a
        # note signature (for 0x06 a timestamped cosignature message), not DSSE's.
        return self.signer._private.sign(data)

    @property
    def keyid(self) -> str:
        return self.key.keyid


def _signer_from_skey(skey: str) -> PublisherSigner:
    signer = parse_skey(skey)
    try:
        _check_type(signer.key_type, "")
    except FormatError:
        raise FormatError(
            "publisher key", "not an Ed25519 (type 0x01) or ML-DSA-44 (type 0x06) private key"
        ) from None
    return PublisherSigner(signer, parse_publisher_key(signer.vkey))


def generate_publisher_key(name: str, algorithm: str = "ed25519") -> tuple[str, PublisherSigner]:
    """A fresh publisher key: ``(private key text, signer)``. Keep the text secret.

    Raises:
        FormatError: ``name`` is not a valid key name; ConfigError: unknown ``algorithm``.
    """
    signer = generate(publisher_key_type(algorithm), name)
    return signer.skey, _signer_from_skey(signer.skey)


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
