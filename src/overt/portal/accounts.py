"""Partner accounts of the portal: roles, scrypt password hashes, signed session cookies.

The partners' area (reviewers file source reviews, auditors sign rule audits, admins
see the disclosure programme's internals) needs a login; nothing else in the portal
does. Accounts live in ``STATE/accounts.json`` (0600, written atomically), created by
``overt portal user add NAME --role ROLE`` (the password on stdin)::

    {"version": 1, "accounts": {NAME: {"role": ROLE, "password": HASH, "vkey": VKEY}}}
    HASH = "scrypt$" N "$" r "$" p "$" base64(salt) "$" base64(key)     (RFC 7914)

``vkey`` is the partner's own signing key (a reviewer's or auditor's Ed25519 publisher
key, whose key set 1 is logged: ``overt review keygen``); an admin has none. The
portal never holds a partner's private key: it hands out the statement to sign and
accepts the signed envelope back (:mod:`overt.portal.partners`).

Sessions are stateless: the cookie is ``base64url(payload) "." base64url(HMAC-SHA256(
STATE/session.key, payload))`` with the payload ``{"u": name, "r": role, "e": expiry,
"n": nonce}``; it is accepted only with a valid MAC, before its expiry, and while the
account still has that role (removing an account or changing its role ends its
sessions). Each form carries a CSRF token, HMAC("csrf" || nonce): a page of another
origin can neither read it nor forge it. The cookie is ``HttpOnly; Secure;
SameSite=Strict``.

Errors: :class:`~overt.errors.ConfigError` for a bad name, role, password or key
and an unreadable store; a failed login or a cookie or form token that does not
verify is a :class:`~overt.errors.VerificationError` (one message for an unknown
name and a wrong password).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from overt.errors import ConfigError, FormatError, VerificationError
from overt.log.fs import atomic_write

__all__ = [
    "SESSION_SECONDS",
    "AccountStore",
    "PartnerAccount",
    "PartnerRole",
    "Session",
    "SessionKeys",
    "check_token",
    "hash_password",
    "verify_password",
]

SESSION_SECONDS = 8 * 3600
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_SCRYPT = (1 << 15, 8, 1)  # N, r, p: ~32 MiB and ~0.1 s a hash on this class of machine
_HASH = re.compile(
    r"scrypt\$([1-9][0-9]{0,9})\$([1-9][0-9]?)\$([1-9][0-9]?)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)"
)
_MIN_PASSWORD, _MAX_PASSWORD = 12, 1024


class PartnerRole(Enum):
    REVIEWER = "reviewer"  # files source reviews (signed with their own key)
    AUDITOR = "auditor"  # signs rule bundle audits (with their own key)
    ADMIN = "admin"  # the disclosure programme's internals


@dataclass(frozen=True)
class PartnerAccount:
    name: str
    role: PartnerRole
    vkey: str | None  # the partner's logged signing key (reviewers, auditors)


def hash_password(password: str, n: int = _SCRYPT[0]) -> str:
    """The password's scrypt hash in the store's format, with a fresh 16-byte salt."""
    _, r, p = _SCRYPT
    salt = os.urandom(16)
    key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))
    b64 = base64.b64encode
    return f"scrypt${n}${r}${p}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant time in the key comparison).

    Raises:
        FormatError: ``stored`` is not a hash of this module's format.
    """
    m = _HASH.fullmatch(stored)
    if m is None:
        raise FormatError("password hash", "not scrypt$N$r$p$salt$key", stored[:16].encode())
    n, r, p = int(m.group(1)), int(m.group(2)), int(m.group(3))
    try:
        salt = base64.b64decode(m.group(4), validate=True)
        key = base64.b64decode(m.group(5), validate=True)
    except ValueError as err:
        raise FormatError("password hash", "bad base64", stored[:16].encode()) from err
    if n & (n - 1) or n > 1 << 20:
        raise FormatError("password hash", "N is not a power of two up to 2^20", m.group(1))
    try:
        Scrypt(salt=salt, length=len(key), n=n, r=r, p=p).verify(password.encode("utf-8"), key)
    except InvalidKey:
        return False
    return True


@functools.cache
def _dummy() -> str:
    """A hash no password matches, checked for unknown names: the same scrypt work as for a
    known one (made once per process)."""
    return hash_password(secrets.token_hex(16))


class AccountStore:
    """``STATE/accounts.json``: read on every lookup (small), replaced atomically on change.

    Raises (any method):
        ConfigError: the file cannot be read or is not an account store.
    """

    def __init__(self, state: Path) -> None:
        self.path = state / "accounts.json"

    def _load(self) -> dict[str, dict[str, str | None]]:
        try:
            doc = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read {self.path}: {err}") from err
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ConfigError(f"{self.path} is not a portal account store (version 1)")
        accounts = doc.get("accounts")
        if not isinstance(accounts, dict):
            raise ConfigError(f"{self.path}: no accounts object")
        return accounts

    def _save(self, accounts: dict[str, dict[str, str | None]]) -> None:
        doc = {"version": 1, "accounts": accounts}
        data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
        atomic_write(self.path, data, mode=0o600)

    def add(self, name: str, role: PartnerRole, password: str, vkey: str | None) -> PartnerAccount:
        """Create or replace the account ``name``.

        Raises:
            ConfigError: a name not of 1-64 ``[a-z0-9._-]``, a password not of 12-1024
                characters, a reviewer or auditor without a valid publisher vkey, an
                admin with one.
        """
        from overt.publish.keys import parse_publisher_key

        if not _NAME.fullmatch(name):
            raise ConfigError(f"account name {name!r}: want 1-64 of [a-z0-9._-]")
        if not _MIN_PASSWORD <= len(password) <= _MAX_PASSWORD:
            raise ConfigError(f"the password must be {_MIN_PASSWORD} to {_MAX_PASSWORD} characters")
        if role is PartnerRole.ADMIN:
            if vkey is not None:
                raise ConfigError("an admin signs nothing: no --vkey")
        else:
            if vkey is None:
                raise ConfigError(f"a {role.value} signs with their own key: give --vkey")
            try:
                parse_publisher_key(vkey)
            except FormatError as err:
                raise ConfigError(f"--vkey: {err}") from err
        accounts = self._load()
        accounts[name] = {"role": role.value, "password": hash_password(password), "vkey": vkey}
        self._save(accounts)
        return PartnerAccount(name, role, vkey)

    def get(self, name: str) -> PartnerAccount | None:
        entry = self._load().get(name)
        if not isinstance(entry, dict):
            return None
        try:
            role = PartnerRole(entry.get("role"))
        except ValueError:
            return None
        vkey = entry.get("vkey")
        return PartnerAccount(name, role, vkey if isinstance(vkey, str) else None)

    def login(self, name: str, password: str) -> PartnerAccount:
        """The account, if ``password`` is its password.

        Raises:
            VerificationError: unknown name or wrong password (one message, one scrypt either way).
        """
        entry = self._load().get(name) if _NAME.fullmatch(name) else None
        stored = entry.get("password") if isinstance(entry, dict) else None
        try:
            ok = verify_password(stored if isinstance(stored, str) else _dummy(), password)
        except FormatError:
            ok = False
        account = self.get(name) if ok and entry is not None else None
        if account is None:
            raise VerificationError("wrong name or password")
        return account


@dataclass(frozen=True)
class Session:
    account: PartnerAccount
    expires: int
    csrf: str  # the token each form of this session carries


class SessionKeys:
    """The HMAC key of sessions and CSRF tokens: ``STATE/session.key`` (0600, made once).

    Raises:
        ConfigError: the key file cannot be read or created, or others may read it.
    """

    def __init__(self, state: Path, clock: Callable[[], float] = time.time) -> None:
        from overt._secrets import require_private

        path = state / "session.key"
        if not path.exists():
            try:
                atomic_write(path, secrets.token_bytes(32), mode=0o600, exclusive=True)
            except FileExistsError:
                pass  # another portal over the same state made it first: use theirs
            except OSError as err:
                raise ConfigError(f"cannot create {path}: {err.strerror}") from err
        require_private(path, "session key")
        try:
            self._key = path.read_bytes()
        except OSError as err:
            raise ConfigError(f"cannot read {path}: {err.strerror}") from err
        if len(self._key) != 32:
            raise ConfigError(f"{path} is not a 32-byte key")
        self.clock = clock

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, purpose + b"\n" + data, hashlib.sha256).digest()

    def issue(self, account: PartnerAccount) -> tuple[str, Session]:
        """A new session of ``account``: (cookie value, session)."""
        nonce = secrets.token_urlsafe(16)
        expires = int(self.clock()) + SESSION_SECONDS
        payload = json.dumps(
            {"u": account.name, "r": account.role.value, "e": expires, "n": nonce},
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        cookie = f"{_b64url(payload)}.{_b64url(self._mac(b'session', payload))}"
        return cookie, Session(account, expires, self._csrf(nonce))

    def _csrf(self, nonce: str) -> str:
        return _b64url(self._mac(b"csrf", nonce.encode()))

    def open(self, cookie: str, accounts: AccountStore) -> Session:
        """The session a cookie carries.

        Raises:
            VerificationError: a malformed cookie, a bad MAC, an expired session, or an account
                removed or given another role since.
        """
        head, dot, mac = cookie.partition(".")
        if not dot or len(cookie) > 1024:
            raise VerificationError("not logged in")
        try:
            payload = _b64url_decode(head)
            given = _b64url_decode(mac)
        except ValueError as err:
            raise VerificationError("not logged in") from err
        if not hmac.compare_digest(given, self._mac(b"session", payload)):
            raise VerificationError("not logged in (the session cookie does not verify)")
        doc = json.loads(payload)  # our own bytes: the MAC verified
        if doc["e"] < self.clock():
            raise VerificationError("the session expired: log in again")
        account = accounts.get(doc["u"])
        if account is None or account.role.value != doc["r"]:
            raise VerificationError("the account is gone or its role changed: log in again")
        return Session(account, doc["e"], self._csrf(doc["n"]))

    def login_token(self, nonce: str) -> str:
        """The login form's CSRF token for the pre-session cookie ``nonce`` (double submit)."""
        return _b64url(self._mac(b"login", nonce.encode()))


def check_token(expected: str, given: str | None) -> None:
    """Raises VerificationError unless ``given`` is ``expected`` (compared in constant time)."""
    if not expected or given is None or not hmac.compare_digest(expected.encode(), given.encode()):
        raise VerificationError("the form's token does not match the session: reload the page")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
