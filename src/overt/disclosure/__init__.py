"""Coordinated vulnerability disclosure and bug bounty, with its timeline in the transparency log.

- :mod:`overt.disclosure.workflow`: the life of a report (ISO/IEC 29147/30111) and its deadlines.
- :mod:`overt.disclosure.scoring`: CVSS v3.1/v4.0 vectors, validated and scored.
- :mod:`overt.disclosure.bounty`: the bounty table and the payout ledger.
- :mod:`overt.disclosure.crypto`: encryption at rest to the PSIRT's HPKE key.
- :mod:`overt.disclosure.timeline`: commitments in the log, receipts, :func:`verify_commitment`.
- :mod:`overt.disclosure.store`: the database (SQLite, PostgreSQL); :mod:`overt.disclosure.service`:
  the :class:`Desk` every shell uses; :mod:`overt.disclosure.server`: the HTTP service.
- :mod:`overt.disclosure.advisories`: CSAF 2.0 and OSV; :mod:`overt.disclosure.securitytxt`: RFC 9116.
- :mod:`overt.disclosure.stats`: what the public learns from the log alone.
- :mod:`overt.disclosure.errors`: what the service refuses, with the HTTP status it answers.

See docs/disclosure.md.

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
    from overt.disclosure.crypto import PSIRTKey
    from overt.disclosure.scoring import Score, Severity, score
    from overt.disclosure.server import DisclosureApp
    from overt.disclosure.service import Desk, Role, Submission
    from overt.disclosure.store import Store
    from overt.disclosure.timeline import LocalCommitmentLog, Receipt, verify_commitment
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
    "Desk",
    "DisclosureApp",
    "LocalCommitmentLog",
    "PSIRTKey",
    "Receipt",
    "Role",
    "Score",
    "Severity",
    "State",
    "Store",
    "Submission",
    "Verdict",
    "VulnClass",
    "advance",
    "award",
    "deadlines",
    "ledger",
    "open_case",
    "overdue",
    "score",
    "verify_commitment",
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
            "overt.disclosure.crypto": ["PSIRTKey"],
            "overt.disclosure.server": ["DisclosureApp"],
            "overt.disclosure.service": ["Desk", "Role", "Submission"],
            "overt.disclosure.store": ["Store"],
            "overt.disclosure.timeline": ["LocalCommitmentLog", "Receipt", "verify_commitment"],
        },
    )
