"""A telemetry policy is a logged publication: the endpoint enforces only the public one."""

from __future__ import annotations

import pytest
from tests.gate.sim import World

from overt.gate.errors import ArtifactDigestError, PinError, VersionRollbackError
from overt.gate.verify import GateState
from overt.publish.bundle import format_bundle
from overt.publish.publisher import publish
from overt.telemetry.policy import parse_policy, policy_publication, verify_policy

from .conftest import policy_bytes


def _published(world: World, version: int) -> tuple[bytes, bytes]:
    data = policy_bytes(version=version)
    (bundle,) = publish(world.log, world.publisher, [policy_publication(parse_policy(data))])
    return data, format_bundle(bundle)


def _client(world: World) -> object:
    return world.policy(
        pins=[{"product": "overt-telemetry-policy", "channels": ["acme"]}], kinds=["release"]
    )


def test_the_logged_policy_is_admitted_offline() -> None:
    world = World()
    data, bundle = _published(world, 1)
    policy, admission = verify_policy(data, bundle, _client(world), GateState(), world.clock())
    assert policy.version == 1 and admission.publication.channel == "acme"


def test_a_policy_edited_after_publication_is_refused() -> None:
    world = World()
    data, bundle = _published(world, 1)
    edited = data.replace(b'"drop"', b'"keep"')
    with pytest.raises(ArtifactDigestError):
        verify_policy(edited, bundle, _client(world), GateState(), world.clock())


def test_another_customers_policy_is_refused() -> None:
    world = World()
    data, bundle = _published(world, 1)
    client = world.policy(
        pins=[{"product": "overt-telemetry-policy", "channels": ["other"]}], kinds=["release"]
    )
    with pytest.raises(PinError):
        verify_policy(data, bundle, client, GateState(), world.clock())


def test_rollback_to_an_older_policy_revision_is_refused() -> None:
    world = World()
    new, new_bundle = _published(world, 2)
    old, old_bundle = _published(world, 1)
    _, admission = verify_policy(new, new_bundle, _client(world), GateState(), world.clock())
    with pytest.raises(VersionRollbackError):
        verify_policy(old, old_bundle, _client(world), admission.state, world.clock())
