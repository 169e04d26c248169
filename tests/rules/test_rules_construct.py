"""Proof by construction: the auditor builds a benign file from one requirement set
and shows that the rule fires on it (issue 9); the sample is in JSON and SARIF."""

from __future__ import annotations

import base64
import json

import yara_x

from overt.rules import audit_sources
from overt.rules.construct import build_sample
from overt.rules.parse import parse_source
from overt.rules.report import format_json, format_sarif
from overt.rules.requirements import requirements

TOPIC = """rule topic_weapons {
  strings: $a = "weapons programme" wide $b = "enrichment schedule"
  condition: uint32(0) == 0xe011cfd0 and filesize < 2MB and all of them
}"""


def _sample_of(report_findings: list, rule: str) -> bytes:  # type: ignore[type-arg]
    [proof] = [f for f in report_findings if f.rule == rule and f.detector == "constructed-proof"]
    return base64.b64decode(proof.evidence.split("=", 1)[1], validate=True)


def test_topic_rule_fires_on_a_constructed_benign_document_anyone_can_rescan() -> None:
    report = audit_sources({"r.yar": TOPIC.encode()}, dynamic=True)
    sample = _sample_of(report.findings, "topic_weapons")
    assert sample.startswith(bytes.fromhex("d0cf11e0"))
    assert "weapons programme".encode("utf-16-le") in sample
    assert b"MZ" not in sample[:2]
    # a reviewer reproduces it with yara-x alone
    rules = yara_x.compile(TOPIC)
    assert [r.identifier for r in yara_x.Scanner(rules).scan(sample).matching_rules] == [
        "topic_weapons"
    ]
    assert "sample(base64)=" in format_json(report)
    sarif = json.loads(format_sarif(report))
    assert any(
        "sample(base64)=" in r["properties"]["evidence"] for r in sarif["runs"][0]["results"]
    )


def test_marking_washed_by_a_negated_pe_check_is_proven_on_a_plain_file() -> None:
    src = 'rule m { strings: $a = "TOP SECRET//NOFORN" condition: $a and not uint16(0) == 0x5a4d }'
    report = audit_sources({"r.yar": src.encode()}, dynamic=True)
    assert b"TOP SECRET//NOFORN" in _sample_of(report.findings, "m")


def test_a_malware_rule_gets_no_constructed_proof() -> None:
    src = """rule mal { strings: $a = "TOP SECRET" $sc = { fc e8 82 00 00 00 60 89 e5 31 c0 }
  condition: uint16(0) == 0x5a4d and $a and $sc }"""
    report = audit_sources({"r.yar": src.encode()}, dynamic=True)
    assert not [f for f in report.findings if f.detector == "constructed-proof"]


def test_no_sample_is_guessed_for_regex_or_encoded_strings() -> None:
    src = 'rule r { strings: $a = /TOP SECRET[A-Z]+/ $b = "NOFORN" xor condition: $a or $b }'
    rule = parse_source(src, "r.yar").rules[0]
    reqs = requirements(rule.condition, [s.identifier for s in rule.strings])
    assert build_sample(rule, reqs.sets) is None
