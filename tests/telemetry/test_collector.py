"""The collector: durable receipts, refusals, access transparency, reconciliation."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from overt.formats import merkle
from overt.formats.note import parse_vkey
from overt.formats.proof import verify_proof
from overt.log.log import read_vkey
from overt.telemetry.collector import Collector, parse_access_entry, verify_receipt
from overt.telemetry.endpoint import Endpoint
from overt.telemetry.errors import (
    CollectorReceiptError,
    EventRefusedError,
    SealError,
    TelemetryError,
)
from overt.telemetry.ledger import EgressLedger, read_log_entries, verify_ledger
from overt.telemetry.policy import parse_policy
from overt.telemetry.reconcile import receipt_entries, reconcile
from overt.telemetry.sealing import CollectorKey, seal_payload

from .conftest import policy_bytes

EVENT = {"type": "process", "sha256": "ab" * 32, "user": "alice", "path": "C:\\x.docx"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_764_000_000.0

    def __call__(self) -> float:
        return self.now


def _rig(tmp_path: Path) -> tuple[Collector, Endpoint]:
    collector = Collector.init(tmp_path / "collector", "eu", "eu.telemetry.example")
    collector.add_policy(policy_bytes())
    ledger = EgressLedger.create(tmp_path / "ledger", "acme.example/ledger/host42")
    endpoint = Endpoint(parse_policy(policy_bytes()), b"salt", collector.key.public, ledger)
    return collector, endpoint


def test_a_restart_loses_no_acknowledged_payload(tmp_path: Path) -> None:
    collector, endpoint = _rig(tmp_path)
    outgoing = [endpoint.events([EVENT] * (i + 1)) for i in range(40)]
    with ThreadPoolExecutor(16) as pool:  # concurrent senders: group commits
        receipts = list(pool.map(lambda o: collector.receive("acme", o.sealed), outgoing))
    collector.close()  # as after a crash: only what is on disk counts

    reopened = Collector(tmp_path / "collector")
    vkey = parse_vkey(read_vkey(tmp_path / "collector" / "receipts"))
    for out, receipt in zip(outgoing, receipts, strict=True):
        verify_proof(receipt.proof, merkle.leaf_hash(receipt.entry), vkey)
        assert hashlib.sha256(out.sealed).hexdigest().encode() in receipt.entry
    rows = reopened.read("auditor", "acme", [o.record.digest for o in outgoing], "TICKET-1")
    assert len(rows) == 40
    reopened.close()


def test_a_receipt_for_another_payload_or_with_a_bad_proof_is_refused(tmp_path: Path) -> None:
    collector, endpoint = _rig(tmp_path)
    one, two = endpoint.events([EVENT]), endpoint.events([EVENT, EVENT])
    receipt = collector.receive("acme", one.sealed).to_json()
    collector.receive("acme", two.sealed)
    vkey = parse_vkey(read_vkey(tmp_path / "collector" / "receipts"))
    assert verify_receipt(receipt, one.sealed, vkey).index == 0
    with pytest.raises(CollectorReceiptError):
        verify_receipt(receipt, two.sealed, vkey)  # a receipt passed off for another payload
    forged = {**receipt, "index": 1}
    with pytest.raises(CollectorReceiptError):
        verify_receipt(forged, one.sealed, vkey)
    other = parse_vkey(read_vkey(tmp_path / "collector" / "access"))
    with pytest.raises(CollectorReceiptError):
        verify_receipt(receipt, one.sealed, other)
    collector.close()


def test_a_payload_sent_twice_gets_one_receipt(tmp_path: Path) -> None:
    collector, endpoint = _rig(tmp_path)
    out = endpoint.events([EVENT])
    first, again = collector.receive("acme", out.sealed), collector.receive("acme", out.sealed)
    assert (first.index, first.entry) == (again.index, again.entry)
    collector.close()


def test_a_payload_sealed_to_another_region_key_is_refused(tmp_path: Path) -> None:
    collector, endpoint = _rig(tmp_path)
    endpoint.key = CollectorKey.generate("eu").public  # a key the collector does not hold
    with pytest.raises(SealError):
        collector.receive("acme", endpoint.events([EVENT]).sealed)
    with pytest.raises(SealError):
        collector.receive("globex", b"anything")
    collector.close()


@pytest.mark.parametrize(
    "event",
    [
        {"type": "process", "sha256": "ab", "path": "C:\\x.docx"},  # a dropped field arrived
        {"type": "process", "sha256": "ab", "cmdline": "a much longer command line"},
        {"type": "process", "sha256": "ab", "verdict": "suspicious"},
        {"type": "process", "sha256": "ab", "user": "alice"},  # not hashed
        {"type": "keylog", "keys": "hunter2"},
        {"type": "process", "user": "ab" * 32},  # required field missing
    ],
)
def test_a_payload_that_bypassed_the_filter_is_refused(
    tmp_path: Path, event: dict[str, str]
) -> None:
    collector, _ = _rig(tmp_path)
    plain = json.dumps({"customer": "acme", "events": [event], "kind": "events", "policy": 1})
    sealed = seal_payload(collector.key.public, "eu", "acme", plain.encode())
    with pytest.raises(EventRefusedError):
        collector.receive("acme", sealed)
    collector.close()


def test_every_read_is_logged_before_data_and_a_read_without_reason_is_refused(
    tmp_path: Path,
) -> None:
    collector, endpoint = _rig(tmp_path)
    out = endpoint.events([EVENT])
    collector.receive("acme", out.sealed)
    with pytest.raises(TelemetryError, match="reason"):
        collector.read("bob", "acme", [out.record.digest], "  ")
    assert collector.access.size == 0
    ((digest, plaintext),) = collector.read("bob", "acme", [out.record.digest], "CASE-42")
    assert digest == out.record.digest and b'"process"' in plaintext
    record = parse_access_entry(collector.access.entry(0))
    assert (record.actor, record.reason, record.digests) == ("bob", "CASE-42", (digest,))
    collector.close()


def test_retention_deletes_and_logs_the_deletion(tmp_path: Path) -> None:
    clock = Clock()
    collector, endpoint = _rig(tmp_path)
    collector.clock = clock
    out = endpoint.events([EVENT])
    collector.receive("acme", out.sealed)
    assert collector.expire() == []
    clock.now += 31 * 86400
    (deleted,) = collector.expire()
    assert deleted.kind == "delete" and deleted.digests == (out.record.digest,)
    assert collector.read("bob", "acme", [out.record.digest], "CASE-43") == []
    collector.close()


def test_reconcile_finds_a_dropped_and_an_injected_payload(tmp_path: Path) -> None:
    collector, endpoint = _rig(tmp_path)
    delivered = endpoint.events([EVENT])
    dropped = endpoint.events([EVENT, EVENT])  # recorded as sent, lost on the way
    collector.receive("acme", delivered.sealed)
    injected = seal_payload(
        collector.key.public,
        "eu",
        "acme",
        b'{"customer":"acme","events":[{"sha256":"cd","type":"process"}],"kind":"events","policy":1}',
    )
    collector.receive("acme", injected)  # someone else, in acme's name
    endpoint.ledger.close()
    ledger = verify_ledger(tmp_path / "ledger")
    vkey = parse_vkey(read_vkey(tmp_path / "collector" / "receipts"))
    _, entries = read_log_entries(str(tmp_path / "collector" / "receipts"), vkey)
    report = reconcile(ledger.records, receipt_entries(entries))
    assert report.matched == (delivered.record.digest,)
    assert [r.digest for r in report.missing] == [dropped.record.digest]
    assert [r.digest for r in report.extra] == [hashlib.sha256(injected).hexdigest()]
    assert not report.clean
    collector.close()


def test_the_monitor_check_alerts_on_reads_without_reason_or_past_retention(
    tmp_path: Path,
) -> None:
    from overt.monitor.checks import make_check
    from overt.telemetry.collector import AccessRecord, access_entry

    check = make_check("telemetry-access=acme:30")
    d = "ab" * 32
    ok = AccessRecord("read", "bob", "acme", (d,), (1000,), "CASE-1", 2000)
    silent = AccessRecord("read", "bob", "acme", (d,), (1000,), "", 2000)
    stale = AccessRecord("read", "bob", "acme", (d,), (1000,), "CASE-2", 1000 + 31 * 86400)
    other = AccessRecord("read", "bob", "globex", (d,), (1000,), "", 2000)
    assert check.check(0, access_entry(ok)) == []
    assert check.check(0, access_entry(other)) == []
    assert "no reason" in check.check(1, access_entry(silent))[0].message
    assert "older than the retention" in check.check(2, access_entry(stale))[0].message
    assert "not an access entry" in check.check(3, b"junk")[0].message


POSTGRES = os.environ.get(
    "OVERT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def test_a_restart_loses_no_acknowledged_payload_on_postgresql(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    schema = f"overt_telemetry_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as err:  # no server: say so instead of passing silently
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES}: {err}")
    try:
        url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
        collector = Collector.init(tmp_path / "collector", "eu", "eu.telemetry.example", url)
        collector.add_policy(policy_bytes())
        ledger = EgressLedger.create(tmp_path / "ledger", "acme.example/ledger/host42")
        endpoint = Endpoint(parse_policy(policy_bytes()), b"salt", collector.key.public, ledger)
        outgoing = [endpoint.events([EVENT] * (i + 1)) for i in range(20)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda o: collector.receive("acme", o.sealed), outgoing))
        collector.close()
        reopened = Collector(tmp_path / "collector")
        rows = reopened.read("auditor", "acme", [o.record.digest for o in outgoing], "T-1")
        assert len(rows) == 20 and reopened.receipts.size == 20
        reopened.close()
        ledger.close()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
