"""The bounty table (amount by vulnerability class and severity) and the payout ledger.

The default table follows the modelled programme: up to $100,000 for remote code execution
through the product's update channel, then other remote code execution, local privilege
escalation and sensitive-data disclosure. Only a report triaged *valid* earns anything: a
duplicate, an out-of-scope or a non-reproducible report earns 0.

A table is configured as JSON, parsed strictly (:func:`parse_table`)::

    {"rce-update-channel": {"critical": 100000, "high": 50000, "medium": 20000, "low": 5000},
     "rce": {...}, "lpe": {...}, "data-disclosure": {...}, "other": {...}}

Every class and every severity from ``low`` to ``critical`` must be present; amounts are
whole US dollars in ``[0, 10_000_000]``; ``none`` severity always earns 0.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from overt.disclosure.errors import SubmissionError
from overt.disclosure.scoring import Severity
from overt.disclosure.workflow import Verdict

__all__ = [
    "DEFAULT_TABLE",
    "MAX_AMOUNT",
    "BountyTable",
    "Ledger",
    "Payout",
    "VulnClass",
    "award",
    "format_table",
    "ledger",
    "parse_table",
]

MAX_AMOUNT = 10_000_000
_PAID_SEVERITIES = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)


class VulnClass(enum.StrEnum):
    RCE_UPDATE_CHANNEL = "rce-update-channel"
    RCE = "rce"
    LPE = "lpe"
    DATA_DISCLOSURE = "data-disclosure"
    OTHER = "other"


@dataclass(frozen=True)
class BountyTable:
    """Amounts in whole US dollars by (class, severity)."""

    amounts: Mapping[VulnClass, Mapping[Severity, int]]

    def amount(self, vuln_class: VulnClass, severity: Severity) -> int:
        if severity is Severity.NONE:
            return 0
        return self.amounts[vuln_class][severity]

    @property
    def maximum(self) -> int:
        return max(a for row in self.amounts.values() for a in row.values())


def _row(critical: int, high: int, medium: int, low: int) -> dict[Severity, int]:
    return {
        Severity.CRITICAL: critical,
        Severity.HIGH: high,
        Severity.MEDIUM: medium,
        Severity.LOW: low,
    }


DEFAULT_TABLE = BountyTable(
    {
        VulnClass.RCE_UPDATE_CHANNEL: _row(100_000, 50_000, 20_000, 5_000),
        VulnClass.RCE: _row(50_000, 25_000, 10_000, 2_500),
        VulnClass.LPE: _row(20_000, 10_000, 5_000, 1_000),
        VulnClass.DATA_DISCLOSURE: _row(15_000, 7_500, 3_000, 500),
        VulnClass.OTHER: _row(5_000, 2_000, 500, 100),
    }
)


def award(
    table: BountyTable, vuln_class: VulnClass, severity: Severity, verdict: Verdict | None
) -> int:
    """What a report earns: the table's amount if triaged valid, otherwise 0."""
    if verdict != Verdict.VALID:
        return 0
    return table.amount(vuln_class, severity)


def parse_table(text: str | bytes) -> BountyTable:
    """A bounty table from its JSON form (module docstring).

    Raises:
        SubmissionError: not JSON, an unknown or missing class or severity, or an amount
            that is not a whole number in ``[0, MAX_AMOUNT]``.
    """
    if len(text) > 64 * 1024:
        raise SubmissionError("bounty table", "larger than 64 KiB")
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise SubmissionError("bounty table", f"not JSON: {err}") from err
    if not isinstance(doc, dict) or set(doc) != {c.value for c in VulnClass}:
        raise SubmissionError(
            "bounty table", f"must map exactly the classes {[c.value for c in VulnClass]}"
        )
    amounts: dict[VulnClass, dict[Severity, int]] = {}
    for name, row in doc.items():
        if not isinstance(row, dict) or set(row) != {s.value for s in _PAID_SEVERITIES}:
            raise SubmissionError(f"bounty table {name}", "must map exactly low..critical")
        parsed: dict[Severity, int] = {}
        for sev, amount in row.items():
            if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
                raise SubmissionError(
                    f"bounty table {name}.{sev}",
                    f"not a whole amount in [0, {MAX_AMOUNT}]",
                    repr(amount),
                )
            parsed[Severity(sev)] = amount
        amounts[VulnClass(name)] = parsed
    return BountyTable(amounts)


def format_table(table: BountyTable) -> str:
    """The table's JSON form; :func:`parse_table` reads it back unchanged."""
    doc = {
        c.value: {s.value: table.amounts[c][s] for s in reversed(_PAID_SEVERITIES)}
        for c in VulnClass
    }
    return json.dumps(doc, indent=1)


@dataclass(frozen=True)
class Payout:
    """A bounty paid for one report to one researcher."""

    report_id: str
    researcher: str
    amount: int
    paid_at: datetime


@dataclass(frozen=True)
class Ledger:
    """Payout totals: overall, per researcher and per calendar year (UTC)."""

    total: int = 0
    count: int = 0
    by_researcher: dict[str, int] = field(default_factory=dict)
    by_year: dict[int, int] = field(default_factory=dict)


def ledger(payouts: Iterable[Payout]) -> Ledger:
    """The totals of ``payouts``."""
    total = count = 0
    by_researcher: dict[str, int] = {}
    by_year: dict[int, int] = {}
    for p in payouts:
        total += p.amount
        count += 1
        by_researcher[p.researcher] = by_researcher.get(p.researcher, 0) + p.amount
        by_year[p.paid_at.year] = by_year.get(p.paid_at.year, 0) + p.amount
    return Ledger(total, count, dict(sorted(by_researcher.items())), dict(sorted(by_year.items())))
