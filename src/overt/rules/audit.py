"""Audit a rule bundle: read, run (parse, detect, compile, scan), report findings.

A *bundle* is a set of rule files: the files and folders given on the command
line, or one logged publication (a ``.yar`` text, a tar, tar.gz or zip of rule
files) -- :mod:`overt.rules.bundle` reads them all the same way, for ``audit``,
``diff`` and ``attest``. The audit is three steps:

- **reading** (:mod:`overt.rules.reading`): texts, and includes resolved
  relative to the including file, inside the bundle;
- **running** (:mod:`overt.rules.running`): parsing, the static detectors
  (:mod:`overt.rules.detectors`) and yara-x in worker processes
  (:mod:`overt.rules._sandbox`);
- **reporting** (:mod:`overt.rules.findings`): signals weighed
  (:func:`~overt.rules.signals.escalate`) into findings with stable IDs.

Every file is audited on its own, so one bad file (unparseable, empty,
binary, too large, too deep, or one that crashes or hangs a worker) becomes a
finding for that file while the rest of the bundle is still audited; an
include that cannot be resolved is a finding and the rest of the file is
still audited.

Example::

    >>> r = audit_sources({"a.yar": b'rule r { strings: $a = "NOFORN" condition: $a }'}, dynamic=False)
    >>> [(f.rule, f.detector, str(f.severity)) for f in r.findings]
    [('r', 'marking', 'high')]

Finding IDs and the attestation predicate: :mod:`overt.rules.findings`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

import overt.rules.canary as canary_mod
import overt.rules.reading as reading
from overt.rules.bundle import MAX_BUNDLE_FILES, RULE_SUFFIXES, load_paths, read_bundle
from overt.rules.detectors import canary_hits, constructed_proof
from overt.rules.findings import (
    PREDICATE_TYPE,
    Finding,
    Report,
    add_refused,
    audit_predicate,
    file_finding,
    finding_id,
    rule_finding,
    sorted_findings,
)
from overt.rules.limits import DEFAULT_LIMITS, Limits
from overt.rules.running import Dynamic, StaticResult, run_dynamic, run_static, static_results
from overt.rules.signals import Severity, Signal, escalate

__all__ = [
    "MAX_BUNDLE_FILES",
    "PREDICATE_TYPE",
    "RULE_SUFFIXES",
    "Finding",
    "Report",
    "StaticResult",
    "add_refused",
    "audit_bundle_bytes",
    "audit_paths",
    "audit_predicate",
    "audit_sources",
    "finding_id",
    "read_bundle",
    "static_results",
]


def audit_sources(
    sources: Mapping[str, bytes],
    *,
    name: str = "bundle",
    sha256: str | None = None,
    dynamic: bool = True,
    corpus: Iterable[canary_mod.Canary] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Report:
    """Audit a bundle given as ``{path inside the bundle: bytes}``.

    The native parsers and yara-x run in worker processes
    (:mod:`overt.rules._sandbox`) under ``limits``. Never raises for bad rule
    files: each becomes a finding for that file (``unauditable`` when it is
    too deep, too long, or crashes or hangs a worker).
    """
    report = Report(name=name, sha256=sha256 or reading.bundle_digest(sources), dynamic=dynamic)
    report.files = len(sources)
    texts, findings = reading.read_texts(sources)
    corpus_list = list(corpus) if corpus is not None else None
    static, dyn = run_static(texts, dynamic=dynamic, corpus=corpus_list, limits=limits)

    parsed: dict[str, StaticResult] = {}  # the files a parser accepted
    contexts: dict[tuple[str, str], bool] = {}
    rule_lines: dict[tuple[str, str], int] = {}
    rule_signals: dict[tuple[str, str], list[Signal]] = {}
    for path in sorted(texts):
        res = static[path]
        if res.error:
            findings.append(
                file_finding(
                    path,
                    "unauditable",
                    Severity.HIGH,
                    1,
                    res.error,
                    "no parser accepts the file, it exceeds the auditor's limits, or it crashed or "
                    "hung a parser; its rules were not audited",
                )
            )
            continue
        parsed[path] = res
        findings += _include_findings(path, res.includes, sources)
        if not res.rules:
            findings.append(reading.empty_file(path))
        for rule_name, line, has_ind, signals in res.rules:
            report.rules += 1
            contexts[(path, rule_name)] = has_ind
            rule_lines[(path, rule_name)] = line
            rule_signals[(path, rule_name)] = signals

    if dynamic and parsed:
        # Compiled with their includes inlined from the bundle (the others were compiled
        # by the workers as they parsed them). A file of includes only (an index of the
        # bundle) holds no rule of its own to run: its includes were compiled on their own.
        included = [p for p in parsed if parsed[p].includes and parsed[p].rules]
        if included:
            room = [reading.INLINE_MAX]
            inputs = [
                (p, reading.inline(p, texts, static, sources, frozenset({p}), room))
                for p in included
            ]
            samples = [
                (p, r, b64)
                for p in included
                for r, (b64, _what) in sorted(static[p].samples.items())
            ]
            more = run_dynamic(inputs, samples, corpus=corpus_list, limits=limits)
            findings += _dynamic_failures(more)
            dyn.errors.update(more.errors)
            dyn.proofs |= more.proofs
            for key, names in more.hits.items():
                dyn.hits.setdefault(key, set()).update(names)
        findings += [
            file_finding(
                path,
                "compile-error",
                Severity.MEDIUM,
                1,
                msg,
                "yara-x does not compile the file, so it was audited statically only",
            )
            for path, msg in sorted(dyn.errors.items())
            if path in parsed  # the others are already reported as unauditable
        ]
        _add_dynamic_signals(
            dyn, static, parsed, sources, corpus_list, contexts, rule_lines, rule_signals
        )

    for (path, rule_name), signals in rule_signals.items():
        for s in escalate(signals, contexts.get((path, rule_name), False)):
            findings.append(rule_finding(path, rule_name, s))
    report.findings = sorted_findings(findings)
    return report


def _include_findings(
    path: str, includes: Iterable[tuple[int, str]], sources: Mapping[str, bytes]
) -> list[Finding]:
    return [
        file_finding(
            path,
            "include-unresolved",
            Severity.MEDIUM,
            line,
            target,
            "the included file is not in the bundle; its rules were not audited (the rest of "
            "this file was)",
        )
        for line, target in includes
        if reading.resolve(path, target, sources) is None
    ]


def _dynamic_failures(dyn: Dynamic) -> list[Finding]:
    return [
        file_finding(
            path,
            "unauditable",
            Severity.HIGH,
            1,
            why,
            "yara-x could not compile or scan the file; a rule nobody can run cannot be cleared",
        )
        for path, why in sorted(dyn.failed.items())
    ]


def _add_dynamic_signals(
    dyn: Dynamic,
    static: Mapping[str, StaticResult],
    parsed: Mapping[str, StaticResult],
    sources: Mapping[str, bytes],
    corpus: list[canary_mod.Canary] | None,
    contexts: Mapping[tuple[str, str], bool],
    rule_lines: Mapping[tuple[str, str], int],
    rule_signals: dict[tuple[str, str], list[Signal]],
) -> None:
    """The canary and constructed-proof signals of each rule, added to ``rule_signals``."""
    by_name = {c.name: c for c in (corpus or canary_mod.canaries())}
    # A rule compiled in several namespaces (through includes) is one rule.
    merged: dict[tuple[str, str], set[str]] = {}
    for (path, rule_name), names_hit in dyn.hits.items():
        key = reading.owner_of(path, rule_name, parsed, sources)
        if key is not None:
            merged.setdefault(key, set()).update(n for n in names_hit if n in by_name)
    for path, rule_name in sorted(dyn.proofs):
        if path not in static or rule_name not in static[path].samples:
            continue  # a worker's reply proves only the samples asked for
        b64, what = static[path].samples[rule_name]
        key = (path, rule_name)
        proof = constructed_proof.signal(
            b64, what, rule_signals.get(key, []), rule_lines.get(key, 1)
        )
        rule_signals.setdefault(key, []).append(proof)
    for key, names_hit in merged.items():
        res = static.get(key[0])
        sigs = canary_hits.signals(
            names_hit,
            by_name,
            contexts.get(key, False),
            rule_lines.get(key, 1),
            res is not None and key[1] in res.contentless,
        )
        rule_signals.setdefault(key, []).extend(sigs)


def audit_bundle_bytes(
    name: str, data: bytes, *, dynamic: bool = True, limits: Limits = DEFAULT_LIMITS
) -> Report:
    """Audit one logged rule bundle (what the log monitor calls per entry).

    The report's ``sha256`` is the digest of ``data`` itself, so that an
    attestation binds exactly the logged bytes.

    Raises:
        FormatError: an archive that cannot be read at all.
    """
    sources = read_bundle(name, data)
    return audit_sources(
        sources, name=name, sha256=hashlib.sha256(data).hexdigest(), dynamic=dynamic, limits=limits
    )


def audit_paths(
    paths: Iterable[str | Path], *, dynamic: bool = True, limits: Limits = DEFAULT_LIMITS
) -> Report:
    """Audit rule files, folders (recursively) or one archive on disk
    (:func:`overt.rules.bundle.load_paths`).

    Includes are followed on disk inside the audited tree only; an include or
    a symlink that leads out of it is an ``outside-tree`` finding and is not
    read.

    Raises:
        ConfigError: a path that does not exist or cannot be read, or no rule
            file at all.
        FormatError: an unreadable archive.
    """
    bundle = load_paths(paths)
    digest = hashlib.sha256(bundle.data).hexdigest() if bundle.data is not None else None
    report = audit_sources(
        bundle.sources, name=bundle.name, sha256=digest, dynamic=dynamic, limits=limits
    )
    add_refused(report, bundle.refused)
    return report
