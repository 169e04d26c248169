"""Scale-out figures: ``overt log serve`` with its dedup index on PostgreSQL and its tiles
on S3-compatible storage (moto's server mode, an *emulator*, on 127.0.0.1), 64
concurrent submitters, beside the embedded default measured by ``bench_log``.

One front end: several front ends on one log (a sequencer lease) are not
implemented yet, so this is the single-sequencer figure on the scale-out
backends. Needs PostgreSQL at ``OVERT_BENCH_POSTGRES`` (default the test
database on 127.0.0.1:5432) and ``moto[server]``; without them it reports
nothing and says why. For scale: Trillian publishes 400-500 entries/s on
MySQL, Tessera ~10,000 entries/s with its POSIX driver on 7 cores; the issue's
target is 10,000 entries/s on this 2-core machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import Result, free_port
from overt.log.log import Log

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = os.environ.get("OVERT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ORIGIN = "bench.example/scale"


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
        return _http(work, endpoint, f"{POSTGRES}?options=-csearch_path%3D{schema}", env, quick)
    finally:
        emulator.terminate()
        emulator.wait(10)
        shutil.rmtree(work, ignore_errors=True)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def _http(work: Path, endpoint: str, index: str, env: dict[str, str], quick: bool) -> list[Result]:
    directory = work / "log"
    tiles = f"s3://bench/log?endpoint={endpoint}"
    Log.create(directory, ORIGIN, tiles=tiles, index=index).close()
    port = free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "overt.cli.main", "log", "serve", str(directory)),
            *("--listen", f"127.0.0.1:{port}"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env, PYTHONUNBUFFERED="1"),
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()
        token = (directory / "token").read_text().strip()
        seconds = 3.0 if quick else 20.0
        out = subprocess.run(
            [
                *(sys.executable, "-m", "bench._loadgen", f"http://127.0.0.1:{port}", token),
                *("--clients", "64", "--seconds", str(seconds)),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        stats = json.loads(out.stdout)
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout:
            server.stdout.close()
    note = (
        f"1 front end; index on PostgreSQL, tiles on moto's S3 emulator; {stats['requests']}"
        f" requests, {stats['errors']} errors {stats['first_error']}"
    ).strip()
    return [
        Result(
            "POST /add on PostgreSQL + S3 emulator, 64 clients",
            stats["rate"],
            "entries/s",
            ">= 10000",
            stats["rate"] >= 10000,
            note,
        ),
        Result("  time to integration p50", stats["integration_p50"] * 1000, "ms"),
        Result(
            "  time to integration p99",
            stats["integration_p99"] * 1000,
            "ms",
            "<= 1000",
            stats["integration_p99"] <= 1.0,
            f"{stats['checkpoints']} checkpoints seen by a poller",
        ),
    ]
