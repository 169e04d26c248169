"""The endpoint update gate: admit an artifact only if its publication is provably logged.

- :mod:`overt.gate.policy`: the client policy (log keys, witness quorum,
  pinned publisher key, product/channel pins, freshness, rule-bundle audits).
- :mod:`overt.gate.verify`: the I/O-free verification core.
- :mod:`overt.gate.updater`: :class:`UpdateGate`, the shell with persisted state.
- :mod:`overt.gate.errors`: one error class per check.

The names below are re-exported lazily (imported on first use), so importing
the package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.gate.errors import CHECKS, GateError
    from overt.gate.policy import ClientPolicy, load_client_policy, parse_client_policy
    from overt.gate.updater import UpdateGate
    from overt.gate.verify import GateState, VerifiedPublication, verify_publication

__all__ = [
    "CHECKS",
    "ClientPolicy",
    "GateError",
    "GateState",
    "UpdateGate",
    "VerifiedPublication",
    "load_client_policy",
    "parse_client_policy",
    "verify_publication",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.gate.errors": ["CHECKS", "GateError"],
            "overt.gate.policy": ["ClientPolicy", "load_client_policy", "parse_client_policy"],
            "overt.gate.updater": ["UpdateGate"],
            "overt.gate.verify": ["GateState", "VerifiedPublication", "verify_publication"],
        },
    )
