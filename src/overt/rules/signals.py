"""Signals, severities and the detector protocol of the rule auditor.

A detector (:mod:`overt.rules.detectors`) looks at one rule and yields
:class:`Signal` objects: which detector, how bad, which part of the rule, the
evidence and the reason. :func:`escalate` then weighs a rule's signals
together:

- *Content* signals (markings, code names, singling-out by literal) drop one
  level when the rule also carries a malicious indicator -- a phishing-lure
  rule may quote a lure's marking.
- A rule with two different signals of which one is at least high is raised
  to critical: independent evidence of targeting. A constructed proof
  confirms the others; it is not independent evidence.

Severities: ``info < low < medium < high < critical``.

Example::

    >>> s = Signal("marking", Severity.HIGH, "$a", 3, "NOFORN [text]", "a marking")
    >>> [str(x.severity) for x in escalate([s], has_indicators=True)]
    ['medium']
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from overt.rules.context import RuleContext

__all__ = ["Detector", "Severity", "Signal", "escalate"]


class Severity(enum.IntEnum):
    """Ordered severity of a finding (``info < low < medium < high < critical``)."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, name: str) -> Severity:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(
                f"unknown severity {name!r} (info, low, medium, high, critical)"
            ) from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Signal:
    """One reason to look at a rule: where (``part``), what, and why."""

    detector: str
    severity: Severity
    part: str
    line: int
    evidence: str
    reason: str
    content: bool = True  # drops a level when the rule has malicious indicators

    def but(self, severity: Severity | None = None, note: str = "") -> Signal:
        """This signal at another ``severity`` and/or with ``note`` added to its reason."""
        return replace(
            self,
            severity=self.severity if severity is None else severity,
            reason=self.reason + note,
        )


@dataclass(frozen=True)
class Detector:
    """One kind of finding: its ``name`` (``Finding.detector``), one line of
    ``help`` (SARIF rule descriptors, ``overt rules audit --help``), and
    ``detect`` for a static detector run on each rule (None when the finding is
    emitted by another detector's ``detect`` or by the audit itself)."""

    name: str
    help: str
    detect: Callable[[RuleContext], list[Signal]] | None = None


def escalate(signals: list[Signal], has_indicators: bool) -> list[Signal]:
    """Apply the indicator discount and the two-signal escalation (see module docstring)."""
    adjusted = [
        s.but(Severity(s.severity - 1), " (lowered: the rule also has malicious indicators)")
        if s.content and has_indicators and s.severity > Severity.INFO
        else s
        for s in signals
    ]
    independent = [s for s in adjusted if s.detector != "constructed-proof"]
    strong = {s.detector for s in independent if s.severity >= Severity.HIGH}
    others = {s.detector for s in independent if s.severity >= Severity.MEDIUM}
    if strong and len(others) >= 2:
        adjusted = [
            s.but(
                Severity.CRITICAL,
                f" (raised: together with {', '.join(sorted(others - {s.detector}))})",
            )
            if s.severity >= Severity.HIGH
            else s
            for s in adjusted
        ]
    return adjusted
