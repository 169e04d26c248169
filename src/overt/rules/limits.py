"""The shape of a rule file, measured before any native parser reads it.

yaramod, plyara and yara-x walk a condition recursively: a ~50 KB file whose
condition is nested 30,000 deep (``((((...))))``, ``not not not ...``) or is a
30,000-term ``and`` chain overflows yaramod's C++ stack (a segmentation fault,
not an exception). :func:`measure` reads the text with a small lexer of its own
(comments, strings, regular expressions and include directives; no recursion)
and :func:`exceeded` says which limit a file passes, so that such a file is
reported as ``unauditable`` without ever reaching a native parser. The worker
processes of :mod:`overt.rules._sandbox` are the second line: whatever still
crashes or hangs a parser takes down a worker, not the caller.

What is measured, per file:

- ``depth``: the deepest nesting of parentheses and prefix operators
  (``not``, ``~``, unary ``-``) in conditions and hex strings, and of groups in
  regular expressions;
- ``condition_tokens``: the most tokens in one rule's condition (a binary chain
  of N terms is N-deep in the parsers' trees);
- ``includes``: every ``include "..."`` directive, wherever it stands on its
  line, with its span (the parsers would open the named file themselves:
  :func:`overt.rules.parse.blank_includes` blanks these spans first).

The defaults sit far above real rules (the deepest of the ~7,000 rules of the
reference corpora nests 7 levels; the longest condition has 794 tokens) and
far below the depth at which yaramod crashes (between 20,000 and 30,000 on an
8 MiB stack).

Example::

    >>> shape = measure('rule r { condition: ((true)) and not false }')
    >>> shape.depth, shape.condition_tokens
    (2, 10)
    >>> exceeded(measure("rule r { condition: " + "(" * 500 + "true" + ")" * 500 + " }"))
    'condition nested 500 deep at line 1 (limit 200)'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Include", "Limits", "Shape", "exceeded", "measure"]


@dataclass(frozen=True)
class Limits:
    """What an audit accepts from one rule file, and the worker processes' budget.

    ``depth`` and ``condition_tokens`` bound the shape (see the module
    docstring). ``memory_bytes`` is each worker's address-space limit
    (``RLIMIT_AS``); a worker call gets ``seconds`` plus ``seconds_per_mib``
    for each MiB of rule text, as wall-clock and as CPU time (``RLIMIT_CPU``).
    """

    depth: int = 200
    condition_tokens: int = 10000
    memory_bytes: int = 3 * 1024**3
    seconds: float = 60.0
    seconds_per_mib: float = 60.0


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Include:
    """One ``include "target"`` directive; ``start:end`` is its span in the text."""

    line: int
    target: str
    start: int
    end: int


@dataclass(frozen=True)
class Shape:
    """What :func:`measure` found (lines are 1-based; 0 when nothing was seen)."""

    depth: int = 0
    depth_line: int = 0
    condition_tokens: int = 0
    condition_line: int = 0
    includes: tuple[Include, ...] = ()


_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v\n]+)
  | (?P<lc>//[^\n]*)
  | (?P<bc>/\*)
  | (?P<str>"[^"\\\n]*(?:\\.[^"\\\n]*)*"?)
  | (?P<ref>[$#@!][A-Za-z0-9_]*\*?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>[0-9][0-9A-Za-z_.]*)
  | (?P<other>[^\s\w"/$#@!(){}=~\-.\[\]]+|.)
    """,
    re.X | re.S,
)
_REGEX = re.compile(r"/[^/\\\n]*(?:\\.[^/\\\n]*)*/[a-zA-Z]*")
# A hex string with no comment or quote in it, read in one step (most of a rule file's
# tokens are hex bytes); one with a "/" or '"' in it is read token by token.
_HEX = re.compile(r'\{[^}/"]*\}')
_REGEX_GROUP = re.compile(r"\\.|[][()]")
_STRING_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)")
_UNARY = frozenset({"not", "~", "-"})
# After these a "-" is binary (a value came before it).
_VALUE_END = frozenset({"num", "word", "str", "regex", ")", "]"})


def _unescape(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] == "x" and len(e) == 3:
            return chr(int(e[1:], 16))
        return {"n": "\n", "t": "\t", "r": "\r"}.get(e, e)

    return _STRING_ESCAPE.sub(one, body)


def _regex_depth(body: str) -> int:
    """Deepest group nesting of a regex (or hex string); brackets hide parentheses."""
    depth = best = 0
    in_class = False
    for m in _REGEX_GROUP.finditer(body):
        tok = m.group(0)
        if in_class:
            in_class = tok != "]"
        elif tok == "[":
            in_class = True
        elif tok == "(":
            depth += 1
            best = max(best, depth)
        elif tok == ")":
            depth = max(depth - 1, 0)
    return best


def measure(text: str) -> Shape:
    """The nesting depth, longest condition and include directives of a rule file.

    Never fails and never recurses: any text gives a :class:`Shape`.
    """
    line = 1
    depth = depth_line = 0
    tokens = tokens_line = 0
    includes: list[Include] = []
    frames: list[int] = []  # the unary run open before each "("
    unary_open = 0  # sum of frames
    run = 0  # consecutive prefix operators right now
    in_condition = False
    cond_tokens = 0
    cond_line = 0
    prev = ""  # kind or text of the last significant token
    pending_include = -1  # start of an "include" keyword waiting for its string
    pending_line = 0
    pos, n = 0, len(text)
    while pos < n:
        if text[pos] == "/" and prev in ("=", "matches"):
            m = _REGEX.match(text, pos)
            if m:
                rd = len(frames) + unary_open + run + _regex_depth(m.group(0))
                if rd > depth:
                    depth, depth_line = rd, line
                pos = m.end()
                prev, run = "regex", 0
                if in_condition:
                    cond_tokens += 1
                continue
        if text[pos] == "{" and prev == "=":
            m = _HEX.match(text, pos)
            if m:
                body = m.group(0)
                hd = len(frames) + unary_open + _regex_depth(body)
                if hd > depth:
                    depth, depth_line = hd, line
                line += body.count("\n")
                pos = m.end()
                prev, run = "str", 0
                continue
        m = _TOKEN.match(text, pos)
        assert m is not None  # "other" matches any character
        kind = m.lastgroup or "other"
        tok = m.group(0)
        start, pos = pos, m.end()
        if kind == "bc":  # found by hand: a regex for it would backtrack on "/* * * *..."
            end = text.find("*/", pos)
            pos = n if end < 0 else end + 2
            line += text.count("\n", start, pos)
            continue
        if kind == "ws":
            line += tok.count("\n")
            continue
        if kind == "lc":
            continue
        if pending_include >= 0:
            target = _unescape(tok[1:-1]) if kind == "str" and len(tok) > 1 else ""
            end = pos if kind == "str" else pending_include + len("include")
            includes.append(Include(pending_line, target, pending_include, end))
            pending_include = -1
            if kind == "str":
                prev = "str"
                continue
        if kind == "word" and tok == "include" and prev != ".":
            pending_include, pending_line = start, line
            continue
        if kind == "word" and tok == "rule":
            in_condition, cond_tokens = False, 0
        elif kind == "word" and tok == "condition" and text.startswith(":", pos):
            in_condition, cond_tokens, cond_line = True, 0, line
            prev = "condition"
            continue
        elif in_condition:
            cond_tokens += 1
            if cond_tokens > tokens:
                tokens, tokens_line = cond_tokens, cond_line
        if tok == "(":
            frames.append(run)
            unary_open += run
            run = 0
            now = len(frames) + unary_open
        elif tok == ")":
            if frames:
                unary_open -= frames.pop()
            run = 0
            now = 0
        elif tok in _UNARY and (tok != "-" or prev not in _VALUE_END):
            run += 1
            now = len(frames) + unary_open + run
        else:
            run = 0
            now = 0
        if now > depth:
            depth, depth_line = now, line
        if kind == "ref":
            prev = "word"
        elif tok in _UNARY or tok == "matches" or kind not in ("num", "word", "str"):
            prev = tok
        else:
            prev = kind
    if pending_include >= 0:
        includes.append(
            Include(pending_line, "", pending_include, pending_include + len("include"))
        )
    return Shape(depth, depth_line, tokens, tokens_line, tuple(includes))


def exceeded(shape: Shape, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """Why a file of this shape must not reach a parser, or None when it may."""
    if shape.depth > limits.depth:
        return (
            f"condition nested {shape.depth} deep at line {shape.depth_line} (limit {limits.depth})"
        )
    if shape.condition_tokens > limits.condition_tokens:
        return (
            f"condition of {shape.condition_tokens} tokens at line {shape.condition_line} "
            f"(limit {limits.condition_tokens})"
        )
    return None
