"""Filesystem storage for tiles, entry bundles and the checkpoint.

The directory is laid out exactly as c2sp.org/tlog-tiles serves it, so a static
file server (or ``overt log serve``) can serve it as is::

    <root>/checkpoint
    <root>/tile/<L>/<N>[.p/<W>]
    <root>/tile/entries/<N>[.p/<W>]

Crash consistency: every file is written to a temporary name, fsynced, then
renamed over its final name, and the directories touched are fsynced before
:meth:`TileStore.write_batch` returns. The log only writes the checkpoint after
``write_batch`` for every tile it commits to has returned, so a published
checkpoint never refers to a tile that could be lost by a crash.

Symlinks: nothing under the root is ever reached through a symbolic link.
Reads walk the path one component at a time with ``O_NOFOLLOW`` (``openat``
style, through ``dir_fd``) and accept only regular files, so a link planted at
a tile, at a directory on its path or at the checkpoint (say, to ``log.skey``)
is answered as "not found", never followed; a loop (``ELOOP``) likewise.
Temporary files get a random name and are created ``O_CREAT | O_EXCL |
O_NOFOLLOW``, so a planted name is never written through. The root itself may
be a symlink (an operator's choice of disk).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from overt.errors import LogError, NotFoundError
from overt.log.backend import CheckpointConflictError

__all__ = ["CheckpointFile", "TileStore", "atomic_write", "fsync_dir", "read_beneath"]

CHECKPOINT = "checkpoint"


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (new names, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes, mode: int = 0o644, *, sync: bool = True) -> Path:
    """Write ``data`` to a temporary sibling of ``path``, fsync it, return the temp path.

    Raises OSError (disk full...); the temporary file is removed then.
    """
    tmp, fd = _create_temp(path, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _discard([tmp])
        raise
    os.close(fd)
    return tmp


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _create_temp(path: Path, mode: int) -> tuple[Path, int]:
    """A new temporary sibling of ``path`` (random name, ``O_EXCL | O_NOFOLLOW``) and its fd.

    Whatever already has the name (a planted symlink, a stale file) is never
    opened: another random name is tried. Raises OSError.
    """
    for _ in range(8):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            return tmp, os.open(tmp, _TEMP_FLAGS, mode)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def _discard(paths: Iterable[Path]) -> None:
    """Remove temporary files after a failure, as far as the failing disk allows."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


# fsync releases the GIL: syncing a batch's files from several threads lets the
# device work on them together instead of one flush at a time.
_SYNC_THREADS = 8
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="overt-fsync")
    return _pool


def atomic_write(
    path: Path, data: bytes, mode: int = 0o644, *, sync: bool = True, exclusive: bool = False
) -> None:
    """Durably replace ``path`` with ``data``: temp file, fsync, rename, fsync dir.

    The temporary file has a random name and is created ``O_EXCL | O_NOFOLLOW``,
    so nothing planted beside ``path`` is ever written through. ``sync=False``
    skips both fsyncs (derived data that can be made again, e.g. a bundle file);
    ``exclusive=True`` never replaces an existing ``path`` (a private key): the
    file is linked into place, which fails atomically if the name exists.

    Raises OSError (FileExistsError with ``exclusive``); ``path`` then holds the
    old or (rarely) the new content.
    """
    try:
        tmp = _write_synced(path, data, mode, sync=sync)
    except FileNotFoundError:  # no parent directory yet (not two syscalls on every write)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _write_synced(path, data, mode, sync=sync)
    try:
        if exclusive:
            os.link(tmp, path, follow_symlinks=False)
            _discard([tmp])
        else:
            os.replace(tmp, path)
    except BaseException:
        _discard([tmp])
        raise
    # If this fails the new content may be visible but not yet durable: callers
    # re-read the file to learn which one is there.
    if sync:
        fsync_dir(path.parent)


class TileStore:
    """Tiles, entry bundles and the checkpoint under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._known_dirs: set[Path] = set()

    def _path(self, relpath: str) -> Path:
        return self.root.joinpath(*_parts(relpath))

    def read(self, relpath: str) -> bytes:
        """Return the stored bytes of a regular file under the root, never through a symlink.

        Raises:
            NotFoundError: absent, not a regular file, or reached through a
                symlink (a link at the file or at any directory on its path).
            LogError: the file exists but cannot be read (permissions, I/O error).
        """
        return read_beneath(self.root, relpath)

    def write_batch(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Durably write many tiles/bundles; returns once all are on disk.

        Raises OSError (disk full...). Some of the files may have been replaced
        then (never one a checkpoint covers: the log writes new tiles only) and
        no temporary file is left behind.
        """
        dirs: set[Path] = set()
        new_dirs: set[Path] = set()
        jobs: list[tuple[Path, bytes]] = []
        for relpath, data in items:
            path = self._path(relpath)
            parent = path.parent
            if parent not in self._known_dirs:
                self._mkdirs(parent, dirs)
                new_dirs.add(parent)
            jobs.append((path, data))
            dirs.add(parent)
        # Never write through a directory symlink planted in the tree; checked on
        # every batch, since a known directory may have been swapped for a link.
        for parent in {path.parent for path, _ in jobs}:
            _refuse_links(self.root, parent)
        pool = _executor()
        futures = [pool.submit(_write_synced, *job) for job in jobs]
        temps: list[Path] = []
        failure: BaseException | None = None
        for future in futures:
            try:
                temps.append(future.result())
            except BaseException as err:  # wait for every job, then clean up
                failure = failure or err
        if failure is not None:
            _discard(temps)
            raise failure
        for n, (tmp, (path, _)) in enumerate(zip(temps, jobs, strict=True)):
            try:
                os.replace(tmp, path)
            except BaseException:
                _discard(temps[n:])
                raise
        list(pool.map(fsync_dir, dirs))
        # Only now is every new directory durable in its parent.
        self._known_dirs |= new_dirs

    def _mkdirs(self, parent: Path, dirs: set[Path]) -> None:
        # New directories must themselves be durable in their parents. A directory
        # a failed batch created may exist without being durable: sync every
        # ancestor up to the root, once per directory and process.
        _refuse_links(self.root, parent)  # before mkdir creates anything through one
        parent.mkdir(parents=True, exist_ok=True)
        p = parent
        while p != self.root and p != p.parent:
            p = p.parent
            dirs.add(p)

    def read_checkpoint(self) -> bytes:
        return self.read(CHECKPOINT)

    def write_checkpoint(self, note: bytes) -> None:
        """Publish a checkpoint. Callers must have made its tiles durable first."""
        atomic_write(self.root / CHECKPOINT, note)


class CheckpointFile:
    """The log's signed checkpoint in one file (``DIR/checkpoint``): a
    :class:`~overt.log.backend.CheckpointLock` for a log directory.

    The compare in :meth:`replace` is against the last checkpoint this object
    read or wrote, not a fresh read of the file: the log directory's ``flock``
    makes its holder the only writer, so the file cannot change behind it. After
    a failed write that memory is dropped and the file itself is compared.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._known: bytes | None = None

    def fetch(self) -> bytes:
        """The stored checkpoint. Raises NotFoundError (no file), OSError."""
        try:
            note = self.path.read_bytes()
        except FileNotFoundError as err:
            raise NotFoundError(f"no checkpoint at {self.path}") from err
        self._known = note
        return note

    def create(self, note: bytes) -> None:
        """Write the first checkpoint. Raises LogError if there is one, OSError."""
        if self.path.exists():
            raise LogError(f"{self.path} already holds a checkpoint")
        self._swap(note)

    def replace(self, old: bytes, new: bytes) -> None:
        """Replace ``old`` by ``new`` durably. Raises CheckpointConflictError, OSError."""
        current = self._known
        if current is None:
            try:
                current = self.fetch()
            except NotFoundError:
                current = None
        if current != old:
            raise CheckpointConflictError(old, current)
        self._swap(new)

    def _swap(self, note: bytes) -> None:
        self._known = None  # unknown until the write returned: the next compare re-reads
        atomic_write(self.path, note)
        self._known = note


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted in the tree must not hang the reader in open().
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# What a missing object or a refused link looks like: ELOOP (a symlink opened
# with O_NOFOLLOW, or a loop), ENOTDIR (a file or link where a directory
# should be), EMLINK (FreeBSD's O_NOFOLLOW), ENXIO (a socket).
_ABSENT = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EISDIR, errno.EMLINK, errno.ENXIO}


def _parts(relpath: str) -> list[str]:
    # Paths come from overt.formats.tiles (canonical) or the server, which
    # parses them strictly before asking; refuse anything that is not plain.
    parts = relpath.split("/")
    if any(part in ("", ".", "..") or "\0" in part for part in parts):
        raise NotFoundError(f"no such object: {relpath}")
    return parts


def read_beneath(root: Path, relpath: str) -> bytes:
    """The bytes of the regular file ``root/relpath``, walked without following any symlink.

    Each directory on the path is opened relative to the one before it with
    ``O_NOFOLLOW | O_DIRECTORY`` and the file with ``O_NOFOLLOW``, so no link
    below ``root`` is ever followed, even one swapped in while reading.

    Raises:
        NotFoundError: absent, not a regular file, or reached through a symlink.
        LogError: it exists but cannot be read (permissions, I/O error).
    """
    parts = _parts(relpath)
    try:
        dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise _read_error(relpath, err) from err
    try:
        for part in parts[:-1]:
            fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = fd
        fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        raise _read_error(relpath, err) from err
    finally:
        os.close(dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotFoundError(f"no such object: {relpath} (not a regular file)")
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as err:
        raise _read_error(relpath, err) from err
    finally:
        os.close(fd)


def _refuse_links(root: Path, directory: Path) -> None:
    """Raise OSError (ELOOP) if a directory between ``root`` and ``directory`` is a symlink."""
    path = root
    for part in directory.relative_to(root).parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return  # nothing below exists yet
        if stat.S_ISLNK(mode):
            raise OSError(errno.ELOOP, "symlink in the tile tree (not followed)", str(path))


def _read_error(relpath: str, err: OSError) -> NotFoundError | LogError:
    if err.errno == errno.ELOOP:
        return NotFoundError(f"no such object: {relpath} (symlinks are not followed)")
    if err.errno in _ABSENT:
        return NotFoundError(f"no such object: {relpath}")
    return LogError(f"cannot read {relpath}: {err.strerror}")
