"""security.txt (RFC 9116): where and how to report a vulnerability.

Grammar (RFC 9116 section 4): lines of ``Field-Name: value``, comments starting with ``#``,
blank lines; ``Contact`` (at least one) and ``Expires`` (exactly one, RFC 3339) are
required; ``Encryption``, ``Policy``, ``Canonical``, ``Acknowledgments``, ``Hiring`` and
``Preferred-Languages`` are optional. Example::

    Contact: https://psirt.example.com/report
    Expires: 2027-11-25T00:00:00Z
    Encryption: https://psirt.example.com/.well-known/psirt-key
    Policy: https://psirt.example.com/policy
    Canonical: https://psirt.example.com/.well-known/security.txt

Served at ``/.well-known/security.txt`` as ``text/plain; charset=utf-8``. The file is not
signed here (the RFC's OpenPGP cleartext signature is optional); its ``Encryption`` line
points at the PSIRT's HPKE key (:mod:`overt.disclosure.crypto`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from overt.errors import FormatError

__all__ = ["SecurityTxt", "format_security_txt", "parse_security_txt"]

_URI = re.compile(r"(https://|mailto:|tel:)[\x21-\x7e]+")
_EXPIRES = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_FIELD = re.compile(r"([A-Za-z0-9-]+): (.*)")
_ONCE = ("expires", "preferred-languages")
_URI_FIELDS = ("contact", "encryption", "policy", "canonical", "acknowledgments", "hiring")


@dataclass(frozen=True)
class SecurityTxt:
    contact: tuple[str, ...]
    expires: datetime
    encryption: tuple[str, ...] = ()
    policy: tuple[str, ...] = ()
    canonical: tuple[str, ...] = ()
    acknowledgments: tuple[str, ...] = ()
    preferred_languages: str = ""


def format_security_txt(doc: SecurityTxt) -> str:
    """The file's text; :func:`parse_security_txt` reads it back unchanged.

    Raises:
        FormatError: a URI that is not https://, mailto: or tel:, no contact, or a naive
            expiry time.
    """
    if doc.expires.tzinfo is None:
        raise FormatError("security.txt Expires", "not an aware time", doc.expires.isoformat())
    lines = []
    for name, values in (
        ("Contact", doc.contact),
        ("Encryption", doc.encryption),
        ("Policy", doc.policy),
        ("Canonical", doc.canonical),
        ("Acknowledgments", doc.acknowledgments),
    ):
        for value in values:
            if not _URI.fullmatch(value):
                raise FormatError(f"security.txt {name}", "not an https/mailto/tel URI", value)
            lines.append(f"{name}: {value}")
    if not doc.contact:
        raise FormatError("security.txt", "no Contact")
    lines.insert(len(doc.contact), f"Expires: {doc.expires.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    if doc.preferred_languages:
        lines.append(f"Preferred-Languages: {doc.preferred_languages}")
    return "".join(line + "\n" for line in lines)


def parse_security_txt(text: str) -> SecurityTxt:
    """Parse a security.txt strictly (unknown fields are ignored, as RFC 9116 says).

    Raises:
        FormatError: over 32 KiB, a line that is neither a field nor a comment, a
            required field missing, a field that must appear once repeated, a URI that
            is not https/mailto/tel, or an Expires that is not RFC 3339.
    """
    if len(text) > 32 * 1024:
        raise FormatError("security.txt", "larger than 32 KiB")
    fields: dict[str, list[str]] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line or line.startswith("#"):
            continue
        match = _FIELD.fullmatch(line)
        if match is None:
            raise FormatError("security.txt", f"line {n} is not 'Field: value'", line[:80])
        fields.setdefault(match.group(1).lower(), []).append(match.group(2))
    for name in _ONCE:
        if len(fields.get(name, [])) > 1:
            raise FormatError("security.txt", f"{name} appears more than once")
    for name in _URI_FIELDS:
        for value in fields.get(name, []):
            if not _URI.fullmatch(value):
                raise FormatError(f"security.txt {name}", "not an https/mailto/tel URI", value)
    if not fields.get("contact"):
        raise FormatError("security.txt", "no Contact")
    expires = fields.get("expires")
    if not expires or not _EXPIRES.fullmatch(expires[0]):
        raise FormatError("security.txt", "no RFC 3339 Expires", (expires or [""])[0])
    return SecurityTxt(
        tuple(fields["contact"]),
        datetime.fromisoformat(expires[0].replace("Z", "+00:00")),
        tuple(fields.get("encryption", [])),
        tuple(fields.get("policy", [])),
        tuple(fields.get("canonical", [])),
        tuple(fields.get("acknowledgments", [])),
        fields.get("preferred-languages", [""])[0],
    )
