"""What changed between two rule bundles, down to strings and conditions.

This is what a reviewer at a transparency center reads per update: which
rules were added, removed or changed, and for a changed rule which strings,
condition, metadata or tags changed. Only the files holding added or changed
rules (and what they include) are audited, and only findings about those
rules (and about those files) are kept.

Rules are matched by name; a name defined in several files of a bundle is
matched by ``path:name`` instead. Output of :func:`format_diff`::

    ~ rule Foo (rules/a.yar:3)
        - $a = "old"
        + $a = "new" wide
        condition: $a  ->  $a and filesize < 1MB
    + rule Bar (rules/b.yar:10)
    - rule Baz (rules/a.yar:40)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from overt.rules.audit import Report, add_refused, audit_sources, static_results
from overt.rules.bundle import load_bundle
from overt.rules.parse import Rule, RuleParseError, decode_source, find_includes

__all__ = ["BundleDiff", "RuleChange", "diff_bundles", "diff_paths", "format_diff", "load_side"]


@dataclass(frozen=True)
class RuleChange:
    """One added (``+``), removed (``-``) or changed (``~``) rule."""

    kind: str
    name: str
    path: str
    line: int
    details: tuple[str, ...] = ()


@dataclass
class BundleDiff:
    changes: list[RuleChange] = field(default_factory=list)
    report: Report | None = None

    def of_kind(self, kind: str) -> list[RuleChange]:
        return [c for c in self.changes if c.kind == kind]


def _rules(sources: Mapping[str, bytes]) -> dict[str, Rule]:
    texts: dict[str, str] = {}
    for path in sorted(sources):
        try:
            texts[path] = decode_source(path, sources[path])
        except RuleParseError:
            continue  # the audit of the new side reports unreadable files
    # Parsed in the worker processes: a hostile old or new side is unreadable, not a crash.
    rules: list[Rule] = []
    for _path, res in sorted(static_results(texts, analyse=False).items()):
        if res.pf is not None:
            rules.extend(res.pf.rules)
    counts: dict[str, int] = {}
    for r in rules:
        counts[r.name] = counts.get(r.name, 0) + 1
    return {(r.name if counts[r.name] == 1 else f"{r.path}:{r.name}"): r for r in rules}


def _rule_details(old: Rule, new: Rule) -> list[str]:
    out: list[str] = []
    olds = {s.identifier: s.source for s in old.strings}
    news = {s.identifier: s.source for s in new.strings}
    for ident in sorted(set(olds) | set(news)):
        if ident not in news:
            out.append(f"- {ident} = {olds[ident]}")
        elif ident not in olds:
            out.append(f"+ {ident} = {news[ident]}")
        elif olds[ident] != news[ident]:
            out.append(f"- {ident} = {olds[ident]}")
            out.append(f"+ {ident} = {news[ident]}")
    if " ".join(old.condition.split()) != " ".join(new.condition.split()):
        out.append(
            f"condition: {' '.join(old.condition.split())}  ->  {' '.join(new.condition.split())}"
        )
    om, nm = dict(old.metas), dict(new.metas)
    for key in sorted(set(om) | set(nm)):
        if om.get(key) != nm.get(key):
            out.append(f"meta {key}: {om.get(key)!r} -> {nm.get(key)!r}")
    if old.tags != new.tags:
        out.append(f"tags: {' '.join(old.tags)} -> {' '.join(new.tags)}")
    if (old.private, old.global_) != (new.private, new.global_):
        out.append(f"scope: private={new.private} global={new.global_}")
    return out


def diff_bundles(
    old: Mapping[str, bytes], new: Mapping[str, bytes], *, dynamic: bool = True
) -> BundleDiff:
    """Compare two bundles (``{path: bytes}``) and audit what changed in ``new``."""
    a, b = _rules(old), _rules(new)
    changes: list[RuleChange] = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            r = b[key]
            changes.append(RuleChange("+", r.name, r.path, r.line))
        elif key not in b:
            r = a[key]
            changes.append(RuleChange("-", r.name, r.path, r.line))
        else:
            details = _rule_details(a[key], b[key])
            if details:
                r = b[key]
                changes.append(RuleChange("~", r.name, r.path, r.line, tuple(details)))
    touched = {(c.path, c.name) for c in changes if c.kind in "+~"}
    # Files that changed but hold no parsable rule (now unreadable) are audited too.
    changed_files = {p for p in new if old.get(p) != new[p]}
    files = {p for p, _ in touched} | {
        p for p in changed_files if not any(r.path == p for r in b.values())
    }
    subset = _with_includes(files, new)
    report = audit_sources(subset, name="diff", dynamic=dynamic)
    report.findings = [
        f
        for f in report.findings
        if (f.path, f.rule) in touched or (not f.rule and f.path in files)
    ]
    return BundleDiff(changes, report)


def _with_includes(files: set[str], sources: Mapping[str, bytes]) -> dict[str, bytes]:
    import posixpath

    out: dict[str, bytes] = {}
    todo = sorted(files)
    while todo:
        p = todo.pop()
        if p in out or p not in sources:
            continue
        out[p] = sources[p]
        for _line, target in find_includes(sources[p].decode("utf-8", "replace")):
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(p), target)))
    return out


def load_side(path: str | Path) -> dict[str, bytes]:
    """One side of a diff: a folder of rule files, a rule file, or an archive
    (:func:`overt.rules.bundle.load_bundle`, bounded and inside its tree).

    Raises:
        overt.errors.ConfigError: the path does not exist or holds no rule file.
        overt.errors.FormatError: an unreadable archive.
    """
    return load_bundle(path).sources


def diff_paths(old: str | Path, new: str | Path, *, dynamic: bool = True) -> BundleDiff:
    """:func:`diff_bundles` on two folders, rule files or archives; what the new
    side's loader refused to read (out of its tree) is an ``outside-tree`` finding."""
    newer = load_bundle(new)
    d = diff_bundles(load_side(old), newer.sources, dynamic=dynamic)
    if d.report is not None:
        add_refused(d.report, newer.refused)
    return d


def format_diff(d: BundleDiff) -> str:
    lines = []
    for c in d.changes:
        lines.append(f"{c.kind} rule {c.name} ({c.path}:{c.line})")
        lines.extend(f"    {x}" for x in c.details)
    added, removed, changed = len(d.of_kind("+")), len(d.of_kind("-")), len(d.of_kind("~"))
    lines.append(f"{added} added, {removed} removed, {changed} changed")
    return "\n".join(lines) + "\n"
