"""Revocation a fresh endpoint cannot miss: key sets in their own witnessed log (issue 15).

docs/adr/0012-key-sets-in-their-own-witnessed-log.md. The attacker of these tests holds
a stolen publisher key, can log anything in the main log (whose witnesses cosign it
fresh), keeps every bundle and every cosigned key-set checkpoint ever published, and
even holds the key-set log's own signing key. The witnesses follow the key-set log
honestly. After the revocation is logged and witnessed, and the policy's maximum age
has passed, no endpoint, fresh or not, admits anything signed by the revoked key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overt.errors import FormatError, PolicyError
from overt.gate import GateError
from overt.gate.errors import KeySetCurrencyError, PublisherKeyError
from overt.publish.bundle import Bundle, format_bundle, parse_bundle
from overt.publish.keys import PublisherSigner, generate_publisher_key
from overt.publish.keyset import KeySetError, KeyState, follow_keyset, make_keyset_entry
from overt.publish.publisher import keyset_checkpoint

from .sim import LogSimulator, World

MAX_AGE = 3600


def _b(pair: tuple[bytes, Bundle]) -> tuple[bytes, bytes]:
    return pair[0], format_bundle(pair[1])


@dataclass
class Story:
    """A publisher who adds a second key, has it stolen, and revokes it."""

    world: World
    first: PublisherSigner
    stolen: PublisherSigner
    successor: PublisherSigner
    #: Every cosigned key-set checkpoint ever published, with the chain it covered.
    history: list[tuple[bytes, list[bytes]]]
    #: Bundles the thief made while the stolen key was still current.
    old_bundles: list[tuple[bytes, Bundle]]
    revoked_at: float


def _story(rotations_before: int = 0) -> Story:
    world = World(max_age=MAX_AGE)
    keyset_log = world.use_keyset_log()
    first = world.publisher
    history: list[tuple[bytes, list[bytes]]] = []

    def log_keyset(entry: bytes) -> None:
        world.keysets.append(entry)
        history.append((keyset_checkpoint(keyset_log, world.keysets), list(world.keysets)))

    state = KeyState.pinned(first.key)
    history.append((keyset_checkpoint(keyset_log, []), []))
    signer = first
    for i in range(rotations_before):  # harmless rotations of the first key's partner
        _, extra = generate_publisher_key(f"vendor.example/extra{i}")
        entry = make_keyset_entry(state, [signer], [first.key, extra.key])
        state = follow_keyset(state, [entry])
        log_keyset(entry)
        world.clock.now += 60
    _, stolen = generate_publisher_key("vendor.example/release-2")
    entry = make_keyset_entry(state, [first], [first.key, stolen.key])
    state = follow_keyset(state, [entry])
    log_keyset(entry)
    world.clock.now += 60
    old_bundles = [world.publish("1.0.0", signer=stolen)]
    world.clock.now += 60
    # The key is stolen; the publisher revokes it (signed by the first key) and the
    # witnesses cosign the key-set log with the revocation.
    _, successor = generate_publisher_key("vendor.example/release-3")
    entry = make_keyset_entry(state, [first], [first.key, successor.key], revoke=[stolen.key])
    log_keyset(entry)
    revoked_at = world.clock.now
    old_bundles.append(world.publish("1.0.1", b"just before", signer=stolen))
    return Story(world, first, stolen, successor, history, old_bundles, revoked_at)


def _thief_publish(
    world: World, chain: list[bytes], signer: PublisherSigner
) -> tuple[bytes, Bundle]:
    """Log an update signed by ``signer`` in the main log (which takes anything), with
    ``chain`` in the bundle and no key-set checkpoint (the thief picks one later)."""
    saved, world.keyset_log = world.keyset_log, None
    saved_chain, world.keysets = world.keysets, chain
    try:
        return world.publish("6.6.6", b"evil", signer=signer)
    finally:
        world.keyset_log, world.keysets = saved, saved_chain


def _forged_fork_checkpoint(story: Story, chain: list[bytes]) -> bytes:
    """The thief, holding the key-set log's key, signs a log that stops at ``chain`` and
    shows it to the witnesses now: honest witnesses refuse to cosign it."""
    keyset_log = story.world.keyset_log
    assert keyset_log is not None
    fork = LogSimulator(keyset_log.signer.name, keyset_log.key)
    fork.witnesses = story.world.witnesses
    fork.add_many(chain)
    return fork.checkpoint()


def test_fresh_key_set_admits_the_current_key() -> None:
    story = _story()
    world = story.world
    world.publisher = story.successor
    artifact, bundle = world.publish("2.0.0")
    assert bundle.keyset_checkpoint
    parsed = parse_bundle(format_bundle(bundle))
    assert parsed.keyset_checkpoint == bundle.keyset_checkpoint
    assert world.gate().admit(artifact, format_bundle(bundle)).version == "2.0.0"


def test_stolen_key_before_its_revocation_is_admitted_while_current() -> None:
    # The control for the attack tests below: what the thief signed while the key was
    # still in the newest set passes, so the refusals below are not vacuous.
    story = _story()
    artifact, bundle = story.old_bundles[0]
    gate = story.world.gate()
    story.world.clock.now = story.revoked_at - 60
    assert gate.admit(artifact, format_bundle(bundle)).keyids == (story.stolen.keyid,)


def test_stolen_key_with_stale_chain_is_refused_by_a_fresh_endpoint() -> None:
    story = _story()
    world = story.world
    chain_before = story.history[-2][1]  # the thief's chain stops before the revocation
    evil = _thief_publish(world, chain_before, story.stolen)
    fresh = replace(evil[1], keyset_checkpoint=story.world.keyset_log.fresh_checkpoint())  # type: ignore[union-attr]
    with pytest.raises(KeySetCurrencyError, match="holds 2: not the current key set"):
        world.gate().admit(evil[0], format_bundle(fresh))
    # An old cosigned key-set checkpoint that matches the stale chain: fresh for a while...
    stale = replace(evil[1], keyset_checkpoint=story.history[-2][0])
    world.clock.now = story.revoked_at + MAX_AGE / 2
    assert world.gate().admit(evil[0], format_bundle(stale)).version == "6.6.6"
    # ...and refused once the maximum age has passed: the window the ADR names.
    world.clock.now = story.revoked_at + MAX_AGE + 1
    with pytest.raises(KeySetCurrencyError, match="more than the allowed 3600 s"):
        world.gate().admit(evil[0], format_bundle(stale))


def test_stolen_key_with_the_whole_chain_is_refused_as_revoked() -> None:
    story = _story()
    evil = story.world.publish("6.6.6", b"evil", signer=story.stolen)
    with pytest.raises(PublisherKeyError, match="revoked"):
        story.world.gate().admit(*_b(evil))


def test_freeze_replay_of_an_old_fresh_looking_bundle_is_refused() -> None:
    story = _story()
    world = story.world
    world.clock.now = story.revoked_at + MAX_AGE + 1
    for artifact, bundle in story.old_bundles:
        with pytest.raises(GateError) as err:
            world.gate().admit(artifact, format_bundle(bundle))
        assert err.value.check in ("key-set-current", "freshness")


def test_forked_key_set_log_is_not_cosigned_by_honest_witnesses() -> None:
    story = _story()
    world = story.world
    chain_before = story.history[-2][1]
    forged = _forged_fork_checkpoint(story, chain_before)
    artifact, bundle = _thief_publish(world, chain_before, story.stolen)
    with pytest.raises(KeySetCurrencyError, match="quorum"):
        world.gate().admit(artifact, format_bundle(replace(bundle, keyset_checkpoint=forged)))


def test_bundle_without_a_key_set_checkpoint_is_refused() -> None:
    story = _story()
    artifact, bundle = story.world.publish("2.0.0", signer=story.first)
    with pytest.raises(KeySetCurrencyError, match="carries no checkpoint"):
        story.world.gate().admit(artifact, format_bundle(replace(bundle, keyset_checkpoint=b"")))


def test_key_set_checkpoint_of_the_main_log_is_refused() -> None:
    story = _story()
    artifact, bundle = story.world.publish("2.0.0", signer=story.first)
    main = replace(bundle, keyset_checkpoint=bundle.proof.checkpoint)
    with pytest.raises(KeySetCurrencyError, match="origin"):
        story.world.gate().admit(artifact, format_bundle(main))


def test_endpoint_with_a_newer_key_set_refuses_an_older_log(tmp_path: Path) -> None:
    story = _story()
    world = story.world
    world.publisher = story.first
    with world.gate(tmp_path) as gate:
        gate.admit(*_b(world.publish("2.0.0")))
        assert gate.state.keys is not None and gate.state.keys.sequence == 2
    # A bundle proving an old key-set checkpoint (still within the age) to that client.
    artifact, bundle = _thief_publish(world, story.history[-2][1], story.first)
    old = replace(bundle, keyset_checkpoint=story.history[-2][0])
    with world.gate(tmp_path) as gate, pytest.raises(KeySetCurrencyError, match="already follows"):
        gate.admit(artifact, format_bundle(old))


def test_key_set_log_with_foreign_entries_is_refused_by_the_publisher() -> None:
    world = World()
    keyset_log = world.use_keyset_log()
    keyset_log.add_many([b"not a key set"])
    with pytest.raises(KeySetError, match="behind the log"):
        world.publish("1.0.0")
    _, second = generate_publisher_key("vendor.example/release-2")
    world.keysets = [
        make_keyset_entry(KeyState.pinned(world.publisher.key), [world.publisher], [second.key])
    ]
    with pytest.raises(KeySetError, match="other entries"):
        world.publish("1.0.0", signer=second)


def test_publisher_with_a_chain_behind_the_key_set_log_is_refused() -> None:
    story = _story()
    story.world.keysets = story.history[-2][1]
    with pytest.raises(KeySetError, match="behind the log"):
        story.world.publish("2.0.0", signer=story.first)


def test_key_set_log_policy_is_strict() -> None:
    world = World()
    keyset_log = world.use_keyset_log()
    with pytest.raises(PolicyError, match="also a publication log"):
        world.policy(keyset_log={"log": world.log.vkey, "max_age": 60})
    for bad in (
        {"log": keyset_log.vkey},
        {"log": keyset_log.vkey, "max_age": 0},
        {"log": keyset_log.vkey, "max_age": True},
        {"log": "not a key", "max_age": 60},
        {"log": keyset_log.vkey, "max_age": 60, "extra": 1},
    ):
        with pytest.raises(FormatError):
            world.policy(keyset_log=bad)
    assert world.policy().keyset_log is not None


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    rotations=st.integers(0, 2),
    chain_cut=st.integers(0, 3),
    checkpoint_pick=st.integers(0, 10),
    forge=st.booleans(),
    endpoint_state=st.sampled_from(["fresh", "before-revocation", "after-revocation"]),
    delay=st.integers(MAX_AGE + 1, 10 * MAX_AGE),
)
def test_stolen_key_with_stale_chain(
    rotations: int,
    chain_cut: int,
    checkpoint_pick: int,
    forge: bool,
    endpoint_state: str,
    delay: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Whatever chain prefix and key-set checkpoint the thief combines, forged or
    replayed, no endpoint admits the revoked key once the maximum age has passed."""
    story = _story(rotations)
    world = story.world
    state_dir = tmp_path_factory.mktemp("state")
    if endpoint_state != "fresh":
        # An endpoint that admitted an honest update before (or after) the revocation.
        saved = (world.keysets, world.clock.now)
        if endpoint_state == "before-revocation":
            world.clock.now = story.revoked_at - 60
            pair = story.old_bundles[0]
        else:
            pair = world.publish("0.9.0", b"honest", signer=story.first)
        with world.gate(state_dir) as gate:
            gate.admit(*_b(pair))
        world.keysets, world.clock.now = saved
    world.clock.now = story.revoked_at + delay
    chain = world.keysets[: max(0, len(world.keysets) - chain_cut)]
    artifact, bundle = _thief_publish(world, chain, story.stolen)
    if forge:
        note = _forged_fork_checkpoint(story, chain)
    else:
        note = story.history[checkpoint_pick % len(story.history)][0]
    for candidate in (bundle, replace(bundle, keyset_checkpoint=note)):
        with world.gate(state_dir) as gate, pytest.raises(GateError) as err:
            gate.admit(artifact, format_bundle(candidate))
        assert err.value.check in ("key-set-current", "publisher-key", "consistency")
