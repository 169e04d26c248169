"""``marking`` and ``marking-ambiguous``: classification and handling markings.

Every decoded candidate of every string (plain, ``wide``, ``nocase``, hex,
regex, base64, code pages), hex runs and plain strings hidden under a one-byte
XOR key, words split across several patterns, and the condition's literals
are read with :func:`overt.rules.markings.find_markings`. A distinctive marking
is ``marking`` (high); a pattern that is only a level word (``SECRET``) is
``marking-ambiguous`` (medium), reported only where no full marking was
found in the same part. Both are *content* signals: a rule with a malicious
indicator (a phishing lure quoting its marking) gets them one level lower.
"""

from __future__ import annotations

from overt.rules.context import RuleContext, cond_literals
from overt.rules.decode import hex_sequences, joined_candidates
from overt.rules.markings import could_hold_marking, find_markings, xor_hits
from overt.rules.signals import Detector, Severity, Signal

__all__ = ["DETECTORS", "detect"]


def detect(ctx: RuleContext) -> list[Signal]:
    out: list[Signal] = []
    seen: set[tuple[str, str]] = set()

    def add(part: str, line: int, text: str, gov: str, distinctive: bool, how: str) -> None:
        key = (part, text.upper())
        if key in seen:
            return
        seen.add(key)
        detector, sev, why = (
            (
                "marking",
                Severity.HIGH,
                f"matches the {gov} classification/handling marking {text!r}",
            )
            if distinctive
            else (
                "marking-ambiguous",
                Severity.MEDIUM,
                f"the whole pattern is {text!r}, a {gov} classification level",
            )
        )
        out.append(Signal(detector, sev, part, line, f"{text} [{how}]", why))

    joined = joined_candidates(list(ctx.rule.strings), ctx.cands)
    literals = cond_literals(ctx.tokens)
    # One pass over all the rule's texts first: most rules hold no marking at all.
    texts = [c for s in ctx.rule.strings for c in ctx.cands[s.identifier]] + joined + literals
    plain = could_hold_marking([(c.text, c.nocase) for c in texts])
    for s in ctx.rule.strings:
        for c in ctx.cands[s.identifier] if plain else ():
            for text, gov, dist in find_markings(c.text, c.nocase):
                add(s.identifier, s.line, text, gov, dist, c.how)
        chunks: list[bytes] = []
        if s.kind == "hex":
            for runs in hex_sequences(s.data.decode("latin-1"))[:8]:
                chunks.extend(runs)
        elif s.kind == "text":
            chunks.append(s.data)
        for chunk in chunks:
            for text, key in xor_hits(chunk):
                add(s.identifier, s.line, text, "hand-XORed", True, f"xor key 0x{key:02x}")
    for c in joined if plain else ():
        for text, gov, dist in find_markings(c.text, c.nocase):
            if dist and not any(text.upper() in sig.evidence.upper() for sig in out):
                add(
                    "strings (split)",
                    ctx.rule.strings[0].line,
                    text,
                    gov,
                    dist,
                    "split across patterns",
                )
    for c in literals if plain else ():
        for text, gov, dist in find_markings(c.text, c.nocase):
            add("condition", ctx.rule.condition_line, text, gov, dist, c.how)
    # A lone word is only worth reporting where no full marking was found.
    strong_parts = {s.part for s in out if s.detector == "marking"}
    return [s for s in out if s.detector == "marking" or s.part not in strong_parts]


DETECTORS = (
    Detector("marking", "A classification or handling marking of some government.", detect),
    Detector("marking-ambiguous", "A word that is a classification level when written alone."),
)
