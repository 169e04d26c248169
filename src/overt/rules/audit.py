"""Audit a rule bundle: parse, detect statically, scan canaries, report findings.

A *bundle* is a set of rule files: the files and folders given on the command
line, or one logged publication (a ``.yar`` text, a tar, tar.gz or zip of rule
files). Every file is audited on its own, so one bad file (unparseable, empty,
binary, too large) becomes a finding for that file while the rest of the
bundle is still audited. Includes are resolved relative to the including file,
inside the bundle; an include that cannot be resolved is a finding and the
rest of the file is still audited. Parsing, the static detectors and yara-x
run in worker processes (:mod:`overt.rules._sandbox`): a file that is too
deep (:mod:`overt.rules.limits`), or that crashes or hangs a worker, is an
``unauditable`` finding, and the audit goes on.

Finding IDs are stable: ``OVR-`` + the first 16 hex digits of
``sha256(path NUL rule NUL detector NUL part NUL evidence)``, where ``path`` is
the file's path inside the bundle. The same rule in the same place with the
same problem keeps its ID across runs, machines and bundle versions.

Example::

    >>> r = audit_sources({"a.yar": b'rule r { strings: $a = "NOFORN" condition: $a }'}, dynamic=False)
    >>> [(f.rule, f.detector, str(f.severity)) for f in r.findings]
    [('r', 'marking', 'high')]

Attestation predicate (``audit_predicate``), type
``https://overt.dev/rule-audit/v1``::

    {"bundle": {"name": str, "sha256": hex},
     "auditor": {"name": "overt", "version": str},
     "policy": {"fail_on": "high"},
     "result": "pass" | "fail",
     "counts": {"info": n, "low": n, "medium": n, "high": n, "critical": n},
     "files": n, "rules": n,
     "findings": [finding ID, ...]}   # sorted

``result`` is ``fail`` when any finding reaches ``fail_on``. The predicate is a
pure function of the report; ``overt rules attest`` wraps it in an in-toto
statement whose subject is the bundle digest.
"""

from __future__ import annotations

import hashlib
import itertools
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import overt.rules._sandbox as _sandbox
import overt.rules._worker as _wire
import overt.rules.canary as canary_mod
from overt import __version__
from overt.rules.bundle import (
    MAX_BUNDLE_FILES,
    RULE_SUFFIXES,
    Refused,
    load_paths,
    read_bundle,
)
from overt.rules.detectors import Severity, Signal, escalate
from overt.rules.limits import DEFAULT_LIMITS, Limits
from overt.rules.parse import (
    MAX_FILE_BYTES,
    ParsedFile,
    RuleParseError,
    blank_includes,
    decode_source,
)

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


def _finding(path: str, rule: str, s: Signal) -> Finding:
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


def _file_finding(
    path: str, detector: str, severity: Severity, line: int, evidence: str, reason: str
) -> Finding:
    return Finding(
        finding_id(path, "", detector, "file", evidence),
        severity,
        detector,
        "",
        path,
        line,
        "file",
        evidence,
        reason,
    )


def _bundle_digest(sources: Mapping[str, bytes]) -> str:
    """sha256 over the sorted ``path NUL sha256(content)`` lines of a bundle
    given as separate files (a single archive is hashed as its bytes)."""
    h = hashlib.sha256()
    for path in sorted(sources):
        h.update(
            path.encode("utf-8")
            + b"\0"
            + hashlib.sha256(sources[path]).hexdigest().encode()
            + b"\n"
        )
    return h.hexdigest()


# -- includes ------------------------------------------------------------------------------


def _resolve(path: str, target: str, sources: Mapping[str, bytes]) -> str | None:
    base = posixpath.dirname(path)
    cand = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    return cand if cand in sources else None


#: Inlined includes may add this much text to the compile input of a whole bundle.
_INLINE_MAX = 4 * MAX_FILE_BYTES
#: Includes nested deeper than this are blanked (a chain of thousands of files would
#: otherwise recurse that deep).
_INCLUDE_DEPTH = 16


@dataclass
class StaticResult:
    """What a worker found in one file (see :mod:`overt.rules._worker`)."""

    path: str
    pf: ParsedFile | None
    error: str = ""
    spans: list[tuple[int, int]] = field(default_factory=list)
    rules: list[tuple[str, int, bool, list[Signal]]] = field(default_factory=list)
    #: rules none of whose patterns holds readable text
    contentless: frozenset[str] = frozenset()
    #: rule -> (constructed benign sample, base64; what it holds)
    samples: dict[str, tuple[str, str]] = field(default_factory=dict)


def _decode_static(item: object) -> StaticResult:
    if not isinstance(item, dict):
        raise ValueError("not an object")
    path = item["path"]
    if not isinstance(path, str):
        raise ValueError("path is not a string")
    if "error" in item:
        err = item["error"]
        return StaticResult(path, None, err if isinstance(err, str) else "unreadable")
    pf = _wire.decode_parsed(path, item["parsed"])
    spans = [(_wire._i(a), _wire._i(b)) for a, b in map(_wire._list, _wire._list(item["spans"]))]
    rules = [
        (
            _wire._s(name),
            _wire._i(line),
            _wire._b(ind),
            [_wire.decode_signal(s) for s in _wire._list(sigs)],
        )
        for name, line, ind, sigs in map(_wire._list, _wire._list(item["rules"]))
    ]
    contentless = frozenset(_wire._s(n) for n in _wire._list(item.get("contentless", [])))
    samples = {
        _wire._s(r): (_wire._s(b), _wire._s(d))
        for r, b, d in map(_wire._list, _wire._list(item.get("samples", [])))
    }
    return StaticResult(path, pf, "", spans, rules, contentless, samples)


def _chunks(texts: Mapping[str, str]) -> int:
    # Below this much text one worker call costs less than splitting.
    big = sum(len(t) for t in texts.values()) >= 512 * 1024
    return _sandbox.WORKERS * 2 if big else 1


def static_results(
    texts: Mapping[str, str], *, analyse: bool = True, limits: Limits = DEFAULT_LIMITS
) -> dict[str, StaticResult]:
    """Parse (and analyse) every file in the worker processes: ``{path: result}``.

    A file that crashes, hangs or exhausts a worker gets ``pf=None`` and the
    reason as ``error``, like a file no parser accepts.
    """
    request = {
        "op": "static",
        "depth": limits.depth,
        "condition_tokens": limits.condition_tokens,
        "analyse": analyse,
    }
    outcome = _sandbox.run(request, list(texts.items()), chunks=_chunks(texts), limits=limits)
    out: dict[str, StaticResult] = {}
    for reply in outcome.replies:
        items = reply.get("files")
        for item in items if isinstance(items, list) else []:
            try:
                res = _decode_static(item)
            except (KeyError, TypeError, ValueError):
                continue  # the file is then reported as missing from the reply
            if res.path in texts:
                out[res.path] = res
    for path, why in outcome.failed.items():
        out[path] = StaticResult(path, None, why)
    for path in texts:
        if path not in out:
            out[path] = StaticResult(path, None, "the parser worker did not report on the file")
    return out


def _inline(
    path: str,
    texts: Mapping[str, str],
    static: Mapping[str, StaticResult],
    sources: Mapping[str, bytes],
    seen: frozenset[str],
    room: list[int],
) -> str:
    """The text with its resolvable includes inlined (for yara-x), the others blanked.

    ``room`` is the size all inlined text of the bundle may still grow by:
    includes that repeat a file (a diamond, many times over, or a long chain
    included by every file) cannot blow it up; beyond it, and beyond
    :data:`_INCLUDE_DEPTH` levels, includes are blanked.
    """
    text = texts[path]
    res = static[path]
    if res.pf is None or not res.pf.includes:
        return text
    spans = res.spans
    bounds = [0, *(x for span in spans for x in span), len(text)]
    ordered = all(x <= y for x, y in itertools.pairwise(bounds))
    if len(spans) != len(res.pf.includes) or not ordered:
        return blank_includes(text)  # the worker's spans are not trustworthy: measure here
    pieces: list[str] = []
    last = 0
    for (_line, target), (start, end) in zip(res.pf.includes, spans, strict=True):
        pieces.append(text[last:start])
        resolved = _resolve(path, target, sources)
        inner = static.get(resolved) if resolved is not None else None
        if (
            resolved is None
            or resolved in seen
            or inner is None
            or inner.pf is None
            or len(seen) > _INCLUDE_DEPTH
        ):
            pieces.append(blank_includes(text[start:end]))
        else:
            body = _inline(resolved, texts, static, sources, seen | {resolved}, room)
            if len(body) > room[0]:
                pieces.append(blank_includes(text[start:end]))
            else:
                room[0] -= len(body)
                pieces.append(body)
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


# -- auditing --------------------------------------------------------------------------------


def _dynamic_signals(
    hits: set[str],
    corpus: dict[str, canary_mod.Canary],
    has_indicators: bool,
    line: int,
    contentless: bool = False,
) -> list[Signal]:
    marked = {n for n in hits if corpus[n].kind == "marked"}
    clean = {n for n in hits if corpus[n].kind == "clean"}
    execs = {n for n in hits if corpus[n].kind == "executable"}
    out: list[Signal] = []
    keyed = sorted(n for n in marked if corpus[n].twin not in hits)
    if keyed and contentless:
        # A shape regex (base64, hex) that happens to fit a long word of the
        # marked canary is not keyed to markings: no pattern holds any text.
        out.append(
            Signal(
                "canary-marked",
                Severity.INFO,
                "dynamic",
                line,
                ", ".join(keyed),
                "fires on marked canary documents but not on their clean twins, yet no "
                "pattern holds readable text: a character-class shape that fits the canary",
                content=False,
            )
        )
        keyed = []
    elif keyed:
        out.append(
            Signal(
                "canary-marked",
                Severity.HIGH,
                "dynamic",
                line,
                ", ".join(keyed),
                "fires on marked canary documents but not on their clean twins: keyed to "
                "markings or sensitive content",
                content=False,
            )
        )
    docs = sorted((marked | clean) - set(keyed))
    if docs and execs:
        out.append(
            Signal(
                "canary-any",
                Severity.LOW,
                "dynamic",
                line,
                ", ".join(docs + sorted(execs)),
                "fires on canary documents and on ordinary executables: matches almost "
                "anything, not targeting",
                content=False,
            )
        )
    elif clean:
        sev = Severity.LOW if has_indicators else Severity.MEDIUM
        why = (
            "a false positive on ordinary documents in a rule with malicious indicators"
            if has_indicators
            else "matches ordinary documents and has no malicious indicator"
        )
        out.append(
            Signal(
                "canary-document",
                sev,
                "dynamic",
                line,
                ", ".join(sorted(clean)),
                f"fires on clean canary documents: {why}",
                content=False,
            )
        )
    return out


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
    report = Report(name=name, sha256=sha256 or _bundle_digest(sources), dynamic=dynamic)
    findings: list[Finding] = []
    texts: dict[str, str] = {}
    parsed: dict[str, ParsedFile] = {}

    for path in sorted(sources):
        data = sources[path]
        if not data.strip():
            findings.append(
                _file_finding(
                    path, "empty-file", Severity.INFO, 1, "0 rules", "the file holds no rules"
                )
            )
            continue
        try:
            texts[path] = decode_source(path, data)
        except RuleParseError as err:
            findings.append(
                _file_finding(
                    path,
                    "unauditable",
                    Severity.HIGH,
                    1,
                    err.detail,
                    "the file cannot be audited; a rule nobody can read cannot be cleared",
                )
            )
    report.files = len(sources)

    # Parse and analyse in the worker processes (a crash there is a finding).
    static = static_results(texts, limits=limits)
    contexts: dict[tuple[str, str], bool] = {}
    rule_lines: dict[tuple[str, str], int] = {}
    rule_signals: dict[tuple[str, str], list[Signal]] = {}
    for path in sorted(texts):
        res = static[path]
        if res.pf is None:
            findings.append(
                _file_finding(
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
        pf = res.pf
        parsed[path] = pf
        for line, target in pf.includes:
            if _resolve(path, target, sources) is None:
                findings.append(
                    _file_finding(
                        path,
                        "include-unresolved",
                        Severity.MEDIUM,
                        line,
                        target,
                        "the included file is not in the bundle; its rules were "
                        "not audited (the rest of this file was)",
                    )
                )
        if not pf.rules:
            findings.append(
                _file_finding(
                    path, "empty-file", Severity.INFO, 1, "0 rules", "the file holds no rules"
                )
            )
        for rule_name, line, has_ind, signals in res.rules:
            report.rules += 1
            contexts[(path, rule_name)] = has_ind
            rule_lines[(path, rule_name)] = line
            rule_signals[(path, rule_name)] = signals

    if dynamic and parsed:
        room = [_INLINE_MAX]
        compile_inputs = [
            (p, _inline(p, texts, static, sources, frozenset({p}), room)) for p in parsed
        ]
        corpus_list = list(corpus) if corpus is not None else None
        request = {
            "op": "dynamic",
            "externals": sorted(_external_names(texts[p] for p in parsed)),
            "canaries": None
            if corpus_list is None
            else [_wire.encode_canary(c) for c in corpus_list],
            "samples": [
                [p, r, b64]
                for p in parsed
                if p in static
                for r, (b64, _what) in sorted(static[p].samples.items())
            ],
        }
        outcome = _sandbox.run(
            request,
            compile_inputs,
            chunks=_sandbox.WORKERS if _chunks(texts) > 1 else 1,
            limits=limits,
        )
        errors: dict[str, str] = {}
        hits: dict[tuple[str, str], set[str]] = {}
        proofs: set[tuple[str, str]] = set()
        for reply in outcome.replies:
            try:
                proven = [
                    (_wire._s(p), _wire._s(r))
                    for p, r in map(_wire._list, _wire._list(reply.get("proofs", [])))
                ]
            except (TypeError, ValueError):
                proven = []  # a malformed reply proves nothing
            proofs.update(k for k in proven if k[0] in static and k[1] in static[k[0]].samples)
            try:
                errs = reply["errors"]
                if not isinstance(errs, dict):
                    raise ValueError("errors")
                got = {_wire._s(k): _wire._s(v) for k, v in errs.items()}
                found = [
                    (_wire._s(p), _wire._s(r), [_wire._s(c) for c in _wire._list(names)])
                    for p, r, names in map(_wire._list, _wire._list(reply["hits"]))
                ]
            except (KeyError, TypeError, ValueError):
                continue
            errors.update(got)
            for p, r, names in found:
                hits.setdefault((p, r), set()).update(names)
        for path, why in sorted(outcome.failed.items()):
            findings.append(
                _file_finding(
                    path,
                    "unauditable",
                    Severity.HIGH,
                    1,
                    why,
                    "yara-x could not compile or scan the file; a rule nobody can run "
                    "cannot be cleared",
                )
            )
        for path, msg in sorted(errors.items()):
            if path not in parsed:
                continue  # already reported as unauditable
            findings.append(
                _file_finding(
                    path,
                    "compile-error",
                    Severity.MEDIUM,
                    1,
                    msg,
                    "yara-x does not compile the file, so it was audited statically only",
                )
            )
        by_name = {c.name: c for c in (corpus_list or canary_mod.canaries())}
        # A rule compiled in several namespaces (through includes) is one rule.
        merged: dict[tuple[str, str], set[str]] = {}
        for (path, rule_name), names_hit in hits.items():
            key = _owner_of(path, rule_name, parsed, sources)
            if key is not None:
                merged.setdefault(key, set()).update(n for n in names_hit if n in by_name)
        for path, rule_name in sorted(proofs):
            b64, what = static[path].samples[rule_name]
            worst = max(
                (s.severity for s in rule_signals.get((path, rule_name), [])),
                default=Severity.MEDIUM,
            )
            rule_signals.setdefault((path, rule_name), []).append(
                Signal(
                    "constructed-proof",
                    worst,
                    "dynamic",
                    rule_lines.get((path, rule_name), 1),
                    f"sample(base64)={b64}",
                    f"yara-x fires on a benign file built to hold only: {what} "
                    "(no executable content)",
                    content=False,
                )
            )
        for key, names_hit in merged.items():
            sigs = _dynamic_signals(
                names_hit,
                by_name,
                contexts.get(key, False),
                rule_lines.get(key, 1),
                key[1] in static[key[0]].contentless if key[0] in static else False,
            )
            rule_signals.setdefault(key, []).extend(sigs)

    for (path, rule_name), signals in rule_signals.items():
        for s in escalate(signals, contexts.get((path, rule_name), False)):
            findings.append(_finding(path, rule_name, s))
    uniq = {f.id: f for f in findings}
    report.findings = sorted(
        uniq.values(), key=lambda f: (-f.severity, f.path, f.line, f.rule, f.detector, f.id)
    )
    return report


def _owner_of(
    path: str, rule: str, parsed: Mapping[str, ParsedFile], sources: Mapping[str, bytes]
) -> tuple[str, str] | None:
    """The file that defines ``rule`` as compiled in ``path``'s namespace."""
    todo, seen = [path], set()
    while todo:
        p = todo.pop(0)
        if p in seen or p not in parsed:
            continue
        seen.add(p)
        if any(r.name == rule for r in parsed[p].rules):
            return (p, rule)
        for _line, target in parsed[p].includes:
            resolved = _resolve(p, target, sources)
            if resolved:
                todo.append(resolved)
    return None


def _external_names(texts: Iterable[str]) -> set[str]:
    """Identity-like external variables the files use (defined for yara-x)."""

    import overt.rules._lexicon as lex

    found: set[str] = set()
    rx = re.compile(
        r"(?<![.$#@!\w])("
        + "|".join(sorted(lex.IDENTITY_EXTERNALS, key=len, reverse=True))
        + r")\s*(?:==|!=|contains|icontains|matches|startswith|endswith|iequals|istartswith|iendswith)"
    )
    for text in texts:
        for m in rx.finditer(text):
            found.add(m.group(1))
    return found


# -- bundles ---------------------------------------------------------------------------------


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
            _file_finding(
                r.path,
                "outside-tree",
                Severity.MEDIUM,
                max(r.line, 1),
                r.target,
                f"{r.reason}: not read (only the files given, and what they include "
                "inside their folders, are audited)",
            )
        )
    report.findings = sorted(
        {f.id: f for f in findings}.values(),
        key=lambda f: (-f.severity, f.path, f.line, f.rule, f.detector, f.id),
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


# -- attestation predicate ----------------------------------------------------------------------


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
