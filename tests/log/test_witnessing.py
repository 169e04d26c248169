"""The log side of witnessing: three real witnesses, a 2-of-3 policy, witnesses going down."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from overt.errors import PolicyError, StaleError
from overt.formats import merkle
from overt.formats.note import parse_vkey
from overt.formats.policy import parse_policy
from overt.formats.proof import parse_proof, verify_proof
from overt.log.client import HTTPSource, LogClient, verify_log
from overt.log.log import Log
from overt.log.server import LogApp
from overt.log.witnessing import Witnessing
from overt.witness.config import init_witness, load_witness, trust_log
from overt.witness.server import WitnessApp

if TYPE_CHECKING:
    from conftest import Server

ORIGIN = "witnessed.example/log"
REGIONS = ("asia", "europe", "americas")


@dataclass
class World:
    log: Log
    witnesses: dict[str, Server]
    policy_text: bytes
    log_server: Server
    witnessing: Witnessing


@pytest.fixture
def world(tmp_path: Path, asgi_server: Callable[[Any], Server]) -> Iterator[World]:
    log = Log.create(tmp_path / "log", ORIGIN)
    witnesses: dict[str, Server] = {}
    lines = [f"log {log.vkey}"]
    for region in REGIONS:
        directory = tmp_path / region
        vkey = init_witness(directory, f"{region}.witness.example")
        trust_log(directory, log.vkey)
        config = load_witness(directory)
        server = asgi_server(WitnessApp(config.open_state(), config.logs, config.signer))
        witnesses[region] = server
        lines.append(f"witness {region} {vkey} {server.url}")
    lines += [f"group regions 2 {' '.join(REGIONS)}", "quorum regions"]
    policy_text = "\n".join(lines).encode() + b"\n"
    log.set_policy(policy_text)
    assert log.policy is not None
    witnessing = Witnessing(log, log.policy, timeout=2.0)
    log_server = asgi_server(LogApp(log, witnessing=witnessing))
    yield World(log, witnesses, policy_text, log_server, witnessing)
    log_server.close()
    witnessing.close()
    log.close()


def test_published_checkpoint_carries_the_quorum(world: World) -> None:
    with LogClient(world.log_server.url, world.log.token) as client:
        _, raw = client.add(b"witnessed entry")
    policy = parse_policy(world.policy_text)
    proof = parse_proof(raw)
    verifier = parse_vkey(world.log.vkey)
    verified = verify_proof(
        proof,
        merkle.leaf_hash(b"witnessed entry"),
        verifier,
        policy=policy,
        now=time.time(),
        max_age=60,
    )
    assert len(verified.checkpoint.cosignatures()) >= 2
    with HTTPSource(world.log_server.url) as source:
        result = verify_log(source, None, policy=policy, max_age=60)
    assert result.entries == 1


def test_log_keeps_integrating_while_witnesses_are_down(world: World) -> None:
    with LogClient(world.log_server.url, world.log.token) as client:
        client.add(b"first")  # witnessed at size 1
        world.witnesses["asia"].stop()
        world.witnesses["europe"].stop()
        index = client.sequence(b"second")
        deadline = time.monotonic() + 10
        while world.log.size < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # Integrated, but the published checkpoint stays at the last witnessed one.
        time.sleep(0.3)
        assert world.log.size == 2 and world.log.published_size == 1
        metrics = httpx.get(f"{world.log_server.url}/metrics").text
        assert "overt_log_integrated_size 2" in metrics
        assert "overt_log_published_size 1" in metrics
        assert 'overt_witness_up{witness="asia"} 0' in metrics
        # A client with the policy refuses the unwitnessed size, accepts the published one.
        policy = parse_policy(world.policy_text)
        with pytest.raises(PolicyError):
            from overt.formats.policy import verify_checkpoint

            verify_checkpoint(world.log.latest_signed()[0], policy)
        # One witness back: quorum again, the log catches up by itself (retry loop).
        world.witnesses["europe"].start()
        deadline = time.monotonic() + 15
        while world.log.published_size < 2:
            assert time.monotonic() < deadline, "log did not publish after a witness came back"
            time.sleep(0.05)
    assert index == 1


def test_witness_restarted_mid_stream_is_caught_up(world: World) -> None:
    with LogClient(world.log_server.url, world.log.token) as client:
        for i in range(5):
            client.add(b"entry %d" % i)
        world.witnesses["americas"].stop()
        for i in range(5, 10):
            client.add(b"entry %d" % i)
        world.witnesses["americas"].start()
        client.add(b"entry 10")
    state = world.witnessing.witnesses["americas"]
    assert state.up and state.size == 11


def test_stale_checkpoint_fails_max_age(world: World) -> None:
    with LogClient(world.log_server.url, world.log.token) as client:
        _, raw = client.add(b"old news")
    policy = parse_policy(world.policy_text)
    with pytest.raises(StaleError):
        verify_proof(
            parse_proof(raw),
            merkle.leaf_hash(b"old news"),
            parse_vkey(world.log.vkey),
            policy=policy,
            now=time.time() + 3600,
            max_age=60,
        )


def test_cli_add_publishes_witnessed_checkpoint(world: World, tmp_path: Path) -> None:
    """`overt log add` on a witnessed log directory gets its entries cosigned at once."""
    import subprocess
    import sys

    world.log_server.close()
    world.witnessing.close()
    world.log.close()
    entry = tmp_path / "entry.txt"
    entry.write_bytes(b"added by the CLI")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "overt.cli.main",
            "log",
            "add",
            str(world.log.directory),
            str(entry),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "0\n" and out.stderr == ""
    policy = parse_policy(world.policy_text)
    note = (world.log.directory / "tiles" / "checkpoint").read_bytes()
    from overt.formats.policy import verify_checkpoint

    assert verify_checkpoint(note, policy).checkpoint.size == 1
    # Two witnesses down: the entry is durable, a warning says the checkpoint did not move.
    world.witnesses["asia"].stop()
    world.witnesses["americas"].stop()
    out = subprocess.run(
        [sys.executable, "-m", "overt.cli.main", "log", "add", str(world.log.directory), "-"],
        input="second",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout == "1\n"
    assert "quorum not met" in out.stderr
    assert (world.log.directory / "tiles" / "checkpoint").read_bytes() == note


def test_quiet_log_gets_fresh_cosignatures(world: World) -> None:
    """A log that does not grow still satisfies clients demanding recent cosignatures."""
    from overt.formats.policy import verify_checkpoint

    with LogClient(world.log_server.url, world.log.token) as client:
        client.add(b"only entry")
    policy = parse_policy(world.policy_text)
    first = verify_checkpoint(world.log.checkpoint(), policy).quorum_time
    time.sleep(1.1)  # cosignature timestamps have one-second resolution
    result = world.witnessing.cosign_latest(refresh=True)
    assert result.published
    again = verify_checkpoint(world.log.checkpoint(), policy)
    assert again.checkpoint.size == 1
    assert again.quorum_time is not None and first is not None and again.quorum_time > first
