"""``overt disclosure``: one line on stderr and exit 1 for bad input, exit 2 for usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overt.cli.main import main
from overt.disclosure.stats import log_stats, timeline_stats
from overt.disclosure.workflow import State, Verdict
from overt.formats.note import parse_vkey
from overt.log.log import read_vkey

from .conftest import Rig


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_score_prints_the_score_or_one_line_with_the_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(
        capsys, "disclosure", "score", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    )
    assert (code, out) == (0, "9.8 critical CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\n")
    code, out, err = _run(capsys, "disclosure", "score", "CVSS:3.1/AV:Q")
    assert code == 1 and out == "" and err.count("\n") == 1 and 'Unknown value "Q"' in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["disclosure", "triage", str(tmp_path), "list"])  # no --as
    assert exit_.value.code == 2


def test_a_missing_site_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "disclosure", "triage", str(tmp_path), "--as", "tom", "list")
    assert code == 1 and "is not a disclosure site" in err and err.count("\n") == 1


def test_init_account_move_and_overdue(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "psirt"
    assert _run(capsys, "disclosure", "init", str(site), "--program", "example.com/psirt")[0] == 0
    code, _, err = _run(capsys, "disclosure", "init", str(site), "--program", "example.com/psirt")
    assert code == 1 and "already" in err
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = _run(capsys, "disclosure", "account", str(site), "tom")
    assert code == 1 and "12 to 1024" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert _run(capsys, "disclosure", "account", str(site), "tom")[0] == 0
    code, _, err = _run(
        capsys, "disclosure", "triage", str(site), "--as", "tom", "move", "R-00", "acknowledged"
    )
    assert code == 1 and "no report" in err
    assert _run(capsys, "disclosure", "triage", str(site), "--as", "tom", "overdue")[0] == 0


def test_verify_refuses_a_proof_under_another_log_key(
    capsys: pytest.CaptureFixture[str], rig: Rig, tmp_path: Path
) -> None:
    from overt.disclosure.timeline import format_receipt
    from overt.formats.note import generate_key

    intake = rig.desk.submit(rig.submission())
    (tmp_path / "receipt.json").write_bytes(format_receipt(intake.receipt))
    (tmp_path / "proof").write_bytes(intake.proof)
    good = read_vkey(rig.log.directory)
    args = ["disclosure", "verify", str(tmp_path / "receipt.json"), str(tmp_path / "proof")]
    code, out, _ = _run(capsys, *args, "--vkey", good)
    assert code == 0 and out.startswith(
        f"ok: report {intake.report_id} received at 2026-11-25T09:00:00Z"
    )
    _skey, other = generate_key("example.com/disclosure-log")
    code, _, err = _run(capsys, *args, "--vkey", other)
    assert code == 1 and err.count("\n") == 1


def test_the_public_counts_reports_and_response_times_from_the_log_alone(rig: Rig) -> None:
    a = rig.desk.submit(rig.submission()).report_id
    rig.desk.submit(rig.submission())
    rig.clock.advance(2)
    rig.desk.transition(rig.triager, a, State.ACKNOWLEDGED)
    rig.desk.transition(rig.triager, a, State.TRIAGED, Verdict.VALID)
    stats = log_stats(
        str(rig.log.directory), parse_vkey(read_vkey(rig.log.directory)), "example.com/psirt"
    )
    assert stats.reports == 2
    assert stats.by_state == {"received": 2, "acknowledged": 1, "triaged": 1}
    assert stats.median_days == {"acknowledged": 2.0}
    # Other entries in the same log (and other programmes) are not counted.
    assert timeline_stats([b"not a commitment", json.dumps({}).encode()]).reports == 0
    assert (
        log_stats(str(rig.log.directory), parse_vkey(read_vkey(rig.log.directory)), "other").reports
        == 0
    )
