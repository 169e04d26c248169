"""Render an audit :class:`~overt.rules.audit.Report` as text, JSON or SARIF 2.1.0.

Text, one finding per line (then a summary line)::

    high OVR-1a2b3c4d5e6f7a8b rules/x.yar:12 RuleName $s1 [marking] NOFORN [text]: matches ...

JSON: ``{"bundle", "sha256", "tool_version", "files", "rules", "counts", "findings": [...]}``.

SARIF: one run, tool ``overt-rules``, one ``reportingDescriptor`` per detector,
each finding a ``result`` with ``level`` (critical/high -> error, medium ->
warning, low/info -> note), the file and line, and the finding ID as
``partialFingerprints["overtFindingId/v1"]`` so code-scanning keeps a finding's
identity across runs. Spec: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html
"""

from __future__ import annotations

import json

from overt.rules.audit import Report
from overt.rules.detectors import DETECTORS, Severity

__all__ = ["SARIF_SCHEMA", "format_json", "format_sarif", "format_text"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

# Read from the registry, so that a new detector is described where it is defined.
_DETECTOR_HELP = {name: d.help for name, d in DETECTORS.items()}


def format_text(report: Report) -> str:
    """One line per finding, worst first, then a summary line."""
    lines = []
    for f in report.findings:
        where = f"{f.path}:{f.line}"
        rule = f.rule or "-"
        lines.append(
            f"{f.severity} {f.id} {where} {rule} {f.part} [{f.detector}] {f.evidence}: {f.reason}"
        )
    counts = report.counts()
    summary = ", ".join(f"{counts[str(s)]} {s}" for s in reversed(Severity))
    lines.append(
        f"{report.files} files, {report.rules} rules audited ({'static + dynamic' if report.dynamic else 'static'}): {summary}"
    )
    return "\n".join(lines) + "\n"


def format_json(report: Report) -> str:
    doc = {
        "bundle": report.name,
        "sha256": report.sha256,
        "tool_version": report.tool_version,
        "dynamic": report.dynamic,
        "files": report.files,
        "rules": report.rules,
        "counts": report.counts(),
        "findings": [f.as_dict() for f in report.findings],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _level(sev: Severity) -> str:
    if sev >= Severity.HIGH:
        return "error"
    if sev == Severity.MEDIUM:
        return "warning"
    return "note"


def format_sarif(report: Report) -> str:
    detectors = sorted({f.detector for f in report.findings} | set(_DETECTOR_HELP))
    rules = [
        {
            "id": d,
            "name": d.replace("-", " ").title().replace(" ", ""),
            "shortDescription": {"text": _DETECTOR_HELP.get(d, d)},
        }
        for d in detectors
    ]
    index = {d: i for i, d in enumerate(detectors)}
    results = []
    for f in report.findings:
        results.append(
            {
                "ruleId": f.detector,
                "ruleIndex": index[f.detector],
                "level": _level(f.severity),
                "message": {"text": f"{f.rule or f.path}: {f.reason} ({f.part}: {f.evidence})"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f.path},
                            "region": {"startLine": max(1, f.line)},
                        },
                        "logicalLocations": [{"name": f.rule, "kind": "function"}]
                        if f.rule
                        else [],
                    }
                ],
                "partialFingerprints": {"overtFindingId/v1": f.id},
                "properties": {"severity": str(f.severity), "part": f.part, "evidence": f.evidence},
            }
        )
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "overt-rules",
                        "version": report.tool_version,
                        "informationUri": "https://overt.dev/rule-audit/v1",
                        "rules": rules,
                    }
                },
                "results": results,
                "properties": {
                    "bundle": report.name,
                    "sha256": report.sha256,
                    "counts": report.counts(),
                },
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
