"""``overt telemetry``: one line and exit 1 for every refusal; the ledger audit from the shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overt.cli.main import main
from overt.telemetry.endpoint import Endpoint
from overt.telemetry.ledger import EgressLedger
from overt.telemetry.policy import parse_policy
from overt.telemetry.sealing import CollectorKey

from .conftest import policy_bytes


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_policy_check_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.json").write_bytes(policy_bytes())
    code, out, _ = _run(capsys, "telemetry", "policy", "check", str(tmp_path / "p.json"))
    assert code == 0 and "policy acme revision 1: region eu" in out
    (tmp_path / "bad.json").write_bytes(policy_bytes(version=0))
    code, _, err = _run(capsys, "telemetry", "policy", "check", str(tmp_path / "bad.json"))
    assert code == 1 and err.startswith("overt: malformed telemetry policy at version")
    assert err.count("\n") == 1
    code, out, _ = _run(capsys, "telemetry", "policy", "schema")
    assert code == 0 and json.loads(out)["title"] == "overt telemetry policy v1"


def test_a_document_named_exe_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.json").write_bytes(policy_bytes())
    (tmp_path / "setup.exe").write_bytes(b"%PDF-1.4\n%%EOF\n")
    code, _, err = _run(
        capsys,
        "telemetry",
        "screen",
        str(tmp_path / "setup.exe"),
        "--policy",
        str(tmp_path / "p.json"),
    )
    assert code == 1
    assert err == "overt: sample refused by samples.documents (pdf): PDF header\n"


def test_filter_refusal_names_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.json").write_bytes(policy_bytes())
    (tmp_path / "salt").write_bytes(b"s")
    (tmp_path / "ev.jsonl").write_text(
        '{"type": "process", "sha256": "ab", "path": "x"}\n{"type": "process", "sha256": "ab", "pwd": "x"}\n'
    )
    code, out, err = _run(
        capsys, "telemetry", "filter", str(tmp_path / "p.json"), str(tmp_path / "ev.jsonl"),
        "--salt-file", str(tmp_path / "salt"),
    )  # fmt: skip
    assert code == 1 and out == '{"type": "process", "sha256": "ab"}\n'
    assert "events.process.fields (unknown-field)" in err


def test_ledger_show_verify_export_and_tamper(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = EgressLedger.create(tmp_path / "ledger", "acme.example/ledger/host42")
    endpoint = Endpoint(
        parse_policy(policy_bytes()), b"s", CollectorKey.generate("eu").public, ledger
    )
    endpoint.events([{"type": "process", "sha256": "ab"}])
    ledger.close()
    d = str(tmp_path / "ledger")
    cp = str(tmp_path / "cp")
    code, out, _ = _run(capsys, "telemetry", "ledger", "verify", d, "--save-checkpoint", cp)
    assert (code, out) == (0, "ledger acme.example/ledger/host42: 1 record(s) verified\n")
    code, out, _ = _run(capsys, "telemetry", "ledger", "show", d, "--previous", cp)
    assert code == 0 and "process.sha256" in out
    code, out, _ = _run(capsys, "telemetry", "ledger", "export", d)
    assert json.loads(out)["records"][0]["fields"] == ["process.sha256"]
    bundle = tmp_path / "ledger" / "tiles" / "tile" / "entries" / "000.p" / "1"
    bundle.write_bytes(bundle.read_bytes().replace(b'"events":1', b'"events":0'))
    code, _, err = _run(capsys, "telemetry", "ledger", "verify", d)
    assert code == 1 and err.startswith("overt: egress ledger does not verify")


def test_ask_mode_needs_the_users_consent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.json").write_bytes(policy_bytes(samples={"mode": "ask"}))
    (tmp_path / "tool.bin").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(200))
    argv = ["telemetry", "screen", str(tmp_path / "tool.bin"), "--policy", str(tmp_path / "p.json")]
    code, _, err = _run(capsys, *argv)
    assert code == 1 and "samples.mode" in err
    code, out, _ = _run(capsys, *argv, "--consent")
    assert code == 0 and out == "(sample)\texecutable\tELF\n"
