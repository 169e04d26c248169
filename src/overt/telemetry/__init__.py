"""Data-processing controls a customer can verify (issue 11): what telemetry leaves an endpoint.

- :mod:`overt.telemetry.policy`: the telemetry policy (JSON Schema), published and verified
  like any release.
- :mod:`overt.telemetry.filter`: :class:`EventFilter`, the policy applied to every event.
- :mod:`overt.telemetry.samples`: :func:`screen_sample`, document and marking detection by
  content.
- :mod:`overt.telemetry.sealing`: HPKE to the region collector's logged key.
- :mod:`overt.telemetry.ledger`: the egress ledger; :mod:`overt.telemetry.endpoint`:
  :class:`Endpoint`, filter + seal + record.
- :mod:`overt.telemetry.collector`: the region :class:`Collector` (receipts, access log,
  retention); :mod:`overt.telemetry.server`: its HTTP API; :mod:`overt.telemetry.reconcile`:
  ledger vs receipt log; :mod:`overt.telemetry.access`: the ``telemetry-access`` monitor check.
- :mod:`overt.telemetry.errors`: what is refused, naming the rule.

See docs/telemetry.md. The names below are imported on first use, so
``import overt.telemetry`` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.telemetry.collector import Collector, CollectorReceipt
    from overt.telemetry.endpoint import Endpoint, Outgoing
    from overt.telemetry.errors import (
        EventRefusedError,
        SampleRefusedError,
        TelemetryError,
        TelemetryPolicyFormatError,
    )
    from overt.telemetry.filter import EventFilter
    from overt.telemetry.ledger import EgressLedger, EgressRecord, verify_ledger
    from overt.telemetry.policy import (
        TelemetryPolicy,
        parse_policy,
        policy_publication,
        verify_policy,
    )
    from overt.telemetry.reconcile import ReconcileReport, reconcile
    from overt.telemetry.samples import classify, screen_sample
    from overt.telemetry.sealing import CollectorKey, open_payload, seal_payload
    from overt.telemetry.server import CollectorApp

__all__ = [
    "Collector",
    "CollectorApp",
    "CollectorKey",
    "CollectorReceipt",
    "EgressLedger",
    "EgressRecord",
    "Endpoint",
    "EventFilter",
    "EventRefusedError",
    "Outgoing",
    "ReconcileReport",
    "SampleRefusedError",
    "TelemetryError",
    "TelemetryPolicy",
    "TelemetryPolicyFormatError",
    "classify",
    "open_payload",
    "parse_policy",
    "policy_publication",
    "reconcile",
    "screen_sample",
    "seal_payload",
    "verify_ledger",
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
            "overt.telemetry.collector": ["Collector", "CollectorReceipt"],
            "overt.telemetry.endpoint": ["Endpoint", "Outgoing"],
            "overt.telemetry.reconcile": ["ReconcileReport", "reconcile"],
            "overt.telemetry.server": ["CollectorApp"],
            "overt.telemetry.filter": ["EventFilter"],
            "overt.telemetry.ledger": ["EgressLedger", "EgressRecord", "verify_ledger"],
            "overt.telemetry.samples": ["classify", "screen_sample"],
            "overt.telemetry.sealing": ["CollectorKey", "open_payload", "seal_payload"],
            "overt.telemetry.policy": [
                "TelemetryPolicy",
                "parse_policy",
                "policy_publication",
                "reconcile",
                "verify_policy",
            ],
        },
    )
