# ruff: noqa: RUF001  -- Cyrillic vowels and letters on purpose
"""Static detectors: what in a rule points at collection or targeting.

Each detector looks at one :class:`~overt.rules.parse.Rule` through its decoded
candidate texts (``decode``) and condition tokens, and yields :class:`Signal`
objects. ``analyse_rule`` then weighs them against the rule's *malicious
indicators* (executable headers, code bytes, API names, macro or exploit
keywords...) because legitimate rules look at documents all the time: a
document type check alone is never a finding.

Detectors (``Signal.detector``) and their base severity:

====================  ========  =====================================================
detector              base      what it means
====================  ========  =====================================================
marking               high      a classification/handling marking (many governments)
marking-ambiguous     medium    a word that is a marking in a banner (``SECRET``)
codename-list         high      a list of code-name-like words, nothing else
document-content      high      document targeting + sensitive subjects, no indicator
document-only         medium    document targeting and no malicious indicator at all
singling-out          high      a condition that picks a user, machine, path or org
collect-meta          high      metadata asking for the matched file to be uploaded
====================  ========  =====================================================

Severities (:class:`Severity`): ``info < low < medium < high < critical``.
*Content* signals (markings, code names, singling-out by literal) drop one
level when the rule also carries a malicious indicator -- a phishing-lure rule
may quote a lure's marking. A rule with two different signals of which one is
at least high is raised to critical: independent evidence of targeting.
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import overt.rules._lexicon as lex
from overt.rules.decode import (
    Candidate,
    bytes_to_texts,
    candidates,
    hex_sequences,
    joined_candidates,
    utf16_texts,
)
from overt.rules.parse import ConditionToken, Rule, StringDef, tokenize_condition
from overt.rules.requirements import Atom, Requirements, requirements

__all__ = [
    "DETECTORS",
    "STANDARD_EXTERNALS",
    "Detector",
    "RuleContext",
    "Severity",
    "Signal",
    "analyse_rule",
    "escalate",
    "find_markings",
    "marking_phrases",
    "register_detector",
    "rule_context",
]

#: External variables YARA front-ends commonly define (THOR, LOKI, ...).
STANDARD_EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner")


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


# -- compiled lexicons ---------------------------------------------------------------

_LETTER = r"A-Za-z\u00C0-\u024F\u0370-\u052F"
_SEP = r"[\s_\-./]*"


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-./]+", "", unicodedata.normalize("NFC", text)).casefold()


_MARK_BY_KEY = {_norm(p): (p, gov) for p, gov, _ in lex.DISTINCTIVE_MARKINGS}


def _trie_regex(phrases: Iterable[str], sep: str = "") -> str:
    """One regex for many literal phrases, factored as a trie (``re`` has no
    trie of its own, and a flat 100-way alternation costs 100 tries per byte).

    With ``sep``, any run of spaces or hyphens inside a phrase becomes ``sep``.
    """
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for phrase in phrases:
        node = trie
        units = re.split(r"([\s\-]+)", phrase) if sep else [phrase]
        for unit in units:
            if not unit:
                continue
            toks = (
                [sep] if sep and re.fullmatch(r"[\s\-]+", unit) else [re.escape(ch) for ch in unit]
            )
            for tok in toks:
                node = node.setdefault(tok, {})
        node[""] = {}

    def emit(node: dict) -> str:  # type: ignore[type-arg]
        alts = [tok + emit(child) for tok, child in sorted(node.items()) if tok]
        end = "" in node
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if end:
            return "(?:" + body + ")?"
        return body

    return emit(trie)


def _bounded(body: str) -> str:
    return f"(?<![{_LETTER}])(?:{body})(?![{_LETTER}])"


def _marking_regex(case_sensitive: bool) -> re.Pattern[str]:
    phrases = [p for p, _, cs in lex.DISTINCTIVE_MARKINGS if cs == case_sensitive]
    if case_sensitive:
        return re.compile(_trie_regex(phrases, _SEP))
    # Matched against the lower-cased text without re.I or look-behinds (both
    # are slow per position in ``re``); word boundaries are checked per match.
    return re.compile(_trie_regex((p.lower() for p in phrases), _SEP))


_MARK_RE_I = _marking_regex(False)
_MARK_RE_CS = _marking_regex(True)
_LETTER_CH = re.compile(f"[{_LETTER}]")
_WORDISH = re.compile(r"[^\W\d_]{2}")


def _is_letter(text: str, i: int) -> bool:
    return 0 <= i < len(text) and bool(_LETTER_CH.match(text[i]))


# US banner ("SECRET//NOFORN") and portion ("(S//NF)") syntax, CAPCO register.
_BANNER_RE = re.compile(
    r"(?<![A-Za-z])(?:TOP SECRET|SECRET|CONFIDENTIAL|UNCLASSIFIED|RESTRICTED|CUI)\s*//\s*[A-Z]"
    r"|\((?:TS|S|C|U|R|CUI)//[A-Z][A-Z0-9 ,/\-]*\)"
    r"|(?<![A-Za-z])(?:TS|S)//(?:SI|TK|HCS|NF|REL|SAR|ORCON)(?![A-Za-z])"
    r"|(?i:classification)\s*:\s*(?:TOP SECRET|SECRET|CONFIDENTIAL|RESTRICTED|OFFICIAL)"
)
_AMBIGUOUS = {w: gov for w, gov in lex.AMBIGUOUS_MARKINGS}
_CONTENT_RE = re.compile(
    f"(?<![{_LETTER}])(?:{_trie_regex(w for w in lex.CONTENT_WORDS if w.isascii())})"
    f"|{_trie_regex(w for w in lex.CONTENT_WORDS if not w.isascii())}",
    re.I,
)
_SHORT = [t for t in lex.MALICIOUS_TOKENS if re.fullmatch(r"[a-z0-9]{1,5}", t)]
# Both are matched against lower-cased text (see ``_marking_regex``).
_MALICIOUS_RE = re.compile(
    rf"\b(?:{_trie_regex(_SHORT)})\b|{_trie_regex(t for t in lex.MALICIOUS_TOKENS if t not in _SHORT)}"
)
_DOC_MARKER_RE = re.compile(_trie_regex(lex.DOC_MARKERS))
_DOC_EXT_END = re.compile(
    r"\.(?:"
    + "|".join(e for e in lex.DOC_EXTENSIONS if e not in ("txt", "csv", "md", "key"))
    + r")\s*$",
    re.I,
)
# Format magics as they appear in conditions (uint32/uint32be/uint16 comparisons).
_EXEC_MAGIC = re.compile(
    r"0x(?:5a4d|4d5a|464c457f|7f454c46|feedface|cefaedfe|feedfacf|cffaedfe|cafebabe|00004550|4550|"
    r"0000004c|4c000000|6465780a|04034b50(?=.*\.jar))\b",
    re.I,
)
_DOC_MAGIC = re.compile(
    r"0x(?:e011cfd0|d0cf11e0|46445025|25504446|74725c7b|7b5c7274|6d74725c|e11ab1a1|a1b11ae1)\b",
    re.I,
)
_EXEC_MODULES = ("pe.", "elf.", "macho.", "dotnet.", "dex.", "lnk.", "cuckoo.")

# Hex bytes that spell document container markers.
_DOC_HEX = (b"\xd0\xcf\x11\xe0", b"%PDF", b"{\\rt")
# Whole headers of document containers (OLE2, PDF, RTF, ZIP/OOXML, PST, MBOX).
_DOC_HEADERS = (
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
    b"\xd0\xcf\x11\xe0",
    b"%PDF",
    b"{\\rt",
    b"PK\x03\x04",
    b"!BDN",
    b"From ",
)

_KEYWORDS = frozenset(
    [
        "and",
        "or",
        "not",
        "all",
        "any",
        "none",
        "of",
        "them",
        "for",
        "in",
        "at",
        "filesize",
        "entrypoint",
        "true",
        "false",
        "matches",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "iequals",
        "defined",
        "with",
        "uint8",
        "uint16",
        "uint32",
        "uint8be",
        "uint16be",
        "uint32be",
        "int8",
        "int16",
        "int32",
        "int8be",
        "int16be",
        "int32be",
        "import",
        "include",
        "private",
        "global",
        "rule",
        "meta",
        "strings",
        "condition",
    ]
)


# -- rule context ---------------------------------------------------------------------


@dataclass
class RuleContext:
    """Everything the detectors share about one rule (computed once)."""

    rule: Rule
    cands: dict[str, list[Candidate]]
    tokens: list[ConditionToken]
    indicators: list[str] = field(default_factory=list)
    doc_targeting: list[str] = field(default_factory=list)
    externals: set[str] = field(default_factory=set)
    #: every indicator anywhere in the rule (``indicators`` keeps only those that
    #: every requirement set needs)
    all_indicators: list[str] = field(default_factory=list)
    requirements: Requirements | None = None
    #: a requirement set with no malicious indicator, shown in findings
    free_set: str = ""
    #: the requirement sets that hold no malicious indicator
    free_sets: list[frozenset[Atom]] = field(default_factory=list)
    #: tokens of the condition and of every rule it inlines
    all_tokens: list[ConditionToken] = field(default_factory=list)


def _string_by_id(rule: Rule) -> dict[str, StringDef]:
    return {s.identifier: s for s in rule.strings}


def _cond_literals(tokens: list[ConditionToken]) -> list[Candidate]:
    out: list[Candidate] = []
    from overt.rules.decode import regex_texts

    for t in tokens:
        if t.kind == "str":
            out.append(Candidate(t.value.decode("utf-8", "replace"), "condition"))
        elif t.kind == "regex":
            flags = t.text[t.text.rfind("/") + 1 :]
            for text in regex_texts(t.value.decode("utf-8", "replace")):
                out.append(Candidate(text, "condition-regex", "i" in flags))
    return out


def _loop_vars(tokens: list[ConditionToken]) -> set[str]:
    out: set[str] = set()
    for i, t in enumerate(tokens):
        if t.text == "for":
            j = i + 1
            while j < len(tokens) and tokens[j].text not in ("in", "of", ":"):
                if tokens[j].kind == "ident" and tokens[j].text not in _KEYWORDS:
                    out.add(tokens[j].text)
                j += 1
    return out


def _string_indicators(
    rule: Rule, cands: dict[str, list[Candidate]] | None = None
) -> dict[str, str]:
    """``{$id: why}`` for each string of ``rule`` that is a malicious indicator
    (code bytes, or a malware/exploit/API token after decoding)."""
    out: dict[str, str] = {}
    for s in rule.strings:
        cs = cands[s.identifier] if cands is not None else candidates(s)
        if s.kind == "hex":
            for runs in hex_sequences(s.data.decode("latin-1"))[:4]:
                binary = [
                    r
                    for r in runs
                    if sum(b < 0x20 or b >= 0x7F for b in r) >= 3
                    and not _readable(r)
                    # a document container's own header written in hex is not code
                    and not any(r.startswith(h) for h in _DOC_HEADERS)
                ]
                if binary:
                    out[s.identifier] = f"{s.identifier} is a binary/code byte pattern"
                    break
        if s.identifier in out:
            continue
        for c in cs:
            mm = _MALICIOUS_RE.search(c.text.lower())
            if mm:
                out[s.identifier] = f"{s.identifier} contains {mm.group(0)!r}"
                break
    return out


def _atom_indicator(atom: Atom, strings: dict[str, dict[str, str]]) -> str | None:
    """Why ``atom`` is a malicious indicator, or None. ``strings`` maps a rule
    name ("" for the rule itself) to its string indicators."""
    if atom.kind == "string":
        why = strings.get(atom.owner, {}).get(atom.text)
        return f"{atom.owner}:{why}" if why and atom.owner else why
    if atom.kind == "magic":
        m = _EXEC_MAGIC.search(atom.text)
        if m:
            return f"condition checks executable magic {m.group(0)}"
    if atom.kind == "module":
        low = atom.text.lower()
        for mod in _EXEC_MODULES:
            if low.startswith(mod):
                return f"condition uses the {mod[:-1]} module ({atom.text})"
    return None


def _set_text(req_set: frozenset[Atom]) -> str:
    return " and ".join(str(a) for a in sorted(req_set)) or "nothing (always true)"


def _needed_indicators(
    reqs: Requirements, strings: dict[str, dict[str, str]]
) -> tuple[list[str], str] | None:
    """The indicators to credit when every requirement set holds one, and the
    first set that holds none ("" when there is none); None when the sets are
    not known (unreadable or truncated condition)."""
    if not reqs.parsed:
        return None
    if not reqs.complete:
        # Too many sets to list: decide on the syntax tree whether each holds one.
        whys: list[str] = []

        def pred(atom: Atom) -> bool:
            why = _atom_indicator(atom, strings)
            if why and why not in whys:
                whys.append(why)
            return why is not None

        if reqs.every_set_has(pred):
            return whys[:1] or ["every requirement set holds a malicious indicator"], ""
        return None
    if not reqs.sets:
        return None
    needed: list[str] = []
    for req_set in reqs.sets:
        whys = [w for a in sorted(req_set) if (w := _atom_indicator(a, strings))]
        if not whys:
            return [], _set_text(req_set)
        if whys[0] not in needed:
            needed.append(whys[0])
    return needed, ""


def rule_context(
    rule: Rule, rule_names: Iterable[str] = (), file_rules: Iterable[Rule] = ()
) -> RuleContext:
    """Decode a rule once: candidates, condition tokens, indicators, targeting.

    ``file_rules`` are the rules of the same file: a rule the condition names is
    inlined into the requirement sets (:mod:`overt.rules.requirements`), and a
    private rule is judged by the rules that use it.
    """
    cands = {s.identifier: candidates(s) for s in rule.strings}
    tokens = tokenize_condition(rule.condition)
    ctx = RuleContext(rule, cands, tokens)
    cond_lower = rule.condition.lower()
    index = _file_index(file_rules)
    others = index.rules

    # Malicious indicators anywhere in the rule (the old, requirement-blind view).
    for mod in _EXEC_MODULES:
        if mod in cond_lower:
            ctx.indicators.append(f"condition uses the {mod[:-1]} module")
            break
    m = _EXEC_MAGIC.search(rule.condition)
    if m:
        ctx.indicators.append(f"condition checks executable magic {m.group(0)}")
    own = _string_indicators(rule, cands)
    ctx.indicators.extend(own.values())
    ctx.all_indicators = list(ctx.indicators)

    # Requirement sets: an indicator counts only if every way to match needs one.
    table = index.table  # the rule's own name is in ``seen``: a self-reference is not inlined
    reqs = requirements(rule.condition, [s.identifier for s in rule.strings], table, name=rule.name)
    if any(s.identifier == "$" for s in rule.strings):
        # anonymous strings cannot be told apart in the sets: no verdict from them
        reqs = Requirements([], parsed=False, complete=False)
    ctx.requirements = reqs
    inlined = sorted({a.owner for st in reqs.sets for a in st if a.owner})
    strings_ind = {"": own} | {n: _string_indicators(others[n]) for n in inlined if n in others}
    ctx.all_tokens = tokens + [
        t for n in inlined if n in others for t in tokenize_condition(others[n].condition)
    ]
    verdict = _needed_indicators(reqs, strings_ind)
    if verdict is not None:
        ctx.indicators, ctx.free_set = verdict
        ctx.free_sets = [
            st for st in reqs.sets if not any(_atom_indicator(a, strings_ind) for a in st)
        ]
    if rule.private and not ctx.indicators:
        # A private rule is a helper: it is judged by the rules that use it.
        users = [others[n] for n in index.users.get(rule.name, ()) if n != rule.name]
        if users:
            credit: list[str] = []
            for user in users:
                ureqs = requirements(
                    user.condition, [s.identifier for s in user.strings], table, user.name
                )
                uinl = sorted(
                    {a.owner for st in ureqs.sets for a in st if a.owner}
                    | {t.text for t in tokenize_condition(user.condition) if t.text in others}
                )
                uind = {"": _string_indicators(user)} | {
                    n: (own if n == rule.name else _string_indicators(others[n]))
                    for n in uinl
                    if n in others or n == rule.name
                }
                uverdict = _needed_indicators(ureqs, uind)
                if not uverdict or not uverdict[0]:
                    credit = []
                    break
                credit.append(f"every rule using it needs one ({user.name}: {uverdict[0][0]})")
            if credit:
                ctx.indicators = credit
                ctx.free_set = ""
    # Document targeting.
    m = _DOC_MAGIC.search(rule.condition)
    if m:
        ctx.doc_targeting.append(f"condition checks document magic {m.group(0)}")
    for s in rule.strings:
        for c in cands[s.identifier]:
            mm = _DOC_MARKER_RE.search(c.text.lower())
            if mm:
                ctx.doc_targeting.append(f"{s.identifier} looks for {mm.group(0)!r}")
                break
        if s.kind == "hex":
            raw = s.data.decode("latin-1")
            for runs in hex_sequences(raw)[:4]:
                if any(marker in r for r in runs for marker in _DOC_HEX):
                    ctx.doc_targeting.append(f"{s.identifier} is a document header")
                    break
    # Externals and file-name targeting.
    names = set(rule_names)
    loops = _loop_vars(tokens)
    for i, t in enumerate(tokens):
        if t.kind != "ident" or "." in t.text or t.text in _KEYWORDS:
            continue
        if t.text in names or t.text in loops:
            continue
        if i + 1 < len(tokens) and tokens[i + 1].text in ("(", "["):
            continue  # a function call or an array
        if i > 0 and tokens[i - 1].text == ".":
            continue  # a field of a structure (pe.signatures[i].serial)
        if t.text in STANDARD_EXTERNALS or t.text.lower() in lex.IDENTITY_EXTERNALS:
            ctx.externals.add(t.text)
    for lhs, _op, lit in _comparisons(tokens):
        if lhs in ("filename", "filepath", "extension", "filetype"):
            for lit_text in _literal_texts(lit):
                if _DOC_EXT_END.search(lit_text) or (
                    lhs in ("extension", "filetype") and _is_doc_type(lit_text)
                ):
                    ctx.doc_targeting.append(f"condition compares {lhs} with {lit_text!r}")
                    break
    return ctx


@dataclass
class _FileIndex:
    rules: dict[str, Rule]
    table: dict[str, tuple[str, list[str]]]
    users: dict[str, list[str]]  # rule name -> the rules whose condition names it


_LAST_INDEX: list[tuple[object, _FileIndex]] = []


def _file_index(file_rules: Iterable[Rule]) -> _FileIndex:
    """Built once per file (the last one is kept, by identity): a file of 7,600
    rules must not cost 7,600 times its size."""
    if _LAST_INDEX and _LAST_INDEX[0][0] is file_rules:
        return _LAST_INDEX[0][1]
    rules = {r.name: r for r in file_rules}
    users: dict[str, list[str]] = {}
    for r in rules.values():
        for t in {t.text for t in tokenize_condition(r.condition) if t.kind == "ident"}:
            if t in rules:
                users.setdefault(t, []).append(r.name)
    index = _FileIndex(
        rules,
        {r.name: (r.condition, [s.identifier for s in r.strings]) for r in rules.values()},
        users,
    )
    _LAST_INDEX[:] = [(file_rules, index)]
    return index


def _readable(run: bytes) -> bool:
    """Whether bytes written in hex are text in some encoding (UTF-8, UTF-16,
    a legacy code page) or hide text under a XOR key -- then they are not
    code, and not a malicious indicator."""
    for text, enc in bytes_to_texts(run):
        if enc == "latin-1":
            continue
        good = sum(
            ch.isalnum()
            or ch.isspace()
            or ch in ".,:;-/()'\""
            or unicodedata.category(ch).startswith("M")  # Thai, Khmer, Devanagari vowel signs
            for ch in text
        )
        if text and good >= 0.8 * len(text) and sum(ch.isalpha() for ch in text) >= 2:
            return True
    if any(dist for t, _enc in utf16_texts(run) for _m, _g, dist in find_markings(t)):
        return True
    return bool(_xor_hits(run))


def _is_doc_type(text: str) -> bool:
    return text.strip(". ").lower() in lex.DOC_EXTENSIONS or text.strip().upper() in (
        "DOC",
        "DOCX",
        "PDF",
        "RTF",
        "OFFICE",
        "MSOFFICE",
        "XLS",
        "PPT",
        "EML",
    )


_CMP_OPS = frozenset(
    {
        "==",
        "!=",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "iequals",
        "matches",
    }
)


def _comparisons(tokens: list[ConditionToken]) -> list[tuple[str, str, ConditionToken]]:
    """``(identifier, operator, literal)`` triples, in either operand order."""
    out = []
    for i in range(len(tokens) - 2):
        a, op, b = tokens[i], tokens[i + 1], tokens[i + 2]
        if op.text not in _CMP_OPS:
            continue
        if a.kind == "ident" and b.kind in ("str", "regex"):
            out.append((a.text, op.text, b))
        elif b.kind == "ident" and a.kind == "str":
            out.append((b.text, op.text, a))
    return out


def _literal_texts(tok: ConditionToken) -> list[str]:
    if tok.kind == "str":
        return [tok.value.decode("utf-8", "replace")]
    from overt.rules.decode import regex_texts

    return regex_texts(tok.value.decode("utf-8", "replace"))


# -- markings -------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def marking_phrases() -> tuple[str, ...]:
    """Every distinctive marking phrase :func:`find_markings` knows, for fast prefilters
    elsewhere (:mod:`overt.telemetry.samples`): the decision stays with :func:`find_markings`."""
    return tuple(phrase for phrase, _gov, _cs in lex.DISTINCTIVE_MARKINGS)


def find_markings(text: str, nocase: bool = False) -> tuple[tuple[str, str, bool], ...]:
    """Markings in a text: ``((marking, government, distinctive), ...)``.

    ``nocase`` means the pattern matches any case, so it is read upper-cased
    (a case-sensitive acronym such as ``NOFORN`` written ``noforn nocase`` counts).
    """
    if not _WORDISH.search(text):
        return ()
    out: list[tuple[str, str, bool]] = []
    probe = text.upper() if nocase else text
    low = probe.lower()
    for rx, subject in ((_MARK_RE_I, low), (_MARK_RE_CS, probe)):
        for m in rx.finditer(subject):
            first, last = m.group(0)[0], m.group(0)[-1]
            if (_LETTER_CH.match(first) and _is_letter(subject, m.start() - 1)) or (
                _LETTER_CH.match(last) and _is_letter(subject, m.end())
            ):
                continue
            phrase, gov = _MARK_BY_KEY.get(_norm(m.group(0)), (m.group(0), "?"))
            out.append((phrase, gov, True))
    if "/" in probe or ":" in probe:
        for m in _BANNER_RE.finditer(probe):
            out.append((m.group(0), "US (banner/portion syntax)", True))
    if not out:
        bare = re.sub(r"^[\W_]+|[\W_]+$", "", probe)
        if bare in _AMBIGUOUS:
            out.append((bare, _AMBIGUOUS[bare], False))
    return tuple(out)


def _xor_signatures() -> tuple[re.Pattern[str], dict[bytes, bytes]]:
    sigs: dict[bytes, bytes] = {}
    for phrase, _gov, _cs in lex.DISTINCTIVE_MARKINGS:
        if not phrase.isascii() or len(phrase) < 5:
            continue
        for form in {phrase, phrase.lower(), phrase.title()}:
            for raw in (form.encode("ascii"), form.encode("utf-16-le")):
                sig = _diffs(raw)
                sigs.setdefault(sig, raw)
    # Matched as Latin-1 text so that the trie regex builder can be reused.
    rx = re.compile(_trie_regex(sig.decode("latin-1") for sig in sigs))
    return rx, sigs


def _diffs(raw: bytes) -> bytes:
    # XOR of neighbouring bytes does not depend on a single-byte XOR key.
    n = len(raw) - 1
    if n <= 0:
        return b""
    return (int.from_bytes(raw[:-1], "big") ^ int.from_bytes(raw[1:], "big")).to_bytes(n, "big")


_XOR_RX, _XOR_SIGS = _xor_signatures()


def _xor_hits(data: bytes) -> list[tuple[str, int]]:
    """Markings hidden in ``data`` under a single-byte XOR key: ``[(text, key)]``.

    Keys 0x00 and 0x20 (plain text, other letter case) are left to the plain
    detectors.
    """
    out = []
    if len(data) < 5:
        return []
    d = _diffs(data).decode("latin-1")
    for m in _XOR_RX.finditer(d):
        plain = _XOR_SIGS[m.group(0).encode("latin-1")]
        key = data[m.start()] ^ plain[0]
        if key in (0, 0x20):
            continue
        decoded = bytes(b ^ key for b in data[m.start() : m.start() + len(plain)])
        if decoded == plain:
            out.append((plain.decode("utf-16-le") if b"\x00" in plain else plain.decode(), key))
    return out


def _detect_markings(ctx: RuleContext) -> list[Signal]:
    out: list[Signal] = []
    seen: set[tuple[str, str]] = set()

    def add(part: str, line: int, text: str, gov: str, distinctive: bool, how: str) -> None:
        key = (part, text.upper())
        if key in seen:
            return
        seen.add(key)
        if distinctive:
            out.append(
                Signal(
                    "marking",
                    Severity.HIGH,
                    part,
                    line,
                    f"{text} [{how}]",
                    f"matches the {gov} classification/handling marking {text!r}",
                )
            )
        else:
            out.append(
                Signal(
                    "marking-ambiguous",
                    Severity.MEDIUM,
                    part,
                    line,
                    f"{text} [{how}]",
                    f"the whole pattern is {text!r}, a {gov} classification level",
                )
            )

    for s in ctx.rule.strings:
        for c in ctx.cands[s.identifier]:
            for text, gov, dist in find_markings(c.text, c.nocase):
                add(s.identifier, s.line, text, gov, dist, c.how)
        chunks: list[bytes] = []
        if s.kind == "hex":
            for runs in hex_sequences(s.data.decode("latin-1"))[:8]:
                chunks.extend(runs)
        elif s.kind == "text":
            chunks.append(s.data)
        for chunk in chunks:
            for text, key in _xor_hits(chunk):
                add(s.identifier, s.line, text, "hand-XORed", True, f"xor key 0x{key:02x}")
    for c in joined_candidates(list(ctx.rule.strings), ctx.cands):
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
    for c in _cond_literals(ctx.tokens):
        for text, gov, dist in find_markings(c.text, c.nocase):
            add("condition", ctx.rule.condition_line, text, gov, dist, c.how)
    # A lone word is only worth reporting where no full marking was found.
    strong_parts = {s.part for s in out if s.detector == "marking"}
    return [s for s in out if s.detector == "marking" or s.part not in strong_parts]


# -- code names ------------------------------------------------------------------------

_CODENAME = re.compile(
    r"^[A-Z\u0410-\u042F][A-Z0-9\u0410-\u042F]{3,19}(?: [A-Z\u0410-\u042F][A-Z0-9\u0410-\u042F]{2,19})?$"
)
# Programmer's morphemes: an upper-case word built from these is an identifier
# in a binary (GETHOSTBYNAME, PANELPATH), not a code name.
_TECH_MORPHEMES = re.compile(
    r"GET|SET|SEND|RECV|PATH|NAME|HOST|PORT|URL|LIST|START|STOP|INSTALL|PLUGIN|FILE|DIR|"
    r"KEY|REG|PROC|DLL|EXE|CMD|WND|FRM|SOCK|CONN|INIT|LOAD|FIND|READ|WRITE|OPEN|CLOSE|"
    r"SERV|CLIENT|CONF|CFG|DATA|BUF|PTR|HANDLE|THREAD|MUTEX|HOOK|SHELL|TEMP|USER|PASS|"
    r"INFO|VER|RESOURCE|CRYPT|HTTP|TCP|UDP|DNS|FTP|SMB|LDAP|SQL|ADMIN|SYS|WIN|API|"
    r"DHCP|TFTP|RECON|WRAP|UPDATE|UPLOAD|DOWNLOAD|DELETE|CREATE|COPY|MOVE|EXEC|RUN"
)
_VOWELS = set("AEIOUYАЕИОУЫЭЮЯ")


def _looks_like_codename(word: str) -> bool:
    """An upper-case, pronounceable word that is not a programmer's identifier."""
    if not _CODENAME.match(word) or sum(ch.isalpha() for ch in word) < 4:
        return False
    letters = [ch for ch in word if ch.isalpha()]
    if sum(ch in _VOWELS for ch in letters) < 0.25 * len(letters):
        return False
    if re.search(r"[^AEIOUY\s\d\u0410\u0415\u0418\u041e\u0423\u042b\u042d\u042e\u042f]{4,}", word):
        return False  # four consonants in a row: random or an abbreviation
    return not _TECH_MORPHEMES.search(word.replace(" ", ""))


def _detect_codenames(ctx: RuleContext) -> list[Signal]:
    names: list[str] = []
    total = 0
    for s in ctx.rule.strings:
        texts = {
            c.text
            for c in ctx.cands[s.identifier]
            if c.how.split("+")[0] in ("text", "regex", "hex")
        }
        total += max(1, len(texts)) if s.kind == "regex" else 1
        for t in texts:
            word = t.strip()
            if s.has("nocase") or "i" in s.regex_flags:
                word = word.upper() if re.fullmatch(r"[A-Za-z]{5,20}", word) else word
            if _looks_like_codename(word):
                names.append(word)
    distinct = sorted(set(names))
    if len(distinct) >= 4 and len(names) >= 0.6 * max(total, 1):
        shown = ", ".join(distinct[:8]) + (" ..." if len(distinct) > 8 else "")
        if ctx.indicators:
            return [
                Signal(
                    "codename-list",
                    Severity.LOW,
                    "strings",
                    ctx.rule.strings[0].line,
                    shown,
                    f"{len(distinct)} upper-case words make up the patterns, but the rule also has "
                    f"a malicious indicator ({ctx.indicators[0]}): identifiers of the malware",
                    content=False,
                )
            ]
        return [
            Signal(
                "codename-list",
                Severity.HIGH,
                "strings",
                ctx.rule.strings[0].line,
                shown,
                f"{len(distinct)} code-name-like words make up the rule's patterns, "
                "with no malicious indicator",
                content=False,
            )
        ]
    return []


# -- documents ---------------------------------------------------------------------------


def _detect_documents(ctx: RuleContext) -> list[Signal]:
    if not ctx.doc_targeting:
        return []
    words: list[str] = []
    for s in ctx.rule.strings:
        for c in ctx.cands[s.identifier]:
            words.extend(m.group(0).lower() for m in _CONTENT_RE.finditer(c.text))
    for c in _cond_literals(ctx.tokens):
        words.extend(m.group(0).lower() for m in _CONTENT_RE.finditer(c.text))
    target = ctx.doc_targeting[0]
    line = ctx.rule.line
    if words:
        shown = ", ".join(sorted(set(words))[:6])
        if ctx.indicators:
            return [
                Signal(
                    "document-content",
                    Severity.LOW,
                    "strings",
                    line,
                    shown,
                    f"document rule ({target}) names sensitive subjects, but also has a "
                    f"malicious indicator ({ctx.indicators[0]}): lure text in a maldoc rule",
                    content=False,
                )
            ]
        return [
            Signal(
                "document-content",
                Severity.HIGH,
                "strings",
                line,
                shown,
                f"document rule ({target}) looks for sensitive subjects and has no "
                "malicious indicator",
                content=False,
            )
        ]
    if (
        not ctx.indicators
        and not _structural(ctx)
        and all(_wordy(ctx.cands[s.identifier]) for s in ctx.rule.strings)
    ):
        what = "natural-language words" if ctx.rule.strings else "no patterns"
        return [
            Signal(
                "document-only",
                Severity.MEDIUM,
                "condition",
                ctx.rule.condition_line,
                target,
                f"matches documents with {what} and has no malicious indicator at all",
                content=False,
            )
        ]
    return []


def _structural(ctx: RuleContext) -> bool:
    """Whether the condition checks the file's structure beyond its type (a
    format anomaly: more than one integer read, a negation, or a file name
    that is not a document's), which ordinary documents do not have."""
    toks = ctx.all_tokens or ctx.tokens  # helper rules' conditions count too
    reads = sum(1 for t in toks if re.fullmatch(r"u?int(?:8|16|32)(?:be)?", t.text))
    if reads > 1 or any(t.text == "not" for t in toks):
        return True
    for lhs, _op, lit in _comparisons(toks):
        if lhs in ("filename", "filepath", "extension") and not any(
            _DOC_EXT_END.search(t) or _is_doc_type(t) for t in _literal_texts(lit)
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
    return bool(_WORDY.match(text)) or bool(_DOC_MARKER_RE.search(text.lower()))


# -- singling out -------------------------------------------------------------------------

_USER_PATH = re.compile(
    r"(?:[\\/]Users[\\/]|[\\/]Documents and Settings[\\/]|/home/)([^\\/\s*%$?]{2,40})(?=[\\/])",
    re.I,
)
_GENERIC_PROFILES = frozenset(
    {
        "public",
        "default",
        "default user",
        "all users",
        "administrator",
        "admin",
        "user",
        "username",
        "<user>",
        "*",
        "appdata",
        "root",
        "guest",
        "test",
        "%username%",
        "shared",
    }
)
_NAMED_DOC = re.compile(
    r"(?:^|[\\/])[^\\/.\s]?[^\\/]*[A-Za-z0-9][^\\/.]{2,}\.(?:"
    + "|".join(e for e in lex.DOC_EXTENSIONS if e not in ("txt", "csv", "md", "key"))
    + r")\s*$",
    re.I,
)
_UNC = re.compile(r"^\\\\([A-Za-z0-9][A-Za-z0-9\-.]{1,62})\\")


def _detect_singling_out(ctx: RuleContext) -> list[Signal]:
    out: list[Signal] = []
    line = ctx.rule.condition_line
    for name in sorted(ctx.externals):
        if name.lower() in lex.IDENTITY_EXTERNALS:
            out.append(
                Signal(
                    "singling-out",
                    Severity.HIGH,
                    "condition",
                    line,
                    name,
                    f"the condition reads the external variable {name!r}, which identifies "
                    "the machine, user or organisation rather than the file",
                    content=False,
                )
            )
    for lhs, op, lit in _comparisons(ctx.tokens):
        for text in _literal_texts(lit):
            if lhs == "owner":
                if text.strip().lower() in lex.SERVICE_ACCOUNTS:
                    out.append(
                        Signal(
                            "singling-out",
                            Severity.LOW,
                            "condition",
                            line,
                            f"owner {op} {text!r}",
                            f"file owner compared with the service account {text!r}",
                            content=False,
                        )
                    )
                else:
                    out.append(
                        Signal(
                            "singling-out",
                            Severity.HIGH,
                            "condition",
                            line,
                            f"owner {op} {text!r}",
                            f"the condition selects files owned by the account {text!r}",
                        )
                    )
            elif lhs in ("filepath", "filename"):
                m = _USER_PATH.search(text)
                if m and m.group(1).lower() not in _GENERIC_PROFILES:
                    out.append(
                        Signal(
                            "singling-out",
                            Severity.HIGH,
                            "condition",
                            line,
                            f"{lhs} {op} {text!r}",
                            f"the condition selects the profile of user {m.group(1)!r}",
                        )
                    )
                m2 = _UNC.match(text)
                if m2:
                    out.append(
                        Signal(
                            "singling-out",
                            Severity.HIGH,
                            "condition",
                            line,
                            f"{lhs} {op} {text!r}",
                            f"the condition selects files on the machine {m2.group(1)!r}",
                        )
                    )
                if _NAMED_DOC.search(text):
                    out.append(
                        Signal(
                            "singling-out",
                            Severity.HIGH,
                            "condition",
                            line,
                            f"{lhs} {op} {text!r}",
                            "the condition selects one named document",
                        )
                    )
    for s in ctx.rule.strings:
        for c in ctx.cands[s.identifier]:
            m = _USER_PATH.search(c.text)
            if m and m.group(1).lower() not in _GENERIC_PROFILES and ".pdb" not in c.text.lower():
                out.append(
                    Signal(
                        "singling-out",
                        Severity.LOW,
                        s.identifier,
                        s.line,
                        c.text[:80],
                        f"the pattern names the profile folder of user {m.group(1)!r} "
                        "(often the build path of the malware's author)",
                    )
                )
                break
    return out


# -- metadata ------------------------------------------------------------------------------

_ACTION_KEYS = frozenset(
    {"action", "actions", "response", "on_match", "onmatch", "task", "disposition", "mode", "then"}
)
_UPLOAD_VALUE_RE = re.compile("|".join(rf"\b{re.escape(v)}" for v in lex.UPLOAD_VALUES), re.I)


def _truthy(value: str | int | bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return value.strip().lower() not in ("", "false", "no", "0", "none", "off", "disabled")


def _detect_collect_meta(ctx: RuleContext) -> list[Signal]:
    out = []
    for key, value in ctx.rule.metas:
        k = key.lower()
        if k in lex.UPLOAD_KEYS and _truthy(value):
            out.append(
                Signal(
                    "collect-meta",
                    Severity.HIGH,
                    f"meta:{key}",
                    ctx.rule.line,
                    f"{key} = {value!r}",
                    "the metadata asks the engine to upload or collect the matched file",
                    content=False,
                )
            )
        elif k in _ACTION_KEYS and isinstance(value, str) and _UPLOAD_VALUE_RE.search(value):
            out.append(
                Signal(
                    "collect-meta",
                    Severity.HIGH,
                    f"meta:{key}",
                    ctx.rule.line,
                    f"{key} = {value!r}",
                    "the metadata's action uploads or collects the matched file",
                    content=False,
                )
            )
    return out


# -- collection strings (what the required strings are) ----------------------------------

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
    if _MALICIOUS_RE.search(first.lower()):
        return "artefact", "a malware or API token"
    got = classify(first)
    string = next((s for s in ctx.rule.strings if s.identifier == sid), None)
    if string is not None and string.kind != "text" and got.kind != "identifier":
        # Texts read out of hex jumps and regex classes are fragments: only an
        # identifier (or a marking, above) in them is evidence.
        return "artefact", f"{string.kind} fragment"
    return got.kind, got.detail


def _detect_collection(ctx: RuleContext) -> list[Signal]:
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
    first = _set_text(reqs.sets[0])
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


# -- weighing ---------------------------------------------------------------------------------


def escalate(signals: list[Signal], has_indicators: bool) -> list[Signal]:
    """Apply the indicator discount and the two-signal escalation (see module docstring)."""
    adjusted = []
    for s in signals:
        sev = s.severity
        if s.content and has_indicators and sev > Severity.INFO:
            sev = Severity(sev - 1)
            s = Signal(
                s.detector,
                sev,
                s.part,
                s.line,
                s.evidence,
                s.reason + " (lowered: the rule also has malicious indicators)",
                s.content,
            )
        adjusted.append(s)
    # A constructed proof confirms the others; it is not independent evidence.
    strong = {
        s.detector
        for s in adjusted
        if s.severity >= Severity.HIGH and s.detector != "constructed-proof"
    }
    others = {
        s.detector
        for s in adjusted
        if s.severity >= Severity.MEDIUM and s.detector != "constructed-proof"
    }
    if strong and len(others) >= 2:
        adjusted = [
            Signal(
                s.detector,
                Severity.CRITICAL,
                s.part,
                s.line,
                s.evidence,
                s.reason + f" (raised: together with {', '.join(sorted(others - {s.detector}))})",
                s.content,
            )
            if s.severity >= Severity.HIGH
            else s
            for s in adjusted
        ]
    return adjusted


# -- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detector:
    """One kind of finding: its ``name`` (``Finding.detector``), one line of
    ``help`` (SARIF rule descriptors, ``overt rules audit --help``), and
    ``detect`` for a static detector run on each rule (None when the finding is
    emitted by another detector's ``detect`` or by the audit itself)."""

    name: str
    help: str
    detect: Callable[[RuleContext], list[Signal]] | None = None


#: Every kind of finding, in report order. Add a detector with :func:`register_detector`.
DETECTORS: dict[str, Detector] = {}


def register_detector(detector: Detector) -> Detector:
    """Add ``detector`` to :data:`DETECTORS` (a name registered twice is an error).

    Raises:
        ValueError: the name is taken.
    """
    if detector.name in DETECTORS:
        raise ValueError(f"detector {detector.name!r} is already registered")
    DETECTORS[detector.name] = detector
    return detector


for _d in (
    Detector(
        "marking", "A classification or handling marking of some government.", _detect_markings
    ),
    Detector("marking-ambiguous", "A word that is a classification level when written alone."),
    Detector(
        "codename-list", "A list of code-name-like words and nothing else.", _detect_codenames
    ),
    Detector(
        "document-content",
        "Document targeting combined with sensitive subject words.",
        _detect_documents,
    ),
    Detector("document-only", "Matches documents and has no malicious indicator."),
    Detector(
        "singling-out",
        "Selects one user, machine, path, document or organisation.",
        _detect_singling_out,
    ),
    Detector(
        "collect-meta",
        "Metadata asks for the matched file to be uploaded or collected.",
        _detect_collect_meta,
    ),
    Detector(
        "collection-strings",
        "Every way to match needs only natural language, names, identifiers, markings or "
        "code names, and no malicious indicator.",
        _detect_collection,
    ),
    Detector("lying-meta", "The name or meta claims malware over a rule made of document content."),
    Detector("canary-marked", "Fires on marked canary documents but not on their clean twins."),
    Detector("canary-document", "Fires on ordinary (clean) canary documents."),
    Detector("canary-any", "Fires on canary documents and on ordinary executables."),
    Detector(
        "constructed-proof",
        "yara-x fires on a benign file built from one requirement set (the sample is in the "
        "evidence, base64).",
    ),
    Detector(
        "unauditable",
        "A file no parser accepts, beyond the auditor's limits, or that crashed or hung a "
        "parser (or not YARA text at all).",
    ),
    Detector("include-unresolved", "An include that is not in the bundle."),
    Detector(
        "outside-tree", "An include or symlink that leads out of the audited tree (not read)."
    ),
    Detector("compile-error", "A file yara-x does not compile (audited statically only)."),
    Detector("empty-file", "A file with no rules."),
):
    register_detector(_d)


def analyse_rule(
    rule: Rule, rule_names: Iterable[str] = (), file_rules: Iterable[Rule] = ()
) -> tuple[RuleContext, list[Signal]]:
    """Run every static detector on one rule (before escalation).

    A rule with malicious indicators that some requirement set does not need
    says so in its content findings ("matches with $m1 alone ...").
    """
    ctx = rule_context(rule, rule_names, file_rules)
    signals: list[Signal] = []
    for detector in DETECTORS.values():
        if detector.detect is not None:
            signals += detector.detect(ctx)
    if ctx.free_set and ctx.all_indicators:
        note = (
            f" (not lowered: the rule matches with {ctx.free_set}; "
            f"{ctx.all_indicators[0]} is not needed)"
        )
        signals = [
            Signal(s.detector, s.severity, s.part, s.line, s.evidence, s.reason + note, s.content)
            if s.severity >= Severity.MEDIUM
            else s
            for s in signals
        ]
    return ctx, signals
