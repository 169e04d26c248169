"""The update gate demands data availability: a policy's mirror quorum (c2sp.org/tlog-mirror).

A mirror is a cosigner whose cosignature also says it durably holds the checkpoint's entries,
from its minimum index on. The gate does no I/O: it counts the mirror cosignatures carried by
the bundle's checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from overt.gate.errors import DataAvailabilityError, WitnessQuorumError
from overt.publish.bundle import format_bundle

from .sim import WitnessSimulator, World


def _world(europe_min_index: int = 0) -> tuple[World, dict[str, WitnessSimulator]]:
    world = World()
    mirrors = {n: WitnessSimulator(f"{n}.mirror.example", world.clock) for n in ("asia", "europe")}
    world.log.witnesses = [*world.log.witnesses, *mirrors.values()]  # the log collects both
    return world, mirrors


def _policy_doc(world: World, mirrors: dict[str, WitnessSimulator], europe_min: int = 0) -> dict:
    doc = world.policy_doc()
    min_index = f" min-index={europe_min}" if europe_min else ""
    doc["witness_policy"] = (
        str(doc["witness_policy"])
        + f"mirror asia-m {mirrors['asia'].vkey}\n"
        + f"mirror europe-m {mirrors['europe'].vkey}{min_index}\n"
        + "group holders 2 asia-m europe-m\nmirror-quorum holders\n"
    )
    return doc


def _admit(world: World, doc: dict, artifact: bytes, bundle: bytes, state: Path | None) -> object:
    import json

    from overt.gate import UpdateGate, parse_client_policy

    policy = parse_client_policy(json.dumps(doc).encode())
    with UpdateGate(policy, state, clock=world.clock) as gate:
        return gate.admit(artifact, bundle)


def test_two_mirrors_and_a_witness_quorum_in_one_policy_admit(tmp_path: Path) -> None:
    world, mirrors = _world()
    artifact, bundle = world.publish("1.0.0")
    pub = _admit(world, _policy_doc(world, mirrors), artifact, format_bundle(bundle), tmp_path)
    assert set(pub.checkpoint.cosigned) == {"asia", "europe", "asia-m", "europe-m"}  # type: ignore[attr-defined]


def test_a_checkpoint_the_mirrors_did_not_store_is_refused() -> None:
    world, mirrors = _world()
    mirrors["europe"].online = False  # europe's mirror is down: it cannot hold the entry
    artifact, bundle = world.publish("1.0.0")
    with pytest.raises(DataAvailabilityError, match="held by asia-m") as err:
        _admit(world, _policy_doc(world, mirrors), artifact, format_bundle(bundle), None)
    assert err.value.check == "mirror-quorum"


def test_a_pruned_mirror_never_counts_for_an_entry_below_its_minimum_index() -> None:
    world, mirrors = _world()
    artifact, bundle = world.publish("1.0.0")  # logged at index 0
    with pytest.raises(DataAvailabilityError, match=r"entries \[0, 1\)"):
        _admit(
            world, _policy_doc(world, mirrors, europe_min=1), artifact, format_bundle(bundle), None
        )


def test_mirror_cosignatures_do_not_stand_in_for_the_witness_quorum() -> None:
    world, mirrors = _world()
    for w in world.witnesses:
        w.online = False
    artifact, bundle = world.publish("1.0.0")
    with pytest.raises(WitnessQuorumError):
        _admit(world, _policy_doc(world, mirrors), artifact, format_bundle(bundle), None)


def _mirrors_cosign_later(world: World, mirrors: dict[str, WitnessSimulator]) -> bytes:
    """The log grows; the mirrors, having stored it, cosign its new checkpoint."""
    world.publish("1.0.1")
    note = world.log.checkpoint()
    for m in mirrors.values():
        m.online = True
        note = m.cosign(note)
    return note


def test_mirrors_that_cosigned_a_later_checkpoint_count_with_a_consistency_proof() -> None:
    import json

    from overt.gate import UpdateGate, parse_client_policy

    world, mirrors = _world()
    for m in mirrors.values():
        m.online = False  # mirrors cosign after the log publishes: not on the bundle's checkpoint
    artifact, bundle = world.publish("1.0.0")
    later = _mirrors_cosign_later(world, mirrors)
    size = bundle.proof.checkpoint.split(b"\n")[1]
    asked: list[int] = []

    def fetch(cp: object) -> list[tuple[bytes, list[bytes]]]:
        old = int(size)
        asked.append(old)
        return [(later, world.log.consistency_proof(old, world.log.tree.size))]

    policy = parse_client_policy(json.dumps(_policy_doc(world, mirrors)).encode())
    with UpdateGate(policy, None, clock=world.clock, fetch_mirrors=fetch) as gate:
        gate.admit(artifact, format_bundle(bundle))
    assert asked == [int(size)]
    # A proof that does not hold (or a checkpoint of another tree) counts for nothing.
    with (
        UpdateGate(
            policy, None, clock=world.clock, fetch_mirrors=lambda cp: [(later, [b"\x00" * 32])]
        ) as gate,
        pytest.raises(DataAvailabilityError),
    ):
        gate.admit(artifact, format_bundle(bundle))


def test_overt_verify_asks_the_policys_mirrors_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real log, a real mirror server fed by the push client, and ``overt verify``: the
    mirror cosigns after the log published (and after it grew), so the gate counts it
    through a consistency proof computed from the mirror's own tiles."""
    import json

    from tests.mirror.sim import MirrorUnderTest

    from overt.cli import main as cli_main
    from overt.log.log import Log

    monkeypatch.chdir(tmp_path)

    def overt(*argv: str) -> tuple[int, str]:
        code = cli_main.main(list(argv))
        out, err = capsys.readouterr()
        return code, out + err

    Log.create(tmp_path / "log", "mirror.test/log").close()
    assert overt("publisher", "keygen", "vendor.key", "--name", "vendor.example/release")[0] == 0
    assert overt("witness", "init", "asia", "--name", "asia.witness.example")[0] == 0
    (tmp_path / "agent.msi").write_bytes(b"agent 1.0.0\n")
    code, out = overt(
        "publish", "agent.msi", "--log", "log", "--key", "vendor.key", "--kind", "update",
        "--product", "agent", "--version", "1.0.0",
        "--unsafe-local-witness", "asia/witness.skey",
    )  # fmt: skip
    assert code == 0, out
    with Log.open(tmp_path / "log") as log:
        log.add_many([b"a later entry"])  # the log grows before the mirror catches up
        log.integrate()
    held, empty = MirrorUnderTest(tmp_path / "m1", tmp_path / "log"), None
    with held.serve() as url:
        empty = MirrorUnderTest(tmp_path / "m2", tmp_path / "log")
        with empty.serve() as url2:
            with held.pusher() as pusher:
                pusher.push()
            witnesses = (tmp_path / "asia" / "witness.vkey").read_text().strip()
            policy = {
                "version": 1,
                "logs": [(tmp_path / "log" / "log.vkey").read_text().strip()],
                "publisher": (tmp_path / "vendor.key.pub").read_text().strip(),
                "pins": [{"product": "agent", "channels": ["stable"]}],
                "max_checkpoint_age": 86400,
            }
            for name, mirror in (("held", (held, url)), ("empty", (empty, url2))):
                policy["witness_policy"] = (
                    f"witness asia {witnesses}\nquorum asia\n"
                    f"mirror m {mirror[0].vkey} {mirror[1]}\nmirror-quorum m\n"
                )
                (tmp_path / f"{name}.json").write_text(json.dumps(policy))
            argv = ("verify", "agent.msi", "--bundle", "agent.msi.overt", "--policy")
            code, out = overt(*argv, "held.json")
            assert code == 0, out
            code, out = overt(*argv, "empty.json")  # this mirror holds nothing
            assert code == 1 and "mirror-quorum: mirror quorum 'm' not met" in out, out
