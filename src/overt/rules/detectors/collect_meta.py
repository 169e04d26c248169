"""``collect-meta``: metadata asking the engine to upload or collect the matched file.

An upload key set to a true value (``upload = true``, ``collect: yes``), or an
action key whose value uploads (``action = "upload to ..."``).
"""

from __future__ import annotations

import re

import overt.rules._lexicon as lex
from overt.rules.context import RuleContext
from overt.rules.signals import Detector, Severity, Signal

__all__ = ["DETECTORS", "detect"]

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


def detect(ctx: RuleContext) -> list[Signal]:
    out = []
    for key, value in ctx.rule.metas:
        k = key.lower()
        if k in lex.UPLOAD_KEYS and _truthy(value):
            why = "the metadata asks the engine to upload or collect the matched file"
        elif k in _ACTION_KEYS and isinstance(value, str) and _UPLOAD_VALUE_RE.search(value):
            why = "the metadata's action uploads or collects the matched file"
        else:
            continue
        out.append(
            Signal(
                "collect-meta",
                Severity.HIGH,
                f"meta:{key}",
                ctx.rule.line,
                f"{key} = {value!r}",
                why,
                content=False,
            )
        )
    return out


DETECTORS = (
    Detector(
        "collect-meta", "Metadata asks for the matched file to be uploaded or collected.", detect
    ),
)
