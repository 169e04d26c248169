"""Findings about a file rather than a rule: the audit itself emits them.

``unauditable`` (high: a rule nobody can read cannot be cleared),
``include-unresolved`` and ``outside-tree`` (medium), ``compile-error``
(medium: audited statically only) and ``empty-file`` (info). The reading
and running steps of the audit (:mod:`overt.rules.reading`,
:mod:`overt.rules.running`) report them; they are registered here so that
SARIF and ``--help`` describe them like every other detector.
"""

from __future__ import annotations

from overt.rules.signals import Detector

__all__ = ["DETECTORS"]

DETECTORS = (
    Detector(
        "unauditable",
        "A file no parser accepts, beyond the auditor's limits, or that crashed or hung a "
        "parser (or not YARA text at all).",
    ),
    Detector("include-unresolved", "An include that is not in the bundle."),
    Detector(
        "outside-tree", "An include or symlink that leads out of the audited tree (not read)."
    ),
    Detector("compile-error", "A file yara-x does not compile (audited statically only)."),
    Detector("empty-file", "A file with no rules."),
)
