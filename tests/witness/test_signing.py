"""overt.witness.signing: ML-DSA-44 signatures made in worker processes, in batches."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from overt.errors import FormatError
from overt.formats import merkle
from overt.formats.checkpoint import Checkpoint, format_checkpoint, sign_checkpoint
from overt.formats.cosignature import ML_DSA_44_COSIGNATURE, cosignature_timestamp
from overt.formats.keytypes import ED25519_NOTE, KeySigner, generate
from overt.formats.merkle import leaf_hash
from overt.formats.note import parse_note, parse_vkey
from overt.formats.witness import AddCheckpointRequest, format_add_checkpoint
from overt.witness import signing
from overt.witness.config import init_witness, load_witness, trust_log
from overt.witness.server import WitnessApp
from overt.witness.signing import SigningPool
from overt.witness.state import WitnessState

if TYPE_CHECKING:
    from conftest import Server

NOW = 1_764_000_000


def _text(size: int) -> bytes:
    return format_checkpoint(Checkpoint("example.com/log", size, leaf_hash(b"%d" % size)))


@pytest.fixture(scope="module")
def signer() -> KeySigner:
    return generate(ML_DSA_44_COSIGNATURE, "example.com/witness", clock=lambda: NOW)


def test_signatures_verify_and_carry_this_process_clock(signer: KeySigner) -> None:
    pool = SigningPool(signer, workers=2)

    async def main() -> list[bytes]:
        return await asyncio.gather(*(pool.sign(_text(n)) for n in range(1, 21)))

    try:
        signatures = asyncio.run(main())
    finally:
        pool.close()
    verifier = signer.verifier()
    for n, signature in enumerate(signatures, start=1):
        verifier.verify(_text(n), signature)  # raises if it is not this key's over this text
        assert cosignature_timestamp(signature) == NOW
    # The workers start with their keys (one write each); the twenty messages, handed out
    # within a few turns of the loop, leave in a few writes, not one each.
    assert pool.batches <= 6


def test_a_signature_is_over_its_own_text_only(signer: KeySigner) -> None:
    pool = SigningPool(signer, workers=2)

    async def main() -> tuple[bytes, bytes]:
        return await asyncio.gather(pool.sign(_text(1)), pool.sign(_text(2)))

    try:
        first, second = asyncio.run(main())
    finally:
        pool.close()
    verifier = signer.verifier()
    with pytest.raises(Exception, match="signature"):
        verifier.verify(_text(2), first)
    verifier.verify(_text(2), second)


def test_text_the_key_does_not_sign_is_refused_before_any_worker(signer: KeySigner) -> None:
    pool = SigningPool(signer, workers=1)
    with_extension = _text(5) + b"an extension line\n"
    with pytest.raises(FormatError):
        asyncio.run(pool.sign(with_extension))
    assert pool.batches == 0
    pool.close()


def test_a_killed_worker_fails_its_signatures_and_the_next_ones_get_fresh_workers(
    signer: KeySigner,
) -> None:
    pool = SigningPool(signer, workers=1)

    async def main() -> None:
        await pool.sign(_text(1))  # the worker is up
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await pool.sign(_text(2))
        signature = await pool.sign(_text(3))
        signer.verifier().verify(_text(3), signature)

    try:
        asyncio.run(main())
    finally:
        pool.close()


def test_start_has_every_worker_up_with_its_key_before_the_first_signature(
    signer: KeySigner,
) -> None:
    pool = SigningPool(signer, workers=2)

    async def main() -> None:
        await pool.start()
        assert len(pool.pids()) == 2
        assert pool.batches == 2  # each worker's key
        signer.verifier().verify(_text(7), await pool.sign(_text(7)))

    try:
        asyncio.run(main())
    finally:
        pool.close()


def test_a_worker_killed_mid_load_does_not_take_the_witness_down(
    tmp_path: Path, asgi_server: Callable[[Any], Server]
) -> None:
    """Eight logs stream checkpoints to an ML-DSA-44 witness; one signing worker is killed
    with SIGKILL while signatures are in flight. Every request is still answered 200 with a
    valid cosignature (those the dead worker owed are signed in the transaction), and
    the next ones are signed by a fresh worker."""
    directory = tmp_path / "w"
    vkey = parse_vkey(init_witness(directory, "w.example", "ml-dsa-44"))
    logs = [generate(ED25519_NOTE, f"log{i}.example/log") for i in range(8)]
    for log in logs:
        trust_log(directory, log.vkey)
    config = load_witness(directory)
    app = WitnessApp(WitnessState(directory / "state.db"), config.logs, config.signer)
    server = asgi_server(app)
    rounds = 6
    killed: list[int] = []

    async def stream(log: KeySigner, http: httpx.AsyncClient) -> list[tuple[bytes, bytes]]:
        tree, signed = merkle.MemoryTree(), []
        for n in range(rounds):
            old = tree.size
            tree.append(merkle.leaf_hash(b"%s %d" % (log.name.encode(), n)))
            note = sign_checkpoint(Checkpoint(log.name, tree.size, tree.root()), log)
            proof = tuple(tree.consistency_proof(old)) if old else ()
            body = format_add_checkpoint(AddCheckpointRequest(old, proof, note))
            reply = await http.post("/add-checkpoint", content=body)
            assert reply.status_code == 200, reply.text
            signed.append((note, reply.content))
            if n == 1 and log is logs[0]:  # mid-stream: every log has requests in flight
                assert app.committer is not None and app.committer._signing is not None
                killed.append(app.committer._signing.pids()[0])
                os.kill(killed[0], signal.SIGKILL)
        return signed

    async def main() -> list[list[tuple[bytes, bytes]]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            return list(await asyncio.gather(*(stream(log, http) for log in logs)))

    results = asyncio.run(main())
    for note, lines in (pair for per_log in results for pair in per_log):
        cosigned = parse_note(note + lines)
        (sig,) = [s for s in cosigned.signatures if s.name == "w.example"]
        vkey.verify(cosigned.text, sig.signature)
    assert app.committer is not None and app.committer._signing is not None
    pids = app.committer._signing.pids()
    assert len(pids) == 2 and killed[0] not in pids  # the dead worker was replaced


def test_a_worker_that_cannot_start_is_not_retried_for_every_signature(
    signer: KeySigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken installation: each worker exits at once. start() and sign() raise
    BrokenProcessPool (the witness then signs in its transaction), and the next signatures
    do not start a process each: a failed start waits before the next attempt."""
    monkeypatch.setattr(signing, "_BOOT", "import sys; sys.exit(3)")
    started: list[int] = []
    real = signing._Worker.__init__

    def counting(self: signing._Worker, *args: Any) -> None:
        real(self, *args)
        started.append(self.pid)

    monkeypatch.setattr(signing._Worker, "__init__", counting)
    pool = SigningPool(signer, workers=2)

    async def main() -> None:
        with pytest.raises(BrokenProcessPool):
            await pool.start()
        for n in range(20):
            with pytest.raises(BrokenProcessPool):
                await pool.sign(_text(n + 1))

    try:
        asyncio.run(main())
    finally:
        pool.close()
    assert len(started) == 2  # the first start's two workers, and no more
