"""CSAF 2.0 and OSV advisories from a fixed report, schema-validated and logged; security.txt."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from overt.disclosure.advisories import AdvisoryDetails, validate
from overt.disclosure.errors import StoreError, SubmissionError, TransitionError
from overt.disclosure.securitytxt import SecurityTxt, format_security_txt, parse_security_txt
from overt.disclosure.workflow import State, Verdict
from overt.errors import FormatError
from overt.formats.dsse import parse_envelope
from overt.formats.merkle import leaf_hash
from overt.formats.note import parse_vkey
from overt.formats.proof import parse_proof, verify_proof
from overt.log.log import read_vkey

from .conftest import Rig

DETAILS = AdvisoryDetails(
    advisory_id="OVT-2026-0001",
    vendor="Example",
    product="overt",
    fixed="1.2.3",
    ecosystem="PyPI",
    package="overt",
    summary="The updater accepted unsigned manifests.",
    cve="CVE-2026-12345",
)


def _fixed(rig: Rig, vector: str = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") -> str:
    rid = rig.desk.submit(rig.submission(cvss=vector)).report_id
    rig.desk.transition(rig.triager, rid, State.ACKNOWLEDGED)
    rig.desk.transition(rig.triager, rid, State.TRIAGED, Verdict.VALID)
    rig.desk.transition(rig.triager, rid, State.FIX_IN_PROGRESS)
    rig.desk.transition(rig.triager, rid, State.FIXED)
    return rid


def test_a_fixed_report_yields_schema_valid_csaf_and_osv_in_the_csaf_layout(rig: Rig) -> None:
    path, _proof = rig.desk.publish_advisory(rig.triager, _fixed(rig), DETAILS)
    assert path == "2026/ovt-2026-0001.json"
    files = rig.desk.advisory_files()
    csaf = json.loads(files[f".well-known/csaf/white/{path}"])
    osv = json.loads(files["osv/x_OVT-2026-0001.json"])
    validate("csaf", csaf)
    validate("osv", osv)
    validate("provider", json.loads(files[".well-known/csaf/provider-metadata.json"]))
    assert csaf["document"]["category"] == "csaf_security_advisory"
    assert csaf["vulnerabilities"][0]["scores"][0]["cvss_v3"]["baseScore"] == 9.8
    assert osv["affected"][0]["ranges"][0]["events"][1] == {"fixed": "1.2.3"}
    assert files[".well-known/csaf/white/index.txt"] == f"{path}\n".encode()
    assert files[".well-known/csaf/white/changes.csv"].startswith(f'"{path}","2026-'.encode())
    digest = hashlib.sha256(files[f".well-known/csaf/white/{path}"]).hexdigest()
    assert files[f".well-known/csaf/white/{path}.sha256"].decode().startswith(digest)


def test_a_cvss_v4_report_is_scored_in_osv_only(rig: Rig) -> None:
    vector = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    rig.desk.publish_advisory(rig.triager, _fixed(rig, vector), DETAILS)
    files = rig.desk.advisory_files()
    osv = json.loads(files["osv/x_OVT-2026-0001.json"])
    assert osv["severity"] == [{"type": "CVSS_V4", "score": vector}]
    assert (
        "scores"
        not in json.loads(files[".well-known/csaf/white/2026/ovt-2026-0001.json"])[
            "vulnerabilities"
        ][0]
    )


def test_the_advisory_is_logged_as_a_signed_publication_of_its_digest(rig: Rig) -> None:
    path, proof = rig.desk.publish_advisory(rig.triager, _fixed(rig), DETAILS)
    parsed = parse_proof(proof)
    entry = rig.log.entry(parsed.index)
    verify_proof(parsed, leaf_hash(entry), parse_vkey(read_vkey(rig.log.directory)))
    statement = json.loads(parse_envelope(entry).payload)
    csaf = rig.desk.advisory_files()[f".well-known/csaf/white/{path}"]
    assert statement["subject"][0]["digest"]["sha256"] == hashlib.sha256(csaf).hexdigest()
    assert statement["predicate"]["advisory_id"] == "OVT-2026-0001"


def test_an_unfixed_report_gets_no_advisory(rig: Rig) -> None:
    rid = rig.desk.submit(rig.submission()).report_id
    with pytest.raises(TransitionError):
        rig.desk.publish_advisory(rig.triager, rid, DETAILS)


def test_an_advisory_that_breaks_its_schema_is_refused_and_not_logged(rig: Rig) -> None:
    rid = _fixed(rig)
    size = rig.log.size
    bad = AdvisoryDetails(**{**DETAILS.__dict__, "ecosystem": "NoSuchEcosystem"})
    with pytest.raises(FormatError, match="ecosystem"):
        rig.desk.publish_advisory(rig.triager, rid, bad)
    assert rig.log.size == size and rig.store.advisories() == []


def test_advisory_details_are_checked() -> None:
    for change in ({"advisory_id": "ovt 1"}, {"cve": "CVE-1"}, {"fixed": "1 2"}, {"vendor": ""}):
        with pytest.raises(SubmissionError):
            AdvisoryDetails(**{**DETAILS.__dict__, **change})


def test_security_txt_round_trips_and_refuses_what_rfc_9116_forbids() -> None:
    doc = SecurityTxt(
        contact=("https://psirt.example.com/report", "mailto:psirt@example.com"),
        expires=datetime(2027, 11, 25, tzinfo=UTC),
        encryption=("https://psirt.example.com/.well-known/psirt-key",),
        policy=("https://psirt.example.com/policy",),
        canonical=("https://psirt.example.com/.well-known/security.txt",),
    )
    text = format_security_txt(doc)
    assert parse_security_txt(text) == doc
    assert text.splitlines()[2] == "Expires: 2027-11-25T00:00:00Z"
    assert parse_security_txt("# comment\n" + text + "X-Unknown: kept out\n") == doc
    for bad in (
        text.replace("Contact: https://psirt.example.com/report\n", "").replace(
            "Contact: mailto:psirt@example.com\n", ""
        ),
        text + "Expires: 2028-01-01T00:00:00Z\n",
        text.replace("https://psirt.example.com/policy", "http://psirt.example.com/policy"),
        text.replace("2027-11-25T00:00:00Z", "next year"),
        text + "no colon here\n",
    ):
        with pytest.raises(FormatError):
            parse_security_txt(bad)


def test_a_second_advisory_for_a_report_is_refused_before_it_is_logged(rig: Rig) -> None:
    rid = _fixed(rig)
    rig.desk.publish_advisory(rig.triager, rid, DETAILS)
    size = rig.log.size
    again = AdvisoryDetails(**{**DETAILS.__dict__, "advisory_id": "OVT-2026-0002"})
    with pytest.raises(StoreError):
        rig.desk.publish_advisory(rig.triager, rid, again)
    assert rig.log.size == size
