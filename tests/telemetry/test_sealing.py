"""Payloads open only with their region's collector key, for the customer they were sealed for."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.gate.sim import World

from overt.errors import ConfigError, FormatError
from overt.gate.errors import GateError
from overt.gate.verify import GateState
from overt.publish.bundle import format_bundle
from overt.publish.publisher import publish
from overt.telemetry.errors import SealError
from overt.telemetry.sealing import (
    CollectorKey,
    collector_key_publication,
    open_payload,
    parse_collector_key,
    seal_payload,
    verify_collector_key,
)


def test_round_trip_and_key_text() -> None:
    key = CollectorKey.generate("eu")
    region, public = parse_collector_key(key.published())
    assert region == "eu"
    sealed = seal_payload(public, "eu", "acme", b"events")
    assert open_payload(key.private, "eu", "acme", sealed) == b"events"


def test_a_payload_sealed_to_the_wrong_region_key_does_not_open() -> None:
    eu, us = CollectorKey.generate("eu"), CollectorKey.generate("us")
    sealed = seal_payload(us.public, "eu", "acme", b"events")
    with pytest.raises(SealError):
        open_payload(eu.private, "eu", "acme", sealed)


def test_a_payload_passed_off_as_another_customers_does_not_open() -> None:
    eu = CollectorKey.generate("eu")
    sealed = seal_payload(eu.public, "eu", "acme", b"events")
    with pytest.raises(SealError):
        open_payload(eu.private, "eu", "globex", sealed)


def test_every_byte_flip_of_a_key_text_is_refused_or_another_key() -> None:
    text = CollectorKey.generate("eu").published()
    parsed = parse_collector_key(text)
    for i in range(len(text)):
        mutated = text[:i] + bytes([text[i] ^ 1]) + text[i + 1 :]
        try:
            other = parse_collector_key(mutated)
        except FormatError:
            continue
        assert other != parsed


def test_key_file_round_trip_and_no_overwrite(tmp_path: Path) -> None:
    key = CollectorKey.generate("eu")
    key.save(tmp_path / "eu.key")
    assert CollectorKey.load(tmp_path / "eu.key").published() == key.published()
    with pytest.raises(ConfigError):
        key.save(tmp_path / "eu.key")


def _client(world: World) -> object:
    return world.policy(
        pins=[{"product": "overt-telemetry-collector-key", "channels": ["eu"]}],
        kinds=["release"],
    )


def test_a_logged_region_key_is_admitted_and_a_silent_switch_is_not() -> None:
    world = World()
    key = CollectorKey.generate("eu")
    (bundle,) = publish(world.log, world.publisher, [collector_key_publication(key.published(), 1)])
    public, _ = verify_collector_key(
        key.published(), format_bundle(bundle), _client(world), GateState(), world.clock()
    )
    assert parse_collector_key(key.published())[1].public_bytes_raw() == public.public_bytes_raw()
    switched = CollectorKey.generate("eu").published()  # never logged
    with pytest.raises(GateError):
        verify_collector_key(
            switched, format_bundle(bundle), _client(world), GateState(), world.clock()
        )
