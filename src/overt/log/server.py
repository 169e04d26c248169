"""The log's HTTP face: c2sp.org/tlog-tiles reads and an authenticated ``POST /add``.

Routes (``<prefix>`` is the server root)::

    GET  /checkpoint                      text/plain; charset=utf-8, max-age=2
    GET  /metrics                         integrated/published sizes, witness states (Prometheus)
    GET  /tile/<L>/<N>[.p/<W>]            application/octet-stream, immutable
    GET  /tile/entries/<N>[.p/<W>]        application/octet-stream, immutable, gzip if accepted
    GET  /subtree/<start>-<end>           a witnessed range's subtree note (overt.log.subtrees):
                                          text/plain, max-age=60 (it may gain cosignatures); 404
                                          until a witness cosigned it
    POST /add                             body: one entry (1..65535 bytes)
                                          Authorization: Bearer <token>
                                          200 as soon as the entry is durable (sequenced):
                                          body "<index>\n", header ``Overt-Index``
    POST /add?proof=1                     the same, but replies once the entry is integrated,
                                          with its c2sp.org/tlog-proof@v1 against the first
                                          published checkpoint that includes it

Status codes: 400 malformed path, empty entry or a query on ``/add`` other than
``proof=1``, 401 missing or wrong token, 404 nothing there (or beyond the
published tree), 405 wrong method, 413 entry larger than 65535 bytes (refused on
its Content-Length, before the body is read), 503 the log failed to store a
batch. Input never causes a 500: a 500 is a bug, and is logged with its traceback.
Connection-level limits (timeouts, header size, open connections) are
:class:`overt._asgi.ServerLimits`, documented in docs/servers.md.

The app is a bare ASGI callable rather than a Starlette app: ``POST /add`` is
the hot path (thousands of requests a second on two cores) and a framework's
per-request routing and object layers cost more than the whole handler.

Concurrent writers are batched twice: every request queues its entry with the
:class:`Sequencer`, which sequences everything queued so far with one journal
fsync (:meth:`overt.log.Log.sequence`), and integrates everything sequenced so
far into tiles and a new checkpoint (:meth:`overt.log.Log.integrate`) in a
loop behind it.

A shared log (:class:`overt.log.shared.SharedLog`, several front ends) is
served the same way: sequencing is one database transaction per batch, and the
integration loop also runs every ``poll`` seconds, since other front ends
sequence too: on the front end holding the lease it integrates, on the others
it adopts the latest checkpoint (which wakes their ``?proof=1`` waiters).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import heapq
import hmac
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from overt._asgi import (
    CLOSE,
    BodyTooLargeError,
    Receive,
    Scope,
    Send,
    ServerLimits,
    answer,
    error,
    read_body,
    reply,
    run,
)
from overt.errors import EntryError, LogError, NotFoundError, TilePathError
from overt.formats import tiles
from overt.log.log import MAX_BATCH, Log, check_entry

if TYPE_CHECKING:
    from overt.log.shared import SharedLog
    from overt.log.witnessing import Witnessing

__all__ = ["LogApp", "Sequencer", "ServerLimits", "serve"]

log = logging.getLogger("overt.log")


_IMMUTABLE = b"public, max-age=31536000, immutable"
_CHECKPOINT_CACHE = b"public, max-age=2"
#: Entry bundles up to this size are compressed on the event loop (cheaper than a thread hop).
_GZIP_INLINE = 64 * 1024


class Sequencer:
    """Batches concurrent appends: sequencing passes, and integration passes behind them.

    ``add`` returns once the entry is durable in the journal (one fsync shared
    by everything queued meanwhile); ``wait_integrated`` returns once a
    published checkpoint covers an index. Integration runs continuously while
    anything is staged, so each pass takes everything sequenced during the
    previous one.
    """

    def __init__(
        self,
        log: Log | SharedLog,
        max_batch: int = MAX_BATCH,
        witnessing: Witnessing | None = None,
        retry: float = 2.0,
        refresh: float = 60.0,
        backoff: tuple[float, float] = (0.05, 5.0),
        poll: float | None = None,
    ) -> None:
        self.log = log
        # A shared log: integrate (or catch up) at least this often, whatever arrives here.
        self.poll = poll
        self.witnessing = witnessing
        self.retry = retry
        self.refresh = refresh
        # While storage fails, integration is retried after backoff[0] seconds,
        # doubling up to backoff[1]: no busy loop, and a quick recovery.
        self.backoff = backoff
        self.failures = 0  # consecutive failed integration passes
        self.attempts = 0  # integration attempts (calls of Log.integrate)
        self.max_batch = max_batch
        self._queue: list[tuple[bytes, asyncio.Future[int]]] = []
        self._wakeup = asyncio.Event()
        self._staged = asyncio.Event()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._counter = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.sequenced = 0  # entries in those batches (duplicates included)
        self.integrations = 0

    def start(self) -> None:
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._sequence()), loop.create_task(self._integrate())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        # Integrate what is staged so a clean shutdown leaves nothing in the journal
        # (if storage fails, it stays there and is integrated on the next open).
        try:
            await asyncio.to_thread(self.log.integrate)
        except LogError as err:
            log.error("integration at shutdown failed (the journal keeps the entries): %s", err)

    async def add(self, entry: bytes) -> int:
        """Queue an entry; returns its index once it is durably sequenced."""
        self.start()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((entry, future))
        self._wakeup.set()
        return await future

    async def wait_integrated(self, index: int) -> None:
        """Return once a published checkpoint covers ``index``."""
        if index < self.log.published_size:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._counter += 1
        heapq.heappush(self._waiters, (index, self._counter, future))
        self._staged.set()
        await future

    async def _sequence(self) -> None:
        # A shared log sequences on the event loop: no thread hop per batch.
        sequence_async = getattr(self.log, "sequence_async", None)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                entries = [e for e, _ in batch]
                try:
                    if sequence_async is not None:
                        indices = await sequence_async(entries)
                    else:
                        indices = await asyncio.to_thread(self.log.sequence, entries)
                except Exception as err:  # every waiter must hear about it
                    log.error("sequencing %d entries failed: %s", len(batch), err)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(err)
                    continue
                self.batches += 1
                self.sequenced += len(batch)
                for (_, future), index in zip(batch, indices, strict=True):
                    if not future.done():
                        future.set_result(index)
                self._staged.set()

    def _unwitnessed(self) -> bool:
        return self.witnessing is not None and self.log.published_size < self.log.size

    def _stale(self) -> bool:
        w = self.witnessing
        return w is not None and time.monotonic() - w.last_published >= self.refresh

    async def _integrate(self) -> None:
        """Integration passes for ever; after a failed one, wait (exponential backoff)."""
        while True:
            try:
                ok = await self._integrate_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the loop die: appends would hang
                log.exception("integration loop failed; retrying")
                ok = False
            if ok:
                self.failures = 0
                continue
            self.failures += 1
            first, cap = self.backoff
            await asyncio.sleep(min(cap, first * 2 ** min(self.failures - 1, 30)))
            self._staged.set()  # retry even if nothing new arrives

    async def _integrate_once(self) -> bool:
        """One pass: wait for work (or a retry/refresh timer), integrate, witness, wake waiters.

        Returns False if the pass failed or made no progress (the caller backs off).
        """
        if self.witnessing is not None:
            # Retry witnesses that were down, and refresh cosignatures of a quiet
            # log, even if nothing new arrives.
            timeout = self.retry if self._unwitnessed() else self.refresh
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._staged.wait(), timeout)
        elif self.poll is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._staged.wait(), self.poll)
        else:
            await self._staged.wait()
        self._staged.clear()
        before = self.log.size
        try:
            # A log that failed to store a batch integrates again to recover.
            pending = self.log.sequenced_size > self.log.size
            if self.poll is not None:
                # Shared: the pass integrates a batch (lease holder) or catches up.
                self.attempts += 1
                await asyncio.to_thread(self.log.integrate)
                self.integrations += 1
            elif pending or self.log.failure is not None:
                self.attempts += 1
                before = self.log.size
                await asyncio.to_thread(self.log.integrate)
                self.integrations += 1
                if pending and self.log.size == before:
                    log.error("integration made no progress (size %d); retrying", before)
                    return False
            if self.witnessing is not None and (self._unwitnessed() or self._stale()):
                await asyncio.to_thread(self.witnessing.cosign_latest, self._stale())
        except Exception as err:
            log.error("integration failed, retrying: %s", err)
            return False
        size = self.log.published_size
        while self._waiters and self._waiters[0][0] < size:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
        if self.poll is not None:
            if self.log.size > before:  # progress: there may be more at once
                self._staged.set()
        elif self.log.sequenced_size > self.log.size:
            self._staged.set()
        return True


class LogApp:
    """ASGI application serving one :class:`Log`."""

    def __init__(
        self,
        log: Log | SharedLog,
        token: str | None = None,
        witnessing: Witnessing | None = None,
        poll: float | None = None,
    ) -> None:
        self.log = log
        self.witnessing = witnessing
        self.poll = poll
        self.token = (token if token is not None else log.token).encode()
        self.sequencer: Sequencer | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        await answer(scope, receive, send, self._route, "log")

    async def _route(
        self, scope: Scope, receive: Receive, send: Send, path: str, method: str
    ) -> None:
        if path == "/add":
            if method != "POST":
                await error(send, 405, "use POST /add", [(b"allow", b"POST")])
                return
            await self._add(scope, receive, send)
        elif path == "/metrics" and method == "GET":
            await reply(send, 200, self._metrics().encode(), b"text/plain; version=0.0.4")
        elif path.startswith("/subtree/"):
            if method not in ("GET", "HEAD"):
                await error(send, 405, "read endpoints take GET", [(b"allow", b"GET, HEAD")])
                return
            await self._subtree(path[len("/subtree/") :], send)
        elif path == "/checkpoint" or path.startswith("/tile/"):
            if method not in ("GET", "HEAD"):
                await error(send, 405, "read endpoints take GET", [(b"allow", b"GET, HEAD")])
                return
            await self._read(scope, path, send)
        else:
            await error(send, 404, f"no such endpoint: {path}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.sequencer = Sequencer(self.log, witnessing=self.witnessing, poll=self.poll)
                self.sequencer.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.sequencer is not None:
                    await self.sequencer.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _metrics(self) -> str:
        if self.witnessing is not None:
            return self.witnessing.status()
        text = (
            "# TYPE overt_log_integrated_size gauge\n"
            f"overt_log_integrated_size {self.log.size}\n"
            "# TYPE overt_log_published_size gauge\n"
            f"overt_log_published_size {self.log.published_size}\n"
        )
        if self.poll is not None:  # a shared log: which front end integrates
            lease = getattr(self.log, "holds_lease", False)
            text += (
                "# TYPE overt_log_sequenced_size gauge\n"
                f"overt_log_sequenced_size {self.log.sequenced_size}\n"
                "# TYPE overt_log_sequencer_lease gauge\n"
                f"overt_log_sequencer_lease {int(lease)}\n"
            )
            if self.sequencer is not None:  # this front end's batches: their mean size
                text += (
                    "# TYPE overt_log_sequencing_batches_total counter\n"
                    f"overt_log_sequencing_batches_total {self.sequencer.batches}\n"
                    "# TYPE overt_log_sequencing_entries_total counter\n"
                    f"overt_log_sequencing_entries_total {self.sequencer.sequenced}\n"
                )
            witness_status = getattr(self.log, "witness_status", None)
            if witness_status is not None:  # the witnesses, as the lease holder knows them
                text += witness_status()
        return text

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = bytes(value).partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token, self.token)
        return False

    async def _add(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorized(scope):
            await error(
                send, 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")]
            )
            return
        # Validate the whole request before acting on it: nothing may fail after
        # the entry is sequenced except storage.
        query = scope.get("query_string", b"")
        if query not in (b"", b"proof=1"):
            await error(send, 400, f"unknown query {_preview(query)}: use /add or /add?proof=1")
            return
        try:
            entry = await read_body(scope, receive, tiles.MAX_ENTRY_SIZE)
        except BodyTooLargeError:
            await error(send, 413, "entry larger than 65535 bytes", [CLOSE])
            return
        if entry is None:
            return
        try:
            check_entry(entry)
        except EntryError as err:
            await error(send, 400, str(err))
            return
        if self.sequencer is None:  # served without lifespan support
            self.sequencer = Sequencer(self.log, witnessing=self.witnessing, poll=self.poll)
        index = await self.sequencer.add(entry)
        headers = [(b"overt-index", str(index).encode())]
        if not query:
            await reply(send, 200, b"%d\n" % index, headers=headers)
            return
        await self.sequencer.wait_integrated(index)
        await reply(send, 200, self.log.proof(index), headers=headers)

    async def _subtree(self, name: str, send: Send) -> None:
        from overt.log.subtrees import SubtreeStore, parse_range_name

        directory = getattr(self.log, "directory", None)
        where = parse_range_name(name)
        if where is None:
            await error(
                send, 400, f"not a range: {_preview(name.encode())} (use /subtree/START-END)"
            )
            return
        note = (
            None
            if directory is None
            else await asyncio.to_thread(SubtreeStore(directory).read, *where)
        )
        if note is None:
            await error(send, 404, f"no witnessed subtree {name}")
            return
        await reply(send, 200, note, headers=[(b"cache-control", b"max-age=60")])

    async def _read(self, scope: Scope, path: str, send: Send) -> None:
        if path == "/checkpoint":
            await reply(
                send, 200, self.log.checkpoint(), headers=[(b"cache-control", _CHECKPOINT_CACHE)]
            )
            return
        try:
            where = tiles.parse_tile_path(path[1:])
        except TilePathError as err:
            await error(send, 400, str(err))
            return
        try:
            if where.level is None:
                data = self.log.read_bundle(where.index, where.width)
            else:
                data = self.log.read_tile(where.level, where.index, where.width)
        except NotFoundError as err:
            await error(send, 404, str(err))
            return
        headers = [(b"cache-control", _IMMUTABLE)]
        if where.level is None and _accepts_gzip(scope):
            if len(data) > _GZIP_INLINE:
                # A bundle may be 16 MiB (~0.1 s to compress): off the event loop,
                # so one request for it does not stall every other connection.
                data = await asyncio.to_thread(gzip.compress, data, 1)
            else:
                data = gzip.compress(data, compresslevel=1)
            headers.append((b"content-encoding", b"gzip"))
        await reply(send, 200, data, b"application/octet-stream", headers)


def _preview(data: bytes) -> str:
    text = repr(data[:40])[1:]
    return text + "..." if len(data) > 40 else text


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in bytes(value).lower()
    return False


def serve(
    log: Log | SharedLog,
    host: str,
    port: int,
    ready: Callable[[], None] | None = None,
    limits: ServerLimits | None = None,
) -> None:
    """Run the server until interrupted (uvicorn, uvloop/httptools) under ``limits``.

    With a witness policy in the log directory, checkpoints are witnessed before
    they are published (overt.log.witnessing).
    """
    from overt.log.shared import POLL, SharedLog
    from overt.log.witnessing import Witnessing

    if isinstance(log, SharedLog):
        run(LogApp(log, poll=POLL), host, port, ready, limits)
        return
    witnessing = Witnessing(log, log.policy) if log.policy is not None else None
    try:
        run(LogApp(log, witnessing=witnessing), host, port, ready, limits)
    finally:
        if witnessing is not None:
            witnessing.close()
