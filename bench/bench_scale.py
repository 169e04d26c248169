"""Scale-out figures: two ``overt log serve`` front ends on one shared log (sequencing and
the checkpoint in PostgreSQL, tiles on S3-compatible storage: moto's server mode, an
*emulator*, on 127.0.0.1), 64 concurrent submitters spread over both.

Every acknowledged entry is then checked against the bucket's entry bundles: the
``lost`` figure counts acknowledged entries not at their index, ``duplicated``
entries in the log more than once; both must be 0. The run is the issue's full
minute (60 s; ``OVERT_BENCH_SCALE_SECONDS`` sets another length), 3 s with
``--quick``. Everything runs on the same 2 cores: the load
generator, both front ends, PostgreSQL and moto (moto's own CPU included). Where
the time goes is measured per process (CPU ms per entry, from /proc) and reported
with the p50 row, with the rate that much CPU allows on 2 cores: the rate itself
also depends on whatever else the machine runs meanwhile. Beside it: the time to
acknowledgement (p50, p99) and the front ends' sequencing batches (``GET /metrics``:
how many, and their mean size), which bound the rate of 64 clients in a closed loop. Needs
PostgreSQL at ``OVERT_BENCH_POSTGRES`` (default the test database on
127.0.0.1:5432) and ``moto[server]``; without them it reports nothing and says
why. For scale: Trillian publishes 400-500 entries/s on MySQL, Tessera ~10,000
entries/s with its POSIX driver on 7 cores; the issue's target is 10,000 entries/s
on this 2-core machine.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import Result, free_port
from overt.formats import tiles

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = os.environ.get("OVERT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ORIGIN = "bench.example/scale"
FRONT_ENDS = 2
CLIENTS = 64
SIZE = 1024


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process used so far (Linux /proc), 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_cpu() -> float:
    """CPU seconds of every process named postgres (this machine's server, whoever uses it)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().split(" ", 2)[1] == "(postgres)":
                total += _cpu(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return total


def _wait_port(port: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def run(quick: bool) -> list[Result]:
    try:
        import boto3
        from sqlalchemy import create_engine, text
    except ImportError as err:
        print(f"bench scale: skipped ({err})", file=sys.stderr)
        return []
    schema = f"overt_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as err:
        admin.dispose()
        print(f"bench scale: skipped (no PostgreSQL: {err})", file=sys.stderr)
        return []
    work = Path(tempfile.mkdtemp(prefix="overt-bench-scale-"))
    s3_port = free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="emulator", AWS_SECRET_ACCESS_KEY="emulator")
    emulator = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        if not _wait_port(s3_port, 30):
            print("bench scale: skipped (the S3 emulator did not start)", file=sys.stderr)
            return []
        endpoint = f"http://127.0.0.1:{s3_port}"
        os.environ.update(AWS_ACCESS_KEY_ID="emulator", AWS_SECRET_ACCESS_KEY="emulator")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="bench"
        )
        index = f"{POSTGRES}?options=-csearch_path%3D{schema}"
        return _http(work, f"s3://bench/log?endpoint={endpoint}", index, env, quick, emulator.pid)
    finally:
        emulator.terminate()
        emulator.wait(10)
        shutil.rmtree(work, ignore_errors=True)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _http(
    work: Path, tiles_url: str, index: str, env: dict[str, str], quick: bool, emulator: int
) -> list[Result]:
    from overt.log.shared import SharedLog

    first = work / "fe0"
    SharedLog.create(first, ORIGIN, tiles=tiles_url, index=index).close()
    directories = [first]
    for n in range(1, FRONT_ENDS):
        shutil.copytree(first, work / f"fe{n}")
        directories.append(work / f"fe{n}")
    ports = [free_port() for _ in directories]
    servers = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "overt.cli.main", "log", "serve", str(directory)),
                *("--listen", f"127.0.0.1:{port}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env, PYTHONUNBUFFERED="1"),
            text=True,
        )
        for directory, port in zip(directories, ports, strict=True)
    ]
    try:
        for server in servers:
            assert server.stdout is not None
            server.stdout.readline()
        token = (first / "token").read_text().strip()
        seconds = 3.0 if quick else float(os.environ.get("OVERT_BENCH_SCALE_SECONDS", "60"))
        urls = ",".join(f"http://127.0.0.1:{port}" for port in ports)
        acks = work / "acks"
        pids = [server.pid for server in servers]
        before = ([_cpu(pid) for pid in pids], _cpu(emulator), _postgres_cpu())
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(
            [
                *(sys.executable, "-m", "bench._loadgen", urls, token),
                *("--clients", str(CLIENTS), "--seconds", str(seconds), "--size", str(SIZE)),
                *("--acks", str(acks)),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        stats = json.loads(out.stdout)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        batches = _batches(ports)
        loadgen = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
        per_entry = 1000 / max(1, stats["requests"])
        used = {
            "front ends": sum(_cpu(p) - b for p, b in zip(pids, before[0], strict=True)),
            "moto": _cpu(emulator) - before[1],
            "PostgreSQL (all its processes)": _postgres_cpu() - before[2],
            "load generator": loadgen,
        }
        total = sum(used.values()) * per_entry
        cpu = (
            "CPU ms per entry: "
            + ", ".join(f"{name} {seconds * per_entry:.2f}" for name, seconds in used.items())
            + f"; {total:.2f} in all, so 2 cores alone would take ~{2000 / total:,.0f}/s"
        )
        cpu += (
            f"; acknowledged in p50 {stats['ack_p50'] * 1000:.1f} ms, p99"
            f" {stats['ack_p99'] * 1000:.1f} ms; {batches}"
        )
        lost, duplicated, size = _check(first, acks)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(10)
            if server.stdout:
                server.stdout.close()
    note = (
        f"{FRONT_ENDS} front ends, one shared log: sequencing and checkpoint in PostgreSQL,"
        f" tiles on moto's S3 emulator; {stats['requests']} requests in {seconds:.0f} s,"
        f" {stats['errors']} errors {stats['first_error']}"
    ).strip()
    return [
        Result(
            f"POST /add, {FRONT_ENDS} front ends on PostgreSQL + S3 emulator, {CLIENTS} clients",
            stats["rate"],
            "entries/s",
            ">= 10000",
            stats["rate"] >= 10000,
            note,
        ),
        Result("  time to integration p50", stats["integration_p50"] * 1000, "ms", note=cpu),
        Result(
            "  time to integration p99",
            stats["integration_p99"] * 1000,
            "ms",
            "<= 1000",
            stats["integration_p99"] <= 1.0,
            f"{stats['checkpoints']} checkpoints seen by a poller",
        ),
        Result(
            "  acknowledged entries lost or duplicated",
            lost + duplicated,
            "entries",
            "0",
            lost + duplicated == 0,
            f"{lost} lost, {duplicated} duplicated; every acknowledged index read back from"
            f" the bucket's bundles (log size {size})",
        ),
    ]


def _batches(ports: list[int]) -> str:
    """The front ends' sequencing batches (GET /metrics): how many, of how many entries."""
    import httpx

    counts = []
    for port in ports:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        values = dict(line.split() for line in text.splitlines() if line and line[0] != "#")
        counts.append(
            (
                int(values.get("overt_log_sequencing_batches_total", 0)),
                int(values.get("overt_log_sequencing_entries_total", 0)),
            )
        )
    batches = sum(b for b, _ in counts)
    entries = sum(e for _, e in counts)
    return f"{batches} sequencing batches of {entries / max(1, batches):.1f} entries on average"


def _check(directory: Path, acks: Path) -> tuple[int, int, int]:
    """(acknowledged entries not at their index, entries in the log twice, log size),
    read back from the store once a front end published everything acknowledged."""
    from overt.log.shared import SharedLog

    expected: dict[int, bytes] = {}
    for line in acks.read_text().splitlines():
        number, unique = line.split()
        expected[int(number)] = unique.encode().ljust(SIZE, b".")
    log = SharedLog(directory)
    try:
        deadline = time.monotonic() + 60
        while log.published_size <= max(expected, default=-1) and time.monotonic() < deadline:
            log.integrate()
            time.sleep(0.05)
        size = log.published_size
        entries: list[bytes] = []
        for n in range(0, size, tiles.TILE_WIDTH):
            width = min(tiles.TILE_WIDTH, size - n)
            entries += tiles.parse_entry_bundle(log.read_bundle(n // tiles.TILE_WIDTH, width))
    finally:
        log.close()
    lost = sum(1 for i, entry in expected.items() if i >= size or entries[i] != entry)
    return lost, size - len(set(entries)), size
