"""The egress ledger: what left is recorded, and any tampering with the record is detected."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from overt.errors import FormatError
from overt.formats import tiles
from overt.telemetry.endpoint import Endpoint
from overt.telemetry.errors import EventRefusedError, LedgerTamperedError, SampleRefusedError
from overt.telemetry.ledger import EgressLedger, format_record, parse_record, verify_ledger
from overt.telemetry.policy import TelemetryPolicy
from overt.telemetry.sealing import CollectorKey, open_payload

EVENT = {"type": "process", "sha256": "ab" * 32, "user": "alice", "path": "C:\\secret.docx"}


def _endpoint(tmp_path: Path, policy: TelemetryPolicy) -> tuple[Endpoint, CollectorKey]:
    key = CollectorKey.generate("eu")
    ledger = EgressLedger.create(tmp_path / "ledger", "acme.example/ledger/host42")
    return Endpoint(policy, b"salt", key.public, ledger, clock=lambda: 1_764_157_327.0), key


def _fill(tmp_path: Path, policy: TelemetryPolicy, n: int = 5) -> Path:
    endpoint, _ = _endpoint(tmp_path, policy)
    for _ in range(n):
        endpoint.events([EVENT, EVENT])
    endpoint.ledger.close()
    return tmp_path / "ledger"


def test_what_left_is_what_the_ledger_says(tmp_path: Path, policy: TelemetryPolicy) -> None:
    endpoint, key = _endpoint(tmp_path, policy)
    out = endpoint.events([EVENT])
    plain = open_payload(key.private, "eu", "acme", out.sealed)
    assert b"secret.docx" not in plain and b"alice" not in plain
    assert out.record.fields == ("process.sha256", "process.user")
    assert out.record.destination == "https://eu.telemetry.example"
    endpoint.ledger.close()
    verified = verify_ledger(tmp_path / "ledger")
    assert verified.records == (out.record,)


def test_refused_events_and_samples_leave_no_trace(tmp_path: Path, policy: TelemetryPolicy) -> None:
    endpoint, _ = _endpoint(tmp_path, policy)
    with pytest.raises(EventRefusedError):
        endpoint.events([EVENT, {"type": "keylog"}])
    with pytest.raises(SampleRefusedError):
        endpoint.sample(b"%PDF-1.7\n")
    endpoint.ledger.close()
    assert verify_ledger(tmp_path / "ledger").records == ()


def test_record_round_trip_and_every_byte_flip_is_refused(
    tmp_path: Path, policy: TelemetryPolicy
) -> None:
    endpoint, _ = _endpoint(tmp_path, policy)
    entry = format_record(endpoint.events([EVENT]).record)
    endpoint.ledger.close()
    assert format_record(parse_record(entry)) == entry
    for i in range(len(entry)):
        mutated = entry[:i] + bytes([entry[i] ^ 1]) + entry[i + 1 :]
        with contextlib.suppress(FormatError):
            assert parse_record(mutated) != parse_record(entry)


def _bundle(ledger: Path, size: int) -> Path:
    return ledger / "tiles" / tiles.entries_path(0, size)


def test_an_edited_entry_is_detected(tmp_path: Path, policy: TelemetryPolicy) -> None:
    ledger = _fill(tmp_path, policy)
    path = _bundle(ledger, 5)
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"events":2', b'"events":1', 1))
    with pytest.raises(LedgerTamperedError):
        verify_ledger(ledger)


def test_a_truncated_ledger_is_detected(tmp_path: Path, policy: TelemetryPolicy) -> None:
    ledger = _fill(tmp_path, policy)
    path = _bundle(ledger, 5)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(LedgerTamperedError):
        verify_ledger(ledger)


def test_reordered_entries_are_detected(tmp_path: Path, policy: TelemetryPolicy) -> None:
    endpoint, _ = _endpoint(tmp_path, policy)
    endpoint.events([EVENT])
    endpoint.events([EVENT, EVENT])
    endpoint.ledger.close()
    path = _bundle(tmp_path / "ledger", 2)
    first, second = tiles.parse_entry_bundle(path.read_bytes(), 2)
    path.write_bytes(tiles.format_entry_bundle([second, first]))
    with pytest.raises(LedgerTamperedError):
        verify_ledger(tmp_path / "ledger")


def test_a_ledger_rolled_back_to_an_older_checkpoint_is_detected(
    tmp_path: Path, policy: TelemetryPolicy
) -> None:
    endpoint, key = _endpoint(tmp_path, policy)
    endpoint.events([EVENT])
    endpoint.ledger.close()
    shutil.copytree(tmp_path / "ledger", tmp_path / "backup")
    ledger = EgressLedger.open(tmp_path / "ledger")
    Endpoint(policy, b"salt", key.public, ledger).events([EVENT])
    ledger.close()
    kept = verify_ledger(tmp_path / "ledger").checkpoint.raw  # the auditor keeps this
    shutil.rmtree(tmp_path / "ledger")
    shutil.copytree(tmp_path / "backup", tmp_path / "ledger")  # the second record is gone
    assert len(verify_ledger(tmp_path / "ledger").records) == 1  # consistent on its own
    with pytest.raises(LedgerTamperedError, match="rolled back"):
        verify_ledger(tmp_path / "ledger", previous=kept)


def test_a_ledger_signed_by_another_key_is_refused(tmp_path: Path, policy: TelemetryPolicy) -> None:
    ledger = _fill(tmp_path, policy, 1)
    other = _fill(tmp_path / "x", policy, 1)
    vkey = (other / "log.vkey").read_text().strip()
    with pytest.raises(LedgerTamperedError):
        verify_ledger(ledger, vkey=vkey)
