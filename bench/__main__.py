"""Run overt's benchmarks and write their results (see ``bench/__init__.py``)."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench import Result

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _topics() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def _write(topic: str, results: list[Result]) -> None:
    RESULTS.mkdir(exist_ok=True)
    doc = {
        "topic": topic,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "results": [r.as_dict() for r in results],
    }
    (RESULTS / f"{topic}.json").write_text(json.dumps(doc, indent=2) + "\n")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


#: The one speed table lives in docs/speed.md, between these markers; ``_summary`` rewrites it.
SPEED_PAGE = HERE.parent / "docs" / "speed.md"
TABLE_BEGIN = "<!-- bench:table begin: written by `make bench` from bench/results/*.json -->"
TABLE_END = "<!-- bench:table end -->"


def _figure(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def render_table() -> str:
    """The speed table (markdown) from every ``bench/results/<topic>.json``."""
    lines = ["| topic | figure | measured | target | met | note |", "|---|---|---|---|---|---|"]
    runs, cpus = [], "?"
    for path in sorted(RESULTS.glob("*.json")):
        doc = json.loads(path.read_text())
        runs.append(f"{doc['topic']} {doc['when']}")
        cpus = doc["machine"]["cpus"]
        for r in doc["results"]:
            met = {True: "yes", False: "**NO**", None: ""}[r["ok"]]
            cells = [doc["topic"], r["name"], f"{_figure(r['value'])} {r['unit']}"]
            cells += [r["target"], met, r["note"]]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", f"Runs ({cpus} CPUs): " + "; ".join(runs) + "."]
    return "\n".join(lines)


def _summary() -> None:
    """Rewrite the table in docs/speed.md (nothing else on that page is touched)."""
    page = SPEED_PAGE.read_text()
    head, begin, rest = page.partition(TABLE_BEGIN)
    _, end, tail = rest.partition(TABLE_END)
    if not begin or not end:
        raise SystemExit(f"bench: {SPEED_PAGE} lacks the table markers {TABLE_BEGIN!r}")
    SPEED_PAGE.write_text(f"{head}{TABLE_BEGIN}\n{render_table()}\n{TABLE_END}{tail}")


def _run_alone(topic: str, *, quick: bool) -> int:
    """Runs one topic in a fresh ``python -m bench TOPIC`` process; its exit status."""
    command = [sys.executable, "-m", "bench", topic, *(["--quick"] if quick else [])]
    return subprocess.run(command, cwd=HERE.parent, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("topics", nargs="*", help=f"topics to run (default all: {_topics()})")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--table", action="store_true", help="only rewrite docs/speed.md from bench/results"
    )
    args = parser.parse_args()
    if args.table:
        _summary()
        return 0
    topics = args.topics or _topics()
    unknown = set(topics) - set(_topics())
    if unknown:
        print(f"bench: unknown topics {sorted(unknown)}", file=sys.stderr)
        return 2
    if len(topics) > 1:
        # One process per topic: memory, threads and caches one topic leaves behind (a
        # 1,000,000-entry portal index, say) must not count in the next one's figures.
        failed = [t for t in topics if _run_alone(t, quick=args.quick) != 0]
        _summary()
        if failed:
            print(f"bench: topics failed: {failed}", file=sys.stderr)
        return 1 if failed else 0
    for topic in topics:
        module = importlib.import_module(f"bench.bench_{topic}")
        print(f"== {topic}", flush=True)
        results: list[Result] = module.run(quick=args.quick)
        for r in results:
            met = {True: "ok", False: "MISSED", None: ""}[r.ok]
            print(
                f"  {r.name}: {r.value:.6g} {r.unit} {('(target ' + r.target + ')') if r.target else ''} {met} {r.note}"
            )
        _write(topic, results)
    _summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
