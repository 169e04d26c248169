"""The log's HTTP face: c2sp.org/tlog-tiles reads and an authenticated ``POST /add``.

Routes (``<prefix>`` is the server root)::

    GET  /checkpoint                      text/plain; charset=utf-8, max-age=2
    GET  /tile/<L>/<N>[.p/<W>]            application/octet-stream, immutable
    GET  /tile/entries/<N>[.p/<W>]        application/octet-stream, immutable, gzip if accepted
    POST /add                             body: one entry (1..65535 bytes)
                                          Authorization: Bearer <token>
                                          200 -> c2sp.org/tlog-proof@v1 of the entry against the
                                          first checkpoint that includes it; the index is on its
                                          ``index`` line and in the ``Overt-Index`` header.

Status codes: 400 malformed path or empty entry, 401 missing or wrong token,
404 nothing there (or beyond the published tree), 405 wrong method, 413 entry
larger than 65535 bytes, 503 the log failed to store a batch. Input never causes a 500.

The app is a bare ASGI callable rather than a Starlette app: ``POST /add`` is
the hot path (thousands of requests a second on two cores) and a framework's
per-request routing and object layers cost more than the whole handler.

Concurrent writers are batched: every request queues its entry with the
:class:`Sequencer`, which integrates everything queued so far in one pass of
:meth:`overt.log.Log.add_many` (one fsync round for the whole batch) while the
next batch accumulates.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from overt.errors import EntryError, NotFoundError, OvertError, TilePathError
from overt.formats import tiles
from overt.log.log import MAX_BATCH, Log, check_entry

__all__ = ["LogApp", "Sequencer"]

log = logging.getLogger("overt.log")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_IMMUTABLE = b"public, max-age=31536000, immutable"
_CHECKPOINT_CACHE = b"public, max-age=2"


class Sequencer:
    """Batches concurrent appends into integration passes run off the event loop."""

    def __init__(self, log: Log, max_batch: int = MAX_BATCH) -> None:
        self.log = log
        self.max_batch = max_batch
        self._queue: list[tuple[bytes, asyncio.Future[tuple[int, bytes]]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def add(self, entry: bytes) -> tuple[int, bytes]:
        """Queue an entry; returns (index, tlog-proof) once it is integrated and published."""
        self.start()
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._queue.append((entry, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                entries = [entry for entry, _ in batch]
                try:
                    results = await asyncio.to_thread(self._integrate, entries)
                except Exception as err:  # every waiter must hear about it
                    log.error("integration of %d entries failed: %s", len(entries), err)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(err)
                    continue
                self.batches += 1
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    def _integrate(self, entries: list[bytes]) -> list[tuple[int, bytes]]:
        indices = self.log.add_many(entries)
        proofs: dict[int, bytes] = {}
        for index in indices:
            if index not in proofs:
                proofs[index] = self.log.proof(index)
        return [(index, proofs[index]) for index in indices]


async def _reply(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _reply(send, status, message.encode() + b"\n", headers=headers)


class LogApp:
    """ASGI application serving one :class:`Log`."""

    def __init__(self, log: Log, token: str | None = None) -> None:
        self.log = log
        self.token = (token if token is not None else log.token).encode()
        self.sequencer: Sequencer | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path == "/add":
                if method != "POST":
                    await _error(send, 405, "use POST /add", [(b"allow", b"POST")])
                    return
                await self._add(scope, receive, send)
            elif path == "/checkpoint" or path.startswith("/tile/"):
                if method not in ("GET", "HEAD"):
                    await _error(send, 405, "read endpoints take GET", [(b"allow", b"GET, HEAD")])
                    return
                await self._read(scope, path, send)
            else:
                await _error(send, 404, f"no such endpoint: {path}")
        except OvertError as err:
            # Storage failures reach here; input errors are answered above.
            log.error("request %s %s failed: %s", method, path, err)
            await _error(send, 503, f"log unavailable: {err}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.sequencer = Sequencer(self.log)
                self.sequencer.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.sequencer is not None:
                    await self.sequencer.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = bytes(value).partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token, self.token)
        return False

    async def _add(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._authorized(scope):
            await _error(
                send, 401, "missing or wrong bearer token", [(b"www-authenticate", b"Bearer")]
            )
            return
        chunks: list[bytes] = []
        length = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            length += len(chunk)
            if length > tiles.MAX_ENTRY_SIZE:
                await _error(send, 413, "entry larger than 65535 bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        entry = b"".join(chunks)
        try:
            check_entry(entry)
        except EntryError as err:
            await _error(send, 400, str(err))
            return
        if self.sequencer is None:  # served without lifespan support
            self.sequencer = Sequencer(self.log)
        index, proof = await self.sequencer.add(entry)
        await _reply(send, 200, proof, headers=[(b"overt-index", str(index).encode())])

    async def _read(self, scope: Scope, path: str, send: Send) -> None:
        if path == "/checkpoint":
            await _reply(
                send, 200, self.log.checkpoint(), headers=[(b"cache-control", _CHECKPOINT_CACHE)]
            )
            return
        try:
            where = tiles.parse_tile_path(path[1:])
        except TilePathError as err:
            await _error(send, 400, str(err))
            return
        try:
            if where.level is None:
                data = self.log.read_bundle(where.index, where.width)
            else:
                data = self.log.read_tile(where.level, where.index, where.width)
        except NotFoundError as err:
            await _error(send, 404, str(err))
            return
        headers = [(b"cache-control", _IMMUTABLE)]
        if where.level is None and _accepts_gzip(scope):
            data = gzip.compress(data, compresslevel=1)
            headers.append((b"content-encoding", b"gzip"))
        await _reply(send, 200, data, b"application/octet-stream", headers)


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in bytes(value).lower()
    return False


def serve(log: Log, host: str, port: int, ready: Callable[[], None] | None = None) -> None:
    """Run the server until interrupted (uvicorn, uvloop/httptools when available)."""
    import uvicorn

    config = uvicorn.Config(
        LogApp(log), host=host, port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    if ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets)
            ready()

        server.startup = startup  # type: ignore[method-assign]
    server.run()
