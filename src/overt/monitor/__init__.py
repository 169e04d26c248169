"""overt's log monitor: follow a log, prove it append-only, gossip with witnesses, check entries.

Modules, from the I/O-free core outwards:

- :mod:`~overt.monitor.verify`: is a checkpoint an honest successor of the kept one
  (equivocation, rollback, fork), from two signed checkpoints and a proof;
- :mod:`~overt.monitor.state`: the persisted position and the evidence that poisons it;
- :mod:`~overt.monitor.checks`: plug-in checks run on every new entry;
- :mod:`~overt.monitor.gossip`: witnesses' read endpoints and the split-view comparison;
- :mod:`~overt.monitor.events`: JSON-lines events and alerts, and the webhook;
- :mod:`~overt.monitor.mirrors`: reading a log through its tlog-mirrors, and what they hold;
- :mod:`~overt.monitor.follow`: :class:`Monitor`, the polling shell that ties them together.

``overt monitor URL --vkey VKEY`` (:mod:`overt.cli.monitor`) is the command-line face.

The names below are re-exported lazily (imported on first use), so importing
the package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.monitor.checks import Alert, Check, available_checks, make_check, register_check
    from overt.monitor.events import Event, EventSink
    from overt.monitor.follow import Monitor, PollResult
    from overt.monitor.gossip import HTTPWitness, Witness, WitnessSource, witnesses_from
    from overt.monitor.state import Evidence, MonitorState, Position
    from overt.monitor.verify import (
        EquivocationError,
        ForkError,
        RollbackError,
        check_same_tree,
        verify_successor,
    )

__all__ = [
    "Alert",
    "Check",
    "EquivocationError",
    "Event",
    "EventSink",
    "Evidence",
    "ForkError",
    "HTTPWitness",
    "Monitor",
    "MonitorState",
    "PollResult",
    "Position",
    "RollbackError",
    "Witness",
    "WitnessSource",
    "available_checks",
    "check_same_tree",
    "make_check",
    "register_check",
    "verify_successor",
    "witnesses_from",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.monitor.checks": [
                "Alert",
                "Check",
                "available_checks",
                "make_check",
                "register_check",
            ],
            "overt.monitor.events": ["Event", "EventSink"],
            "overt.monitor.follow": ["Monitor", "PollResult"],
            "overt.monitor.gossip": ["HTTPWitness", "Witness", "WitnessSource", "witnesses_from"],
            "overt.monitor.state": ["Evidence", "MonitorState", "Position"],
            "overt.monitor.verify": [
                "EquivocationError",
                "ForkError",
                "RollbackError",
                "check_same_tree",
                "verify_successor",
            ],
        },
    )
