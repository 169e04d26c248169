"""``document-only``: a rule that matches documents by type and nothing else.

No malicious indicator, no structural anomaly check (more than one integer
read, a negation, a file name that is not a document's: ordinary documents
have none of these), and every pattern reads as words: it would match every
ordinary document of its type (medium). A rule with sensitive subject words
is ``document-content`` instead.
"""

from __future__ import annotations

import re

from overt.rules.context import (
    DOC_EXT_END,
    DOC_MARKER_RE,
    RuleContext,
    comparisons,
    content_words,
    is_doc_type,
    literal_texts,
)
from overt.rules.decode import Candidate
from overt.rules.signals import Detector, Severity, Signal

__all__ = ["DETECTORS", "detect"]


def detect(ctx: RuleContext) -> list[Signal]:
    if not ctx.doc_targeting or ctx.indicators or content_words(ctx) or _structural(ctx):
        return []
    if not all(_wordy(ctx.cands[s.identifier]) for s in ctx.rule.strings):
        return []
    what = "natural-language words" if ctx.rule.strings else "no patterns"
    return [
        Signal(
            "document-only",
            Severity.MEDIUM,
            "condition",
            ctx.rule.condition_line,
            ctx.doc_targeting[0],
            f"matches documents with {what} and has no malicious indicator at all",
            content=False,
        )
    ]


def _structural(ctx: RuleContext) -> bool:
    """Whether the condition checks the file's structure beyond its type (a
    format anomaly: more than one integer read, a negation, or a file name
    that is not a document's), which ordinary documents do not have."""
    toks = ctx.all_tokens or ctx.tokens  # helper rules' conditions count too
    reads = sum(1 for t in toks if re.fullmatch(r"u?int(?:8|16|32)(?:be)?", t.text))
    if reads > 1 or any(t.text == "not" for t in toks):
        return True
    for lhs, _op, lit in comparisons(toks):
        if lhs in ("filename", "filepath", "extension") and not any(
            DOC_EXT_END.search(t) or is_doc_type(t) for t in literal_texts(lit)
        ):
            return True
    return False


_WORDY = re.compile(r"^[^\W\d_]{2,}(?:[\s,.;:!?'\-/]+[^\W\d_]{2,})*[\s.,:;!?]*$")


def _wordy(cands: list[Candidate]) -> bool:
    """Whether a pattern reads as words (content) rather than as an artefact
    (hex blob, hash, code, GUID, path): document markers count as words."""
    if not cands:
        return False
    text = cands[0].text.strip()
    return bool(_WORDY.match(text)) or bool(DOC_MARKER_RE.search(text.lower()))


DETECTORS = (
    Detector("document-only", "Matches documents and has no malicious indicator.", detect),
)
