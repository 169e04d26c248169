"""Bundles made by ``publish``: they carry the envelope each entry was formatted from, so
``format_bundle`` writes it without decoding and checking the entry again; the bytes must
be exactly those of the checking path, and a copy with other entry bytes is checked."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from overt.errors import FormatError
from overt.formats.dsse import format_envelope
from overt.formats.statement import Update
from overt.publish.bundle import Bundle, format_bundle, parse_bundle
from overt.publish.keys import generate_publisher_key
from overt.publish.publisher import Publication, make_entry, write_bundle

from .sim import World

SECOND = generate_publisher_key("vendor.example/second")[1]


@pytest.fixture(scope="module")
def published() -> tuple[World, Bundle]:
    world = World()
    world.keysets = [world.publish("0.1.0")[1].entry]  # any logged envelope will do
    auditor = world.publish("0.2.0")[1].entry
    _, bundle = world.publish(
        "1.0.0",
        signer=[world.publisher, SECOND],
        attestations=[auditor],
        consistency_from=[1, 2],
    )
    return world, bundle


def test_published_bundle_formats_as_its_entry_alone_does(published: tuple[World, Bundle]) -> None:
    _, bundle = published
    assert bundle.parsed is not None and bundle.parsed[0] is bundle.entry
    assert format_envelope(bundle.parsed[1]) == bundle.entry
    fast = format_bundle(bundle)
    checked = format_bundle(dataclasses.replace(bundle, parsed=None))
    assert fast == checked
    assert parse_bundle(fast) == bundle
    assert bundle.keysets and bundle.attestations and bundle.consistency


def test_published_entry_is_make_entry(published: tuple[World, Bundle]) -> None:
    world, bundle = published
    # Ed25519 signs deterministically: the logged entry is exactly make_entry's bytes.
    item = Publication(
        "agent-1.0.0.bin",
        hashlib.sha256(b"agent 1.0.0").hexdigest(),
        Update("agent", "1.0.0", "stable"),
    )
    assert make_entry([world.publisher, SECOND], item) == bundle.entry


def test_a_copy_with_other_entry_bytes_is_checked_again(published: tuple[World, Bundle]) -> None:
    _, bundle = published
    # The envelope rides along with the very bytes object it was formatted into; a copy
    # whose entry is other bytes (even equal ones) is decoded and checked as before.
    with pytest.raises(FormatError, match="canonical"):
        format_bundle(dataclasses.replace(bundle, entry=b" " + bundle.entry))
    equal = bytes(bytearray(bundle.entry))
    assert equal is not bundle.entry
    assert format_bundle(dataclasses.replace(bundle, entry=equal)) == format_bundle(bundle)


def test_write_bundle_makes_missing_directories(
    published: tuple[World, Bundle], tmp_path: Path
) -> None:
    _, bundle = published
    path = tmp_path / "releases" / "agent" / "agent-1.0.0.bin.overt"
    write_bundle(path, bundle)
    assert path.read_bytes() == format_bundle(bundle)
    write_bundle(path, bundle)  # and replaces an existing one
    assert [p.name for p in path.parent.iterdir()] == [path.name]
