"""Validation patterns must match the whole input: ``$`` also matches before a final newline.

``re.match(r"^[0-9a-f]+$", "ab\\n")`` succeeds, which let statement fields such as
``"9.9.9\\n"`` or a 63-hex-digit sha256 plus a newline through. overt validates
with ``fullmatch`` on patterns without anchors; this test keeps ``$``-anchored
patterns out of ``src/`` (outside the rule heuristics listed below).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import overt

SRC = Path(overt.__file__).parent

#: Modules whose ``$`` patterns are heuristics over YARA rule text (does a string look
#: like base64, like a word?), never the validation of signed, stored or network input.
HEURISTICS = ("rules/detectors/", "rules/decode.py")


def _dollar_patterns(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in {"compile", "match", "search"} or not node.args:
            continue
        if any(
            isinstance(a, ast.Attribute) and a.attr in {"M", "MULTILINE"}
            for a in ast.walk(ast.Tuple(elts=[*node.args[1:], *(k.value for k in node.keywords)]))
        ):
            continue  # a per-line anchor on purpose
        arg = node.args[0]
        text: str | bytes | None = None
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str | bytes):
            text = arg.value
        elif isinstance(arg, ast.JoinedStr) and arg.values:
            last = arg.values[-1]
            if isinstance(last, ast.Constant) and isinstance(last.value, str):
                text = last.value
        if (isinstance(text, str) and text.endswith("$")) or (
            isinstance(text, bytes) and text.endswith(b"$")
        ):
            found.append((node.lineno, repr(text)[:60]))
    return found


def test_no_dollar_anchored_validation_pattern_in_src() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(HEURISTICS):
            continue
        offenders += [f"{rel}:{line} {text}" for line, text in _dollar_patterns(path)]
    assert not offenders, "use fullmatch without '$':\n" + "\n".join(offenders)


def test_the_lint_finds_a_dollar_pattern(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text('import re\nA = re.compile(r"^[0-9]+$")\nB = re.compile(r"x$", re.M)\n')
    assert [line for line, _ in _dollar_patterns(sample)] == [2]


@pytest.mark.parametrize("origin", ["example.com/log\n", "example.com/log\r"])
def test_log_origin_with_a_trailing_newline_is_refused(tmp_path: Path, origin: str) -> None:
    from overt.errors import ConfigError
    from overt.log.log import Log

    with pytest.raises(ConfigError, match="invalid origin"):
        Log.create(tmp_path / "log", origin)


def test_disclosure_fields_with_a_trailing_newline_are_refused() -> None:
    from overt.disclosure.timeline import parse_time
    from overt.errors import FormatError

    assert parse_time("2026-01-02T03:04:05Z").year == 2026
    with pytest.raises(FormatError):
        parse_time("2026-01-02T03:04:05Z\n")
