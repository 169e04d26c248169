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
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from overt.errors import NotFoundError

__all__ = ["TileStore", "atomic_write", "fsync_dir"]

CHECKPOINT = "checkpoint"


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (new names, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes, mode: int = 0o644) -> Path:
    """Write ``data`` to a temporary sibling of ``path``, fsync it, return the temp path.

    Raises OSError (disk full...); the temporary file is removed then.
    """
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _discard([tmp])
        raise
    os.close(fd)
    return tmp


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


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Durably replace ``path`` with ``data``: temp file, fsync, rename, fsync dir.

    Raises OSError; ``path`` then holds the old or (rarely) the new content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_synced(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        _discard([tmp])
        raise
    # If this fails the new content may be visible but not yet durable: callers
    # re-read the file to learn which one is there.
    fsync_dir(path.parent)


class TileStore:
    """Tiles, entry bundles and the checkpoint under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._known_dirs: set[Path] = set()

    def _path(self, relpath: str) -> Path:
        # Paths come from overt.formats.tiles (canonical) or the server, which
        # parses them strictly before asking; refuse anything that escapes.
        if relpath.startswith("/") or ".." in relpath.split("/"):
            raise NotFoundError(f"no such object: {relpath}")
        return self.root / relpath

    def read(self, relpath: str) -> bytes:
        """Return the stored bytes. Raises NotFoundError if absent."""
        try:
            return self._path(relpath).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as err:
            raise NotFoundError(f"no such object: {relpath}") from err

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
