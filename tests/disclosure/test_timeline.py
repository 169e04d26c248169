"""Commitment entries and receipts: strict formats, and every altered proof refused."""

from __future__ import annotations

import pytest

from overt.disclosure.timeline import (
    Receipt,
    commitment_entry,
    format_time,
    parse_entry,
    parse_time,
    verify_commitment,
)
from overt.disclosure.workflow import State
from overt.errors import FormatError, OvertError
from overt.formats.note import parse_vkey
from overt.log.log import read_vkey

from .conftest import T0, Rig

SALT = bytes(range(32))


def test_commitment_entry_round_trips_and_hides_the_report_id() -> None:
    entry = commitment_entry("example.com/psirt", SALT, "R-0123456789abcdef", State.FIXED, T0)
    parsed = parse_entry(entry)
    assert (parsed.program, parsed.state, parsed.time) == ("example.com/psirt", State.FIXED, T0)
    assert b"R-0123456789abcdef" not in entry
    other = commitment_entry("example.com/psirt", SALT, "R-0123456789abcdee", State.FIXED, T0)
    assert parse_entry(other).commitment != parsed.commitment
    assert parse_entry(other).case == parsed.case  # the case tag depends on the salt only


def test_every_truncation_and_extension_of_an_entry_is_refused() -> None:
    entry = commitment_entry("example.com/psirt", SALT, "R-1", State.RECEIVED, T0)
    for n in range(len(entry)):
        with pytest.raises(FormatError):
            parse_entry(entry[:n])
    for extra in (b"x", b"\n", b"extra line\n"):
        with pytest.raises(FormatError):
            parse_entry(entry + extra)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-25T09:00:00+00:00",
        "2026-11-25 09:00:00Z",
        "2026-13-25T09:00:00Z",
        " 2026-11-25T09:00:00Z",
    ],
)
def test_only_one_spelling_of_a_time_is_accepted(text: str) -> None:
    with pytest.raises(FormatError):
        parse_time(text)
    assert parse_time(format_time(T0)) == T0


def test_every_single_byte_change_of_a_proof_is_refused(rig: Rig) -> None:
    intake = rig.desk.submit(rig.submission())
    verifier = parse_vkey(read_vkey(rig.log.directory))
    proof = intake.proof
    verify_commitment(intake.receipt, proof, verifier)
    for i in range(len(proof)):
        altered = proof[:i] + bytes([proof[i] ^ 0x01]) + proof[i + 1 :]
        with pytest.raises(OvertError):
            verify_commitment(intake.receipt, altered, verifier)
    for n in range(len(proof)):
        with pytest.raises(OvertError):
            verify_commitment(intake.receipt, proof[:n], verifier)


def test_a_proof_of_one_step_does_not_prove_another(rig: Rig) -> None:
    intake = rig.desk.submit(rig.submission())
    verifier = parse_vkey(read_vkey(rig.log.directory))
    r = intake.receipt
    with pytest.raises(OvertError):
        verify_commitment(r, intake.proof, verifier, State.ACKNOWLEDGED, r.received_at)
    with pytest.raises(OvertError):
        verify_commitment(
            Receipt("other.example/psirt", r.report_id, r.salt, r.received_at),
            intake.proof,
            verifier,
        )
