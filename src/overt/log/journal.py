"""The sequencing journal: entries made durable before they are integrated.

``POST /add`` acknowledges an entry once it is *sequenced* (it has an index and
its bytes are on disk), not once it is integrated into tiles: one fsync of an
append-only file per batch is far cheaper than rewriting partial tiles, entry
bundles and the checkpoint, and integration then runs in larger batches behind
it (Tessera's split between sequencing and integration).

Layout: ``DIR/journal/<start>``, one segment per integration round, ``<start>``
the decimal index of its first record. A record is::

    uint16 length | entry (length bytes) | uint32 CRC-32 of (length | entry)

all big-endian. The CRC only detects a torn tail after a crash (it is not a
security mechanism: entries are authenticated by the Merkle tree once
integrated). Reading stops at the first incomplete or corrupt record; such a
record was never acknowledged because its fsync had not returned. A segment is
deleted once a published checkpoint covers all its records.

Failures (disk full): a segment is only ever appended to by the process that
opened it, and is opened (created or truncated) at the log's next index, so a
record that a failed append left behind is never followed by acknowledged
ones in the same segment. A later segment supersedes whatever earlier segments
hold from its start on: those records were never acknowledged (the log opens a
segment at ``start`` only when ``start`` entries are acknowledged). Recovery
therefore only reads; it never has to repair a segment before continuing.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from overt.errors import LogError
from overt.log.fs import fsync_dir

__all__ = ["Journal", "decode", "encode", "replay"]

_NAME = re.compile(r"0|[1-9][0-9]*")  # fullmatch: "$" would pass "5\n"
_LEN = struct.Struct(">H")
_CRC = struct.Struct(">I")


def encode(entries: Sequence[bytes]) -> bytes:
    parts: list[bytes] = []
    for entry in entries:
        head = _LEN.pack(len(entry))
        parts += (head, entry, _CRC.pack(zlib.crc32(entry, zlib.crc32(head))))
    return b"".join(parts)


def decode(data: bytes) -> tuple[list[bytes], int]:
    """Records of a segment, and the byte length of its intact prefix."""
    entries: list[bytes] = []
    pos = 0
    while pos + 2 <= len(data):
        (length,) = _LEN.unpack_from(data, pos)
        end = pos + 2 + length
        if length == 0 or end + 4 > len(data):
            break
        (crc,) = _CRC.unpack_from(data, end)
        if crc != zlib.crc32(data[pos + 2 : end], zlib.crc32(data[pos : pos + 2])):
            break
        entries.append(data[pos + 2 : end])
        pos = end + 4
    return entries, pos


def replay(segments: Iterable[tuple[int, list[bytes]]], size: int) -> list[bytes]:
    """The acknowledged records at indices ``size``, ``size + 1``... of ``segments``.

    ``segments`` are (start, records) oldest first; a later segment supersedes
    earlier ones from its start on. Raises LogError if an index is missing.
    """
    staged: list[bytes] = []
    for start, records in segments:
        if start < size + len(staged):
            del staged[max(0, start - size) :]
        for offset, entry in enumerate(records):
            index = start + offset
            if index < size:
                continue
            if index != size + len(staged):
                raise LogError(f"journal segment {start} skips to index {index} (log size {size})")
            staged.append(entry)
    return staged


class Journal:
    """Append-only segments of sequenced, not yet integrated, entries."""

    def __init__(self, directory: Path) -> None:
        """Raises OSError if the directory cannot be created."""
        self.directory = directory
        directory.mkdir(exist_ok=True)
        self._fd = -1
        self._start = -1
        self._next = -1

    @property
    def next_index(self) -> int:
        """Index the next appended record will have; -1 when no segment is open."""
        return self._next if self._fd >= 0 else -1

    def segments(self) -> list[int]:
        return sorted(int(p.name) for p in self.directory.iterdir() if _NAME.fullmatch(p.name))

    def recover(self) -> Iterator[tuple[int, list[bytes]]]:
        """(start index, intact records) of every segment, oldest first. Only reads."""
        for start in self.segments():
            yield start, decode((self.directory / str(start)).read_bytes())[0]

    def open_segment(self, start: int) -> None:
        """Direct later appends to a fresh segment whose first record will have index ``start``.

        Anything a segment of that name held is discarded: records at ``start``
        and beyond were never acknowledged. Raises OSError; no segment is open
        then (the file may exist and supersede older segments from ``start`` on,
        so nothing may be appended to those any more).
        """
        self.close()
        path = self.directory / str(start)
        # O_NOFOLLOW: a link planted at the next segment's name (say, to log.skey)
        # must fail the open, not get its target truncated.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW
        fd = os.open(path, flags, 0o600)
        try:
            os.fsync(fd)
            fsync_dir(self.directory)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._start, self._next = fd, start, start

    def append(self, entries: Sequence[bytes]) -> None:
        """Durably append records to the open segment (one write, one fsync). Raises OSError."""
        if self._fd < 0:
            raise OSError("no open journal segment (a previous failure closed it)")
        data = encode(entries)
        try:
            start = os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:
            self.close()
            raise
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            os.fdatasync(self._fd)
        except OSError:
            # A torn record would hide every later record from recovery: cut the
            # segment back to where this append began, or stop using it (the log
            # then opens a fresh segment, which supersedes what is left here).
            try:
                os.ftruncate(self._fd, start)
                os.fsync(self._fd)
            except OSError:
                self.close()
            raise
        self._next += len(entries)

    def drop_before(self, size: int) -> None:
        """Delete segments all of whose records are below ``size`` (never the open one)."""
        removed = False
        starts = self.segments()
        keep = self._start if self._fd >= 0 else None
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else None
            if start != keep and end is not None and end <= size:
                (self.directory / str(start)).unlink(missing_ok=True)
                removed = True
        if removed:
            fsync_dir(self.directory)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
