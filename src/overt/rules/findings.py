"""Findings, the audit report, stable finding IDs and the attestation predicate.

Finding IDs are stable: ``OVR-`` + the first 16 hex digits of
``sha256(path NUL rule NUL detector NUL part NUL evidence)``, where ``path`` is
the file's path inside the bundle. The same rule in the same place with the
same problem keeps its ID across runs, machines and bundle versions.

Example::

    >>> finding_id("a.yar", "r", "marking", "$a", "NOFORN [text]")
    'OVR-282b712cec8c130f'

Attestation predicate (:func:`audit_predicate`), type
``https://overt.dev/rule-audit/v1``::

    {"bundle": {"name": str, "sha256": hex},
     "auditor": {"name": "overt", "version": str},
     "policy": {"fail_on": "high", "dynamic": bool},
     "result": "pass" | "fail",
     "counts": {"info": n, "low": n, "medium": n, "high": n, "critical": n},
     "files": n, "rules": n,
     "findings": [finding ID, ...]}   # sorted

``result`` is ``fail`` when any finding reaches ``fail_on``. The predicate is a
pure function of the report; ``overt rules attest`` wraps it in an in-toto
statement whose subject is the bundle digest. Rendering (text, JSON, SARIF) is
:mod:`overt.rules.report`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from overt import __version__
from overt.rules.bundle import Refused
from overt.rules.signals import Severity, Signal

__all__ = [
    "PREDICATE_TYPE",
    "Finding",
    "Report",
    "add_refused",
    "audit_predicate",
    "file_finding",
    "finding_id",
    "rule_finding",
    "sorted_findings",
]

PREDICATE_TYPE = "https://overt.dev/rule-audit/v1"


@dataclass(frozen=True)
class Finding:
    """One finding: which rule, where, what, why, how bad, and a stable ID."""

    id: str
    severity: Severity
    detector: str
    rule: str
    path: str
    line: int
    part: str
    evidence: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "severity": str(self.severity),
            "detector": self.detector,
            "rule": self.rule,
            "path": self.path,
            "line": self.line,
            "part": self.part,
            "evidence": self.evidence,
            "reason": self.reason,
        }


@dataclass
class Report:
    """The result of auditing one bundle."""

    name: str
    sha256: str
    files: int = 0
    rules: int = 0
    findings: list[Finding] = field(default_factory=list)
    dynamic: bool = True
    tool_version: str = __version__

    def counts(self) -> dict[str, int]:
        out = {str(s): 0 for s in Severity}
        for f in self.findings:
            out[str(f.severity)] += 1
        return out

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    def fails(self, level: Severity) -> bool:
        return any(f.severity >= level for f in self.findings)


def finding_id(path: str, rule: str, detector: str, part: str, evidence: str) -> str:
    """The stable ID of a finding (see the module docstring)."""
    digest = hashlib.sha256(
        "\0".join((path, rule, detector, part, evidence)).encode("utf-8")
    ).hexdigest()
    return "OVR-" + digest[:16]


def rule_finding(path: str, rule: str, s: Signal) -> Finding:
    """The finding of signal ``s`` about ``rule`` in the file ``path``."""
    return Finding(
        finding_id(path, rule, s.detector, s.part, s.evidence),
        s.severity,
        s.detector,
        rule,
        path,
        s.line,
        s.part,
        s.evidence,
        s.reason,
    )


def file_finding(
    path: str, detector: str, severity: Severity, line: int, evidence: str, reason: str
) -> Finding:
    """A finding about the file ``path`` itself (no rule; part ``file``)."""
    return rule_finding(path, "", Signal(detector, severity, "file", line, evidence, reason))


def sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per ID, worst first, then by place."""
    uniq = {f.id: f for f in findings}
    return sorted(
        uniq.values(), key=lambda f: (-f.severity, f.path, f.line, f.rule, f.detector, f.id)
    )


def add_refused(report: Report, refused: Iterable[Refused]) -> None:
    """Report files the loader refused to read as ``outside-tree`` findings (in
    place of the ``include-unresolved`` finding the same include would give)."""
    refused = list(refused)
    if not refused:
        return
    outside = {(r.path, r.line, r.target) for r in refused}
    findings = [
        f
        for f in report.findings
        if not (f.detector == "include-unresolved" and (f.path, f.line, f.evidence) in outside)
    ]
    for r in refused:
        findings.append(
            file_finding(
                r.path,
                "outside-tree",
                Severity.MEDIUM,
                max(r.line, 1),
                r.target,
                f"{r.reason}: not read (only the files given, and what they include "
                "inside their folders, are audited)",
            )
        )
    report.findings = sorted_findings(findings)


def audit_predicate(report: Report, fail_on: Severity = Severity.HIGH) -> dict[str, object]:
    """The in-toto predicate of an audit (type :data:`PREDICATE_TYPE`).

    Pure: the same report gives the same dict. See the module docstring.
    """
    return {
        "bundle": {"name": report.name, "sha256": report.sha256},
        "auditor": {"name": "overt", "version": report.tool_version},
        "policy": {"fail_on": str(fail_on), "dynamic": report.dynamic},
        "result": "fail" if report.fails(fail_on) else "pass",
        "counts": report.counts(),
        "files": report.files,
        "rules": report.rules,
        "findings": sorted(f.id for f in report.findings),
    }
