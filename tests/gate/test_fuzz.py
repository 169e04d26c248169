"""Hostile JSON through the whole gate: every failure is a GateError naming its check.

Each JSON string and number of a valid bundle (and of the in-toto statement
inside its envelope, re-signed and re-logged so that the mutation reaches the
checks behind the signature), and of a valid client policy, is replaced by
hostile values: lone UTF-16 surrogates, NUL, a trailing newline, huge and
negative numbers, wrong types. ``UpdateGate.admit`` must then either admit or
raise a :class:`GateError`; a policy must parse or raise an ``OvertError``,
never ``UnicodeEncodeError``, ``TypeError``, ``ValueError`` and friends.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from overt.errors import OvertError
from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, format_envelope, sign_envelope
from overt.formats.proof import TlogProof
from overt.formats.statement import RuleAudit, format_statement, make_statement
from overt.gate import UpdateGate, parse_client_policy
from overt.gate.errors import AuditError, GateError
from overt.publish.bundle import Bundle, format_bundle
from overt.publish.keys import generate_publisher_key
from overt.publish.keyset import KeyState, make_keyset_entry

from .sim import World

Path = tuple[str | int, ...]

#: Replacements for a string leaf (applied to its value) and for any leaf.
_STRING_MUTATIONS: tuple[Callable[[str], object], ...] = (
    lambda s: "\ud800",
    lambda s: s + "\udfff",
    lambda s: "\ud83d" + s,
    lambda s: s + "\n",
    lambda s: s + "\x00",
    lambda s: "\x00",
    lambda s: "",
    lambda s: " " + s,
    lambda s: s * 300,
    lambda s: s[:-1],
)
_ANY_MUTATIONS: tuple[object, ...] = (
    None,
    True,
    0,
    -1,
    1.5,
    10**30,
    -(10**30),
    2**63,
    1e308,
    [],
    {},
    ["\ud800"],
    {"\ud800": 1},
)


def _leaves(obj: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _leaves(value, (*path, i))
    else:
        yield path, obj


def _set(obj: Any, path: Path, value: object) -> Any:
    copy = json.loads(json.dumps(obj))
    target = copy
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return copy


def _mutations(obj: Any) -> Iterator[tuple[str, Any]]:
    for path, value in _leaves(obj):
        if isinstance(value, str):
            for i, mutate in enumerate(_STRING_MUTATIONS):
                yield f"{path} string-mutation {i}", _set(obj, path, mutate(value))
        for other in _ANY_MUTATIONS:
            yield f"{path} = {other!r:.20}", _set(obj, path, other)


def _dumps(obj: Any) -> bytes:
    # ensure_ascii: lone surrogates travel as \ud800 escapes, as a hostile file would carry them.
    return json.dumps(obj, sort_keys=True).encode("ascii")


def _admit_or_gate_error(gate: UpdateGate, artifact: bytes, data: bytes, case: str) -> None:
    try:
        gate.admit(artifact, data)
    except GateError as err:
        assert err.check and str(err).startswith(err.check), case
    except Exception as err:  # the point of the test
        pytest.fail(f"{case}: {type(err).__name__}: {err!r:.200}")


@pytest.fixture(scope="module")
def rule_world() -> tuple[World, bytes, Bundle]:
    """A world with a published rule bundle: a key set, two auditors' sign-offs, a proof."""
    world = World()
    _, new = generate_publisher_key("vendor.example/release-2")  # a rotation: a key set
    world.keysets = [
        make_keyset_entry(KeyState.pinned(world.publisher.key), [world.publisher], [new.key])
    ]
    world.publisher = new
    rules = b"rule fuzz { condition: true }"
    digest = hashlib.sha256(rules).hexdigest()
    audits = []
    for i in (0, 1):
        auditor = world.auditors[i]
        stmt = make_statement("rules.bin", digest, RuleAudit("no-espionage", "pass"))
        env = sign_envelope(
            PAYLOAD_TYPE_IN_TOTO, format_statement(stmt), [(auditor.keyid, auditor)]
        )
        audits.append(format_envelope(env))
    world.publish("1.0.0")
    artifact, bundle = world.publish(
        "5", rules, kind="rule-bundle", attestations=audits, consistency_from=[1]
    )
    world.gate().admit(artifact, format_bundle(bundle))  # valid as published
    assert bundle.keysets and len(bundle.attestations) == 2 and bundle.consistency
    return world, artifact, bundle


def test_hostile_json_in_a_bundle_raises_only_gate_errors(
    rule_world: tuple[World, bytes, Bundle],
) -> None:
    world, artifact, bundle = rule_world
    gate = world.gate()
    obj = json.loads(format_bundle(bundle))
    cases = 0
    for case, mutated in _mutations(obj):
        _admit_or_gate_error(gate, artifact, _dumps(mutated), case)
        cases += 1
    assert cases > 500


def _relogged(world: World, statement: Any) -> tuple[bytes, bytes]:
    """A bundle for ``statement`` (any JSON), signed by the publisher and logged."""
    payload = json.dumps(statement, sort_keys=True).encode("ascii")
    signer = world.publisher
    entry = format_envelope(sign_envelope(PAYLOAD_TYPE_IN_TOTO, payload, [(signer.keyid, signer)]))
    (index,) = world.log.add_many([entry])
    note = world.log.checkpoint()
    size = world.log.tree.size
    proof = TlogProof(index, tuple(world.log.inclusion_proof(index, size)), note)
    return entry, format_bundle(Bundle(entry, proof))


def test_hostile_json_in_a_signed_logged_statement_raises_only_gate_errors() -> None:
    world = World()
    artifact, bundle = world.publish("1.0.0")
    statement = json.loads(
        base64.b64decode(json.loads(format_bundle(bundle))["envelope"]["payload"])
    )
    gate = world.gate(fetch_consistency=world.log.consistency_proof)
    for case, mutated in _mutations(statement):
        _, data = _relogged(world, mutated)
        _admit_or_gate_error(gate, artifact, data, case)


def test_hostile_json_in_a_client_policy_is_refused_or_gated() -> None:
    world = World()
    artifact, bundle = world.publish("1.0.0")
    data = format_bundle(bundle)
    for case, mutated in _mutations(world.policy_doc()):
        try:
            policy = parse_client_policy(_dumps(mutated))
        except OvertError:
            continue
        except Exception as err:  # the point of the test
            pytest.fail(f"{case}: {type(err).__name__}: {err!r:.200}")
        _admit_or_gate_error(UpdateGate(policy, clock=world.clock), artifact, data, case)


def test_attestation_with_another_payload_type_is_an_audit_error() -> None:
    world = World()
    rules = b"rule odd { condition: true }"
    digest = hashlib.sha256(rules).hexdigest()
    auditor = world.auditors[0]
    stmt = make_statement("rules.bin", digest, RuleAudit("no-espionage", "pass"))
    odd = format_envelope(
        sign_envelope("application/json", format_statement(stmt), [(auditor.keyid, auditor)])
    )
    _, bundle = world.publish("6", rules, kind="rule-bundle", attestations=[odd])
    with pytest.raises(AuditError, match="attestation 0 is not an in-toto statement"):
        world.gate().admit(rules, format_bundle(bundle))


_json_leaf = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_json_values_anywhere_in_a_bundle_raise_only_gate_errors(
    rule_world: tuple[World, bytes, Bundle], data: st.DataObject
) -> None:
    world, artifact, bundle = rule_world
    obj = json.loads(format_bundle(bundle))
    leaves = [p for p, _ in _leaves(obj)]
    path = data.draw(st.sampled_from(leaves))
    value = data.draw(st.recursive(_json_leaf, lambda c: st.lists(c, max_size=3), max_leaves=5))
    _admit_or_gate_error(world.gate(), artifact, _dumps(_set(obj, path, value)), f"{path}")


@pytest.mark.parametrize(
    "path",
    [("proof",), ("envelope", "payloadType"), ("envelope", "signatures", 0, "keyid")],
)
def test_lone_surrogate_in_a_bundle_field_is_a_bundle_error(
    rule_world: tuple[World, bytes, Bundle], path: Path
) -> None:
    world, artifact, bundle = rule_world
    obj = json.loads(format_bundle(bundle))
    target = obj
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = "\ud800" + target[path[-1]]
    with pytest.raises(GateError, match=r"^bundle: .*surrogate"):
        world.gate().admit(artifact, _dumps(obj))


def test_lone_surrogate_in_a_policy_witness_policy_is_a_format_error() -> None:
    doc = World().policy_doc()
    doc["witness_policy"] = "\ud800" + str(doc["witness_policy"])
    with pytest.raises(OvertError, match="surrogate"):
        parse_client_policy(_dumps(doc))


def _raises(err: Exception) -> Callable[[int, int], list[bytes]]:
    def fetch(old: int, new: int) -> list[bytes]:
        raise err

    return fetch


@pytest.mark.parametrize(
    "fetch",
    [
        _raises(OSError("network is unreachable")),
        _raises(ValueError("a buggy fetcher")),
        lambda old, new: ["not bytes"],
        lambda old, new: None,
    ],
)
def test_a_failing_consistency_fetcher_is_a_consistency_refusal(
    tmp_path: pathlib.Path, fetch: Callable[[int, int], Any]
) -> None:
    world = World()
    world.gate(tmp_path).admit(*_b(world.publish("1.0.0")))
    with pytest.raises(GateError) as err:
        world.gate(tmp_path, fetch_consistency=fetch).admit(*_b(world.publish("1.0.1")))
    assert err.value.check == "consistency"


def _b(published: tuple[bytes, Bundle]) -> tuple[bytes, bytes]:
    return published[0], format_bundle(published[1])


def test_hostile_lines_in_the_proof_text_raise_only_gate_errors(
    rule_world: tuple[World, bytes, Bundle],
) -> None:
    world, artifact, bundle = rule_world
    gate = world.gate()
    obj = json.loads(format_bundle(bundle))
    lines = obj["proof"].split("\n")
    for i, line in enumerate(lines):
        for new in ("", " " + line, line + " ", line + "\r", "\ud800", "9" * 30, "index -1"):
            mutated = [*lines[:i], new, *lines[i + 1 :]]
            case = f"proof line {i} -> {new!r:.30}"
            _admit_or_gate_error(
                gate, artifact, _dumps(_set(obj, ("proof",), "\n".join(mutated))), case
            )
        doubled = [*lines[:i], line, line, *lines[i + 1 :]]
        _admit_or_gate_error(
            gate, artifact, _dumps(_set(obj, ("proof",), "\n".join(doubled))), f"{i}x2"
        )
