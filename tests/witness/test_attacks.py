"""Attacks a witness must stop, each against real witness servers on 127.0.0.1.

The log is a :class:`~.simulators.LogSimulator` that rolls back, forks and
freezes on demand; the witnesses are real (uvicorn, SQLite state, real keys);
clients verify with :func:`overt.formats.policy.verify_checkpoint`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.errors import InvalidSignatureError, PolicyError, StaleError
from overt.formats.checkpoint import parse_checkpoint
from overt.formats.cosignature import CosignatureSigner
from overt.formats.note import Note, Signature, format_note, parse_note
from overt.formats.policy import Policy, parse_policy, verify_checkpoint
from overt.witness.client import WitnessClient
from overt.witness.errors import (
    WitnessConflictError,
    WitnessConsistencyError,
    WitnessError,
    WitnessRequestError,
)

from .simulators import T0, Clock, LogSimulator, WitnessUnderTest

REGIONS = ("asia", "europe", "americas")


class Deployment:
    """One log and three witnesses (one per region), served for real."""

    def __init__(self, tmp_path: Path, stack: ExitStack) -> None:
        self.clock = Clock()
        self.log = LogSimulator("attack.example/log")
        self.witnesses = [
            WitnessUnderTest(tmp_path / region, f"{region}.witness.example", [self.log], self.clock)
            for region in REGIONS
        ]
        self.urls = [stack.enter_context(w.serve()) for w in self.witnesses]
        self.clients = [
            stack.enter_context(WitnessClient(url, 10, verifier=w.signer.verifier()))
            for url, w in zip(self.urls, self.witnesses, strict=True)
        ]

    def policy(self, quorum: int = 2) -> Policy:
        lines = [f"log {self.log.vkey}"]
        lines += [
            f"witness {region} {w.signer.vkey}"
            for region, w in zip(REGIONS, self.witnesses, strict=True)
        ]
        lines += [f"group regions {quorum} {' '.join(REGIONS)}", "quorum regions"]
        return parse_policy("\n".join(lines).encode() + b"\n")

    def cosign(self, i: int, log: LogSimulator, old: int) -> bytes:
        """Asks witness ``i`` to cosign ``log``'s checkpoint; returns its cosignature line."""
        return self.clients[i].add_checkpoint(*log.request(old))


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with ExitStack() as stack:
        yield Deployment(tmp_path, stack)


def test_rollback_is_refused(deployment: Deployment) -> None:
    log, witness = deployment.log, deployment.clients[0]
    log.grow(10)
    witness.add_checkpoint(*log.request(0))
    cosigned_root = log.tree.root()
    # The log rewrites history from size 6 and regrows past the cosigned size.
    log.rollback(6, regrow=6)
    with pytest.raises(WitnessConsistencyError):  # its best proof from 10 does not hold
        witness.add_checkpoint(*log.request(10))
    with pytest.raises(WitnessConflictError) as conflict:  # claiming the witness was at 6
        witness.add_checkpoint(*log.request(6))
    assert conflict.value.size == 10
    with pytest.raises(WitnessRequestError):  # a checkpoint below the cosigned size
        witness.add_checkpoint(10, [], log.checkpoint(6))
    with pytest.raises(WitnessConflictError):
        witness.add_checkpoint(*log.request(0, 6))
    latest = witness.latest(log.origin)
    assert latest is not None
    cp = parse_checkpoint(parse_note(latest).text)
    assert (cp.size, cp.root_hash) == (10, cosigned_root)


def test_fork_shown_to_two_witnesses_is_refused(deployment: Deployment) -> None:
    log = deployment.log
    log.grow(8)
    for i in (0, 1):
        deployment.cosign(i, log, 0)
    view_a, view_b = log, log.fork()
    view_a.grow(4, tag=b"for asia and europe ")
    view_b.grow(4, tag=b"for the victim ")
    note_a = view_a.checkpoint()
    lines_a = [deployment.cosign(i, view_a, 8) for i in (0, 1)]
    # View B to the second witness: its old size is stale (409), and from the
    # witness's own size the roots differ (422). It never gets a cosignature.
    with pytest.raises(WitnessConflictError) as conflict:
        deployment.cosign(1, view_b, 8)
    assert conflict.value.size == 12
    with pytest.raises(WitnessConsistencyError, match="fork"):
        deployment.clients[1].add_checkpoint(12, [], view_b.checkpoint())
    # A witness that never saw the log cosigns view B: one cosignature is not a quorum.
    line_c = deployment.cosign(2, view_b, 0)
    policy = deployment.policy(quorum=2)
    now = deployment.clock()
    with pytest.raises(PolicyError, match="quorum"):
        verify_checkpoint(view_b.checkpoint() + line_c, policy, now)
    verified = verify_checkpoint(note_a + b"".join(lines_a), policy, now)
    assert sorted(verified.cosigned) == ["asia", "europe"]


def test_witness_restarted_mid_stream_keeps_state(tmp_path: Path) -> None:
    clock = Clock()
    log = LogSimulator("restart.example/log")
    witness = WitnessUnderTest(tmp_path / "w", "w.witness.example", [log], clock)
    log.grow(3)
    with witness.serve() as url, WitnessClient(url) as client:
        client.add_checkpoint(*log.request(0))
        log.grow(2)
        client.add_checkpoint(*log.request(3))
    cosigned_root = log.tree.root()
    log.grow(4)
    with witness.serve() as url, WitnessClient(url) as client:  # a new process, same state
        with pytest.raises(WitnessConflictError) as conflict:
            client.add_checkpoint(*log.request(0))  # "what did you cosign last?"
        assert conflict.value.size == 5
        fork = log.fork()
        fork.rollback(4, regrow=5)
        with pytest.raises(WitnessConsistencyError):
            client.add_checkpoint(*fork.request(5))
        latest = client.latest(log.origin)
        assert latest is not None
        assert parse_checkpoint(parse_note(latest).text).root_hash == cosigned_root
        client.add_checkpoint(*log.request(5))
        assert client.logs() == [log.origin]


def test_100_concurrent_add_checkpoint_no_lost_update_no_double_cosign(tmp_path: Path) -> None:
    clock = Clock()
    honest = LogSimulator("race.example/log")
    witness = WitnessUnderTest(tmp_path / "w", "w.witness.example", [honest], clock)
    honest.grow(20)
    fork = honest.fork()
    start = 20
    honest.grow(50, tag=b"honest ")
    fork.grow(50, tag=b"fork ")
    bodies: list[tuple[str, tuple[int, list[bytes], bytes]]] = []
    for k in range(1, 16):  # 30 requests from the witness's size, to either branch
        bodies.append(("honest", honest.request(start, start + 2 * k)))
        bodies.append(("fork", fork.request(start, start + 2 * k - 1)))
    for k in range(35):  # 70 requests of two chains, each assuming its previous one won
        bodies.append(("honest", honest.request(start + k, start + k + 1)))
        bodies.append(("fork", fork.request(start + k, start + k + 1)))
    assert len(bodies) == 100
    accepted: list[tuple[str, int, bytes]] = []
    refusals: list[int] = []
    lock = threading.Lock()
    with witness.serve() as url, WitnessClient(url, 30) as client:
        client.add_checkpoint(*honest.request(0, start))
        go = threading.Barrier(100)

        def submit(item: tuple[str, tuple[int, list[bytes], bytes]]) -> None:
            branch, (old, proof, note) = item
            go.wait()
            try:
                lines = client.add_checkpoint(old, proof, note)
            except WitnessError as err:
                with lock:
                    refusals.append(err.status)
                return
            assert lines.startswith("\u2014 w.witness.example ".encode())
            cp = parse_checkpoint(parse_note(note).text)
            with lock:
                accepted.append((branch, cp.size, cp.root_hash))

        with ThreadPoolExecutor(100) as pool:
            list(pool.map(submit, bodies))
        final = client.latest(honest.origin)
    assert len(accepted) + len(refusals) == 100
    assert accepted, "some request must win"
    assert set(refusals) <= {409, 422}
    # No double cosign: one root per size, and every cosigned root on one branch.
    roots: dict[int, bytes] = {}
    for _branch, size, root in accepted:
        assert roots.setdefault(size, root) == root, f"two roots cosigned at size {size}"
    branches = {branch for branch, size, _ in accepted}
    assert len(branches) == 1, f"cosigned checkpoints of both branches: {accepted}"
    tree = (honest if branches == {"honest"} else fork).tree
    assert all(root == tree.root(size) for size, root in roots.items())
    # No lost update: the stored record is the largest checkpoint cosigned.
    assert final is not None
    cp = parse_checkpoint(parse_note(final).text)
    assert (cp.size, cp.root_hash) == (max(roots), roots[max(roots)])


def test_stale_old_size_gets_409_with_size(deployment: Deployment) -> None:
    log = deployment.log
    log.grow(7)
    deployment.cosign(0, log, 0)
    log.grow(3)
    # On the wire: 409, text/x.tlog.size, the size and a newline.
    reply = httpx.post(f"{deployment.urls[0]}/add-checkpoint", content=log.body(2))
    assert reply.status_code == 409
    assert reply.headers["content-type"] == "text/x.tlog.size"
    assert reply.content == b"7\n"
    # Through the client: the typed error carries it, and a retry from it succeeds.
    with pytest.raises(WitnessConflictError) as conflict:
        deployment.cosign(0, log, 0)
    assert (conflict.value.size, conflict.value.old_size) == (7, 0)
    deployment.cosign(0, log, conflict.value.size)


def test_forged_witness_cosignature_is_rejected(deployment: Deployment) -> None:
    log = deployment.log
    log.grow(5)
    note = log.checkpoint()
    lines = [deployment.cosign(i, log, 0) for i in (0, 1)]
    policy, now = deployment.policy(quorum=2), deployment.clock()
    assert verify_checkpoint(note + b"".join(lines), policy, now).cosigned.keys() == {
        "asia",
        "europe",
    }
    europe = parse_note(note + lines[1]).signatures[-1]
    # 1. A flipped bit in a genuine cosignature.
    flipped = Signature(
        europe.name, europe.key_id, europe.signature[:-1] + bytes([europe.signature[-1] ^ 1])
    )
    # 2. A cosignature in the witness's name and key ID, made with the attacker's key.
    attacker = CosignatureSigner(europe.name, Ed25519PrivateKey.generate(), deployment.clock)
    made_up = Signature(europe.name, europe.key_id, attacker.sign(parse_note(note).text))
    # 3. A genuine cosignature of another checkpoint, moved onto a fork.
    fork = log.fork()
    fork.rollback(4, regrow=1)
    for forged, target in ((flipped, note), (made_up, note), (europe, fork.checkpoint())):
        parsed = parse_note(target)
        asia = parse_note(note + lines[0]).signatures[-1]
        bad = format_note(Note(parsed.text, (*parsed.signatures, asia, forged)))
        with pytest.raises(InvalidSignatureError):
            verify_checkpoint(bad, policy, now)


def test_freeze_cannot_refresh_an_old_checkpoint(deployment: Deployment) -> None:
    """A frozen view keeps its old cosignatures, which go stale; witnesses will not renew them."""
    log, clock = deployment.log, deployment.clock
    log.grow(4)
    frozen = log.freeze()
    frozen_lines = [deployment.cosign(i, log, 0) for i in (0, 1)]
    log.frozen = None
    clock.now += 7200  # two hours of honest growth, witnessed
    log.grow(6)
    for i in (0, 1):
        deployment.cosign(i, log, 4)
    policy = deployment.policy(quorum=2)
    with pytest.raises(StaleError):  # the victim's frozen view is two hours old
        verify_checkpoint(frozen + b"".join(frozen_lines), policy, clock(), max_age=3600)
    for client in deployment.clients[:2]:  # and no witness will cosign it again
        with pytest.raises(WitnessRequestError):
            client.add_checkpoint(10, [], frozen)
        with pytest.raises(WitnessConflictError):
            client.add_checkpoint(4, [], frozen)
    assert clock() == T0 + 7200
