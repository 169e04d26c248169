"""The log asks its ML-DSA-44 witnesses to cosign completed ranges, and proves entries against them.

Real witnesses over HTTP (two ML-DSA-44, one Ed25519 that cannot sign subtrees), a real
log; the proofs are checked by :func:`overt.formats.subtree_proof.verify_subtree_proof`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.cli import main as cli_main
from overt.errors import NotFoundError, PolicyError, ProofError
from overt.formats.cosignature import ALG_ML_DSA_44, CosignatureSigner
from overt.formats.keytypes import generate, key_type
from overt.formats.merkle import leaf_hash
from overt.formats.note import Signature
from overt.formats.policy import Policy, parse_policy
from overt.formats.subtree_proof import parse_subtree_proof, verify_subtree_proof
from overt.formats.witness import format_cosignature_lines, parse_cosignature_lines
from overt.log.log import Log
from overt.log.server import LogApp
from overt.log.subtrees import SubtreeStore, completed_ranges, subtree_proof
from overt.log.witnessing import Witnessing
from overt.witness.client import WitnessClient
from overt.witness.core import known_logs
from overt.witness.server import WitnessApp
from overt.witness.state import WitnessState

if TYPE_CHECKING:
    from conftest import Server

ORIGIN = "subtrees.example/log"


@dataclass
class World:
    log: Log
    policy: Policy
    witnessing: Witnessing
    servers: dict[str, Server]


@pytest.fixture
def world(tmp_path: Path, asgi_server: Callable[[Any], Server]) -> Iterator[World]:
    log = Log.create(tmp_path / "log", ORIGIN)
    logs = known_logs([log.signer.verifier()])  # type: ignore[attr-defined]
    lines = [f"log {log.vkey}"]
    servers = {}
    signers: list[Any] = [
        generate(key_type(ALG_ML_DSA_44), "asia.witness.example"),
        generate(key_type(ALG_ML_DSA_44), "europe.witness.example"),
        CosignatureSigner("americas.witness.example", Ed25519PrivateKey.generate()),
    ]
    for signer in signers:
        region = signer.name.split(".")[0]
        state = WitnessState(tmp_path / f"{region}.db")
        servers[region] = asgi_server(WitnessApp(state, logs, signer))
        lines.append(f"witness {region} {signer.verifier().vkey} {servers[region].url}")
    lines.append("group regions 2 asia europe americas")
    lines.append("quorum regions")
    text = "\n".join(lines).encode() + b"\n"
    log.set_policy(text)
    assert log.policy is not None
    witnessing = Witnessing(log, log.policy, timeout=5.0)
    yield World(log, parse_policy(text), witnessing, servers)
    witnessing.close()
    log.close()


def _add(world: World, n: int, tag: bytes = b"") -> None:
    world.log.add_many([tag + b"entry %d" % i for i in range(world.log.size, world.log.size + n)])
    assert world.witnessing.cosign_latest().published


def test_completed_ranges_are_cosigned_by_the_subtree_witnesses(world: World) -> None:
    _add(world, 600)
    store = SubtreeStore(world.log.directory)
    for start, end in [(0, 256), (256, 512)]:
        note = store.get(start, end)
        assert note is not None
        assert sorted(s.name for s in note.signatures) == [
            "asia.witness.example",
            "europe.witness.example",
        ]
    assert store.get(512, 768) is None  # not complete yet

    raw = subtree_proof(store, world.log.subtree_reader(), 300)
    proof = parse_subtree_proof(raw)
    assert len(proof.hashes) == 8  # log2(256): the same for any size of log
    verified = verify_subtree_proof(raw, leaf_hash(b"entry 300"), world.policy, origin=ORIGIN)
    assert sorted(verified.cosigned_by) == ["asia", "europe"]
    with pytest.raises(ProofError):
        verify_subtree_proof(raw, leaf_hash(b"entry 301"), world.policy)


def test_the_proof_does_not_change_as_the_log_grows(world: World) -> None:
    _add(world, 300)
    store = SubtreeStore(world.log.directory)
    before = subtree_proof(store, world.log.subtree_reader(), 10)
    _add(world, 700)
    assert subtree_proof(store, world.log.subtree_reader(), 10) == before
    assert store.get(512, 768) is not None and store.get(768, 1024) is None


def test_an_entry_in_an_incomplete_range_has_no_subtree_proof_yet(world: World) -> None:
    _add(world, 100)
    with pytest.raises(NotFoundError, match="no witnessed subtree"):
        subtree_proof(SubtreeStore(world.log.directory), world.log.subtree_reader(), 5)


def test_a_single_subtree_witness_does_not_meet_a_two_of_three_quorum(world: World) -> None:
    world.servers["europe"].close()
    _add(world, 256)  # asia and americas cosign the checkpoint; only asia signs subtrees
    raw = subtree_proof(SubtreeStore(world.log.directory), world.log.subtree_reader(), 0)
    with pytest.raises(PolicyError, match="does not meet the quorum"):
        verify_subtree_proof(raw, leaf_hash(b"entry 0"), world.policy)


def test_cosigned_ranges_survive_a_restart_and_are_not_asked_again(world: World) -> None:
    _add(world, 512)
    path = world.log.directory / "subtrees" / "0-256"
    before = path.read_bytes()
    again = Witnessing(world.log, world.log.policy, timeout=5.0)  # type: ignore[arg-type]
    try:
        _add(world, 10)
        assert again.cosign_latest(refresh=True).published
    finally:
        again.close()
    assert path.read_bytes() == before


def test_completed_ranges() -> None:
    assert completed_ranges(600) == [(0, 256), (256, 512)]
    assert completed_ranges(600, first=256) == [(256, 512)]
    assert completed_ranges(255) == []
    assert completed_ranges(16, 4) == [(0, 4), (4, 8), (8, 12), (12, 16)]
    with pytest.raises(ValueError):
        completed_ranges(16, 3)


class TamperingClient(WitnessClient):
    """A witness connection whose sign-subtree replies are damaged in transit while ``tamper``."""

    tamper = True

    def sign_subtree(
        self, start: int, end: int, subtree_hash: bytes, proof: Sequence[bytes], checkpoint: bytes
    ) -> bytes:
        lines = super().sign_subtree(start, end, subtree_hash, proof, checkpoint)
        if not TamperingClient.tamper:
            return lines
        (sig,) = parse_cosignature_lines(lines)
        bad = bytearray(sig.signature)
        bad[100] ^= 1
        return format_cosignature_lines([Signature(sig.name, sig.key_id, bytes(bad))])


def test_a_bad_subtree_cosignature_is_never_stored_and_the_range_is_asked_again(
    world: World,
) -> None:
    assert world.log.policy is not None
    TamperingClient.tamper = True
    witnessing = Witnessing(
        world.log, world.log.policy, clients=lambda w: TamperingClient(w.url or "", timeout=5.0)
    )
    try:
        world.log.add_many([b"entry %d" % i for i in range(256)])
        assert witnessing.cosign_latest().published
        assert SubtreeStore(world.log.directory).get(0, 256) is None
        TamperingClient.tamper = False
        world.log.add_many([b"one more, the witness backing off"])
        assert witnessing.cosign_latest().published
        assert SubtreeStore(world.log.directory).get(0, 256) is None  # backing off
        witnessing._subtree_retry_at.clear()  # the back-off has passed
        world.log.add_many([b"one more"])
        assert witnessing.cosign_latest().published
    finally:
        witnessing.close()
    note = SubtreeStore(world.log.directory).get(0, 256)
    assert note is not None and len(note.signatures) == 2


def test_the_log_server_serves_subtree_notes_and_url_proofs(
    world: World,
    asgi_server: Callable[[Any], Server],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _add(world, 300)
    server = asgi_server(LogApp(world.log))
    note = httpx.get(f"{server.url}/subtree/0-256")
    assert note.status_code == 200
    assert note.content == (world.log.directory / "subtrees" / "0-256").read_bytes()
    assert httpx.get(f"{server.url}/subtree/256-512").status_code == 404  # not complete yet
    for bad in ("00-256", "0-256x", "0", "-256", "0--256"):
        assert httpx.get(f"{server.url}/subtree/{bad}").status_code == 400, bad
    assert httpx.post(f"{server.url}/subtree/0-256").status_code == 405
    assert cli_main.main(["log", "proof", server.url, "42", "--subtree"]) == 0
    from_url = capsys.readouterr().out.encode()
    assert from_url == subtree_proof(
        SubtreeStore(world.log.directory), world.log.subtree_reader(), 42
    )
    assert cli_main.main(["log", "proof", server.url, "290", "--subtree"]) == 1
    assert "404" in capsys.readouterr().err
