"""``make run``: the Transparency Center on the embedded default (filesystem + SQLite).

Starts, on 127.0.0.1, one transparency log, three witnesses (the regional
transparency centers: Asia, Europe, Americas) and a monitor, with a 2-of-3
witness policy; every piece is a real ``overt`` process with its state under
``.demo/``. Prints the keys and the commands to append to and verify the log.
Stop with Ctrl-C; the state stays in ``.demo/`` for the next run.

    python -m overt.demo [--dir .demo] [--port 8080] [--smoke]

``--smoke`` starts everything, appends and verifies one entry under the
policy, then stops (used by the test suite).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from overt.errors import OvertError
from overt.formats import merkle
from overt.formats.note import parse_vkey
from overt.formats.policy import parse_policy
from overt.formats.proof import parse_proof, verify_proof
from overt.log.client import LogClient
from overt.log.log import Log, read_token, read_vkey
from overt.witness.config import init_witness, trust_log

ORIGIN = "localhost/overt-demo"
REGIONS = ("asia", "europe", "americas")


def _overt(*args: str) -> list[str]:
    return [sys.executable, "-m", "overt.cli.main", *args]


def _name(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    return " ".join(str(a) for a in args[3:5]) if isinstance(args, list) else str(args)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OvertError(f"overt {_name(proc)} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise OvertError(f"{url} did not come up within {timeout:.0f} s")


def setup(base: Path, port: int) -> Path:
    """Create (once) the log, witnesses and policy; returns the policy path."""
    log_dir = base / "log"
    if not (log_dir / "log.json").exists():
        Log.create(log_dir, ORIGIN).close()
    vkey = read_vkey(log_dir)
    lines = [f"log {vkey} http://127.0.0.1:{port}"]
    for i, region in enumerate(REGIONS, 1):
        directory = base / f"witness-{region}"
        if not (directory / "witness.skey").exists():
            init_witness(directory, f"{region}.transparency.example")
        trust_log(directory, vkey)
        wvkey = (directory / "witness.vkey").read_text().strip()
        lines.append(f"witness {region} {wvkey} http://127.0.0.1:{port + i}")
    lines += [f"group regions 2 {' '.join(REGIONS)}", "quorum regions"]
    policy = "\n".join(lines).encode() + b"\n"
    parse_policy(policy)  # refuse to write a policy clients could not read
    policy_path = base / "policy.txt"
    policy_path.write_bytes(policy)
    with Log.open(log_dir) as log:
        log.set_policy(policy)
    return policy_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m overt.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dir", type=Path, default=Path(".demo"))
    parser.add_argument(
        "--port", type=int, default=8080, help="log port; witnesses use the next three"
    )
    parser.add_argument("--smoke", action="store_true", help="start, append, verify, stop")
    args = parser.parse_args(argv)
    base: Path = args.dir
    port: int = args.port
    base.mkdir(parents=True, exist_ok=True)
    policy_path = setup(base, port)
    log_dir = base / "log"
    url = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    logs = open(base / "services.log", "ab")  # noqa: SIM115 (closed in finally)
    try:
        for i, region in enumerate(REGIONS, 1):
            wdir = base / f"witness-{region}"
            proc = subprocess.Popen(
                _overt("witness", "serve", str(wdir), "--listen", f"127.0.0.1:{port + i}"),
                stdout=logs,
                stderr=logs,
            )
            procs.append(proc)
            _wait_http(f"http://127.0.0.1:{port + i}/logs", proc)
        proc = subprocess.Popen(
            _overt("log", "serve", str(log_dir), "--listen", f"127.0.0.1:{port}"),
            stdout=logs,
            stderr=logs,
        )
        procs.append(proc)
        _wait_http(f"{url}/checkpoint", proc)
        with LogClient(url, read_token(log_dir), timeout=30) as client:
            entry = b"overt demo: the Transparency Center started at %d\n" % int(time.time())
            index, raw = client.add(entry)
        verified = verify_proof(
            parse_proof(raw),
            merkle.leaf_hash(entry),
            parse_vkey(read_vkey(log_dir)),
            policy=parse_policy(policy_path.read_bytes()),
            now=time.time(),
            max_age=300,
        )
        cosigners = len(verified.checkpoint.cosignatures())
        monitor_out = open(base / "monitor.jsonl", "ab")  # noqa: SIM115 (closed with logs)
        procs.append(
            subprocess.Popen(
                _overt(
                    "monitor",
                    url,
                    "--vkey",
                    str(log_dir / "log.vkey"),
                    "--policy",
                    str(policy_path),
                    "--state",
                    str(base / "monitor"),
                    "--interval",
                    "2",
                ),
                stdout=monitor_out,
                stderr=logs,
            )
        )
        print(_banner(base, url, read_vkey(log_dir), policy_path, index, cosigners), flush=True)
        if args.smoke:
            time.sleep(1.0)
            if procs[-1].poll() not in (None, 0):
                raise OvertError("the monitor stopped; see " + str(base / "services.log"))
            return 0
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        dead = [p for p in procs if p.poll() is not None]
        raise OvertError(f"overt {_name(dead[0])} stopped; see {base / 'services.log'}")
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        logs.close()


def _banner(base: Path, url: str, vkey: str, policy: Path, index: int, cosigners: int) -> str:
    overt = ".venv/bin/overt" if Path(".venv/bin/overt").exists() else "overt"
    return f"""
overt Transparency Center (state in {base}/, service logs in {base}/services.log)

  log       {url}   origin {ORIGIN}
  witnesses {", ".join(REGIONS)} on the next three ports; policy: 2 of 3 ({policy})
  monitor   alerts and events in {base}/monitor.jsonl

log verifier key:
  {vkey}

entry {index} was just appended and verified with {cosigners} witness cosignatures.

append a file (prints its index once durable; add ?proof=1 for its tlog-proof):
  curl -sS -H "Authorization: Bearer $({overt} log token {base}/log)" --data-binary @README.md {url}/add
read the witnessed checkpoint:
  curl -sS {url}/checkpoint
verify the whole log under the witness policy, cosigned in the last 10 minutes:
  {overt} log verify {url} --policy {policy} --max-age 600
see integrated vs published sizes and witness states:
  curl -sS {url}/metrics

Ctrl-C stops everything.""".rstrip()


if __name__ == "__main__":
    sys.exit(main())
