"""The update gate admits by subtree proof (docs/adr/0013-subtree-proofs.md, issue 15).

A bundle may carry a subtree proof: the publication against one witnessed 256-entry range
(8 hashes, ML-DSA-44 subtree cosignatures, no log signature). Under a policy with a key-set
log the gate takes the ADR's split: inclusion by the subtree, freshness from the key-set
log's recently cosigned checkpoint. The witnesses here are real ML-DSA-44 keys that
cosign checkpoints and sign subtrees; the attacks are a forged path, a subtree the
witnesses never cosigned, a subtree of another log, and a stale key-set checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from overt.formats.cosignature import ALG_ML_DSA_44
from overt.formats.keytypes import generate, key_type
from overt.formats.note import Signature
from overt.formats.subtree import subtree_inclusion_proof
from overt.formats.subtree_proof import SubtreeNote, SubtreeProof, format_subtree_proof
from overt.gate.errors import (
    DataAvailabilityError,
    InclusionError,
    KeySetCurrencyError,
    WitnessQuorumError,
)
from overt.publish.bundle import Bundle, format_bundle, parse_bundle

from .sim import Clock, LogSimulator, WitnessSimulator, World

RANGE = (0, 256)


class SubtreeWitness(WitnessSimulator):
    """A witness with an ML-DSA-44 key: cosigns checkpoints and signs subtrees."""

    def __init__(self, name: str, clock: Clock) -> None:
        super().__init__(name, clock)
        self.signer = generate(key_type(ALG_ML_DSA_44), name, clock)  # type: ignore[assignment]

    def sign_subtree(self, origin: str, start: int, end: int, h: bytes) -> Signature:
        s = self.signer
        return Signature(s.name, s.key_id, s.sign_subtree(origin, start, end, h))  # type: ignore[attr-defined]


def _world() -> World:
    clock = Clock()
    witnesses = [SubtreeWitness(f"{r}.witness.example", clock) for r in ("asia", "eu", "us")]
    world = World(clock=clock, witnesses=list(witnesses))
    world.use_keyset_log()
    world.log.add_many([b"filler %d" % i for i in range(RANGE[1] - 1)])
    return world


def _with_subtree(
    world: World,
    bundle: Bundle,
    signers: list[SubtreeWitness] | None = None,
    *,
    log: LogSimulator | None = None,
    path: list[bytes] | None = None,
) -> Bundle:
    """The bundle with a subtree proof of its entry in the completed range [0, 256)."""
    log = log or world.log
    start, end = RANGE
    h = log.tree.subtree(start, end)
    ws = signers if signers is not None else world.witnesses[:2]
    sigs = tuple(w.sign_subtree(log.signer.name, start, end, h) for w in ws)  # type: ignore[attr-defined]
    index = bundle.proof.index
    hashes = (
        path if path is not None else subtree_inclusion_proof(index, start, end, log.tree.subtree)
    )
    note = SubtreeNote(log.signer.name, start, end, h, sigs)
    proof = format_subtree_proof(SubtreeProof(index, tuple(hashes), note))
    return parse_bundle(format_bundle(dataclasses.replace(bundle, subtree_proof=proof)))


def _publish(world: World) -> tuple[bytes, Bundle]:
    artifact, bundle = world.publish("1.0.0")
    assert bundle.proof.index == RANGE[1] - 1  # the entry that completes the range
    return artifact, bundle


def test_a_witnessed_subtree_admits_without_the_main_checkpoint() -> None:
    world = _world()
    artifact, bundle = _publish(world)
    with_subtree = _with_subtree(world, bundle)
    # Even a main checkpoint far past max_checkpoint_age: the key-set log gives freshness.
    world.clock.now += 10 * world.max_age
    fresh = world.keyset_log.checkpoint()  # type: ignore[union-attr]
    with_subtree = dataclasses.replace(with_subtree, keyset_checkpoint=fresh)
    with world.gate(fetch_consistency=None) as gate:
        pub = gate.admit(artifact, format_bundle(with_subtree))
    assert pub.subtree is not None and pub.subtree.proof.subtree.end == RANGE[1]
    assert pub.checkpoint.checkpoint.origin == "vendor.example/keys"
    assert pub.index == bundle.proof.index


def test_forged_subtree_path_is_refused() -> None:
    world = _world()
    artifact, bundle = _publish(world)
    good = subtree_inclusion_proof(bundle.proof.index, *RANGE, world.log.tree.subtree)
    forged = _with_subtree(world, bundle, path=[good[0][:-1] + b"\x01", *good[1:]])
    with world.gate() as gate, pytest.raises(InclusionError) as err:
        gate.admit(artifact, format_bundle(forged))
    assert err.value.check == "inclusion"


def test_unwitnessed_subtree_is_refused() -> None:
    world = _world()
    artifact, bundle = _publish(world)
    one = _with_subtree(world, bundle, signers=world.witnesses[:1])  # type: ignore[arg-type]
    with world.gate() as gate, pytest.raises(WitnessQuorumError):
        gate.admit(artifact, format_bundle(one))
    # A witness outside the policy signing in the others' names counts for nothing.
    outsider = SubtreeWitness("asia.witness.example", world.clock)
    forged = _with_subtree(world, bundle, signers=[outsider, outsider])
    with world.gate() as gate, pytest.raises(WitnessQuorumError):
        gate.admit(artifact, format_bundle(forged))


def test_subtree_of_another_log_is_refused() -> None:
    world = _world()
    artifact, bundle = _publish(world)
    other = LogSimulator("other.example/log")
    other.add_many(world.log.entries)  # the very same entries, under another origin
    with world.gate() as gate, pytest.raises(InclusionError, match=r"other\.example/log"):
        gate.admit(artifact, format_bundle(_with_subtree(world, bundle, log=other)))


def test_stale_key_set_checkpoint_is_refused_even_with_a_valid_subtree() -> None:
    """A subtree cosignature carries no time: an old bundle stays admissible only with a
    key-set checkpoint the witnesses cosigned within keyset_log.max_age."""
    world = _world()
    artifact, bundle = _publish(world)
    with_subtree = _with_subtree(world, bundle)
    world.clock.now += world.max_age + 1
    with world.gate() as gate, pytest.raises(KeySetCurrencyError):
        gate.admit(artifact, format_bundle(with_subtree))


def test_mirror_quorum_counts_mirror_subtree_cosignatures() -> None:
    world = _world()
    artifact, bundle = _publish(world)
    mirror = SubtreeWitness("eu.mirror.example", world.clock)
    doc = world.policy_doc()
    doc["witness_policy"] = (
        f"{doc['witness_policy']}mirror eu-m {mirror.vkey}\nmirror-quorum eu-m\n"
    )
    import json

    from overt.gate import UpdateGate, parse_client_policy

    policy = parse_client_policy(json.dumps(doc).encode())
    held = _with_subtree(world, bundle, signers=[*world.witnesses[:2], mirror])  # type: ignore[list-item]
    with UpdateGate(policy, None, clock=world.clock) as gate:
        gate.admit(artifact, format_bundle(held))
    with UpdateGate(policy, None, clock=world.clock) as gate, pytest.raises(DataAvailabilityError):
        gate.admit(artifact, format_bundle(_with_subtree(world, bundle)))


def test_a_subtree_proof_for_another_entry_is_refused_by_the_parser() -> None:
    from overt.errors import FormatError

    world = _world()
    _, bundle = _publish(world)
    text = format_bundle(_with_subtree(world, bundle))
    _, other = world.publish("1.0.1")
    moved = format_bundle(other)[:-2] + text[text.index(b',"subtree_proof"') : -2] + b"}\n"
    with pytest.raises(FormatError, match="another entry"):
        parse_bundle(moved)


def test_overt_verify_takes_a_subtree_proof_and_a_newer_key_set_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An old bundle (its checkpoints long stale) admitted offline by ``overt verify`` with the
    entry's subtree proof and the key-set log's current checkpoint, each from a file."""
    import json

    from overt.cli.main import main

    world = _world()
    artifact, bundle = _publish(world)
    proof = _with_subtree(world, bundle).subtree_proof
    (tmp_path / "agent.msi").write_bytes(artifact)
    (tmp_path / "agent.msi.overt").write_bytes(format_bundle(bundle))
    (tmp_path / "agent.subtree-proof").write_bytes(proof)
    (tmp_path / "policy.json").write_text(json.dumps(world.policy_doc()))
    argv = ["verify", str(tmp_path / "agent.msi"), "--bundle", str(tmp_path / "agent.msi.overt")]
    argv += ["--policy", str(tmp_path / "policy.json")]
    import time as _time

    # The gate's clock is the real one: the bundle's key-set checkpoint (made at T0) is stale.
    assert main([*argv, "--subtree-proof", str(tmp_path / "agent.subtree-proof")]) == 1
    assert "key-set-current" in capsys.readouterr().err
    world.clock.now = _time.time()  # the key-set log cosigned now, fetched once for all bundles
    (tmp_path / "keys.checkpoint").write_bytes(world.keyset_log.checkpoint())  # type: ignore[union-attr]
    code = main(
        [
            *argv,
            *("--subtree-proof", str(tmp_path / "agent.subtree-proof")),
            *("--keyset-checkpoint", str(tmp_path / "keys.checkpoint")),
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "in subtree [0, 256) cosigned by asia, europe" in out.out
