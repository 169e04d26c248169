"""Witnesses on a log shared by several front ends (overt.log.shared): the lease holder
gets each tree cosigned before the checkpoint row (what every front end serves) moves,
and the witnesses' own state carries over when the holder dies.

Two real witnesses (``overt.witness`` servers on 127.0.0.1, SQLite state), a 2-of-2
policy; PostgreSQL and moto's S3 emulator as in test_front_ends.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from tests.backends._cluster import (
    Checkpoints,
    FrontEnd,
    Load,
    check_log,
    db_url,
    running,
    wait_published,
    wait_until,
)
from tests.backends.conftest import PostgresSchema, free_port

from overt.cli.main import main
from overt.errors import LogError
from overt.formats import merkle
from overt.formats.policy import Policy, PolicyLog, parse_policy, verify_checkpoint
from overt.formats.proof import parse_proof, verify_proof
from overt.log.shared import SharedLog
from overt.log.stores import open_tiles
from overt.witness.config import init_witness, load_witness, trust_log
from overt.witness.server import WitnessApp

if TYPE_CHECKING:
    from conftest import Server

boto3 = pytest.importorskip("boto3")

ORIGIN = "witnessed.shared.example/log"
NAMES = ("north", "south")


@dataclass
class Witnessed:
    """A shared log directory with a witness policy, and its running witnesses."""

    directory: Path
    tiles: str
    vkey: str
    policy: Policy
    witnesses: dict[str, Server]


@pytest.fixture
def witnessed(
    tmp_path: Path,
    postgres: PostgresSchema,
    endpoint: str,
    asgi_server: Callable[[Any], Server],
    request: pytest.FixtureRequest,
) -> Witnessed:
    bucket = "fw-" + request.node.name.lower().replace("_", "-")[:50].strip("-")
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    tiles = f"s3://{bucket}/log?endpoint={endpoint}"
    directory = tmp_path / "a"
    SharedLog.create(directory, ORIGIN, tiles=tiles, index=db_url(postgres)).close()
    vkey = (directory / "log.vkey").read_text().strip()
    lines = [f"log {vkey}"]
    witnesses: dict[str, Server] = {}
    for name in NAMES:
        wdir = tmp_path / f"witness-{name}"
        wkey = init_witness(wdir, f"{name}.witness.example")
        trust_log(wdir, vkey)
        config = load_witness(wdir)
        server = asgi_server(WitnessApp(config.open_state(), config.logs, config.signer))
        witnesses[name] = server
        lines.append(f"witness {name} {wkey} {server.url}")
    lines += [f"group both 2 {' '.join(NAMES)}", "quorum both"]
    text = "\n".join(lines).encode() + b"\n"
    (directory / "witnesses.policy").write_bytes(text)
    return Witnessed(directory, tiles, vkey, parse_policy(text), witnesses)


@pytest.fixture
def pair(tmp_path: Path, witnessed: Witnessed) -> Iterator[tuple[SharedLog, SharedLog]]:
    shutil.copytree(witnessed.directory, tmp_path / "b")
    a, b = SharedLog(witnessed.directory), SharedLog(tmp_path / "b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture(autouse=True)
def every_pass_integrates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("overt.log.shared.INTERVAL", 0.0)


def _quorum(note: bytes, witnessed: Witnessed) -> int:
    """The size of ``note`` once it passed the policy's quorum (raises otherwise)."""
    verified = verify_checkpoint(note, witnessed.policy, extra_logs=[PolicyLog(witnessed.vkey)])
    return verified.checkpoint.size


def test_the_row_moves_only_to_a_checkpoint_the_witnesses_cosigned(
    pair: tuple[SharedLog, SharedLog], witnessed: Witnessed
) -> None:
    a, b = pair
    a.sequence([b"one", b"two"])
    a.integrate()
    assert a.holds_lease and a.published_size == 2
    b.integrate()  # adopts the row: the cosigned note
    assert b.published_size == 2 and _quorum(b.checkpoint(), witnessed) == 2
    assert open_tiles(witnessed.tiles).read("checkpoint") == a.checkpoint()
    proof = parse_proof(b.proof(1))
    verified = verify_proof(
        proof, merkle.leaf_hash(b"two"), witnessed.policy.logs[0].verifier, policy=witnessed.policy
    )
    assert len(verified.checkpoint.cosignatures()) == 2


def test_witnesses_down_hold_the_row_and_keep_the_entries_pending(
    pair: tuple[SharedLog, SharedLog], witnessed: Witnessed
) -> None:
    a, b = pair
    a.sequence([b"first"])
    a.integrate()
    assert a.published_size == 1
    witnessed.witnesses["south"].stop()
    assert b.sequence([b"second", b"third"]) == [1, 2]  # acknowledged all the same
    a.integrate()
    assert a.size == 3 and a.published_size == 1  # integrated, not witnessed: not served
    b.integrate()
    assert b.published_size == 1 and _quorum(b.checkpoint(), witnessed) == 1
    with pytest.raises(Exception, match="not yet covered by a witnessed checkpoint"):
        a.proof(2)
    with a._int_db.get().cursor() as cur:
        cur.execute("SELECT start, length(entries) FROM log_batches")
        rows = cur.fetchall()
    a._int_db.get().commit()
    # One batch, [1, 3), kept until a witnessed checkpoint covers it.
    assert rows == [(1, len(b"second") + len(b"third") + 4)]
    witnessed.witnesses["south"].start()
    a._witnessed_at = float("-inf")  # its retry is due
    a.integrate()
    assert a.published_size == 3 and _quorum(a.checkpoint(), witnessed) == 3


def test_a_holder_dead_after_its_witnesses_cosigned_is_continued_from_their_size(
    pair: tuple[SharedLog, SharedLog], witnessed: Witnessed
) -> None:
    """The holder got size 5 cosigned and died before swapping the row (still at 2): the
    witnesses are at 5, ahead of the row. The successor starts from the row, learns their
    size from one 409 each, and publishes a tree of at least 5 they cosign."""
    a, b = pair
    a.sequence([b"e%d" % i for i in range(2)])
    a.integrate()
    a.sequence([b"f%d" % i for i in range(3)])

    def dies(note: bytes, size: int) -> None:
        raise LogError("killed between the witnesses' cosignatures and the swap")

    a._publish = dies  # type: ignore[method-assign]
    with pytest.raises(LogError, match="killed"):
        a.integrate()
    assert a._witnessing is not None
    assert {s.size for s in a._witnessing.witnesses.values()} == {5}
    a.close()  # the session ends: the lease is free
    time.sleep(0.6)  # LEASE_RETRY
    b.sequence([b"g"])
    for _ in range(5):
        b.integrate()
        if b.published_size >= 6:
            break
    assert b.holds_lease and b.published_size == 6
    assert _quorum(b.checkpoint(), witnessed) == 6
    assert b._witnessing is not None
    assert all(s.up and s.size == 6 for s in b._witnessing.witnesses.values())


def test_a_quiet_shared_log_gets_fresh_cosignatures(
    pair: tuple[SharedLog, SharedLog], witnessed: Witnessed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder re-cosigns the same checkpoint; the other front end adopts the new note
    (same tree, newer timestamps) instead of refusing it as a rollback."""
    a, b = pair
    a.sequence([b"quiet"])
    a.integrate()
    b.integrate()
    before = b.checkpoint()
    monkeypatch.setattr("overt.log.shared.WITNESS_REFRESH", 0.0)
    monkeypatch.setattr("overt.log.shared.WITNESS_RETRY", 0.0)
    time.sleep(1.1)  # cosignature timestamps are in seconds
    a.integrate()
    b.integrate()
    assert b.published_size == 1 and b.checkpoint() != before
    assert _quorum(b.checkpoint(), witnessed) == 1


def test_mirror_feeding_is_refused_on_a_shared_log_in_one_line(
    witnessed: Witnessed, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["log", "serve", str(witnessed.directory), "--listen", f"127.0.0.1:{free_port()}"]
    witnessed.directory.joinpath("log.skey").chmod(0o600)
    witnessed.directory.joinpath("token").chmod(0o600)
    assert main([*args, "--mirror", "http://127.0.0.1:9/mirror"]) == 1
    err = capsys.readouterr().err.strip()
    assert "not supported on a shared log" in err and len(err.splitlines()) == 1


def test_witnessed_sequencer_killed_mid_load_is_replaced_and_witnesses_keep_cosigning(
    tmp_path: Path, witnessed: Witnessed, endpoint: str
) -> None:
    shutil.copytree(witnessed.directory, tmp_path / "b")
    front_ends = [FrontEnd(witnessed.directory, "a"), FrontEnd(tmp_path / "b", "b")]
    store = open_tiles(witnessed.tiles)
    token = (witnessed.directory / "token").read_text().strip()
    with running(front_ends), Checkpoints(front_ends, store) as polled:
        wait_until(lambda: any(fe.holds_lease() for fe in front_ends), 10, "a lease holder")
        leader = next(fe for fe in front_ends if fe.holds_lease())
        other = next(fe for fe in front_ends if fe is not leader)
        with Load(front_ends, token) as load:
            wait_until(lambda: load.count() >= 200, 30, "200 acknowledged entries")
            leader.kill()
            killed_at = load.count()
            takeover = wait_until(other.holds_lease, 10, "the other front end taking the lease")
            wait_until(lambda: load.count() >= killed_at + 200, 30, "200 more after the kill")
        assert takeover < 5, f"takeover took {takeover:.1f} s"
        wait_published(other, max(load.acked.values()) + 1)
        # The witnesses kept cosigning for the new holder: up, and at its published size.
        metrics = other.metrics()
        published = metrics["overt_log_published_size"]
        for name in NAMES:
            assert metrics[f'overt_witness_up{{witness="{name}"}}'] == 1
            assert metrics[f'overt_witness_size{{witness="{name}"}}'] >= published
        # An entry added through the second front end: its proof passes the policy.
        reply = httpx.post(
            other.url + "/add?proof=1",
            content=b"through the second front end",
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        (tmp_path / "proof").write_bytes(reply.content)
        (tmp_path / "entry").write_bytes(b"through the second front end")
        (tmp_path / "policy").write_bytes(
            witnessed.directory.joinpath("witnesses.policy").read_bytes()
        )
        assert (
            main(
                [
                    *("proof", "verify", str(tmp_path / "proof")),
                    *("--entry", str(tmp_path / "entry"), "--vkey", witnessed.vkey),
                    *("--policy", str(tmp_path / "policy"), "--max-age", "60"),
                ]
            )
            == 0
        )
        check_log(store, witnessed.vkey, load.acked, polled.seen)
        final = store.read("checkpoint")
        assert _quorum(final, witnessed) >= max(load.acked.values()) + 1
        for note in polled.seen:  # every tree any front end or the store served is witnessed
            if b"\n0\n" not in note.split(b"\n\n", 1)[0]:  # (but the empty one, at start)
                _quorum(note, witnessed)


def test_log_witnesses_installs_a_policy_in_a_shared_front_end_copy_and_refuses_a_bad_one(
    tmp_path: Path, witnessed: Witnessed, capsys: pytest.CaptureFixture[str]
) -> None:
    good = witnessed.directory / "witnesses.policy"
    (tmp_path / "good.policy").write_bytes(good.read_bytes())
    good.unlink()
    assert main(["log", "witnesses", str(witnessed.directory), str(tmp_path / "good.policy")]) == 0
    assert "quorum both" in capsys.readouterr().out
    assert good.read_bytes() == (tmp_path / "good.policy").read_bytes()
    (tmp_path / "bad.policy").write_bytes(f"log {witnessed.vkey}\n".encode())  # no quorum
    assert main(["log", "witnesses", str(witnessed.directory), str(tmp_path / "bad.policy")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "quorum" in err
    assert good.read_bytes() == (tmp_path / "good.policy").read_bytes()  # unchanged


def test_an_ml_dsa_witness_cosigns_checkpoints_but_no_subtrees_on_a_shared_log(
    tmp_path: Path,
    witnessed: Witnessed,
    asgi_server: Callable[[Any], Server],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Subtree cosignatures would be kept on one front end's disk: none are asked for,
    and the front end says so once, naming the witness."""
    wdir = tmp_path / "witness-pq"
    wkey = init_witness(wdir, "pq.witness.example", key_type="ml-dsa-44")
    trust_log(wdir, witnessed.vkey)
    config = load_witness(wdir)
    server = asgi_server(WitnessApp(config.open_state(), config.logs, config.signer))
    text = (
        f"log {witnessed.vkey}\nwitness pq {wkey} {server.url}\ngroup one 1 pq\nquorum one\n"
    ).encode()
    (witnessed.directory / "witnesses.policy").write_bytes(text)
    with caplog.at_level("WARNING", logger="overt.log"):
        log = SharedLog(witnessed.directory)
    try:
        assert any("pq cosign checkpoints only" in r.getMessage() for r in caplog.records)
        log.sequence([b"e%d" % i for i in range(300)])  # completes the range [0, 256)
        log.integrate()
        assert log.published_size == 300
        verify_checkpoint(
            log.checkpoint(), parse_policy(text), extra_logs=[PolicyLog(witnessed.vkey)]
        )
        assert not (witnessed.directory / "subtrees").exists()
    finally:
        log.close()
