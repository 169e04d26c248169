"""The endpoint update gate: admit an artifact only if its publication is provably logged.

- :mod:`overt.gate.policy`: the client policy (log keys, witness quorum,
  pinned publisher key, product/channel pins, freshness, rule-bundle audits).
- :mod:`overt.gate.verify`: the I/O-free verification core.
- :mod:`overt.gate.updater`: :class:`UpdateGate`, the shell with persisted state.
- :mod:`overt.gate.errors`: one error class per check.
"""

from __future__ import annotations

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
