"""A vulnerability-scan verdict: what a scanner found matching an SBOM against an OSV export.

An endpoint has no OSV database, so "no known vulnerability at or above S" reaches it as
evidence: an in-toto statement signed by a scanner's own logged key (created like a
reviewer's, ``overt review keygen``) and logged. Its subject is the SBOM (its file name and
:func:`sbom_digest`), predicate type ``https://overt.dev/sbom-scan/v1``::

    {"osv": {"sha256": HEX64,                  the export: zip bytes, or folder snapshot digest
             "date": "YYYY-MM-DDTHH:MM:SSZ",   its newest advisory's ``modified`` time
             "advisories": N},
     "scanned": "YYYY-MM-DDTHH:MM:SSZ",
     "maxSeverity": "none" | "low" | "medium" | "high" | "critical",
     "vulnerable": [{"name": N, "version": V, "severity": S, "advisories": [ID, ...]}, ...]}

The **SBOM digest** is the SHA-256 of the SBOM's JSON in canonical form: object members
sorted, no whitespace, UTF-8 (``json.dumps(doc, sort_keys=True, separators=(",", ":"),
ensure_ascii=False)``; RFC 8785 for an SBOM with ASCII member names and integer numbers,
as CycloneDX SBOMs are). It is computed from the parsed JSON, so the SBOM file a scanner
reads and the SBOM statement the publisher logged about the release (its predicate is the
SBOM) give the same digest: that is what binds the verdict to the release.

Example::

    >>> v = ScanVerdict("ab" * 32, "2026-11-01T00:00:00Z", 3, "2026-11-26T12:00:00Z", "none", ())
    >>> ScanVerdict.from_json(v.to_json()) == v
    True

Versioning: the predicate type's ``/v1``; a reader refuses unknown members.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from overt.errors import FormatError
from overt.formats.strict import json_int, json_list, json_members, json_str

__all__ = [
    "SBOM_PREDICATE",
    "SCAN_PREDICATE",
    "SCAN_SEVERITIES",
    "ScanVerdict",
    "VulnerableComponent",
    "sbom_digest",
    "scan_severity_rank",
]

SCAN_PREDICATE = "https://overt.dev/sbom-scan/v1"
SBOM_PREDICATE = "https://cyclonedx.org/bom/v1.6"
SCAN_SEVERITIES = ("none", "low", "medium", "high", "critical")
_WHAT = "SBOM scan verdict"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_MAX_COMPONENTS = 10_000


def sbom_digest(sbom: Mapping[str, Any]) -> str:
    """The SBOM's digest: SHA-256 of its canonical JSON (see the module notes)."""
    text = json.dumps(sbom, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def scan_severity_rank(severity: str) -> int:
    """0 for ``none`` ... 4 for ``critical``. Raises FormatError for anything else."""
    try:
        return SCAN_SEVERITIES.index(severity)
    except ValueError:
        raise FormatError(_WHAT, f"severity is not one of {SCAN_SEVERITIES}", severity) from None


def _severity(value: object, field: str) -> str:
    text: str = json_str(value, _WHAT, field, max_len=16)
    scan_severity_rank(text)
    return text


def _time(value: object, field: str) -> str:
    text: str = json_str(value, _WHAT, field, max_len=20)
    try:
        if not _TIME.fullmatch(text):
            raise ValueError(text)
        time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")  # a real date and time (no month 13)
    except ValueError:
        raise FormatError(_WHAT, f"{field} is not a YYYY-MM-DDTHH:MM:SSZ time", text) from None
    return text


@dataclass(frozen=True)
class VulnerableComponent:
    """A component found vulnerable, its worst advisory's severity and the advisory IDs."""

    name: str
    version: str
    severity: str
    advisories: tuple[str, ...]


@dataclass(frozen=True)
class ScanVerdict:
    """A scan's predicate (see the module notes); ``max_severity`` is the verdict."""

    osv_sha256: str
    osv_date: str
    osv_advisories: int
    scanned: str
    max_severity: str
    vulnerable: tuple[VulnerableComponent, ...]

    def __post_init__(self) -> None:
        if not _HEX64.fullmatch(self.osv_sha256):
            raise FormatError(_WHAT, "osv sha256 is not 64 lowercase hex digits", self.osv_sha256)
        _time(self.osv_date, "osv date")
        _time(self.scanned, "scanned")
        worst = max((scan_severity_rank(v.severity) for v in self.vulnerable), default=0)
        if scan_severity_rank(self.max_severity) != worst:
            raise FormatError(
                _WHAT,
                "maxSeverity is not the worst of the vulnerable components'",
                self.max_severity,
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "osv": {
                "sha256": self.osv_sha256,
                "date": self.osv_date,
                "advisories": self.osv_advisories,
            },
            "scanned": self.scanned,
            "maxSeverity": self.max_severity,
            "vulnerable": [
                {
                    "name": v.name,
                    "version": v.version,
                    "severity": v.severity,
                    "advisories": list(v.advisories),
                }
                for v in self.vulnerable
            ],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ScanVerdict:
        """Raises FormatError: a member missing, unknown or malformed."""
        m = json_members(dict(obj), _WHAT, ("osv", "scanned", "maxSeverity", "vulnerable"))
        osv = json_members(m["osv"], _WHAT, ("sha256", "date", "advisories"))
        vulnerable = []
        for item in json_list(m["vulnerable"], _WHAT, "vulnerable", max_items=_MAX_COMPONENTS):
            c = json_members(item, _WHAT, ("name", "version", "severity", "advisories"))
            ids = json_list(c["advisories"], _WHAT, "advisories", max_items=_MAX_COMPONENTS)
            vulnerable.append(
                VulnerableComponent(
                    json_str(c["name"], _WHAT, "name", max_len=256),
                    json_str(c["version"], _WHAT, "version", max_len=256),
                    _severity(c["severity"], "severity"),
                    tuple(json_str(i, _WHAT, "advisory", max_len=256) for i in ids),
                )
            )
        return cls(
            json_str(osv["sha256"], _WHAT, "osv sha256", max_len=64),
            _time(osv["date"], "osv date"),
            json_int(osv["advisories"], _WHAT, "osv advisories", 0),
            _time(m["scanned"], "scanned"),
            _severity(m["maxSeverity"], "maxSeverity"),
            tuple(vulnerable),
        )
