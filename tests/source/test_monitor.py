"""The monitor's source-evidence check: mismatches at once, missing evidence after a grace."""

from __future__ import annotations

import hashlib

import pytest

from overt.errors import ConfigError
from overt.formats.slsa_provenance import PROVENANCE_PREDICATE, Provenance
from overt.formats.source_review import REVIEW_PREDICATE, ReviewedFile, ReviewPredicate
from overt.formats.statement import Release
from overt.formats.vsa import SOURCE_SNAPSHOT_URI, VSA_PREDICATE, Vsa
from overt.monitor.checks import available_checks, make_check
from overt.publish.keys import generate_publisher_key
from overt.publish.publisher import Publication, make_entry

_, KEY = generate_publisher_key("vendor.example")
ART = hashlib.sha256(b"app").hexdigest()
SRC = "ab" * 32


def _release() -> bytes:
    return make_entry(KEY, Publication("app.zip", ART, Release("app", "1.0.0", "stable", "any")))


def _provenance() -> bytes:
    p = Provenance(SRC, "https://ci.example")
    return make_entry(KEY, Publication("app.zip", ART, (PROVENANCE_PREDICATE, p.to_json())))


def _review() -> bytes:
    r = ReviewPredicate(KEY.key.vkey, "pass", "high", (ReviewedFile("a.py", "cd" * 32),))
    return make_entry(KEY, Publication("source", SRC, (REVIEW_PREDICATE, r.to_json())))


def _vsa(passed: bool) -> bytes:
    v = Vsa("r1", "2026-11-26T12:00:00Z", "app.zip", ((SOURCE_SNAPSHOT_URI, SRC),), passed, ART,
            None if passed else "zip member app/BUILD_INFO is only in the rebuilt artifact")  # fmt: skip
    return make_entry(KEY, Publication("app.zip", ART, (VSA_PREDICATE, v.to_json())))


def _sbom() -> bytes:
    bom = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}
    return make_entry(KEY, Publication("app.zip", ART, ("https://cyclonedx.org/bom/v1.6", bom)))


def test_the_check_is_registered() -> None:
    assert "source-evidence" in available_checks()
    with pytest.raises(ConfigError):
        make_check("source-evidence=tests")
    with pytest.raises(ConfigError):
        make_check("source-evidence=review:soon")


def test_a_rebuild_mismatch_is_reported_at_once() -> None:
    check = make_check("source-evidence")
    (alert,) = check.check(7, _vsa(False))
    assert alert.index == 7 and "rebuild mismatch for app.zip" in alert.message
    assert "app/BUILD_INFO" in alert.message


def test_a_release_without_evidence_is_reported_after_the_grace() -> None:
    check = make_check("source-evidence=review,rebuild,sbom:3")
    assert check.check(0, _release()) == []
    assert check.check(1, b"other") == [] and check.check(2, b"other") == []
    (alert,) = check.check(3, b"other")
    assert alert.index == 0 and "provenance (so reviews)" in alert.message
    assert "a matching rebuild" in alert.message and "an SBOM" in alert.message
    assert check.check(4, b"other") == []  # once


def test_a_release_with_all_its_evidence_is_not_reported() -> None:
    check = make_check("source-evidence=review,rebuild,sbom:5")
    entries = [_release(), _provenance(), _review(), _vsa(True), _sbom(), b"x", b"y"]
    alerts = [a for i, e in enumerate(entries) for a in check.check(i, e)]
    assert alerts == []


def test_only_the_kinds_asked_for_are_required() -> None:
    check = make_check("source-evidence=sbom:1")
    check.check(0, _release())
    (alert,) = check.check(1, _provenance())
    assert alert.message.endswith("lacks an SBOM 1 entries later")
