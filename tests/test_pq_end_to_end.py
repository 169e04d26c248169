"""ML-DSA-44 end to end: an ML-DSA-44 log served over HTTP, one Ed25519 and one ML-DSA-44
witness (real servers on 127.0.0.1), a mixed quorum, ``overt publish`` and the update gate.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from overt.cli import main as cli_main
from overt.formats import merkle
from overt.formats.checkpoint import Checkpoint, sign_checkpoint
from overt.formats.cosignature import COSIGNATURE_V1, ML_DSA_44_COSIGNATURE
from overt.formats.keytypes import ED25519_NOTE, generate
from overt.formats.note import parse_note, parse_vkey
from overt.formats.policy import parse_policy
from overt.formats.proof import parse_proof, verify_proof
from overt.formats.witness import AddCheckpointRequest, format_add_checkpoint
from overt.log.client import LogClient
from overt.log.log import Log
from overt.log.server import LogApp
from overt.log.witnessing import Witnessing
from overt.witness.config import init_witness, load_witness, trust_log
from overt.witness.server import WitnessApp
from overt.witness.state import WitnessState

if TYPE_CHECKING:
    from conftest import Server

ORIGIN = "pq.example/log"
WITNESSES = {"asia": "ed25519", "europe": "ml-dsa-44"}


@dataclass
class World:
    log: Log
    log_server: Server
    witnesses: dict[str, str]  # name -> vkey
    policy_text: bytes


@pytest.fixture
def world(tmp_path: Path, asgi_server: Callable[[Any], Server]) -> Iterator[World]:
    log = Log.create(tmp_path / "log", ORIGIN, key_type="ml-dsa-44")
    lines, vkeys = [f"log {log.vkey}"], {}
    for name, key_type in WITNESSES.items():
        directory = tmp_path / name
        vkeys[name] = init_witness(directory, f"{name}.witness.example", key_type)
        trust_log(directory, log.vkey)
        config = load_witness(directory)
        server = asgi_server(WitnessApp(config.open_state(), config.logs, config.signer))
        lines.append(f"witness {name} {vkeys[name]} {server.url}")
    lines += [f"group both all {' '.join(WITNESSES)}", "quorum both"]
    policy_text = "\n".join(lines).encode() + b"\n"
    log.set_policy(policy_text)
    assert log.policy is not None
    witnessing = Witnessing(log, log.policy, timeout=10.0)
    log_server = asgi_server(LogApp(log, witnessing=witnessing))
    yield World(log, log_server, vkeys, policy_text)
    log_server.close()
    witnessing.close()
    log.close()


def test_an_ml_dsa_log_is_cosigned_by_a_mixed_quorum(world: World) -> None:
    assert parse_vkey(world.log.vkey).key_type is ML_DSA_44_COSIGNATURE
    assert parse_vkey(world.witnesses["asia"]).key_type is COSIGNATURE_V1
    assert parse_vkey(world.witnesses["europe"]).key_type is ML_DSA_44_COSIGNATURE
    with LogClient(world.log_server.url, world.log.token) as client:
        _, raw = client.add(b"post-quantum entry")
    proof = parse_proof(raw)
    note = parse_note(proof.checkpoint)
    sizes = {s.name: len(s.signature) for s in note.signatures}
    assert sizes == {
        ORIGIN: 8 + 2420,
        "asia.witness.example": 8 + 64,
        "europe.witness.example": 8 + 2420,
    }
    verified = verify_proof(
        proof,
        merkle.leaf_hash(b"post-quantum entry"),
        parse_vkey(world.log.vkey),
        policy=parse_policy(world.policy_text),
        now=time.time(),
        max_age=60,
    )
    assert verified.checkpoint.checkpoint.size == 1


def test_a_monitor_follows_the_ml_dsa_log(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with LogClient(world.log_server.url, world.log.token) as client:
        client.add(b"one")
        client.add(b"two")
    (tmp_path / "witnesses.policy").write_bytes(world.policy_text)
    monitor = ("monitor", world.log_server.url, "--policy", tmp_path / "witnesses.policy",
               "--state", tmp_path / "monitor-state", "--once")  # fmt: skip
    code, out, err = _run(capsys, *monitor)
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert {(e["event"], e.get("witness")) for e in events} >= {
        ("checkpoint", None),
        ("witness", "asia"),  # Ed25519 witness's view, compared
        ("witness", "europe"),  # ML-DSA-44 witness's view, compared
        ("entries", None),
    }
    assert not [e for e in events if e["level"] not in ("info", "debug")]


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli_main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_gate_admits_what_the_mixed_quorum_witnessed(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "vendor.key"
    code, _, err = _run(
        capsys, "publisher", "keygen", key, "--name", "vendor.example/release",
        "--key-type", "ml-dsa-44",
    )  # fmt: skip
    assert code == 0, err
    (tmp_path / "witnesses.policy").write_bytes(world.policy_text)
    policy = {
        "version": 1,
        "logs": [world.log.vkey],
        "witness_policy_file": "witnesses.policy",
        "publisher": (tmp_path / "vendor.key.pub").read_text().strip(),
        "pins": [{"product": "agent", "channels": ["stable"]}],
        "max_checkpoint_age": 3600,
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    artifact = tmp_path / "agent-2.0.0.msi"
    artifact.write_bytes(b"agent build 2.0.0")
    code, _, err = _run(
        capsys, "publish", artifact, "--log", world.log_server.url, "--token", world.log.token,
        "--key", key, "--kind", "update", "--product", "agent", "--version", "2.0.0",
    )  # fmt: skip
    assert code == 0, err
    verify = ("verify", artifact, "--bundle", f"{artifact}.overt", "--policy", tmp_path / "policy.json")  # fmt: skip
    code, out, err = _run(capsys, *verify)
    assert code == 0, err
    assert "cosigned by asia, europe" in out

    # The attack: the ML-DSA-44 witness's cosignature altered in the bundle, so the quorum
    # would rest on the Ed25519 witness alone.
    bundle = json.loads((tmp_path / "agent-2.0.0.msi.overt").read_text())
    assert _tamper_cosignature(bundle, "europe.witness.example")
    (tmp_path / "agent-2.0.0.msi.overt").write_text(json.dumps(bundle))
    code, out, err = _run(capsys, *verify)
    assert code == 1 and out == "", out
    assert err.startswith("overt: ") and err.count("\n") == 1
    assert "europe.witness.example" in err or "invalid signature" in err, err


def _tamper_cosignature(value: Any, name: str) -> bool:
    """Flips a byte of ``name``'s signature in every checkpoint note inside a bundle (JSON)."""
    found = False
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and f"\u2014 {name} " in v:
                value[k] = _flip_line(v, name)
                found = True
            else:
                found |= _tamper_cosignature(v, name)
    elif isinstance(value, list):
        for item in value:
            found |= _tamper_cosignature(item, name)
    return found


def _flip_line(text: str, name: str) -> str:
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith(f"\u2014 {name} "):
            prefix, b64 = line.rsplit(" ", 1)
            raw = bytearray(base64.b64decode(b64))
            raw[100] ^= 1
            lines[i] = f"{prefix} {base64.b64encode(bytes(raw)).decode()}"
    return "\n".join(lines)


# --- the ML-DSA-44 witness signs ahead, off its transaction -----------------------------


def test_racing_submissions_release_one_cosignature(
    tmp_path: Path, asgi_server: Callable[[Any], Server]
) -> None:
    """Eight checkpoints of one log from size 0 at once: one is cosigned, seven get 409.

    The witness signs each verified submission before the compare-and-set; the seven it
    refuses must not leak the signatures made for them, nor leave them behind.
    """
    log = generate(ML_DSA_44_COSIGNATURE, ORIGIN)
    directory = tmp_path / "w"
    vkey = init_witness(directory, "w.example", "ml-dsa-44")
    trust_log(directory, log.vkey)
    config = load_witness(directory)
    app = WitnessApp(WitnessState(directory / "state.db"), config.logs, config.signer)
    server = asgi_server(app)
    tree = merkle.MemoryTree()
    bodies = []
    for i in range(8):
        tree.append(merkle.leaf_hash(b"entry %d" % i))
        note = sign_checkpoint(Checkpoint(ORIGIN, tree.size, tree.root()), log)
        bodies.append(format_add_checkpoint(AddCheckpointRequest(0, (), note)))

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            return list(
                await asyncio.gather(*(http.post("/add-checkpoint", content=b) for b in bodies))
            )

    replies = asyncio.run(race())
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] + [409] * 7, statuses
    assert app.committer is not None and app.committer._ahead == {}
    (ok,) = [(b, r) for b, r in zip(bodies, replies, strict=True) if r.status_code == 200]
    signed_by_log = ok[0].split(b"\n\n", 1)[1]
    cosigned = parse_note(signed_by_log + ok[1].content)
    (sig,) = [s for s in cosigned.signatures if s.name == "w.example"]
    parse_vkey(vkey).verify(cosigned.text, sig.signature)


def test_a_checkpoint_ml_dsa_cannot_cosign_is_refused_alone(
    tmp_path: Path, asgi_server: Callable[[Any], Server]
) -> None:
    """An extension line (which ML-DSA-44's message would leave unsigned) is a 400 for that
    request only; the other logs' checkpoints in the same batch are cosigned."""
    directory = tmp_path / "w"
    init_witness(directory, "w.example", "ml-dsa-44")
    # An Ed25519 log may write extension lines (its signature covers them); the witness's
    # ML-DSA-44 cosignature would not.
    logs = [generate(ED25519_NOTE if i == 0 else ML_DSA_44_COSIGNATURE, f"log{i}.example/log")
            for i in range(4)]  # fmt: skip
    for log in logs:
        trust_log(directory, log.vkey)
    config = load_witness(directory)
    app = WitnessApp(WitnessState(directory / "state.db"), config.logs, config.signer)
    server = asgi_server(app)
    root = merkle.leaf_hash(b"x")
    bodies = []
    for i, log in enumerate(logs):
        extensions = ("extension",) if i == 0 else ()
        note = sign_checkpoint(Checkpoint(log.name, 1, root, extensions), logs[i])
        bodies.append(format_add_checkpoint(AddCheckpointRequest(0, (), note)))

    async def submit() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            return list(
                await asyncio.gather(*(http.post("/add-checkpoint", content=b) for b in bodies))
            )

    replies = asyncio.run(submit())
    assert [r.status_code for r in replies] == [400, 200, 200, 200], [r.text for r in replies]
    assert "extension" in replies[0].text
