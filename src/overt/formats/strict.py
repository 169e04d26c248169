"""Strict, canonical parsing primitives: the one home of every overt parser's building blocks.

Signed formats must have exactly one spelling per value, or two parties can
disagree about what was signed (and a lax parser silently drops junk). Every
format module (:mod:`~overt.formats.note`, :mod:`~overt.formats.checkpoint`,
:mod:`~overt.formats.witness`, :mod:`~overt.formats.policy`,
:mod:`~overt.formats.tiles`, :mod:`~overt.formats.dsse`,
:mod:`~overt.formats.statement`, the ``.overt`` bundle, the client policy, the
monitor state) parses its numbers, base64 and JSON through these functions:

- :func:`parse_decimal`: ASCII ``0|[1-9][0-9]*`` (no sign, space, leading zero
  or trailing newline), at most a given maximum; never ``int()`` on raw input.
- :func:`b64decode_strict`: standard alphabet, padding only at the end, and
  the one canonical encoding of the bytes (no stray padding bits), optionally
  of an exact length.
- :func:`load_json`: UTF-8 JSON under a size cap, refusing duplicate member
  names, ``NaN``/``Infinity``, and strings with lone UTF-16 surrogates
  (``"\\ud800"`` decodes to a Python ``str`` that cannot be encoded again, so a
  later ``.encode()`` would raise ``UnicodeEncodeError`` far from the parser).
- :func:`json_members`, :func:`json_str`, :func:`json_int`, :func:`json_list`,
  :func:`json_b64`: typed field getters (a JSON ``true`` is never a number).

Example::

    >>> parse_decimal("42", "tree size")
    42
    >>> load_json(b'{"a": [1, "x"]}', "example", 64)
    {'a': [1, 'x']}

Every failure is a :class:`~overt.errors.FormatError` naming the format, the
field and the offending input.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection
from typing import Any

from overt.errors import FormatError

__all__ = [
    "MAX_INT63",
    "b64decode_strict",
    "b64encode",
    "dump_json_canonical",
    "is_decimal",
    "json_b64",
    "json_int",
    "json_list",
    "json_members",
    "json_str",
    "load_json",
    "parse_decimal",
]

MAX_INT63 = (1 << 63) - 1
"""The largest size or index any overt format accepts (Go's int64, Sunlight, Tessera)."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_DECIMAL_BYTES = re.compile(rb"0|[1-9][0-9]*")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


# --- decimal and base64 ---------------------------------------------------------------


def is_decimal(text: str | bytes) -> bool:
    """Whether ``text`` is a canonical ASCII decimal (``0|[1-9][0-9]*``, nothing else)."""
    if isinstance(text, bytes):
        return _DECIMAL_BYTES.fullmatch(text) is not None
    return _DECIMAL.fullmatch(text) is not None


def parse_decimal(text: str | bytes, what: str, maximum: int = MAX_INT63) -> int:
    """A canonical ASCII decimal: no sign, no spaces, no leading zeros, at most ``maximum``.

    Raises:
        FormatError: anything else (``" 42"``, ``"+1"``, ``"01"``, ``"4\\n"``, ``"٤"``).
    """
    if not is_decimal(text) or len(text) > len(str(maximum)):
        raise FormatError(what, "not a canonical decimal", text)
    value = int(text)
    if value > maximum:
        raise FormatError(what, f"larger than {maximum}", text)
    return value


def b64decode_strict(text: str | bytes, what: str, size: int | None = None) -> bytes:
    """Decode standard base64, refusing anything but the canonical encoding.

    ``base64.b64decode(validate=True)`` still accepts non-zero padding bits, so
    two strings would decode to one value; re-encoding closes that gap.

    Raises:
        FormatError: not base64, not canonical, or not ``size`` bytes when given.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    try:
        # strict_mode: only the alphabet, padding only at the end, nothing after it.
        out = binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError) as err:
        raise FormatError(what, "not base64", text) from err
    # Only the last 4-character group can carry padding bits (a group of 3 bytes maps one to
    # one onto 4 characters), so re-encoding it alone decides canonicity for the whole text.
    tail = out[(len(out) - 1) // 3 * 3 :] if out else b""
    if (
        not raw.endswith(binascii.b2a_base64(tail, newline=False))
        or len(raw) != (len(out) + 2) // 3 * 4
    ):
        raise FormatError(what, "non-canonical base64", text)
    if size is not None and len(out) != size:
        raise FormatError(what, f"not the canonical base64 of {size} bytes", text)
    return out


def b64encode(data: bytes) -> str:
    """Standard padded base64 as text (the one spelling :func:`b64decode_strict` accepts)."""
    return base64.b64encode(data).decode("ascii")


# --- JSON -----------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise FormatError("JSON", f"duplicate member {key!r}")
        obj[key] = value
    return obj


def _lone_surrogate(value: Any) -> str | None:
    """The first string (or member name) in ``value`` holding a lone surrogate, if any."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return item
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def load_json(data: bytes, what: str, max_size: int) -> Any:
    """Decode UTF-8 JSON with a size cap, strictly.

    Raises:
        FormatError: larger than ``max_size``, not UTF-8, not JSON, a duplicate
            member name, ``NaN``/``Infinity``, or a lone UTF-16 surrogate escape.
    """
    if len(data) > max_size:
        raise FormatError(what, f"larger than {max_size} bytes", data[:60])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError(what, "not UTF-8", data[:60]) from err

    def _no_constants(name: str) -> Any:
        raise FormatError(what, f"non-standard JSON constant {name}")

    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except FormatError as err:
        raise FormatError(what, err.reason, data[:60]) from err
    except (ValueError, RecursionError) as err:
        raise FormatError(what, f"not JSON ({err})", data[:60]) from err
    # UTF-8 input cannot hold a surrogate itself: only a \uD800-\uDFFF escape makes
    # one, and a valid pair decodes to one character. Walk only when one is spelled.
    if _SURROGATE_ESCAPE.search(text):
        bad = _lone_surrogate(obj)
        if bad is not None:
            raise FormatError(what, "a string holds a lone UTF-16 surrogate", bad)
    return obj


def dump_json_canonical(obj: Any) -> bytes:
    """Serialize ``obj`` with sorted members, no whitespace, non-ASCII kept as UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _shown(value: object) -> str:
    return value if isinstance(value, str) else repr(value)[:80]


def json_members(
    value: object, what: str, required: Collection[str], optional: Collection[str] = ()
) -> dict[str, Any]:
    """``value`` as a JSON object with every ``required`` member and no unknown one.

    Raises:
        FormatError: not an object, a member missing or unknown.
    """
    if not isinstance(value, dict):
        raise FormatError(what, "not a JSON object", _shown(value))
    keys = set(value)
    missing = sorted(set(required) - keys)
    unknown = sorted(keys - set(required) - set(optional))
    if missing or unknown:
        raise FormatError(what, f"members missing {missing} or unknown {unknown}")
    return value


def json_str(
    value: object, what: str, field: str, *, nonempty: bool = True, max_len: int | None = None
) -> str:
    """``value`` as a string (non-empty unless told, at most ``max_len`` characters).

    Raises:
        FormatError: not such a string.
    """
    if (
        not isinstance(value, str)
        or (nonempty and not value)
        or (max_len is not None and len(value) > max_len)
    ):
        kind = "a non-empty string" if nonempty else "a string"
        raise FormatError(what, f"{field} is not {kind}", _shown(value))
    return value


def json_int(
    value: object, what: str, field: str, minimum: int = 0, maximum: int = MAX_INT63
) -> int:
    """``value`` as an integer in ``[minimum, maximum]`` (never a bool or a float).

    Raises:
        FormatError: anything else.
    """
    if type(value) is not int or not minimum <= value <= maximum:
        raise FormatError(
            what, f"{field} is not an integer in [{minimum}, {maximum}]", _shown(value)
        )
    return value


def json_list(
    value: object, what: str, field: str, *, max_items: int | None = None, nonempty: bool = False
) -> list[Any]:
    """``value`` as a list (non-empty if asked, at most ``max_items`` long).

    Raises:
        FormatError: anything else.
    """
    if (
        not isinstance(value, list)
        or (nonempty and not value)
        or (max_items is not None and len(value) > max_items)
    ):
        limit = f" of at most {max_items} items" if max_items is not None else ""
        kind = "a non-empty list" if nonempty else "a list"
        raise FormatError(what, f"{field} is not {kind}{limit}", _shown(value))
    return value


def json_b64(value: object, what: str, field: str, size: int | None = None) -> bytes:
    """``value`` as canonical standard base64 (of exactly ``size`` bytes when given).

    Raises:
        FormatError: not a string, not base64, not canonical, or the wrong length.
    """
    if not isinstance(value, str):
        raise FormatError(what, f"{field} is not a string", _shown(value))
    try:
        return b64decode_strict(value, what, size)
    except FormatError as err:
        raise FormatError(what, f"{field} is {err.reason}", value) from err
