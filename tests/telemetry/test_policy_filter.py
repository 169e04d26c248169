"""The telemetry policy refuses malformed policies, and the filter every kind of violation."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from overt.errors import ConfigError
from overt.telemetry.errors import EventRefusedError, TelemetryPolicyFormatError
from overt.telemetry.filter import EventFilter
from overt.telemetry.policy import TelemetryPolicy, parse_policy

from .conftest import policy_bytes, policy_doc

SALT = b"acme's own salt"


def _event(**fields: Any) -> dict[str, Any]:
    return {"type": "process", "sha256": "ab" * 32, **fields}


def test_every_transform_reduces_what_leaves(policy: TelemetryPolicy) -> None:
    out = EventFilter(policy, SALT).apply(
        _event(
            cmdline="powershell -enc AAAA",
            user="alice",
            url="https://intranet.acme.example:8443/hr/salaries.xlsx?id=7",
            size=5000,
            time="2026-11-26T11:42:07Z",
            verdict="malicious",
            path="C:\\Users\\alice\\secret plans.docx",
        )
    )
    assert out == {
        "type": "process",
        "sha256": "ab" * 32,
        "cmdline": "powershe",
        "user": hmac.new(SALT, b"alice", hashlib.sha256).hexdigest(),
        "url": "intranet.acme.example",
        "size": 4096,
        "time": "2026-11-26T11:00:00Z",
        "verdict": "malicious",
    }


def test_coarsen_works_on_epoch_seconds_too(policy: TelemetryPolicy) -> None:
    assert EventFilter(policy, SALT).apply(_event(time=1_764_157_327))["time"] == 1_764_154_800


@pytest.mark.parametrize(
    ("event", "rule", "kind"),
    [
        ({"type": "keystrokes", "text": "hunter2"}, "events", "unknown-event"),
        ({"sha256": "00"}, "events", "unknown-event"),
        (_event(clipboard="secret"), "events.process.fields", "unknown-field"),
        ({"type": "process", "user": "bob"}, "events.process.fields.sha256", "missing-field"),
        (_event(user={"nested": "object"}), "events.process.fields.user", "type"),
        (_event(cmdline=12), "events.process.fields.cmdline", "type"),
        (_event(size=True), "events.process.fields.size", "type"),
        (_event(verdict="suspicious"), "events.process.fields.verdict", "not-allowed"),
        (_event(url="not a url"), "events.process.fields.url", "not-a-url"),
        (_event(time="yesterday"), "events.process.fields.time", "not-a-time"),
    ],
)
def test_each_violation_names_its_rule(
    policy: TelemetryPolicy, event: dict[str, Any], rule: str, kind: str
) -> None:
    with pytest.raises(EventRefusedError) as caught:
        EventFilter(policy, SALT).apply(event)
    assert (caught.value.rule, caught.value.kind) == (rule, kind)


def test_allow_list_does_not_confuse_true_with_one() -> None:
    doc = policy_doc(events={"e": {"fields": {"flag": {"transform": "allow", "values": [1, "x"]}}}})
    f = EventFilter(parse_policy(policy_bytes(**doc)), b"")
    assert f.apply({"type": "e", "flag": 1}) == {"type": "e", "flag": 1}
    with pytest.raises(EventRefusedError):
        f.apply({"type": "e", "flag": True})


def test_hashing_without_a_salt_is_refused(policy: TelemetryPolicy) -> None:
    with pytest.raises(ConfigError, match="salt"):
        EventFilter(policy, b"")


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"format": "overt-telemetry-policy/v2"}, "format"),
        ({"version": 0}, "version"),
        ({"version": "1"}, "version"),
        ({"region": "ap"}, "region"),
        ({"collectors": {}}, "collectors"),
        ({"events": {}}, "events"),
        (
            {"events": {"e": {"fields": {"f": {"transform": "rot13"}}}}},
            "events/e/fields/f/transform",
        ),
        ({"events": {"e": {"fields": {"f": {"transform": "truncate"}}}}}, "events/e/fields/f"),
        (
            {"events": {"e": {"fields": {"f": {"transform": "keep", "length": 3}}}}},
            "events/e/fields/f",
        ),
        ({"samples": {"mode": "whenever"}}, "samples/mode"),
        ({"samples": {"never": ["pdf", "pdf"]}}, "samples/never"),
        ({"retention_days": None}, "retention_days"),
        ({"extra": 1}, "(root)"),
    ],
)
def test_malformed_policy_is_refused_with_its_path(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(TelemetryPolicyFormatError) as caught:
        parse_policy(policy_bytes(**changes))
    assert caught.value.path == path


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"format": 1, "format": 2}', b"[NaN]", b"\xff"],
)
def test_policy_that_is_not_strict_json_is_refused(data: bytes) -> None:
    with pytest.raises(TelemetryPolicyFormatError):
        parse_policy(data)


def test_samples_default_to_executables_only() -> None:
    doc = policy_doc()
    del doc["samples"]
    policy = parse_policy(policy_bytes(**doc))
    assert policy.samples.mode == "executables-only"
    assert policy.collector == "https://eu.telemetry.example"
