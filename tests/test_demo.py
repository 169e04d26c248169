"""``make run`` works: log, three witnesses and a monitor start, and an entry verifies 2-of-3."""

from __future__ import annotations

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
