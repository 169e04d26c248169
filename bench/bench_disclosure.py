"""Benchmark of issue 12's disclosure service: intake rate and the triage list's latency.

- **intake**: reports taken per second through :meth:`Desk.submit` from 32 concurrent
  submitters (as the HTTP server's worker threads call it), each report sealed with HPKE
  to the PSIRT key, its commitment appended to a real overt log (fsynced) and stored in
  SQLite (WAL, ``synchronous=FULL``). Concurrent intakes share one log append and one
  transaction (group commit), which is what makes the rate.
- **intake over HTTP**: the same through ``POST /api/reports`` on the real server
  (uvicorn in this process, 32 concurrent keep-alive clients in another process).
- **triage list**: p95 latency of :meth:`Desk.triage_list` over 10,000 reports (no
  decryption: the list shows metadata only), in CPU time of the calling thread (the SQLite
  read runs in it), as docs/speed.md reports CPU-bound figures; wall time is in the note.

    python -m bench disclosure [--quick]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import Result, free_port

if TYPE_CHECKING:
    from overt.disclosure.service import Account, Desk, Submission
    from overt.log.log import Log

ROOT = Path(__file__).resolve().parent.parent
INTAKE_TARGET = 200.0
LIST_TARGET_MS = 100.0

_CLIENT = r"""
import asyncio, json, sys, time
from bench._loadgen import request
host, port, seconds, workers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
body = json.dumps({"title": "RCE", "description": "x" * 2000, "researcher": "alice",
                   "class": "rce", "cvss": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}).encode()
head = (f"POST /api/reports HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n").encode()
async def worker(deadline, counts):
    reader, writer = await asyncio.open_connection(host, port)
    while time.perf_counter() < deadline:
        status, _ = await request(reader, writer, head + body)
        code = status.split()[1].decode()
        counts[code] = counts.get(code, 0) + 1
    writer.close()
async def main():
    counts = {}
    start = time.perf_counter()
    await asyncio.gather(*(worker(start + seconds, counts) for _ in range(workers)))
    print(json.dumps({"counts": counts, "elapsed": time.perf_counter() - start}))
asyncio.run(main())
"""


def _desk(where: Path) -> tuple[Desk, Log, Account]:
    from overt.disclosure.crypto import PSIRTKey
    from overt.disclosure.service import Desk, Role
    from overt.disclosure.store import Store
    from overt.disclosure.timeline import LocalCommitmentLog
    from overt.log.log import Log

    log = Log.create(where / "log", "bench.example/log")
    desk = Desk(Store.open(where / "db"), PSIRTKey.generate(), LocalCommitmentLog(log), "bench")
    account = desk.add_account("tom", "triager password 1", Role.TRIAGER)
    return desk, log, account


def _submission(n: int) -> Submission:
    from overt.disclosure.bounty import VulnClass
    from overt.disclosure.service import Submission

    return Submission(
        f"report {n}",
        "x" * 2000,
        "alice",
        VulnClass.RCE,
        cvss="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    )


def _intake(quick: bool) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        desk, log, _ = _desk(Path(tmp))
        total = 400 if quick else 3000
        workers = 32
        per = total // workers

        def work(w: int) -> None:
            for i in range(per):
                desk.submit(_submission(w * per + i))

        threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = per * workers / (time.perf_counter() - start)
        assert log.size == per * workers
        log.close()
        desk.store.close()
    return Result(
        "intake (library, 32 submitters)",
        rate,
        "reports/s",
        f">= {INTAKE_TARGET:g}",
        rate >= INTAKE_TARGET,
        "HPKE-sealed, commitment logged and fsynced, SQLite synchronous=FULL",
    )


def _intake_http(quick: bool) -> Result:
    from overt._asgi import make_server
    from overt.disclosure.server import DisclosureApp, RateLimit, ServiceConfig

    with tempfile.TemporaryDirectory() as tmp:
        desk, log, _ = _desk(Path(tmp))
        limit = RateLimit(per_minute=1e9, burst=10**9)
        app = DisclosureApp(desk, ServiceConfig(intake_limit=limit, login_limit=limit))
        port = free_port()
        server = make_server(app, "127.0.0.1", port)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        seconds = 2 if quick else 6
        out = subprocess.run(
            [sys.executable, "-c", _CLIENT, "127.0.0.1", str(port), str(seconds), "32"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        server.should_exit = True
        thread.join(30)
        doc = json.loads(out.stdout)
        created = doc["counts"].get("201", 0)
        rate = created / doc["elapsed"]
        log.close()
        desk.store.close()
    return Result(
        "intake (HTTP POST /api/reports, 32 clients)",
        rate,
        "reports/s",
        f">= {INTAKE_TARGET:g}",
        rate >= INTAKE_TARGET and set(doc["counts"]) == {"201"},
        f"replies {doc['counts']}",
    )


def _triage_list(quick: bool) -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        desk, log, account = _desk(Path(tmp))
        batch = [_submission(n) for n in range(1000)]
        for _ in range(10):
            desk.submit_many(batch)
        cpu, wall = [], []
        for _ in range(10 if quick else 40):
            started, started_cpu = time.perf_counter(), time.thread_time()
            rows = desk.triage_list(account)
            cpu.append((time.thread_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
        assert len(rows) == 10_000
        log.close()
        desk.store.close()
    p95 = statistics.quantiles(cpu, n=20)[-1]
    return Result(
        "triage list of 10,000 reports (CPU time)",
        p95,
        "ms p95",
        f"<= {LIST_TARGET_MS:g}",
        p95 <= LIST_TARGET_MS,
        f"wall p95 {statistics.quantiles(wall, n=20)[-1]:.1f} ms, median "
        f"{statistics.median(wall):.1f} ms on the shared machine",
    )


def run(quick: bool = False) -> list[Result]:
    return [_intake(quick), _intake_http(quick), _triage_list(quick)]


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(r)
