"""The real rule corpora (~7,000 rules by others) as negatives.

Both corpora are audited in one run (static + dynamic): no finding may be high
or critical, and every lower finding must belong to a class explained below in
one sentence. The counts per corpus and severity are printed (``pytest -s``).
The corpora are not redistributed with overt: the ``corpora`` fixture (``tests/conftest.py``)
finds them, or skips with the reason (and fails under ``CI=true``).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from overt.rules import Severity, audit_paths

CORPORA = ("reversinglabs", "signature-base")

# (detector, severity) -> why a real malware rule gets it. Every class found in
# the corpora must be here.
EXPLAINED = {
    ("singling-out", "info"): "a malware rule quotes a path in the malware author's profile "
    "folder (a PDB or build path), and the rule also has malicious indicators",
    ("singling-out", "low"): "a rule quotes a /home/<name>/ or C:\\Users\\<name>\\ path found in "
    "the malware (an author's build path), or compares the file owner with a service account "
    "(confluence), not with a person",
    ("empty-file", "info"): "the file holds only comments or imports, no rules",
    ("codename-list", "low"): "upper-case identifiers of the malware itself, in a rule that "
    "also has malicious indicators",
    ("document-content", "low"): "lure text quoted in a malicious-document rule that also has "
    "macro or exploit indicators",
    ("canary-any", "low"): "a generic rule that fires on documents and executables alike",
    ("canary-document", "low"): "a false positive on an ordinary document in a rule that has "
    "malicious indicators",
    ("marking-ambiguous", "low"): "a lone word such as CONFIDENTIAL in a rule with malicious "
    "indicators (phishing lure text)",
}


def test_real_corpora_have_no_high_findings(corpora: Path) -> None:
    roots = [corpora / name for name in CORPORA]
    start = time.perf_counter()
    report = audit_paths(roots, dynamic=True)
    elapsed = time.perf_counter() - start

    counts: Counter[tuple[str, str]] = Counter()
    classes: Counter[tuple[str, str]] = Counter()
    for f in report.findings:
        counts[(f.path.split("/", 1)[0], str(f.severity))] += 1
        classes[(f.detector, str(f.severity))] += 1
    print(
        f"\naudited {report.files} files, {report.rules} rules in {elapsed:.1f} s (static + dynamic)"
    )
    for corpus in CORPORA:
        row = ", ".join(f"{s}={counts[(corpus, str(s))]}" for s in Severity)
        print(f"  {corpus}: {row}")
    for (det, sev), n in sorted(classes.items()):
        print(f"  {n:4d} x {sev:6s} {det}: {EXPLAINED.get((det, sev), 'UNEXPLAINED')}")

    assert report.rules > 6000 and report.files > 1000
    assert {f.path.split("/", 1)[0] for f in report.findings} <= set(CORPORA)
    bad = [f for f in report.findings if f.severity >= Severity.HIGH]
    assert not bad, [(f.path, f.rule, f.detector, f.evidence) for f in bad[:10]]
    unexplained = set(classes) - set(EXPLAINED)
    assert not unexplained, unexplained
    # no rule file of the corpora is unauditable or fails to compile
    assert not [f for f in report.findings if f.detector in ("unauditable", "compile-error")]
