"""Data-processing controls a customer can verify (issue 11): what telemetry leaves an endpoint.

- :mod:`overt.telemetry.policy`: the telemetry policy (JSON Schema), published and verified
  like any release.
- :mod:`overt.telemetry.filter`: :class:`EventFilter`, the policy applied to every event.
- :mod:`overt.telemetry.errors`: what is refused, naming the rule.

See docs/telemetry.md. The names below are imported on first use, so
``import overt.telemetry`` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.telemetry.errors import (
        EventRefusedError,
        SampleRefusedError,
        TelemetryError,
        TelemetryPolicyFormatError,
    )
    from overt.telemetry.filter import EventFilter
    from overt.telemetry.policy import (
        TelemetryPolicy,
        parse_policy,
        policy_publication,
        verify_policy,
    )

__all__ = [
    "EventFilter",
    "EventRefusedError",
    "SampleRefusedError",
    "TelemetryError",
    "TelemetryPolicy",
    "TelemetryPolicyFormatError",
    "parse_policy",
    "policy_publication",
    "verify_policy",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.telemetry.errors": [
                "EventRefusedError",
                "SampleRefusedError",
                "TelemetryError",
                "TelemetryPolicyFormatError",
            ],
            "overt.telemetry.filter": ["EventFilter"],
            "overt.telemetry.policy": [
                "TelemetryPolicy",
                "parse_policy",
                "policy_publication",
                "verify_policy",
            ],
        },
    )
