"""What every detector needs to know about one rule, computed once.

:func:`rule_context` decodes a :class:`~overt.rules.parse.Rule`'s strings
(:mod:`overt.rules.decode`), tokenizes its condition, reduces it to
requirement sets (:mod:`overt.rules.requirements`, rules of the same file
inlined) and finds:

- its *malicious indicators* (executable headers or modules, code byte
  patterns, API names, macro or exploit keywords...), kept only when every
  requirement set needs one: a decoy shellcode pattern joined with ``or``
  lowers nothing;
- its *document targeting* (format magic, container part names, document
  extensions in file-name comparisons): legitimate rules look at documents
  all the time, so this alone is never a finding;
- the external variables it reads.

A private rule with no indicator of its own is credited when every public
rule using it needs one. The detectors (:mod:`overt.rules.detectors`) read
the :class:`RuleContext`; this module does no I/O.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import overt.rules._lexicon as lex
from overt.rules.decode import (
    Candidate,
    bytes_to_texts,
    candidates,
    hex_sequences,
    regex_texts,
    utf16_texts,
    wide_texts,
)
from overt.rules.markings import LETTER, find_markings, trie_regex, xor_hits
from overt.rules.parse import ConditionToken, Rule, tokenize_condition
from overt.rules.requirements import Atom, Requirements, requirements

__all__ = [
    "CONTENT_RE",
    "DOC_EXT_END",
    "DOC_MARKER_RE",
    "MALICIOUS_RE",
    "STANDARD_EXTERNALS",
    "RuleContext",
    "comparisons",
    "cond_literals",
    "content_words",
    "is_doc_type",
    "literal_texts",
    "rule_context",
    "set_text",
]

#: External variables YARA front-ends commonly define (THOR, LOKI, ...).
STANDARD_EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner")

CONTENT_RE = re.compile(
    f"(?<![{LETTER}])(?:{trie_regex(w for w in lex.CONTENT_WORDS if w.isascii())})"
    f"|{trie_regex(w for w in lex.CONTENT_WORDS if not w.isascii())}",
    re.I,
)
_SHORT = [t for t in lex.MALICIOUS_TOKENS if re.fullmatch(r"[a-z0-9]{1,5}", t)]
# Both are matched against lower-cased text (see ``_marking_regex``).
MALICIOUS_RE = re.compile(
    rf"\b(?:{trie_regex(_SHORT)})\b|{trie_regex(t for t in lex.MALICIOUS_TOKENS if t not in _SHORT)}"
)
DOC_MARKER_RE = re.compile(trie_regex(lex.DOC_MARKERS))
DOC_EXT_END = re.compile(
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

# Bytes below space or from DEL up: what a code byte pattern holds three of.
_NON_PRINTABLE = bytes([*range(0x20), *range(0x7F, 0x100)])
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

# Operators that compare a string with a string.
_STRING_OPS = (
    "matches",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "iequals",
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
        *_STRING_OPS,
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


def cond_literals(tokens: list[ConditionToken]) -> list[Candidate]:
    out: list[Candidate] = []
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
    binary: set[int] = set()
    for i, s in enumerate(rule.strings):
        if s.kind != "hex":
            continue
        for runs in hex_sequences(s.data.decode("latin-1"))[:4]:
            if any(
                len(r) - len(r.translate(None, _NON_PRINTABLE)) >= 3
                # a document container's own header written in hex is not code
                and not any(r.startswith(h) for h in _DOC_HEADERS)
                and not _readable(r)
                for r in runs
            ):
                binary.add(i)
                break
    texts = [
        (cands[s.identifier] if cands is not None else candidates(s)) if i not in binary else []
        for i, s in enumerate(rule.strings)
    ]
    # One search over the other strings' texts first (NUL is no letter: a token found
    # in a text is found in the join): most rules name no malware token.
    tokens = MALICIOUS_RE.search("\0".join(c.text for cs in texts for c in cs).lower())
    out: dict[str, str] = {}
    for i, s in enumerate(rule.strings):
        if i in binary:
            out[s.identifier] = f"{s.identifier} is a binary/code byte pattern"
            continue
        if s.identifier in out:
            continue
        for c in texts[i] if tokens else ():
            mm = MALICIOUS_RE.search(c.text.lower())
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


def set_text(req_set: frozenset[Atom]) -> str:
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
            return [], set_text(req_set)
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
    markers = DOC_MARKER_RE.search(
        "\0".join(c.text for s in rule.strings for c in cands[s.identifier]).lower()
    )
    for s in rule.strings:
        for c in cands[s.identifier] if markers else ():
            mm = DOC_MARKER_RE.search(c.text.lower())
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
    names = _name_set(rule_names)
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
    for lhs, _op, lit in comparisons(tokens):
        if lhs in ("filename", "filepath", "extension", "filetype"):
            for lit_text in literal_texts(lit):
                if DOC_EXT_END.search(lit_text) or (
                    lhs in ("extension", "filetype") and is_doc_type(lit_text)
                ):
                    ctx.doc_targeting.append(f"condition compares {lhs} with {lit_text!r}")
                    break
    return ctx


_LAST_NAMES: list[tuple[object, frozenset[str]]] = []


def _name_set(rule_names: Iterable[str]) -> frozenset[str]:
    """The rule names of a file as a set, built once per file (the last one is kept,
    by identity): a set per rule cost 7,600 x 7,600 on peid.yar, 1.3 CPU-s."""
    if _LAST_NAMES and _LAST_NAMES[0][0] is rule_names and not isinstance(rule_names, Iterator):
        return _LAST_NAMES[0][1]
    names = frozenset(rule_names)
    _LAST_NAMES[:] = [(rule_names, names)]
    return names


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


# Bytes that are one control character, no letter, space or punctuation, in every
# decoding bytes_to_texts tries but UTF-16 (UTF-8, the code pages, GB18030, Shift JIS
# and EUC-KR never use them inside a multi-byte character).
_CONTROLS = bytes([*range(0x00, 0x09), *range(0x0E, 0x1C), 0x7F])


@functools.lru_cache(maxsize=4096)
def _readable(run: bytes) -> bool:
    """Whether bytes written in hex are text in some encoding (UTF-8, UTF-16,
    a legacy code page) or hide text under a XOR key -- then they are not
    code, and not a malicious indicator."""
    controls = len(run) - len(run.translate(None, _CONTROLS))
    # More than a fifth of controls: no reading but UTF-16 can be 80% text (a text is
    # at most as long as its bytes), so the code pages are not even decoded.
    readings = wide_texts(run) if controls * 5 > len(run) else bytes_to_texts(run)
    for text, enc in readings:
        if enc == "latin-1":
            continue
        good = sum(
            ch.isalnum()
            or ch.isspace()
            or ch in ".,:;-/()'\""
            or unicodedata.category(ch).startswith("M")  # Thai, Khmer, Devanagari vowel signs
            for ch in text
        )
        if text and good >= 0.8 * len(text) and (_in_words(text) or find_markings(text)):
            return True
    if any(dist for t, _enc in utf16_texts(run) for _m, _g, dist in find_markings(t)):
        return True
    return bool(xor_hits(run))


def _in_words(text: str) -> bool:
    """Whether most letters of ``text`` stand in words of four or more letters
    (two in CJK, kana and Hangul; vowel signs count as letters) of one script
    (Latin, or not); a shorter marking is found by name (:func:`_readable`). Machine code read in a legacy code page gives
    lone letters between controls: ``0D C0 A0 E1 00 D8 2D E9``, ARM's ``mov ip, sp;
    push ...``, is CR, a letter, NBSP, a letter, NUL, a letter, ``-``, a letter in
    cp1251, and x86's ``push ebp; mov ebp, esp`` a Latin ``U`` run into Cyrillic
    letters, or ``U``, a per mille sign and three Arabic letters in cp1256; a marking
    in cp1251 is one word."""
    letters = in_words = run = 0
    ideographs = False  # CJK, kana, Hangul: a word is one or two characters
    scripts = 0  # 1: Latin letters seen in the run, 2: others (a word is not of both)
    for ch in text + " ":
        if ch.isalpha() or unicodedata.category(ch).startswith("M"):
            run += 1
            o = ord(ch)
            ideographs |= o >= 0x2E80
            if ch.isalpha():
                scripts |= 1 if o < 0x250 or 0x1E00 <= o < 0x1F00 else 2
            continue
        letters += run
        word = (run >= 4 or (ideographs and run >= 2)) and scripts != 3
        in_words += run if word else 0
        run, ideographs, scripts = 0, False, 0
    return letters >= 2 and in_words >= 0.5 * letters


def is_doc_type(text: str) -> bool:
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


_CMP_OPS = frozenset({"==", "!=", *_STRING_OPS})


def comparisons(tokens: list[ConditionToken]) -> list[tuple[str, str, ConditionToken]]:
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


def literal_texts(tok: ConditionToken) -> list[str]:
    if tok.kind == "str":
        return [tok.value.decode("utf-8", "replace")]
    return regex_texts(tok.value.decode("utf-8", "replace"))


def content_words(ctx: RuleContext) -> list[str]:
    """Sensitive-subject words (:data:`overt.rules._lexicon.CONTENT_WORDS`) in the
    rule's decoded strings and condition literals, lower-cased, in order."""
    words: list[str] = []
    texts = [c.text for s in ctx.rule.strings for c in ctx.cands[s.identifier]]
    texts += [c.text for c in cond_literals(ctx.tokens)]
    for text in texts:
        words.extend(m.group(0).lower() for m in CONTENT_RE.finditer(text))
    return words
