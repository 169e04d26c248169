"""Rule bundles from disk: one loader for ``audit``, ``diff``, ``attest`` and the monitor.

A bundle is a ``.yar``/``.yara`` file, a folder of them (recursively), or an
archive of them (tar, any compression, or zip), recognised by its first bytes
whatever its name. :func:`load_bundle` reads each form into ``{path inside
the bundle: bytes}``; :func:`read_bundle` does the same for archive bytes
already in memory (a logged publication).

Everything read is bounded, because the bundle is someone else's:

- a rule file is read up to :data:`~overt.rules.parse.MAX_FILE_BYTES` + 1
  bytes (the auditor then refuses it as too large) and an archive up to
  :data:`MAX_ARCHIVE_BYTES` + 1; nothing is read whole first;
- an archive holds at most :data:`MAX_ARCHIVE_MEMBERS` members and
  :data:`MAX_ARCHIVE_BYTES` of content; a member with an absolute path, a
  ``..`` component, or that is a link refuses the whole archive;
- on disk only regular files are read, and only inside the *audited tree*
  (the folders given, and the folder of each file given), after resolving
  symlinks and ``..``: a symlink or an include that leads out of it is listed
  in :attr:`Bundle.refused` and not read (``/etc/passwd``,
  ``/proc/self/environ``, a log's token).

Example::

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.yar").write_text('include "../../etc/passwd"\\nrule a { condition: true }')
    >>> b = load_bundle(d)
    >>> sorted(b.sources), [(r.path, r.target) for r in b.refused]
    (['a.yar'], [('a.yar', '../../etc/passwd')])
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import posixpath
import stat
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overt.errors import ConfigError, FormatError
from overt.rules.limits import measure
from overt.rules.parse import MAX_FILE_BYTES

__all__ = [
    "MAX_ARCHIVE_BYTES",
    "MAX_ARCHIVE_MEMBERS",
    "MAX_BUNDLE_FILES",
    "RULE_SUFFIXES",
    "Bundle",
    "Refused",
    "is_archive",
    "load_bundle",
    "load_paths",
    "read_bundle",
    "read_bundle_file",
    "read_capped",
]

RULE_SUFFIXES = (".yar", ".yara")
#: A bundle with more rule files than this is refused (a hostile archive).
MAX_BUNDLE_FILES = 20000
#: Members of any kind an archive may hold.
MAX_ARCHIVE_MEMBERS = 100000
#: The size of an archive, and of the content of all its members.
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Refused:
    """A file the loader did not read: where it was named, what, and why."""

    path: str  # the including file (bundle path), or the file itself
    line: int
    target: str
    reason: str


@dataclass
class Bundle:
    """Rule files by path inside the bundle; ``data`` is the bundle's own bytes
    when it is one file (a ``.yar`` or an archive), so that its digest is the
    digest of what was published."""

    name: str
    sources: dict[str, bytes] = field(default_factory=dict)
    refused: list[Refused] = field(default_factory=list)
    data: bytes | None = None


def read_capped(path: str | Path, cap: int) -> bytes:
    """At most ``cap + 1`` bytes of the regular file at ``path`` (a longer file
    shows as longer than ``cap``), without following a final symlink.

    Raises:
        ConfigError: missing, unreadable, or not a regular file (a FIFO, a
            device, a symlink).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"cannot read {path}: not a regular file")
        chunks: list[bytes] = []
        left = cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from err
    finally:
        os.close(fd)


def is_archive(data: bytes) -> bool:
    """gzip, bzip2, xz magic, a ustar header, or a zip."""
    return (
        data[:2] == b"\x1f\x8b"
        or data[:3] == b"BZh"
        or data[:6] == b"\xfd7zXZ\x00"
        or data[257:262] == b"ustar"
        or data[:4] == b"PK\x03\x04"
    )


def _member_path(name: str, bundle: str) -> str:
    raw = name.replace("\\", "/")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if raw.startswith("/") or ".." in parts or not parts or ":" in parts[0]:
        raise FormatError("rule bundle", f"member path {name!r} leaves the bundle", bundle)
    return "/".join(parts)


class _Budget:
    def __init__(self, bundle: str) -> None:
        self.bundle = bundle
        self.members = 0
        self.bytes = 0
        self.files = 0

    def member(self, size: int) -> None:
        self.members += 1
        self.bytes += max(size, 0)
        if self.members > MAX_ARCHIVE_MEMBERS:
            raise FormatError(
                "rule bundle", f"more than {MAX_ARCHIVE_MEMBERS} archive members", self.bundle
            )
        if self.bytes > MAX_ARCHIVE_BYTES:
            raise FormatError(
                "rule bundle", f"archive expands beyond {MAX_ARCHIVE_BYTES} bytes", self.bundle
            )

    def rule_file(self) -> None:
        self.files += 1
        if self.files > MAX_BUNDLE_FILES:
            raise FormatError(
                "rule bundle", f"more than {MAX_BUNDLE_FILES} rule files", self.bundle
            )


#: What tar headers may add to the members' content in a decompressed archive.
_HEADER_SLACK = 64 * 1024 * 1024


class _Capped(io.RawIOBase):
    """A decompressed stream that refuses to yield more than :data:`MAX_ARCHIVE_BYTES`
    (plus the tar headers' share): tarfile reads PAX headers whole, before any member
    size could be checked."""

    def __init__(self, inner: Any, bundle: str) -> None:
        self.inner = inner
        self.bundle = bundle
        self.left = MAX_ARCHIVE_BYTES + _HEADER_SLACK

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        chunk = self.inner.read(min(len(buf), max(self.left, 0) + 1))
        self.left -= len(chunk)
        if self.left < 0:
            raise FormatError(
                "rule bundle", f"archive expands beyond {MAX_ARCHIVE_BYTES} bytes", self.bundle
            )
        buf[: len(chunk)] = chunk
        return len(chunk)


def _decompressed(name: str, data: bytes) -> io.BufferedReader:
    # The objects live as long as the tar stream that reads them: no context managers.
    src = io.BytesIO(data)
    inner: Any = src
    if data[:2] == b"\x1f\x8b":
        inner = gzip.GzipFile(fileobj=src)
    elif data[:3] == b"BZh":
        inner = bz2.BZ2File(src)
    elif data[:6] == b"\xfd7zXZ\x00":
        inner = lzma.LZMAFile(src)  # noqa: SIM115
    return io.BufferedReader(_Capped(inner, name))


def _read_tar(name: str, data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    budget = _Budget(name)
    try:
        # A stream ("r|"): members in order, through the capped decompressor.
        with tarfile.open(fileobj=_decompressed(name, data), mode="r|") as tf:
            for member in tf:
                budget.member(member.size)
                if member.issym() or member.islnk():
                    raise FormatError("rule bundle", f"member {member.name!r} is a link", name)
                if member.isdir():
                    _member_path(member.name, name)
                    continue
                if not member.isfile():
                    raise FormatError(
                        "rule bundle", f"member {member.name!r} is not a regular file", name
                    )
                path = _member_path(member.name, name)
                if not path.lower().endswith(RULE_SUFFIXES):
                    continue
                budget.rule_file()
                fh = tf.extractfile(member)
                if fh is not None:
                    out[path] = fh.read(MAX_FILE_BYTES + 1)
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, ValueError) as err:
        raise FormatError("rule bundle", f"unreadable tar archive: {err}", name) from err
    return out


def _read_zip(name: str, data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    budget = _Budget(name)
    # zipfile lists the whole central directory before we see one member: count its
    # entry signatures first (an upper bound), so that millions of entries are refused.
    if data.count(b"PK\x01\x02") > MAX_ARCHIVE_MEMBERS:
        raise FormatError("rule bundle", f"more than {MAX_ARCHIVE_MEMBERS} archive members", name)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                budget.member(info.file_size)
                path = _member_path(info.filename, name)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise FormatError("rule bundle", f"member {info.filename!r} is a link", name)
                if info.is_dir() or not path.lower().endswith(RULE_SUFFIXES):
                    continue
                budget.rule_file()
                with zf.open(info) as fh:
                    out[path] = fh.read(MAX_FILE_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as err:
        raise FormatError("rule bundle", f"unreadable zip archive: {err}", name) from err
    return out


def read_bundle(name: str, data: bytes) -> dict[str, bytes]:
    """The rule files of a bundle given as bytes: a ``.yar``/``.yara`` text, a
    tar (any compression) or a zip archive. Non-rule members are skipped.

    Raises:
        FormatError: an archive that cannot be read, is too large, holds too
            many members, or has a member that is a link or leaves the bundle.
    """
    if len(data) > MAX_ARCHIVE_BYTES:
        raise FormatError("rule bundle", f"larger than {MAX_ARCHIVE_BYTES} bytes", name)
    if data[:4] == b"PK\x03\x04":
        return _read_zip(name, data)
    if is_archive(data):
        return _read_tar(name, data)
    return {posixpath.basename(name) or "bundle.yar": data}


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _walk(folder: str, roots: Sequence[str], refused: list[Refused], base: str) -> list[str]:
    """Real paths of the rule files under ``folder``, symlinks leading out refused.

    Symlinked folders are not entered (no loop can form): one that leads out of
    the tree is refused, one inside it is walked where it really is, if at all.
    """
    found: list[str] = []
    for top, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for d in list(dirs):
            full = os.path.join(top, d)
            if os.path.islink(full):
                dirs.remove(d)
                real = os.path.realpath(full)
                if not _inside(real, roots):
                    rel = os.path.relpath(full, base)
                    refused.append(Refused(rel, 0, real, "a symlink out of the audited tree"))
        for n in sorted(names):
            if not n.lower().endswith(RULE_SUFFIXES):
                continue
            full = os.path.join(top, n)
            real = os.path.realpath(full)
            if not _inside(real, roots):
                rel = os.path.relpath(full, base)
                refused.append(Refused(rel, 0, real, "a symlink out of the audited tree"))
            elif os.path.isfile(real):
                found.append(real)
    return found


def load_paths(paths: Iterable[str | Path]) -> Bundle:
    """The rule files named on a command line: files, folders and archives.

    One archive or ``.yar`` file alone is the bundle as published (its paths
    and digest are those :func:`read_bundle` gives). Otherwise rule files are
    keyed by their path relative to the common folder of all of them, and
    includes are followed on disk inside the audited tree only.

    Raises:
        ConfigError: a path that does not exist or cannot be read, or no rule
            file at all (a mistyped or empty folder must not pass as clean).
        FormatError: an archive that cannot be read (see :func:`read_bundle`).
    """
    args = [Path(p) for p in paths]
    name = ",".join(str(p) for p in args)
    if not args:
        raise ConfigError("no rule path given")
    for p in args:
        if not p.exists() and not p.is_symlink():
            raise ConfigError(f"cannot read {p}: no such file or directory")
    if len(args) == 1 and not args[0].is_dir():
        one = args[0]
        real_one = os.path.realpath(one)  # the user named it: a symlink given is followed
        if is_archive(read_capped(real_one, 511)):
            data = read_capped(real_one, MAX_ARCHIVE_BYTES)
            sources = read_bundle(one.name, data)
            if not sources:
                raise ConfigError(f"no .yar/.yara rule files in the archive {name}")
            return Bundle(name, sources, [], data)
        raw = read_capped(real_one, MAX_FILE_BYTES)
        if not _has_includes(raw):
            return Bundle(name, {one.name: raw}, [], raw)
    # The audited tree: each folder given, and the folder each file given really is in.
    roots = [
        os.path.realpath(p) if p.is_dir() else os.path.dirname(os.path.realpath(p)) for p in args
    ]
    refused: list[Refused] = []
    files: list[str] = []
    for p in args:
        if p.is_dir():
            files.extend(_walk(os.path.realpath(p), roots, refused, str(p)))
        elif is_archive(read_capped(os.path.realpath(p), 512)):
            raise ConfigError(f"{p} is an archive: give it alone, not beside other paths")
        else:
            real = os.path.realpath(p)
            if _inside(real, roots) and os.path.isfile(real):
                files.append(real)
            else:
                refused.append(Refused(str(p), 0, real, "not a regular file in the audited tree"))
    read: dict[str, bytes] = {}
    todo = sorted(set(files))
    seen = set(todo)
    includes: list[tuple[str, int, str, str]] = []  # (file, line, target, real target)
    while todo:
        f = todo.pop()
        read[f] = read_capped(f, MAX_FILE_BYTES)
        if b"include" not in read[f] or len(read[f]) > MAX_FILE_BYTES or b"\0" in read[f]:
            continue  # no include, or a file the auditor refuses unread anyway
        text = read[f].decode("utf-8", "replace")
        for inc in measure(text).includes:
            real = os.path.realpath(os.path.join(os.path.dirname(f), inc.target))
            includes.append((f, inc.line, inc.target, real))
            if real in seen or not _inside(real, roots) or not os.path.isfile(real):
                continue
            seen.add(real)
            todo.append(real)
    if not read:
        raise ConfigError(f"no .yar/.yara rule files in {name}")
    root = posixpath.commonpath([posixpath.dirname(f) for f in read])
    sources = {posixpath.relpath(f, root): read[f] for f in sorted(read)}
    for f, line, target, real in includes:
        if not _inside(real, roots):
            refused.append(
                Refused(
                    posixpath.relpath(f, root), line, target, "an include out of the audited tree"
                )
            )
    return Bundle(name, sources, refused)


def _has_includes(data: bytes) -> bool:
    return b"include" in data and bool(measure(data.decode("utf-8", "replace")).includes)


def read_bundle_file(path: str | Path) -> bytes:
    """The exact bytes of a published bundle file, or of stdin for ``-``: an
    archive read up to :data:`MAX_ARCHIVE_BYTES`, a ``.yar`` text up to
    :data:`~overt.rules.parse.MAX_FILE_BYTES` (both checked by their first bytes).

    Raises:
        ConfigError: missing, unreadable, not a regular file, empty, or larger
            than its cap.
    """
    if str(path) == "-":
        head = sys.stdin.buffer.read(512)
        cap = MAX_ARCHIVE_BYTES if is_archive(head) else MAX_FILE_BYTES
        data = head + sys.stdin.buffer.read(max(cap + 1 - len(head), 0))
    else:
        real = os.path.realpath(path)  # the user named it: a symlink given is followed
        cap = MAX_ARCHIVE_BYTES if is_archive(read_capped(real, 511)) else MAX_FILE_BYTES
        data = read_capped(real, cap)
    if len(data) > cap:
        raise ConfigError(f"{path} is larger than {cap} bytes")
    if not data:
        raise ConfigError(f"{path} is empty")
    return data


def load_bundle(path: str | Path) -> Bundle:
    """One bundle: a folder, a rule file or an archive (see :func:`load_paths`).

    Raises:
        ConfigError: the path does not exist or holds no rule file.
        FormatError: an unreadable archive.
    """
    return load_paths([path])
