"""Benchmarks of the ``overt`` command: start-up, and the bulk append path against the library.

- Start-up: best-of-N wall time of ``overt --help`` and ``overt log vkey DIR`` as a
  user runs them (the installed ``overt`` script, a fresh process each time).
- Bulk append: ``overt log add DIR --records`` (length-prefixed entries on stdin,
  one process, wall time including start-up) against the library's
  ``Log.add_many`` on the same 1 KiB entries in a fresh log (in-process, the figure
  ``bench_log`` reports), and the old way, one FILE argument per entry.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import Result
from overt.log.log import Log

ORIGIN = "bench.example/cli"


def _overt() -> list[str]:
    script = Path(sys.executable).with_name("overt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "overt.cli.main"]


def _best_wall(argv: list[str], n: int) -> float:
    best = float("inf")
    for _ in range(n):
        started = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - started)
    return best


def bench_startup(work: Path, n: int) -> list[Result]:
    Log.create(work / "vkey", ORIGIN).close()
    overt = _overt()
    out = []
    for name, argv in (
        ("overt --help", [*overt, "--help"]),
        ("overt log vkey DIR", [*overt, "log", "vkey", str(work / "vkey")]),
    ):
        t = _best_wall(argv, n)
        out.append(Result(f"start-up: {name}", t * 1000, "ms", "<= 100", t <= 0.1, f"best of {n}"))
    python = _best_wall([sys.executable, "-c", "pass"], n)
    out.append(Result("start-up: python -c pass (floor)", python * 1000, "ms", note=f"best of {n}"))
    return out


def _entries(n: int) -> list[bytes]:
    rng = random.Random(7)
    return [rng.randbytes(16) + b"e" * 1008 for _ in range(n)]


def bench_bulk(work: Path, n: int, n_files: int) -> list[Result]:
    entries = _entries(n)
    small = n // 4
    # The CLI's input written first and flushed: written just before a CLI run, its
    # 200 MB of dirty pages were written back during that run, beside its fsyncs (the
    # library's run paid nothing of the kind).
    for count, name in ((n, "cli"), (small, "cli-small")):
        with (work / f"records-{name}").open("wb") as f:
            for e in entries[:count]:
                f.write(struct.pack(">I", len(e)))
                f.write(e)
    os.sync()
    # The library path: add_many on a fresh log, as bench_log measures it.
    with Log.create(work / "lib", ORIGIN) as log:
        started = time.perf_counter()
        log.add_many(entries)
        library = time.perf_counter() - started

    # The CLI bulk path: one process, entries as length-prefixed records on stdin; at two
    # sizes, so the marginal rate (start-up and imports left out) shows beside the total.
    def cli_add(name: str) -> float:
        Log.create(work / name, ORIGIN).close()
        os.sync()
        with (work / f"records-{name}").open("rb") as stdin:
            started = time.perf_counter()
            subprocess.run(
                [*_overt(), "log", "add", str(work / name), "--records"],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                check=True,
            )
            return time.perf_counter() - started

    cli = cli_add("cli")
    cli_small = cli_add("cli-small")
    marginal = (n - small) / max(cli - cli_small, 1e-9)
    # The old way: one argument per file.
    files = work / "files"
    files.mkdir()
    names = []
    for i, e in enumerate(entries[:n_files]):
        (files / f"{i:06d}").write_bytes(e)
        names.append(str(files / f"{i:06d}"))
    Log.create(work / "args", ORIGIN).close()
    started = time.perf_counter()
    subprocess.run(
        [*_overt(), "log", "add", str(work / "args"), *names],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    per_file = time.perf_counter() - started
    ratio = cli / library
    return [
        Result("library add_many, 1 KiB, fresh log", n / library, "entries/s", note=f"{n} entries"),
        Result(
            "CLI log add --records, 1 KiB", n / cli, "entries/s", note=f"{n} entries, wall time"
        ),
        Result(
            "CLI --records wall time / library add_many time",
            ratio,
            "x",
            "<= 1.5",
            ratio <= 1.5,
            f"{n} entries; the CLI's fixed cost (process, imports) is ~0.3 s",
        ),
        Result(
            "CLI log add --records, marginal rate",
            marginal,
            "entries/s",
            note=f"entries {small}..{n}: start-up left out",
        ),
        Result(
            "CLI log add FILE... (one argument per file)",
            n_files / per_file,
            "entries/s",
            note=f"{n_files} files in one call",
        ),
    ]


def run(quick: bool) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix="overt-bench-", dir=os.environ.get("OVERT_BENCH_DIR")))
    try:
        results = bench_startup(work, 5 if quick else 20)
        results += bench_bulk(work, 20_000 if quick else 200_000, 2_000 if quick else 25_000)
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)
