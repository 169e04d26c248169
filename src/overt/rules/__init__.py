"""Detection-rule transparency: audit YARA rules for collection and targeting.

A threat-detection rule runs with access to every file on every customer
machine. A rule that looks for classification markings, code names, one
organisation's documents or one user -- instead of malware -- turns an
antivirus into a search engine. This package finds such rules:

- ``bundle``: rule files from folders, files and archives, bounded and inside their tree;
- ``limits``: the shape of a file (depth, condition length, includes), measured first;
- ``parse``: YARA files to a parser-independent model (yaramod, plyara fallback),
  run in worker processes (``_sandbox``, ``_worker``) so that a crash is a finding;
- ``decode``: what each string really matches (wide, nocase, hex, base64, xor, regex);
- ``requirements`` / ``classify``: what a condition needs, what each string is;
- ``context``: what every detector needs to know about one rule, computed once;
- ``detectors``: the detectors, one plug-in module each, and their registry;
  ``signals``: the severity scale and how signals are weighed; ``markings``;
- ``canary`` / ``dynamic`` / ``construct``: canaries and constructed samples scanned
  with yara-x, compiled in batches;
- ``audit``: the audit in three steps, ``reading`` (texts, includes), ``running``
  (the worker processes) and ``findings`` (stable finding IDs, the predicate);
- ``report``: text, JSON and SARIF 2.1.0 output;
- ``diff``: what changed between two bundles, audited alone.

Example::

    >>> from overt.rules import audit_sources
    >>> audit_sources({"r.yar": b'rule r { strings: $a = "x" condition: $a }'}, dynamic=False).counts()
    {'info': 0, 'low': 0, 'medium': 0, 'high': 0, 'critical': 0}

The names below are re-exported lazily (imported on first use), so importing
the package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.rules.audit import (
        PREDICATE_TYPE,
        Finding,
        Report,
        audit_bundle_bytes,
        audit_paths,
        audit_predicate,
        audit_sources,
        finding_id,
        read_bundle,
    )
    from overt.rules.detectors import Severity
    from overt.rules.diff import BundleDiff, RuleChange, diff_bundles, diff_paths
    from overt.rules.report import format_json, format_sarif, format_text

__all__ = [
    "PREDICATE_TYPE",
    "BundleDiff",
    "Finding",
    "Report",
    "RuleChange",
    "Severity",
    "audit_bundle_bytes",
    "audit_paths",
    "audit_predicate",
    "audit_sources",
    "diff_bundles",
    "diff_paths",
    "finding_id",
    "format_json",
    "format_sarif",
    "format_text",
    "read_bundle",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.rules.audit": [
                "PREDICATE_TYPE",
                "Finding",
                "Report",
                "audit_bundle_bytes",
                "audit_paths",
                "audit_predicate",
                "audit_sources",
                "finding_id",
                "read_bundle",
            ],
            "overt.rules.detectors": ["Severity"],
            "overt.rules.diff": ["BundleDiff", "RuleChange", "diff_bundles", "diff_paths"],
            "overt.rules.report": ["format_json", "format_sarif", "format_text"],
        },
    )
