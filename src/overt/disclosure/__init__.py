"""Coordinated vulnerability disclosure and bug bounty, with its timeline in the transparency log.

- :mod:`overt.disclosure.workflow`: the life of a report (ISO/IEC 29147/30111) and its deadlines.
- :mod:`overt.disclosure.scoring`: CVSS v3.1/v4.0 vectors, validated and scored.
- :mod:`overt.disclosure.bounty`: the bounty table and the payout ledger.
- :mod:`overt.disclosure.errors`: what the service refuses, with the HTTP status it answers.

Example (a report's deadlines)::

    >>> from datetime import UTC, datetime
    >>> from overt.disclosure import deadlines, open_case
    >>> case = open_case("R1", "alice", datetime(2026, 11, 25, tzinfo=UTC))
    >>> deadlines(case).acknowledge.date().isoformat()  # 3 business days
    '2026-11-30'

The names below are imported on first use, so ``import overt.disclosure`` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.disclosure.bounty import DEFAULT_TABLE, BountyTable, VulnClass, award, ledger
    from overt.disclosure.scoring import Score, Severity, score
    from overt.disclosure.workflow import (
        Case,
        State,
        Verdict,
        advance,
        deadlines,
        open_case,
        overdue,
    )

__all__ = [
    "DEFAULT_TABLE",
    "BountyTable",
    "Case",
    "Score",
    "Severity",
    "State",
    "Verdict",
    "VulnClass",
    "advance",
    "award",
    "deadlines",
    "ledger",
    "open_case",
    "overdue",
    "score",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.disclosure.workflow": [
                "Case",
                "State",
                "Verdict",
                "advance",
                "deadlines",
                "open_case",
                "overdue",
            ],
            "overt.disclosure.scoring": ["Score", "Severity", "score"],
            "overt.disclosure.bounty": [
                "DEFAULT_TABLE",
                "BountyTable",
                "VulnClass",
                "award",
                "ledger",
            ],
        },
    )
