"""overt.formats.mirror: the add-entries body and mirror-info, strict and canonical."""

from __future__ import annotations

import pytest

from overt.errors import FormatError
from overt.formats.mirror import (
    MAX_PROOF_HASHES,
    EntryPackage,
    MirrorInfo,
    PackageRange,
    UploadHeader,
    format_mirror_info,
    format_package,
    format_upload,
    format_upload_header,
    package_count,
    package_ranges,
    parse_mirror_info,
    parse_package,
    parse_upload,
    parse_upload_header,
)

from .sim import memory_tree, upload_body

H = bytes(range(32))


def test_the_canonical_sequence_of_the_docstring_example() -> None:
    assert package_ranges(300, 700) == [
        PackageRange(256, 300, 512),
        PackageRange(512, 512, 700),
    ]
    assert package_count(300, 700) == 2


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 0), (5, 5), (0, 1), (0, 256), (0, 257), (255, 256), (256, 512), (1, 100000), (7, 8192)],
)
def test_the_canonical_sequence_tiles_the_interval_at_bundle_boundaries(
    start: int, end: int
) -> None:
    ranges = package_ranges(start, end)
    assert len(ranges) == package_count(start, end)
    pos = start
    for rng in ranges:
        assert rng.start == pos and rng.start < rng.end
        assert rng.subtree_start % 256 == 0 and rng.subtree_start <= rng.start
        assert rng.end - rng.subtree_start <= 256
        assert rng.end == end or rng.end % 256 == 0
        pos = rng.end
    assert pos == end


def test_header_round_trip_and_stream_prefixes() -> None:
    header = UploadHeader("example.com/log", 300, 700, b"ticket")
    data = format_upload_header(header)
    assert parse_upload_header(data) == (header, len(data))
    assert parse_upload_header(data + b"more") == (header, len(data))
    for cut in range(len(data)):
        assert parse_upload_header(data[:cut]) is None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x00\x00", "empty"),
        (b"\x00\x01\xff" + bytes(8) + bytes(8) + bytes(2), "UTF-8"),
        (b"\x00\x01a" + (2).to_bytes(8, "big") + (1).to_bytes(8, "big") + bytes(2), "above"),
        (b"\x00\x01a" + bytes(8) + (1 << 63).to_bytes(8, "big") + bytes(2), "or more"),
    ],
)
def test_bad_headers_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(FormatError, match=why):
        parse_upload_header(data)


def test_format_refuses_what_parse_would() -> None:
    for header in (
        UploadHeader("", 0, 0),
        UploadHeader("a", 2, 1),
        UploadHeader("a", 0, 1 << 63),
        UploadHeader("a", 0, 0, bytes(1 << 16)),
    ):
        with pytest.raises(FormatError):
            format_upload_header(header)
    with pytest.raises(FormatError):
        format_package(EntryPackage((b"",), ()))
    with pytest.raises(FormatError):
        format_package(EntryPackage((b"x",), (H,) * (MAX_PROOF_HASHES + 1)))
    with pytest.raises(FormatError):
        format_package(EntryPackage((b"x",), (b"short",)))


def test_package_round_trip_and_stream_prefixes() -> None:
    package = EntryPackage((b"a", b"bc", bytes(300)), (H, H[::-1]))
    data = format_package(package)
    assert parse_package(data, 0, 3) == (package, len(data))
    assert parse_package(b"xx" + data, 2, 3) == (package, len(data) + 2)
    for cut in range(len(data)):
        assert parse_package(data[:cut], 0, 3) is None


def test_package_with_too_many_hashes_or_an_empty_entry_is_refused() -> None:
    with pytest.raises(FormatError, match="64 proof hashes"):
        parse_package(b"\x00\x01a" + bytes((64,)) + H * 64, 0, 1)
    with pytest.raises(FormatError, match="zero-length"):
        parse_package(b"\x00\x00\x00", 0, 1)


def test_whole_upload_round_trip() -> None:
    tree = memory_tree(700)
    body = upload_body("example.com/log", 300, 700, tree)
    header, packages = parse_upload(body)
    assert header == UploadHeader("example.com/log", 300, 700)
    assert [len(p.entries) for p in packages] == [212, 188]
    assert format_upload(header, packages) == body


def test_every_truncation_of_an_upload_is_refused_or_a_package_prefix() -> None:
    tree = memory_tree(600)
    body = upload_body("example.com/log", 250, 600, tree)
    _, packages = parse_upload(body)
    for cut in range(len(body)):
        try:
            _, got = parse_upload(body[:cut])
        except FormatError:
            continue
        assert got == packages[: len(got)] and len(got) < len(packages)


def test_mirror_info_round_trip_and_strictness() -> None:
    info = MirrorInfo(700, 512, b"\x01\x02")
    data = format_mirror_info(info)
    assert data == b"700\n512\nAQI=\n"
    assert parse_mirror_info(data) == info
    assert parse_mirror_info(b"0\n0\n\n") == MirrorInfo(0, 0, b"")
    for bad in (
        b"700\n512\n",
        b"700\n512\nAQI=",
        b"0700\n512\n\n",
        b"700\n+512\n\n",
        b"700 \n512\n\n",
        b"700\n512\nAQJ=\n",
        b"700\n512\n\n\n",
        b"9223372036854775808\n0\n\n",
    ):
        with pytest.raises(FormatError):
            parse_mirror_info(bad)


def test_every_single_byte_change_of_mirror_info_is_refused_or_another_value() -> None:
    data = format_mirror_info(MirrorInfo(700, 512, b"\x01\x02"))
    for i in range(len(data)):
        for value in (0x00, 0x0A, 0x30, 0x41, 0xFF, data[i] ^ 0x01):
            if value == data[i]:
                continue
            mutated = data[:i] + bytes((value,)) + data[i + 1 :]
            try:
                got = parse_mirror_info(mutated)
            except FormatError:
                continue
            assert format_mirror_info(got) == mutated  # canonical: a different value
