"""Hostile rule files must not stop the auditor: too deep, too long, crashing or hanging.

Every audit of a crashing file runs in a child process (``_audit``), so that
the test process itself can never be the one that segfaults, even on code
that still feeds such a file to yaramod in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from overt.rules.limits import Limits, exceeded, measure
from overt.rules.parse import RuleParseError, blank_includes, find_includes, parse_source

MARKED = b'rule marked { strings: $a = "NOFORN" condition: $a }\n'
N = 30000


def hostile(kind: str, n: int = N) -> bytes:
    """The ~50 KB files of the report: a condition nested n deep, or an n-term chain."""
    if kind == "parens":
        cond = "(" * n + "true" + ")" * n
    elif kind == "not":
        cond = "not " * n + "true"
    elif kind == "and-chain":
        cond = " and ".join(["true"] * n)
    else:
        raise AssertionError(kind)
    return f"rule deep {{ condition: {cond} }}\n".encode()


def _audit(files: dict[str, bytes], *, dynamic: bool, limits: str = "") -> dict[str, object]:
    """audit_sources in a child process; its JSON report (the child must exit 0)."""
    code = (
        "import json, sys\n"
        "from overt.rules import audit_sources, format_json\n"
        "from overt.rules.limits import Limits\n"
        "files = {k: bytes.fromhex(v) for k, v in json.load(sys.stdin).items()}\n"
        f"report = audit_sources(files, dynamic={dynamic}, limits=Limits({limits}))\n"
        "sys.stdout.write(format_json(report))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps({k: v.hex() for k, v in files.items()}).encode(),
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr.decode()[-2000:])
    report: dict[str, object] = json.loads(proc.stdout)
    return report


def _findings(report: dict[str, object], detector: str) -> list[dict[str, str]]:
    found = report["findings"]
    assert isinstance(found, list)
    return [f for f in found if f["detector"] == detector]


@pytest.mark.parametrize("kind", ["parens", "not", "and-chain"])
def test_condition_nested_30000_deep_is_unauditable_and_the_audit_goes_on(kind: str) -> None:
    report = _audit({"deep.yar": hostile(kind), "marked.yar": MARKED}, dynamic=True)
    (bad,) = _findings(report, "unauditable")
    assert bad["path"] == "deep.yar" and bad["severity"] == "high"
    assert "limit" in bad["evidence"], bad
    # the other file of the bundle is still audited, statically and dynamically
    assert any(f["path"] == "marked.yar" for f in _findings(report, "marking"))
    assert any(f["path"] == "marked.yar" for f in _findings(report, "canary-marked"))


def test_parser_crash_in_the_worker_is_a_finding_not_a_crash_of_the_caller() -> None:
    # Limits lifted: the 30,000-deep file reaches yaramod, which overflows its stack
    # inside a worker process; the worker is replaced and the audit goes on.
    lifted = "depth=10**9, condition_tokens=10**9"
    files = {"a.yar": MARKED, "deep.yar": hostile("parens"), "z.yar": MARKED}
    report = _audit(files, dynamic=False, limits=lifted)
    (bad,) = _findings(report, "unauditable")
    assert bad["path"] == "deep.yar" and "crashed" in bad["evidence"], bad
    assert {f["path"] for f in _findings(report, "marking")} == {"a.yar", "z.yar"}


def test_hanging_worker_times_out_into_a_finding() -> None:
    report = _audit({"m.yar": MARKED}, dynamic=False, limits="seconds=0.0, seconds_per_mib=0.0")
    (bad,) = _findings(report, "unauditable")
    assert "timed out" in bad["evidence"], bad


def test_cli_audit_of_the_deep_file_exits_1_with_a_finding(tmp_path: Path) -> None:
    (tmp_path / "deep.yar").write_bytes(hostile("and-chain"))
    proc = subprocess.run(
        [sys.executable, "-m", "overt.cli.main", "rules", "audit", "--static-only", str(tmp_path)],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert b"unauditable" in proc.stdout and b"condition of 60001 tokens" in proc.stdout


def test_parse_source_measures_before_any_parser() -> None:
    # In-process on purpose: the limits refuse the text before yaramod sees it.
    for kind in ("parens", "not", "and-chain"):
        with pytest.raises(RuleParseError, match="limit"):
            parse_source(hostile(kind).decode(), "deep.yar")
    assert exceeded(measure(hostile("parens", 150).decode())) is None
    assert "nested 201 deep" in (exceeded(measure(hostile("parens", 201).decode())) or "")
    regex = "rule r { strings: $a = /" + "(" * 300 + "a" + ")" * 300 + "/ condition: $a }"
    assert "nested 300 deep" in (exceeded(measure(regex)) or "")


def test_limits_do_not_count_comments_strings_or_regexes_as_nesting() -> None:
    text = (
        '// ((((((\n/* not not not ( */ rule r { strings: $a = "((((" $b = /\\(\\(\\(/ '
        "condition: ($a or $b) and 1 - 1 == 0 }"
    )
    shape = measure(text)
    assert shape.depth == 1 and shape.depth_line == 2
    assert exceeded(shape, Limits(depth=1)) is None


def test_include_hidden_after_a_comment_is_found_and_blanked() -> None:
    # yaramod and yara-x would open an include wherever it stands on its line.
    text = '/* x */ include "/etc/passwd" rule r { condition: true }\ninclude "a.yar"\n'
    assert find_includes(text) == [(1, "/etc/passwd"), (2, "a.yar")]
    blanked = blank_includes(text)
    assert "include" not in blanked and "passwd" not in blanked
    assert blanked.count("\n") == 2 and "rule r { condition: true }" in blanked
    assert find_includes('rule r { strings: $a = "include \\"x\\"" condition: $a }') == []


def test_a_dying_worker_is_replaced_and_its_files_bisected_to_the_culprits() -> None:
    from overt.rules import _sandbox

    # An op the worker does not know makes it exit: every file ends up alone, each a failure.
    files = [(f"f{i}.yar", "rule r { condition: true }") for i in range(3)]
    out = _sandbox.run({"op": "no-such-op"}, files)
    assert out.replies == []
    assert sorted(out.failed) == ["f0.yar", "f1.yar", "f2.yar"]
    assert all("exited with status 1" in why for why in out.failed.values())
    # and the pool works again afterwards
    good = _sandbox.run(
        {"op": "static", "depth": 200, "condition_tokens": 10000, "analyse": False}, files[:1]
    )
    assert good.failed == {} and good.replies[0]["files"][0]["path"] == "f0.yar"


def test_include_like_text_the_lexer_left_never_reaches_yaramod() -> None:
    # Inside a comment to our lexer: not an include, not blanked. Had yaramod read the
    # comment differently it would open the file, so such text goes to plyara only.
    pf = parse_source('/*\ninclude "/etc/passwd" */ rule r { condition: true }', "x.yar")
    assert pf.parser == "plyara" and pf.includes == ()
    assert [r.name for r in pf.rules] == ["r"]


@pytest.mark.parametrize(
    "text",
    [
        "rule r { strings: $a = /" + "a" * 100_000 + "\n",  # an unterminated regex
        '"' + "\\a" * 100_000,  # an unterminated string of escapes
        "/*" + " *" * 100_000,  # an unterminated comment of stars
        "rule r { strings: $a = /" + "[(" * 100_000 + "/ condition: $a }",
    ],
    ids=["regex", "string", "comment", "classes"],
)
def test_measuring_is_linear_on_pathological_text(text: str) -> None:
    start = time.monotonic()
    measure(text)
    assert time.monotonic() - start < 2


def test_a_chain_of_1100_includes_neither_recurses_nor_multiplies() -> None:
    from overt.rules import audit_sources

    n = 1100  # deeper than the recursion limit
    files = {
        f"f{i}.yar": f'include "f{i + 1}.yar"\nrule r{i} {{ condition: true }}\n'.encode()
        for i in range(n)
    }
    files[f"f{n}.yar"] = MARKED
    report = audit_sources(files, dynamic=True)
    assert report.rules == n + 1
    assert any(f.path == f"f{n}.yar" and f.detector == "marking" for f in report.findings)


def test_workers_get_none_of_the_callers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from overt.rules import _sandbox

    monkeypatch.setenv("OVERT_LOG_TOKEN", "secret-token")
    _sandbox._POOL.close()  # fresh workers, started with this environment
    out = _sandbox.run(
        {"op": "static", "depth": 200, "condition_tokens": 10000, "analyse": False},
        [("a.yar", "rule a { condition: true }")],
    )
    assert out.failed == {}
    (worker,) = _sandbox._POOL.idle
    with open(f"/proc/{worker.proc.pid}/environ", "rb") as fh:
        env = fh.read()
    assert b"secret-token" not in env and os.environ["OVERT_LOG_TOKEN"] == "secret-token"


def test_worker_exit_statuses_agree() -> None:
    from overt.rules import _sandbox, _worker

    assert (_sandbox.EXIT_MEMORY, _sandbox.EXIT_RECURSION) == (
        _worker.EXIT_MEMORY,
        _worker.EXIT_RECURSION,
    )
