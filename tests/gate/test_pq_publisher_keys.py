"""ML-DSA-44 publisher keys and hybrid key sets (issue 15).

A hybrid key set (``require: ["ed25519", "ml-dsa-44"]``) is how a publisher migrates to
post-quantum signatures without stranding endpoints: every release is signed by one key
of each kind, and the gate refuses a release missing either, so forging a release needs
both a broken Ed25519 key and a broken ML-DSA-44 key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from overt.errors import ConfigError, FormatError
from overt.formats.dsse import Envelope, Signature, format_envelope, parse_envelope
from overt.formats.statement import KeySet, parse_predicate, parse_statement
from overt.gate.errors import PublisherSignatureError
from overt.gate.updater import dump_state, load_state
from overt.gate.verify import GateState, verify_publication
from overt.publish.bundle import Bundle, format_bundle
from overt.publish.keys import (
    PublisherSigner,
    generate_publisher_key,
    load_publisher_signer,
    parse_publisher_key,
    write_key_files,
)
from overt.publish.keyset import (
    HybridSignatureError,
    KeySetError,
    KeyState,
    follow_keyset,
    make_keyset_entry,
)

from .sim import World


def _b(pair: tuple[bytes, Bundle]) -> tuple[bytes, bytes]:
    return pair[0], format_bundle(pair[1])


def test_ml_dsa_44_publisher_key_round_trips(tmp_path: Path) -> None:
    skey, signer = generate_publisher_key("vendor.example/pq", "ml-dsa-44")
    assert signer.key.algorithm == "ml-dsa-44" and len(signer.key.raw) == 1312
    assert parse_publisher_key(signer.key.vkey) == signer.key
    write_key_files(tmp_path / "pq.key", skey, signer)
    assert load_publisher_signer(tmp_path / "pq.key").key == signer.key
    assert len(signer.sign(b"DSSEv1 ...")) == 2420
    with pytest.raises(ConfigError, match="no publisher key type"):
        generate_publisher_key("vendor.example/pq", "rsa")


def test_witness_keys_of_either_kind_are_not_publisher_keys() -> None:
    from overt.formats.note import generate_key

    for alg in (0x04,):
        _, vkey = generate_key("w.example", alg)
        with pytest.raises(FormatError, match="not an Ed25519"):
            parse_publisher_key(vkey)


def test_update_signed_with_ml_dsa_44_is_admitted() -> None:
    world = World()
    _, world.publisher = generate_publisher_key("vendor.example/pq", "ml-dsa-44")
    world.pinned = world.publisher.key
    pub = world.gate().admit(*_b(world.publish("1.0.0")))
    assert pub.keyids == (world.publisher.keyid,)


def test_every_byte_of_an_ml_dsa_44_publication_signature_matters() -> None:
    world = World()
    _, world.publisher = generate_publisher_key("vendor.example/pq", "ml-dsa-44")
    world.pinned = world.publisher.key
    artifact, bundle = world.publish("1.0.0")
    envelope = parse_envelope(bundle.entry)
    sig = envelope.signatures[0].sig
    policy = world.policy()
    digest = hashlib.sha256(artifact).digest()

    # Signatures are checked before inclusion: a flipped byte fails as a bad signature.
    for i in range(len(sig)):
        bad = sig[:i] + bytes([sig[i] ^ 0x01]) + sig[i + 1 :]
        forged = Envelope(
            envelope.payload, envelope.payload_type, (Signature(envelope.signatures[0].keyid, bad),)
        )
        with pytest.raises(PublisherSignatureError):
            verify_publication(
                digest,
                replace(bundle, entry=format_envelope(forged), parsed=None),
                policy,
                GateState(),
                world.clock.now,
            )
    for cut in (1, len(sig) // 2, len(sig) - 1):
        short = Envelope(
            envelope.payload,
            envelope.payload_type,
            (Signature(envelope.signatures[0].keyid, sig[:cut]),),
        )
        with pytest.raises(PublisherSignatureError):
            verify_publication(
                digest,
                replace(bundle, entry=format_envelope(short), parsed=None),
                policy,
                GateState(),
                world.clock.now,
            )
    assert verify_publication(
        digest, bundle, policy, GateState(), world.clock.now
    ).publication.keyids


def _hybrid_world() -> tuple[World, list[PublisherSigner]]:
    world = World()
    first = world.publisher
    _, ed = generate_publisher_key("vendor.example/ed", "ed25519")
    _, pq = generate_publisher_key("vendor.example/pq", "ml-dsa-44")
    entry = make_keyset_entry(
        KeyState.pinned(first.key), [first], [ed.key, pq.key], require=["ed25519", "ml-dsa-44"]
    )
    world.keysets = [entry]
    return world, [ed, pq]


def test_hybrid_key_set_admits_a_release_signed_by_both_kinds() -> None:
    world, (ed, pq) = _hybrid_world()
    pub = world.gate().admit(*_b(world.publish("2.0.0", signer=[ed, pq])))
    assert set(pub.keyids) == {ed.keyid, pq.keyid}


@pytest.mark.parametrize("kind", ["ed25519", "ml-dsa-44"])
def test_hybrid_release_missing_one_kind_is_refused(kind: str) -> None:
    world, (ed, pq) = _hybrid_world()
    only = ed if kind == "ed25519" else pq
    missing = "ml-dsa-44" if kind == "ed25519" else "ed25519"
    with pytest.raises(PublisherSignatureError, match=f"lacks a {missing} signature"):
        world.gate().admit(*_b(world.publish("2.0.0", signer=only)))


def test_quantum_forger_of_the_ed25519_key_alone_is_refused() -> None:
    # Someone who can forge Ed25519 (a quantum computer) signs with a stolen or forged
    # Ed25519 key and strips the ML-DSA-44 signature from a real release.
    world, (ed, pq) = _hybrid_world()
    artifact, bundle = world.publish("2.0.0", signer=[ed, pq])
    envelope = parse_envelope(bundle.entry)
    stripped = Envelope(
        envelope.payload,
        envelope.payload_type,
        tuple(s for s in envelope.signatures if s.keyid == ed.keyid),
    )
    forged = replace(bundle, entry=format_envelope(stripped), parsed=None)
    with pytest.raises(PublisherSignatureError, match="lacks a ml-dsa-44"):
        world.gate().admit(artifact, format_bundle(forged))


def test_hybrid_key_set_needs_both_kinds_to_sign_the_next_set() -> None:
    world, (ed, pq) = _hybrid_world()
    state = follow_keyset(world.pinned, world.keysets)
    assert state.require == ("ed25519", "ml-dsa-44")
    _, pq2 = generate_publisher_key("vendor.example/pq2", "ml-dsa-44")
    with pytest.raises(HybridSignatureError, match="lacks a ml-dsa-44"):
        make_keyset_entry(state, [ed], [ed.key, pq2.key], require=["ed25519", "ml-dsa-44"])
    entry = make_keyset_entry(state, [ed, pq], [pq2.key], require=["ml-dsa-44"])  # PQ only now
    assert follow_keyset(state, [entry]).require == ("ml-dsa-44",)


def test_hybrid_key_set_must_hold_a_key_of_each_required_kind() -> None:
    world = World()
    _, ed = generate_publisher_key("vendor.example/ed")
    with pytest.raises(KeySetError, match="holds no such key"):
        make_keyset_entry(
            KeyState.pinned(world.publisher.key),
            [world.publisher],
            [ed.key],
            require=["ed25519", "ml-dsa-44"],
        )


def test_key_set_without_require_keeps_its_bytes() -> None:
    world = World()
    entry = make_keyset_entry(
        KeyState.pinned(world.publisher.key), [world.publisher], [world.publisher.key]
    )
    statement = json.loads(parse_envelope(entry).payload)
    assert "require" not in statement["predicate"]
    body = parse_predicate(parse_statement(parse_envelope(entry).payload))
    assert isinstance(body, KeySet) and body.require == ()


def test_gate_state_keeps_the_hybrid_requirement(tmp_path: Path) -> None:
    world, (ed, pq) = _hybrid_world()
    with world.gate(tmp_path) as gate:
        gate.admit(*_b(world.publish("2.0.0", signer=[ed, pq])))
        state = gate.state
    policy = world.policy()
    assert load_state(dump_state(state, policy), policy).keys == state.keys
    assert state.keys is not None and state.keys.require == ("ed25519", "ml-dsa-44")
    # The stateful endpoint still refuses a one-kind release with the chain stripped.
    world.keysets = []
    with world.gate(tmp_path) as gate, pytest.raises(PublisherSignatureError):
        gate.admit(*_b(world.publish("2.0.1", signer=ed)))


def test_the_cli_offers_exactly_the_publisher_key_types() -> None:
    from overt.cli import publish as cli
    from overt.publish import keys

    assert cli.PUBLISHER_KEY_TYPES == keys.PUBLISHER_KEY_TYPES
