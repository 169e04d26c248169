"""``constructed-proof``: yara-x fires on a benign file built from one requirement set.

For a rule with a finding and a requirement set free of malicious indicators,
:mod:`overt.rules.construct` builds a file holding only that set; the dynamic
step runs the compiled rule on it. When it fires, :func:`signal` reports it
at the rule's worst severity, with the sample (base64) as evidence so that a
reviewer can reproduce it with yara-x alone. It confirms the rule's other
findings; :func:`overt.rules.signals.escalate` does not count it as a second,
independent one.
"""

from __future__ import annotations

from collections.abc import Iterable

from overt.rules.signals import Detector, Severity, Signal

__all__ = ["DETECTORS", "signal"]


def signal(sample_b64: str, what: str, others: Iterable[Signal], line: int) -> Signal:
    """The proof that the sample (``sample_b64``, holding ``what``) fires its rule,
    whose other signals are ``others``."""
    worst = max((s.severity for s in others), default=Severity.MEDIUM)
    return Signal(
        "constructed-proof",
        worst,
        "dynamic",
        line,
        f"sample(base64)={sample_b64}",
        f"yara-x fires on a benign file built to hold only: {what} (no executable content)",
        content=False,
    )


DETECTORS = (
    Detector(
        "constructed-proof",
        "yara-x fires on a benign file built from one requirement set (the sample is in the "
        "evidence, base64).",
    ),
)
