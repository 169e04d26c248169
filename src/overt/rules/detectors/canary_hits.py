"""``canary-marked``, ``canary-document``, ``canary-any``: what a rule fires on among the canaries.

The dynamic step (:mod:`overt.rules.dynamic`) runs every compiled rule over
the canary corpus (:mod:`overt.rules.canary`): marked documents each with a
clean twin, and ordinary executables. :func:`signals` turns the canaries one
rule hit into signals:

- fires on a marked canary but not on its clean twin: keyed to markings or
  sensitive content (high; info when no pattern holds readable text, since a
  base64- or hex-shape regex fits a long word of the canary by chance);
- fires on documents and on executables: matches almost anything (low);
- fires on clean documents: medium with no malicious indicator, low with one.
"""

from __future__ import annotations

from collections.abc import Mapping

from overt.rules.canary import Canary
from overt.rules.signals import Detector, Severity, Signal

__all__ = ["DETECTORS", "signals"]


def signals(
    hits: set[str],
    corpus: Mapping[str, Canary],
    has_indicators: bool,
    line: int,
    contentless: bool = False,
) -> list[Signal]:
    """The signals of one rule that fired on the canaries named in ``hits``
    (``corpus`` maps every canary name to its canary)."""
    marked = {n for n in hits if corpus[n].kind == "marked"}
    clean = {n for n in hits if corpus[n].kind == "clean"}
    execs = {n for n in hits if corpus[n].kind == "executable"}
    out: list[Signal] = []
    keyed = sorted(n for n in marked if corpus[n].twin not in hits)
    if keyed:
        sev, why = (
            (
                Severity.INFO,
                "fires on marked canary documents but not on their clean twins, yet no "
                "pattern holds readable text: a character-class shape that fits the canary",
            )
            if contentless
            else (
                Severity.HIGH,
                "fires on marked canary documents but not on their clean twins: keyed to "
                "markings or sensitive content",
            )
        )
        out.append(
            Signal("canary-marked", sev, "dynamic", line, ", ".join(keyed), why, content=False)
        )
        if contentless:
            keyed = []
    docs = sorted((marked | clean) - set(keyed))
    if docs and execs:
        out.append(
            Signal(
                "canary-any",
                Severity.LOW,
                "dynamic",
                line,
                ", ".join(docs + sorted(execs)),
                "fires on canary documents and on ordinary executables: matches almost "
                "anything, not targeting",
                content=False,
            )
        )
    elif clean:
        sev = Severity.LOW if has_indicators else Severity.MEDIUM
        why = (
            "a false positive on ordinary documents in a rule with malicious indicators"
            if has_indicators
            else "matches ordinary documents and has no malicious indicator"
        )
        out.append(
            Signal(
                "canary-document",
                sev,
                "dynamic",
                line,
                ", ".join(sorted(clean)),
                f"fires on clean canary documents: {why}",
                content=False,
            )
        )
    return out


DETECTORS = (
    Detector("canary-marked", "Fires on marked canary documents but not on their clean twins."),
    Detector("canary-document", "Fires on ordinary (clean) canary documents."),
    Detector("canary-any", "Fires on canary documents and on ordinary executables."),
)
