"""``singling-out``: a condition that picks one user, machine, path, document or organisation.

Reading an identity external variable (``hostname``, ``username``, ``domain``...),
comparing ``owner`` with an account (a service account is low), ``filepath``
or ``filename`` with one user's profile, a UNC host or one named document;
a pattern naming a user's profile folder is low (often the malware author's
build path).
"""

from __future__ import annotations

import re

import overt.rules._lexicon as lex
from overt.rules.context import RuleContext, comparisons, literal_texts
from overt.rules.signals import Detector, Severity, Signal

__all__ = ["DETECTORS", "detect"]

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


def detect(ctx: RuleContext) -> list[Signal]:
    out: list[Signal] = []
    line = ctx.rule.condition_line

    def cond(sev: Severity, evidence: str, why: str, content: bool = True) -> None:
        out.append(Signal("singling-out", sev, "condition", line, evidence, why, content))

    for name in sorted(ctx.externals):
        if name.lower() in lex.IDENTITY_EXTERNALS:
            cond(
                Severity.HIGH,
                name,
                f"the condition reads the external variable {name!r}, which identifies "
                "the machine, user or organisation rather than the file",
                content=False,
            )
    for lhs, op, lit in comparisons(ctx.tokens):
        for text in literal_texts(lit):
            shown = f"{lhs} {op} {text!r}"
            if lhs == "owner":
                if text.strip().lower() in lex.SERVICE_ACCOUNTS:
                    why = f"file owner compared with the service account {text!r}"
                    cond(Severity.LOW, shown, why, content=False)
                else:
                    cond(
                        Severity.HIGH,
                        shown,
                        f"the condition selects files owned by the account {text!r}",
                    )
            elif lhs in ("filepath", "filename"):
                m = _USER_PATH.search(text)
                if m and m.group(1).lower() not in _GENERIC_PROFILES:
                    why = f"the condition selects the profile of user {m.group(1)!r}"
                    cond(Severity.HIGH, shown, why)
                m2 = _UNC.match(text)
                if m2:
                    why = f"the condition selects files on the machine {m2.group(1)!r}"
                    cond(Severity.HIGH, shown, why)
                if _NAMED_DOC.search(text):
                    cond(Severity.HIGH, shown, "the condition selects one named document")
    # One search over all the rule's texts first: a path found in a text is found in
    # their join (most rules name no profile folder).
    paths = _USER_PATH.search("\0".join(c.text for cs in ctx.cands.values() for c in cs))
    for s in ctx.rule.strings:
        for c in ctx.cands[s.identifier] if paths else ():
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


DETECTORS = (
    Detector("singling-out", "Selects one user, machine, path, document or organisation.", detect),
)
