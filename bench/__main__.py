"""Run overt's benchmarks and write their results (see ``bench/__init__.py``)."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
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


def _summary() -> None:
    lines = ["# Benchmark results", "", "Written by `make bench`; one table per topic.", ""]
    for path in sorted(RESULTS.glob("*.json")):
        doc = json.loads(path.read_text())
        lines += [f"## {doc['topic']} ({doc['when']}, {doc['machine']['cpus']} CPUs)", ""]
        lines += ["| figure | value | unit | target | met | note |", "|---|---|---|---|---|---|"]
        for r in doc["results"]:
            met = {True: "yes", False: "NO", None: ""}[r["ok"]]
            lines.append(
                f"| {r['name']} | {r['value']:.6g} | {r['unit']} | {r['target']} | {met} | {r['note']} |"
            )
        lines.append("")
    (RESULTS / "README.md").write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("topics", nargs="*", help=f"topics to run (default all: {_topics()})")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    topics = args.topics or _topics()
    unknown = set(topics) - set(_topics())
    if unknown:
        print(f"bench: unknown topics {sorted(unknown)}", file=sys.stderr)
        return 2
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
