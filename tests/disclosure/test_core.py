"""The pure core: workflow and deadlines, CVSS scoring, the bounty table and the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.disclosure.bounty import (
    DEFAULT_TABLE,
    Payout,
    VulnClass,
    award,
    format_table,
    ledger,
    parse_table,
)
from overt.disclosure.errors import InvalidVectorError, SubmissionError, TransitionError
from overt.disclosure.scoring import Severity, score
from overt.disclosure.workflow import (
    Case,
    State,
    Verdict,
    add_business_days,
    advance,
    deadlines,
    mark_exploited,
    open_case,
    overdue,
)

# A Wednesday.
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def _valid_case() -> Case:
    case = open_case("R1", "alice", T0)
    case = advance(case, State.ACKNOWLEDGED, "tom", _day(1))
    return advance(case, State.TRIAGED, "tom", _day(2), Verdict.VALID)


def test_a_report_lives_through_every_state() -> None:
    case = _valid_case()
    case = advance(case, State.FIX_IN_PROGRESS, "tom", _day(3))
    case = advance(case, State.FIXED, "dev", _day(20))
    case = advance(case, State.DISCLOSED, "tom", _day(40))
    assert [e.state for e in case.events] == list(State)
    assert [e.actor for e in case.events] == ["alice", "tom", "tom", "tom", "dev", "tom"]
    assert case.verdict is Verdict.VALID and case.closed
    assert overdue(case, _day(400)) == []


def test_skipping_a_step_is_refused() -> None:
    case = open_case("R1", "alice", T0)
    with pytest.raises(TransitionError) as err:
        advance(case, State.FIXED, "tom", _day(1))
    assert (err.value.current, err.value.wanted, err.value.status) == ("received", "fixed", 409)


def test_triage_needs_a_verdict_and_only_triage_takes_one() -> None:
    case = advance(open_case("R1", "alice", T0), State.ACKNOWLEDGED, "tom", _day(1))
    with pytest.raises(TransitionError):
        advance(case, State.TRIAGED, "tom", _day(2))
    with pytest.raises(TransitionError):
        advance(open_case("R1", "a", T0), State.ACKNOWLEDGED, "t", _day(1), Verdict.VALID)


@pytest.mark.parametrize("verdict", [v for v in Verdict if v != Verdict.VALID])
def test_a_duplicate_or_invalid_report_is_closed_and_earns_nothing(verdict: Verdict) -> None:
    case = advance(open_case("R1", "alice", T0), State.ACKNOWLEDGED, "tom", _day(1))
    case = advance(case, State.TRIAGED, "tom", _day(2), verdict)
    assert case.closed
    with pytest.raises(TransitionError):
        advance(case, State.FIX_IN_PROGRESS, "tom", _day(3))
    assert overdue(case, _day(365)) == []  # no disclosure is owed
    assert award(DEFAULT_TABLE, VulnClass.RCE_UPDATE_CHANNEL, Severity.CRITICAL, verdict) == 0


def test_backdating_a_transition_is_refused() -> None:
    case = open_case("R1", "alice", T0)
    with pytest.raises(TransitionError):
        advance(case, State.ACKNOWLEDGED, "tom", _day(-1))


def test_naive_times_are_refused() -> None:
    with pytest.raises(SubmissionError):
        open_case("R1", "alice", datetime(2026, 1, 1))


def test_acknowledgement_deadline_counts_business_days() -> None:
    assert add_business_days(T0, 3) == _day(5)  # Wed -> Mon (the weekend does not count)
    friday = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    assert add_business_days(friday, 3).weekday() == 2  # Fri -> Wed
    assert deadlines(open_case("R1", "a", T0)).acknowledge == _day(5)


def test_an_unacknowledged_report_is_listed_overdue() -> None:
    case = open_case("R1", "alice", T0)
    assert overdue(case, _day(4)) == []
    late = overdue(case, _day(6))
    assert [(o.kind, o.late_by) for o in late] == [("acknowledge", timedelta(days=1))]
    # Acknowledged late: it stays on record as late.
    acked = advance(case, State.ACKNOWLEDGED, "tom", _day(7))
    assert [o.kind for o in overdue(acked, _day(8))] == ["acknowledge"]


def test_an_unfixed_report_is_overdue_after_90_days() -> None:
    case = _valid_case()
    assert deadlines(case).disclose == _day(90)
    assert overdue(case, _day(89)) == []
    assert [o.kind for o in overdue(case, _day(91))] == ["disclose"]


def test_a_fix_brings_disclosure_to_30_days_after_it() -> None:
    case = advance(_valid_case(), State.FIX_IN_PROGRESS, "tom", _day(3))
    case = advance(case, State.FIXED, "dev", _day(10))
    assert deadlines(case).disclose == _day(40)
    assert deadlines(case).disclose_reason == "30 days after the fix"


def test_exploited_in_the_wild_brings_disclosure_to_7_days() -> None:
    case = mark_exploited(_valid_case(), _day(5))
    assert deadlines(case).disclose == _day(12)
    assert [o.reason for o in overdue(case, _day(13))] == ["7 days: exploited"]
    with pytest.raises(TransitionError):
        closed = advance(
            advance(open_case("R2", "a", T0), State.ACKNOWLEDGED, "t", _day(1)),
            State.TRIAGED,
            "t",
            _day(1),
            Verdict.DUPLICATE,
        )
        mark_exploited(closed, _day(2))


@pytest.mark.parametrize(
    ("vector", "base", "severity"),
    [
        # Known scores from FIRST's calculators.
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, Severity.CRITICAL),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8, Severity.HIGH),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, Severity.MEDIUM),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0, Severity.NONE),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3, Severity.CRITICAL),
        ("CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 8.5, Severity.HIGH),
    ],
)
def test_cvss_vectors_score_their_known_values(
    vector: str, base: float, severity: Severity
) -> None:
    got = score(vector)
    assert (got.base, got.severity, got.vector) == (base, severity, vector)


@pytest.mark.parametrize(
    ("vector", "reason"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", 'Missing mandatory metrics "A"'),
        ("CVSS:3.1/AV:Z/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 'Unknown value "Z"'),
        ("CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 'Duplicate metric "AV"'),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "does not start with"),
        ("AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "does not start with"),
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N",
            'Missing mandatory metrics "SA"',
        ),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/X:1", "Invalid metric"),
        ("CVSS:3.1/" + "AV:N/" * 60, "longer than"),
        ("CVSS:3.1/AV:N\n", "not printable"),
    ],
)
def test_invalid_cvss_vectors_are_refused_with_the_reason(vector: str, reason: str) -> None:
    with pytest.raises(InvalidVectorError) as err:
        score(vector)
    assert reason in err.value.reason and err.value.vector == vector


def test_default_bounty_pays_up_to_100000_for_rce_through_the_update_channel() -> None:
    assert DEFAULT_TABLE.maximum == 100_000
    assert (
        award(DEFAULT_TABLE, VulnClass.RCE_UPDATE_CHANNEL, Severity.CRITICAL, Verdict.VALID)
        == 100_000
    )
    tiers = [
        award(DEFAULT_TABLE, c, Severity.CRITICAL, Verdict.VALID)
        for c in (
            VulnClass.RCE_UPDATE_CHANNEL,
            VulnClass.RCE,
            VulnClass.LPE,
            VulnClass.DATA_DISCLOSURE,
        )
    ]
    assert tiers == sorted(tiers, reverse=True) and len(set(tiers)) == 4
    assert award(DEFAULT_TABLE, VulnClass.RCE, Severity.NONE, Verdict.VALID) == 0
    assert award(DEFAULT_TABLE, VulnClass.RCE, Severity.HIGH, None) == 0  # not triaged yet


def test_bounty_table_round_trips_and_refuses_malformed_tables() -> None:
    assert parse_table(format_table(DEFAULT_TABLE)) == DEFAULT_TABLE
    good = format_table(DEFAULT_TABLE)
    for bad in (
        "[]",
        "{",
        good.replace('"rce"', '"rcx"'),
        good.replace("100000", "-1"),
        good.replace("100000", "1.5"),
        good.replace("100000", "true"),
        good.replace("100000", "99999999999"),
        good.replace('"low"', '"lo"'),
    ):
        with pytest.raises(SubmissionError):
            parse_table(bad)


def test_ledger_totals_per_researcher_and_per_year() -> None:
    payouts = [
        Payout("R1", "alice", 100_000, datetime(2025, 12, 31, tzinfo=UTC)),
        Payout("R2", "alice", 500, datetime(2026, 1, 1, tzinfo=UTC)),
        Payout("R3", "bob", 2_500, datetime(2026, 6, 1, tzinfo=UTC)),
    ]
    totals = ledger(payouts)
    assert totals.total == 103_000 and totals.count == 3
    assert totals.by_researcher == {"alice": 100_500, "bob": 2_500}
    assert totals.by_year == {2025: 100_000, 2026: 3_000}


@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(list(State)),
            st.one_of(st.none(), st.sampled_from(list(Verdict))),
            st.floats(min_value=-2, max_value=40),
        ),
        max_size=12,
    )
)
def test_any_accepted_history_follows_the_workflow(
    steps: list[tuple[State, Verdict | None, float]],
) -> None:
    order = list(State)
    case = open_case("R1", "alice", T0)
    at = T0
    for state, verdict, days in steps:
        at_next = at + timedelta(days=days)
        try:
            case = advance(case, state, "tom", at_next, verdict)
        except TransitionError:
            continue
        at = at_next
    states = [e.state for e in case.events]
    times = [e.at for e in case.events]
    assert times == sorted(times)
    # Every step goes forward (disclosure may skip the fix), and nothing follows a close.
    assert all(order.index(b) > order.index(a) for a, b in pairwise(states))
    assert states[:2] in ([State.RECEIVED], [State.RECEIVED, State.ACKNOWLEDGED])
    if case.verdict not in (None, Verdict.VALID):
        assert states[-1] is State.TRIAGED
    # Overdue never lists a deadline the case met.
    for o in overdue(case, at + timedelta(days=1)):
        assert o.late_by > timedelta(0)
