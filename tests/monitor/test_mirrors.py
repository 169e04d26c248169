"""Clients that demand data availability: the log offline, history rewritten after mirroring.

A mirror here is what a client sees of one (c2sp.org/tlog-mirror's monitoring API): a copy of
the log's tiles under ``<prefix>/<hex sha256(origin)>`` and the log's checkpoint cosigned by
the mirror's key. The copy is taken when the mirror "syncs"; after that the log may do what it
likes with its own copy, which is what these tests are about.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.monitor.sim import T0, LogSimulator, Scope, WitnessSimulator, _send, serve

from overt.cli import main as cli_main
from overt.errors import LogError, NotFoundError, ProofError
from overt.formats import merkle
from overt.formats.checkpoint import open_checkpoint
from overt.formats.cosignature import CosignatureSigner, cosign_line
from overt.formats.merkle import leaf_hash
from overt.formats.note import parse_note
from overt.formats.policy import MirrorQuorumError, Policy, mirror_prefix, parse_policy
from overt.log.client import HTTPSource
from overt.monitor.events import EventSink
from overt.monitor.follow import Monitor
from overt.monitor.gossip import Witness
from overt.monitor.mirrors import (
    FallbackSource,
    Mirror,
    MirroredLog,
    merge_cosignatures,
    verify_mirrored_log,
)
from overt.monitor.state import MonitorState


class Offline:
    """A log that cannot be reached at all."""

    def read(self, path: str) -> bytes:
        raise LogError(f"GET {path}: connection refused")

    def close(self) -> None:
        """Nothing to release."""


class MirrorSimulator:
    """A mirror's monitoring API: a copy of the log taken at :meth:`sync`, cosigned."""

    def __init__(self, name: str, log: LogSimulator) -> None:
        self.signer = CosignatureSigner(name, Ed25519PrivateKey.generate(), lambda: T0)
        self.origin = log.origin
        self.copy = LogSimulator(log.origin, log.signer)
        self.note: bytes | None = None
        self.min_index = 0  # served at <prefix>/min-index

    @property
    def vkey(self) -> str:
        return self.signer.verifier().vkey

    def sync(self, log: LogSimulator) -> None:
        self.copy = log.branch(log.published)
        note = log.checkpoint()
        self.note = note + cosign_line(self.signer, parse_note(note).text)

    def read(self, path: str) -> bytes:
        if path == "checkpoint":
            if self.note is None:
                raise NotFoundError("no checkpoint yet")
            return self.note
        if path == "min-index":
            return b"%d\n" % self.min_index
        return self.copy.read(path)

    def close(self) -> None:
        """Nothing to release."""

    def mirror(self, name: str, min_index: int = 0) -> Mirror:
        return Mirror(name, self, self.signer.verifier(), min_index)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Served under ``/<hex sha256(origin)>/``, as the spec says."""
        if scope["type"] != "http":
            return
        prefix = "/" + hashlib.sha256(self.origin.encode()).hexdigest() + "/"
        path: str = scope["path"]
        try:
            if not path.startswith(prefix):
                raise NotFoundError(path)
            body, status = self.read(path[len(prefix) :]), 200
        except NotFoundError as err:
            body, status = str(err).encode(), 404
        await _send(send, status, body)


class Center:
    """A log with a witness and two mirrors (asia, europe) under one policy."""

    def __init__(self, entries: int = 600, min_index: int = 0) -> None:
        self.log = LogSimulator("center.example/log")
        self.log.add_many(entries)
        self.witness = WitnessSimulator("witness.example/w")
        self.asia = MirrorSimulator("asia.example/mirror", self.log)
        self.europe = MirrorSimulator("europe.example/mirror", self.log)
        self.min_index = min_index

    def policy_text(self, urls: dict[str, str] | None = None) -> str:
        urls = urls or {}
        europe_min = f" min-index={self.min_index}" if self.min_index else ""
        return (
            f"log {self.log.vkey}\n"
            f"witness w {self.witness.vkey} {urls.get('w', '')}\n"
            f"mirror asia {self.asia.vkey} {urls.get('asia', '')}\n"
            f"mirror europe {self.europe.vkey} {urls.get('europe', '')}{europe_min}\n"
            "group holders 2 asia europe\n"
            "quorum w\n"
            "mirror-quorum holders\n"
        )

    def policy(self) -> Policy:
        return parse_policy(self.policy_text().encode())

    def mirrors(self) -> list[Mirror]:
        return [self.asia.mirror("asia"), self.europe.mirror("europe", self.min_index)]

    def publish(self) -> None:
        """The log serves its latest checkpoint cosigned by the witness."""
        self.log.checkpoint_override = None
        self.log.checkpoint_override = self.witness.cosign(self.log.checkpoint())

    def verify_offline(self) -> MirroredLog:
        """``overt log verify`` with the log down: the mirrors, and the witness's copy."""
        witnessed = self.witness.latest[self.log.origin]
        return verify_mirrored_log(
            Offline(), self.mirrors(), self.log.verifier, self.policy(), extra=[witnessed]
        )

    def sync(self) -> None:
        self.publish()
        self.asia.sync(self.log)
        self.europe.sync(self.log)


# --- the origin log offline: clients verify from mirrors alone ----------------------------


def test_origin_log_offline_clients_verify_from_mirrors_alone() -> None:
    c = Center()
    c.sync()
    result = c.verify_offline()  # the witness's copy carries its cosignature
    assert result.origin_problem is not None and "connection refused" in result.origin_problem
    assert result.log.checkpoint.checkpoint.size == 600
    assert result.holding == ("asia", "europe")
    # The note verified carries the log's, the witness's and both mirrors' signatures.
    assert len(parse_note(result.log.checkpoint.raw).signatures) == 4


def test_origin_log_offline_one_mirror_holding_is_below_the_mirror_quorum() -> None:
    c = Center()
    c.sync()
    c.log.add_many(10)
    c.publish()
    c.asia.sync(c.log)  # europe lags at 600: it holds less than the tree verified (610)
    with pytest.raises(MirrorQuorumError, match=r"\[0, 610\): held by asia") as err:
        c.verify_offline()
    assert err.value.holding == ("asia",)


def test_a_pruned_mirror_never_counts_below_its_minimum_index() -> None:
    c = Center(min_index=256)
    c.sync()
    with pytest.raises(MirrorQuorumError, match="held by asia"):
        verify_mirrored_log(c.log, c.mirrors(), c.log.verifier, c.policy())


def test_origin_offline_and_a_mirror_that_lies_about_an_entry_is_caught() -> None:
    c = Center()
    c.sync()
    c.asia.copy.served_bundles[7] = b"not what was logged"
    c.europe.copy.served_bundles[7] = b"not what was logged"
    with pytest.raises(ProofError):
        c.verify_offline()


def test_origin_offline_without_the_witness_quorum_is_refused() -> None:
    c = Center()
    c.sync()  # the mirrors' copies carry no witness cosignature, and no witness copy is given
    with pytest.raises(Exception, match="witness quorum"):
        verify_mirrored_log(Offline(), c.mirrors(), c.log.verifier, c.policy())


def test_fallback_reads_a_partial_tile_from_a_mirror_that_has_the_full_one() -> None:
    c = Center(entries=300)
    c.sync()
    c.log.add_many(300)
    c.asia.sync(c.log)  # asia now serves the full tile 0 and bundle 0 only... and more
    source = FallbackSource([Offline(), c.asia])
    # A client of the tree of size 300 asks for the partial level-0 tile 1 of width 44.
    assert source.read("tile/0/001.p/44") == c.log.read("tile/0/001")[: 44 * 32]


def test_merge_cosignatures_refuses_notes_of_different_trees() -> None:
    c = Center()
    a = c.log.checkpoint()
    c.log.add_many(1)
    with pytest.raises(Exception, match="different texts"):
        merge_cosignatures([a, c.log.checkpoint()])


def test_log_verify_cli_with_the_log_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = Center()
    c.sync()
    with serve(c.asia) as asia, serve(c.europe) as europe, serve(c.witness) as w:
        policy = tmp_path / "p.policy"
        policy.write_text(c.policy_text({"w": w, "asia": asia, "europe": europe}))
        code = cli_main.main(["log", "verify", "http://127.0.0.1:9", "--policy", str(policy)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "unreachable" in err and "verified from its mirrors" in err
    assert "ok: center.example/log size 600" in out
    assert "mirror quorum holders met by asia, europe" in out


# --- the monitor --------------------------------------------------------------------------


def _monitor(c: Center, source: Any, sink: EventSink, **kw: Any) -> Monitor:
    return Monitor(
        source,
        c.log.verifier,
        MonitorState(None),
        sink,
        policy=c.policy(),
        witnesses=[Witness("w", c.witness, c.witness.signer.verifier())],
        mirrors=c.mirrors(),
        clock=lambda: T0,
        **kw,
    )


def _alerts(sink: EventSink, kind: str) -> list[Any]:
    return [e for e in sink.events if e.kind == kind]


@pytest.mark.parametrize("index", [300, 550])  # in a full bundle, in the last partial one
def test_log_rewrites_history_after_mirroring_monitor_alerts_with_evidence(index: int) -> None:
    c = Center()
    c.sync()
    sink = EventSink(io.StringIO())
    with _monitor(c, c.log, sink, audit_tiles=8) as m:
        m.poll()
        assert sink.alerts == 0
        # The log rewrites an entry (bundle and tile) after its mirrors stored the original.
        c.log.served_bundles[index] = b"a quieter history"
        c.log.served_tiles[index] = leaf_hash(b"a quieter history")
        m.poll()
    [alert] = _alerts(sink, "history-rewritten")
    assert alert.data["index"] == index and alert.data["mirror"] == "asia"
    # The evidence stands on its own: the log-signed checkpoint, the original entry and its
    # inclusion proof, and what the log serves now.
    signed = open_checkpoint(alert.data["checkpoint"].encode(), c.log.verifier)
    original = base64.b64decode(alert.data["entry"])
    proof = [base64.b64decode(h) for h in alert.data["proof"]]
    cp = signed.checkpoint
    merkle.verify_inclusion(leaf_hash(original), index, cp.size, proof, cp.root_hash)
    assert base64.b64decode(alert.data["served"]) == b"a quieter history" != original


def test_log_deletes_history_after_mirroring_monitor_alerts() -> None:
    c = Center()
    c.sync()

    class Deleting(LogSimulator):
        def read(self, path: str) -> bytes:
            if path == "tile/entries/000":
                raise NotFoundError(f"{path}: 404")
            return c.log.read(path)

    sink = EventSink(io.StringIO())
    with _monitor(c, Deleting(c.log.origin, c.log.signer), sink, audit_tiles=2) as m:
        m.poll()  # entries 0-255 are read from the mirrors; the audit finds them gone
    [alert] = _alerts(sink, "history-deleted")
    assert alert.data["index"] == 0 and alert.data["served"] is None
    assert m.state.load(c.log.verifier) is not None


def test_monitor_follows_the_mirrors_when_the_log_is_offline() -> None:
    c = Center()
    c.sync()
    sink = EventSink(io.StringIO())
    with _monitor(c, Offline(), sink) as m:
        result = m.poll()
    assert result.size == 600 and result.checked == 600
    assert sink.alerts == 0
    assert [e.kind for e in sink.events if e.level == "warning"] == ["log-unreachable"]


def test_monitor_alerts_when_the_mirror_quorum_falls_behind() -> None:
    c = Center()
    c.sync()
    sink = EventSink(io.StringIO())
    with _monitor(c, c.log, sink) as m:
        m.poll()
        m.poll()  # the mirrors hold [0, 600): no alert
        assert _alerts(sink, "mirror-quorum") == []
        c.log.add_many(10)
        c.publish()
        c.asia.sync(c.log)  # europe stops mirroring
        m.poll()
        m.poll()
    [alert] = _alerts(sink, "mirror-quorum")
    assert alert.data["holding"] == ["asia"] and alert.data["end"] == 610


def test_a_mirror_pruned_beyond_the_policy_never_counts_below_the_index_it_serves() -> None:
    c = Center()
    c.sync()
    c.europe.min_index = 256  # europe pruned; the policy still says it holds everything
    with serve(c.asia) as asia, serve(c.europe) as europe:
        mirrors = [
            Mirror(n, HTTPSource(mirror_prefix(url, c.log.origin)), m.signer.verifier())
            for n, url, m in (("asia", asia, c.asia), ("europe", europe, c.europe))
        ]
        with pytest.raises(MirrorQuorumError, match="held by asia"):
            verify_mirrored_log(c.log, mirrors, c.log.verifier, c.policy())
        c.europe.min_index = 0
        assert verify_mirrored_log(c.log, mirrors, c.log.verifier, c.policy()).holding == (
            "asia",
            "europe",
        )
        for m in mirrors:
            m.source.close()


def test_monitor_cli_follows_the_mirrors_with_the_log_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    c = Center()
    c.sync()
    with serve(c.asia) as asia, serve(c.europe) as europe, serve(c.witness) as w:
        policy = tmp_path / "p.policy"
        policy.write_text(c.policy_text({"w": w, "asia": asia, "europe": europe}))
        argv = ["monitor", "http://127.0.0.1:9", "--policy", str(policy), "--once"]
        code = cli_main.main([*argv, "--state", str(tmp_path / "state")])
        first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        code2 = cli_main.main([*argv, "--state", str(tmp_path / "state")])
        second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (code, code2) == (0, 0)
    assert [e["event"] for e in first if e["level"] == "warning"] == ["log-unreachable"]
    assert any(e["event"] == "entries" and (e["start"], e["end"]) == (0, 600) for e in first)
    assert not [e for e in second if e["level"] == "alert"]  # the quorum holds [0, 600)


def test_a_mirror_that_serves_entries_it_did_not_store_is_an_alert() -> None:
    # asia cosigned the tree but serves another entry 3: it does not hold what it vouched for.
    c = Center()
    c.sync()
    c.asia.copy.served_bundles[3] = b"not the logged entry"
    sink = EventSink(io.StringIO())
    with _monitor(c, c.log, sink, audit_tiles=1) as m:
        m.poll()
    [alert] = _alerts(sink, "mirror-bad-entries")
    assert alert.data["mirror"] == "asia" and alert.data["index"] == 0
    assert _alerts(sink, "history-rewritten") == []  # europe's copy agrees with the log
