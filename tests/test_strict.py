"""The strict-parsing primitives every overt format is built on (overt.formats.strict)."""

from __future__ import annotations

import json

import pytest

from overt.errors import FormatError
from overt.formats import strict
from overt.formats.strict import (
    MAX_INT63,
    b64decode_strict,
    b64encode,
    dump_json_canonical,
    json_b64,
    json_int,
    json_list,
    json_members,
    json_str,
    load_json,
    parse_decimal,
)


def test_exported_members() -> None:
    assert set(strict.__all__) == {
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
    }


@pytest.mark.parametrize("text", ["0", "1", "42", str(MAX_INT63)])
def test_canonical_decimals_parse(text: str) -> None:
    assert parse_decimal(text, "n") == int(text)
    assert parse_decimal(text.encode(), "n") == int(text)


@pytest.mark.parametrize(
    "text",
    ["", " 1", "1 ", "+1", "-1", "01", "00", "1_000", "1e3", "0x1", "4\n", "\u0664", "\uff11"],
)
def test_non_canonical_decimals_are_refused(text: str) -> None:
    with pytest.raises(FormatError, match="canonical decimal"):
        parse_decimal(text, "n")
    with pytest.raises(FormatError):
        parse_decimal(text.encode("utf-8"), "n")


def test_decimals_above_the_maximum_are_refused() -> None:
    with pytest.raises(FormatError, match="larger than"):
        parse_decimal(str(MAX_INT63 + 1), "n")
    with pytest.raises(FormatError, match="canonical decimal"):
        parse_decimal("9" * 5000, "n")  # refused before int() sees it
    with pytest.raises(FormatError, match="larger than 7"):
        parse_decimal("8", "n", 7)


def test_base64_has_one_spelling() -> None:
    assert b64decode_strict("AAEC", "b") == b"\x00\x01\x02"
    assert b64decode_strict(b64encode(b"x" * 32), "b", 32) == b"x" * 32
    for bad in ("AAE", "AA E", "AAE=\n", "-_8=", "e31=", "AAEC=", "\ud800AAA", "AAEC\n"):
        with pytest.raises(FormatError):
            b64decode_strict(bad, "b")
    with pytest.raises(FormatError, match="32 bytes"):
        b64decode_strict("AAEC", "b", 32)


def test_json_loads_strictly() -> None:
    assert load_json(b'{"a": [1, "\\ud83d\\ude00"]}', "j", 100) == {"a": [1, "\U0001f600"]}
    for bad, reason in [
        (b'{"a": 1, "a": 2}', "duplicate"),
        (b'{"a": NaN}', "constant"),
        (b"[Infinity]", "constant"),
        (b'"\\ud800"', "surrogate"),
        (b'{"a": ["x", "\\udfff"]}', "surrogate"),
        (b'{"\\uD83D": 1}', "surrogate"),
        (b'["\\ude00\\ud83d"]', "surrogate"),  # a pair in the wrong order
        (b"\xff", "UTF-8"),
        (b"{", "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b" " * 101, "larger than"),
    ]:
        with pytest.raises(FormatError, match=reason):
            load_json(bad, "j", 100 if reason == "larger than" else 1 << 20)


def test_lone_surrogate_never_reaches_an_encoder() -> None:
    # The defect this module closes: json.loads accepts "\ud800" and later .encode() raises.
    assert json.loads('"\\ud800"') == "\ud800"
    with pytest.raises(FormatError) as err:
        load_json(b'{"payloadType": "\\ud800"}', "DSSE envelope", 100)
    assert "\\ud800" in str(err.value)  # the message itself is printable


def test_canonical_json_dump() -> None:
    assert dump_json_canonical({"b": 1, "a": "\u00e9"}) == '{"a":"\u00e9","b":1}'.encode()


def test_field_getters_refuse_wrong_types() -> None:
    assert json_members({"a": 1}, "x", {"a"}, {"b"}) == {"a": 1}
    bad: object
    for bad in ([], {"b": 1}, {"a": 1, "c": 2}):
        with pytest.raises(FormatError, match=r"members|object"):
            json_members(bad, "x", {"a"}, {"b"})
    assert json_str("s", "x", "f") == "s"
    for bad_s in (1, None, "", ["s"]):
        with pytest.raises(FormatError, match="f is not"):
            json_str(bad_s, "x", "f")
    with pytest.raises(FormatError):
        json_str("toolong", "x", "f", max_len=3)
    assert json_int(5, "x", "f") == 5
    for bad_i in (True, False, 1.0, "1", -1, 2**63, None):
        with pytest.raises(FormatError, match="f is not an integer"):
            json_int(bad_i, "x", "f")
    assert json_list([1], "x", "f", max_items=1, nonempty=True) == [1]
    bad_l: object
    for bad_l in ([], [1, 2], {}, "ab"):
        with pytest.raises(FormatError, match="f is not"):
            json_list(bad_l, "x", "f", max_items=1, nonempty=True)
    assert json_b64("AAEC", "x", "f", 3) == b"\x00\x01\x02"
    for bad_b in (3, "AAE", "AAEC\n", "\ud800"):
        with pytest.raises(FormatError, match="f is"):
            json_b64(bad_b, "x", "f", 3)


def test_a_monitor_size_limit_of_5000_digits_is_a_config_error_not_a_value_error() -> None:
    from overt.errors import ConfigError
    from overt.monitor.checks import SizeLimit

    assert SizeLimit.from_arg("4096").limit == 4096
    for bad in ("9" * 5000, "1\n", "\u00b2", "01"):
        with pytest.raises(ConfigError, match="size-limit"):
            SizeLimit.from_arg(bad)
