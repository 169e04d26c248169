"""The telemetry policy: what an endpoint may send, how it is reduced, where it goes.

A policy is one JSON document (UTF-8, at most 1 MiB, no duplicate members), validated
against :data:`SCHEMA` (JSON Schema 2020-12) and then checked for what a schema cannot say
(the region names a collector). Example::

    {
      "format": "overt-telemetry-policy/v1",
      "customer": "acme",
      "version": 3,
      "region": "eu",
      "collectors": {"eu": "https://eu.telemetry.example"},
      "retention_days": 30,
      "events": {
        "process": {"fields": {
          "sha256":  {"transform": "keep", "required": true},
          "cmdline": {"transform": "truncate", "length": 64},
          "user":    {"transform": "hash"},
          "url":     {"transform": "host"},
          "size":    {"transform": "coarsen", "step": 1024},
          "time":    {"transform": "coarsen", "step": 3600},
          "verdict": {"transform": "allow", "values": ["clean", "malicious"]},
          "path":    {"transform": "drop"}
        }}
      },
      "samples": {"mode": "executables-only", "max_bytes": 33554432, "never": ["script"]}
    }

Transforms (:mod:`overt.telemetry.filter` applies them): ``keep``; ``drop`` (the field
never leaves); ``truncate`` to ``length`` characters; ``hash``, HMAC-SHA256 keyed with the
customer's own salt (kept by the customer, never in the policy, so the vendor cannot
reverse it by guessing); ``host``, a URL reduced to its host name; ``coarsen``, a number
(or an RFC 3339 time) rounded down to a multiple of ``step`` (seconds for times);
``allow``, a value from ``values`` or a refusal.

Samples: ``mode`` is ``never``, ``ask`` (only with the user's consent), ``executables-only``
(the default) or ``all``; documents are refused in every mode (:mod:`overt.telemetry.samples`),
and ``never`` lists further content kinds that are never uploaded.

Versioning: ``format`` names the version of this format (a new major format gets a new
name); ``version`` is the policy's own revision, an integer that only goes up. The policy is
published like any release (:func:`policy_publication`): an endpoint verifies that the policy
it enforces is the logged one with the update gate (:func:`verify_policy`), offline, and the
gate's rollback check refuses an older revision.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from overt.errors import FormatError
from overt.formats.statement import Release
from overt.formats.strict import load_json
from overt.telemetry.errors import TelemetryPolicyFormatError

__all__ = [
    "CONTENT_KINDS",
    "FORMAT",
    "POLICY_PRODUCT",
    "SAMPLE_MODES",
    "SCHEMA",
    "TRANSFORMS",
    "FieldRule",
    "SampleRules",
    "TelemetryPolicy",
    "admit_policy",
    "parse_policy",
    "policy_publication",
    "verify_policy",
]

FORMAT = "overt-telemetry-policy/v1"
#: The product name policies are published under (the channel is the customer).
POLICY_PRODUCT = "overt-telemetry-policy"
MAX_POLICY_SIZE = 1 << 20
TRANSFORMS = ("keep", "drop", "truncate", "hash", "host", "coarsen", "allow")
SAMPLE_MODES = ("never", "ask", "executables-only", "all")
#: Content kinds :mod:`overt.telemetry.samples` reports, usable in ``samples.never``.
CONTENT_KINDS = (
    "pdf", "ooxml", "odf", "ole", "rtf", "email", "text", "marked",
    "archive", "opaque-archive", "script", "executable", "data",
)  # fmt: skip

_NAME = r"^[a-z][a-z0-9_.-]{0,63}$"

SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://overt.dev/schemas/telemetry-policy/v1.json",
    "title": "overt telemetry policy v1",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "format",
        "customer",
        "version",
        "region",
        "collectors",
        "retention_days",
        "events",
    ],
    "properties": {
        "format": {"const": FORMAT},
        "customer": {"type": "string", "pattern": _NAME},
        "version": {"type": "integer", "minimum": 1, "maximum": 2**31},
        "region": {"type": "string", "pattern": _NAME},
        "collectors": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": _NAME},
            "additionalProperties": {"type": "string", "pattern": "^https?://[^\\s]{1,2000}$"},
        },
        "retention_days": {"type": "integer", "minimum": 1, "maximum": 3650},
        "events": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": _NAME},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["fields"],
                "properties": {
                    "fields": {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": {"pattern": _NAME},
                        "additionalProperties": {"$ref": "#/$defs/field"},
                    }
                },
            },
        },
        "samples": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "mode": {"enum": list(SAMPLE_MODES)},
                "max_bytes": {"type": "integer", "minimum": 1, "maximum": 1 << 30},
                "never": {
                    "type": "array",
                    "uniqueItems": True,
                    "items": {"enum": list(CONTENT_KINDS)},
                },
            },
        },
    },
    "$defs": {
        "field": {
            "type": "object",
            "required": ["transform"],
            "properties": {
                "transform": {"enum": list(TRANSFORMS)},
                "required": {"type": "boolean"},
            },
            "allOf": [
                {
                    "if": {"properties": {"transform": {"const": "truncate"}}},
                    "then": {
                        "required": ["length"],
                        "properties": {"length": {"type": "integer", "minimum": 1}},
                        "additionalProperties": False,
                        "patternProperties": {"^(transform|required|length)$": True},
                    },
                },
                {
                    "if": {"properties": {"transform": {"const": "coarsen"}}},
                    "then": {
                        "required": ["step"],
                        "properties": {"step": {"type": "integer", "minimum": 1}},
                        "additionalProperties": False,
                        "patternProperties": {"^(transform|required|step)$": True},
                    },
                },
                {
                    "if": {"properties": {"transform": {"const": "allow"}}},
                    "then": {
                        "required": ["values"],
                        "properties": {
                            "values": {
                                "type": "array",
                                "minItems": 1,
                                "uniqueItems": True,
                                "items": {"type": ["string", "integer", "boolean"]},
                            }
                        },
                        "additionalProperties": False,
                        "patternProperties": {"^(transform|required|values)$": True},
                    },
                },
                {
                    "if": {"properties": {"transform": {"enum": ["keep", "drop", "hash", "host"]}}},
                    "then": {
                        "additionalProperties": False,
                        "patternProperties": {"^(transform|required)$": True},
                    },
                },
            ],
        }
    },
}


@dataclass(frozen=True)
class FieldRule:
    """One field of one event type: its transform and the transform's parameter."""

    name: str
    transform: str
    required: bool = False
    length: int = 0
    step: int = 0
    values: tuple[str | int | bool, ...] = ()


@dataclass(frozen=True)
class SampleRules:
    """What file samples may leave (module docstring)."""

    mode: str = "executables-only"
    max_bytes: int = 32 << 20
    never: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TelemetryPolicy:
    """A parsed, validated policy; ``raw`` is the exact bytes that were published."""

    customer: str
    version: int
    region: str
    collectors: Mapping[str, str]
    retention_days: int
    events: Mapping[str, Mapping[str, FieldRule]]
    samples: SampleRules
    raw: bytes

    @property
    def collector(self) -> str:
        """The URL of the collector of the customer's region."""
        return self.collectors[self.region]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(SCHEMA)
    return Draft202012Validator(SCHEMA)


def parse_policy(data: bytes) -> TelemetryPolicy:
    """Parse and validate a policy.

    Raises:
        TelemetryPolicyFormatError: not strict JSON, a schema violation (its path and
            message), or a region with no collector.
    """
    try:
        doc = load_json(data, "telemetry policy", MAX_POLICY_SIZE)
    except FormatError as err:
        raise TelemetryPolicyFormatError("(root)", err.reason, data[:60]) from err
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise TelemetryPolicyFormatError(where, first.message[:300])
    if doc["region"] not in doc["collectors"]:
        raise TelemetryPolicyFormatError("region", "no collector for this region", doc["region"])
    events = {
        event: {
            name: FieldRule(
                name,
                spec["transform"],
                spec.get("required", False),
                spec.get("length", 0),
                spec.get("step", 0),
                tuple(spec.get("values", ())),
            )
            for name, spec in body["fields"].items()
        }
        for event, body in doc["events"].items()
    }
    samples = doc.get("samples", {})
    return TelemetryPolicy(
        customer=doc["customer"],
        version=doc["version"],
        region=doc["region"],
        collectors=dict(doc["collectors"]),
        retention_days=doc["retention_days"],
        events=events,
        samples=SampleRules(
            samples.get("mode", "executables-only"),
            samples.get("max_bytes", 32 << 20),
            frozenset(samples.get("never", ())),
        ),
        raw=bytes(data),
    )


def policy_publication(policy: TelemetryPolicy) -> Any:
    """The :class:`overt.publish.Publication` that logs ``policy``.

    It is a release of product :data:`POLICY_PRODUCT`, channel = the customer, version =
    the policy's revision, so the update gate verifies it unchanged (pins, witnesses,
    rollback to an older revision).
    """
    from overt.publish.publisher import Publication

    name = f"telemetry-policy-{policy.customer}-{policy.version}.json"
    predicate = Release(POLICY_PRODUCT, str(policy.version), policy.customer, "any")
    return Publication(name, policy.sha256, predicate)


_REVISION = re.compile(r"0|[1-9][0-9]*")


def verify_policy(
    data: bytes, bundle: bytes, client_policy: Any, state: Any, now: float
) -> tuple[TelemetryPolicy, Any]:
    """The policy in ``data``, once the gate admits its publication ``bundle``.

    ``client_policy`` is an :class:`overt.gate.policy.ClientPolicy` that pins
    (:data:`POLICY_PRODUCT`, customer); ``state`` the :class:`overt.gate.verify.GateState`.
    Returns ``(policy, admission)``; persist ``admission.state`` as after any update.
    No I/O: the bundle carries its proofs.

    Raises:
        GateError: the gate's first failing check (not logged, not pinned, rolled back...).
        TelemetryPolicyFormatError: the admitted bytes are not a valid policy, or the
            publication is not the policy of this customer and revision.
    """
    from overt.gate.verify import verify_publication

    admission = verify_publication(hashlib.sha256(data).digest(), bundle, client_policy, state, now)
    return _matching(data, admission.publication), admission


def admit_policy(gate: Any, data: bytes, bundle: bytes) -> TelemetryPolicy:
    """The policy in ``data`` once ``gate`` (an :class:`overt.gate.UpdateGate`, which keeps
    its state between runs) admits its publication; the shell around :func:`verify_policy`.

    Raises:
        GateError: the gate refuses it. TelemetryPolicyFormatError: as :func:`verify_policy`.
    """
    return _matching(data, gate.admit(data, bundle))


def _matching(data: bytes, pub: Any) -> TelemetryPolicy:
    policy = parse_policy(data)
    if pub.product != POLICY_PRODUCT or pub.channel != policy.customer:
        raise TelemetryPolicyFormatError(
            "customer", f"publication is {pub.product}/{pub.channel}", policy.customer
        )
    if not _REVISION.fullmatch(pub.version) or int(pub.version) != policy.version:
        raise TelemetryPolicyFormatError(
            "version", f"publication is revision {pub.version}", str(policy.version)
        )
    return policy
