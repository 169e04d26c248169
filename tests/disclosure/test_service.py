"""The desk end to end: intake with encryption and logged commitments, triage, bounty, receipts."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from overt.disclosure.bounty import VulnClass, parse_table
from overt.disclosure.crypto import open_sealed
from overt.disclosure.errors import (
    AccessDeniedError,
    AuthenticationError,
    InvalidVectorError,
    ReportNotFoundError,
    SubmissionError,
    TooLargeError,
    TransitionError,
)
from overt.disclosure.service import MAX_ATTACHMENT, Attachment, Submission, parse_submission
from overt.disclosure.store import Store
from overt.disclosure.timeline import (
    Receipt,
    format_receipt,
    parse_entry,
    parse_receipt,
    verify_commitment,
)
from overt.disclosure.workflow import State, Verdict
from overt.errors import FormatError, VerificationError
from overt.formats.note import parse_vkey
from overt.log.log import read_vkey

from .conftest import T0, Rig, make_rig


def _life(rig: Rig) -> str:
    """A report through every state; returns its id."""
    intake = rig.desk.submit(rig.submission(cvss="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"))
    rid = intake.report_id
    for days, state, verdict in [
        (1, State.ACKNOWLEDGED, None),
        (1, State.TRIAGED, Verdict.VALID),
        (1, State.FIX_IN_PROGRESS, None),
        (10, State.FIXED, None),
        (20, State.DISCLOSED, None),
    ]:
        rig.clock.advance(days)
        rig.desk.transition(rig.triager, rid, state, verdict)
    return rid


def test_a_researcher_proves_the_intake_time_from_the_receipt_and_the_log_alone(rig: Rig) -> None:
    intake = rig.desk.submit(rig.submission())
    receipt_file = format_receipt(intake.receipt)
    # Later, elsewhere: only the receipt, the proof and the log's public key.
    verifier = parse_vkey(read_vkey(rig.log.directory))
    proven = verify_commitment(parse_receipt(receipt_file), intake.proof, verifier)
    assert (proven.report_id, proven.state, proven.time) == (intake.report_id, State.RECEIVED, T0)


def test_a_forged_intake_time_or_report_is_not_proven(rig: Rig) -> None:
    intake = rig.desk.submit(rig.submission())
    verifier = parse_vkey(read_vkey(rig.log.directory))
    r = intake.receipt
    for forged in (
        Receipt(r.program, r.report_id, r.salt, r.received_at.replace(hour=8)),  # backdated
        Receipt(r.program, "R-0000000000000000", r.salt, r.received_at),  # another report
        Receipt(r.program, r.report_id, bytes(32), r.received_at),  # guessed salt
    ):
        with pytest.raises(VerificationError):
            verify_commitment(forged, intake.proof, verifier)


def test_a_proof_from_another_log_is_not_accepted(rig: Rig, tmp_path: Path) -> None:
    intake = rig.desk.submit(rig.submission())
    other = make_rig(tmp_path / "other", Store.open(tmp_path / "other.db"))
    try:
        wrong_key = parse_vkey(read_vkey(other.log.directory))
        with pytest.raises(VerificationError):
            verify_commitment(intake.receipt, intake.proof, wrong_key)
    finally:
        other.log.close()


def test_every_transition_is_committed_with_who_and_when_and_provable(rig: Rig) -> None:
    rid = _life(rig)
    case = rig.desk.case(rid)
    assert [e.state for e in case.events] == list(State)
    assert [e.actor for e in case.events] == ["alice"] + ["tom"] * 5
    verifier = parse_vkey(read_vkey(rig.log.directory))
    row = rig.store.report(rid)
    receipt = Receipt("example.com/psirt", rid, row.salt, T0)
    for event, stored in zip(case.events, rig.store.events([rid]), strict=True):
        proven = verify_commitment(receipt, stored.proof, verifier, event.state, event.at)
        assert proven.time == event.at
    # The public sees states and times, linked by case, but not the report.
    entries = [parse_entry(rig.log.entry(i)) for i in range(rig.log.size)]
    assert [e.state for e in entries] == list(State)
    assert len({e.case for e in entries}) == 1
    assert all(rid.encode() not in rig.log.entry(i) for i in range(rig.log.size))


def test_concurrent_intakes_share_log_appends_and_all_get_valid_receipts(rig: Rig) -> None:
    appends = []
    inner = rig.desk.log.append

    def counting(entries):  # type: ignore[no-untyped-def]
        appends.append(len(entries))
        return inner(entries)

    rig.desk.log.append = counting  # type: ignore[method-assign]
    results = []
    lock = threading.Lock()

    def submit(n: int) -> None:
        intake = rig.desk.submit(rig.submission(title=f"report {n}"))
        with lock:
            results.append(intake)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 24 and sum(appends) == 24
    assert len(appends) < 24  # some were batched together
    verifier = parse_vkey(read_vkey(rig.log.directory))
    for intake in results:
        verify_commitment(intake.receipt, intake.proof, verifier)


def test_reports_attachments_and_messages_are_encrypted_at_rest(rig: Rig, tmp_path: Path) -> None:
    secret = "SECRET-PAYLOAD-7f3a"
    intake = rig.desk.submit(
        rig.submission(
            description=f"exploit: {secret}", attachments=(Attachment("poc.txt", secret.encode()),)
        )
    )
    rig.desk.researcher_message(intake.token, f"more: {secret}")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("disclosure.db*"))
    assert secret.encode() not in raw and b"alice@example.org" not in raw
    view = rig.desk.view(rig.triager, intake.report_id)
    assert secret in view.description and view.attachments[0].data == secret.encode()
    assert view.messages[0][2] == f"more: {secret}"


def test_a_ciphertext_moved_to_another_report_does_not_open(rig: Rig) -> None:
    a = rig.desk.submit(rig.submission())
    b = rig.desk.submit(rig.submission())
    sealed = rig.store.report(a.report_id).sealed_body
    with pytest.raises(VerificationError):
        open_sealed(rig.desk.key.private, sealed, "body", b.report_id)


def test_a_duplicate_is_closed_and_earns_nothing(rig: Rig) -> None:
    first = _life(rig)
    dup = rig.desk.submit(rig.submission()).report_id
    rig.desk.transition(rig.triager, dup, State.ACKNOWLEDGED)
    rig.desk.transition(rig.triager, dup, State.TRIAGED, Verdict.DUPLICATE)
    with pytest.raises(TransitionError):
        rig.desk.pay(rig.admin, dup)
    assert rig.desk.pay(rig.admin, first).amount == 100_000
    with pytest.raises(Exception, match="paid already"):
        rig.desk.pay(rig.admin, first)
    totals = rig.desk.ledger(rig.admin)
    assert totals.by_researcher == {"alice": 100_000} and totals.by_year == {2026: 100_000}


def test_a_triager_cannot_change_the_bounty_table_or_pay(rig: Rig) -> None:
    table = parse_table(
        '{"rce-update-channel": {"critical": 1, "high": 1, "medium": 1, "low": 1},'
        ' "rce": {"critical": 1, "high": 1, "medium": 1, "low": 1},'
        ' "lpe": {"critical": 1, "high": 1, "medium": 1, "low": 1},'
        ' "data-disclosure": {"critical": 1, "high": 1, "medium": 1, "low": 1},'
        ' "other": {"critical": 1, "high": 1, "medium": 1, "low": 1}}'
    )
    with pytest.raises(AccessDeniedError):
        rig.desk.set_bounty_table(rig.triager, table)
    with pytest.raises(AccessDeniedError):
        rig.desk.pay(rig.triager, _life(rig))
    with pytest.raises(AccessDeniedError):
        rig.desk.ledger(rig.triager)
    assert rig.desk.bounty_table().maximum == 100_000
    rig.desk.set_bounty_table(rig.admin, table)
    assert rig.desk.bounty_table().maximum == 1


def test_every_read_of_a_report_is_recorded(rig: Rig) -> None:
    intake = rig.desk.submit(rig.submission())
    rig.desk.view(rig.triager, intake.report_id)
    rig.desk.track(intake.token)
    reads = rig.desk.reads(rig.admin, intake.report_id)
    assert [(who, what) for who, _at, what in reads] == [
        ("tom", "report"),
        ("researcher", "status"),
    ]
    with pytest.raises(AccessDeniedError):
        rig.desk.reads(rig.triager, intake.report_id)


def test_an_unacknowledged_report_is_listed_overdue(rig: Rig) -> None:
    late = rig.desk.submit(rig.submission()).report_id
    acked = rig.desk.submit(rig.submission()).report_id
    rig.desk.transition(rig.triager, acked, State.ACKNOWLEDGED)
    rig.clock.advance(6)
    assert [(o.report_id, o.kind) for o in rig.desk.overdue()] == [(late, "acknowledge")]


def test_exploited_in_the_wild_makes_a_report_overdue_after_7_days(rig: Rig) -> None:
    rid = rig.desk.submit(rig.submission()).report_id
    rig.desk.transition(rig.triager, rid, State.ACKNOWLEDGED)
    rig.desk.transition(rig.triager, rid, State.TRIAGED, Verdict.VALID)
    rig.desk.flag_exploited(rig.triager, rid)
    rig.clock.advance(6)
    assert rig.desk.overdue() == []
    rig.clock.advance(2)
    assert [(o.kind, o.reason) for o in rig.desk.overdue()] == [("disclose", "7 days: exploited")]


def test_tracking_token_shows_only_its_own_report(rig: Rig) -> None:
    a = rig.desk.submit(rig.submission(title="A"))
    b = rig.desk.submit(rig.submission(title="B"))
    assert rig.desk.track(a.token).title == "A" and rig.desk.track(b.token).title == "B"
    with pytest.raises(ReportNotFoundError):
        rig.desk.track(a.token[:-2] + "xx")


def test_wrong_passwords_and_unknown_users_are_refused_alike(rig: Rig) -> None:
    assert rig.desk.login("tom", "triager password 1").username == "tom"
    for user, password in [("tom", "wrong password!"), ("nobody", "triager password 1")]:
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            rig.desk.login(user, password)


def test_oversized_and_malformed_submissions_are_refused(rig: Rig) -> None:
    with pytest.raises(TooLargeError):
        rig.desk.submit(rig.submission(description="x" * (64 * 1024 + 1)))
    with pytest.raises(TooLargeError):
        rig.desk.submit(
            rig.submission(attachments=(Attachment("big", b"x" * (MAX_ATTACHMENT + 1)),))
        )
    with pytest.raises(InvalidVectorError):
        rig.desk.submit(rig.submission(cvss="CVSS:3.1/AV:N"))
    with pytest.raises(SubmissionError):
        rig.desk.submit(rig.submission(researcher="alice smith"))
    for body in (
        b"{",
        b"[]",
        b'{"title": "t", "description": "d", "researcher": "a", "class": "nope"}',
        b'{"title": "t", "description": "d", "researcher": "a", "class": "rce", "x": 1}',
        b'{"title": "t", "description": "d", "researcher": "a", "class": "rce", "title": "u"}',
        b'{"title": 1, "description": "d", "researcher": "a", "class": "rce"}',
        b'{"title": "t", "description": "d", "researcher": "a", "class": "rce",'
        b' "attachments": [{"name": "a", "data": "not base64!"}]}',
    ):
        with pytest.raises(SubmissionError):
            parse_submission(body)
    assert rig.log.size == 0 and rig.store.counts() == {}  # nothing was taken


def test_receipt_parsing_is_strict(rig: Rig) -> None:
    good = format_receipt(rig.desk.submit(rig.submission()).receipt)
    assert format_receipt(parse_receipt(good)) == good
    for bad in (
        good.replace(b'"salt"', b'"sal"'),
        good.replace(b"T09:00:00Z", b"T09:00:00+00:00"),
        good.replace(b"overt.dev/disclosure-receipt/v1", b"v2"),
        good[:-3],
    ):
        with pytest.raises(FormatError):
            parse_receipt(bad)


URL = os.environ.get("OVERT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def test_the_whole_life_of_a_report_on_postgresql(tmp_path: Path) -> None:
    schema = f"overt_disclosure_{uuid.uuid4().hex[:12]}"
    admin = create_engine(URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as err:  # no server: say so instead of passing silently
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {URL}: {err}")
    store = Store(create_engine(URL, connect_args={"options": f"-csearch_path={schema}"}))
    rig = make_rig(tmp_path, store)
    try:
        rid = _life(rig)
        assert rig.desk.case(rid).state is State.DISCLOSED
        assert rig.desk.pay(rig.admin, rid).amount == 100_000
        assert rig.desk.view(rig.triager, rid).vuln_class is VulnClass.RCE_UPDATE_CHANNEL
        assert [r.id for r in rig.desk.triage_list(rig.triager)] == [rid]
        assert [r.id for r in rig.desk.triage_list(rig.triager, State.DISCLOSED)] == [rid]
        assert rig.desk.triage_list(rig.triager, State.RECEIVED) == []
        assert rig.desk.overdue() == []
    finally:
        rig.log.close()
        store.close()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_commitments_go_to_a_log_server_over_http(
    tmp_path: Path, asgi_server: Callable[[Any], Any]
) -> None:
    from overt.disclosure.crypto import PSIRTKey
    from overt.disclosure.service import Desk
    from overt.disclosure.timeline import RemoteCommitmentLog
    from overt.log.client import LogClient
    from overt.log.log import Log
    from overt.log.server import LogApp

    log = Log.create(tmp_path / "log", "example.com/remote-log")
    server = asgi_server(LogApp(log))
    client = LogClient(server.url, log.token)
    store = Store.open(tmp_path / "db")
    try:
        desk = Desk(store, PSIRTKey.generate(), RemoteCommitmentLog(client), "example.com/psirt")
        intake = desk.submit(Submission("t", "d", "alice", VulnClass.RCE))
        proven = verify_commitment(intake.receipt, intake.proof, parse_vkey(log.vkey))
        assert proven.report_id == intake.report_id
    finally:
        client.close()
        store.close()
        server.stop()
        log.close()


def test_racing_triagers_log_one_commitment_for_one_step(rig: Rig) -> None:
    rid = rig.desk.submit(rig.submission()).report_id
    outcomes: list[str] = []

    def move() -> None:
        try:
            rig.desk.transition(rig.triager, rid, State.ACKNOWLEDGED)
            outcomes.append("moved")
        except TransitionError:
            outcomes.append("refused")

    threads = [threading.Thread(target=move) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["moved"] + ["refused"] * 7
    states = [parse_entry(rig.log.entry(i)).state for i in range(rig.log.size)]
    assert states == [State.RECEIVED, State.ACKNOWLEDGED]


def test_a_bad_submission_does_not_fail_the_intakes_batched_with_it(rig: Rig) -> None:
    results: list[object] = []

    def submit(description: str) -> None:
        try:
            results.append(rig.desk.submit(rig.submission(description=description)))
        except TooLargeError as err:
            results.append(err)

    threads = [
        threading.Thread(target=submit, args=("x" * (64 * 1024 + 1) if n == 3 else "ok",))
        for n in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(isinstance(r, TooLargeError) for r in results) == 1
    assert rig.log.size == 7
