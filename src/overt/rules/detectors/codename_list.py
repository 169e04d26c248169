# ruff: noqa: RUF001  -- Cyrillic vowels on purpose
"""``codename-list``: a rule made of code-name-like words and nothing else.

Upper-case, pronounceable words (at least a quarter vowels, no run of four
consonants) that are not built from a programmer's morphemes (``GETHOSTBYNAME``
is an identifier in a binary). Four or more distinct ones making up most of the
patterns are high with no malicious indicator, low with one (then they are
the malware's own identifiers).
"""

from __future__ import annotations

import re

from overt.rules.context import RuleContext
from overt.rules.signals import Detector, Severity, Signal

__all__ = ["DETECTORS", "detect"]

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


def detect(ctx: RuleContext) -> list[Signal]:
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


DETECTORS = (Detector("codename-list", "A list of code-name-like words and nothing else.", detect),)
