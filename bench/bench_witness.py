"""Benchmark of issue 3's witness: ``POST /add-checkpoint`` requests per second.

The witness runs as a real server (uvicorn, its SQLite state with
``synchronous=FULL``) in one process; a load generator in another process
plays 64 logs, each on its own keep-alive connection, each submitting its next
checkpoint (1 to 4 new entries, so small proofs) as soon as the previous one
is cosigned, as a log does after each integration. Every checkpoint and proof
is made before the clock starts, so the generator spends its time on HTTP only.

    python -m bench witness                 # via the harness
    python -m bench.bench_witness loadgen URL KEYS --seconds 5   # the generator alone
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench import Result, free_port
from bench._loadgen import request

ROOT = Path(__file__).resolve().parent.parent
TARGET = 2000.0


# --- the load generator (its own process) ------------------------------------------------


def _requests(skey: str, steps: int, seed: int) -> list[bytes]:
    """``steps`` add-checkpoint bodies for one log, each extending the previous one."""
    from overt.formats.checkpoint import Checkpoint, sign_checkpoint
    from overt.formats.merkle import MemoryTree, leaf_hash
    from overt.formats.note import parse_skey
    from overt.formats.witness import AddCheckpointRequest, format_add_checkpoint

    signer = parse_skey(skey)
    rng = random.Random(seed)
    tree = MemoryTree()
    bodies = []
    old = 0
    for _ in range(steps):
        for _ in range(rng.randint(1, 4)):
            tree.append(leaf_hash(rng.randbytes(16)))
        note = sign_checkpoint(Checkpoint(signer.name, tree.size, tree.root()), signer)
        proof = tuple(tree.consistency_proof(old)) if old else ()
        bodies.append(format_add_checkpoint(AddCheckpointRequest(old, proof, note)))
        old = tree.size
    return bodies


async def _client(
    host: str, port: int, bodies: list[bytes], until: float, out: dict[str, list[object]]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST /add-checkpoint HTTP/1.1\r\nHost: {host}\r\nContent-Length: %d\r\n\r\n"
    try:
        for body in bodies:
            if time.perf_counter() >= until:
                break
            data = (head % len(body)).encode() + body
            started = time.perf_counter()
            status, reply = await request(reader, writer, data)
            if not status.startswith(b"HTTP/1.1 200") or not reply.startswith("\u2014".encode()):
                out["errors"].append(status.decode().strip() + " " + reply.decode()[:80])
                break  # this log's sequence is broken; the rest would all be 409
            out["latencies"].append(time.perf_counter() - started)
        else:
            out["exhausted"].append(1)
    finally:
        writer.close()


async def _load(url: str, logs: list[list[bytes]], seconds: float) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    out: dict[str, list[object]] = {"latencies": [], "errors": [], "exhausted": []}
    started = time.perf_counter()
    cpu = time.process_time()
    until = started + seconds
    await asyncio.gather(*(_client(host, port, bodies, until, out) for bodies in logs))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    latencies = sorted(float(x) for x in out["latencies"])  # type: ignore[arg-type]

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return {
        "requests": len(latencies),
        "errors": len(out["errors"]),
        "first_error": out["errors"][0] if out["errors"] else "",
        "exhausted": len(out["exhausted"]),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": pct(0.50) * 1e3,
        "p99_ms": pct(0.99) * 1e3,
        "loadgen_cpu": cpu / elapsed,  # cores the generator itself kept busy
    }


def _loadgen(args: argparse.Namespace) -> None:
    skeys = Path(args.keys).read_text().split()
    logs = [_requests(skey, args.steps, seed) for seed, skey in enumerate(skeys)]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_load(args.url, logs, args.seconds))), flush=True)


# --- the server (its own process) ------------------------------------------------------


def _serve(args: argparse.Namespace) -> None:
    from overt.witness.config import load_witness
    from overt.witness.server import WitnessApp, serve

    config = load_witness(args.dir)
    with config.open_state() as state:
        app = WitnessApp(state, config.logs, config.signer)
        serve(app, "127.0.0.1", args.port, ready=lambda: print("ready", flush=True))


# --- the harness entry point -----------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``, its threads and its live child
    processes (an ML-DSA-44 witness signs in workers), from Linux /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        for child in children:
            with contextlib.suppress(OSError):  # the child ended meanwhile
                total += _cpu_seconds(int(child))
    return total


def bench_add_checkpoint(
    work: Path, clients: int, seconds: float, key_type: str = "ed25519", target: float = TARGET
) -> list[Result]:
    """The witness's figures; ``key_type`` is its key's algorithm (bench_pq: ml-dsa-44)."""
    from overt.formats.note import generate_key
    from overt.witness.config import init_witness, trust_log

    directory = work / "witness"
    init_witness(directory, "bench.example/witness", key_type)
    skeys = []
    for i in range(clients):
        skey, vkey = generate_key(f"bench.example/log{i}")
        trust_log(directory, vkey)
        skeys.append(skey)
    keys = work / "log-keys"
    keys.write_text("\n".join(skeys) + "\n")
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    me = [sys.executable, "-m", "bench.bench_witness"]
    server = subprocess.Popen(
        [*me, "serve", str(directory), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"witness server did not start: {line}{server.stdout.read()}")
        # Enough precomputed checkpoints for 10,000 requests/s over the run.
        steps = int(10000 * seconds / clients) + 10
        cpu_before = _cpu_seconds(server.pid)
        out = subprocess.run(
            [
                *me,
                "loadgen",
                f"http://127.0.0.1:{port}",
                str(keys),
                "--seconds",
                str(seconds),
                "--steps",
                str(steps),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=env,
        )
        stats = json.loads(out.stdout)
        # The load generator builds its checkpoints before the clock starts: from here on
        # the server's CPU time is the requests' (what a shared machine cannot hide).
        server_cpu = _cpu_seconds(server.pid) - cpu_before
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout:
            server.stdout.close()
    rate = float(stats["rate"])
    per_request = server_cpu / max(1, int(stats["requests"]))
    note = (
        f"{stats['requests']} requests, {stats['errors']} errors, {clients} logs;"
        f" load generator busy {float(stats['loadgen_cpu']):.2f} cores;"
        f" machine load {os.getloadavg()[0]:.1f}"
    )
    if stats["first_error"]:
        note += f"; first error: {stats['first_error']}"
    kind = "" if key_type == "ed25519" else f" ({key_type} witness key)"
    return [
        Result(
            f"witness POST /add-checkpoint{kind}, {clients} logs, keep-alive, durable",
            rate,
            "requests/s",
            f">= {target:.0f}",
            rate >= target and stats["errors"] == 0,
            note,
        ),
        Result(f"witness add-checkpoint{kind} latency p50", float(stats["p50_ms"]), "ms"),
        Result(f"witness add-checkpoint{kind} latency p99", float(stats["p99_ms"]), "ms"),
        Result(
            f"witness add-checkpoint{kind} server CPU per request",
            per_request * 1e3,
            "ms",
            note="all its threads and worker processes; what bounds requests/s:"
            " cores / this, on an idle machine",
        ),
    ]


def run(quick: bool) -> list[Result]:
    seconds = 2.0 if quick else 8.0
    with tempfile.TemporaryDirectory(prefix="overt-bench-witness-") as tmp:
        return bench_add_checkpoint(Path(tmp), 64, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_witness")
    cmds = parser.add_subparsers(dest="cmd", required=True)
    p = cmds.add_parser("serve")
    p.add_argument("dir")
    p.add_argument("port", type=int)
    p = cmds.add_parser("loadgen")
    p.add_argument("url")
    p.add_argument("keys")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    if args.cmd == "serve":
        _serve(args)
    else:
        _loadgen(args)


if __name__ == "__main__":
    main()
