"""Parse YARA rule files into a small, parser-independent syntax model.

A YARA file is (https://yara.readthedocs.io/en/stable/writingrules.html)::

    file      = { import | include | rule }
    import    = "import" STRING
    include   = "include" STRING
    rule      = ["private"] ["global"] "rule" IDENT [":" IDENT...] "{"
                  ["meta:" { IDENT "=" (STRING | INT | BOOL) }]
                  ["strings:" { "$" [IDENT] "=" (STRING | HEX | REGEX) {modifier} }]
                  "condition:" expression "}"

Example::

    >>> f = parse_source('rule r { strings: $a = "TOP SECRET" wide condition: $a }', "x.yar")
    >>> f.rules[0].strings[0].data, f.rules[0].strings[0].modifiers
    (b'TOP SECRET', ('wide',))

The primary parser is yaramod (exact string bytes, modifiers, locations). When
yaramod refuses a file -- typically because the condition reads an external
variable (``filename``, ``owner``...) that yaramod cannot declare, or because a
rule refers to a rule from an include that could not be resolved -- plyara is
used instead; it does not type-check, so such files are still audited. Only when
both refuse is the file reported as unauditable.

Includes are never followed by the parsers (yaramod would open the named file
itself): :func:`find_includes` lists them, wherever they stand, and the caller
(``audit``) audits each included file of the bundle as a file of its own. The
include directives are blanked (same length, newlines kept, so line numbers
stay exact) before parsing. Untrusted text is measured first
(:mod:`overt.rules.limits`) and parsed only in a worker process
(:mod:`overt.rules._sandbox`).

Versioning: this model only grows fields; the ``parser`` field names which
parser produced a :class:`Rule`.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from overt.errors import FormatError
from overt.rules.limits import DEFAULT_LIMITS, Include, Limits, exceeded, measure

__all__ = [
    "MAX_FILE_BYTES",
    "ConditionToken",
    "ParsedFile",
    "Rule",
    "RuleParseError",
    "StringDef",
    "blank_includes",
    "decode_source",
    "find_includes",
    "parse_source",
    "tokenize_condition",
    "unescape_yara",
]

#: Files larger than this are refused as unauditable (the largest real rule
#: file in the reference corpora is well under 1 MiB).
MAX_FILE_BYTES = 8 * 1024 * 1024


class RuleParseError(FormatError):
    """A rule file that no parser accepts (or that is not YARA text at all)."""

    def __init__(self, path: str, reason: str, data: bytes | str = b"") -> None:
        self.path = path
        self.detail = reason
        super().__init__("YARA rule file", f"{path}: {reason}", data)


@dataclass(frozen=True)
class StringDef:
    """One ``$id = ...`` pattern.

    ``kind`` is ``text``, ``hex`` or ``regex``. ``data`` is the exact byte text
    for ``text`` strings (escapes resolved), and the body as written for ``hex``
    (between the braces) and ``regex`` (between the slashes). ``modifiers``
    holds each modifier as written (``"xor(1-255)"``, ``"wide"``).
    """

    identifier: str
    kind: str
    data: bytes
    modifiers: tuple[str, ...]
    line: int
    regex_flags: str = ""

    def has(self, modifier: str) -> bool:
        """Whether a modifier (by name, arguments ignored) is present."""
        return any(m == modifier or m.startswith(modifier + "(") for m in self.modifiers)

    @property
    def source(self) -> str:
        """The pattern as a YARA author would write it (for reports and diffs)."""
        if self.kind == "hex":
            body = "{ " + self.data.decode("latin-1") + " }"
        elif self.kind == "regex":
            body = "/" + self.data.decode("utf-8", "backslashreplace") + "/" + self.regex_flags
        else:
            body = '"' + _escape_text(self.data) + '"'
        return " ".join([body, *self.modifiers])


@dataclass(frozen=True)
class Rule:
    """One rule, independent of the parser that read it."""

    name: str
    path: str
    line: int
    tags: tuple[str, ...]
    metas: tuple[tuple[str, str | int | bool], ...]
    strings: tuple[StringDef, ...]
    condition: str
    condition_line: int
    private: bool = False
    global_: bool = False
    imports: tuple[str, ...] = ()
    parser: str = "yaramod"

    def meta(self, key: str) -> list[str | int | bool]:
        return [v for k, v in self.metas if k == key]


@dataclass(frozen=True)
class ParsedFile:
    """The rules of one file, its includes and the parser used."""

    path: str
    rules: tuple[Rule, ...]
    includes: tuple[tuple[int, str], ...] = ()
    parser: str = "yaramod"
    notes: tuple[str, ...] = field(default_factory=tuple)


# -- text helpers -------------------------------------------------------------

_ESC = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", '"': b'"', "'": b"'", "0": b"\x00"}


def unescape_yara(text: str) -> bytes:
    r"""Resolve the escapes YARA allows in text strings (``\n \t \r \\ \" \xNN``).

    Non-ASCII characters are taken as UTF-8, as YARA does with source files.
    An unknown or truncated escape is kept as written (YARA would reject the
    rule; the compile step reports that separately).
    """
    if "\\" not in text:  # most strings: UTF-8 encodes code point by code point
        return text.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != "\\" or i + 1 >= n:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", text[i + 2 : i + 4]):
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        elif nxt in _ESC:
            out += _ESC[nxt]
            i += 2
        else:
            out += ("\\" + nxt).encode("utf-8", "surrogateescape")
            i += 2
    return bytes(out)


def _escape_text(data: bytes) -> str:
    out = []
    for b in data:
        c = chr(b)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(c)
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def decode_source(path: str, data: bytes) -> str:
    """Bytes of a rule file to text, refusing what cannot be YARA source.

    Raises:
        RuleParseError: empty, too large, or binary (NUL bytes) input.
    """
    if len(data) > MAX_FILE_BYTES:
        raise RuleParseError(path, f"file too large ({len(data)} bytes > {MAX_FILE_BYTES})")
    if b"\x00" in data:
        raise RuleParseError(path, "binary data (NUL bytes), not YARA source", data[:40])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # YARA itself reads bytes; legacy rule files are often Latin-1.
        text = data.decode("latin-1")
    return text.removeprefix("\ufeff")


def find_includes(text: str) -> list[tuple[int, str]]:
    """``(line, target)`` of every ``include "..."`` directive, wherever it stands
    (:func:`overt.rules.limits.measure` finds them outside comments and strings)."""
    return [(inc.line, inc.target) for inc in measure(text).includes]


def blank_includes(text: str, includes: Iterable[Include] | None = None) -> str:
    """Replace include directives with spaces (newlines kept, so lines stay exact).

    yaramod and yara-x would open the named file themselves (``/etc/passwd``,
    ``/proc/self/environ``): no text reaches them with an include left in it.
    """
    spans = sorted(
        ((i.start, i.end) for i in (measure(text).includes if includes is None else includes)),
        reverse=True,
    )
    for start, end in spans:
        text = text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]
    return text


# -- condition tokens -----------------------------------------------------------


@dataclass(frozen=True)
class ConditionToken:
    """One token of a condition: kind is str, regex, ident, num, strref or op."""

    kind: str
    text: str
    value: bytes = b""


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<strref>[$#@!][A-Za-z0-9_]*\*?)
  | (?P<num>0x[0-9A-Fa-f]+|0o[0-7]+|[0-9]+(?:\.[0-9]+)?(?:KB|MB)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|<<|>>|\.\.|[-+*\\%&|^~<>()\[\],.:=/])
    """,
    re.X | re.S,
)
_REGEX_LIT = re.compile(r"/((?:[^/\\\n]|\\.)+)/([a-z]*)")


# After a value a ``/`` divides; anywhere else (after ``matches``, ``(``, ``,``, an
# operator or a keyword, as in ``pe.imports(/no-ip/)``) it opens a regex literal.
_VALUE_KINDS = frozenset({"num", "str", "strref", "regex"})


def _regex_may_start(out: list[ConditionToken]) -> bool:
    if not out:
        return True
    last = out[-1]
    if last.kind in _VALUE_KINDS or last.text in (")", "]"):
        return False
    if last.kind == "ident":
        return last.text in ("matches", "and", "or", "not", "in", "of", "at")
    return True


def tokenize_condition(text: str) -> list[ConditionToken]:
    """Tokenize a condition; a ``/.../`` where no value precedes it is a regex
    (a regex literal is never read as identifiers: ``/no-ip/`` holds no ``ip``).

    Unknown characters are kept as one-character ``op`` tokens, so the
    function never fails: the condition has already been accepted by a parser.
    """
    return list(_tokenize(text))


@functools.lru_cache(maxsize=4096)
def _tokenize(text: str) -> tuple[ConditionToken, ...]:
    # Cached: the analysis reads a rule's condition several times (its context, its
    # requirement sets, the file's who-uses-whom index, the rules that use it).
    out: list[ConditionToken] = []
    i = 0
    while i < len(text):
        if text[i] == "/" and _regex_may_start(out):
            m = _REGEX_LIT.match(text, i)
            if m:
                out.append(ConditionToken("regex", m.group(0), m.group(1).encode("utf-8")))
                i = m.end()
                continue
        m = _TOKEN_RE.match(text, i)
        if not m:
            out.append(ConditionToken("op", text[i]))
            i += 1
            continue
        kind = m.lastgroup or "op"
        tok = m.group(0)
        i = m.end()
        if kind == "ws":
            continue
        if kind == "str":
            out.append(ConditionToken("str", tok, unescape_yara(tok[1:-1])))
        else:
            out.append(ConditionToken(kind, tok))
    return tuple(out)


# -- yaramod ------------------------------------------------------------------

_yaramod_instance: object | None = None


def _yaramod() -> object:
    global _yaramod_instance
    if _yaramod_instance is None:
        import yaramod

        _yaramod_instance = yaramod.Yaramod()
    return _yaramod_instance


def _meta_value(raw: str) -> str | int | bool:
    if raw in ("true", "false"):
        return raw == "true"
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", raw):
        return int(raw)
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return unescape_yara(raw[1:-1]).decode("utf-8", "replace")
    return raw


_MODIFIER = re.compile(r'[a-z0-9]+(?:\((?:"(?:[^"\\]|\\.)*"|[^)])*\))?')


def _split_modifiers(text: str) -> tuple[str, ...]:
    # Modifiers are words, some with a parenthesised argument that may hold spaces.
    return tuple(_MODIFIER.findall(text)) if text else ()


#: A file larger than this is given to yaramod a run of rules at a time: yaramod holds
#: ~180 bytes per byte of rule text while it parses (peid.yar, 2.7 MB of hex strings,
#: peaks at 480 MB whole), and the audit's memory is that of its workers.
_SEGMENT_BYTES = 128 * 1024
_IMPORT = re.compile(r'^[ \t]*import[ \t]+"[^"\n]*"', re.M)


def _parse_yaramod(text: str, path: str) -> list[Rule]:
    if len(text) > _SEGMENT_BYTES:
        # Any doubt about a run (yaramod raises its own errors): the whole file, as written.
        with contextlib.suppress(Exception):
            return _parse_yaramod_segments(text, path)
    return _parse_yaramod_text(text, path)


def _parse_yaramod_segments(text: str, path: str) -> list[Rule]:
    """Parse a large file in runs of whole rules, split where a line starts a rule.

    Each run after the first gets the file's imports on one line in front, and its
    line numbers are moved back to the file's. A split that is not between two rules
    (inside a block comment), or a rule naming a rule of an earlier run, makes a run
    fail to parse, and the caller parses the whole file instead.
    """
    starts = [m.start() for m in _RULE_KEYWORD.finditer(text)]
    if not starts:
        raise ValueError("no rule")
    header = " ".join(m.group(0).strip() for m in _IMPORT.finditer(text, 0, starts[0]))
    cuts = [0]
    for pos in starts[1:]:
        if pos - cuts[-1] >= _SEGMENT_BYTES:
            cuts.append(pos)
    cuts.append(len(text))
    rules: list[Rule] = []
    for begin, end in itertools.pairwise(cuts):
        if begin == 0:
            rules += _parse_yaramod_text(text[begin:end], path)
            continue
        shift = text.count("\n", 0, begin) - 1  # the header takes line 1 of the run
        rules += _parse_yaramod_text(header + "\n" + text[begin:end], path, shift)
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError("a rule name repeats across runs")  # yaramod refuses it whole
    return rules


def _parse_yaramod_text(text: str, path: str, shift: int = 0) -> list[Rule]:
    """The rules of ``text``, their line numbers moved by ``shift`` (a run of a file)."""
    import yaramod

    ym = _yaramod()
    yfile = ym.parse_string(text)  # type: ignore[attr-defined]
    imports = tuple(m.name for m in yfile.imports)
    rules: list[Rule] = []
    for r in yfile.rules:
        strings: list[StringDef] = []
        for s in r.strings:
            stype = s.type
            mods = _split_modifiers(s.modifiers_text)
            if stype == yaramod.StringType.Hex:
                kind, data, flags = "hex", s.pure_text, ""
            elif stype == yaramod.StringType.Regexp:
                kind, data = "regex", s.pure_text
                body_text = s.text[: len(s.text) - len(s.modifiers_text)].rstrip()
                flags = body_text[body_text.rfind("/") + 1 :]
            else:
                kind, data, flags = "text", s.pure_text, ""
            if isinstance(data, str):
                data = data.encode("utf-8", "surrogateescape")
            strings.append(
                StringDef(
                    s.identifier, kind, bytes(data), mods, s.location.begin.line + shift, flags
                )
            )
        metas = tuple((m.key, _meta_value(m.value.text)) for m in r.metas)
        cond = r.condition
        rules.append(
            Rule(
                name=r.name,
                path=path,
                line=r.location.begin.line + shift,
                tags=tuple(r.tags),
                metas=metas,
                strings=tuple(strings),
                condition=cond.text,
                condition_line=cond.token_first.location.begin.line + shift,
                private=r.is_private,
                global_=r.is_global,
                imports=imports,
                parser="yaramod",
            )
        )
    return rules


# -- plyara -------------------------------------------------------------------


_plyara_instance: list[Any] = []  # [Plyara, its LALR parser, a lexer never used]


def _plyara() -> Any:
    # One parser per process, cleared before each file: building one (ply's LALR
    # tables) costs more than parsing a typical file.
    if not _plyara_instance:
        import plyara

        fresh = plyara.Plyara()
        _plyara_instance.extend([fresh, fresh.parser, fresh.lexer.clone()])
    parser, tables, lexer = _plyara_instance
    # What Plyara.__init__ and Plyara.clear() set, but clear() also builds the lexer
    # and the LALR tables again (~40 ms a file): the tables are kept, and the lexer
    # is a copy of one that never ran (its state and line number as new).
    for part in (
        parser.rules,
        parser.current_rule,
        parser.string_modifiers,
        parser.imports,
        parser.includes,
        parser.terms,
        parser.scopes,
        parser.tags,
        parser.comments,
    ):
        part.clear()
    parser.parser = tables
    parser.lexer = lexer.clone()
    parser.lexer.lineno = 1
    parser._raw_input = None
    parser._meta_start = parser._meta_end = None
    parser._strings_start = parser._strings_end = None
    parser._condition_start = parser._condition_end = None
    parser._rule_comments = []
    parser._stringnames = set()
    return parser


def _parse_plyara(text: str, path: str) -> list[Rule]:
    parsed = _plyara().parse_string(text)
    lines = text.split("\n")
    rules: list[Rule] = []
    for r in parsed:
        start = int(r.get("start_line", 1))
        stop = int(r.get("stop_line", start))
        strings: list[StringDef] = []
        for s in r.get("strings", []):
            name = s["name"]
            value: str = s["value"]
            mods = tuple(s.get("modifiers", []) or [])
            line = _find_line(lines, start, stop, re.escape(name) + r"\s*=") or start
            if s.get("type") == "byte":
                strings.append(
                    StringDef(name, "hex", value.strip()[1:-1].strip().encode(), mods, line)
                )
            elif s.get("type") == "regex":
                cut = value.rfind("/")
                body, flags = value[1:cut], value[cut + 1 :]
                strings.append(StringDef(name, "regex", body.encode("utf-8"), mods, line, flags))
            else:
                strings.append(StringDef(name, "text", unescape_yara(value), mods, line))
        metas: list[tuple[str, str | int | bool]] = []
        for item in r.get("metadata", []):
            for k, v in item.items():
                metas.append((str(k), v if isinstance(v, (int, bool)) else str(v)))
        raw_cond = r.get("raw_condition", "condition:")
        cond = raw_cond.split(":", 1)[1].strip() if ":" in raw_cond else raw_cond
        cline = _find_line(lines, start, stop, r"\bcondition\s*:") or start
        scopes = r.get("scopes", [])
        rules.append(
            Rule(
                name=r["rule_name"],
                path=path,
                line=start,
                tags=tuple(r.get("tags", [])),
                metas=tuple(metas),
                strings=tuple(strings),
                condition=cond,
                condition_line=cline,
                private="private" in scopes,
                global_="global" in scopes,
                imports=tuple(r.get("imports", [])),
                parser="plyara",
            )
        )
    return rules


def _find_line(lines: list[str], start: int, stop: int, pattern: str) -> int | None:
    rx = re.compile(pattern)
    for no in range(max(start, 1), min(stop, len(lines)) + 1):
        if rx.search(lines[no - 1]):
            return no
    return None


# Where yaramod would take an include (its grammar allows one only between rules): at the
# start of a line, or right after a rule's closing brace.
_INCLUDE_LIKE = re.compile(r'(?:^|\})[ \t]*include[ \t]*"', re.M)
_RULE_KEYWORD = re.compile(r"^\s*(?:(?:private|global)\s+)*rule\s+[A-Za-z_]", re.M)


def parse_source(text: str, path: str, limits: Limits = DEFAULT_LIMITS) -> ParsedFile:
    """Parse the text of one rule file (includes are listed, not followed).

    The text is measured first (:mod:`overt.rules.limits`): a file nested
    deeper or with a longer condition than ``limits`` allows never reaches a
    parser. Call it on untrusted text only inside a worker process
    (:mod:`overt.rules._sandbox`): a native parser may still crash.

    Raises:
        RuleParseError: the text exceeds the limits, or neither yaramod nor
            plyara accepts it.
    """
    shape = measure(text)
    why = exceeded(shape, limits)
    if why is not None:
        raise RuleParseError(path, why)
    includes = tuple((inc.line, inc.target) for inc in shape.includes)
    body = blank_includes(text, shape.includes) if includes else text
    notes: list[str] = []
    if _INCLUDE_LIKE.search(body):
        # yaramod opens every include it parses. Text that still looks like one after
        # blanking (inside a string, a comment or a regex, as our lexer reads it) goes to
        # plyara only, which never opens a file: no mismatch between our lexer and
        # yaramod's can make yaramod read the auditor's disk.
        notes.append("yaramod: not used (include-like text left after blanking)")
    else:
        try:
            return ParsedFile(path, tuple(_parse_yaramod(body, path)), includes, "yaramod")
        except Exception as err:  # yaramod raises its own ParserError and RuntimeErrors
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            notes.append(f"yaramod: {first}")
    try:
        rules = _parse_plyara(body, path)
    except Exception as err:  # plyara raises ParseTypeError/ParseValueError/others
        notes.append(f"plyara: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
        raise RuleParseError(path, "; ".join(notes)) from err
    if not rules and _RULE_KEYWORD.search(body):
        raise RuleParseError(path, "; ".join([*notes, "plyara: no rule recovered"]))
    return ParsedFile(path, tuple(rules), includes, "plyara", tuple(notes))
