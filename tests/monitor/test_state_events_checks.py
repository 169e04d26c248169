"""The monitor's persisted formats (state, evidence), its event lines, and the check registry."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.errors import ConfigError, FormatError, InconsistentCheckpointError, OvertError
from overt.formats.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from overt.formats.dsse import format_envelope, sign_envelope
from overt.formats.merkle import CompactRange, MemoryTree, leaf_hash
from overt.formats.note import Ed25519Signer
from overt.monitor import checks as checks_module
from overt.monitor.checks import (
    DsseEnvelope,
    SizeLimit,
    available_checks,
    default_checks,
    make_check,
    register_check,
)
from overt.monitor.events import Event, EventSink, format_event
from overt.monitor.state import (
    Evidence,
    MonitorState,
    Position,
    format_evidence,
    format_state,
    parse_evidence,
    parse_state,
)

ORIGIN = "state.example/log"
SIGNER = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
VERIFIER = SIGNER.verifier()
TREE = MemoryTree(leaf_hash(b"e%d" % i) for i in range(1000))


def position(size: int, checked: int) -> Position:
    note = sign_checkpoint(Checkpoint(ORIGIN, size, TREE.root(size)), SIGNER)
    edge = CompactRange()
    edge.extend(leaf_hash(b"e%d" % i) for i in range(checked))
    return Position(open_checkpoint(note, VERIFIER), edge)


# --- state.json ---------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "checked"), [(0, 0), (1, 0), (1, 1), (1000, 777), (1000, 1000)])
def test_state_round_trips(size: int, checked: int) -> None:
    pos = position(size, checked)
    data = format_state(pos, VERIFIER)
    back = parse_state(data, VERIFIER)
    assert back.checkpoint.raw == pos.checkpoint.raw
    assert back.edge == pos.edge and back.next == checked
    assert format_state(back, VERIFIER) == data
    assert (json.loads(data)["edge"] and checked) or not json.loads(data)["edge"]


def test_state_of_another_log_or_version_is_a_config_error() -> None:
    data = format_state(position(10, 5), VERIFIER)
    other = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate()).verifier()
    with pytest.raises(ConfigError, match="follows the log"):
        parse_state(data, other)
    obj = json.loads(data)
    obj["version"] = 2
    with pytest.raises(ConfigError, match="version"):
        parse_state(json.dumps(obj).encode(), VERIFIER)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda o: o.update(next=11), "beyond the checkpoint"),
        (lambda o: o.update(next=-1), "negative"),
        (lambda o: o.update(next=True), "a JSON true is not a number"),
        (lambda o: o.update(next=4), "edge does not fit next"),
        (lambda o: o.update(edge=[*o["edge"], o["edge"][0]]), "one hash too many"),
        (lambda o: o["edge"].__setitem__(0, o["edge"][0][:-1]), "truncated base64"),
        (lambda o: o["edge"].__setitem__(0, o["edge"][0].replace("=", "")), "unpadded"),
        (lambda o: o["edge"].__setitem__(0, 7), "a number for a hash"),
        (lambda o: o.update(extra=1), "unknown member"),
        (lambda o: o.pop("edge"), "missing member"),
        (lambda o: o.update(checkpoint=o["checkpoint"].replace("10\n", "11\n", 1)), "size edit"),
        (lambda o: o.update(checkpoint=o["checkpoint"][:-2] + "\n"), "signature cut"),
        (lambda o: o.update(checkpoint=1), "not a string"),
    ],
)
def test_damaged_state_is_refused(change: object, why: str) -> None:
    obj = json.loads(format_state(position(10, 5), VERIFIER))
    change(obj)  # type: ignore[operator]
    with pytest.raises(OvertError):
        parse_state(json.dumps(obj).encode(), VERIFIER)


def test_every_truncation_of_state_is_refused() -> None:
    data = format_state(position(10, 5), VERIFIER)
    for cut in range(len(data)):
        with pytest.raises(OvertError):
            parse_state(data[:cut], VERIFIER)


def test_duplicate_members_are_refused() -> None:
    data = format_state(position(10, 5), VERIFIER)
    with pytest.raises(FormatError):
        parse_state(data[:-1] + b',"next":5}', VERIFIER)


def test_state_directory_saves_atomically_and_loads(tmp_path: Path) -> None:
    state = MonitorState(tmp_path / "s")
    assert state.load(VERIFIER) is None
    state.save(position(10, 5), VERIFIER)
    state.save(position(20, 9), VERIFIER)
    assert state.load(VERIFIER).next == 9  # type: ignore[union-attr]
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["evidence", "state.json"]
    (tmp_path / "s" / "state.json").write_bytes(b"{}")
    with pytest.raises(ConfigError, match="unusable"):
        state.load(VERIFIER)


# --- evidence -----------------------------------------------------------------------------


def evidence(**changes: object) -> Evidence:
    fields: dict[str, object] = {
        "kind": "fork",
        "origin": ORIGIN,
        "reason": "because",
        "notes": (position(5, 0).checkpoint.raw, position(9, 0).checkpoint.raw),
        "sources": ("log", "witness w"),
        "time": 1_750_000_000,
        "proof": (TREE.root(1), TREE.root(2)),
        "prefix_root": TREE.root(5),
    }
    fields.update(changes)
    return Evidence(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ev", [evidence(), evidence(kind="equivocation", proof=(), prefix_root=None)]
)
def test_evidence_round_trips(ev: Evidence) -> None:
    data = format_evidence(ev)
    assert parse_evidence(data) == ev
    assert format_evidence(parse_evidence(data)) == data


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("kind", "bribery"),
        ("notes", []),
        ("sources", ["only one"]),
        ("proof", ["AAAA"]),
        ("prefix_root", "AAAA"),
        ("time", "yesterday"),
        ("version", 2),
    ],
)
def test_malformed_evidence_is_refused(change: str, value: object) -> None:
    obj = json.loads(format_evidence(evidence()))
    obj[change] = value
    with pytest.raises(FormatError):
        parse_evidence(json.dumps(obj).encode())


def test_evidence_is_saved_once_and_poisons_the_state(tmp_path: Path) -> None:
    state = MonitorState(tmp_path)
    state.require_clean()
    ev = evidence()
    first = state.save_evidence(ev)
    assert state.save_evidence(ev) == first  # idempotent: same notes, same file
    assert state.evidence() == [ev]
    with pytest.raises(InconsistentCheckpointError) as caught:
        state.require_clean()
    assert caught.value.evidence == ev.notes
    # A temporary file of an interrupted write alone does not poison.
    (tmp_path / "evidence" / first.rsplit("/", 1)[1]).unlink()
    (tmp_path / "evidence" / ".fork-0000000000000000.json.tmp1").write_bytes(b"{")
    state.require_clean()


# --- events -------------------------------------------------------------------------------


def test_event_lines_are_canonical_json() -> None:
    event = Event("check", "alert", "entry 4 is big", 1.5, {"index": 4, "check": "size-limit"})
    line = format_event(event)
    assert line == (
        b'{"check":"size-limit","event":"check","index":4,"level":"alert",'
        b'"message":"entry 4 is big","time":1.5}\n'
    )
    assert json.loads(line) == event.as_json()


def test_events_refuse_unknown_levels_and_reserved_names() -> None:
    with pytest.raises(ValueError):
        Event("x", "panic", "m", 0.0)
    with pytest.raises(ValueError):
        Event("x", "info", "m", 0.0, {"level": "alert"})


def test_sink_counts_alerts_and_writes_lines() -> None:
    out = io.StringIO()
    sink = EventSink(out, clock=lambda: 2.0)
    sink.info("checkpoint", "ok", size=1)
    sink.warning("witness-unreachable", "down")
    sink.alert("fork", "lie")
    assert sink.alerts == 1
    assert [json.loads(x)["level"] for x in out.getvalue().splitlines()] == [
        "info",
        "warning",
        "alert",
    ]


# --- checks -------------------------------------------------------------------------------


def test_builtin_checks_are_registered_and_default() -> None:
    assert {"size-limit", "dsse-envelope"} <= set(available_checks())
    assert {c.name for c in default_checks()} >= {"size-limit", "dsse-envelope"}
    assert isinstance(make_check("size-limit=10"), SizeLimit)
    assert make_check("size-limit=10").limit == 10  # type: ignore[attr-defined]
    assert isinstance(make_check("dsse-envelope"), DsseEnvelope)


@pytest.mark.parametrize(
    "spec",
    [
        "nope",
        "size-limit=",
        "size-limit=010",
        "size-limit=-1",
        "size-limit=0",
        "size-limit=1e3",
        "dsse-envelope=x",
    ],
)
def test_bad_check_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError):
        make_check(spec)


def test_register_check_refuses_duplicates_and_bad_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks_module, "_REGISTRY", dict(checks_module._REGISTRY))
    with pytest.raises(ConfigError):
        register_check("size-limit", SizeLimit.from_arg)
    for bad in ("", "Upper", "with space", "under_score"):
        with pytest.raises(ConfigError):
            register_check(bad, SizeLimit.from_arg)
    register_check("plug-in-2", SizeLimit.from_arg)
    assert "plug-in-2" in available_checks()


def test_size_limit_boundary() -> None:
    check = SizeLimit(4)
    assert check.check(0, b"1234") == []
    [alert] = check.check(7, b"12345")
    assert (alert.check, alert.index) == ("size-limit", 7)


def test_dsse_envelope_check() -> None:
    key = Ed25519PrivateKey.generate()
    good = format_envelope(sign_envelope("application/x", b"payload", [("k", key)]))
    check = DsseEnvelope()
    assert check.check(0, good) == []
    assert check.check(0, b"plain text") == []
    assert check.check(0, b"\xff\xfe binary") == []
    for bad in (b"{", b"[]", b' {"a":1}', good + b"\n", good.replace(b'":', b'": ')):
        [alert] = check.check(3, bad)
        assert alert.index == 3 and alert.check == "dsse-envelope"
