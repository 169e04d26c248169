"""Detectors are plug-ins: one registry read by the analysis, the SARIF report and
``overt rules audit --help`` (issue 9)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from overt.rules import audit_sources
from overt.rules.detectors import (
    DETECTORS,
    Detector,
    RuleContext,
    Severity,
    Signal,
    analyse_rule,
    register_detector,
)
from overt.rules.parse import parse_source
from overt.rules.report import format_sarif


def test_a_registered_detector_runs_on_every_rule() -> None:
    def detect(ctx: RuleContext) -> list[Signal]:
        return [Signal("test-plugin", Severity.LOW, "rule", ctx.rule.line, ctx.rule.name, "x")]

    register_detector(Detector("test-plugin", "A detector added by a test.", detect))
    try:
        rule = parse_source('rule r { strings: $a = "x" condition: $a }', "r.yar").rules[0]
        _ctx, signals = analyse_rule(rule)
        assert [s.detector for s in signals] == ["test-plugin"]
    finally:
        del DETECTORS["test-plugin"]


def test_a_detector_name_cannot_be_taken_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_detector(Detector("marking", "again"))


def test_sarif_describes_every_registered_detector() -> None:
    report = audit_sources({"r.yar": b'rule r { strings: $a = "x" condition: $a }'}, dynamic=False)
    rules = json.loads(format_sarif(report))["runs"][0]["tool"]["driver"]["rules"]
    described = {r["id"]: r["shortDescription"]["text"] for r in rules}
    for name, d in DETECTORS.items():
        assert described[name] == d.help


def test_audit_help_lists_the_registry() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from overt.cli.main import main; main(['rules', 'audit', '--help'])",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    for name in DETECTORS:
        assert name in out
