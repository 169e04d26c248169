"""``make run``: the Transparency Center on the embedded default (filesystem + SQLite).

Starts, on 127.0.0.1, one transparency log, three witnesses (the regional
transparency centers: Asia, Europe, Americas) and a monitor, with a 2-of-3
witness policy; every piece is a real ``overt`` process with its state under
``.demo/``. Prints the keys and the commands to append to and verify the log.
Stop with Ctrl-C; the state stays in ``.demo/`` for the next run.

    python -m overt.demo [--dir .demo] [--port 8080] [--smoke]

``--smoke`` starts everything, appends and verifies one entry under the
policy, then stops (used by the test suite).

Before anything is written, the demo takes ``DIR/demo.lock`` (a second
``make run`` on the same state stops there, whatever its ports) and checks
that its four ports are free. Every failure is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from overt.cli._util import check_listen
from overt.errors import ConfigError, OvertError
from overt.formats import merkle
from overt.formats.note import parse_vkey
from overt.formats.policy import parse_policy
from overt.formats.proof import parse_proof, verify_proof
from overt.log.client import LogClient
from overt.log.fs import atomic_write
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


def lock(base: Path) -> IO[bytes]:
    """Hold ``base/demo.lock`` for this run (released when the process ends).

    Raises:
        ConfigError: another demo runs on ``base`` (its pid is named).
    """
    path = base / "demo.lock"
    handle = open(path, "a+b")  # noqa: SIM115 (held for the life of the demo)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        handle.seek(0)
        pid = handle.read().decode("ascii", "replace").strip() or "?"
        handle.close()
        raise ConfigError(
            f"a demo is already running on {base}/ (pid {pid}); stop it with Ctrl-C,"
            f" or give this one its own state: make run ARGS='--dir OTHER --port PORT'"
        ) from err
    handle.seek(0)
    handle.truncate()
    handle.write(b"%d\n" % os.getpid())
    handle.flush()
    return handle


def check_ports(port: int) -> None:
    """Every port the demo needs is free. Raises ConfigError naming the first busy one."""
    for p in range(port, port + 1 + len(REGIONS)):
        try:
            check_listen("127.0.0.1", p)
        except ConfigError as err:
            raise ConfigError(
                f"{err}; the demo needs ports {port}-{port + len(REGIONS)}:"
                f" pick others with make run ARGS='--port N'"
            ) from err


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
    # The log's lock first: a log served by a demo that lost its lock file stays untouched.
    with Log.open(log_dir) as log:
        log.set_policy(policy)
        atomic_write(policy_path, policy)
    return policy_path


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= 65535 - len(REGIONS):
        raise argparse.ArgumentTypeError(f"not a port (1..{65535 - len(REGIONS)}): {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m overt.demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="state directory")
    parser.add_argument(
        "--port", type=_port, default=8080, help="log port; witnesses use the next three"
    )
    parser.add_argument("--smoke", action="store_true", help="start, append, verify, stop")
    args = parser.parse_args(argv)
    try:
        return _run(args.dir, args.port, args.smoke)
    except OvertError as err:
        print(f"overt demo: {err}", file=sys.stderr)
        return 1


def _run(base: Path, port: int, smoke: bool) -> int:
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create {base}: {err.strerror}") from err
    # Nothing of a running demo is touched: the lock and the ports come before any write.
    held = lock(base)
    try:
        check_ports(port)
        return _serve(base, port, smoke)
    finally:
        held.close()


def _serve(base: Path, port: int, smoke: bool) -> int:
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
        if smoke:
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
    port = int(url.rsplit(":", 1)[1])
    witnesses = "\n".join(
        f"  {region:<9} http://127.0.0.1:{port + i}  "
        f"{(base / f'witness-{region}' / 'witness.vkey').read_text().strip()}"
        for i, region in enumerate(REGIONS, 1)
    )
    return f"""
overt Transparency Center (state in {base}/, service logs in {base}/services.log)

  log       {url}   origin {ORIGIN}
  witnesses {", ".join(REGIONS)} on the next three ports; policy: 2 of 3
  monitor   alerts and events in {base}/monitor.jsonl

log verifier key ({base}/log/log.vkey):
  {vkey}
witness verifier keys:
{witnesses}
witness policy (give it to clients: --policy): {policy}
log write token (POST /add, publish --token): {base}/log/token

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
