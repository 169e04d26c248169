"""c2sp.org/tlog-witness wire formats: the spec's examples, round trips, mutation."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import FormatError, OvertError
from overt.formats import witness as witness_module
from overt.formats.checkpoint import parse_checkpoint
from overt.formats.cosignature import cosignature_timestamp
from overt.formats.merkle import verify_consistency
from overt.formats.note import Signature
from overt.formats.witness import (
    CONTENT_TYPE_SIZE,
    MAX_PROOF_LINES,
    MAX_REQUEST_SIZE,
    AddCheckpointRequest,
    format_add_checkpoint,
    format_cosignature_lines,
    format_size_body,
    parse_add_checkpoint,
    parse_cosignature_lines,
    parse_size_body,
)

from .simulators import LogSimulator

SPEC_ORIGIN = "example.com/behind-the-sofa"


def _indented_block(spec: str, after: str) -> bytes:
    """The 4-space indented example that follows ``after`` in the spec, as bytes."""
    start = spec.index(after) + len(after)
    lines: list[str] = []
    for line in spec[start:].lstrip("\n").split("\n"):
        if line.startswith("    "):
            lines.append(line[4:])
        elif line == "" and lines:
            lines.append("")
        else:
            break
    while lines and lines[-1] == "":
        lines.pop()
    return "".join(line + "\n" for line in lines).encode()


@pytest.fixture(scope="module")
def spec(reference: Path) -> str:
    return (reference / "specs/c2sp/tlog-witness.md").read_text("utf-8")


@pytest.fixture(scope="module")
def spec_request(spec: str) -> bytes:
    return _indented_block(spec, "Example request body:\n")


def mutations(data: bytes) -> Iterator[bytes]:
    """Every truncation; every single-bit flip and a few syntax bytes at every position."""
    for i in range(len(data)):
        yield data[:i]
    for i, byte in enumerate(data):
        values = {byte ^ (1 << bit) for bit in range(8)} | set(b"\n +=\x00A/0")
        for v in sorted(values - {byte}):
            yield data[:i] + bytes([v]) + data[i + 1 :]


def assert_mutations_rejected_or_distinct(data: bytes, parse: Callable[[bytes], object]) -> None:
    """No mutation parses back to the same value, and whatever parses is canonical."""
    original = parse(data)
    for mutated in mutations(data):
        try:
            result = parse(mutated)
        except OvertError:
            continue
        assert result != original, f"mutation accepted as the same request: {mutated!r}"


def test_exported_members() -> None:
    assert set(witness_module.__all__) == {
        "CONTENT_TYPE_SIZE",
        "MAX_PROOF_LINES",
        "MAX_REQUEST_SIZE",
        "MAX_SUBTREE_REQUEST_SIZE",
        "AddCheckpointRequest",
        "SignSubtreeRequest",
        "format_add_checkpoint",
        "format_cosignature_lines",
        "format_sign_subtree",
        "format_size_body",
        "parse_add_checkpoint",
        "parse_cosignature_lines",
        "parse_sign_subtree",
        "parse_size_body",
    }
    for name in witness_module.__all__:
        assert hasattr(witness_module, name)


# --- the spec's examples ----------------------------------------------------------


def test_spec_example_request_parses(spec_request: bytes) -> None:
    request = parse_add_checkpoint(spec_request)
    assert request.old_size == 20852014
    assert len(request.proof) == 4
    assert request.proof[0] == base64.b64decode("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=")
    assert request.checkpoint.startswith(b"example.com/behind-the-sofa\n20852163\n")
    checkpoint = parse_checkpoint(request.note.text)
    assert (checkpoint.origin, checkpoint.size) == (SPEC_ORIGIN, 20852163)
    assert [s.name for s in request.note.signatures] == [SPEC_ORIGIN, SPEC_ORIGIN]


def test_spec_example_request_round_trips(spec_request: bytes) -> None:
    assert format_add_checkpoint(parse_add_checkpoint(spec_request)) == spec_request


def test_spec_example_request_mutations_are_rejected(spec_request: bytes) -> None:
    assert_mutations_rejected_or_distinct(spec_request, parse_add_checkpoint)


def test_spec_example_proof_is_only_four_hashes_of_a_longer_proof(spec_request: bytes) -> None:
    # The example is illustrative: a real proof from 20852014 to 20852163 is longer,
    # so the verifier refuses it on its length before hashing anything.
    request = parse_add_checkpoint(spec_request)
    cp = parse_checkpoint(request.note.text)
    with pytest.raises(OvertError, match="expected"):
        verify_consistency(request.old_size, cp.size, b"\0" * 32, cp.root_hash, request.proof)


def test_spec_example_response_parses(spec: str) -> None:
    body = _indented_block(spec, "Example response body:\n")
    signatures = parse_cosignature_lines(body)
    assert [s.name for s in signatures] == [
        "witness.example/w1",
        "witness.example/w1",
        "witness.example/w2",
    ]
    assert format_cosignature_lines(signatures) == body
    assert_mutations_rejected_or_distinct(body, parse_cosignature_lines)


# --- requests built by a log ----------------------------------------------------------


@pytest.fixture(scope="module")
def log() -> LogSimulator:
    log = LogSimulator("format.example/log")
    log.grow(13)
    return log


def test_request_from_size_zero_has_no_proof_lines(log: LogSimulator) -> None:
    body = log.body(0)
    assert body.startswith(b"old 0\n\nformat.example/log\n13\n")
    request = parse_add_checkpoint(body)
    assert request == AddCheckpointRequest(0, (), log.checkpoint())


@pytest.mark.parametrize("old", [1, 2, 5, 8, 12, 13])
def test_request_round_trips(log: LogSimulator, old: int) -> None:
    body = log.body(old)
    request = parse_add_checkpoint(body)
    assert request.old_size == old
    assert list(request.proof) == log.proof(old)
    assert format_add_checkpoint(request) == body


def test_request_mutations_are_rejected(log: LogSimulator) -> None:
    assert_mutations_rejected_or_distinct(log.body(5), parse_add_checkpoint)


@settings(max_examples=50, deadline=None)
@given(
    old=st.integers(0, (1 << 63) - 1),
    proof=st.lists(st.binary(min_size=32, max_size=32), max_size=MAX_PROOF_LINES),
)
def test_any_valid_request_round_trips(old: int, proof: list[bytes]) -> None:
    note = LOG_NOTE
    request = AddCheckpointRequest(old, tuple(proof), note)
    assert parse_add_checkpoint(format_add_checkpoint(request)) == request


LOG_NOTE = LogSimulator("hypothesis.example/log").grow(3)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "no empty line"),
        (b"old 0\n", "no empty line"),
        (b"old 1\n\n", "no blank line"),  # no checkpoint
        (b"old 01\n\n" + LOG_NOTE, "canonical"),
        (b"old -1\n\n" + LOG_NOTE, "canonical"),
        (b"old +1\n\n" + LOG_NOTE, "canonical"),
        (b"old  1\n\n" + LOG_NOTE, "canonical"),
        (b"old 1 \n\n" + LOG_NOTE, "canonical"),
        (b"old 0x1\n\n" + LOG_NOTE, "canonical"),
        (b"old 9223372036854775808\n\n" + LOG_NOTE, "larger"),
        (b"old 99999999999999999999\n\n" + LOG_NOTE, "canonical"),
        (b"Old 1\n\n" + LOG_NOTE, "old size line"),
        (b"old\n\n" + LOG_NOTE, "old size line"),
        (b"old 1\r\n\r\n" + LOG_NOTE, "canonical"),
        (b"\nold 1\n\n" + LOG_NOTE, "old size line"),
        (b"old 1\n" + base64.b64encode(b"\1" * 31) + b"\n\n" + LOG_NOTE, "32 bytes"),
        (b"old 1\n" + base64.b64encode(b"\1" * 33) + b"\n\n" + LOG_NOTE, "32 bytes"),
        (b"old 1\n" + base64.b64encode(b"\1" * 32)[:-1] + b"\n\n" + LOG_NOTE, "base64"),
        (b"old 1\n AQEB\n\n" + LOG_NOTE, "base64"),
        (b"old 1\n" + base64.urlsafe_b64encode(b"\xff" * 32) + b"\n\n" + LOG_NOTE, "base64"),
        (b"old 1\n\n" + LOG_NOTE.replace(b"\n\n", b"\n"), "blank line"),
        (b"old 1\n\n" + LOG_NOTE[:-1], "newline"),
    ],
)
def test_malformed_request_is_refused(body: bytes, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        parse_add_checkpoint(body)


def test_non_canonical_base64_proof_line_is_refused() -> None:
    # The last character of a 32-byte hash carries 2 padding bits; setting them is a
    # second spelling of the same hash.
    line = base64.b64encode(b"\0" * 32)
    assert line.endswith(b"A=")
    body = b"old 1\n" + line[:-2] + b"B=\n\n" + LOG_NOTE
    with pytest.raises(FormatError, match="canonical"):
        parse_add_checkpoint(body)


def test_at_most_63_proof_lines() -> None:
    line = base64.b64encode(b"\2" * 32) + b"\n"
    ok = b"old 1\n" + line * MAX_PROOF_LINES + b"\n" + LOG_NOTE
    assert len(parse_add_checkpoint(ok).proof) == MAX_PROOF_LINES
    with pytest.raises(FormatError, match="63"):
        parse_add_checkpoint(b"old 1\n" + line * (MAX_PROOF_LINES + 1) + b"\n" + LOG_NOTE)
    with pytest.raises(FormatError, match="63"):
        AddCheckpointRequest(1, (b"\2" * 32,) * (MAX_PROOF_LINES + 1), LOG_NOTE)


def test_oversized_request_is_refused_before_parsing() -> None:
    with pytest.raises(FormatError, match="larger"):
        parse_add_checkpoint(b"old 0\n\n" + b"x" * MAX_REQUEST_SIZE)


@pytest.mark.parametrize(
    ("old", "proof", "note"),
    [
        (-1, (), LOG_NOTE),
        (1 << 63, (), LOG_NOTE),
        (True, (), LOG_NOTE),
        (1, (b"\0" * 31,), LOG_NOTE),
        (1, ("A" * 32,), LOG_NOTE),
        (1, (), b"not a note\n"),
        (1, (), b""),
    ],
)
def test_request_fields_are_checked_on_construction(
    old: object, proof: object, note: bytes
) -> None:
    with pytest.raises(FormatError):
        AddCheckpointRequest(old, proof, note)  # type: ignore[arg-type]


# --- the 409 body ----------------------------------------------------------------------


def test_size_body_round_trips() -> None:
    assert CONTENT_TYPE_SIZE == "text/x.tlog.size"
    for size in (0, 1, 10, 20852014, (1 << 63) - 1):
        body = format_size_body(size)
        assert body == f"{size}\n".encode()
        assert parse_size_body(body) == size


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n",
        b"1",
        b"01\n",
        b"-1\n",
        b" 1\n",
        b"1 \n",
        b"1\n\n",
        b"1\r\n",
        b"0x1\n",
        b"9223372036854775808\n",
        b"\xef\xbc\x91\n",
    ],
)
def test_malformed_size_body_is_refused(body: bytes) -> None:
    with pytest.raises(FormatError):
        parse_size_body(body)


@pytest.mark.parametrize("size", [-1, 1 << 63, True, 1.0])
def test_size_body_refuses_bad_sizes(size: object) -> None:
    with pytest.raises(FormatError):
        format_size_body(size)  # type: ignore[arg-type]


# --- the 200 body ----------------------------------------------------------------------


def test_cosignature_lines_round_trip() -> None:
    sigs = (
        Signature("w.example/1", b"\1\2\3\4", b"\0" * 8 + b"\5" * 64),
        Signature("w.example/2", b"\4\3\2\1", b"\x7f" * 72),
    )
    body = format_cosignature_lines(sigs)
    assert body.count("\u2014".encode()) == 2
    assert parse_cosignature_lines(body) == sigs
    assert cosignature_timestamp(sigs[0].signature) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\n",
        "\u2014 w.example/1 AQIDBAU=".encode(),  # no final newline
        "\u2014 w.example/1 AQIDBAU=\n\n".encode(),  # an empty line
        b"- w.example/1 AQIDBAU=\n",  # not an em dash
        "\u2014 w.example/1 AQIDBA==\n".encode(),  # key ID only
        "\u2014 w.example/1  AQIDBAU=\n".encode(),
        "\u2014 w+example AQIDBAU=\n".encode(),
        b"\xff\n",
    ],
)
def test_malformed_cosignature_lines_are_refused(body: bytes) -> None:
    with pytest.raises(FormatError):
        parse_cosignature_lines(body)


def test_format_cosignature_lines_needs_a_signature() -> None:
    with pytest.raises(FormatError):
        format_cosignature_lines([])
