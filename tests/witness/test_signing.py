"""overt.witness.signing: ML-DSA-44 signatures made in worker processes, in batches."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures.process import BrokenProcessPool

import pytest

from overt.errors import FormatError
from overt.formats.checkpoint import Checkpoint, format_checkpoint
from overt.formats.cosignature import ML_DSA_44_COSIGNATURE, cosignature_timestamp
from overt.formats.keytypes import KeySigner, generate
from overt.formats.merkle import leaf_hash
from overt.witness.signing import SigningPool

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
    # Two go out at once (one per worker); the other 18 wait and leave together.
    assert pool.batches <= 4


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
        assert pool._pool is not None
        (pid,) = pool._pool._processes
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
        assert pool._pool is not None
        assert len(pool._pool._processes) == 2
        assert pool.batches == 0
        signer.verifier().verify(_text(7), await pool.sign(_text(7)))

    try:
        asyncio.run(main())
    finally:
        pool.close()
