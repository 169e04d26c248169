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
    """Write ``data`` to a temporary sibling of ``path``, fsync it, return the temp path."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


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
    """Durably replace ``path`` with ``data``: temp file, fsync, rename, fsync dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_synced(path, data, mode)
    os.replace(tmp, path)
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
        """Durably write many tiles/bundles; returns once all are on disk."""
        dirs: set[Path] = set()
        jobs: list[tuple[Path, bytes]] = []
        for relpath, data in items:
            path = self._path(relpath)
            parent = path.parent
            if parent not in self._known_dirs:
                self._mkdirs(parent, dirs)
            jobs.append((path, data))
            dirs.add(parent)
        pool = _executor()
        temps = list(pool.map(lambda job: _write_synced(*job), jobs))
        for tmp, (path, _) in zip(temps, jobs, strict=True):
            os.replace(tmp, path)
        list(pool.map(fsync_dir, dirs))

    def _mkdirs(self, parent: Path, dirs: set[Path]) -> None:
        # New directories must themselves be durable in their parents.
        missing: list[Path] = []
        p = parent
        while not p.exists():
            missing.append(p)
            p = p.parent
        parent.mkdir(parents=True, exist_ok=True)
        for m in missing:
            dirs.add(m.parent)
        self._known_dirs.add(parent)

    def read_checkpoint(self) -> bytes:
        return self.read(CHECKPOINT)

    def write_checkpoint(self, note: bytes) -> None:
        """Publish a checkpoint. Callers must have made its tiles durable first."""
        atomic_write(self.root / CHECKPOINT, note)
