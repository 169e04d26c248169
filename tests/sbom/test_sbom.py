"""SBOMs and offline OSV matching. Each test is named after the mistake it stops."""

from __future__ import annotations

import json
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from overt.cli import main as cli_main
from overt.log.log import Log
from overt.sbom.errors import SbomError
from overt.sbom.generate import make_sbom, validate_sbom
from overt.sbom.osv import load_osv, vulnerable_components

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli_main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _components(sbom: bytes) -> dict[str, str | None]:
    return {c["name"]: c.get("version") for c in json.loads(sbom)["components"]}


def test_project_sbom_is_valid_cyclonedx_with_the_installed_versions() -> None:
    sbom = make_sbom(ROOT)
    validate_sbom(sbom)
    doc = json.loads(sbom)
    assert doc["specVersion"] == "1.6" and doc["metadata"]["component"]["name"] == "overt"
    found = _components(sbom)
    assert found["cryptography"] == metadata.version("cryptography")
    assert "cffi" in found  # transitively, through cryptography's own requirements


def test_environment_sbom_lists_what_is_installed() -> None:
    site_packages = Path(pytest.__file__).resolve().parents[1]  # this environment's
    sbom = make_sbom(site_packages)
    assert _components(sbom)["pytest"] == metadata.version("pytest")


def test_same_inputs_and_source_date_epoch_give_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert make_sbom(ROOT) == make_sbom(ROOT)


def test_invalid_sbom_is_refused() -> None:
    doc = json.loads(make_sbom(ROOT))
    doc["components"][0]["type"] = "spaceship"
    with pytest.raises(SbomError, match=r"CycloneDX 1\.6"):
        validate_sbom(json.dumps(doc).encode())
    with pytest.raises(SbomError):
        validate_sbom(b"{not json")


def test_directory_that_is_neither_project_nor_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SbomError, match="neither"):
        make_sbom(tmp_path)


# --- OSV ------------------------------------------------------------------------------------


def _sbom(*components: tuple[str, str]) -> bytes:
    return json.dumps(
        {
            "components": [
                {"name": n, "version": v, "purl": f"pkg:pypi/{n}@{v}"} for n, v in components
            ]
        }
    ).encode()


def _advisory(adv_id: str, name: str, events: list[dict[str, str]], **extra: object) -> dict:  # type: ignore[type-arg]
    return {
        "id": adv_id,
        "affected": [
            {"package": {"ecosystem": "PyPI", "name": name},
             "ranges": [{"type": "ECOSYSTEM", "events": events}], **extra}
        ],
    }  # fmt: skip


@pytest.fixture
def osv(tmp_path: Path) -> Path:
    d = tmp_path / "osv"
    d.mkdir()
    advisories = [
        _advisory("GHSA-1", "Requests", [{"introduced": "0"}, {"fixed": "2.31.0"}]),
        _advisory("PYSEC-2", "requests", [{"introduced": "2.0"}, {"last_affected": "2.30.0"}]),
        _advisory("GHSA-3", "jinja2", [{"introduced": "3.0"}, {"fixed": "3.1.3"}]),
        _advisory("GHSA-4", "flask", [], versions=["2.2.0"]),
        {**_advisory("GHSA-5", "flask", [{"introduced": "0"}]), "withdrawn": "2024-01-01T00:00:00Z"},
        _advisory("GO-6", "requests", [{"introduced": "0"}]) | {"affected": [
            {"package": {"ecosystem": "Go", "name": "requests"},
             "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}]},
    ]  # fmt: skip
    for adv in advisories:
        (d / f"{adv['id']}.json").write_text(json.dumps(adv))
    return d


def test_vulnerable_versions_are_found_with_their_advisories(osv: Path) -> None:
    sbom = _sbom(
        ("requests", "2.30.0"), ("jinja2", "3.1.3"), ("flask", "2.2.0"), ("Jinja2", "3.0.1")
    )
    found = {(v.name, v.version): v.advisories for v in vulnerable_components(sbom, load_osv(osv))}
    assert found == {
        ("requests", "2.30.0"): ("GHSA-1", "PYSEC-2"),
        ("flask", "2.2.0"): ("GHSA-4",),
        ("jinja2", "3.0.1"): ("GHSA-3",),
    }


def test_fixed_version_is_not_reported(osv: Path) -> None:
    assert vulnerable_components(_sbom(("requests", "2.31.0")), load_osv(osv)) == []


def test_a_zip_export_is_read_like_a_folder(osv: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "all.zip", "w") as z:
        for f in osv.iterdir():
            z.write(f, f.name)
    assert len(load_osv(tmp_path / "all.zip")) == len(load_osv(osv))


def test_malformed_osv_export_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(SbomError):
        load_osv(tmp_path)
    (tmp_path / "bad.json").write_text('{"affected": []}')
    with pytest.raises(SbomError, match="no id"):
        load_osv(tmp_path)


def test_check_lists_components_and_exits_1(
    osv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.cdx.json").write_bytes(_sbom(("requests", "2.30.0")))
    code, out, err = run(capsys, "sbom", "check", tmp_path / "bad.cdx.json", "--osv", osv)
    assert (
        code == 1
        and out == "requests 2.30.0 (critical): GHSA-1, PYSEC-2\n"
        and err.count("\n") == 1
    )
    (tmp_path / "ok.cdx.json").write_bytes(_sbom(("requests", "2.32.0")))
    code, out, _ = run(capsys, "sbom", "check", tmp_path / "ok.cdx.json", "--osv", osv)
    assert code == 0 and "no known vulnerability" in out


def test_sbom_publish_logs_a_statement_about_the_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from overt.formats.dsse import parse_envelope
    from overt.formats.statement import parse_statement
    from overt.publish.bundle import parse_bundle

    Log.create(tmp_path / "log", "sbom.example/log").close()
    run(capsys, "publisher", "keygen", tmp_path / "k", "--name", "vendor.example")
    (tmp_path / "app.whl").write_bytes(b"wheel")
    code, _, err = run(capsys, "sbom", "create", ROOT, "--publish", "--artifact",
                       tmp_path / "app.whl", "--log", tmp_path / "log", "--key", tmp_path / "k")  # fmt: skip
    assert code == 0, err
    bundle = parse_bundle((tmp_path / "app.whl.cdx.json.overt").read_bytes())
    statement = parse_statement(parse_envelope(bundle.entry).payload)
    assert statement.predicate_type == "https://cyclonedx.org/bom/v1.6"
    assert statement.subjects[0].name == "app.whl"
    validate_sbom((tmp_path / "app.whl.cdx.json").read_bytes())
