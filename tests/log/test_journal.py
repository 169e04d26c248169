"""The sequencing journal: acknowledged entries survive; torn tails are cut."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from overt.errors import LogError
from overt.formats.note import parse_vkey
from overt.log.client import DirectorySource, verify_log
from overt.log.journal import Journal, decode, encode, replay
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


def test_a_later_segment_supersedes_records_a_failed_append_left_behind() -> None:
    # Segment 0 acknowledged 0 and 1; an append of "lost" failed and could not
    # be cut back; the log went on with a fresh segment at its next index, 2.
    segments = [(0, [b"e0", b"e1", b"lost"]), (2, [b"e2", b"e3"])]
    assert replay(segments, 0) == [b"e0", b"e1", b"e2", b"e3"]
    assert replay(segments, 3) == [b"e3"]
    # An empty segment opened at 2 (its first append never happened) supersedes too.
    assert replay([(0, [b"e0", b"e1", b"lost"]), (2, [])], 1) == [b"e1"]


def test_a_gap_in_the_journal_is_refused() -> None:
    with pytest.raises(LogError, match="skips to index 5"):
        replay([(0, [b"e0"]), (5, [b"e5"])], 0)


def test_a_torn_segment_is_never_appended_to_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open_segment(0)
    journal.append([b"e0"])
    (tmp_path / "0").write_bytes((tmp_path / "0").read_bytes() + b"\x00\x09torn")
    # Opening the segment at the next index truncates whatever that file held.
    journal.open_segment(1)
    journal.append([b"e1"])
    (tmp_path / "1").write_bytes((tmp_path / "1").read_bytes() + b"junk")
    journal.open_segment(1)
    journal.append([b"e1 again"])
    journal.close()
    assert replay(Journal(tmp_path).recover(), 0) == [b"e0", b"e1 again"]


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
