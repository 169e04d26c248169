"""The README's release demo (scripts/demo_release.sh) runs end to end."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_demo_release_publishes_verifies_and_refuses_attacks(tmp_path: Path) -> None:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "demo_release.sh"), str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PY": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "ok: update agent 1.2.0" in out.stdout
    for refusal in ("artifact-digest:", "rollback:", "publisher-key:"):
        assert refusal in out.stdout + out.stderr
