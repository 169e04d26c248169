"""The life of a vulnerability report (ISO/IEC 29147 disclosure, ISO/IEC 30111 handling), pure.

States and the steps between them::

    received -> acknowledged -> triaged(valid) -> fix_in_progress -> fixed -> disclosed
                                triaged(duplicate | out_of_scope | not_reproducible)   (closed)

A valid report may also be disclosed before it is fixed (the disclosure deadline passed, or it
is exploited in the wild). Every step is an :class:`Event` with who and when; a :class:`Case`
is the report's history, and :func:`advance` is the only way to add to it.

Deadlines (the programme's promises, checked by :func:`overdue`):

- acknowledgement within 3 business days (Monday to Friday, UTC) of receipt;
- disclosure 90 days after receipt, or 30 days after the fix if that comes first, or 7 days
  after the report was found exploited in the wild if that comes first.

Nothing here does I/O or reads a clock: callers pass ``at``/``now`` (aware UTC datetimes).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from overt.disclosure.errors import SubmissionError, TransitionError

__all__ = [
    "ACK_BUSINESS_DAYS",
    "DISCLOSE_AFTER_FIX",
    "DISCLOSE_AFTER_REPORT",
    "DISCLOSE_WHEN_EXPLOITED",
    "Case",
    "Deadlines",
    "Event",
    "Overdue",
    "State",
    "Verdict",
    "add_business_days",
    "advance",
    "deadlines",
    "mark_exploited",
    "open_case",
    "overdue",
]

ACK_BUSINESS_DAYS = 3
DISCLOSE_AFTER_REPORT = timedelta(days=90)
DISCLOSE_AFTER_FIX = timedelta(days=30)
DISCLOSE_WHEN_EXPLOITED = timedelta(days=7)


class State(enum.StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    TRIAGED = "triaged"
    FIX_IN_PROGRESS = "fix_in_progress"
    FIXED = "fixed"
    DISCLOSED = "disclosed"


class Verdict(enum.StrEnum):
    VALID = "valid"
    DUPLICATE = "duplicate"
    OUT_OF_SCOPE = "out_of_scope"
    NOT_REPRODUCIBLE = "not_reproducible"


_NEXT: dict[State, frozenset[State]] = {
    State.RECEIVED: frozenset({State.ACKNOWLEDGED}),
    State.ACKNOWLEDGED: frozenset({State.TRIAGED}),
    State.TRIAGED: frozenset({State.FIX_IN_PROGRESS, State.DISCLOSED}),
    State.FIX_IN_PROGRESS: frozenset({State.FIXED, State.DISCLOSED}),
    State.FIXED: frozenset({State.DISCLOSED}),
    State.DISCLOSED: frozenset(),
}


def _utc(at: datetime, what: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() != timedelta(0):
        raise SubmissionError(what, "not an aware UTC time", at.isoformat())
    return at


@dataclass(frozen=True)
class Event:
    """One step: the state entered, by whom, when (and the verdict when it is ``triaged``)."""

    state: State
    actor: str
    at: datetime
    verdict: Verdict | None = None


@dataclass(frozen=True)
class Case:
    """A report's workflow history: ``events[0]`` is its receipt."""

    report_id: str
    events: tuple[Event, ...]
    exploited_at: datetime | None = None

    @property
    def state(self) -> State:
        return self.events[-1].state

    @property
    def received_at(self) -> datetime:
        return self.events[0].at

    @property
    def verdict(self) -> Verdict | None:
        for event in self.events:
            if event.verdict is not None:
                return event.verdict
        return None

    @property
    def closed(self) -> bool:
        """Disclosed, or triaged as anything but valid: no deadline applies any more."""
        verdict = self.verdict
        return self.state is State.DISCLOSED or (verdict is not None and verdict != Verdict.VALID)

    def entered(self, state: State) -> datetime | None:
        """When the case entered ``state`` (None if it has not)."""
        for event in self.events:
            if event.state is state:
                return event.at
        return None


def open_case(report_id: str, reporter: str, at: datetime) -> Case:
    """A new case, received from ``reporter`` at ``at``."""
    return Case(report_id, (Event(State.RECEIVED, reporter, _utc(at, "received at")),))


def advance(
    case: Case, to: State, actor: str, at: datetime, verdict: Verdict | None = None
) -> Case:
    """The case after ``actor`` moved it to ``to`` at ``at``.

    Raises:
        TransitionError: ``to`` is not a next state of the current one; a closed case; a
            triage without a verdict (or a verdict on another step); a time before the
            previous step; fixing or disclosing a report not triaged valid.
        SubmissionError: ``at`` is not an aware UTC datetime.
    """
    at = _utc(at, "transition time")
    current = case.state

    def refuse(reason: str) -> TransitionError:
        return TransitionError(case.report_id, current.value, to.value, reason)

    if case.closed:
        raise refuse(f"the report is closed ({case.verdict or current})")
    if to not in _NEXT[current]:
        raise refuse("not a next step")
    if (to is State.TRIAGED) != (verdict is not None):
        raise refuse("a triage, and only a triage, takes a verdict")
    if at < case.events[-1].at:
        raise refuse(f"{at.isoformat()} is before the previous step")
    return replace(case, events=(*case.events, Event(to, actor, at, verdict)))


def mark_exploited(case: Case, at: datetime) -> Case:
    """The case, known to be exploited in the wild since ``at`` (the 7-day deadline starts).

    Raises:
        TransitionError: the case is closed.
    """
    if case.closed:
        raise TransitionError(case.report_id, case.state.value, "exploited", "the report is closed")
    if case.exploited_at is not None:
        return case
    return replace(case, exploited_at=_utc(at, "exploited at"))


def add_business_days(start: datetime, days: int) -> datetime:
    """``start`` plus ``days`` business days (Monday to Friday); a weekend start counts from Monday."""
    at = start
    left = days
    while left > 0:
        at += timedelta(days=1)
        if at.weekday() < 5:
            left -= 1
    return at


@dataclass(frozen=True)
class Deadlines:
    """When the case must be acknowledged and disclosed (``disclose_reason`` says which rule)."""

    acknowledge: datetime
    disclose: datetime
    disclose_reason: str


def deadlines(case: Case) -> Deadlines:
    """The case's deadlines under the programme's rules (module docstring)."""
    received = case.received_at
    disclose, reason = received + DISCLOSE_AFTER_REPORT, "90 days after the report"
    fixed = case.entered(State.FIXED)
    if fixed is not None and fixed + DISCLOSE_AFTER_FIX < disclose:
        disclose, reason = fixed + DISCLOSE_AFTER_FIX, "30 days after the fix"
    if case.exploited_at is not None and case.exploited_at + DISCLOSE_WHEN_EXPLOITED < disclose:
        disclose, reason = case.exploited_at + DISCLOSE_WHEN_EXPLOITED, "7 days: exploited"
    return Deadlines(add_business_days(received, ACK_BUSINESS_DAYS), disclose, reason)


@dataclass(frozen=True)
class Overdue:
    """A missed deadline: ``kind`` is ``acknowledge`` or ``disclose``."""

    report_id: str
    kind: str
    due: datetime
    late_by: timedelta
    reason: str


def overdue(case: Case, now: datetime) -> list[Overdue]:
    """The deadlines the case has missed by ``now``; a step done late stays listed (as late).

    A deadline is missed when the step was not taken by the due time: taken later, or
    not yet taken and ``now`` is past it. Closed non-valid reports owe no disclosure.
    """
    now = _utc(now, "now")
    due = deadlines(case)
    found: list[Overdue] = []
    acked = case.entered(State.ACKNOWLEDGED)
    done = acked if acked is not None else now
    if done > due.acknowledge:
        found.append(
            Overdue(
                case.report_id,
                "acknowledge",
                due.acknowledge,
                done - due.acknowledge,
                "3 business days",
            )
        )
    verdict = case.verdict
    if verdict is None or verdict == Verdict.VALID:
        disclosed = case.entered(State.DISCLOSED)
        done = disclosed if disclosed is not None else now
        if done > due.disclose:
            found.append(
                Overdue(
                    case.report_id,
                    "disclose",
                    due.disclose,
                    done - due.disclose,
                    due.disclose_reason,
                )
            )
    return found
