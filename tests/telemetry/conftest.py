"""Shared fixtures of the telemetry tests: one policy that uses every transform."""

from __future__ import annotations

import json
from typing import Any

import pytest

from overt.telemetry.policy import TelemetryPolicy, parse_policy


def policy_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": "overt-telemetry-policy/v1",
        "customer": "acme",
        "version": 1,
        "region": "eu",
        "collectors": {"eu": "https://eu.telemetry.example", "us": "https://us.telemetry.example"},
        "retention_days": 30,
        "events": {
            "process": {
                "fields": {
                    "sha256": {"transform": "keep", "required": True},
                    "cmdline": {"transform": "truncate", "length": 8},
                    "user": {"transform": "hash"},
                    "url": {"transform": "host"},
                    "size": {"transform": "coarsen", "step": 1024},
                    "time": {"transform": "coarsen", "step": 3600},
                    "verdict": {"transform": "allow", "values": ["clean", "malicious"]},
                    "path": {"transform": "drop"},
                }
            }
        },
        "samples": {"mode": "executables-only", "max_bytes": 1 << 20, "never": ["script"]},
    }
    doc.update(changes)
    return doc


def policy_bytes(**changes: Any) -> bytes:
    return json.dumps(policy_doc(**changes), indent=1).encode()


@pytest.fixture
def policy() -> TelemetryPolicy:
    return parse_policy(policy_bytes())
