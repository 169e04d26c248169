"""``make run``: the Transparency Center on the embedded default (filesystem + SQLite).

Creates (on first use) and serves a log under ``.demo/`` on 127.0.0.1, then
prints its verifier key and how to append to it and verify it. Stop with Ctrl-C.

    python -m overt.demo [--dir .demo] [--port 8080]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from overt.log.log import Log
from overt.log.server import serve

ORIGIN = "localhost/overt-demo"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overt.demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".demo"))
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    log_dir = args.dir / "log"
    log = Log.open(log_dir) if (log_dir / "log.json").exists() else Log.create(log_dir, ORIGIN)
    url = f"http://127.0.0.1:{args.port}"

    def ready() -> None:
        print(
            f"""overt transparency log {log.origin} (size {log.size}) serving {log_dir} at {url}

verifier key:
  {log.vkey}

append an entry (bearer token from `overt log token {log_dir}`):
  curl -sS -H "Authorization: Bearer $(.venv/bin/overt log token {log_dir})" \\
       --data-binary @README.md {url}/add
read it as any tlog-tiles client would:
  curl -sS {url}/checkpoint
verify the whole log as a client:
  .venv/bin/overt log verify {url} --vkey {log_dir}/log.vkey
Ctrl-C stops the server; the log stays in {args.dir}/.""",
            flush=True,
        )

    try:
        serve(log, "127.0.0.1", args.port, ready=ready)
    finally:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
