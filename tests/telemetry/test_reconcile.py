"""Reconciliation is pure: every kind of disagreement between ledger and receipts is named."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from overt.telemetry.collector import _check_events
from overt.telemetry.errors import EventRefusedError
from overt.telemetry.filter import EventFilter
from overt.telemetry.ledger import EgressRecord
from overt.telemetry.policy import parse_policy
from overt.telemetry.reconcile import ReceiptEntry, reconcile

from .conftest import policy_bytes


def _record(n: int, size: int = 100, region: str = "eu") -> EgressRecord:
    return EgressRecord(
        f"{n:064x}", size, "https://c", region, "acme", ("process.sha256",), 1, 1, 0
    )


def _receipt(n: int, size: int = 100, customer: str = "acme") -> ReceiptEntry:
    return ReceiptEntry(n, customer, f"{n:064x}", size, 0)


def test_matched_missing_extra_and_altered() -> None:
    records = [_record(1), _record(2), _record(3, size=120), _record(9, region="us")]
    receipts = [_receipt(1), _receipt(3, size=90), _receipt(4), _receipt(5, customer="globex")]
    report = reconcile(records, receipts, region="eu")
    assert report.matched == (f"{1:064x}",)
    assert [r.digest for r in report.missing] == [f"{2:064x}"]
    assert [r.digest for r in report.extra] == [f"{4:064x}"]  # globex's receipts are not ours
    assert [(r.size, e.size) for r, e in report.altered] == [(120, 90)]
    assert not report.clean


def test_a_payload_receipted_for_another_customer_is_altered() -> None:
    report = reconcile([_record(1)], [_receipt(1, customer="globex")])
    assert len(report.altered) == 1


def test_agreement_is_clean() -> None:
    assert reconcile([_record(1)], [_receipt(1)]).clean


_POLICY = parse_policy(policy_bytes())
_SCALARS = st.one_of(
    st.text(max_size=40), st.integers(-(10**12), 10**12), st.booleans(), st.sampled_from(["clean"])
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(_POLICY.events["process"])), _SCALARS))
def test_whatever_the_filter_lets_out_the_collector_accepts(fields: dict[str, Any]) -> None:
    event = {"type": "process", "sha256": "ab", **fields}
    try:
        out = EventFilter(_POLICY, b"salt").apply(event)
    except EventRefusedError:
        return
    _check_events(_POLICY, [out])  # must not raise: the two sides agree on the policy


def test_an_event_using_every_transform_passes_the_collector() -> None:
    event = {
        "type": "process",
        "sha256": "ab" * 32,
        "cmdline": "powershell -enc AAAA",
        "user": "alice",
        "url": "https://intranet.acme.example:8443/hr?id=7",
        "size": 5000,
        "time": "2026-11-26T11:42:07+01:00",
        "verdict": "malicious",
        "path": "C:\\x.docx",
    }
    _check_events(_POLICY, [EventFilter(_POLICY, b"salt").apply(event)])
    _check_events(_POLICY, [EventFilter(_POLICY, b"salt").apply({**event, "time": 1.5e9 + 7})])
