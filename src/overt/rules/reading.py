"""Reading a bundle for the audit: file texts, and includes resolved inside the bundle.

Files, folders and archives are read into ``{path inside the bundle: bytes}``
by :mod:`overt.rules.bundle` (bounded, never out of the audited tree). This
module turns those bytes into texts -- an empty file or one that is not text
becomes a finding for that file, and the rest of the bundle is still audited
-- and resolves includes against the bundle's own files, relative to the
including file: :func:`inline` writes them into the text yara-x compiles
(it never opens a file), :func:`owner_of` finds the file that defines a rule
compiled in another file's namespace.

Pure: bytes and texts in, texts out; no I/O.
"""

from __future__ import annotations

import hashlib
import itertools
import posixpath
from collections.abc import Mapping
from typing import TYPE_CHECKING

from overt.rules.findings import Finding, file_finding
from overt.rules.parse import (
    MAX_FILE_BYTES,
    RuleParseError,
    blank_includes,
    decode_source,
)
from overt.rules.signals import Severity

if TYPE_CHECKING:
    from overt.rules.running import StaticResult

__all__ = [
    "INCLUDE_DEPTH",
    "INLINE_MAX",
    "bundle_digest",
    "empty_file",
    "inline",
    "owner_of",
    "read_texts",
    "resolve",
]

#: Inlined includes may add this much text to the compile input of a whole bundle.
INLINE_MAX = 4 * MAX_FILE_BYTES
#: Includes nested deeper than this are blanked (a chain of thousands of files would
#: otherwise recurse that deep).
INCLUDE_DEPTH = 16


def bundle_digest(sources: Mapping[str, bytes]) -> str:
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


def read_texts(sources: Mapping[str, bytes]) -> tuple[dict[str, str], list[Finding]]:
    """The text of every file that holds any (``{path: text}``), and the findings
    of the others: ``empty-file`` (info) or ``unauditable`` (high: binary, not
    UTF-8 or a legacy code page, or larger than the auditor reads)."""
    texts: dict[str, str] = {}
    findings: list[Finding] = []
    for path in sorted(sources):
        data = sources[path]
        if not data.strip():
            findings.append(empty_file(path))
            continue
        try:
            texts[path] = decode_source(path, data)
        except RuleParseError as err:
            findings.append(
                file_finding(
                    path,
                    "unauditable",
                    Severity.HIGH,
                    1,
                    err.detail,
                    "the file cannot be audited; a rule nobody can read cannot be cleared",
                )
            )
    return texts, findings


def empty_file(path: str) -> Finding:
    """The finding of a file that holds no rules."""
    return file_finding(path, "empty-file", Severity.INFO, 1, "0 rules", "the file holds no rules")


def resolve(path: str, target: str, sources: Mapping[str, bytes]) -> str | None:
    """The bundle path that ``include "target"`` in ``path`` names, or None when
    the bundle does not hold it."""
    base = posixpath.dirname(path)
    cand = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    return cand if cand in sources else None


def inline(
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
    :data:`INCLUDE_DEPTH` levels, includes are blanked.
    """
    text = texts[path]
    res = static[path]
    if res.error or not res.includes:
        return text
    spans = res.spans
    bounds = [0, *(x for span in spans for x in span), len(text)]
    ordered = all(x <= y for x, y in itertools.pairwise(bounds))
    if len(spans) != len(res.includes) or not ordered:
        return blank_includes(text)  # the worker's spans are not trustworthy: measure here
    pieces: list[str] = []
    last = 0
    for (_line, target), (start, end) in zip(res.includes, spans, strict=True):
        pieces.append(text[last:start])
        resolved = resolve(path, target, sources)
        inner = static.get(resolved) if resolved is not None else None
        if (
            resolved is None
            or resolved in seen
            or inner is None
            or inner.error
            or len(seen) > INCLUDE_DEPTH
        ):
            pieces.append(blank_includes(text[start:end]))
        else:
            body = inline(resolved, texts, static, sources, seen | {resolved}, room)
            if len(body) > room[0]:
                pieces.append(blank_includes(text[start:end]))
            else:
                room[0] -= len(body)
                pieces.append(body)
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def owner_of(
    path: str, rule: str, parsed: Mapping[str, StaticResult], sources: Mapping[str, bytes]
) -> tuple[str, str] | None:
    """The file that defines ``rule`` as compiled in ``path``'s namespace
    (``parsed``: the files a parser accepted)."""
    todo, seen = [path], set()
    while todo:
        p = todo.pop(0)
        if p in seen or p not in parsed:
            continue
        seen.add(p)
        if any(r[0] == rule for r in parsed[p].rules):
            return (p, rule)
        for _line, target in parsed[p].includes:
            resolved = resolve(p, target, sources)
            if resolved:
                todo.append(resolved)
    return None
