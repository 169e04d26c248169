"""Compute the snapshot (:mod:`overt.formats.source_snapshot`) of a git revision or a directory.

The shell around the format: it runs ``git`` and reads files, nothing else.

- A **git repository** (DIR holds ``.git``): the snapshot of a committed revision
  (``HEAD`` unless ``rev``): ``git ls-tree -r`` lists its files with their blob ids.
  Each file is hashed from the working tree when the working tree's bytes are that
  blob (its git blob id is computed alongside, so a modified, filtered or missing file
  is never trusted), else from ``git cat-file --batch``: the result depends on the
  revision only, and is fast on a checkout. Uncommitted changes (tracked or untracked,
  ``.gitignore`` respected) are a :class:`DirtyTreeError` when no ``rev`` is named,
  unless ``allow_dirty``: they would not be in the snapshot. Submodules are refused.
- A **plain directory**: every regular file and symlink under it (symlinks are not
  followed); anything else (a socket, a device) is refused.

Hashing runs in threads (hashlib releases the GIL), so a warm tree hashes near memory
speed. Paths that are not UTF-8 are refused: the manifest is UTF-8.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from overt.errors import FormatError
from overt.formats.source_snapshot import FileEntry, Snapshot, check_path
from overt.source.errors import DirtyTreeError, NotARepositoryError, RevisionError, SourceError

__all__ = ["snapshot_tree"]

_CHUNK = 1 << 20
_GIT_TIMEOUT = 600.0


def snapshot_tree(
    directory: Path, rev: str | None = None, *, allow_dirty: bool = False
) -> Snapshot:
    """The snapshot of ``directory`` (a git revision, or a plain directory's files).

    Raises:
        SourceError: ``directory`` is not a directory, holds a file that cannot be in a
            manifest (a socket, a submodule, a non-UTF-8 name), or cannot be read;
        NotARepositoryError: ``rev`` given for a directory that is not a git repository;
        RevisionError: ``rev`` names no commit; DirtyTreeError: uncommitted changes.
    """
    if not directory.is_dir():
        raise SourceError(f"{directory} is not a directory", str(directory))
    if (directory / ".git").exists():
        return _git_snapshot(directory, rev or "HEAD", check_dirty=rev is None and not allow_dirty)
    if rev is not None:
        raise NotARepositoryError(str(directory))
    return _dir_snapshot(directory)


# --- git -------------------------------------------------------------------------------


def _git(
    directory: Path, *args: str, data: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    try:
        return subprocess.run(
            ["git", "-C", str(directory), *args],
            input=data,
            capture_output=True,
            env=env,
            timeout=_GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SourceError(f"cannot run git in {directory}: {err}", str(directory)) from err


def _git_snapshot(directory: Path, rev: str, *, check_dirty: bool) -> Snapshot:
    found = _git(
        directory, "rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}"
    )
    if found.returncode != 0:
        if _git(directory, "rev-parse", "--git-dir").returncode != 0:
            raise NotARepositoryError(str(directory))
        raise RevisionError(rev, str(directory))
    commit = found.stdout.decode().strip()
    shown = _git(directory, "show", "-s", "--format=%T %ct", commit)
    if shown.returncode != 0:
        raise SourceError(f"git cannot show {commit}: {_stderr(shown)}", str(directory))
    tree, epoch = shown.stdout.decode().split()
    if check_dirty:
        status = _git(directory, "status", "--porcelain=v1", "-z", "--untracked-files=normal")
        if status.returncode != 0:
            raise SourceError(f"git status failed: {_stderr(status)}", str(directory))
        if status.stdout:
            first = status.stdout.split(b"\0", 1)[0][3:].decode("utf-8", "replace")
            raise DirtyTreeError(str(directory), first)
    listing = _git(directory, "ls-tree", "-r", "-z", "--full-tree", commit)
    if listing.returncode != 0:
        raise SourceError(f"git ls-tree failed: {_stderr(listing)}", str(directory))
    items: list[tuple[str, str, str]] = []  # (mode, blob id, path)
    for record in listing.stdout.split(b"\0")[:-1]:
        meta, _, raw = record.partition(b"\t")
        mode, kind, oid = meta.decode().split(" ")
        path = _utf8(raw, directory)
        if kind != "blob" or mode not in ("100644", "100755", "120000"):
            raise SourceError(
                f"{path} is a {kind} (mode {mode}): submodules are not supported", path
            )
        items.append((mode, oid, path))

    digests: dict[str, str] = {}  # blob id -> sha256
    lock = threading.Lock()
    root = str(directory)

    def from_worktree(item: tuple[str, str, str]) -> None:
        mode, oid, path = item
        with lock:
            if oid in digests:
                return
        full = os.path.join(root, path)
        try:
            if mode == "120000":
                target = os.fsencode(os.readlink(full))
                sha1, sha256 = _blob_digests([target], len(target))
            else:
                sha1, sha256 = _hash_file(full, blob=True)
        except OSError:
            return  # absent or not readable here: read it from git's objects
        if sha1 == oid:
            with lock:
                digests[oid] = sha256

    _run_threads(from_worktree, items)
    missing = sorted({oid for _, oid, _ in items if oid not in digests})
    if missing:
        digests.update(_cat_file(directory, missing))
    return _make(
        (FileEntry(mode, digests[oid], path) for mode, oid, path in items),
        directory,
        git_commit=commit,
        git_tree=tree,
        source_date_epoch=int(epoch),
    )


def _cat_file(directory: Path, oids: Sequence[str]) -> dict[str, str]:
    """SHA-256 of each blob, streamed through one ``git cat-file --batch``."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    try:
        proc = subprocess.Popen(
            ["git", "-C", str(directory), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    except OSError as err:
        raise SourceError(f"cannot run git in {directory}: {err}", str(directory)) from err
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def feed() -> None:
        try:
            stdin.write("".join(f"{oid}\n" for oid in oids).encode())
        finally:
            stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    result: dict[str, str] = {}
    try:
        for oid in oids:
            header = stdout.readline().split()
            if len(header) != 3 or header[1] != b"blob":
                raise SourceError(f"git cat-file cannot read blob {oid}", oid)
            size = int(header[2])
            h = hashlib.sha256()
            left = size
            while left:
                chunk = stdout.read(min(left, _CHUNK))
                if not chunk:
                    raise SourceError(f"git cat-file stopped inside blob {oid}", oid)
                h.update(chunk)
                left -= len(chunk)
            stdout.read(1)  # the LF after the contents
            result[oid] = h.hexdigest()
    finally:
        writer.join()
        stdout.close()
        proc.wait()
    return result


def _stderr(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


# --- plain directory -------------------------------------------------------------------


def _dir_snapshot(directory: Path) -> Snapshot:
    found: list[tuple[str, str, str]] = []  # (mode, full path, manifest path)
    stack = [(str(directory), "")]
    while stack:
        here, prefix = stack.pop()
        try:
            entries = list(os.scandir(here))
        except OSError as err:
            raise SourceError(f"cannot list {here}: {err.strerror}", here) from err
        for entry in entries:
            rel = prefix + _utf8(os.fsencode(entry.name), directory)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as err:
                raise SourceError(f"cannot stat {entry.path}: {err.strerror}", rel) from err
            if stat.S_ISDIR(st.st_mode):
                stack.append((entry.path, rel + "/"))
            elif stat.S_ISLNK(st.st_mode):
                found.append(("120000", entry.path, rel))
            elif stat.S_ISREG(st.st_mode):
                found.append(("100755" if st.st_mode & 0o111 else "100644", entry.path, rel))
            else:
                raise SourceError(f"{rel} is neither a file, a symlink nor a directory", rel)
    digests: dict[str, str] = {}

    def one(item: tuple[str, str, str]) -> None:
        mode, full, rel = item
        try:
            if mode == "120000":
                digests[rel] = hashlib.sha256(os.fsencode(os.readlink(full))).hexdigest()
            else:
                digests[rel] = _hash_file(full, blob=False)[1]
        except OSError as err:
            raise SourceError(f"cannot read {full}: {err.strerror}", rel) from err

    _run_threads(one, found)
    return _make((FileEntry(mode, digests[rel], rel) for mode, _, rel in found), directory)


# --- shared ----------------------------------------------------------------------------


def _make(files: Iterable[FileEntry], directory: Path, **git: str | int | None) -> Snapshot:
    try:
        return Snapshot.of(files, **git)  # type: ignore[arg-type]
    except FormatError as err:
        raise SourceError(f"{directory}: {err.reason}", str(err.data)) from err


def _utf8(raw: bytes, directory: Path) -> str:
    try:
        return check_path(raw.decode("utf-8"))
    except (UnicodeDecodeError, FormatError) as err:
        shown = raw.decode("utf-8", "backslashreplace")
        raise SourceError(
            f"{directory}: the path {shown!r} cannot be in a manifest", shown
        ) from err


def _hash_file(path: str, *, blob: bool) -> tuple[str, str]:
    """(git blob id or "", sha256) of a regular file, not following a symlink."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        if size <= _CHUNK:
            data = os.read(fd, size + 1)
            if blob:
                return _blob_digests([data], len(data))
            return "", hashlib.sha256(data).hexdigest()
        h256 = hashlib.sha256()
        h1 = hashlib.sha1(f"blob {size}\0".encode()) if blob else None
        total = 0
        while chunk := os.read(fd, _CHUNK):
            h256.update(chunk)
            if h1 is not None:
                h1.update(chunk)
            total += len(chunk)
        if h1 is not None and total != size:
            return "", h256.hexdigest()  # changed while read: not the blob
        return (h1.hexdigest() if h1 is not None else ""), h256.hexdigest()
    finally:
        os.close(fd)


def _blob_digests(parts: Sequence[bytes], size: int) -> tuple[str, str]:
    h1 = hashlib.sha1(f"blob {size}\0".encode())
    h256 = hashlib.sha256()
    for part in parts:
        h1.update(part)
        h256.update(part)
    return h1.hexdigest(), h256.hexdigest()


def _run_threads(
    fn: Callable[[tuple[str, str, str]], None], items: Sequence[tuple[str, str, str]]
) -> None:
    if len(items) < 64:
        for item in items:
            fn(item)
        return
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(fn, items, chunksize=64):
            pass
