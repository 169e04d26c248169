"""Proof by construction: a benign sample built from one requirement set.

For a rule with no malicious indicator in some requirement set
(:mod:`overt.rules.requirements`), the auditor writes a small file holding
only what that set asks for -- the decoded strings, in the encoding the rule
expects (``wide`` as UTF-16LE), and the magic bytes its integer reads compare
with -- and no executable content. The dynamic step then runs the compiled
rule on it with yara-x: if it fires, "this rule fires on a benign document
containing only: ..." is evidence a reviewer can reproduce from the sample
(reported base64-encoded).

Example::

    >>> from overt.rules.parse import parse_source
    >>> r = parse_source('rule r { strings: $a = "TOP SECRET" condition: $a }', "x").rules[0]
    >>> build_sample(r, [frozenset({Atom("string", "$a")})])[0][64:]
    b'TOP SECRET\\n'

Pure: bytes in, bytes out, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from overt.rules.parse import Rule, StringDef
from overt.rules.requirements import Atom

__all__ = ["MAX_SAMPLE_BYTES", "build_sample"]

#: A constructed sample never exceeds this size (strings are short; magic at small offsets).
MAX_SAMPLE_BYTES = 64 * 1024

_HEADER = 64  # room for magic bytes at small offsets before the strings
_MAGIC = re.compile(
    r"(u?int)(8|16|32)(be)?\((0x[0-9a-fA-F]+|[0-9]+)\)\s*==\s*(0x[0-9a-fA-F]+|[0-9]+)"
)


def _string_bytes(s: StringDef) -> bytes | None:
    if s.has("xor") or s.has("base64") or s.has("base64wide"):
        return None  # the encoded forms are not built (yet): no proof rather than a wrong one
    if s.kind == "text":
        raw = s.data
    elif s.kind == "hex":
        body = s.data.decode("latin-1")
        if re.search(r"[?\[\]|()~]", body):
            return None  # wildcards, jumps or alternatives
        digits = re.sub(r"\s+", "", body)
        if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", digits):
            return None
        return bytes.fromhex(digits)
    else:
        return None  # a regex: its literal texts are not a match in general
    if s.has("wide") and not s.has("ascii"):
        return raw.decode("utf-8", "surrogateescape").encode("utf-16-le", "surrogatepass")
    return raw


def _magic(text: str) -> tuple[int, bytes] | None:
    m = _MAGIC.fullmatch(text.replace(" ", ""))
    if not m:
        return None
    _sign, bits, be, off, val = m.groups()
    width = int(bits) // 8
    offset = int(off, 0)
    value = int(val, 0)
    if offset + width > _HEADER or value >= 1 << (8 * width):
        return None
    return offset, value.to_bytes(width, "big" if be else "little")


def build_sample(rule: Rule, sets: Iterable[frozenset[Atom]]) -> tuple[bytes, str] | None:
    """A benign sample satisfying the first buildable requirement set, and a
    description of what it holds; None when no set can be built (regexes,
    encoded modifiers, file names, helper rules, offsets beyond the header)."""
    by_id = {s.identifier: s for s in rule.strings}
    for req_set in sets:
        header = bytearray(_HEADER)
        body: list[bytes] = []
        shown: list[str] = []
        ok = True
        for atom in sorted(req_set):
            if atom.kind == "string" and not atom.owner and atom.text in by_id:
                data = _string_bytes(by_id[atom.text])
                if data is None:
                    ok = False
                    break
                body.append(data)
                shown.append(f"{atom.text}={data[:40]!r}")
            elif atom.kind == "magic":
                got = _magic(atom.text)
                if got is None:
                    ok = False
                    break
                offset, raw = got
                header[offset : offset + len(raw)] = raw
                shown.append(f"{raw.hex()} at {offset}")
            elif atom.kind in ("filesize", "not"):
                continue  # a small file; negations are left to the run to confirm
            else:
                ok = False
                break
        if not ok or not body:
            continue
        sample = bytes(header) + b"\n".join(body) + b"\n"
        if len(sample) <= MAX_SAMPLE_BYTES:
            return sample, ", ".join(shown)
    return None
