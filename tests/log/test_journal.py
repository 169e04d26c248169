"""The sequencing journal: acknowledged entries survive; torn tails are cut."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from overt.formats.note import parse_vkey
from overt.log.client import DirectorySource, verify_log
from overt.log.journal import Journal, decode, encode
from overt.log.log import Log

ORIGIN = "journal.example/log"


def test_records_round_trip() -> None:
    entries = [b"a", b"x" * 65535, b"\x00\xff"]
    data = encode(entries)
    assert decode(data) == (entries, len(data))


@pytest.mark.parametrize("cut", range(1, 12))
def test_torn_tail_is_cut_at_the_last_intact_record(cut: int) -> None:
    data = encode([b"first", b"second"])
    torn = data[: len(data) - cut]
    entries, intact = decode(torn)
    assert entries == [b"first"]
    assert intact == 2 + 5 + 4


def test_corrupt_record_stops_reading() -> None:
    data = bytearray(encode([b"first", b"second", b"third"]))
    data[13] ^= 1  # inside "second"
    assert decode(bytes(data))[0] == [b"first"]


def test_sequenced_entries_are_integrated_on_open(tmp_path: Path) -> None:
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        log.add_many([b"integrated"])
        assert log.sequence([b"a", b"b", b"integrated", b"a"]) == [1, 2, 0, 1]
        assert log.size == 1 and log.sequenced_size == 3
        # Simulate a stop before integration: drop the log without integrating.
        log.journal.close()
        os.close(log._lock_fd)
        log._lock_fd = -1
        log.index.close()
    with Log.open(directory) as log:
        assert log.size == 3
        assert [log.entry(i) for i in range(3)] == [b"integrated", b"a", b"b"]
        verify_log(DirectorySource(directory), parse_vkey(log.vkey), ORIGIN)
        # Bulk adds after sequencing keep promised indices.
        assert log.sequence([b"c"]) == [3]
        assert log.add_many([b"d", b"c"]) == [4, 3]


def test_integrated_segments_are_dropped(tmp_path: Path) -> None:
    with Log.create(tmp_path / "l", ORIGIN) as log:
        for i in range(5):
            log.sequence([b"e%d" % i])
            log.integrate()
        assert log.size == 5
        assert Journal(tmp_path / "l" / "journal").segments() == [5]


SERVER_WRITER = r"""
import sys
from overt.log.log import Log
log = Log.open(sys.argv[1])
k = log.sequenced_size
print("READY", k, flush=True)
while True:
    n = 1 + k % 37
    idx = log.sequence([b"seq-%d" % i for i in range(k, k + n)])
    assert idx == list(range(k, k + n)), (idx[:2], k)
    k += n
    print("ACK", k, flush=True)
    if k % 5 == 0:
        log.integrate()
"""


def test_kill_9_while_sequencing_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    directory = tmp_path / "l"
    Log.create(directory, ORIGIN).close()
    acknowledged = 0
    for round_ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_WRITER, str(directory)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert int(proc.stdout.readline().split()[1]) >= acknowledged
        deadline = time.monotonic() + 0.2 + 0.1 * round_
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged = max(acknowledged, int(line.split()[1]))
        proc.send_signal(signal.SIGKILL)
        for line in proc.stdout:
            acknowledged = max(acknowledged, int(line.split()[1]))
        proc.wait()
        proc.stdout.close()
        with Log.open(directory) as log:
            assert log.size >= acknowledged
            for i in range(0, acknowledged, max(1, acknowledged // 300)):
                assert log.entry(i) == b"seq-%d" % i
            verify_log(DirectorySource(directory), parse_vkey(log.vkey), ORIGIN)
    assert acknowledged > 0
