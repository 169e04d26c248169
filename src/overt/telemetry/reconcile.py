"""Reconciling what left (the endpoint's egress ledger) with what arrived (the receipt log).

Both sides are verified logs: the ledger under the endpoint's key, the receipt log under the
collector's. :func:`reconcile` is pure: it matches ledger records and receipt entries by the
SHA-256 of the sealed payload and reports, in both directions,

- ``missing``: recorded as sent, but the collector never acknowledged it (dropped on the way,
  or dropped by the collector);
- ``extra``: acknowledged by the collector for this customer, but never sent by this
  endpoint (injected, or sent by someone else in the customer's name);
- ``altered``: one digest whose size or customer differ between the two sides.

A payload the endpoint sent twice is one payload (the collector receipts it once).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from overt.telemetry.collector import parse_receipt_entry
from overt.telemetry.ledger import EgressRecord

__all__ = ["ReceiptEntry", "ReconcileReport", "receipt_entries", "reconcile"]


@dataclass(frozen=True)
class ReceiptEntry:
    """One receipt-log entry, parsed: ``index`` is its place in the receipt log."""

    index: int
    customer: str
    digest: str
    size: int
    received: int


@dataclass(frozen=True)
class ReconcileReport:
    """The outcome of :func:`reconcile` (module docstring)."""

    matched: tuple[str, ...]
    missing: tuple[EgressRecord, ...]
    extra: tuple[ReceiptEntry, ...]
    altered: tuple[tuple[EgressRecord, ReceiptEntry], ...]

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.altered)


def receipt_entries(entries: Iterable[bytes]) -> list[ReceiptEntry]:
    """Parse a receipt log's entries.

    Raises:
        FormatError: an entry that is not a receipt entry (its index is in the message).
    """
    out = []
    for i, entry in enumerate(entries):
        customer, digest, size, received = parse_receipt_entry(entry)
        out.append(ReceiptEntry(i, customer, digest, size, received))
    return out


def reconcile(
    records: Sequence[EgressRecord], receipts: Sequence[ReceiptEntry], region: str | None = None
) -> ReconcileReport:
    """Match the ledger ``records`` (of ``region``, if given) against the ``receipts`` of
    the customers those records name."""
    sent = {r.digest: r for r in records if region is None or r.region == region}
    customers = {r.customer for r in sent.values()}
    got: dict[str, ReceiptEntry] = {}
    for receipt in receipts:
        if receipt.customer in customers or receipt.digest in sent:
            got.setdefault(receipt.digest, receipt)
    matched: list[str] = []
    missing: list[EgressRecord] = []
    altered: list[tuple[EgressRecord, ReceiptEntry]] = []
    for digest, record in sent.items():
        found = got.get(digest)
        if found is None:
            missing.append(record)
        elif found.size != record.size or found.customer != record.customer:
            altered.append((record, found))
        else:
            matched.append(digest)
    extra = [r for d, r in got.items() if d not in sent]
    return ReconcileReport(tuple(matched), tuple(missing), tuple(extra), tuple(altered))
