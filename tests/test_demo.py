"""``make run`` works: log, three witnesses and a monitor start, and an entry verifies 2-of-3.

A second ``make run`` beside a running one, or on a busy port, says so in one line and
touches nothing of the running demo.
"""

from __future__ import annotations

import fcntl
import socket
import subprocess
import sys
from pathlib import Path


def _free_port_block() -> int:
    # Four consecutive free ports (log + three witnesses).
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base > 60000:
            continue
        ok = True
        for p in range(base, base + 4):
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no free ports")


def test_make_run_smoke(tmp_path: Path) -> None:
    port = _free_port_block()
    for _ in range(2):  # second run reuses the state of the first
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "overt.demo",
                "--dir",
                str(tmp_path),
                "--port",
                str(port),
                "--smoke",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr + (tmp_path / "services.log").read_text()
        assert "witness cosignatures" in out.stdout
        # Every key a user needs: the log's, each witness's, the policy and the token.
        assert (tmp_path / "log" / "log.vkey").read_text().strip() in out.stdout
        for region in ("asia", "europe", "americas"):
            wvkey = (tmp_path / f"witness-{region}" / "witness.vkey").read_text().strip()
            assert wvkey in out.stdout
        assert str(tmp_path / "policy.txt") in out.stdout
        assert str(tmp_path / "log" / "token") in out.stdout
    policy = tmp_path / "policy.txt"
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "overt.cli.main",
            "log",
            "verify",
            str(tmp_path / "log"),
            "--policy",
            str(policy),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr
    assert "size 2" in verify.stdout
    assert '"event":"entries"' in (tmp_path / "monitor.jsonl").read_text()


def _demo(directory: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overt.demo", "--dir", str(directory), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_second_demo_beside_a_running_one_touches_nothing(tmp_path: Path) -> None:
    # A running demo holds its lock: simulated here by holding it ourselves.
    (tmp_path / "policy.txt").write_text("the running demo's policy\n")
    with open(tmp_path / "demo.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(b"4242\n")
        held.flush()
        out = _demo(tmp_path, _free_port_block())  # other ports than the running one
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "already running" in out.stderr, out.stderr
    assert "pid 4242" in out.stderr and "Traceback" not in out.stderr
    assert (tmp_path / "policy.txt").read_text() == "the running demo's policy\n"
    assert not (tmp_path / "log").exists()


def test_busy_port_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    port = _free_port_block()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port + 2))
        busy.listen()
        out = _demo(tmp_path / "demo", port)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and f"127.0.0.1:{port + 2}" in out.stderr, out.stderr
    assert "--port" in out.stderr
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["demo.lock"]
