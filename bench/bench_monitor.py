"""Benchmarks of the monitor (issue 3): does it keep up with a log growing at 5,000 entries/s?

Three measurements, each against a real overt log server in its own process, over HTTP,
with the monitor's default checks:

1. catch-up: a monitor with an empty state follows a log of N entries that are canonical
   DSSE envelopes (~1.3 KiB, so the ``dsse-envelope`` check parses every one): entries/s
   from the first poll to the last entry checked (the monitor's capacity);
2. paced: the log process appends DSSE entries at exactly 5,000 entries/s (library bulk
   appends, 250 every 50 ms, served by its ``LogApp`` as they land) while a monitor polls
   back to back: its lag behind the published checkpoint after each poll, and how long it
   takes to check the last entry once the growth stops. This is the issue's target;
3. live: the load generator (``bench._loadgen``, 64 keep-alive clients) writes through
   ``POST /add`` as fast as it can while the monitor follows: the same figures under the
   heaviest write path. Everything shares this machine's CPUs, so the growth rate the
   writers reach here is lower than ``bench_log``'s.

``python -m bench.bench_monitor grow DIR PORT RATE SECONDS`` is the paced log process.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench import Result, free_port
from overt.formats.dsse import Envelope, Signature, format_envelope
from overt.formats.note import parse_vkey
from overt.log.client import HTTPSource
from overt.log.log import Log
from overt.monitor import EventSink, Monitor, MonitorState
from overt.monitor.checks import default_checks

ORIGIN = "bench.example/monitor"
ROOT = Path(__file__).resolve().parent.parent
TARGET = 5000.0


def _envelopes(n: int, seed: int) -> list[bytes]:
    """Canonical DSSE envelopes with in-toto-sized payloads (signatures are random bytes:
    the monitor's checks parse envelopes, they do not hold publisher keys)."""
    rng = random.Random(seed)
    filler = base64.b64encode(rng.randbytes(600)).decode()
    out = []
    for i in range(n):
        payload = json.dumps({"_type": "https://in-toto.io/Statement/v1", "n": i, "x": filler})
        sig = Signature("publisher-key", rng.randbytes(64))
        out.append(
            format_envelope(Envelope(payload.encode(), "application/vnd.in-toto+json", (sig,)))
        )
    return out


class _Server:
    def __init__(self, directory: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "overt.cli.main",
                "log",
                "serve",
                str(directory),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # "serving ..." once it listens

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout:
            self.proc.stdout.close()


def _monitor(url: str, vkey: str, state: Path) -> tuple[Monitor, HTTPSource, EventSink]:
    source = HTTPSource(url)
    sink = EventSink(io.StringIO(), keep=100)
    monitor = Monitor(source, parse_vkey(vkey), MonitorState(state), sink, checks=default_checks())
    return monitor, source, sink


def bench_catch_up(work: Path, n: int) -> list[Result]:
    directory = work / "catch-up"
    with Log.create(directory, ORIGIN) as log:
        log.add_many(_envelopes(n, 1))
        vkey = log.vkey
    server = _Server(directory)
    try:
        monitor, source, sink = _monitor(server.url, vkey, work / "state-catch-up")
        with monitor, source:
            started = time.perf_counter()
            result = monitor.poll()
            elapsed = time.perf_counter() - started
    finally:
        server.close()
    assert result.checked == n and sink.alerts == 0, (result, sink.events[-3:])
    rate = n / elapsed
    return [
        Result(
            "monitor catch-up over HTTP (tiles, bundles, proofs, default checks)",
            rate,
            "entries/s",
            f">= {TARGET:.0f}",
            rate >= TARGET,
            f"{n} DSSE entries of {len(_envelopes(1, 1)[0])} B, state persisted per 64 tiles",
        )
    ]


def bench_live(work: Path, seconds: float) -> list[Result]:
    directory = work / "live"
    with Log.create(directory, ORIGIN) as log:
        vkey, token = log.vkey, log.token
    server = _Server(directory)
    loadgen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench._loadgen",
            server.url,
            token,
            "--clients",
            "64",
            "--seconds",
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    lags: list[int] = []
    try:
        monitor, source, sink = _monitor(server.url, vkey, work / "state-live")
        with monitor, source, httpx.Client() as http:

            def published() -> int:
                return int(http.get(f"{server.url}/checkpoint").content.split(b"\n")[1])

            while loadgen.poll() is None:
                result = monitor.poll()
                lags.append(published() - result.checked)
            stopped = time.perf_counter()
            final = published()
            while (result := monitor.poll()).checked < final:
                final = published()
            catch_up = time.perf_counter() - stopped
        assert loadgen.stdout is not None
        stats = json.loads(loadgen.stdout.read())
    finally:
        if loadgen.poll() is None:
            loadgen.kill()
        loadgen.wait(10)
        if loadgen.stdout:
            loadgen.stdout.close()
        server.close()
    assert sink.alerts == 0
    growth = stats["rate"]
    lags.sort()
    p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else 0
    lag_seconds = p99 / growth if growth else 0.0
    return [
        Result(
            "log growth during the live run (64 writers)",
            growth,
            "entries/s",
            "",
            None,
            f"{stats['requests']} entries in {stats['seconds']:.1f} s",
        ),
        Result(
            "monitor lag behind the published checkpoint, p99 over polls",
            p99,
            "entries",
            "",
            None,
            f"{len(lags)} polls; max {max(lags, default=0)}; ~{lag_seconds:.2f} s of growth",
        ),
        Result(
            "monitor: last entry checked after the writers stop",
            catch_up,
            "s",
            "<= 2",
            catch_up <= 2.0 and growth > 0,
            f"final size {result.checked}, no alerts",
        ),
    ]


def _grow(directory: str, port: int, rate: float, seconds: float) -> None:
    """The paced log process: serve ``directory`` and append ``rate`` entries/s for ``seconds``."""
    import uvicorn

    from overt.log.server import LogApp

    log = Log.open(directory)
    server = uvicorn.Server(
        uvicorn.Config(LogApp(log), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    step = 0.05
    per_step = int(rate * step)
    pool = _envelopes(per_step, 2)
    print("ready", flush=True)
    started = time.perf_counter()
    n = 0
    for k in range(int(seconds / step)):
        time.sleep(max(0.0, started + k * step - time.perf_counter()))
        # Unique entries (the log deduplicates): a counter in front of a pooled body.
        log.add_many([b"%d " % (n + i) + pool[i] for i in range(per_step)])
        n += per_step
    # Growth is n entries over the scheduled span, or longer if the appends fell behind it.
    elapsed = max(time.perf_counter() - started, int(seconds / step) * step)
    print(json.dumps({"entries": n, "seconds": elapsed, "rate": n / elapsed}), flush=True)
    sys.stdin.read()  # keep serving until the parent closes stdin
    server.should_exit = True
    thread.join(10)
    log.close()


def bench_paced(work: Path, rate: float, seconds: float) -> list[Result]:
    directory = work / "paced"
    with Log.create(directory, ORIGIN) as log:
        vkey = log.vkey
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bench_monitor",
            "grow",
            str(directory),
            str(port),
            str(rate),
            str(seconds),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stdin is not None
    lags: list[int] = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        monitor, source, sink = _monitor(url, vkey, work / "state-paced")
        with monitor, source, httpx.Client() as http:

            def published() -> int:
                return int(http.get(f"{url}/checkpoint").content.split(b"\n")[1])

            stats_line: list[str] = []
            out = proc.stdout
            reader = threading.Thread(target=lambda: stats_line.append(out.readline()), daemon=True)
            reader.start()
            while reader.is_alive():
                result = monitor.poll()
                lags.append(published() - result.checked)
            stopped = time.perf_counter()
            final = published()
            while (result := monitor.poll()).checked < final:
                final = published()
            catch_up = time.perf_counter() - stopped
        stats = json.loads(stats_line[0])
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
    assert sink.alerts == 0 and result.checked == stats["entries"]
    lags.sort()
    p99 = lags[min(len(lags) - 1, int(0.99 * len(lags)))] if lags else 0
    worst = max(lags, default=0)
    return [
        Result(
            f"monitor following a log growing at {rate:.0f} entries/s: lag p99",
            p99,
            "entries",
            f"<= {rate:.0f} (1 s of growth)",
            worst <= rate and stats["rate"] >= 0.95 * rate,
            f"growth {stats['rate']:.0f}/s for {stats['seconds']:.0f} s; {len(lags)} polls;"
            f" max lag {worst}",
        ),
        Result(
            f"monitor at {rate:.0f} entries/s: last entry checked after growth stops",
            catch_up,
            "s",
            "<= 2",
            catch_up <= 2.0,
            f"final size {result.checked}, no alerts",
        ),
    ]


def run(quick: bool) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix="overt-bench-", dir=os.environ.get("OVERT_BENCH_DIR")))
    try:
        results = bench_catch_up(work, 20_000 if quick else 100_000)
        results += bench_paced(work, TARGET, 5.0 if quick else 20.0)
        results += bench_live(work, 3.0 if quick else 10.0)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "grow":
        sys.exit("usage: python -m bench.bench_monitor grow DIR PORT RATE SECONDS")
    _grow(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
