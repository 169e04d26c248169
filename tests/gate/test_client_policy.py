"""The client policy format and the gate's persisted state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overt.errors import ConfigError, FormatError, PolicyError
from overt.gate import CHECKS, UpdateGate, load_client_policy, parse_client_policy
from overt.gate import errors as gate_errors
from overt.gate.updater import dump_state, load_state
from overt.publish.bundle import format_bundle

from .sim import World


def test_exported_names() -> None:
    import overt.gate

    assert set(overt.gate.__all__) == {
        "CHECKS", "ClientPolicy", "GateError", "GateState", "UpdateGate", "VerifiedPublication",
        "load_client_policy", "parse_client_policy", "verify_publication",
    }  # fmt: skip
    assert [c.check for c in CHECKS] == [
        "bundle", "artifact-digest", "publisher-signature", "publisher-key", "key-set-current", "pin",
        "inclusion",
        "checkpoint", "witness-quorum", "freshness", "mirror-quorum", "audit", "source", "rollback", "consistency",
    ]  # fmt: skip
    assert gate_errors.__doc__ is not None
    for c in CHECKS:
        assert c.check in gate_errors.__doc__


def test_a_full_policy_parses() -> None:
    world = World()
    p = world.policy()
    assert p.pins == {("agent", "stable"), ("agent", "beta")}
    assert p.kinds == {"release", "update", "rule-bundle"}
    assert p.max_checkpoint_age == 3600
    assert p.witnesses.quorum == "regions"
    assert p.rule_bundles is not None and p.rule_bundles.min_auditors == 2
    assert p.publisher == world.publisher.key


def test_witness_policy_file_is_relative_to_the_policy(tmp_path: Path) -> None:
    world = World()
    doc = world.policy_doc()
    (tmp_path / "w.policy").write_text(doc.pop("witness_policy"))  # type: ignore[arg-type]
    doc["witness_policy_file"] = "w.policy"
    (tmp_path / "p.json").write_text(json.dumps(doc))
    assert load_client_policy(tmp_path / "p.json").witnesses.quorum == "regions"
    with pytest.raises(ConfigError):
        parse_client_policy(json.dumps(doc).encode())  # nothing to read it with
    (tmp_path / "w.policy").unlink()
    with pytest.raises(ConfigError):
        load_client_policy(tmp_path / "p.json")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"version": 2}, ConfigError),
        ({"version": "1"}, ConfigError),
        ({"surprise": True}, FormatError),
        ({"pins": []}, PolicyError),
        ({"pins": [{"product": "agent"}]}, FormatError),
        ({"pins": [{"product": "agent", "channels": []}]}, FormatError),
        ({"logs": []}, PolicyError),
        ({"logs": ["not a key"]}, FormatError),
        ({"witness_policy": ""}, PolicyError),
        ({"witness_policy": "# nothing\n"}, PolicyError),
        ({"witness_policy_file": "x"}, PolicyError),  # both given
        ({"publisher": 5}, FormatError),
        ({"publisher": "x+00000000+AAAA"}, FormatError),
        ({"max_checkpoint_age": 0}, FormatError),
        ({"max_checkpoint_age": True}, FormatError),
        ({"kinds": ["key-set"]}, FormatError),
        ({"rule_bundles": {"auditors": [], "audits": ["a"], "min_auditors": 1}}, FormatError),
    ],
)
def test_bad_policies_are_refused(change: dict[str, object], error: type[Exception]) -> None:
    doc = World().policy_doc(**change)
    with pytest.raises(error):
        parse_client_policy(json.dumps(doc).encode())


def test_unsatisfiable_auditor_requirement_is_refused() -> None:
    world = World()
    rules = world.policy_doc()["rule_bundles"]
    rules["min_auditors"] = 4  # type: ignore[index]
    with pytest.raises(PolicyError, match="unsatisfiable"):
        world.policy(rule_bundles=rules)


def test_state_survives_restarts_and_round_trips(tmp_path: Path) -> None:
    world = World()
    a, b = world.publish("1.0.0")
    with world.gate(tmp_path) as gate:
        gate.admit(a, format_bundle(b))
        state = gate.state
    data = (tmp_path / "state.json").read_bytes()
    assert load_state(data, world.policy()) == state
    assert dump_state(state, world.policy()) == data
    assert world.gate(tmp_path).state == state
    assert not list(tmp_path.glob(".state.*"))  # no temp file left behind


def test_corrupt_state_is_a_config_error(tmp_path: Path) -> None:
    world = World()
    (tmp_path / "state.json").write_text('{"version": 1}')
    with pytest.raises(ConfigError, match="corrupt"):
        world.gate(tmp_path)
    (tmp_path / "state.json").write_text('{"version": 9}')
    with pytest.raises(ConfigError):
        world.gate(tmp_path)


def test_state_with_a_lone_surrogate_is_a_config_error_not_a_crash(tmp_path: Path) -> None:
    # json.loads accepts "\ud800"; the next admission would then fail to write the
    # state back with UnicodeEncodeError. The state is parsed strictly instead.
    world = World()
    a, b = world.publish("1.0.0")
    world.gate(tmp_path).admit(a, format_bundle(b))
    text = (tmp_path / "state.json").read_text()
    (tmp_path / "state.json").write_text(text.replace('"stable"', '"stable\\ud800"'))
    with pytest.raises(ConfigError, match="surrogate"):
        world.gate(tmp_path)


def test_state_of_another_publisher_pin_does_not_carry_keys(tmp_path: Path) -> None:
    world = World()
    a, b = world.publish("1.0.0")
    world.gate(tmp_path).admit(a, format_bundle(b))
    other = World()
    assert UpdateGate(other.policy(), tmp_path).state.keys is None
