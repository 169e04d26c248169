"""Slow signatures (ML-DSA-44) made in worker processes, in batches, for a server's event loop.

``cryptography`` 50 holds the GIL while it signs with ML-DSA-44 (~0.6 ms of CPU a
signature here): two threads signing finish no sooner than one, so a witness that signs
on a thread pool signs on one core however many it has, and its event loop, parser and
log-signature checks wait behind every signature. :class:`SigningPool` makes the
algorithm's signature in ``workers`` processes instead; the server process keeps
everything else (reading the clock, building the tlog-cosignature message, the
timestamp prefix: :meth:`overt.formats.keytypes.KeySigner.to_sign`), so a worker
only ever signs the exact message it is handed.

Batching: at most one task per worker is in flight; messages that arrive meanwhile
wait and leave together, split over the workers that come free. Under light load a
message leaves alone at once; under heavy load the per-task cost (pickling, two pipe
hops) is paid once per batch, not once per signature.

The key reaches a worker as its 32-byte seed, in the arguments of the worker's
start (a pipe between this process and its child), and lives only in that child's
memory. Workers are started with ``spawn`` (a server process has threads; ``fork``
would copy their locks) by :meth:`SigningPool.start` (or the first signature), and stopped by
:meth:`SigningPool.close`. A worker that dies fails the signatures in flight
(:class:`concurrent.futures.process.BrokenProcessPool`); the next ones start fresh
workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from overt.formats.keytypes import KeySigner, RawPrivateKey, algorithms

__all__ = ["SigningPool"]

_KEY: RawPrivateKey | None = None


def _load(algorithm: str, seed: bytes) -> None:
    """A worker's start: the private key from its seed (once per process)."""
    global _KEY
    import overt.formats  # registers every key type, so every algorithm is known

    del overt.formats
    (alg,) = (a for a in algorithms() if a.name == algorithm)
    _KEY = alg.private_from_seed(seed)


def _sign_all(messages: list[bytes]) -> list[bytes]:
    """In a worker: the algorithm's signature of each message, in order."""
    assert _KEY is not None, "worker started without its key"
    key = _KEY
    return [key.sign(message) for message in messages]


class SigningPool:
    """Signs note texts as ``signer`` with its algorithm running in ``workers`` processes.

    Use from one event loop. :meth:`sign` returns what ``signer.sign(text)`` would
    (same clock, same message, same key).
    """

    def __init__(self, signer: KeySigner, workers: int | None = None) -> None:
        self.signer = signer
        self.workers = max(1, workers or os.cpu_count() or 2)
        self._pool: ProcessPoolExecutor | None = None
        self._waiting: list[tuple[bytes, asyncio.Future[bytes]]] = []
        self._in_flight = 0
        self.batches = 0

    async def start(self) -> None:
        """Starts every worker and waits until each has its key (a server's startup), so
        that the first requests pay no process start.

        Raises:
            BrokenProcessPool: a worker could not start.
        """
        pool = self._executor()
        await asyncio.gather(
            *(asyncio.wrap_future(pool.submit(_sign_all, [])) for _ in range(self.workers))
        )

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_load,
                initargs=(self.signer.key_type.algorithm.name, self.signer.seed),
            )
        return self._pool

    async def sign(self, text: bytes) -> bytes:
        """The signature (without key ID) over note ``text``.

        Raises:
            FormatError: ``text`` is nothing the key's type signs.
            ConfigError: the signer's clock returned no POSIX time.
            BrokenProcessPool: a worker died while signing this one.
        """
        prefix, message = self.signer.to_sign(text)
        signed: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting.append((message, signed))
        self._send()
        return prefix + await signed

    def _send(self) -> None:
        free = self.workers - self._in_flight
        if free <= 0 or not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        size = -(-len(waiting) // free)  # ceil: as many batches as free workers, no more
        for start in range(0, len(waiting), size):
            self._submit(waiting[start : start + size])

    def _submit(self, batch: list[tuple[bytes, asyncio.Future[bytes]]]) -> None:
        pool = self._executor()
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        self.batches += 1
        try:
            done = pool.submit(_sign_all, [message for message, _ in batch])
        except BrokenProcessPool as err:
            self._in_flight -= 1
            self._drop_pool()
            _fail(batch, err)
            return

        def back(f: Future[list[bytes]]) -> None:  # in the pool's thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(self._deliver, f, batch)

        done.add_done_callback(back)

    def _deliver(
        self, done: Future[list[bytes]], batch: list[tuple[bytes, asyncio.Future[bytes]]]
    ) -> None:
        self._in_flight -= 1
        err: BaseException | None
        if done.cancelled():
            err = BrokenProcessPool("the signing pool was closed")
        else:
            err = done.exception()
        if err is None:
            for (_, signed), signature in zip(batch, done.result(), strict=True):
                if not signed.done():
                    signed.set_result(signature)
        else:
            if isinstance(err, BrokenProcessPool):
                self._drop_pool()
            _fail(batch, err)
        self._send()

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Stops the workers (waiting for signatures in flight); waiting ones fail."""
        waiting, self._waiting = self._waiting, []
        _fail(waiting, BrokenProcessPool("the signing pool was closed"))
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _fail(batch: list[tuple[bytes, asyncio.Future[bytes]]], err: BaseException) -> None:
    for _, signed in batch:
        if not signed.done():
            signed.set_exception(err)
