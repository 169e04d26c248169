"""Signed scan verdicts and the gate's SBOM requirement, checked offline.

The endpoint has no OSV database: a scanner's signed, logged verdict on the SBOM that the
publisher signed about the release is the evidence. Each test is named after what it stops.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from tests.source.test_chain import Chain, ok, run

from overt.errors import FormatError, PolicyError
from overt.gate.source import parse_source_requirement
from overt.log.log import Log
from overt.sbom.osv import load_osv_export, vulnerable_components
from overt.sbom.verdict import ScanVerdict, VulnerableComponent, sbom_digest

NOW = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _advisory(folder: Path, adv_id: str, package: str, **extra: object) -> None:
    folder.mkdir(exist_ok=True)
    doc = {
        "id": adv_id,
        "modified": NOW,
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
        **extra,
    }
    (folder / f"{adv_id}.json").write_text(json.dumps(doc))


class ScanChain(Chain):
    def __init__(self, w: Path, capsys: pytest.CaptureFixture[str]) -> None:
        super().__init__(w, capsys)
        for who in ("s1", "s2"):
            ok(capsys, "review", "keygen", w / who, "--name", f"{who}.example", "--log", w / "log")
        (w / "project" / "pyproject.toml").write_text(
            '[project]\nname = "app"\nversion = "1.0"\ndependencies = ["packaging"]\n'
        )

    def sbom(self, version: str) -> Path:
        out = self.w / f"app-{version}.cdx.json"
        ok(self.capsys, "sbom", "create", self.w / "project", "--publish", "--artifact",
           self.w / f"app-{version}.zip", "--log", self.w / "log", "--key", self.w / "vendor",
           "--out", out)  # fmt: skip
        return out

    def scan(self, who: str, sbom: Path, osv: Path) -> tuple[int, Path]:
        out = self.w / f"{sbom.name}.{who}.scan"
        code, _, err = run(self.capsys, "sbom", "check", sbom, "--osv", osv, "--key",
                           self.w / who, "--log", self.w / "log", "--out", out)  # fmt: skip
        assert out.exists(), err
        return code, out

    def sbom_policy(self, **sbom: object) -> None:
        req: dict[str, object] = {
            "scanners": [(self.w / "s1.pub").read_text().strip()],
            "min_scanners": 1, "max_severity": "high", "max_osv_age": 86400,
        }  # fmt: skip
        req.update(sbom)
        self.policy_path = self.policy(min_reviewers=0, min_rebuilders=0, min_coverage=0, sbom=req)


@pytest.fixture
def scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> ScanChain:
    c = ScanChain(tmp_path, capsys)
    c.sbom_policy()
    c.release("1.0.0", source=False)
    return c


def test_sbom_with_a_vulnerable_component_is_refused(scan: ScanChain) -> None:
    osv = scan.w / "osv"
    _advisory(osv, "GHSA-pkg-0001", "packaging", database_specific={"severity": "HIGH"})
    code, verdict = scan.scan("s1", scan.sbom("1.0.0"), osv)
    assert code == 1  # vulnerable: logged, and the command says so
    code, text = scan.verify("1.0.0", scan.evidence("1.0.0", scan.w / "app-1.0.0.cdx.json.overt",
                                                     verdict))  # fmt: skip
    assert code == 1 and "source: vulnerabilities: scanner" in text, text
    assert "packaging" in text and "GHSA-pkg-0001" in text, text


def test_clean_sbom_is_admitted_and_a_lower_severity_passes(scan: ScanChain) -> None:
    osv = scan.w / "osv"
    _advisory(osv, "GHSA-other-0001", "not-installed-here")
    _advisory(osv, "GHSA-pkg-0002", "packaging", database_specific={"severity": "MODERATE"})
    code, verdict = scan.scan("s1", scan.sbom("1.0.0"), osv)
    assert code == 1  # medium is still a known vulnerability for the command
    full = scan.evidence("1.0.0", scan.w / "app-1.0.0.cdx.json.overt", verdict)
    code, text = scan.verify("1.0.0", full)
    assert code == 0, text  # the policy refuses high and above only


def test_release_without_an_sbom_is_refused(scan: ScanChain) -> None:
    code, text = scan.verify("1.0.0", scan.w / "app-1.0.0.zip.overt")
    assert code == 1 and "source: sbom: no SBOM signed by the publisher" in text, text


def test_verdict_on_another_sbom_is_refused(scan: ScanChain) -> None:
    osv = scan.w / "osv"
    _advisory(osv, "GHSA-other-0001", "not-installed-here")
    scan.sbom("1.0.0")
    other = scan.w / "other.cdx.json"  # not the SBOM the publisher logged about the release
    doc = json.loads((scan.w / "app-1.0.0.cdx.json").read_text())
    doc["components"] = []
    other.write_text(json.dumps(doc))
    _, verdict = scan.scan("s1", other, osv)
    full = scan.evidence("1.0.0", scan.w / "app-1.0.0.cdx.json.overt", verdict)
    code, text = scan.verify("1.0.0", full)
    assert code == 1 and "source: vulnerabilities: SBOM" in text and "0 of the 1" in text, text


def test_verdict_and_sbom_of_another_release_are_refused(scan: ScanChain) -> None:
    osv = scan.w / "osv"
    _advisory(osv, "GHSA-other-0001", "not-installed-here")
    (scan.w / "project" / "src" / "util.py").write_text("X = 2\n")
    scan.release("2.0.0", source=False)
    code, verdict = scan.scan("s1", scan.sbom("2.0.0"), osv)
    assert code == 0
    full = scan.evidence("1.0.0", scan.w / "app-2.0.0.cdx.json.overt", verdict)
    code, text = scan.verify("1.0.0", full)
    assert code == 1 and "source: sbom:" in text, text


def test_verdict_by_a_scanner_the_policy_does_not_name_is_refused(scan: ScanChain) -> None:
    osv = scan.w / "osv"
    _advisory(osv, "GHSA-other-0001", "not-installed-here")
    _, verdict = scan.scan("s2", scan.sbom("1.0.0"), osv)  # s2: logged, but not trusted
    full = scan.evidence("1.0.0", scan.w / "app-1.0.0.cdx.json.overt", verdict)
    code, text = scan.verify("1.0.0", full)
    assert code == 1 and "source: vulnerabilities:" in text and "0 of the 1" in text, text


def test_verdict_from_a_stale_osv_export_is_refused(scan: ScanChain) -> None:
    osv = scan.w / "osv"
    _advisory(osv, "GHSA-other-0001", "not-installed-here", modified="2020-01-01T00:00:00Z")
    _, verdict = scan.scan("s1", scan.sbom("1.0.0"), osv)
    full = scan.evidence("1.0.0", scan.w / "app-1.0.0.cdx.json.overt", verdict)
    code, text = scan.verify("1.0.0", full)
    assert code == 1 and "from an older OSV export" in text, text


def test_osv_export_without_a_date_logs_no_verdict(
    scan: ScanChain, capsys: pytest.CaptureFixture[str]
) -> None:
    osv = scan.w / "osv"
    osv.mkdir()
    sbom = scan.sbom("1.0.0")
    code, _, err = run(capsys, "sbom", "check", sbom, "--osv", osv, "--key", scan.w / "s1",
                       "--log", scan.w / "log")  # fmt: skip
    assert code == 1 and "no dated advisory" in err, err
    assert not list(scan.w.glob("*.scan-*"))


def test_unknown_severity_counts_as_critical_and_cvss_is_scored(tmp_path: Path) -> None:
    _advisory(tmp_path, "PYSEC-0001", "a")
    _advisory(tmp_path, "PYSEC-0002", "b", severity=[
        {"type": "CVSS_V3", "score": "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"}])  # fmt: skip
    sbom = json.dumps(
        {"components": [{"purl": "pkg:pypi/a@1.0"}, {"purl": "pkg:pypi/b@1.0"}]}
    ).encode()
    export = load_osv_export(tmp_path)
    found = {v.name: v.severity for v in vulnerable_components(sbom, export.advisories)}
    assert found == {"a": "critical", "b": "medium"}
    assert export.date == NOW and len(export.sha256) == 64


def test_sbom_digest_does_not_depend_on_formatting() -> None:
    doc = {"b": [1, {"y": "é", "x": None}], "a": "z"}
    assert sbom_digest(doc) == sbom_digest(json.loads(json.dumps(doc, indent=4)))
    assert sbom_digest(doc) != sbom_digest({**doc, "a": "y"})


def test_verdict_round_trips_and_a_lying_max_severity_is_refused() -> None:
    comp = VulnerableComponent("a", "1.0", "high", ("GHSA-1",))
    v = ScanVerdict("ab" * 32, NOW, 1, NOW, "high", (comp,))
    assert ScanVerdict.from_json(v.to_json()) == v
    lying = {**v.to_json(), "maxSeverity": "none"}  # hides a high finding
    with pytest.raises(FormatError, match="maxSeverity"):
        ScanVerdict.from_json(lying)
    with pytest.raises(FormatError):
        ScanVerdict.from_json({**v.to_json(), "extra": 1})
    month_13 = {**v.to_json(), "scanned": "2026-13-01T00:00:00Z"}  # not a ValueError later
    with pytest.raises(FormatError, match="scanned"):
        ScanVerdict.from_json(month_13)


def test_sbom_requirement_needing_more_scanners_than_listed_is_refused(scan: ScanChain) -> None:
    key = (scan.w / "s1.pub").read_text().strip()
    base = {"reviewers": [], "min_reviewers": 0, "min_coverage": 0, "rebuilders": [],
            "min_rebuilders": 0}  # fmt: skip
    sbom = {"scanners": [key], "min_scanners": 2, "max_severity": "high", "max_osv_age": 1}
    with pytest.raises(PolicyError, match="min_scanners"):
        parse_source_requirement({**base, "sbom": sbom})
    with pytest.raises(FormatError):
        parse_source_requirement({**base, "sbom": {**sbom, "min_scanners": 1, "max_osv_age": 0}})
    with pytest.raises(PolicyError, match="requires nothing"):
        parse_source_requirement(base)


def test_scanner_key_the_log_does_not_hold_logs_nothing(
    scan: ScanChain, capsys: pytest.CaptureFixture[str]
) -> None:
    osv = scan.w / "osv"
    _advisory(osv, "GHSA-other-0001", "not-installed-here")
    sbom = scan.sbom("1.0.0")
    ok(
        capsys,
        "publisher",
        "keygen",
        scan.w / "rogue",
        "--name",
        "rogue.example",
        "--new-publisher",
    )
    with Log.open(scan.w / "log") as log:
        size = log.size
    code, _, err = run(capsys, "sbom", "check", sbom, "--osv", osv, "--key", scan.w / "rogue",
                       "--log", scan.w / "log")  # fmt: skip
    assert code == 1 and "scanner" in err, err
    with Log.open(scan.w / "log") as log:
        assert log.size == size
