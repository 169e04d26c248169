"""Checkpoint latency added by witnessing (issue 3): a log and three local witnesses.

Three ``overt witness serve`` processes on 127.0.0.1 and a log with a 2-of-3
policy. Each round appends a small batch, then times ``Log.witness()``: the
parallel ``add-checkpoint`` calls with consistency proofs, checking the
cosignatures against the policy, and publishing the cosigned checkpoint
(fsync). That is the time a checkpoint waits because it is witnessed.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import Result, free_port
from overt.log.log import Log
from overt.witness.config import init_witness, trust_log

REGIONS = ("asia", "europe", "americas")


def run(quick: bool) -> list[Result]:
    rounds = 100 if quick else 500
    work = Path(
        tempfile.mkdtemp(prefix="overt-bench-witnessing-", dir=os.environ.get("OVERT_BENCH_DIR"))
    )
    procs: list[subprocess.Popen[bytes]] = []
    try:
        log = Log.create(work / "log", "bench.example/witnessed")
        lines = [f"log {log.vkey}"]
        for region in REGIONS:
            directory = work / region
            vkey = init_witness(directory, f"{region}.witness.example")
            trust_log(directory, log.vkey)
            port = free_port()
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "overt.cli.main",
                        "witness",
                        "serve",
                        str(directory),
                        "--listen",
                        f"127.0.0.1:{port}",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            lines.append(f"witness {region} {vkey} http://127.0.0.1:{port}")
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/logs", timeout=1)
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, "witness did not start"
                    time.sleep(0.1)
        lines += [f"group regions 2 {' '.join(REGIONS)}", "quorum regions"]
        log.set_policy("\n".join(lines).encode() + b"\n")
        latencies: list[float] = []
        for r in range(rounds + 10):
            log.add_many([b"round %d entry %d" % (r, i) for i in range(20)])
            started = time.perf_counter()
            result = log.witness()
            elapsed = time.perf_counter() - started
            assert result is not None and result.published, "quorum not met"
            if r >= 10:  # the first rounds open connections and catch witnesses up
                latencies.append(elapsed)
        log.close()
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(0.99 * len(latencies)) - 1] * 1000
        return [
            Result(
                "checkpoint latency added by witnessing, p50",
                p50,
                "ms",
                note="3 local witnesses, 2-of-3",
            ),
            Result(
                "checkpoint latency added by witnessing, p99",
                p99,
                "ms",
                "<= 100",
                p99 <= 100,
                f"{rounds} rounds",
            ),
        ]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)
