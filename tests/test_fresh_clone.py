"""A fresh clone passes alone: no test reads ``../shared``, which only the team's machines have.

The vector tests run from a ``git clone`` of this checkout in a temporary folder with nothing
beside it: the RFC 6962 and Rekor vectors come from ``tests/data``, and the rule-corpus test
skips with its reason, or fails under ``CI=true`` so that CI cannot pass without the corpora.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTOR_TESTS = ["tests/test_merkle_vectors.py", "tests/test_rekor.py"]
CORPUS_TEST = "tests/rules/test_rules_corpus.py"


def test_no_test_reads_the_team_reference_folder() -> None:
    # Only conftest.py knows about ../shared (for the corpora, which are not redistributed).
    pattern = re.compile(r"""["'/]shared["'/]""")
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name not in ("conftest.py", "test_fresh_clone.py")
        and pattern.search(path.read_text("utf-8"))
    ]
    assert not offenders, f"tests reading ../shared: {offenders}"


def _clone(tmp_path: Path) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (or no git): nothing to clone")
    clone = tmp_path / "main"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=60)
    assert not (tmp_path / "shared").exists()
    return clone


def _pytest(clone: Path, files: list[str], ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "OVERT_CORPORA")}
    env["PYTHONPATH"] = str(clone / "src")  # the clone's code, not the editable install's
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:randomly", *files],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_fresh_clone_passes_the_vector_tests_and_skips_the_corpora(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    run = _pytest(clone, [*VECTOR_TESTS, CORPUS_TEST], ci=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SKIPPED [1] tests/rules/test_rules_corpus.py" in run.stdout, run.stdout
    assert "YARA rule corpora are not at" in run.stdout, run.stdout


def test_ci_without_the_corpora_fails_instead_of_skipping(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    run = _pytest(clone, [CORPUS_TEST], ci=True)
    assert run.returncode != 0, run.stdout
    assert "CI=true: the YARA rule corpora are not at" in run.stdout, run.stdout
