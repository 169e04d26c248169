"""Encryption at rest to the PSIRT key: HPKE (RFC 9180) from ``cryptography``.

Every report body, attachment and message is sealed with HPKE in base mode,
suite DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305, to the PSIRT's
X25519 public key. The HPKE ``info`` binds each ciphertext to what it is
(``overt-disclosure/v1 <kind> <report id>``), so a ciphertext copied onto another
report, or a message passed off as a body, fails to open.

The public key is published (``GET /.well-known/psirt-key``) as::

    hpke DHKEM(X25519,HKDF-SHA256) HKDF-SHA256 ChaCha20Poly1305
    <base64 of the 32-byte X25519 public key>

The private key file is PKCS#8 PEM, mode 0600, written atomically. The service needs it to
show a report to a triager; an intake-only deployment could hold the public key alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from overt.errors import ConfigError, VerificationError
from overt.formats.strict import b64encode
from overt.log.fs import atomic_write

__all__ = ["SUITE_NAME", "PSIRTKey", "open_sealed", "seal"]

SUITE_NAME = "hpke DHKEM(X25519,HKDF-SHA256) HKDF-SHA256 ChaCha20Poly1305"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def _info(kind: str, report_id: str) -> bytes:
    return f"overt-disclosure/v1 {kind} {report_id}".encode()


def seal(public_key: X25519PublicKey, plaintext: bytes, kind: str, report_id: str) -> bytes:
    """``plaintext`` sealed to ``public_key``, bound to ``kind`` and ``report_id``."""
    return _SUITE.encrypt(plaintext, public_key, info=_info(kind, report_id))


def open_sealed(
    private_key: X25519PrivateKey, ciphertext: bytes, kind: str, report_id: str
) -> bytes:
    """The plaintext of a :func:`seal` ciphertext.

    Raises:
        VerificationError: the ciphertext was altered, sealed to another key, or sealed
            for another kind or report.
    """
    try:
        return _SUITE.decrypt(ciphertext, private_key, info=_info(kind, report_id))
    except (InvalidTag, ValueError) as err:
        raise VerificationError(f"cannot open the {kind} of report {report_id}: {err!r}") from err


@dataclass(frozen=True)
class PSIRTKey:
    """The PSIRT's HPKE key pair."""

    private: X25519PrivateKey

    @classmethod
    def generate(cls) -> PSIRTKey:
        return cls(X25519PrivateKey.generate())

    @property
    def public(self) -> X25519PublicKey:
        return self.private.public_key()

    def published(self) -> str:
        """The public key as served at ``/.well-known/psirt-key`` (module docstring)."""
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"{SUITE_NAME}\n{b64encode(raw)}\n"

    def save(self, path: Path | str) -> None:
        """Write the private key (PKCS#8 PEM, 0600) atomically; refuses to overwrite.

        Raises:
            ConfigError: the file exists or cannot be written.
        """
        pem = self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = Path(path)
        try:
            atomic_write(path, pem, 0o600, exclusive=True)
        except FileExistsError as err:
            raise ConfigError(f"{path} exists: not overwriting a PSIRT key") from err
        except OSError as err:
            raise ConfigError(f"cannot write the PSIRT key {path}: {err}") from err

    @classmethod
    def load(cls, path: Path | str) -> PSIRTKey:
        """Read a key written by :meth:`save`.

        Raises:
            ConfigError: unreadable, or not an X25519 private key.
        """
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as err:
            raise ConfigError(f"cannot read the PSIRT key {path}: {err}") from err
        if not isinstance(key, X25519PrivateKey):
            raise ConfigError(f"{path} is not an X25519 private key")
        return cls(key)
