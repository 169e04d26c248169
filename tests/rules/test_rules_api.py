"""Reports (text, JSON, SARIF), finding IDs, the predicate, bundles, the CLI, diffs."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

import overt.rules
from overt.cli import rules as cli_rules
from overt.cli.main import _Parser
from overt.errors import ConfigError, FormatError
from overt.rules import (
    PREDICATE_TYPE,
    Severity,
    audit_bundle_bytes,
    audit_predicate,
    audit_sources,
    diff_bundles,
    finding_id,
    format_json,
    format_sarif,
    format_text,
    read_bundle,
)

FIXTURES = Path(__file__).parent / "fixtures"
MARKED = b'rule marked { strings: $a = "NOFORN" condition: $a }\n'
CLEAN = b'rule clean { strings: $a = "CreateRemoteThread" condition: uint16(0) == 0x5a4d and $a }\n'


def test_exported_names() -> None:
    assert set(overt.rules.__all__) == {
        "PREDICATE_TYPE",
        "BundleDiff",
        "Finding",
        "Report",
        "RuleChange",
        "Severity",
        "audit_bundle_bytes",
        "audit_paths",
        "audit_predicate",
        "audit_sources",
        "diff_bundles",
        "diff_paths",
        "finding_id",
        "format_json",
        "format_sarif",
        "format_text",
        "read_bundle",
    }
    for name in overt.rules.__all__:
        assert hasattr(overt.rules, name)


def test_severity_order_and_parse() -> None:
    assert [str(s) for s in sorted(Severity)] == ["info", "low", "medium", "high", "critical"]
    assert Severity.parse("HIGH") is Severity.HIGH
    with pytest.raises(ValueError):
        Severity.parse("severe")


# -- finding IDs ------------------------------------------------------------------------


def test_finding_ids_are_stable_across_runs_and_line_moves() -> None:
    a = audit_sources({"r.yar": MARKED}, dynamic=False)
    b = audit_sources({"r.yar": b"\n\n// moved down\n" + MARKED}, dynamic=False)
    assert [f.id for f in a.findings] == [f.id for f in b.findings]
    assert [f.line for f in a.findings] != [f.line for f in b.findings]
    f = a.findings[0]
    assert f.id == finding_id("r.yar", "marked", "marking", "$a", f.evidence)
    assert f.id.startswith("OVR-") and len(f.id) == 20


def test_finding_id_changes_with_each_component() -> None:
    base = ("p.yar", "rule", "marking", "$a", "NOFORN")
    ids = {finding_id(*base)}
    for i in range(len(base)):
        changed = list(base)
        changed[i] += "x"
        ids.add(finding_id(*changed))
    assert len(ids) == len(base) + 1


# -- formats -----------------------------------------------------------------------------


def test_text_report_has_one_line_per_finding_and_a_summary() -> None:
    report = audit_sources({"r.yar": MARKED}, dynamic=False)
    lines = format_text(report).splitlines()
    assert len(lines) == len(report.findings) + 1
    assert lines[0].startswith("high OVR-") and "r.yar:1 marked $a [marking] NOFORN" in lines[0]
    assert lines[-1].startswith("1 files, 1 rules audited (static)")


def test_json_report_round_trips() -> None:
    report = audit_sources({"r.yar": MARKED, "c.yar": CLEAN}, dynamic=False)
    doc = json.loads(format_json(report))
    assert doc["counts"] == report.counts()
    assert doc["findings"] == [f.as_dict() for f in report.findings]
    assert (doc["files"], doc["rules"], doc["sha256"]) == (2, 2, report.sha256)


def test_sarif_is_2_1_0_with_levels_locations_and_fingerprints() -> None:
    sources = {"r.yar": MARKED, "d.yar": (FIXTURES / "positive" / "document_only.yar").read_bytes()}
    report = audit_sources(sources, dynamic=False)
    doc = json.loads(format_sarif(report))
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    [run] = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    assert len(run["results"]) == len(report.findings)
    for res, f in zip(run["results"], report.findings, strict=True):
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"] == f.detector
        assert res["level"] == {"high": "error", "critical": "error", "medium": "warning"}.get(
            str(f.severity), "note"
        )
        loc = res["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] == f.path and loc["region"]["startLine"] == f.line
        assert res["partialFingerprints"]["overtFindingId/v1"] == f.id


# -- predicate ---------------------------------------------------------------------------


def test_predicate_binds_bundle_counts_ids_and_result() -> None:
    data = MARKED + CLEAN
    report = audit_bundle_bytes("bundle.yar", data, dynamic=False)
    pred = audit_predicate(report)
    assert PREDICATE_TYPE == "https://overt.dev/rule-audit/v1"
    assert pred["bundle"] == {"name": "bundle.yar", "sha256": hashlib.sha256(data).hexdigest()}
    assert pred["auditor"] == {"name": "overt", "version": overt.__version__}
    assert pred["counts"] == report.counts() and pred["result"] == "fail"
    assert pred["findings"] == sorted(f.id for f in report.findings)
    assert audit_predicate(report, Severity.CRITICAL)["result"] == "pass"
    assert audit_predicate(report) == pred  # pure
    clean = audit_predicate(audit_bundle_bytes("c.yar", CLEAN, dynamic=False))
    assert clean["result"] == "pass" and clean["findings"] == []


# -- bundles -----------------------------------------------------------------------------


def _tar(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


FILES = {
    "rules/main.yar": b'include "lib/x.yar"\n' + CLEAN,
    "rules/lib/x.yar": MARKED,
    "rules/README.md": b"not a rule",
}


@pytest.mark.parametrize(
    "pack", [lambda f: _tar(f), lambda f: _tar(f, "w"), _zip], ids=["tar.gz", "tar", "zip"]
)
def test_archive_bundles_are_audited_with_includes(pack) -> None:  # type: ignore[no-untyped-def]
    data = pack(FILES)
    assert read_bundle("b", data) == {k: v for k, v in FILES.items() if k.endswith(".yar")}
    report = audit_bundle_bytes("bundle.tar.gz", data)
    assert report.sha256 == hashlib.sha256(data).hexdigest()
    assert (report.files, report.rules) == (2, 2)
    assert {(f.path, f.detector) for f in report.findings} >= {("rules/lib/x.yar", "marking")}
    assert not [f for f in report.findings if f.detector == "include-unresolved"]


def test_single_yar_bundle_and_unreadable_archive() -> None:
    assert read_bundle("dir/one.yar", MARKED) == {"one.yar": MARKED}
    with pytest.raises(FormatError):
        read_bundle("x.tar.gz", b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(FormatError):
        read_bundle("x.zip", b"PK\x03\x04" + b"\x00" * 40)


# -- CLI ---------------------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    parser = _Parser(prog="overt")
    sub = parser.add_subparsers(dest="group", parser_class=_Parser)
    cli_rules.register(sub)  # type: ignore[arg-type]
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_audit_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    neg = str(FIXTURES / "negative")
    assert _run(["rules", "audit", neg, "--static-only"]) == 0
    assert (
        _run(["rules", "audit", str(FIXTURES / "positive" / "markings_plain.yar"), "--static-only"])
        == 1
    )
    doc_only = str(FIXTURES / "positive" / "document_only.yar")
    assert _run(["rules", "audit", doc_only, "--static-only"]) == 0  # medium < high
    assert _run(["rules", "audit", doc_only, "--static-only", "--fail-on", "medium"]) == 1
    capsys.readouterr()
    assert (
        _run(["rules", "audit", neg, "--format", "sarif", "--fail-on", "info"]) == 1
    )  # the low owner finding
    assert json.loads(capsys.readouterr().out)["version"] == "2.1.0"


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["rules", "audit"],
        ["rules", "audit", "x.yar", "--fail-on", "severe"],
        ["rules", "diff", "a"],
    ):
        with pytest.raises(SystemExit) as exc:
            _run(argv)
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("overt: usage:") == 3


def test_cli_missing_path_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        _run(["rules", "audit", str(tmp_path / "nope.yar")])


# -- diff --------------------------------------------------------------------------------

OLD = {
    "a.yar": b'rule keep { strings: $a = "CreateRemoteThread" condition: $a }\n'
    b'rule change { strings: $a = "VirtualAlloc" $b = "x" condition: $a }\n'
    b'rule gone { strings: $a = "WriteProcessMemory" condition: $a }\n',
}
NEW = {
    "a.yar": b'rule keep { strings: $a = "CreateRemoteThread" condition: $a }\n'
    b'rule change { strings: $a = "VirtualAlloc" $c = "TOP SECRET" wide condition: $a or $c }\n',
    "b.yar": b'rule added { meta: upload = true strings: $a = "quarterly" condition: $a }\n',
}


def test_diff_reports_rules_strings_and_condition() -> None:
    d = diff_bundles(OLD, NEW, dynamic=False)
    kinds = {(c.kind, c.name) for c in d.changes}
    assert kinds == {("+", "added"), ("-", "gone"), ("~", "change")}
    [change] = d.of_kind("~")
    assert '- $b = "x"' in change.details
    assert '+ $c = "TOP SECRET" wide' in change.details
    assert "condition: $a  ->  $a or $c" in change.details


def test_diff_audits_only_what_changed() -> None:
    d = diff_bundles(OLD, NEW, dynamic=False)
    assert d.report is not None
    assert {f.rule for f in d.report.findings} == {"change", "added"}
    assert {f.detector for f in d.report.findings} == {
        "marking",
        "collect-meta",
        "collection-strings",
    }
    same = diff_bundles(OLD, OLD, dynamic=False)
    assert same.changes == [] and same.report is not None and same.report.findings == []


def test_cli_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for side, files in (("old", OLD), ("new", NEW)):
        (tmp_path / side).mkdir()
        for name, data in files.items():
            (tmp_path / side / name).write_bytes(data)
    assert (
        _run(["rules", "diff", str(tmp_path / "old"), str(tmp_path / "new"), "--static-only"]) == 1
    )
    out = capsys.readouterr().out
    assert "~ rule change (a.yar:2)" in out and "1 added, 1 removed, 1 changed" in out
    assert (
        _run(["rules", "diff", str(tmp_path / "old"), str(tmp_path / "old"), "--format", "json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["changes"] == []


def test_main_prints_one_line_on_a_fatal_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from overt.cli import main as main_mod

    monkeypatch.setattr(main_mod, "_GROUPS", ("rules",))
    assert main_mod.main(["rules", "audit", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("overt: cannot read")
    assert main_mod.main(["rules", "diff", str(tmp_path / "a.yar"), str(tmp_path / "b.yar")]) == 1
    assert capsys.readouterr().err.startswith("overt: cannot read")
