"""The update gate against the attacks of issue 4, each test named after the attack it stops."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, format_envelope, sign_envelope
from overt.formats.proof import TlogProof
from overt.formats.statement import (
    RULE_AUDIT,
    RuleAudit,
    Update,
    format_statement,
    make_statement,
)
from overt.gate.errors import (
    ArtifactDigestError,
    AuditError,
    BundleError,
    CheckpointError,
    ConsistencyError,
    FreshnessError,
    GateError,
    InclusionError,
    PinError,
    PublisherKeyError,
    VersionRollbackError,
    WitnessQuorumError,
)
from overt.publish.bundle import Bundle, LoggedEntry, format_bundle
from overt.publish.keys import generate_publisher_key
from overt.publish.keyset import KeyState, make_keyset_entry
from overt.publish.publisher import Publication, make_entry, publish

from .sim import LogSimulator, World


@pytest.fixture
def world() -> World:
    return World()


def test_an_honest_update_is_admitted(world: World, tmp_path: Path) -> None:
    artifact, bundle = world.publish("1.0.0")
    with world.gate(tmp_path) as gate:
        pub = gate.admit(artifact, format_bundle(bundle))
    assert (pub.kind, pub.product, pub.channel, pub.version) == (
        "update",
        "agent",
        "stable",
        "1.0.0",
    )
    assert pub.sha256 == hashlib.sha256(artifact).hexdigest()
    assert pub.subject == "agent-1.0.0.bin"
    assert set(pub.checkpoint.cosigned) == {"asia", "europe"}
    assert pub.keyids == (world.publisher.keyid,)
    assert (tmp_path / "state.json").is_file()


def test_artifact_swapped_after_publishing_is_refused(world: World) -> None:
    _, bundle = world.publish("1.0.0")
    with pytest.raises(ArtifactDigestError, match="artifact-digest"):
        world.gate().admit(b"agent 1.0.0 with a backdoor", format_bundle(bundle))


def test_large_artifact_swapped_after_publishing_is_refused(world: World) -> None:
    # A 1 MiB artifact, one byte changed at the end.
    artifact = b"\x90" * (1 << 20)
    _, bundle = world.publish("1.0.0", artifact)
    gate = world.gate()
    with pytest.raises(ArtifactDigestError):
        gate.admit(artifact[:-1] + b"\xcc", format_bundle(bundle))
    assert gate.admit(artifact, format_bundle(bundle)).version == "1.0.0"
    gate.close()


def test_bundle_from_another_log_is_refused(world: World) -> None:
    other = LogSimulator("evil.example/log")  # the attacker's own log, same witnesses
    other.witnesses = world.log.witnesses
    artifact, bundle = world.publish("1.0.0", log=other)
    with pytest.raises(CheckpointError, match="no log key"):
        world.gate().admit(artifact, format_bundle(bundle))
    impostor = LogSimulator(world.log.signer.name)  # same origin, the attacker's key
    impostor.witnesses = world.log.witnesses
    artifact, bundle = world.publish("1.0.0", log=impostor)
    with pytest.raises(CheckpointError):
        world.gate().admit(artifact, format_bundle(bundle))


def test_unlogged_update_signed_with_the_real_key_is_refused(world: World) -> None:
    _, logged = world.publish("1.0.0")
    # The attacker holds the publisher key but keeps the update out of the log: it
    # signs it and staples it to a real checkpoint and a real proof.
    evil = b"targeted update"
    item = Publication(
        "agent-1.0.1.bin", hashlib.sha256(evil).hexdigest(), Update("agent", "1.0.1", "stable")
    )
    entry = make_entry(world.publisher, item)
    forged = replace(logged, entry=entry)
    with pytest.raises(InclusionError, match="not included"):
        world.gate().admit(evil, format_bundle(forged))
    # ...or claims an index past the end of the tree.
    past = replace(forged, proof=replace(forged.proof, index=10**6))
    with pytest.raises(InclusionError):
        world.gate().admit(evil, format_bundle(past))


def test_bundle_with_a_valid_proof_for_another_entry_is_refused(world: World) -> None:
    a1, b1 = world.publish("1.0.0")
    a2, b2 = world.publish("1.0.1")
    b2_now = world.publish("1.0.2")[1]  # a later checkpoint covering both
    # The entry of 1.0.1 with the (valid) proof of 1.0.0 against the same checkpoint.
    swapped = replace(b1, entry=b2.entry)
    with pytest.raises(InclusionError):
        world.gate().admit(a2, format_bundle(swapped))
    mixed = replace(b2_now, entry=b1.entry)
    with pytest.raises(InclusionError):
        world.gate().admit(a1, format_bundle(mixed))


def test_publisher_key_revoked_before_the_update_is_refused(world: World, tmp_path: Path) -> None:
    old = world.publisher
    _, new = generate_publisher_key("vendor.example/release-2")
    revocation = make_keyset_entry(KeyState.pinned(old.key), [old], [new.key], revoke=[old.key])
    world.keysets = [revocation]
    world.publisher = new
    artifact, bundle = world.publish("1.0.0")  # honest, signed by the new key
    gate = world.gate(tmp_path)
    assert gate.admit(artifact, format_bundle(bundle)).keyids == (new.keyid,)
    # The thief of the old key logs an update signed with it, chain included...
    evil, with_chain = world.publish("1.0.1", b"evil", signer=old)
    with pytest.raises(PublisherKeyError, match="revoked"):
        gate.admit(evil, format_bundle(with_chain))
    # ...or stripped: this client has seen the revocation and keeps it.
    world.keysets = []
    evil, stripped = world.publish("1.0.2", b"evil 2", signer=old)
    with pytest.raises(PublisherKeyError, match="revoked"):
        world.gate(tmp_path).admit(evil, format_bundle(stripped))


def test_rotated_out_key_is_refused_and_the_new_key_admitted(world: World) -> None:
    old = world.publisher
    _, new = generate_publisher_key("vendor.example/release-2")
    world.keysets = [make_keyset_entry(KeyState.pinned(old.key), [old], [new.key])]
    gate = world.gate()
    with pytest.raises(PublisherKeyError, match="not signed by a key of publisher key set 1"):
        gate.admit(*_b(world.publish("1.0.0", signer=old)))
    assert gate.admit(*_b(world.publish("1.0.1", signer=new))).version == "1.0.1"


def test_forged_key_set_not_signed_by_the_previous_keys_is_refused(world: World) -> None:
    _, thief = generate_publisher_key("thief.example")
    world.keysets = [make_keyset_entry(KeyState.pinned(thief.key), [thief], [thief.key])]
    with pytest.raises(PublisherKeyError, match="key-set chain"):
        world.gate().admit(*_b(world.publish("1.0.0", signer=thief)))


def test_key_set_not_in_the_log_checkpoint_is_refused(world: World) -> None:
    _, new = generate_publisher_key("vendor.example/release-2")
    keyset = make_keyset_entry(KeyState.pinned(world.publisher.key), [world.publisher], [new.key])
    artifact, bundle = world.publish("1.0.0", signer=new)
    unlogged = replace(bundle, keysets=(LoggedEntry(keyset, 0, bundle.proof.hashes),))
    with pytest.raises(InclusionError, match="key set 0"):
        world.gate().admit(artifact, format_bundle(unlogged))


def test_version_rollback_is_refused(world: World, tmp_path: Path) -> None:
    a1, b1 = world.publish("1.0.0")
    a2, b2 = world.publish("2.0.0")
    world.gate(tmp_path).admit(a2, format_bundle(b2))
    with pytest.raises(VersionRollbackError, match=r"older than the installed 2\.0\.0"):
        world.gate(tmp_path).admit(a1, format_bundle(b1))  # a new gate: state from disk
    # Re-admitting the same version is fine; another channel has its own line.
    world.gate(tmp_path).admit(a2, format_bundle(b2))
    world.gate(tmp_path).admit(*_b(world.publish("0.1.0", channel="beta")))


def test_update_below_its_minimum_previous_version_is_refused(world: World) -> None:
    gate = world.gate()
    gate.admit(*_b(world.publish("1.0.0")))
    with pytest.raises(VersionRollbackError, match=r"needs at least 1\.5\.0"):
        gate.admit(*_b(world.publish("2.0.0", min_previous="1.5.0")))
    gate.admit(*_b(world.publish("1.5.0")))
    assert gate.admit(*_b(world.publish("2.0.0", min_previous="1.5.0"))).version == "2.0.0"


def test_freeze_stale_checkpoint_is_refused(world: World) -> None:
    artifact, bundle = world.publish("1.0.0")
    world.clock.now += world.max_age + 1  # the log (or a network attacker) freezes the view
    with pytest.raises(FreshnessError, match="freshness"):
        world.gate().admit(artifact, format_bundle(bundle))


def test_split_view_is_detected(world: World, tmp_path: Path) -> None:
    a1, b1 = world.publish("1.0.0")
    world.gate(tmp_path).admit(a1, format_bundle(b1))
    fork = world.log.fork()  # the same log shows this client another history
    world.log.add_many([b"entry only the rest of the world sees"])
    a2, b2 = world.publish("1.1.0", log=fork)
    gate = world.gate(tmp_path)
    # Same size as the main log's latest, different root, both cosigned by a colluding quorum.
    assert b2.proof.index + 1 == world.log.tree.size
    world.gate(tmp_path).admit(*_b(world.publish("1.0.2")))  # the client sees the real log
    with pytest.raises(ConsistencyError, match=r"consisten|split view") as err:
        gate.admit(a2, format_bundle(b2))
    assert len(err.value.evidence) == 2


def test_split_view_at_the_same_size_is_detected(world: World, tmp_path: Path) -> None:
    world.publish("0.9.0")
    fork = world.log.fork()
    a1, b1 = world.publish("1.0.0")
    a2, b2 = world.publish("1.0.0", b"other build", log=fork)
    gate = world.gate(tmp_path)
    gate.admit(a1, format_bundle(b1))
    with pytest.raises(ConsistencyError, match="split view") as err:
        gate.admit(a2, format_bundle(b2))
    assert err.value.evidence[0] != err.value.evidence[1]


def test_growing_log_needs_a_consistency_proof(world: World, tmp_path: Path) -> None:
    a1, b1 = world.publish("1.0.0")
    world.gate(tmp_path).admit(a1, format_bundle(b1))
    old_size = world.log.tree.size
    a2, b2 = world.publish("1.0.1")
    with pytest.raises(ConsistencyError, match="no consistency proof"):
        world.gate(tmp_path, fetch_consistency=None).admit(a2, format_bundle(b2))
    assert world.gate(tmp_path).admit(a2, format_bundle(b2)).version == "1.0.1"
    # Offline: the publisher embedded a proof from the size this client last saw.
    a3, b3 = world.publish("1.0.2", consistency_from=[old_size + 1])
    offline = world.gate(tmp_path, fetch_consistency=None)
    assert offline.admit(a3, format_bundle(b3)).version == "1.0.2"
    # A log that cannot produce a proof (it forked, or lies) is refused.
    broken = world.gate(tmp_path, fetch_consistency=lambda old, new: [b"\x00" * 32])
    with pytest.raises(ConsistencyError, match="not consistent"):
        broken.admit(*_b(world.publish("1.0.3")))


def test_older_checkpoint_than_the_last_seen_must_be_consistent(
    world: World, tmp_path: Path
) -> None:
    a1, b1 = world.publish("1.0.0", channel="beta")
    a2, b2 = world.publish("1.0.1")
    world.gate(tmp_path).admit(a2, format_bundle(b2))
    with pytest.raises(ConsistencyError):
        world.gate(tmp_path, fetch_consistency=None).admit(a1, format_bundle(b1))
    gate = world.gate(tmp_path)
    assert gate.admit(a1, format_bundle(b1)).channel == "beta"
    # The client keeps the larger checkpoint it has seen.
    assert gate.state.checkpoints[world.log.signer.name] == b2.proof.checkpoint


def test_checkpoint_without_the_witness_quorum_is_refused(world: World) -> None:
    world.log.witnesses = world.witnesses[:1]
    with pytest.raises(WitnessQuorumError, match="not met"):
        world.gate().admit(*_b(world.publish("1.0.0")))


def test_unpinned_product_and_non_installable_kinds_are_refused(world: World) -> None:
    with pytest.raises(PinError, match="not pinned"):
        world.gate().admit(*_b(world.publish("1.0.0", product="other")))
    with pytest.raises(PinError, match="not pinned"):
        world.gate().admit(*_b(world.publish("1.0.0", channel="nightly")))
    only_releases = world.gate()
    only_releases.policy = world.policy(kinds=["release"])
    with pytest.raises(PinError, match="does not admit update"):
        only_releases.admit(*_b(world.publish("1.0.0")))
    slsa = Publication("x", hashlib.sha256(b"x").hexdigest(),
                       ("https://slsa.dev/provenance/v1", {"buildDefinition": {}}))  # fmt: skip
    (bundle,) = publish(world.log, world.publisher, [slsa])
    with pytest.raises(PinError, match="not an installable"):
        world.gate().admit(b"x", format_bundle(bundle))


def _audit(world: World, signer_index: int, digest: str, result: str = "pass") -> bytes:
    auditor = world.auditors[signer_index]
    stmt = make_statement("rules.bin", digest, RuleAudit("no-espionage", result))
    env = sign_envelope(PAYLOAD_TYPE_IN_TOTO, format_statement(stmt), [(auditor.keyid, auditor)])
    return format_envelope(env)


def test_rule_bundle_without_enough_independent_auditors_is_refused(world: World) -> None:
    rules = b"rule evil { condition: true }"
    digest = hashlib.sha256(rules).hexdigest()
    one = [_audit(world, 0, digest), _audit(world, 0, digest)]  # one auditor twice
    with pytest.raises(AuditError, match="1 auditor"):
        world.gate().admit(*_b(world.publish("5", rules, kind="rule-bundle", attestations=one)))
    failed = [_audit(world, 0, digest), _audit(world, 1, digest, "fail")]
    with pytest.raises(AuditError):
        world.gate().admit(*_b(world.publish("5", rules, kind="rule-bundle", attestations=failed)))
    other = [_audit(world, 0, digest), _audit(world, 1, "0" * 64)]  # about another bundle
    with pytest.raises(AuditError):
        world.gate().admit(*_b(world.publish("5", rules, kind="rule-bundle", attestations=other)))
    two = [_audit(world, 0, digest), _audit(world, 2, digest)]
    pub = world.gate().admit(*_b(world.publish("5", rules, kind="rule-bundle", attestations=two)))
    assert pub.kind == "rule-bundle"
    assert pub.audits["no-espionage"] == tuple(sorted(world.auditors[i].keyid for i in (0, 2)))
    no_rules_policy = world.gate()
    no_rules_policy.policy = replace(no_rules_policy.policy, rule_bundles=None)
    with pytest.raises(AuditError, match="names no rule-bundle auditors"):
        no_rules_policy.admit(*_b(world.publish("5", rules, kind="rule-bundle", attestations=two)))
    assert RULE_AUDIT.endswith("/rule-audit/v1")


def test_truncated_bundle_files_are_refused(world: World) -> None:
    artifact, bundle = world.publish("1.0.0")
    data = format_bundle(bundle)
    gate = world.gate()
    for n in range(len(data) - 1):  # the final newline is JSON whitespace
        with pytest.raises(BundleError):
            gate.admit(artifact, data[:n])


def test_garbled_bundle_files_are_refused(world: World) -> None:
    artifact, bundle = world.publish("1.0.0")
    data = format_bundle(bundle)
    gate = world.gate()
    gate.admit(artifact, data)
    refused: dict[str, int] = {}
    for i in range(len(data) - 1):
        garbled = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
        with pytest.raises(GateError) as err:
            gate.admit(artifact, garbled)
        refused[err.value.check] = refused.get(err.value.check, 0) + 1
    # Each part of the bundle is checked by the check that owns it.
    assert {"bundle", "publisher-signature", "inclusion", "checkpoint"} <= set(refused)
    for junk in (b"", b"null", b"{}", b"\x00" * 100, json.dumps({"mediaType": 1}).encode()):
        with pytest.raises(BundleError):
            gate.admit(artifact, junk)


def test_the_first_failing_check_is_reported(world: World) -> None:
    artifact, bundle = world.publish("1.0.0", product="other")
    world.clock.now += 10 * world.max_age
    # Swapped artifact, unpinned product and stale checkpoint: the digest is checked first.
    with pytest.raises(ArtifactDigestError):
        world.gate().admit(artifact + b"!", format_bundle(bundle))
    with pytest.raises(PinError):
        world.gate().admit(artifact, format_bundle(bundle))


def test_a_proof_against_an_unsigned_size_is_refused(world: World) -> None:
    world.publish("0.9.0")
    artifact, bundle = world.publish("1.0.0")
    other = world.log.checkpoint(size=1)  # a real, cosigned, older checkpoint
    moved = replace(bundle, proof=TlogProof(bundle.proof.index, bundle.proof.hashes, other))
    with pytest.raises(InclusionError):
        world.gate().admit(artifact, format_bundle(moved))


def _b(published: tuple[bytes, Bundle]) -> tuple[bytes, bytes]:
    return published[0], format_bundle(published[1])
