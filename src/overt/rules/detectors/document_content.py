"""``document-content``: document targeting together with sensitive subject words.

A rule that targets documents (format magic, container part names, document
extensions: :attr:`overt.rules.context.RuleContext.doc_targeting`) and looks
for words of sensitive subjects (:data:`overt.rules._lexicon.CONTENT_WORDS`) is
high with no malicious indicator, low with one (lure text in a maldoc rule).
"""

from __future__ import annotations

from overt.rules.context import RuleContext, content_words
from overt.rules.signals import Detector, Severity, Signal

__all__ = ["DETECTORS", "detect"]


def detect(ctx: RuleContext) -> list[Signal]:
    if not ctx.doc_targeting:
        return []
    words = content_words(ctx)
    if not words:
        return []
    target = ctx.doc_targeting[0]
    if ctx.indicators:
        sev, why = (
            Severity.LOW,
            f"document rule ({target}) names sensitive subjects, but also has a "
            f"malicious indicator ({ctx.indicators[0]}): lure text in a maldoc rule",
        )
    else:
        sev, why = (
            Severity.HIGH,
            f"document rule ({target}) looks for sensitive subjects and has no malicious indicator",
        )
    shown = ", ".join(sorted(set(words))[:6])
    return [Signal("document-content", sev, "strings", ctx.rule.line, shown, why, content=False)]


DETECTORS = (
    Detector(
        "document-content", "Document targeting combined with sensitive subject words.", detect
    ),
)
