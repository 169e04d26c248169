"""``collection-strings`` and ``lying-meta``: every way to match needs only human content.

Each string of each requirement set is classified after decoding
(:mod:`overt.rules.classify`): natural language, personal names, identifiers,
markings or code names. A rule whose every set holds only those, and no
malicious indicator, is a collection or targeting rule (high) whatever its
meta says (issue 9, classes 1-3 and 7); a name or meta that claims malware
over such strings is ``lying-meta`` (high) on top.
"""

from __future__ import annotations

import re

from overt.rules.context import MALICIOUS_RE, RuleContext, set_text
from overt.rules.markings import find_markings
from overt.rules.signals import Detector, Severity, Signal

__all__ = ["DETECTORS", "detect"]

_MALWARE_META = re.compile(
    r"(?i)(?<![a-z])(?:malware|trojan|rat|backdoor|ransom\w*|stealer|infostealer|loader|dropper|"
    r"implant|botnet|bot|worm|apt ?\d*|c2|exploit\w*|webshell|keylogger|rootkit|miner|spyware|"
    r"beacon|cobalt ?strike|hacktool|virus|payload|shellcode)(?![a-z])"
)
_META_CLAIM_KEYS = frozenset(
    {"description", "malware", "malware_family", "family", "threat_name", "category", "mitre_att"}
)


def _string_kind(ctx: RuleContext, sid: str) -> tuple[str, str]:
    """``(kind, why)`` of one of the rule's own strings, after decoding."""
    from overt.rules.classify import classify

    cands = ctx.cands.get(sid, [])
    if not cands:
        return "artefact", "no readable text"
    for c in cands:
        if find_markings(c.text, c.nocase):
            return "marking", "a classification marking"
    first = cands[0].text
    if MALICIOUS_RE.search(first.lower()):
        return "artefact", "a malware or API token"
    got = classify(first)
    string = next((s for s in ctx.rule.strings if s.identifier == sid), None)
    if string is not None and string.kind != "text" and got.kind != "identifier":
        # Texts read out of hex jumps and regex classes are fragments: only an
        # identifier (or a marking, above) in them is evidence.
        return "artefact", f"{string.kind} fragment"
    return got.kind, got.detail


def detect(ctx: RuleContext) -> list[Signal]:
    """Every way to match needs only human content: natural language, names,
    identifiers, markings or code names (issue 9, classes 1-3 and 7)."""
    reqs = ctx.requirements
    if reqs is None or not reqs.parsed or not reqs.complete or not reqs.sets or ctx.indicators:
        return []
    shown: list[str] = []
    kinds: set[str] = set()
    for req_set in reqs.sets:
        strings = [a for a in req_set if a.kind == "string"]
        if not strings or any(a.owner or a.kind == "rule" for a in req_set):
            return []
        for atom in sorted(strings):
            kind, why = _string_kind(ctx, atom.text)
            if kind not in ("marking", "identifier", "natural", "name", "codename"):
                return []
            kinds.add(kind)
            if len(shown) < 4:
                shown.append(f"{atom.text}: {why}")
    if kinds == {"marking"}:
        return []  # the marking detector says it already
    codenames = {
        c.text for st in reqs.sets for a in st if a.kind == "string" for c in ctx.cands[a.text][:1]
    }
    if kinds == {"codename"} and len(codenames) < 2:
        return []  # one upper-case token alone is as often a malware's own identifier
    first = set_text(reqs.sets[0])
    sig = Signal(
        "collection-strings",
        Severity.HIGH,
        "condition",
        ctx.rule.condition_line,
        "; ".join(dict.fromkeys(shown)),
        f"every way to match ({len(reqs.sets)} requirement set(s), e.g. {first}) needs only "
        "natural language, names, identifiers, markings or code names, and no malicious "
        "indicator: a collection or targeting rule",
        content=False,
    )
    out = [sig]
    claims = [ctx.rule.name] + [
        str(v) for k, v in ctx.rule.metas if k.lower() in _META_CLAIM_KEYS and isinstance(v, str)
    ]
    for claim in claims:
        m = _MALWARE_META.search(claim.replace("_", " "))
        if m:
            out.append(
                Signal(
                    "lying-meta",
                    Severity.HIGH,
                    "meta",
                    ctx.rule.line,
                    f"{claim[:80]!r} claims {m.group(0)!r}",
                    "the name or meta claims malware while every requirement set is document "
                    "content: the label hides a collection rule",
                    content=False,
                )
            )
            break
    return out


DETECTORS = (
    Detector(
        "collection-strings",
        "Every way to match needs only natural language, names, identifiers, markings or "
        "code names, and no malicious indicator.",
        detect,
    ),
    Detector("lying-meta", "The name or meta claims malware over a rule made of document content."),
)
