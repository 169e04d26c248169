"""overt source review v1: a reviewer's signed verdict on files named by their digests.

A review is an in-toto statement (:mod:`overt.formats.statement`) whose subject is
``source`` with the source digest of the snapshot reviewed
(:mod:`overt.formats.source_snapshot`), predicate type
``https://overt.dev/source-review/v1``, signed (DSSE) by the reviewer's own key::

    {"reviewer": VKEY,                  the reviewer's public key (signed-note text)
     "verdict": "pass" | "concerns" | "fail",
     "thoroughness": "low" | "medium" | "high",
     "files": [{"path": P, "sha256": HEX64,
                "lines": [[START, END], ...]}, ...],     [] = the whole file
     "findings": [{"severity": "low" | "medium" | "high" | "critical",
                   "path": P, "sha256": HEX64, "line": N, "text": T}, ...]}

Example::

    >>> r = ReviewPredicate("alice+1a2b3c4d+AQ...", "pass", "high",
    ...                     (ReviewedFile("app.py", "ab" * 32, ((1, 40),)),), ())
    >>> ReviewPredicate.from_json(r.to_json()) == r
    True

``files`` are sorted by path and unique; line ranges are ``1 <= START <= END``, sorted
and not overlapping; a finding names a reviewed file (by path and digest). The review
covers each file **by digest**: a later snapshot holding a file with the same SHA-256
keeps the review of it, whatever its path; a changed file loses it. Integers are JSON
numbers without fraction or exponent (:mod:`overt.formats.strict`).

Versioning: the ``/v1`` of the predicate type; a breaking change is ``/v2``.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from overt.errors import FormatError
from overt.formats.source_snapshot import CANONICAL_PATH, MAX_PATH, check_path
from overt.formats.strict import json_int, json_list, json_str

__all__ = [
    "REVIEW_PREDICATE",
    "SEVERITIES",
    "THOROUGHNESS",
    "VERDICTS",
    "ReviewFinding",
    "ReviewPredicate",
    "ReviewedFile",
    "severity_rank",
]

REVIEW_PREDICATE = "https://overt.dev/source-review/v1"
VERDICTS = ("pass", "concerns", "fail")
THOROUGHNESS = ("low", "medium", "high")
SEVERITIES = ("low", "medium", "high", "critical")
_WHAT = "source review"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_LINE = 1 << 31
_MAX_TEXT = 4096
_MAX_ITEMS = 1_000_000
_FILE_MEMBERS = frozenset({"path", "sha256", "lines"})
_PATH, _SHA256, _LINES = (operator.itemgetter(k) for k in ("path", "sha256", "lines"))
_FILE_PATH = operator.attrgetter("path")
#: A digest and a canonical ASCII path, checked in one match (the common case).
_FAST_FILE = re.compile(rf"[0-9a-f]{{64}} {CANONICAL_PATH.pattern}")
#: Many of them joined by newlines (a canonical path holds none), in one match.
_FAST_FILES = re.compile(rf"(?:{_FAST_FILE.pattern}(?:\n{_FAST_FILE.pattern})*)?")


def severity_rank(severity: str) -> int:
    """0 for ``low`` ... 3 for ``critical``. Raises FormatError for anything else."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise FormatError(
            _WHAT, f"severity is not one of {', '.join(SEVERITIES)}", severity
        ) from None


def _fail(reason: str, data: str = "") -> FormatError:
    return FormatError(_WHAT, reason, data)


def _digest(value: object, field: str) -> str:
    text: str = json_str(value, _WHAT, field, max_len=64)
    if not _HEX64.fullmatch(text):
        raise _fail(f"{field} is not 64 lowercase hex digits", text)
    return text


def _choice(value: object, field: str, choices: tuple[str, ...]) -> str:
    text: str = json_str(value, _WHAT, field, max_len=16)
    if text not in choices:
        raise _fail(f"{field} is not one of {', '.join(choices)}", text)
    return text


def _path(value: object, field: str) -> str:
    try:
        return check_path(json_str(value, _WHAT, field, max_len=4096))
    except FormatError as err:
        raise _fail(f"{field}: {err.reason}", str(value)) from err


def _members(obj: object, names: set[str], what: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict) or set(obj) != names:
        raise _fail(f"{what} is not an object with exactly {sorted(names)}", repr(obj)[:80])
    return obj


class ReviewedFile(NamedTuple):
    """A file the reviewer read: path, digest, and line ranges (empty: all of it). A named
    tuple: a review lists thousands of them, and the gate reads every review it is given."""

    path: str
    sha256: str
    lines: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "lines": [list(r) for r in self.lines]}

    @classmethod
    def from_json(cls, obj: object) -> ReviewedFile:
        # The common case, a whole file, without the general checks' overhead (a review
        # lists thousands of files, and the gate parses every review it is given).
        if type(obj) is dict and obj.keys() == _FILE_MEMBERS and obj["lines"] == []:
            path, sha = obj["path"], obj["sha256"]
            if (
                type(path) is str
                and type(sha) is str
                and path.isascii()
                and len(path) <= MAX_PATH
                and _FAST_FILE.fullmatch(f"{sha} {path}")
            ):
                return cls(path, sha)
        m = _members(obj, {"path", "sha256", "lines"}, "a reviewed file")
        ranges = []
        end = 0
        for r in json_list(m["lines"], _WHAT, "lines"):
            if not isinstance(r, list) or len(r) != 2:
                raise _fail("a line range is not [START, END]", repr(r))
            start = json_int(r[0], _WHAT, "line range start", 1)
            stop = json_int(r[1], _WHAT, "line range end", start)
            if start <= end or stop > _MAX_LINE:
                raise _fail("line ranges overlap, are out of order or too large", repr(r))
            ranges.append((start, stop))
            end = stop
        return cls(_path(m["path"], "path"), _digest(m["sha256"], "sha256"), tuple(ranges))


#: ``ReviewedFile`` from a checked (path, sha256, lines) tuple, without a Python frame.
_new_file = functools.partial(tuple.__new__, ReviewedFile)


@dataclass(frozen=True)
class ReviewFinding:
    """A problem the reviewer found, at a line of a reviewed file."""

    severity: str
    path: str
    sha256: str
    line: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "path": self.path,
            "sha256": self.sha256,
            "line": self.line,
            "text": self.text,
        }

    @classmethod
    def from_json(cls, obj: object) -> ReviewFinding:
        m = _members(obj, {"severity", "path", "sha256", "line", "text"}, "a finding")
        return cls(
            _choice(m["severity"], "severity", SEVERITIES),
            _path(m["path"], "finding path"),
            _digest(m["sha256"], "finding sha256"),
            json_int(m["line"], _WHAT, "finding line", 1),
            json_str(m["text"], _WHAT, "finding text", max_len=_MAX_TEXT),
        )


@dataclass(frozen=True)
class ReviewPredicate:
    """The predicate of a review statement (see the module notes)."""

    reviewer: str
    verdict: str
    thoroughness: str
    files: tuple[ReviewedFile, ...]
    findings: tuple[ReviewFinding, ...] = ()

    predicate_type = REVIEW_PREDICATE

    def __post_init__(self) -> None:
        if not self.files:
            raise _fail("no file reviewed")
        # UTF-8 preserves code point order: comparing the strings compares their bytes.
        paths = ["", *map(_FILE_PATH, self.files)]  # "" first: no path may be empty
        if not all(map(operator.lt, paths, paths[1:])):
            bad = next(b for a, b in itertools.pairwise(paths) if not a < b)
            raise _fail("files are not sorted by path and unique", bad)
        reviewed = {(f.path, f.sha256) for f in self.files} if self.findings else set()
        for finding in self.findings:
            if (finding.path, finding.sha256) not in reviewed:
                raise _fail("a finding names a file that was not reviewed", finding.path)

    def to_json(self) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "verdict": self.verdict,
            "thoroughness": self.thoroughness,
            "files": [f.to_json() for f in self.files],
            "findings": [f.to_json() for f in self.findings],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ReviewPredicate:
        """Raises FormatError: a member missing, extra or malformed."""
        m = _members(
            dict(obj), {"reviewer", "verdict", "thoroughness", "files", "findings"}, "predicate"
        )
        files = json_list(m["files"], _WHAT, "files")
        findings = json_list(m["findings"], _WHAT, "findings")
        if len(files) > _MAX_ITEMS or len(findings) > _MAX_ITEMS:
            raise _fail("too many files or findings")
        # The common case (whole files, ASCII paths) in one match over all of them, since a
        # review lists thousands of files and the gate parses every review it is given;
        # anything else goes through ReviewedFile.from_json, which says what is wrong.
        # Every step below is one C-level pass (map, set, join, one regex), not a Python
        # loop: ~1 us per file less, at 100 files per review the gate's largest Python cost.
        parsed: tuple[ReviewedFile, ...] | None = None
        if (
            files
            and set(map(type, files)) == {dict}
            and set(map(frozenset, files)) == {_FILE_MEMBERS}
            and not any(map(_LINES, files))
            and set(map(type, map(_LINES, files))) == {list}
        ):
            paths, shas = list(map(_PATH, files)), list(map(_SHA256, files))
            try:
                text = "\n".join(map(" ".join, zip(shas, paths, strict=True)))
            except TypeError:  # a path or digest that is not a string
                text = "-"
            if text.isascii() and max(map(len, paths)) <= MAX_PATH and _FAST_FILES.fullmatch(text):
                parsed = tuple(map(_new_file, zip(paths, shas, itertools.repeat(()))))
        if parsed is None:
            parsed = tuple(ReviewedFile.from_json(f) for f in files)
        return cls(
            json_str(m["reviewer"], _WHAT, "reviewer", max_len=512),
            _choice(m["verdict"], "verdict", VERDICTS),
            _choice(m["thoroughness"], "thoroughness", THOROUGHNESS),
            parsed,
            tuple(ReviewFinding.from_json(f) for f in findings),
        )
