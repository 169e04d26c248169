"""Where two build outputs differ: member by member for zip/wheel and tar, else byte by byte.

:func:`first_difference` is pure (bytes in, one line out, None when they are equal). It
reads archives with hard caps (members, total size), since a released artifact is
untrusted input. :func:`diffoscope` runs Debian's diffoscope when it is installed, for
the full picture (bounded in time and output).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

__all__ = ["diffoscope", "first_difference"]

_MAX_MEMBERS = 100_000
_MAX_MEMBER = 512 << 20


def _offset(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _bytes_line(what: str, a: bytes, b: bytes) -> str:
    at = _offset(a, b)
    return (
        f"{what}: first difference at byte {at}:"
        f" {a[at : at + 16].hex() or '(end)'} != {b[at : at + 16].hex() or '(end)'}"
    )


def _zip_members(data: bytes) -> list[tuple[str, str, bytes]] | None:
    """(name, metadata, contents) of each member, or None if not a readable zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            if len(infos) > _MAX_MEMBERS or any(i.file_size > _MAX_MEMBER for i in infos):
                return None
            return [
                (
                    i.filename,
                    f"date {i.date_time}, mode {i.external_attr >> 16:o}, {i.compress_type=}",
                    z.read(i),
                )
                for i in infos
            ]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return None


def _tar_members(data: bytes) -> list[tuple[str, str, bytes]] | None:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
            out: list[tuple[str, str, bytes]] = []
            for m in t:
                if len(out) >= _MAX_MEMBERS or m.size > _MAX_MEMBER:
                    return None
                f = t.extractfile(m) if m.isfile() else None
                meta = (
                    f"mtime {m.mtime}, mode {m.mode:o}, owner {m.uid}:{m.gid} {m.uname}:{m.gname}"
                )
                out.append((m.name, meta, f.read() if f is not None else m.linkname.encode()))
            return out
    except (tarfile.TarError, OSError, ValueError, EOFError):
        return None


def first_difference(released: bytes, rebuilt: bytes) -> str | None:
    """One line saying where ``rebuilt`` first differs from ``released`` (None: identical).

    Zip (wheels) and tar (sdists, plain or compressed) are compared member by member:
    the member list, then each member's contents, then its metadata (times, modes,
    owners), naming the first member that differs; anything else byte by byte.
    """
    if released == rebuilt:
        return None
    for reader, kind in ((_zip_members, "zip"), (_tar_members, "tar")):
        a, b = reader(released), reader(rebuilt)
        if a is None or b is None:
            continue
        names_a, names_b = [m[0] for m in a], [m[0] for m in b]
        if sorted(names_a) != sorted(names_b):
            only_a = sorted(set(names_a) - set(names_b))
            only_b = sorted(set(names_b) - set(names_a))
            first = (only_a or only_b)[0] if (only_a or only_b) else "?"
            side = "only in the released" if only_a else "only in the rebuilt"
            return f"{kind} member {first} is {side} artifact"
        by_b = {m[0]: m for m in b}
        for name, _meta, contents in a:
            other = by_b[name]
            if contents != other[2]:
                return _bytes_line(f"{kind} member {name} differs", contents, other[2])
        for name, meta, _ in a:
            if meta != by_b[name][1]:
                return f"{kind} member {name} differs in metadata: {meta} != {by_b[name][1]}"
        if names_a != names_b:
            first = next(x for x, y in zip(names_a, names_b, strict=True) if x != y)
            return f"{kind} members are in another order, from {first}"
        return _bytes_line(f"{kind} container differs (same members)", released, rebuilt)
    return _bytes_line("the files differ", released, rebuilt)


def diffoscope(released: Path, rebuilt: Path, timeout: float = 120.0) -> str | None:
    """diffoscope's text report of the two files, or None when it is not installed
    (or fails to run in ``timeout`` seconds). At most 64 KiB of it."""
    exe = shutil.which("diffoscope")
    if exe is None:
        return None
    try:
        run = subprocess.run(
            [exe, "--text", "-", str(released), str(rebuilt)],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout[: 64 << 10].decode("utf-8", "replace")
