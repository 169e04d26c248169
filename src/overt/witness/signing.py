"""Slow signatures (ML-DSA-44) made in worker processes, for a server's event loop.

``cryptography`` 50 holds the GIL while it signs with ML-DSA-44 (~0.6 ms of CPU a
signature here): two threads signing finish no sooner than one, so a witness that signs
on a thread pool signs on one core however many it has, and its event loop, parser and
log-signature checks wait behind every signature. :class:`SigningPool` makes the
algorithm's signature in ``workers`` processes instead; the server process keeps
everything else (reading the clock, building the tlog-cosignature message, the
timestamp prefix: :meth:`overt.formats.keytypes.KeySigner.to_sign`), so a worker
only ever signs the exact message it is handed.

The protocol is two pipes per worker (its stdin and stdout) carrying frames, a
4-byte big-endian length and that many bytes::

    server -> worker   algorithm name, 32-byte seed, then one message per frame
    worker -> server   its public key (ready), then one signature per frame, in order

The server's side never blocks: both pipe ends are non-blocking and driven by the
event loop (``add_reader``; writes that do not fit wait for ``add_writer``), and the
messages handed out in one turn of the loop leave in one write. A worker reads every
frame waiting in its pipe at once and signs them in order, so under load one
round trip carries a batch; under light load a message leaves alone at once. A
message goes to the worker with the fewest signatures owed, so both stay busy. This
costs a few microseconds per signature where ``ProcessPoolExecutor`` (pickling, a
feeder and a manager thread, a wake-up pipe) cost ~120.

The key reaches a worker as its seed, in the pipe, and lives only in that child's
memory; the worker answers with its public key, which must be the signer's. Workers
are started by :meth:`SigningPool.start` (a server's startup) or the first signature,
as ``python -c`` (exec, not fork: the server has threads; and not
``multiprocessing``'s spawn, which runs the parent's ``__main__`` again); they ignore
SIGINT, and exit when their stdin closes (:meth:`SigningPool.close`, or the server's
death). A worker that dies fails the signatures it owes
(:class:`concurrent.futures.process.BrokenProcessPool`, which the witness answers by
signing in its transaction) and is replaced in the background while the others sign;
after a start that failed, the next waits (1 s, doubling up to a minute), so that a
worker that cannot start is not started again for every request.
"""

from __future__ import annotations

import asyncio
import collections
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool

from overt.formats.keytypes import KeySigner, algorithms

__all__ = ["START_TIMEOUT", "SigningPool"]

START_TIMEOUT = 60.0
"""Seconds a worker has to start and load its key before it counts as broken."""

_LENGTH = struct.Struct(">I")
_MAX_FRAME = 1 << 16  # a message or a signature: ML-DSA-44's are 2,420 bytes
_READ = 1 << 16
_BOOT = "from overt.witness.signing import _worker_main; _worker_main()"


def _frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


def _frames(buffer: bytearray) -> list[bytes]:
    """Takes every complete frame off the front of ``buffer``.

    Raises:
        ValueError: a frame longer than any message or signature.
    """
    out = []
    start = 0
    while len(buffer) - start >= 4:
        (size,) = _LENGTH.unpack_from(buffer, start)
        if size > _MAX_FRAME:
            raise ValueError(f"a frame of {size} bytes")
        if len(buffer) - start - 4 < size:
            break
        out.append(bytes(buffer[start + 4 : start + 4 + size]))
        start += 4 + size
    del buffer[:start]
    return out


# --- the worker process -----------------------------------------------------------------


def _worker_main() -> None:
    """A worker: reads the key, says its public key, then signs each message it reads.

    Frames come on stdin and go out on stdout; stray prints go to stderr instead.
    Exits when stdin closes.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is the server's to handle
    read_fd, write_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    buffer = bytearray()
    waiting: collections.deque[bytes] = collections.deque()

    def next_frame() -> bytes | None:
        while not waiting:
            data = os.read(read_fd, _READ)
            if not data:
                return None
            buffer.extend(data)
            waiting.extend(_frames(buffer))
        return waiting.popleft()

    def send(payload: bytes) -> None:
        view = memoryview(_frame(payload))
        while view:
            view = view[os.write(write_fd, view) :]

    name, seed = next_frame(), next_frame()
    if name is None or seed is None:
        return
    import overt.formats  # registers every key type, so every algorithm is known

    del overt.formats
    (algorithm,) = (a for a in algorithms() if a.name == name.decode())
    key = algorithm.private_from_seed(seed)
    send(key.public_key().public_bytes_raw())
    while (message := next_frame()) is not None:
        send(key.sign(message))


# --- the server's side ------------------------------------------------------------------


class _Worker:
    """One worker process, its pipes, and the futures of the signatures it owes, in order."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_death: Callable[[_Worker], None]
    ) -> None:
        self.loop = loop
        self._on_death = on_death
        # The worker imports overt from where this process did (a test or a checkout may
        # have it on sys.path only); -P: nothing from the working directory.
        path = [p for p in sys.path if p]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-c", _BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.pid = self.proc.pid
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self._owed: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self._read = bytearray()
        self._write = bytearray()
        self._flush_soon = False
        self._writer = False
        self.alive = True
        self.ready = False  # set once it has shown the signer's public key
        self.writes = 0
        loop.add_reader(self._out, self._readable)

    @property
    def owed(self) -> int:
        return len(self._owed)

    def hello(self, algorithm: str, seed: bytes) -> asyncio.Future[bytes]:
        """Hands the worker its key; the future is its public key."""
        self._write += _frame(algorithm.encode()) + _frame(seed)
        self._schedule()
        hello: asyncio.Future[bytes] = self.loop.create_future()
        self._owed.append(hello)
        return hello

    def send(self, message: bytes) -> asyncio.Future[bytes]:
        """The future signature of ``message`` (BrokenProcessPool if the worker dies)."""
        signed: asyncio.Future[bytes] = self.loop.create_future()
        if not self.alive:
            signed.set_exception(BrokenProcessPool("the signing worker is gone"))
            return signed
        self._owed.append(signed)
        self._write += _frame(message)
        self._schedule()
        return signed

    def _schedule(self) -> None:
        if not self._flush_soon and not self._writer:
            self._flush_soon = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        if not self.alive or not self._write:
            return
        try:
            written = os.write(self._in, self._write)
        except BlockingIOError:
            written = 0
        except OSError as err:  # the worker closed its end: it is dying
            self.die(f"cannot write to the signing worker: {err}")
            return
        self.writes += 1
        del self._write[:written]
        if self._write and not self._writer:
            self.loop.add_writer(self._in, self._flush)
            self._writer = True
        elif not self._write and self._writer:
            self.loop.remove_writer(self._in)
            self._writer = False

    def _readable(self) -> None:
        try:
            data = os.read(self._out, _READ)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.die(f"signing worker {self.pid} exited")
            return
        self._read += data
        try:
            answers = _frames(self._read)
        except ValueError as err:
            self.die(f"signing worker {self.pid} sent {err}")
            return
        for answer in answers:
            if not self._owed:
                self.die(f"signing worker {self.pid} answered what it was not asked")
                return
            owed = self._owed.popleft()
            if not owed.done():
                owed.set_result(answer)

    def die(self, why: str) -> None:
        """Stops the worker for good; every signature it owes fails."""
        if not self.alive:
            return
        self.alive = False
        if not self.loop.is_closed():
            self.loop.remove_reader(self._out)
            if self._writer:
                self.loop.remove_writer(self._in)
        owed, self._owed = self._owed, collections.deque()
        for signed in owed:
            if not signed.done():
                signed.set_exception(BrokenProcessPool(why))
        self._stop(wait=False)
        self._on_death(self)

    def _stop(self, wait: bool) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()  # EOF: the worker finishes what it holds and exits
        self.proc.stdout.close()
        if wait:
            try:
                self.proc.wait(5.0)
                return
            except subprocess.TimeoutExpired:
                pass
        self.proc.kill()
        if wait:
            self.proc.wait()

    def close(self) -> None:
        """Ends the worker: stdin closed, waited for (killed after 5 s)."""
        if self.alive:
            self.alive = False
            if not self.loop.is_closed():
                self.loop.remove_reader(self._out)
                if self._writer:
                    self.loop.remove_writer(self._in)
            self._stop(wait=True)
        else:
            self.proc.wait()  # reaped: a dead worker was killed already
        for signed in self._owed:
            if not signed.done():
                signed.set_exception(BrokenProcessPool("the signing pool was closed"))
        self._owed.clear()


class SigningPool:
    """Signs note texts as ``signer`` with its algorithm running in ``workers`` processes.

    Use from one event loop. :meth:`sign` returns what ``signer.sign(text)`` would
    (same clock, same message, same key).
    """

    def __init__(self, signer: KeySigner, workers: int | None = None) -> None:
        self.signer = signer
        self.workers = max(1, workers or os.cpu_count() or 2)
        self._live: list[_Worker] = []
        self._dead: list[_Worker] = []
        self._starting: asyncio.Task[None] | None = None
        self._retry_at = 0.0  # after a failed start, no other before this loop time
        self._backoff = 0.0
        self._batches = 0

    @property
    def batches(self) -> int:
        """Writes to workers so far: each carries every message handed out meanwhile."""
        return self._batches + sum(w.writes for w in self._live + self._dead)

    def pids(self) -> list[int]:
        """The process IDs of the live workers."""
        return [w.pid for w in self._live]

    async def start(self) -> None:
        """Starts every worker and waits until each has its key (a server's startup), so
        that the first requests pay no process start.

        Raises:
            BrokenProcessPool: a worker could not start.
        """
        self._retry_at = 0.0
        self._replenish(asyncio.get_running_loop())
        if self._starting is not None:
            await asyncio.shield(self._starting)

    def _replenish(self, loop: asyncio.AbstractEventLoop) -> None:
        """Starts, in the background, the workers missing (none while a start runs, nor
        for a while after one failed: a worker that cannot start must not be retried for
        every request)."""
        if self._live and self._live[0].loop is not loop:  # a new loop: new workers
            self.close()
        if (
            self._starting is not None
            or len(self._live) >= self.workers
            or loop.time() < self._retry_at
        ):
            return
        self._starting = loop.create_task(self._start_missing(loop))
        self._starting.add_done_callback(self._started)

    async def _start_missing(self, loop: asyncio.AbstractEventLoop) -> None:
        hellos = []
        while len(self._live) < self.workers:
            try:
                worker = _Worker(loop, self._died)
            except OSError as err:  # no process could be made (out of PIDs, memory)
                raise BrokenProcessPool(f"cannot start a signing worker: {err}") from err
            self._live.append(worker)
            hellos.append((worker, worker.hello(self._algorithm, self.signer.seed)))
        for worker, hello in hellos:
            try:
                public = await asyncio.wait_for(hello, START_TIMEOUT)
            except TimeoutError:
                worker.die("the signing worker did not start")
                raise BrokenProcessPool("a signing worker did not start in time") from None
            if public != self.signer.public_bytes:
                worker.die("the signing worker holds another key")
                raise BrokenProcessPool("a signing worker holds another key")
            worker.ready = True

    def _started(self, task: asyncio.Task[None]) -> None:
        self._starting = None
        if task.cancelled() or task.exception() is None:
            self._backoff = 0.0
        else:  # retrieved here; the callers waiting for it raise it too
            self._backoff = min(60.0, max(1.0, 2 * self._backoff))
            self._retry_at = task.get_loop().time() + self._backoff

    @property
    def _algorithm(self) -> str:
        return self.signer.key_type.algorithm.name

    def _died(self, worker: _Worker) -> None:
        if worker in self._live:
            self._live.remove(worker)
            self._dead.append(worker)
        for dead in [w for w in self._dead if w.proc.poll() is not None]:  # reaped
            self._dead.remove(dead)
            self._batches += dead.writes

    async def sign(self, text: bytes) -> bytes:
        """The signature (without key ID) over note ``text``.

        A worker that died is replaced in the background; the others sign meanwhile.

        Raises:
            FormatError: ``text`` is nothing the key's type signs.
            ConfigError: the signer's clock returned no POSIX time.
            BrokenProcessPool: a worker died while signing this one, or none could start.
        """
        prefix, message = self.signer.to_sign(text)
        self._replenish(asyncio.get_running_loop())
        ready = [w for w in self._live if w.ready]
        if not ready:
            if self._starting is not None:
                await asyncio.shield(self._starting)
            ready = [w for w in self._live if w.ready]
            if not ready:
                raise BrokenProcessPool("no signing worker is running")
        worker = min(ready, key=_owed)
        return prefix + await worker.send(message)

    def close(self) -> None:
        """Stops the workers (each finishes the signature in hand); what they owe fails."""
        if self._starting is not None and not self._starting.get_loop().is_closed():
            self._starting.cancel()
        self._starting = None
        live, self._live = self._live, []
        dead, self._dead = self._dead, []
        for worker in live + dead:
            worker.close()
            self._batches += worker.writes


def _owed(worker: _Worker) -> int:
    return worker.owed
