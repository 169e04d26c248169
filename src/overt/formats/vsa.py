"""SLSA Verification Summary Attestation (VSA) v1, as overt's rebuilders sign it.

Spec: https://slsa.dev/spec/v1.0/verification_summary. An in-toto statement whose
subject is the artifact verified (its released name and SHA-256), predicate type
``https://slsa.dev/verification_summary/v1``::

    {"verifier": {"id": URI},
     "timeVerified": "YYYY-MM-DDTHH:MM:SSZ",
     "resourceUri": URI,                               the artifact's released name
     "policy": {"uri": "https://overt.dev/rebuild/v1"},
     "inputAttestations": [{"uri": U, "digest": {"sha256": HEX64}}, ...],
     "verificationResult": "PASSED" | "FAILED",
     "verifiedLevels": [],
     "slsaVersion": "1.0",
     "overtRebuild": {"outputSha256": HEX64, "difference": TEXT | null}}

overt's policy ``https://overt.dev/rebuild/v1`` means: the artifact was rebuilt from the
source snapshot named in ``inputAttestations`` (uri ``overt:source-snapshot``) in a clean
copy with a fixed environment, and ``PASSED`` iff the rebuilt output's SHA-256 is the
artifact's. ``verifiedLevels`` is empty: a rebuild attests reproducibility, not a SLSA
build level. ``overtRebuild`` (an extension member, which VSA consumers ignore) holds
the rebuilt digest and, on a mismatch, where the outputs first differ.

Example::

    >>> v = Vsa("https://overt.dev/rebuilder/alice", "2026-11-26T12:00:00Z",
    ...         "agent.whl", (("overt:source-snapshot", "ab" * 32),), True, "ab" * 32)
    >>> Vsa.from_json(v.to_json()) == v
    True

Versioning: the predicate type's ``/v1``; overt's extension member is versioned with
the policy URI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from overt.errors import FormatError
from overt.formats.strict import json_list, json_members, json_str

__all__ = ["REBUILD_POLICY", "SOURCE_SNAPSHOT_URI", "VSA_PREDICATE", "Vsa"]

VSA_PREDICATE = "https://slsa.dev/verification_summary/v1"
REBUILD_POLICY = "https://overt.dev/rebuild/v1"
SOURCE_SNAPSHOT_URI = "overt:source-snapshot"
_WHAT = "SLSA verification summary"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _hex(value: object, field: str) -> str:
    text: str = json_str(value, _WHAT, field, max_len=64)
    if not _HEX64.fullmatch(text):
        raise FormatError(_WHAT, f"{field} is not 64 lowercase hex digits", text)
    return text


@dataclass(frozen=True)
class Vsa:
    """A rebuild's verification summary; ``passed`` is the verdict."""

    verifier: str
    time_verified: str
    resource: str
    inputs: tuple[tuple[str, str], ...]
    passed: bool
    output_sha256: str
    difference: str | None = None

    def __post_init__(self) -> None:
        if not _TIME.fullmatch(self.time_verified):
            raise FormatError(_WHAT, "timeVerified is not YYYY-MM-DDTHH:MM:SSZ", self.time_verified)
        _hex(self.output_sha256, "outputSha256")
        for _, digest in self.inputs:
            _hex(digest, "an input digest")

    @property
    def source_snapshot(self) -> str | None:
        """The source digest rebuilt from (None if the summary names none)."""
        return next((d for u, d in self.inputs if u == SOURCE_SNAPSHOT_URI), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "verifier": {"id": self.verifier},
            "timeVerified": self.time_verified,
            "resourceUri": self.resource,
            "policy": {"uri": REBUILD_POLICY},
            "inputAttestations": [{"uri": u, "digest": {"sha256": d}} for u, d in self.inputs],
            "verificationResult": "PASSED" if self.passed else "FAILED",
            "verifiedLevels": [],
            "slsaVersion": "1.0",
            "overtRebuild": {"outputSha256": self.output_sha256, "difference": self.difference},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Vsa:
        """Raises FormatError: a member missing or malformed, another policy, a bad result."""
        m = json_members(
            dict(obj),
            _WHAT,
            (
                "verifier",
                "timeVerified",
                "resourceUri",
                "policy",
                "inputAttestations",
                "verificationResult",
                "verifiedLevels",
                "slsaVersion",
            ),
            ("overtRebuild",),
        )
        verifier = json_members(m["verifier"], _WHAT, ("id",), ("version",))
        policy = json_members(m["policy"], _WHAT, ("uri",), ("digest",))
        if policy["uri"] != REBUILD_POLICY:
            raise FormatError(_WHAT, "not overt's rebuild policy", str(policy["uri"]))
        result = m["verificationResult"]
        if result not in ("PASSED", "FAILED"):
            raise FormatError(_WHAT, "verificationResult is not PASSED or FAILED", str(result))
        inputs = []
        for item in json_list(m["inputAttestations"], _WHAT, "inputAttestations", max_items=64):
            att = json_members(item, _WHAT, ("uri", "digest"))
            digest = json_members(att["digest"], _WHAT, ("sha256",))
            uri = json_str(att["uri"], _WHAT, "an input uri", max_len=1024)
            inputs.append((uri, _hex(digest["sha256"], "an input digest")))
        rebuild = json_members(m.get("overtRebuild"), _WHAT, ("outputSha256", "difference"))
        difference = rebuild["difference"]
        if difference is not None:
            difference = json_str(difference, _WHAT, "difference", max_len=4096)
        return cls(
            json_str(verifier["id"], _WHAT, "verifier.id", max_len=1024),
            json_str(m["timeVerified"], _WHAT, "timeVerified", max_len=20),
            json_str(m["resourceUri"], _WHAT, "resourceUri", max_len=1024),
            tuple(inputs),
            result == "PASSED",
            _hex(rebuild["outputSha256"], "outputSha256"),
            difference,
        )
