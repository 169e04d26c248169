"""kill -9 during bulk adds: nothing acknowledged is lost and the tree never forks."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from overt.formats.checkpoint import open_checkpoint
from overt.formats.note import parse_vkey
from overt.log.client import DirectorySource, verify_log
from overt.log.log import Log

ORIGIN = "crash.example/log"

# The writer acknowledges a batch (prints its last index) only after add_many
# returned, i.e. after the log said the entries are durable.
WRITER = r"""
import random, sys
from overt.log.log import Log
log = Log.open(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
k = log.size
print("READY", k, flush=True)
while True:
    n = rng.choice([1, 7, 255, 256, 1000, 5000])
    batch = [b"crash-entry-%d-" % i + b"x" * (i % 50) for i in range(k, k + n)]
    indices = log.add_many(batch)
    assert indices == list(range(k, k + n)), (indices[:3], k)
    k += n
    print("ACK", k, flush=True)
"""


def entry(i: int) -> bytes:
    return b"crash-entry-%d-" % i + b"x" * (i % 50)


def test_kill_9_during_bulk_adds_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    Log.create(directory, ORIGIN).close()
    vkey = (directory / "log.vkey").read_text().strip()
    rng = random.Random(1234)
    acknowledged = 0
    checkpoints: list[bytes] = []
    for round_ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory), str(round_)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline().split()
        assert ready[0] == "READY"
        # Everything acknowledged before the previous kill must be there.
        assert int(ready[1]) >= acknowledged
        deadline = time.monotonic() + rng.uniform(0.05, 0.6)
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged = max(acknowledged, int(line.split()[1]))
        proc.send_signal(signal.SIGKILL)
        # Lines already written before the kill were acknowledged too.
        for line in proc.stdout:
            acknowledged = max(acknowledged, int(line.split()[1]))
        proc.wait()
        proc.stdout.close()
        with Log.open(directory) as log:
            assert log.size >= acknowledged
            for i in sorted(
                {
                    0,
                    acknowledged - 1,
                    acknowledged // 2,
                    *rng.sample(range(max(acknowledged, 1)), min(200, acknowledged)),
                }
            ):
                if i < acknowledged:
                    assert log.entry(i) == entry(i)
            checkpoints.append(log.checkpoint())
            verify_log(DirectorySource(directory), parse_vkey(vkey), ORIGIN)
    assert acknowledged > 0
    # The history is one tree: every checkpoint is consistent with the last.
    verifier = parse_vkey(vkey)
    with Log.open(directory) as log:
        from overt.formats.merkle import verify_consistency

        last = open_checkpoint(checkpoints[-1], verifier).checkpoint
        for note in checkpoints[:-1]:
            cp = open_checkpoint(note, verifier).checkpoint
            if 0 < cp.size <= last.size:
                verify_consistency(
                    cp.size,
                    last.size,
                    cp.root_hash,
                    last.root_hash,
                    log.consistency_proof(cp.size, last.size),
                )
