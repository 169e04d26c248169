"""Benchmark of issue 16's mirror: catching up on a big log, and lag behind a busy one.

1. Catch-up: a log of 1,000,000 entries (``--quick``: 100,000) is built with the
   log's bulk API (``Log.add_many``); a mirror (``overt mirror serve``, its own
   process, SQLite state with ``synchronous=FULL``, tiles fsynced) starts empty,
   and one push (:class:`overt.mirror.MirrorPusher`, reading the log directory,
   over loopback HTTP with gzip) brings it up to the log's checkpoint, while
   another process reads the mirror's checkpoint and tiles (100 reads/s, a
   monitor-like load; unpaced, the reader takes most of a core of this 2-core
   machine for itself). The figure
   is entries per second from the first request to the mirror's cosignature
   (every entry durable).
2. Steady state: a writer appends 500 entries every 0.1 s (5,000 entries/s) to
   the log for 10 s (``--quick``: 3 s) while ``MirrorPusher.follow`` keeps the
   mirror up (interval 0.05 s). The lag of a batch is the time from the log
   returning its append (entries durable, checkpoint published) to the mirror's
   cosignature covering it; the figure is its p99.

    python -m bench mirror [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import Result, free_port

ROOT = Path(__file__).resolve().parent.parent
CATCH_UP_TARGET = 50_000.0
LAG_TARGET = 1.0
RATE = 5_000
#: Reads a second (checkpoint or a random tile) a monitor-like reader makes meanwhile.
READS = 100
ORIGIN = "bench.example/log"
_OVERT = [sys.executable, "-m", "overt.cli.main"]

# Reads the mirror's checkpoint and random tiles in a loop; prints how many it read.
_READER = r"""
import random, signal, sys, time, httpx
url, until, rate = sys.argv[1], time.monotonic() + float(sys.argv[2]), float(sys.argv[3])
start = time.monotonic()
n = errors = 0
def done(*_):
    print(n, errors, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
with httpx.Client(timeout=5) as http:
    while time.monotonic() < until:
        try:
            r = http.get(url + "/checkpoint")
            size = int(r.text.split("\n")[1]) if r.status_code == 200 else 0
            if size >= 256:
                k = random.randrange(size // 256)
                r = http.get(url + "/tile/0/%03d" % k if k < 1000 else url + "/checkpoint")
            n += 1
            time.sleep(max(0.0, start + n / rate - time.monotonic()))
        except (httpx.HTTPError, ValueError, IndexError):
            errors += 1
            time.sleep(0.05)
done()
"""


def _build_log(directory: Path, size: int) -> None:
    from overt.log.log import Log

    log = Log.create(directory, ORIGIN)
    try:
        step = 50_000
        for start in range(0, size, step):
            log.add_many([b"bench entry %d" % i for i in range(start, min(size, start + step))])
    finally:
        log.close()


def _serve(directory: Path, port: int) -> subprocess.Popen[bytes]:
    import httpx

    proc = subprocess.Popen(
        [*_OVERT, "mirror", "serve", str(directory), "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/logs", timeout=1)
            return proc
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mirror server did not start") from None
            time.sleep(0.05)


def _pusher(log_dir: Path, url: str, mirror_vkey: str):  # type: ignore[no-untyped-def]
    from overt.formats.note import parse_vkey
    from overt.log.client import DirectorySource
    from overt.mirror.client import MirrorClient, MirrorPusher

    log_key = parse_vkey((log_dir / "log.vkey").read_text().strip())
    return MirrorPusher(
        DirectorySource(log_dir), log_key, MirrorClient(url), mirror_key=parse_vkey(mirror_vkey)
    )


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")


def bench(work: Path, size: int, seconds: float) -> list[Result]:
    from overt.log.log import Log
    from overt.mirror.config import init_mirror, trust_log
    from overt.mirror.store import origin_hash

    log_dir = work / "log"
    started = time.perf_counter()
    _build_log(log_dir, size)
    build = time.perf_counter() - started
    mirror_dir = work / "mirror"
    vkey = init_mirror(mirror_dir, "bench.example/mirror")
    trust_log(mirror_dir, (log_dir / "log.vkey").read_text())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(mirror_dir, port)
    try:
        reader = subprocess.Popen(
            [sys.executable, "-c", _READER, f"{url}/{origin_hash(ORIGIN)}", "600", str(READS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        with _pusher(log_dir, url, vkey) as pusher:
            started = time.perf_counter()
            result = pusher.push()
            elapsed = time.perf_counter() - started
        reader.terminate()
        reader.wait(10)
        assert result.size == size, result
        catch_up = size / elapsed

        # Steady state behind a log taking RATE entries/s.
        log = Log.open(log_dir)
        batches: list[tuple[int, float]] = []
        pushes: list[tuple[int, float]] = []
        stop = threading.Event()

        def write() -> None:
            per = RATE // 10
            k = log.size
            next_at = time.perf_counter()
            end = next_at + seconds
            while next_at < end:
                log.add_many([b"steady entry %d" % i for i in range(k, k + per)])
                k += per
                batches.append((k, time.perf_counter()))
                next_at += 0.1
                time.sleep(max(0.0, next_at - time.perf_counter()))

        with _pusher(log_dir, url, vkey) as follower:
            follow = threading.Thread(
                target=follower.follow,
                args=(0.05,),
                kwargs={
                    "stop": stop.is_set,
                    "on_push": lambda r: pushes.append((r.size, time.perf_counter())),
                },
            )
            follow.start()
            writer = threading.Thread(target=write)
            writer.start()
            writer.join()
            deadline = time.perf_counter() + 10
            while (not pushes or pushes[-1][0] < batches[-1][0]) and time.perf_counter() < deadline:
                time.sleep(0.02)
            stop.set()
            follow.join(30)
        log.close()
        lags = []
        for end, written in batches:
            covered = [t for s, t in pushes if s >= end and t >= written]
            lags.append((min(covered) if covered else float("inf")) - written)
    finally:
        server.terminate()
        server.wait(30)
    reads = (reader.stdout.read() if reader.stdout else "0 0").split()
    reader_count = int(reads[0]) if reads else 0
    p99, p50 = _pct(lags, 0.99), _pct(lags, 0.50)
    return [
        Result(
            f"mirror catch-up on a {size:,}-entry log, loopback, durable, while serving reads",
            catch_up,
            "entries/s",
            f">= {CATCH_UP_TARGET:,.0f}",
            catch_up >= CATCH_UP_TARGET,
            f"{elapsed:.1f} s; {reader_count} reads served meanwhile (paced at {READS}/s);"
            f" log built in {build:.1f} s (bulk API)",
        ),
        Result(
            f"mirror lag behind a log taking {RATE:,} entries/s, p99",
            p99,
            "s",
            f"<= {LAG_TARGET:g}",
            p99 <= LAG_TARGET,
            f"p50 {p50:.3f} s; {len(batches)} batches of {RATE // 10} over {seconds:g} s;"
            f" push interval 0.05 s",
        ),
    ]


def run(quick: bool) -> list[Result]:
    size = 100_000 if quick else 1_000_000
    seconds = 3.0 if quick else 10.0
    with tempfile.TemporaryDirectory(prefix="overt-bench-mirror-") as tmp:
        return bench(Path(tmp), size, seconds)
