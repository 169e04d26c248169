"""The monitor against a lying log and lying witnesses, each test named after the attack."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.errors import InconsistentCheckpointError
from overt.formats.checkpoint import open_checkpoint
from overt.formats.dsse import format_envelope, sign_envelope
from overt.formats.merkle import leaf_hash
from overt.formats.note import Ed25519Signer
from overt.formats.policy import parse_policy
from overt.log.client import DirectorySource
from overt.monitor import (
    EventSink,
    Monitor,
    MonitorState,
    Witness,
    make_check,
)
from overt.monitor.checks import Check

from .sim import LogSimulator, WitnessSimulator, lines


def monitor(
    log: LogSimulator,
    state_dir: Path,
    *,
    witnesses: Sequence[Witness] = (),
    checks: Sequence[Check] = (),
    policy_text: bytes | None = None,
    batch_tiles: int = 64,
) -> tuple[Monitor, EventSink, io.StringIO]:
    out = io.StringIO()
    sink = EventSink(out)
    m = Monitor(
        log,
        log.verifier,
        MonitorState(state_dir),
        sink,
        witnesses=witnesses,
        checks=checks,
        policy=None if policy_text is None else parse_policy(policy_text),
        batch_tiles=batch_tiles,
        fetch_threads=2,
        clock=lambda: 1_750_000_000.0,
    )
    return m, sink, out


def alert_kinds(sink: EventSink) -> list[str]:
    return [e.kind for e in sink.events if e.is_alert]


def evidence_notes(state_dir: Path) -> list[list[bytes]]:
    state = MonitorState(state_dir)
    return [list(ev.notes) for ev in state.evidence()]


# --- the log against the checkpoint the monitor kept --------------------------------------


def test_client_sees_checkpoint_inconsistent_with_kept_one(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(300)
    m, sink, _ = monitor(log, tmp_path)
    assert m.poll().checked == 300
    kept = log.checkpoint()
    # The log now serves a tree of 400 whose history differs at entry 123 (a fork).
    forked = log.branch(123)
    forked.add(b"rewritten history")
    forked.add_many(276)
    log.view = forked
    with pytest.raises(InconsistentCheckpointError) as caught:
        m.poll()
    assert type(caught.value).__name__ == "ForkError"
    assert alert_kinds(sink) == ["fork"]
    [notes] = evidence_notes(tmp_path)
    assert notes == [kept, forked.checkpoint()]
    # The evidence convinces a third party holding only the log key: both notes are genuine,
    # and the proof shows the size-400 tree does not start with the kept size-300 tree.
    [ev] = MonitorState(tmp_path).evidence()
    small, large = ev.verify(log.verifier)
    assert (small.checkpoint.size, large.checkpoint.size) == (300, 400)
    assert ev.prefix_root == forked.tree.root(300) != log.tree.root(300)
    # The kept position did not move to the forked tree.
    assert MonitorState(tmp_path).load(log.verifier).checkpoint.raw == kept  # type: ignore[union-attr]


def test_client_checkpoint_inconsistent_with_the_monitors_view_is_evidence(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(100)
    m, sink, _ = monitor(log, tmp_path)
    m.poll()
    # Checkpoints a client got elsewhere: honest ones at any size relate calmly ...
    assert m.check_checkpoint(log.checkpoint(40)) == "behind"
    assert m.check_checkpoint(log.checkpoint(100)) == "same"
    log.add_many(10, publish=False)
    assert m.check_checkpoint(log.checkpoint(110)) == "ahead-unproven"
    log.published = 110
    assert m.check_checkpoint(log.checkpoint(110)) == "ahead"
    assert alert_kinds(sink) == []
    # ... one from a tree the log showed only to that client is evidence.
    other = log.branch(60)
    other.add_many(10, prefix=b"shown to one client")
    with pytest.raises(InconsistentCheckpointError) as caught:
        m.check_checkpoint(other.checkpoint(), source="updater 17")
    assert type(caught.value).__name__ == "ForkError"
    [ev] = MonitorState(tmp_path).evidence()
    assert ev.sources == ("updater 17", "log")
    ev.verify(log.verifier)
    with pytest.raises(InconsistentCheckpointError):
        m.check_checkpoint(log.checkpoint(100))


def test_rollback_of_the_log_is_detected(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(50)
    m, sink, _ = monitor(log, tmp_path)
    m.poll()
    kept = log.checkpoint()
    log.published = 40  # the log serves an older (smaller) tree again
    with pytest.raises(InconsistentCheckpointError) as caught:
        m.poll()
    assert type(caught.value).__name__ == "RollbackError"
    assert alert_kinds(sink) == ["rollback"]
    [notes] = evidence_notes(tmp_path)
    assert notes == [kept, log.checkpoint(40)]
    [ev] = MonitorState(tmp_path).evidence()
    ev.verify(log.verifier)


def test_equivocation_by_the_log_over_time_is_detected(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(10)
    m, sink, _ = monitor(log, tmp_path)
    m.poll()
    kept = log.checkpoint()
    other = log.branch(9)
    other.add(b"a different tenth entry")
    log.checkpoint_override = other.checkpoint()
    with pytest.raises(InconsistentCheckpointError) as caught:
        m.poll()
    assert type(caught.value).__name__ == "EquivocationError"
    assert alert_kinds(sink) == ["equivocation"]
    assert evidence_notes(tmp_path) == [[kept, other.checkpoint()]]


def test_log_serving_tiles_that_contradict_its_checkpoint_is_an_alert(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(20)
    m, sink, _ = monitor(log, tmp_path)
    m.poll()
    log.add_many(300)
    # Entry 100 and its leaf hash are replaced consistently: bundle and tile agree with each
    # other but not with the signed root.
    log.served_bundles[100] = b"smuggled"
    log.served_tiles[100] = leaf_hash(b"smuggled")
    result = m.poll()
    # Tiles are not signed: an alert, but no evidence against the log's checkpoints.
    assert alert_kinds(sink) == ["bad-tiles"]
    assert MonitorState(tmp_path).evidence() == []
    assert (result.size, result.checked) == (20, 20)  # the new checkpoint was not kept
    del log.served_bundles[100], log.served_tiles[100]
    assert m.poll().checked == 320


def test_bundle_that_does_not_match_its_tile_is_an_alert(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(600)
    log.served_bundles[513] = b"not what the tile says"
    m, sink, _ = monitor(log, tmp_path, batch_tiles=1)
    result = m.poll()
    assert alert_kinds(sink) == ["entry-mismatch"]
    assert [e.data["index"] for e in sink.events if e.kind == "entry-mismatch"] == [513]
    assert result.checked == 512  # the two full tiles before it were proven and kept
    del log.served_bundles[513]
    assert m.poll().checked == 600


def test_forged_checkpoint_signature_is_an_alert_and_not_kept(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(5)
    m, sink, _ = monitor(log, tmp_path)
    m.poll()
    impostor = LogSimulator(log.origin, Ed25519Signer(log.origin, Ed25519PrivateKey.generate()))
    impostor.add_many(8)
    log.checkpoint_override = impostor.checkpoint()
    result = m.poll()
    assert alert_kinds(sink) == ["bad-checkpoint"]
    assert result.size == 5


# --- split views between the log and its witnesses ----------------------------------------


def test_split_view_between_log_and_witness_is_saved_as_evidence(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(30)
    # The witness is shown another tree of the same size (same key, same origin).
    other = log.branch(29)
    other.add(b"the entry only the witness sees")
    witness = WitnessSimulator()
    witness.cosign(other.checkpoint())
    m, sink, out = monitor(
        log, tmp_path, witnesses=[Witness("w1", witness, witness.signer.verifier())]
    )
    with pytest.raises(InconsistentCheckpointError) as caught:
        m.poll()
    assert type(caught.value).__name__ == "EquivocationError"
    assert alert_kinds(sink) == ["equivocation"]
    [ev] = MonitorState(tmp_path).evidence()
    assert ev.kind == "equivocation"
    assert ev.sources == ("log", "witness w1")
    a, b = (open_checkpoint(n, log.verifier) for n in ev.notes)
    assert a.checkpoint.size == b.checkpoint.size == 30
    assert a.checkpoint.root_hash != b.checkpoint.root_hash
    assert ev.notes[1] == witness.latest[log.origin]  # the witness's note, cosignature and all
    ev.verify(log.verifier)
    [alert] = [e for e in lines(out.getvalue()) if e["level"] == "alert"]
    assert alert["event"] == "equivocation" and alert["evidence"].endswith(".json")


def test_split_view_with_witness_at_an_older_size_is_a_fork(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(300)
    other = log.branch(200)
    other.add_many(50, prefix=b"other")
    witness = WitnessSimulator()
    witness.cosign(other.checkpoint())  # size 250, not a prefix of the monitor's 300
    m, _sink, _ = monitor(log, tmp_path, witnesses=[Witness("w1", witness)])
    with pytest.raises(InconsistentCheckpointError) as caught:
        m.poll()
    assert type(caught.value).__name__ == "ForkError"
    [ev] = MonitorState(tmp_path).evidence()
    assert ev.kind == "fork" and ev.sources == ("witness w1", "log")
    ev.verify(log.verifier)


def test_witness_with_forged_cosignature_is_an_alert(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(3)
    witness = WitnessSimulator()
    witness.cosign(log.checkpoint())
    witness.forge = True
    m, sink, _ = monitor(
        log, tmp_path, witnesses=[Witness("w1", witness, witness.signer.verifier())]
    )
    m.poll()
    assert alert_kinds(sink) == ["witness-checkpoint-invalid"]
    assert MonitorState(tmp_path).evidence() == []  # a bad witness is not the log's lie


def test_honest_witnesses_behind_same_and_ahead_raise_no_alert(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(100)
    behind, same, ahead = (
        WitnessSimulator("w.example/a"),
        WitnessSimulator(),
        WitnessSimulator("w.example/c"),
    )
    behind.cosign(log.checkpoint(60))
    same.cosign(log.checkpoint(100))
    log.add_many(20, publish=False)  # cosigned before the log publishes it
    ahead.cosign(log.checkpoint(120))
    ws = [Witness(n, w) for n, w in (("a", behind), ("b", same), ("c", ahead))]
    m, sink, _ = monitor(log, tmp_path, witnesses=ws)
    m.poll()
    assert alert_kinds(sink) == []
    relations = {e.data["witness"]: e.data["relation"] for e in sink.events if e.kind == "witness"}
    assert relations == {"a": "behind", "b": "same", "c": "ahead-unproven"}
    log.published = 120
    sink.events.clear()
    m.poll()
    relations = {e.data["witness"]: e.data["relation"] for e in sink.events if e.kind == "witness"}
    assert relations == {"a": "behind", "b": "behind", "c": "same"}


def test_witness_unknown_or_down_is_a_warning_not_an_alert(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(3)
    m, sink, _ = monitor(log, tmp_path, witnesses=[Witness("w1", WitnessSimulator())])
    m.poll()
    assert alert_kinds(sink) == []
    assert [e.kind for e in sink.events if e.level == "warning"] == ["witness-unknown-log"]


# --- the state, once poisoned, stays poisoned ----------------------------------------------


def test_state_with_evidence_fails_every_later_verification(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(10)
    m, _, _ = monitor(log, tmp_path)
    m.poll()
    log.published = 9
    with pytest.raises(InconsistentCheckpointError):
        m.poll()
    log.published = 10  # the log behaves again: too late
    for _ in range(3):
        with pytest.raises(InconsistentCheckpointError) as caught:
            m.poll()
        assert log.checkpoint(10) in caught.value.evidence
    # A new monitor (a restart) on the same state refuses too, before reading anything.
    fresh, sink, _ = monitor(log, tmp_path)
    log.reads.clear()
    with pytest.raises(InconsistentCheckpointError):
        fresh.poll()
    assert log.reads == []
    assert alert_kinds(sink) == ["evidence-on-file"]
    with pytest.raises(InconsistentCheckpointError):
        fresh.run(interval=0.01)
    # Even damaged evidence counts.
    [path] = (tmp_path / "evidence").iterdir()
    path.write_bytes(b"garbage")
    with pytest.raises(InconsistentCheckpointError):
        MonitorState(tmp_path).require_clean()
    path.unlink()  # a human removed the evidence after investigating
    assert fresh.poll().size == 10


def test_monitor_resumes_from_state(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(300)
    m, sink, _ = monitor(log, tmp_path, checks=[make_check("size-limit=8")])
    first = m.poll()
    assert (first.size, first.checked, first.entries) == (300, 300, 300)
    flagged = [e.data["index"] for e in sink.events if e.kind == "check"]
    assert flagged == list(range(100, 300))  # "entry 100".."entry 299" are 9 bytes
    log.add_many(400)
    log.reads.clear()
    resumed, sink2, _ = monitor(log, tmp_path, checks=[make_check("size-limit=8")])
    second = resumed.poll()
    assert (second.size, second.checked, second.entries) == (700, 700, 400)
    assert [e.data["index"] for e in sink2.events if e.kind == "check"] == list(range(300, 700))
    # Only the tiles from the one holding entry 300 onwards were downloaded again.
    bundles = sorted(p for p in log.reads if p.startswith("tile/entries/"))
    assert bundles == ["tile/entries/001", "tile/entries/002.p/188"]
    assert "checkpoint" in log.reads


def test_monitor_without_state_dir_keeps_state_in_memory(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(5)
    sink = EventSink(io.StringIO())
    m = Monitor(log, log.verifier, MonitorState(None), sink)
    assert m.poll().checked == 5
    log.published = 4
    with pytest.raises(InconsistentCheckpointError):
        m.poll()
    with pytest.raises(InconsistentCheckpointError):
        m.poll()


def test_monitor_follows_a_log_directory(tmp_path: Path) -> None:
    from overt.log.log import Log

    with Log.create(tmp_path / "log", "dir.example/log") as real:
        real.add_many([b"entry %d" % i for i in range(1000)])
        vkey = real.vkey
    from overt.formats.note import parse_vkey

    sink = EventSink(io.StringIO())
    m = Monitor(
        DirectorySource(tmp_path / "log"), parse_vkey(vkey), MonitorState(tmp_path / "s"), sink
    )
    assert m.poll().checked == 1000
    assert alert_kinds(sink) == []


# --- entry checks -------------------------------------------------------------------------


def test_entry_check_alerts(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    canonical = format_envelope(sign_envelope("text/plain", b"release 1.0", [("k1", key)]))
    spaced = canonical.replace(b",", b", ")
    log = LogSimulator()
    log.add(
        b"\x00\x01binary, not JSON",  # 0: ignored by dsse-envelope
        canonical,  # 1: fine
        b'{"not": "an envelope"}',  # 2: JSON, not DSSE
        spaced,  # 3: DSSE, not canonical
        b"x" * 2000,  # 4: too large for size-limit=1500
        b"  [1, 2]",  # 5: JSON (after blanks), not DSSE
    )
    checks = [make_check("size-limit=1500"), make_check("dsse-envelope")]
    m, _sink, out = monitor(log, tmp_path, checks=checks)
    m.poll()
    found = [(e["check"], e["index"]) for e in lines(out.getvalue()) if e["event"] == "check"]
    assert found == [
        ("dsse-envelope", 2),
        ("dsse-envelope", 3),
        ("size-limit", 4),
        ("dsse-envelope", 5),
    ]


def test_a_crashing_check_is_an_alert_not_a_crash(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        def check(self, index: int, entry: bytes) -> list[object]:
            raise RuntimeError("bug in a plug-in")

    log = LogSimulator()
    log.add_many(2)
    m, sink, _ = monitor(log, tmp_path, checks=[Broken()])  # type: ignore[list-item]
    assert m.poll().checked == 2
    assert alert_kinds(sink) == ["check-failed", "check-failed"]


# --- policy ------------------------------------------------------------------------------


def test_checkpoint_without_witness_quorum_is_an_alert_under_a_policy(tmp_path: Path) -> None:
    log = LogSimulator()
    log.add_many(4)
    w1, w2 = WitnessSimulator("w.example/1"), WitnessSimulator("w.example/2")
    policy = (
        f"log {log.vkey}\nwitness a {w1.vkey}\nwitness b {w2.vkey}\ngroup g 2 a b\nquorum g\n"
    ).encode()
    m, sink, _ = monitor(log, tmp_path, policy_text=policy)
    m.poll()
    assert alert_kinds(sink) == ["bad-checkpoint"]
    assert MonitorState(tmp_path).load(log.verifier) is None
    note = log.checkpoint()
    both = w2.cosign(w1.cosign(note))
    log.checkpoint_override = both
    assert m.poll().checked == 4
    assert alert_kinds(sink) == ["bad-checkpoint"]  # no new alert
