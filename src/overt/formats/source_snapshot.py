"""overt source snapshot v1: a source tree named by the SHA-256 of every file.

A snapshot is UTF-8 text: a header, an empty line, then the manifest, one line per
file, sorted by the UTF-8 bytes of the path (strictly ascending, so no duplicates)::

    snapshot  = "overt-source-snapshot/v1" LF
                [ "git-commit" SP HEX40 LF "git-tree" SP HEX40 LF ]
                [ "source-date-epoch" SP DECIMAL LF ]
                LF
                *( MODE SP HEX64 SP PATH LF )
    MODE      = "100644" / "100755" / "120000"      ; file, executable file, symlink
    HEX64     = SHA-256 of the file's bytes (of a symlink: of its target text), lowercase
    PATH      = "/"-separated, relative, UTF-8, no empty, "." or ".." component,
                no control character; at most 4096 bytes

Example (a git snapshot of one commit holding ``README`` = ``"hi\\n"``)::

    overt-source-snapshot/v1
    git-commit 8b1e3e4b1e6c0f0a9c0dd9b5e1c7c3a0f0e8f4a1
    git-tree 4d2c0a5d9f6d1b0c6e8a0d0a7f5e1b7d8c5b9a2e
    source-date-epoch 1700000000

    100644 98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4 README

The **source digest** is the SHA-256 of the whole snapshot text: anyone with the tree
can recompute it (``sha256sum`` of each file, ``sort`` by path bytes, the header
above). ``git-tree`` and ``git-commit`` are git's own ids of the revision (absent for a
plain directory); ``source-date-epoch`` is the commit time, which rebuilds export as
``SOURCE_DATE_EPOCH``. Directories are not listed (like git, an empty one is not part of
the source); nothing else than regular files and symlinks can be, and no path lies below
another (a file or symlink ``a`` and a file ``a/b``).

Logged, a snapshot is an in-toto statement (:mod:`overt.formats.statement`) whose
subject is ``source`` with the source digest, predicate type
``https://overt.dev/source-snapshot/v1``: ``{"git_commit", "git_tree"`` (hex or null),
``"source_date_epoch"`` (integer or null), ``"files"`` (count)``}``.

Versioning: the first line names the version; a change of the grammar is ``/v2``.
:func:`parse_snapshot` and :func:`format_snapshot` round-trip exactly.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from overt.errors import FormatError
from overt.formats.strict import MAX_INT63, parse_decimal

__all__ = [
    "CANONICAL_PATH",
    "MAX_FILES",
    "MAX_PATH",
    "MODES",
    "SNAPSHOT_PREDICATE",
    "SNAPSHOT_VERSION",
    "FileEntry",
    "Snapshot",
    "check_path",
    "format_snapshot",
    "parse_snapshot",
    "snapshot_predicate",
]

SNAPSHOT_VERSION = "overt-source-snapshot/v1"
SNAPSHOT_PREDICATE = "https://overt.dev/source-snapshot/v1"
MODES = ("100644", "100755", "120000")
MAX_PATH = 4096
MAX_FILES = 1_000_000
_MAX_SIZE = MAX_FILES * (len("100644 ") + 65 + 200)

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _fail(reason: str, data: str = "") -> FormatError:
    return FormatError("source snapshot", reason, data)


#: A canonical path: components without "/" or control characters, none "." or "..".
_COMPONENT = r"(?!\.\.?(?:/|\Z))[^/\x00-\x1f\x7f]+"
CANONICAL_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_ENTRY = rf"(?:100644|100755|120000) [0-9a-f]{{64}} {CANONICAL_PATH.pattern}"
#: Every manifest entry, "MODE SHA256 PATH" joined by newlines (a path holds none), checked
#: in one match: the common case, ASCII paths, without a Python step per entry.
_FAST_ENTRIES = re.compile(rf"(?:{_ENTRY}(?:\n{_ENTRY})*)?")


def check_path(path: str) -> str:
    """``path`` if it is a canonical manifest path (see the grammar), else FormatError."""
    # The fast path (most paths are ASCII and fine); the checks below say what is wrong.
    if path.isascii() and len(path) <= MAX_PATH and CANONICAL_PATH.fullmatch(path):
        return path
    if not path or len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise _fail("a path is empty or longer than 4096 bytes", path[:80])
    if _CONTROL.search(path):
        raise _fail("a path holds a control character", path)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError as err:
        raise _fail("a path is not UTF-8", path) from err
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise _fail("a path is not relative and canonical", path)
    if not CANONICAL_PATH.fullmatch(path):  # pragma: no cover - the checks above cover it
        raise _fail("a path is not canonical", path)
    return path


class FileEntry(NamedTuple):
    """One manifest line (a named tuple: snapshots hold many thousands of them)."""

    mode: str
    sha256: str
    path: str


@dataclass(frozen=True)
class Snapshot:
    """A parsed or computed snapshot; :attr:`files` are sorted by path bytes."""

    files: tuple[FileEntry, ...]
    git_commit: str | None = None
    git_tree: str | None = None
    source_date_epoch: int | None = None

    def __post_init__(self) -> None:
        if (self.git_commit is None) != (self.git_tree is None):
            raise _fail("git-commit and git-tree go together")
        for value in (self.git_commit, self.git_tree):
            if value is not None and not _HEX40.fullmatch(value):
                raise _fail("a git id is not 40 lowercase hex digits", value)
        epoch = self.source_date_epoch
        if epoch is not None and not 0 <= epoch <= MAX_INT63:
            raise _fail("source-date-epoch out of range", str(epoch))
        if len(self.files) > MAX_FILES:
            raise _fail(f"more than {MAX_FILES} files")
        paths = [f.path for f in self.files]
        text = "\n".join([f"{m} {s} {p}" for m, s, p in self.files])
        if not (
            text.isascii()
            and max(map(len, paths), default=0) <= MAX_PATH
            and _FAST_ENTRIES.fullmatch(text)
        ):
            for mode, sha256, path in self.files:  # the checks that say what is wrong
                if mode not in MODES:
                    raise _fail("unknown mode", mode)
                if not _HEX64.fullmatch(sha256):
                    raise _fail("a digest is not 64 lowercase hex digits", sha256)
                check_path(path)
        # UTF-8 preserves code point order: comparing the strings compares their bytes.
        if not all(map(operator.lt, paths, paths[1:])):
            bad = next(b for a, b in itertools.pairwise(paths) if not a < b)
            raise _fail("paths are not sorted and unique", bad)
        # No path below another: a tree cannot hold both a file (or symlink) "a" and "a/b",
        # and a snapshot that did would make a rebuild write "a/b" through the symlink "a".
        known = set(paths)
        for path in paths:
            cut = path.rfind("/")
            while cut > 0:
                if path[:cut] in known:
                    raise _fail("a path lies below a file or symlink of the snapshot", path)
                cut = path.rfind("/", 0, cut)

    @classmethod
    def of(
        cls,
        files: Iterable[FileEntry],
        git_commit: str | None = None,
        git_tree: str | None = None,
        source_date_epoch: int | None = None,
    ) -> Snapshot:
        """A snapshot of ``files`` in any order (sorted here). Raises FormatError."""
        ordered = tuple(sorted(files, key=lambda f: f.path.encode("utf-8", "surrogatepass")))
        return cls(ordered, git_commit, git_tree, source_date_epoch)

    @functools.cached_property
    def digest(self) -> str:
        """The source digest: SHA-256 (hex) of :func:`format_snapshot` (computed once)."""
        return hashlib.sha256(format_snapshot(self)).hexdigest()

    def by_path(self) -> Mapping[str, FileEntry]:
        return {f.path: f for f in self.files}


def format_snapshot(snapshot: Snapshot) -> bytes:
    """The canonical text of ``snapshot``."""
    head = [SNAPSHOT_VERSION]
    if snapshot.git_commit is not None:
        head += [f"git-commit {snapshot.git_commit}", f"git-tree {snapshot.git_tree}"]
    if snapshot.source_date_epoch is not None:
        head.append(f"source-date-epoch {snapshot.source_date_epoch}")
    lines = [*head, "", *(f"{f.mode} {f.sha256} {f.path}" for f in snapshot.files)]
    return ("\n".join(lines) + "\n").encode()


def parse_snapshot(data: bytes) -> Snapshot:
    """Parse snapshot text strictly (the exact bytes :func:`format_snapshot` writes).

    Raises:
        FormatError: larger than the cap, not UTF-8, a wrong or missing version line,
            an unknown or misplaced header line, a malformed manifest line, paths out
            of order or repeated.
    """
    if len(data) > _MAX_SIZE:
        raise _fail("larger than the size cap")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _fail("not UTF-8") from err
    if not text.endswith("\n"):
        raise _fail("does not end with a newline")
    head, sep, body = text.partition("\n\n")
    if not sep:
        raise _fail("no empty line after the header")
    lines = head.split("\n")
    if lines[0] != SNAPSHOT_VERSION:
        raise _fail(f"first line is not {SNAPSHOT_VERSION}", lines[0])
    commit = tree = None
    epoch = None
    rest = lines[1:]
    if rest and rest[0].startswith("git-commit "):
        if len(rest) < 2 or not rest[1].startswith("git-tree "):
            raise _fail("git-commit without git-tree", rest[0])
        commit, tree = rest[0][len("git-commit ") :], rest[1][len("git-tree ") :]
        rest = rest[2:]
    if rest and rest[0].startswith("source-date-epoch "):
        epoch = parse_decimal(rest[0][len("source-date-epoch ") :], "source-date-epoch")
        rest = rest[1:]
    if rest:
        raise _fail("unknown or misplaced header line", rest[0])
    lines = body.split("\n")[:-1]
    make = FileEntry._make
    try:
        files = tuple([make(line.split(" ", 2)) for line in lines])
    except TypeError:
        bad = next(line for line in lines if line.count(" ") < 2)
        raise _fail("a manifest line is not MODE SHA256 PATH", bad) from None
    snapshot = Snapshot(files, commit, tree, epoch)
    # The text parsed is canonical (format_snapshot gives it back), so its hash is the digest.
    snapshot.__dict__["digest"] = hashlib.sha256(data).hexdigest()
    return snapshot


def snapshot_predicate(snapshot: Snapshot) -> tuple[str, Mapping[str, Any]]:
    """The ``(predicateType, predicate)`` of a logged snapshot (see the module notes)."""
    return SNAPSHOT_PREDICATE, {
        "files": len(snapshot.files),
        "git_commit": snapshot.git_commit,
        "git_tree": snapshot.git_tree,
        "source_date_epoch": snapshot.source_date_epoch,
    }
