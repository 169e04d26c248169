"""Benchmark of subtree cosignatures (issue 15): ``sign-subtree`` requests/s and proof checks.

1. ``POST /sign-subtree``: the witness (ML-DSA-44 key) runs as a real server in one
   process; a load generator in another keeps 16 keep-alive connections busy, each
   sending requests for the 256-entry ranges of a log of 2^20 entries, against a
   checkpoint the witness cosigned. Bodies are made before the clock starts. The call
   is stateless (no database): each request costs a checkpoint parse, one ML-DSA-44
   verification (the witness's own cosignature), a subtree consistency proof and one
   ML-DSA-44 signature.
2. Offline verification, in this process: an entry of a log of 2^20 entries proved by
   a c2sp.org/tlog-proof (20-hash path, checkpoint signed by the log, 2 ML-DSA-44 witness
   cosignatures, 2-of-2 quorum) against the same entry proved by a subtree proof
   (8-hash path to its 256-entry range, 2 ML-DSA-44 subtree cosignatures, same quorum):
   the gate's inclusion + witness-quorum steps, parsing included.

    python -m bench subtree                       # via the harness
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bench import Result, free_port
from bench._loadgen import request

ROOT = Path(__file__).resolve().parent.parent
SIZE = 1 << 20
RANGE = 256
CLIENTS = 16


def _fake(lo: int, hi: int) -> bytes:
    """A made-up hash per range (for paths whose other end is computed from them)."""
    return hashlib.sha256(b"%d-%d" % (lo, hi)).digest()


def _tree(real: int) -> Callable[[int, int], bytes]:
    """``MTH(D[lo:hi])`` of a log of :data:`SIZE` entries whose first ``real`` leaves exist
    (a real tree) and whose complete nodes beyond them are made up, so that every proof
    about the first ``real`` entries is consistent with one root."""
    from overt.formats.merkle import MemoryTree, leaf_hash, node_hash

    tree = MemoryTree(leaf_hash(b"%d" % i) for i in range(real))

    @functools.cache
    def mth(lo: int, hi: int) -> bytes:
        n = hi - lo
        if hi <= real:
            return tree.subtree(lo, hi)
        if lo >= real and n & (n - 1) == 0 and lo % n == 0:
            return _fake(lo, hi)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(mth(lo, lo + k), mth(lo + k, hi))

    return mth


def _bodies(log_skey: str, witness_skey: str, count: int) -> list[bytes]:
    """``count`` sign-subtree bodies for consecutive ranges, one cosigned checkpoint."""
    from overt.formats.checkpoint import Checkpoint, sign_checkpoint
    from overt.formats.keytypes import parse_skey
    from overt.formats.note import parse_note, sign_note
    from overt.formats.subtree import subtree_consistency_proof
    from overt.formats.witness import SignSubtreeRequest, format_sign_subtree

    log, witness = parse_skey(log_skey), parse_skey(witness_skey)
    mth = _tree(count * RANGE)
    root = mth(0, SIZE)
    note = parse_note(sign_checkpoint(Checkpoint(log.name, SIZE, root), log))
    checkpoint = sign_note(note.text, [witness], existing=note)
    out = []
    for k in range(count):
        start, end = k * RANGE, (k + 1) * RANGE
        proof = subtree_consistency_proof(start, end, SIZE, mth)
        req = SignSubtreeRequest(start, end, mth(start, end), tuple(proof), checkpoint)
        out.append(format_sign_subtree(req))
    return out


async def _client(
    host: str, port: int, bodies: list[bytes], until: float, out: dict[str, list[object]]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST /sign-subtree HTTP/1.1\r\nHost: {host}\r\nContent-Length: %d\r\n\r\n"
    try:
        i = 0
        while time.perf_counter() < until:
            body = bodies[i % len(bodies)]
            i += 1
            started = time.perf_counter()
            status, reply = await request(reader, writer, (head % len(body)).encode() + body)
            if not status.startswith(b"HTTP/1.1 200"):
                out["errors"].append(status.decode().strip() + " " + reply.decode()[:80])
                break
            out["latencies"].append(time.perf_counter() - started)
    finally:
        writer.close()


def _loadgen(args: argparse.Namespace) -> None:
    log_skey, witness_skey = Path(args.keys).read_text().split()
    bodies = _bodies(log_skey, witness_skey, 64)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    out: dict[str, list[object]] = {"latencies": [], "errors": []}

    async def load() -> float:
        started = time.perf_counter()
        until = started + args.seconds
        await asyncio.gather(*(_client(host, port, bodies, until, out) for _ in range(CLIENTS)))
        return time.perf_counter() - started

    elapsed = asyncio.run(load())
    latencies = sorted(float(x) for x in out["latencies"])  # type: ignore[arg-type]
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "rate": len(latencies) / elapsed,
                "p50_ms": latencies[len(latencies) // 2] * 1e3 if latencies else 0.0,
                "errors": len(out["errors"]),
                "first_error": out["errors"][0] if out["errors"] else "",
            }
        ),
        flush=True,
    )


def _serve(args: argparse.Namespace) -> None:
    from overt.formats.keytypes import parse_skey
    from overt.witness.core import known_logs
    from overt.witness.server import WitnessApp, serve
    from overt.witness.state import WitnessState

    log_skey, witness_skey = Path(args.keys).read_text().split()
    logs = known_logs([parse_skey(log_skey).verifier()])
    with WitnessState(Path(args.dir) / "state.db") as state:
        app = WitnessApp(state, logs, parse_skey(witness_skey))
        serve(app, "127.0.0.1", args.port, ready=lambda: print("ready", flush=True))


def bench_sign_subtree(work: Path, seconds: float) -> list[Result]:
    from overt.formats.cosignature import ALG_ML_DSA_44
    from overt.formats.keytypes import ALG_ED25519, generate, key_type

    keys = work / "keys"
    log = generate(key_type(ALG_ED25519), "bench.example/log")
    witness = generate(key_type(ALG_ML_DSA_44), "bench.example/witness")
    keys.write_text(f"{log.skey}\n{witness.skey}\n")
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    me = [sys.executable, "-m", "bench.bench_subtree"]
    server = subprocess.Popen(
        [*me, "serve", str(work), str(port), str(keys)],
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
        out = subprocess.run(
            [*me, "loadgen", f"http://127.0.0.1:{port}", str(keys), "--seconds", str(seconds)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=env,
        )
        stats = json.loads(out.stdout)
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout:
            server.stdout.close()
    note = f"{stats['requests']} requests, {stats['errors']} errors, {CLIENTS} connections"
    if stats["first_error"]:
        note += f"; first error: {stats['first_error']}"
    return [
        Result(
            "witness POST /sign-subtree (ML-DSA-44), log of 2^20, keep-alive",
            float(stats["rate"]),
            "requests/s",
            ok=stats["errors"] == 0,
            note=note,
        ),
        Result("witness sign-subtree latency p50", float(stats["p50_ms"]), "ms"),
    ]


def _median_ms(fn: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def bench_verify(rounds: int) -> list[Result]:
    from overt.formats.checkpoint import Checkpoint, sign_checkpoint
    from overt.formats.cosignature import ALG_ML_DSA_44
    from overt.formats.keytypes import ALG_ED25519, generate, key_type
    from overt.formats.merkle import leaf_hash, root_from_inclusion_proof
    from overt.formats.note import Signature, parse_note, sign_note
    from overt.formats.policy import parse_policy
    from overt.formats.proof import TlogProof, format_proof, verify_proof
    from overt.formats.subtree import root_from_subtree_inclusion_proof
    from overt.formats.subtree_proof import (
        SubtreeNote,
        SubtreeProof,
        format_subtree_proof,
        verify_subtree_proof,
    )

    log = generate(key_type(ALG_ED25519), "bench.example/log")
    ws = [generate(key_type(ALG_ML_DSA_44), f"w{i}.bench.example") for i in (1, 2)]
    policy = parse_policy(
        (
            f"log {log.vkey}\n"
            + "".join(f"witness w{i} {w.vkey}\n" for i, w in enumerate(ws, 1))
            + "group both 2 w1 w2\nquorum both\n"
        ).encode()
    )
    index = SIZE - 1000
    leaf = leaf_hash(b"the published artifact's entry")
    full_path = [_fake(i, i + 1) for i in range(20)]
    root = root_from_inclusion_proof(leaf, index, SIZE, full_path)
    note = parse_note(sign_checkpoint(Checkpoint(log.name, SIZE, root), log))
    cosigned = sign_note(note.text, ws, existing=note)
    full = format_proof(TlogProof(index, tuple(full_path), cosigned))

    start = index // RANGE * RANGE
    sub_path = [_fake(i, i + 1) for i in range(8)]
    sub_hash = root_from_subtree_inclusion_proof(leaf, index, start, start + RANGE, sub_path)
    sigs = tuple(
        Signature(w.name, w.key_id, w.sign_subtree(log.name, start, start + RANGE, sub_hash))
        for w in ws
    )
    sub = format_subtree_proof(
        SubtreeProof(
            index, tuple(sub_path), SubtreeNote(log.name, start, start + RANGE, sub_hash, sigs)
        )
    )
    verifier = log.verifier()
    full_ms = _median_ms(lambda: verify_proof(full, leaf, verifier, policy=policy), rounds)
    sub_ms = _median_ms(lambda: verify_subtree_proof(sub, leaf, policy), rounds)
    return [
        Result(
            "verify an entry: tlog-proof (20-hash path, log + 2 ML-DSA-44 cosignatures)",
            full_ms,
            "ms",
            note=f"{len(full)} bytes; log of 2^20 entries, 2-of-2 quorum",
        ),
        Result(
            "verify an entry: subtree proof (8-hash path, 2 ML-DSA-44 subtree cosignatures)",
            sub_ms,
            "ms",
            note=f"{len(sub)} bytes; never changes once the range is cosigned",
        ),
    ]


def run(quick: bool) -> list[Result]:
    seconds = 2.0 if quick else 6.0
    with tempfile.TemporaryDirectory(prefix="overt-bench-subtree-") as tmp:
        results = bench_sign_subtree(Path(tmp), seconds)
    return results + bench_verify(50 if quick else 300)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_subtree")
    cmds = parser.add_subparsers(dest="cmd", required=True)
    p = cmds.add_parser("serve")
    p.add_argument("dir")
    p.add_argument("port", type=int)
    p.add_argument("keys")
    p = cmds.add_parser("loadgen")
    p.add_argument("url")
    p.add_argument("keys")
    p.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.cmd == "serve":
        _serve(args)
    else:
        _loadgen(args)


if __name__ == "__main__":
    main()
