"""What a YARA string actually matches, as candidate texts a human could read.

A rule that searches for ``TOP SECRET`` need not spell it: it can use
``wide``, ``nocase``, ``xor``, ``base64``, a hex string, a regular expression,
a legacy code page (``cp1251`` Cyrillic, GBK), or split the words over several
patterns. This module turns each :class:`~overt.rules.parse.StringDef` into
:class:`Candidate` texts, each labelled with how it was obtained, so that the
detectors look at what is matched rather than at how it is written::

    >>> from overt.rules.parse import StringDef
    >>> s = StringDef("$a", "hex", b"54 4F 50 [1] 53 45 43 52 45 54", (), 1)
    >>> sorted({c.text for c in candidates(s)})
    ['SEC', 'SECRET', 'TOP', 'TOP SECRET', 'TOPSECRET']

Gaps (``??``, jumps, ``.``, ``\\s+``) become one space, so a marking written
with a wildcard between its words still reads as a phrase. Expansion of
alternatives is capped (:data:`MAX_EXPANSIONS`) so that a hostile rule cannot
make the auditor explode; beyond the cap an alternative is read as a gap.

``xor`` and ``base64`` modifiers are applied by YARA to the text in the source,
so the source text is the candidate. Hand-encoded forms are also decoded: hex
runs whose byte-to-byte XOR differences spell a marking (see
``detectors._xor_hits``), base64 text written out in the source, and hex digits
written as text.

Reference: https://yara.readthedocs.io/en/stable/writingrules.html#strings
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib
import itertools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from overt.rules.parse import StringDef

__all__ = [
    "MAX_EXPANSIONS",
    "Candidate",
    "bytes_to_texts",
    "candidates",
    "hex_sequences",
    "joined_candidates",
    "regex_texts",
    "utf16_texts",
    "wide_texts",
]

#: Most alternative spellings kept per pattern before alternatives become gaps.
MAX_EXPANSIONS = 64


@dataclass(frozen=True, slots=True)
class Candidate:
    """A readable text that a pattern matches, and how it was decoded."""

    text: str
    how: str
    nocase: bool = False


# -- bytes to readable text ----------------------------------------------------

_LEGACY = (
    "cp1251",
    "gb18030",
    "shift_jis",
    "euc-kr",
    "cp1253",
    "cp1255",
    "cp1256",
    "cp1254",
    "cp1258",  # Vietnamese
    "cp874",  # Thai (TIS-620)
    "cp1250",  # Central European
)


# Byte classes counted with bytes.translate (deleting them), in C rather than per byte.
_HIGH_BIT = bytes(range(0x80, 0x100))
_FROM_C0 = bytes(range(0xC0, 0x100))
_ASCII_LETTERS = bytes(range(0x41, 0x5B)) + bytes(range(0x61, 0x7B))


def wide_texts(data: bytes) -> list[tuple[str, str]]:
    """The UTF-16 reading of :func:`bytes_to_texts` alone (``[]`` or one
    ``(text, encoding)``): when every other byte is zero."""
    if len(data) >= 4:
        if data[1::2].count(0) >= len(data) // 2 * 0.9 and data[0::2].count(0) < len(data) // 4:
            return [(data.decode("utf-16-le", "replace"), "utf-16le")]
        if data[0::2].count(0) >= len(data) // 2 * 0.9 and data[1::2].count(0) < len(data) // 4:
            return [(data.decode("utf-16-be", "replace"), "utf-16be")]
    return []


def bytes_to_texts(data: bytes) -> list[tuple[str, str]]:
    """Readable decodings of raw pattern bytes: ``[(text, encoding)]``.

    UTF-8 first; UTF-16 when every other byte is zero (what ``wide`` or a
    hand-written wide hex string produces); legacy code pages only for bytes
    that are not UTF-8 and have the high bit set.
    """
    out = wide_texts(data)
    if not data:
        return out
    try:
        out.append((data.decode("utf-8"), "utf-8"))
        return out
    except UnicodeDecodeError:
        pass
    if len(data) - len(data.translate(None, _HIGH_BIT)) >= 2:
        for enc in _LEGACY:
            try:
                out.append((data.decode(enc), enc))
            except UnicodeDecodeError:
                continue
    out.append((data.decode("latin-1"), "latin-1"))
    return out


# High bytes of UTF-16 code units in Latin, Greek, Cyrillic, Hebrew, Arabic,
# Thai and Lao, Myanmar, Khmer, Vietnamese (Latin Extended Additional),
# general punctuation, CJK symbols and kana, CJK ideographs, Hangul, fullwidth forms.
_SCRIPT_HIGH_BYTES = bytes(
    [
        *range(0x00, 0x07),
        0x0E,
        0x10,
        0x17,
        0x1E,
        0x20,
        0x30,
        *range(0x4E, 0xA0),
        *range(0xAC, 0xD8),
        0xFF,
    ]
)


def utf16_texts(data: bytes) -> list[tuple[str, str]]:
    """UTF-16 readings of bytes in any script (Cyrillic, CJK, Arabic...).

    :func:`bytes_to_texts` only tries UTF-16 for Latin text (every other byte
    zero). These readings are candidates for markings only: random bytes often
    decode to plausible CJK, so they are never evidence that bytes are text.
    """
    out: list[tuple[str, str]] = []
    if len(data) < 4 or len(data) % 2:
        return out
    # Text has its high bytes in the blocks of a few scripts; code bytes do
    # not (random bytes pass with probability 0.53 per code unit: 8% for 8
    # bytes, 0.6% for 16). Checked with
    # bytes.translate, before any decoding.
    for enc, high in (("utf-16-le", data[1::2]), ("utf-16-be", data[0::2])):
        if high.translate(None, _SCRIPT_HIGH_BYTES):
            continue
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        letters = sum(ch.isalpha() or unicodedata.category(ch).startswith("M") for ch in text)
        if letters >= 0.6 * len(text) and any(ord(ch) > 0xFF for ch in text):
            out.append((text, enc.replace("-", "")[:5] + enc[-2:]))
    return out


# -- hex strings ----------------------------------------------------------------

_HEX_TOKENS = re.compile(r"[0-9A-Fa-f]{2}|~?[0-9A-Fa-f?]{2}|\[[^\]]*\]|[()|]|\S")
_IS_BYTE = re.compile(r"[0-9A-Fa-f]{2}")


def _hex_parse(body: str) -> list[object]:
    """Hex body to a tree: bytes, ``None`` for a gap, lists of alternatives."""
    stack: list[list[list[object]]] = [[[]]]
    for tok in _HEX_TOKENS.findall(body):
        cur = stack[-1][-1]
        if len(tok) == 2 and _IS_BYTE.match(tok):
            if cur and isinstance(cur[-1], bytes):
                cur[-1] += bytes.fromhex(tok)
            else:
                cur.append(bytes.fromhex(tok))
        elif tok == "(":
            stack.append([[]])
        elif tok == "|":
            stack[-1].append([])
        elif tok == ")":
            if len(stack) > 1:
                alts = stack.pop()
                stack[-1][-1].append(alts)
        else:  # wildcard, jump, or anything odd: a gap
            cur.append(None)
    while len(stack) > 1:
        alts = stack.pop()
        stack[-1][-1].append(alts)
    return stack[0][0]


def _hex_expand(seq: list[object]) -> list[tuple[bytes | None, ...]]:
    """Expansions of a hex tree as sequences of byte runs and gaps (``None``)."""
    results: list[tuple[bytes | None, ...]] = [()]
    for item in seq:
        parts: list[tuple[bytes | None, ...]]
        if item is None:
            parts = [(None,)]
        elif isinstance(item, bytes):
            parts = [(item,)]
        else:
            assert isinstance(item, list)
            parts = [p for alt in item for p in _hex_expand(alt)]
            if len(parts) * len(results) > MAX_EXPANSIONS:
                parts = [(None,)]
        results = [r + p for r in results for p in parts]
    return results


# The tokens of _HEX_TOKENS, each byte's digits captured (a gap captures "").
_HEX_BYTE_OR_GAP = re.compile(r"([0-9A-Fa-f]{2})|~?[0-9A-Fa-f?]{2}|\[[^\]]*\]|[()|]|\S")


@functools.lru_cache(maxsize=4096)
def hex_sequences(body: str) -> tuple[tuple[bytes, ...], ...]:
    """Each expansion of a hex string, as its fixed byte runs (gaps split runs)."""
    if "(" not in body and "|" not in body and ")" not in body:
        # No alternatives (most hex strings): one expansion, its runs found in C. Bytes
        # are joined with ",", so two commas in a row stand where a gap was.
        tokens = ",".join(_HEX_BYTE_OR_GAP.findall(body))
        found = tuple(bytes.fromhex(r.replace(",", "")) for r in tokens.split(",,") if r.strip(","))
        return (found,) if found else ()
    out = []
    for flat in _hex_expand(_hex_parse(body)):
        runs: list[bytes] = []
        cur = b""
        for part in flat:
            if part is None:
                if cur:
                    runs.append(cur)
                cur = b""
            else:
                cur += part
        if cur:
            runs.append(cur)
        if runs:
            out.append(tuple(runs))
    return tuple(out)


# -- regular expressions ----------------------------------------------------------


def _re_expand(items: Any) -> list[str]:
    """Expand a ``re._parser`` tree into literal texts (gaps as one space)."""
    c = importlib.import_module("re._constants")  # private, but stable since 3.11

    results = [""]
    for op, av in items:
        opts: list[str]
        if op is c.LITERAL:
            opts = [chr(av)]
        elif op is c.IN:
            lits = [chr(v) for o, v in av if o is c.LITERAL]
            opts = lits if len(lits) == len(av) and 0 < len(lits) <= 4 else [" "]
        elif op is c.SUBPATTERN:
            opts = _re_expand(av[-1])
        elif op is c.BRANCH:
            opts = [t for alt in av[1] for t in _re_expand(alt)]
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            inner = _re_expand(sub)
            if lo == 0 and hi == 1:
                opts = ["", *inner]
            elif lo == hi and lo <= 8 and len(inner) == 1:
                opts = [inner[0] * lo]
            elif lo >= 1 and len(inner) == 1 and inner[0] != " ":
                opts = [inner[0] * min(lo, 8) + (" " if hi != lo else "")]
            else:
                opts = [" "]
        elif op is c.AT:
            opts = [""]
        else:  # ANY, NOT_LITERAL, CATEGORY, GROUPREF, ASSERT...: something unknown
            opts = [" "]
        if len(results) * len(opts) > MAX_EXPANSIONS:
            opts = [" "]
        results = [r + o for r in results for o in opts]
    return results


def regex_texts(body: str) -> list[str]:
    """Literal texts a regular expression requires (alternatives expanded).

    Python's own regex parser reads the pattern (YARA's syntax is a subset);
    a pattern it refuses falls back to the literal runs between metacharacters.
    """
    _parser = importlib.import_module("re._parser")

    try:
        tree = _parser.parse(body)
        texts = _re_expand(tree)
    except Exception:  # re.error, RecursionError, or YARA-only syntax
        texts = [" ".join(re.split(r"(?:\\.|[\[\](){}.*+?|^$])+", body))]
    return [re.sub(r" {2,}", " ", t) for t in texts if t.strip()]


# -- strings to candidates -----------------------------------------------------------

_B64_TEXT = re.compile(rb"^[A-Za-z0-9+/]{6,}={0,2}$")
_HEX_TEXT = re.compile(rb"^(?:[0-9A-Fa-f]{2}){6,}$")


def _text_like(data: bytes) -> bool:
    """Whether raw bytes can hold readable text: four ASCII letters, two
    high-bit bytes (legacy code pages, UTF-8), or interleaved zeros (UTF-16).
    Opcode patterns fail this and are only checked for hand-XORed text."""
    if len(data) < 2:
        return False
    letters = len(data) - len(data.translate(None, _ASCII_LETTERS))
    return (
        letters >= 4
        or len(data) - len(data.translate(None, _FROM_C0)) >= 2
        or (len(data) >= 4 and data.count(0) * 3 >= len(data))
    )


def _from_bytes(data: bytes, how: str, nocase: bool) -> list[Candidate]:
    return [
        Candidate(t, f"{how}/{enc}" if enc != "utf-8" else how, nocase)
        for t, enc in bytes_to_texts(data)
    ]


def _hand_encoded(data: bytes, nocase: bool) -> list[Candidate]:
    """Text written in the source as base64 or as hex digits."""
    out: list[Candidate] = []
    if _B64_TEXT.match(data):
        # base64 of a fragment starts at one of three alignments (as YARA's own
        # base64 modifier does); try the text as-is and shifted.
        for pad in (b"", b"A", b"AA", b"AAA"):
            chunk = pad + data.rstrip(b"=")
            if len(chunk) % 4 == 1:
                chunk = chunk[:-1]
            chunk += b"=" * (-len(chunk) % 4)
            try:
                raw = base64.b64decode(chunk, validate=True)[len(pad) :]
            except (binascii.Error, ValueError):
                continue
            printable = sum(32 <= b < 127 or b >= 0xC0 for b in raw)
            if raw and printable >= 0.8 * len(raw):
                out.extend(_from_bytes(raw, "base64-in-source", nocase))
    if _HEX_TEXT.match(data):
        out.extend(_from_bytes(bytes.fromhex(data.decode("ascii")), "hex-in-source", nocase))
    return out


def candidates(s: StringDef) -> list[Candidate]:
    """Every readable text the pattern matches (see the module docstring)."""
    # Rule sets repeat patterns (a quarter of the reference corpora's are
    # duplicates); decoding depends only on the pattern, not on its name. The
    # duplicates are mostly near each other: 4,096 entries get 98% of the hits of
    # 16,384 on the corpora, and each entry holds ~2 kB in each worker.
    return list(_candidates(s.kind, s.data, s.modifiers, s.regex_flags))


@functools.lru_cache(maxsize=4096)
def _candidates(
    kind: str, data: bytes, modifiers: tuple[str, ...], regex_flags: str
) -> tuple[Candidate, ...]:
    s = StringDef("$", kind, data, modifiers, 0, regex_flags)
    nocase = s.has("nocase") or "i" in s.regex_flags
    enc = [
        m.split("(")[0]
        for m in s.modifiers
        if m.split("(")[0] in ("xor", "base64", "base64wide", "wide")
    ]
    how_mod = "+".join(enc)
    out: list[Candidate] = []
    if s.kind == "text":
        how = "text" + (f"+{how_mod}" if how_mod else "")
        out.extend(_from_bytes(s.data, how, nocase))
        out.extend(_hand_encoded(s.data, nocase))
    elif s.kind == "hex":
        seen: set[bytes] = set()
        for runs in hex_sequences(s.data.decode("latin-1")):
            joined = [*runs]
            if len(runs) > 1:
                joined += [b" ".join(runs), b"".join(runs)]
            for chunk in joined:
                if chunk in seen:
                    continue
                seen.add(chunk)
                if _text_like(chunk):
                    out.extend(_from_bytes(chunk, "hex", nocase))
                out.extend(Candidate(t, f"hex/{enc}", nocase) for t, enc in utf16_texts(chunk))
    else:
        body = s.data.decode("utf-8", "replace")
        for text in regex_texts(body):
            if any(ord(ch) > 0xFF for ch in text):
                out.append(Candidate(text, "regex", nocase))
            else:
                out.extend(_from_bytes(text.encode("latin-1"), "regex", nocase))
    return tuple(out)


def joined_candidates(
    strings: list[StringDef], cands: dict[str, list[Candidate]] | None = None, limit: int = 12
) -> list[Candidate]:
    """Texts of patterns split across several strings, read in the order written.

    Adjacent pairs and the whole sequence are joined with and without a space,
    so ``$a = "TOP SEC" $b = "RET"`` reads ``TOP SECRET``.
    """
    texts = []
    for s in strings[:limit]:
        found = cands[s.identifier] if cands is not None else candidates(s)
        texts.append(found[0].text if found else "")
    out: list[Candidate] = []
    for a, b in itertools.pairwise(texts):
        if a and b:
            out.append(Candidate(a + b, "split"))
            out.append(Candidate(a + " " + b, "split"))
    if len(texts) > 2:
        out.append(Candidate(" ".join(texts), "split"))
        out.append(Candidate("".join(texts), "split"))
    return out
