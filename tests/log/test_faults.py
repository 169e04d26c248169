"""Storage failures (disk full) are clear errors and never lose or corrupt acknowledged entries."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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
        # Integration and the recovery that follows it both hit the full disk.
        DiskFull(log.store, "write_batch", times=2)
        with pytest.raises(LogError):
            log.integrate()
        # Sequencing goes on after the promised indices...
        assert log.sequence([b"c", b"a"]) == [2, 0]
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
