"""Storage failures (disk full) are clear errors and never lose or corrupt acknowledged entries."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from overt.errors import LogError
from overt.formats.note import parse_vkey
from overt.log.client import DirectorySource, verify_log
from overt.log.log import Log

ORIGIN = "faults.example/log"


class DiskFull:
    """Makes a function fail with ENOSPC the next ``times`` calls (a full disk)."""

    def __init__(self, target: Any, name: str, times: int = 1) -> None:
        self.target, self.name, self.times = target, name, times
        self.original: Callable[..., Any] = getattr(target, name)
        setattr(target, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.times > 0:
            self.times -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.original(*args, **kwargs)


class FullFilesystem:
    """The os module as overt.log.fs sees it, with writes failing (ENOSPC) while ``full``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
        self.real = module.os
        self.full = True
        monkeypatch.setattr(module, "os", self)

    def write(self, fd: int, data: Any) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        written: int = self.real.write(fd, data)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class FullDatabase:
    """SQLite that cannot grow: every connection's max_page_count is its current size.

    SQLite then fails any write that needs a new page with "database or disk is full".
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        event.listen(engine, "connect", self._limit)
        engine.dispose()  # new connections get the limit

    @staticmethod
    def _limit(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        (pages,) = cur.execute("PRAGMA page_count").fetchone()
        cur.execute(f"PRAGMA max_page_count={pages}")
        cur.close()

    def free(self) -> None:
        event.remove(self.engine, "connect", self._limit)
        self.engine.dispose()


def check(directory: Path, expected: list[bytes]) -> None:
    with Log.open(directory) as log:
        assert log.size == len(expected)
        assert [log.entry(i) for i in range(log.size)] == expected
        verify_log(DirectorySource(directory), parse_vkey(log.vkey), ORIGIN)


def test_disk_full_during_bulk_add_is_a_log_error_and_loses_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        assert log.add_many([b"a", b"b"]) == [0, 1]
        DiskFull(log.store, "write_batch")
        with pytest.raises(LogError, match="No space left"):
            log.add_many([b"c", b"d"])
        assert log.size == 2
        assert log.add_many([b"c", b"d"]) == [2, 3]  # the disk has room again
    check(directory, [b"a", b"b", b"c", b"d"])


def test_disk_full_while_publishing_the_checkpoint(tmp_path: Path) -> None:
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        log.add_many([b"a"])
        DiskFull(log.store, "write_checkpoint")
        with pytest.raises(LogError):
            log.add_many([b"b"])
        assert log.add_many([b"b", b"c"]) == [1, 2]
    check(directory, [b"a", b"b", b"c"])


def test_disk_full_during_integration_keeps_sequenced_entries(tmp_path: Path) -> None:
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        assert log.sequence([b"a", b"b"]) == [0, 1]
        # Two integrations in a row hit the full disk.
        DiskFull(log.store, "write_batch", times=2)
        with pytest.raises(LogError):
            log.integrate()
        # Sequencing goes on after the promised indices...
        assert log.sequence([b"c", b"a"]) == [2, 0]
        with pytest.raises(LogError):
            log.integrate()
        assert (log.size, log.sequenced_size) == (0, 3)
        assert log.integrate() == 3
    check(directory, [b"a", b"b", b"c"])


def test_disk_full_while_journaling_cuts_the_torn_record(tmp_path: Path) -> None:
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        assert log.sequence([b"first"]) == [0]
        real_fdatasync = os.fdatasync
        DiskFull(os, "fdatasync")
        try:
            with pytest.raises(LogError, match="journal"):
                log.sequence([b"lost, never acknowledged"])
        finally:
            os.fdatasync = real_fdatasync
        assert log.sequence([b"second"]) == [1]
        # Stop without integrating: recovery must read both acknowledged records.
        log.journal.close()
        os.close(log._lock_fd)
        log._lock_fd = -1
        log.index.close()
    check(directory, [b"first", b"second"])


def test_full_disk_and_full_index_never_move_an_acknowledged_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's reproduction: [a, b, c] must never become [a, c] or [a, c, c].

    ``a`` is 200 entries, so that committing them to the index needs new pages.
    """
    import overt.log.fs

    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        database = FullDatabase(log.index.engine)
        filesystem = FullFilesystem(monkeypatch, overt.log.fs)
        filesystem.full = False
        a = [b"a%d" % i for i in range(200)]
        assert log.add_many(a) == list(range(200))
        filesystem.full = True
        assert log.sequence([b"b"]) == [200]  # acknowledged: durable in the journal
        with pytest.raises(LogError):
            log.integrate()
        assert (log.size, log.sequenced_size) == (200, 201)
        # Space is back.
        filesystem.full = False
        database.free()
        assert log.sequence([b"c"]) == [201]
        assert log.integrate() == 202
        assert [log.entry(i) for i in range(200, 202)] == [b"b", b"c"]
    check(directory, [*a, b"b", b"c"])
