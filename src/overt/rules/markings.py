"""Classification and handling markings in text, in many governments' registers.

:func:`find_markings` reads a decoded text for the distinctive markings of
:mod:`overt.rules._lexicon` (``TOP SECRET``, ``NOFORN``, ``Geheim``, ``MẬT``...,
any run of spaces, ``_``, ``-``, ``.`` or ``/`` between words, case-folded
unless the marking is a short case-sensitive acronym), the US banner and
portion syntax (``SECRET//NOFORN``, ``(S//NF)``) and, where nothing else is
found, a lone ambiguous level word (``SECRET``). :func:`xor_hits` finds
markings hidden under a one-byte XOR key through key-independent byte
differences.

Example::

    >>> [(m, gov) for m, gov, _dist in find_markings("TOP SECRET//NOFORN")][:2]
    [('TOP SECRET', 'US'), ('NOFORN', 'US')]

Pure: text in, tuples out. The auditor's detectors (:mod:`overt.rules.detectors`)
and the telemetry sampler (:mod:`overt.telemetry.samples`) share it, so there is
one detector of markings.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable

import overt.rules._lexicon as lex

__all__ = [
    "LETTER",
    "could_hold_marking",
    "find_markings",
    "marking_phrases",
    "trie_regex",
    "xor_hits",
]

LETTER = r"A-Za-z\u00C0-\u024F\u0370-\u052F"
_SEP = r"[\s_\-./]*"


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-./]+", "", unicodedata.normalize("NFC", text)).casefold()


_MARK_BY_KEY = {_norm(p): (p, gov) for p, gov, _ in lex.DISTINCTIVE_MARKINGS}


def trie_regex(phrases: Iterable[str], sep: str = "") -> str:
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


def _marking_regex(case_sensitive: bool) -> re.Pattern[str]:
    phrases = [p for p, _, cs in lex.DISTINCTIVE_MARKINGS if cs == case_sensitive]
    if case_sensitive:
        return re.compile(trie_regex(phrases, _SEP))
    # Matched against the lower-cased text without re.I or look-behinds (both
    # are slow per position in ``re``); word boundaries are checked per match.
    return re.compile(trie_regex((p.lower() for p in phrases), _SEP))


_MARK_RE_I = _marking_regex(False)
_MARK_RE_CS = _marking_regex(True)
_LETTER_CH = re.compile(f"[{LETTER}]")
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
_AMBIGUOUS_ANY = re.compile(trie_regex(_AMBIGUOUS))


@functools.lru_cache(maxsize=65536)
def marking_phrases() -> tuple[str, ...]:
    """Every distinctive marking phrase :func:`find_markings` knows, for fast prefilters
    elsewhere (:mod:`overt.telemetry.samples`): the decision stays with :func:`find_markings`."""
    return tuple(phrase for phrase, _gov, _cs in lex.DISTINCTIVE_MARKINGS)


def could_hold_marking(texts: Iterable[tuple[str, bool]]) -> bool:
    """False only when :func:`find_markings` finds nothing in any of the
    ``(text, nocase)`` pairs; one regex pass over them all, instead of one call
    per text (a rule file holds many texts, and few hold a marking).

    Conservative: the texts are joined with NUL, which no marking holds, is no
    letter and is no separator inside a phrase, so a phrase matched in one text
    is matched in the join; a raw match that the boundary checks would refuse
    still answers True.
    """
    # Each text once: a rule's patterns repeat in its split and condition readings.
    probes = list(dict.fromkeys(text.upper() if nocase else text for text, nocase in texts))
    if not probes:
        return False
    joined = "\0".join(probes)
    if _MARK_RE_CS.search(joined) or _MARK_RE_I.search(joined.lower()):
        return True
    if ("/" in joined or ":" in joined) and _BANNER_RE.search(joined):
        return True
    if not _AMBIGUOUS_ANY.search(joined):
        return False  # a level word stripped of its punctuation is a part of the join
    return any(re.sub(r"^[\W_]+|[\W_]+$", "", p) in _AMBIGUOUS for p in probes)


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
    rx = re.compile(trie_regex(sig.decode("latin-1") for sig in sigs))
    return rx, sigs


def _diffs(raw: bytes) -> bytes:
    # XOR of neighbouring bytes does not depend on a single-byte XOR key.
    n = len(raw) - 1
    if n <= 0:
        return b""
    return (int.from_bytes(raw[:-1], "big") ^ int.from_bytes(raw[1:], "big")).to_bytes(n, "big")


_XOR_RX, _XOR_SIGS = _xor_signatures()


def xor_hits(data: bytes) -> list[tuple[str, int]]:
    """Markings hidden in ``data`` under a single-byte XOR key: ``[(text, key)]``.

    Keys 0x00 and 0x20 (plain text, other letter case) are left to the plain
    detectors.
    """
    if len(data) < 5:
        return []
    return list(_xor_hits(data))


@functools.lru_cache(maxsize=4096)
def _xor_hits(data: bytes) -> tuple[tuple[str, int], ...]:
    # Cached: the marking detector and the code-bytes test read the same hex runs.
    out = []
    d = _diffs(data).decode("latin-1")
    for m in _XOR_RX.finditer(d):
        plain = _XOR_SIGS[m.group(0).encode("latin-1")]
        key = data[m.start()] ^ plain[0]
        if key in (0, 0x20):
            continue
        decoded = bytes(b ^ key for b in data[m.start() : m.start() + len(plain)])
        if decoded == plain:
            out.append((plain.decode("utf-16-le") if b"\x00" in plain else plain.decode(), key))
    return tuple(out)
