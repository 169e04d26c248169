"""The mirror's HTTP face: c2sp.org/tlog-mirror submission API and tlog-tiles monitoring API.

Routes (the submission and monitoring prefixes are both the server root)::

    POST /add-checkpoint          as a witness's (c2sp.org/tlog-witness), but only the
                                  pending checkpoint moves and nothing is cosigned:
                                  200 (empty body), 409 text/x.tlog.size, 400/403/404/422
    POST /sign-subtree            as a witness's, for a checkpoint this mirror cosigned
                                  (an ML-DSA-44 mirror key only; else 404)
    POST /add-entries             application/octet-stream, gzip accepted
                                  (overt.formats.mirror): 200 the mirror's cosignature
                                  line(s); 202 / 409 text/x.tlog.mirror-info; 400/404/422
    GET  /logs                    "<origin hash> <origin>\\n" per mirrored log
    GET  /<hash>/checkpoint       the mirror checkpoint: the log's signature(s) and the
                                  mirror's cosignature/v1 (404 before the first)
    GET  /<hash>/min-index        the minimum index, decimal (entries below it are not
                                  served; clients must not count this mirror for them)
    GET  /<hash>/tile/...         hash tiles and entry bundles the mirror checkpoint covers
                                  (tlog-tiles); bundles that end at or below the
                                  minimum index are 404 (pruned)

``<hash>`` is the hex SHA-256 of the log's origin (c2sp.org/tlog-mirror).

``add-entries`` is read as a stream, one package at a time (never the whole
body): the header is checked as soon as it has arrived (404/422/409 before
the packages are read), then every package is authenticated
(:func:`overt.mirror.core.verify_package`) and the authenticated ones are
stored in groups of up to :data:`COMMIT_PACKAGES` packages
(:meth:`overt.mirror.store.MirroredTiles.append`, durable) and the stored size
recorded. Storing a group runs in a thread while the next group is read and
verified. Bytes after the last authenticated package are discarded: a cut or
malformed body is answered 202 with the next entry if anything was stored,
400 if nothing was; a package that does not verify is answered 422 after the
packages before it are stored. Once the stored size reaches ``upload_end``,
the root of the stored tree at ``upload_end`` is recomputed from the stored
tiles and must be the checkpoint's; only then is the checkpoint cosigned,
recorded (never rewinding) and published, and the reply sent. So a mirror
never signs what it does not durably hold, however a request ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from overt._asgi import (
    CLOSE,
    TEXT,
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
from overt.errors import FormatError, NotFoundError, OvertError, TilePathError
from overt.formats import tiles
from overt.formats.keytypes import KeySigner
from overt.formats.mirror import (
    CONTENT_TYPE_INFO,
    MAX_HEADER_SIZE,
    MAX_PACKAGE_SIZE,
    UploadHeader,
    format_mirror_info,
    package_count,
    package_range,
    parse_package,
    parse_upload_header,
)
from overt.formats.witness import (
    CONTENT_TYPE_SIZE,
    MAX_REQUEST_SIZE,
    parse_add_checkpoint,
)
from overt.log.backend import TileBackend
from overt.mirror.core import (
    MirrorRecord,
    PendingCheckpoint,
    advance_pending,
    check_upload,
    cosign,
    mirror_info,
    verify_package,
)
from overt.mirror.errors import (
    MirrorConflictError,
    MirrorError,
    MirrorRequestError,
    MirrorVerificationError,
)
from overt.mirror.state import MirrorState
from overt.mirror.store import MirroredTiles, origin_hash
from overt.witness.core import KnownLogs, verify_submission
from overt.witness.errors import WitnessConflictError, WitnessError, WitnessRequestError
from overt.witness.server import answer_sign_subtree

__all__ = ["COMMIT_PACKAGES", "MAX_UPLOADS", "MirrorApp", "serve"]

log = logging.getLogger("overt.mirror")

#: Packages authenticated before they are stored together (one durable write).
COMMIT_PACKAGES = 32
#: add-entries requests read at once; more are 503 (each may buffer a package of up to
#: 256 entries of 64 KiB, ~17 MB, before its proof can be checked: anyone can send one).
MAX_UPLOADS = 16
_INFO = CONTENT_TYPE_INFO.encode()
_SIZE = CONTENT_TYPE_SIZE.encode()
_OCTETS = b"application/octet-stream"
_IMMUTABLE = b"public, max-age=31536000, immutable"
_NO_CACHE = b"no-cache"
#: Decompressed bytes taken from a gzip stream at a time (bounds a gzip bomb's cost).
_INFLATE_STEP = 1 << 20
#: Buffered body bytes that can hold no complete package or header: a malformed stream.
_MAX_BUFFER = MAX_PACKAGE_SIZE + MAX_HEADER_SIZE + _INFLATE_STEP


#: Seconds a request waits for one in progress before it (then 409 Conflict).
_WAIT = 30.0
#: Seconds a request past the next entry waits for the one before it to be read at all.
_GRACE = 0.5


class _Upload:
    """One add-entries request in progress: its interval and how far it has authenticated."""

    __slots__ = ("end", "start", "verified")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end, self.verified = start, end, start


class _BodyEnded(Exception):  # noqa: N818  (private control flow)
    """The request body ended (or the client went away) before the next item was complete."""


class _Body:
    """A request body read on demand, inflated if gzip, into one buffer."""

    def __init__(self, receive: Receive, gzipped: bool) -> None:
        self.receive = receive
        self.inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
        self.buf = bytearray()
        self.pos = 0
        self.ended = False
        self.disconnected = False

    async def more(self) -> None:
        """Append more bytes to the buffer. Raises _BodyEnded, FormatError (corrupt gzip)."""
        inflate = self.inflate
        if inflate is not None and inflate.unconsumed_tail:
            self._take(inflate.decompress(inflate.unconsumed_tail, _INFLATE_STEP))
            return
        if self.ended:
            if inflate is not None and not inflate.eof:
                rest = inflate.decompress(b"", _INFLATE_STEP)  # output zlib still holds
                if rest:
                    self._take(rest)
                    return
            raise _BodyEnded
        message = await self.receive()
        if message["type"] == "http.disconnect":
            self.ended = self.disconnected = True
            raise _BodyEnded
        chunk = message.get("body", b"")
        if not message.get("more_body", False):
            self.ended = True
        if inflate is not None:
            try:
                chunk = inflate.decompress(chunk, _INFLATE_STEP)
            except zlib.error as err:
                raise FormatError("add-entries body", f"corrupt gzip: {err}") from err
        self._take(chunk)

    def _take(self, chunk: bytes) -> None:
        if self.pos:
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += chunk
        if len(self.buf) > _MAX_BUFFER:
            raise FormatError("add-entries body", "no complete package in the buffered bytes")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class MirrorApp:
    """ASGI application of one mirror: its key, the logs it mirrors, its state and tiles.

    ``tiles_for(origin)`` opens the tile backend of one mirrored log (rooted at
    its ``<hash>/`` prefix). ``reload`` returns the known logs when they changed
    (None: unchanged); it is asked at most once a second.
    """

    def __init__(
        self,
        state: MirrorState,
        logs: KnownLogs,
        signer: KeySigner,
        tiles_for: Callable[[str], TileBackend],
        *,
        reload: Callable[[], KnownLogs | None] | None = None,
        max_uploads: int = MAX_UPLOADS,
    ) -> None:
        self.state = state
        self.signer = signer
        self.tiles_for = tiles_for
        self.records: dict[str, MirrorRecord] = state.records()
        self._copies: dict[str, MirroredTiles] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._checkpoint_lock: asyncio.Lock | None = None
        # add-entries requests in progress, per origin, and a condition notified
        # whenever one of them authenticates or stores entries, or ends.
        self._active: dict[str, set[_Upload]] = {}
        self._progress: dict[str, asyncio.Condition] = {}
        self._executor = ThreadPoolExecutor(4, thread_name_prefix="overt-mirror")
        self._uploads = 0
        self._max_uploads = max_uploads
        self._reload = reload
        self._checked = time.monotonic()
        self._set_logs(logs)

    def _set_logs(self, logs: KnownLogs) -> None:
        for origin in logs:
            if origin not in self.records:
                self.state.add_log(origin)
                record = self.state.get(origin)
                if record is not None:
                    self.records[origin] = record
        self.logs = logs
        self._by_hash = {origin_hash(o): o for o in self.records}

    def _current_logs(self) -> KnownLogs:
        if self._reload is not None and time.monotonic() - self._checked >= 1.0:
            self._checked = time.monotonic()
            try:
                fresh = self._reload()
            except OvertError as err:
                log.error("cannot reload the mirrored logs: %s", err)
                fresh = None
            if fresh is not None:
                self._set_logs(fresh)
                log.warning("mirrored logs reloaded: %s", ", ".join(sorted(fresh)) or "none")
        return self.logs

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _lock(self, origin: str) -> asyncio.Lock:
        lock = self._locks.get(origin)
        if lock is None:
            lock = self._locks[origin] = asyncio.Lock()
        return lock

    def _condition(self, origin: str) -> asyncio.Condition:
        cond = self._progress.get(origin)
        if cond is None:
            cond = self._progress[origin] = asyncio.Condition()
        return cond

    async def _notify(self, origin: str) -> None:
        cond = self._condition(origin)
        async with cond:
            cond.notify_all()

    def _accepted(self, origin: str) -> int:
        """The next entry, counting entries that requests in progress have authenticated
        (contiguously from what is stored) and are storing."""
        n = self.records[origin].next_entry
        uploads = self._active.get(origin, ())
        moved = True
        while moved:
            moved = False
            for u in uploads:
                if u.start <= n < u.verified:
                    n, moved = u.verified, True
        return n

    def _may_reach(self, origin: str, index: int, me: _Upload | None = None) -> bool:
        """Whether another request in progress may yet authenticate entries up to ``index``."""
        return any(
            u.start <= index and self.records[origin].next_entry < u.end and u is not me
            for u in self._active.get(origin, ())
        )

    async def _wait(
        self, origin: str, ready: Callable[[], bool], me: _Upload | None, index: int
    ) -> None:
        """Wait (bounded) until ``ready()``, while another request may still bring it about."""
        cond = self._condition(origin)
        async with cond:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    cond.wait_for(lambda: ready() or not self._may_reach(origin, index, me)),
                    _WAIT,
                )

    async def _copy(self, origin: str) -> MirroredTiles:
        """The stored copy of ``origin``, opened at its recorded size. Caller holds its lock."""
        copy = self._copies.get(origin)
        if copy is None:
            size = self.records[origin].next_entry
            copy = await self._run(MirroredTiles, self.tiles_for(origin), size)
            self._copies[origin] = copy
        return copy

    # -- ASGI ------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "http":
            await answer(scope, receive, send, self._route, "mirror")

    async def _route(
        self, scope: Scope, receive: Receive, send: Send, path: str, method: str
    ) -> None:
        if path in ("/add-checkpoint", "/add-entries", "/sign-subtree"):
            if method != "POST":
                await error(send, 405, f"use POST {path}", [(b"allow", b"POST")])
                return
            if path == "/add-checkpoint":
                await self._add_checkpoint(scope, receive, send)
            elif path == "/add-entries":
                await self._add_entries(scope, receive, send)
            else:
                await self._sign_subtree(scope, receive, send)
            return
        if method not in ("GET", "HEAD"):
            await error(send, 405, "read endpoints take GET", [(b"allow", b"GET, HEAD")])
            return
        if path == "/logs":
            self._current_logs()
            body = "".join(f"{origin_hash(o)} {o}\n" for o in sorted(self.records)).encode()
            await reply(send, 200, body)
            return
        head, _, rest = path[1:].partition("/")
        self._current_logs()
        origin = self._by_hash.get(head)
        if origin is None:
            await error(send, 404, f"no mirrored log at /{head}")
            return
        await self._read(scope, origin, rest, send)

    # -- monitoring API --------------------------------------------------------

    async def _read(self, scope: Scope, origin: str, rest: str, send: Send) -> None:
        record = self.records[origin]
        if rest == "checkpoint":
            if record.mirror is None:
                await error(send, 404, f"no mirror checkpoint for {origin!r} yet")
                return
            await reply(send, 200, record.mirror.note, headers=[(b"cache-control", _NO_CACHE)])
            return
        if rest == "min-index":
            await reply(
                send, 200, b"%d\n" % record.min_index, headers=[(b"cache-control", _NO_CACHE)]
            )
            return
        try:
            where = tiles.parse_tile_path(rest)
        except TilePathError as err:
            await error(send, 404 if not rest.startswith("tile/") else 400, str(err))
            return
        size = record.mirror_size
        level = 0 if where.level is None else where.level
        if tiles.tile_width(level, where.index, size) < where.width:
            await error(send, 404, f"{rest} is beyond the mirror checkpoint (size {size})")
            return
        if where.level is None and where.index * tiles.TILE_WIDTH + where.width <= record.min_index:
            await error(send, 404, f"{rest} is below the minimum index {record.min_index} (pruned)")
            return
        backend = self.tiles_for(origin)
        try:
            data = await self._run(backend.read, where.path)
        except NotFoundError as err:
            await error(send, 404, str(err))
            return
        await reply(send, 200, data, _OCTETS, [(b"cache-control", _IMMUTABLE)])

    # -- add-checkpoint --------------------------------------------------------

    async def _add_checkpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(scope, receive, MAX_REQUEST_SIZE)
        except BodyTooLargeError:
            await error(send, 413, f"request body larger than {MAX_REQUEST_SIZE} bytes", [CLOSE])
            return
        if body is None:
            return
        if self._checkpoint_lock is None:
            self._checkpoint_lock = asyncio.Lock()
        try:
            try:
                request = parse_add_checkpoint(body)
            except FormatError as err:
                raise WitnessRequestError(str(err)) from err
            submission = verify_submission(request, self._current_logs())
            async with self._checkpoint_lock:
                before = self.records[submission.origin]
                after = advance_pending(before, submission)
                await self._run(self.state.set_pending, before, after)
                current = self.records[submission.origin]
                self.records[submission.origin] = replace(current, pending=after.pending)
        except WitnessConflictError as err:
            await reply(send, 409, b"%d\n" % err.size, _SIZE)
            return
        except WitnessError as err:
            if err.status == 422:
                log.warning("refused an inconsistent checkpoint: %s", err)
            await error(send, err.status, err.reason)
            return
        await reply(send, 200, b"")

    # -- sign-subtree ----------------------------------------------------------

    async def _sign_subtree(self, scope: Scope, receive: Receive, send: Send) -> None:
        # As a witness's: the reference checkpoint must carry this mirror's own
        # cosignature, made only once it held every entry up to it; so a subtree of
        # it is held too.
        await answer_sign_subtree(scope, receive, send, self.signer, self._current_logs())

    # -- add-entries -----------------------------------------------------------

    async def _add_entries(self, scope: Scope, receive: Receive, send: Send) -> None:
        encoding = (_header(scope, b"content-encoding") or b"identity").strip().lower()
        if encoding not in (b"identity", b"gzip"):
            await error(
                send,
                415,
                "Content-Encoding must be gzip or identity",
                [(b"accept-encoding", b"gzip")],
            )
            return
        if self._uploads >= self._max_uploads:
            # Before a byte of the body is read: the unauthenticated bytes buffered are
            # bounded by the requests read at once (a push client retries after a 503).
            headers = [(b"retry-after", b"1"), (b"accept-encoding", b"gzip"), CLOSE]
            await error(send, 503, "too many add-entries requests in progress", headers)
            return
        self._uploads += 1
        try:
            await self._add_entries_body(_Body(receive, encoding == b"gzip"), send)
        finally:
            self._uploads -= 1

    async def _add_entries_body(self, body: _Body, send: Send) -> None:
        try:
            await self._upload(body, send)
        except MirrorConflictError as err:
            if body.disconnected:
                return
            headers = [(b"accept-encoding", b"gzip")]
            if not body.ended:  # answered before the body was read: the spec's early reply
                headers.append(CLOSE)
            await reply(send, 409, format_mirror_info(err.info), _INFO, headers)
        except MirrorError as err:
            if body.disconnected:
                return
            if isinstance(err, MirrorVerificationError) and err.index is not None:
                log.warning("refused entries that do not match the log: %s", err)
            # The rest of the body is not read: the connection cannot be reused.
            headers = [(b"accept-encoding", b"gzip")]
            if not body.ended:
                headers.append(CLOSE)
            await error(send, err.status, err.reason, headers)

    async def _upload(self, body: _Body, send: Send) -> None:
        try:
            while (parsed := parse_upload_header(body.buf)) is None:
                await body.more()
        except _BodyEnded:
            raise MirrorRequestError("the body ended inside the add-entries header") from None
        except FormatError as err:
            raise MirrorRequestError(str(err)) from err
        header, body.pos = parsed
        if header.origin not in self._current_logs():
            check_upload(None, header)
        origin, start = header.origin, header.upload_start
        if start > self._accepted(origin):
            # A client may send its next request while the previous one is still being
            # authenticated (pipelining): wait for it rather than answer 409 at once,
            # giving the previous one a moment to arrive if it has not been read yet.
            def ready() -> bool:
                return self._accepted(origin) >= start

            if not self._may_reach(origin, start):
                cond = self._condition(origin)
                async with cond:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            cond.wait_for(lambda: ready() or self._may_reach(origin, start)),
                            _GRACE,
                        )
            await self._wait(origin, ready, None, start)
        record = replace(self.records[origin], next_entry=self._accepted(origin))
        target = check_upload(record, header)
        stored = await self._receive_packages(header, target, body)
        if body.disconnected:
            return
        record = self.records[origin]
        if record.next_entry < header.upload_end:
            if stored:
                info = mirror_info(record, header.upload_end)
                await reply(
                    send, 202, format_mirror_info(info), _INFO, [(b"accept-encoding", b"gzip")]
                )
                return
            raise MirrorRequestError("the body ended before a complete entry package")
        lines = await self._finish(header, target)
        await reply(send, 200, lines, TEXT, [(b"accept-encoding", b"gzip")])

    async def _receive_packages(
        self, header: UploadHeader, target: PendingCheckpoint, body: _Body
    ) -> int:
        """Reads, authenticates and stores packages; returns how many were stored.

        Raises:
            MirrorVerificationError: a package does not verify (those before it are stored).
        """
        origin, start, end = header.origin, header.upload_start, header.upload_end
        count = package_count(start, end)
        first: int | None = None
        entries: list[bytes] = []
        hashes: list[bytes] = []
        groups = 0
        storing: asyncio.Task[None] | None = None
        stored = 0
        me = _Upload(start, end)
        self._active.setdefault(origin, set()).add(me)
        await self._notify(origin)
        try:
            for i in range(count):
                rng = package_range(start, end, i)
                held: list[bytes] = []
                if rng.start > rng.subtree_start:  # only the first package
                    await self._stored(origin, rng.start, me)
                    async with self._lock(origin):
                        copy = await self._copy(origin)
                        held = await self._run(copy.held_hashes, rng.subtree_start, rng.start)
                try:
                    while (got := parse_package(body.buf, body.pos, rng.count)) is None:
                        await body.more()
                except FormatError:
                    break
                except _BodyEnded:
                    break
                package, body.pos = got
                new = verify_package(rng, package, held, target)
                me.verified = rng.end
                await self._notify(origin)
                if first is None:
                    first = rng.start
                entries.extend(package.entries)
                hashes.extend(new)
                groups += 1
                if groups == COMMIT_PACKAGES:
                    if storing is not None:
                        await storing
                    storing = asyncio.create_task(self._store(origin, first, entries, hashes, me))
                    stored += groups
                    first, entries, hashes, groups = None, [], [], 0
        finally:
            try:
                if storing is not None:
                    await storing
                if first is not None:
                    await self._store(origin, first, entries, hashes, me)
                    stored += groups
            finally:
                self._active[origin].discard(me)
                await self._notify(origin)
        return stored

    async def _stored(self, origin: str, index: int, me: _Upload) -> None:
        """Wait until entries up to ``index`` are stored, if a request in progress is storing
        them. Raises MirrorConflictError: they are not, and no request will."""
        if self.records[origin].next_entry >= index:
            return
        await self._wait(origin, lambda: self.records[origin].next_entry >= index, me, index)
        record = self.records[origin]
        if record.next_entry < index:
            raise MirrorConflictError(
                mirror_info(record), f"entries before {index} are no longer on their way"
            )

    async def _store(
        self, origin: str, first: int, entries: list[bytes], hashes: list[bytes], me: _Upload
    ) -> None:
        """Durably store authenticated entries (after those before them), then record the
        stored size.

        Raises:
            MirrorConflictError: the entries before ``first`` were not stored (the request
                that was storing them failed): nothing is stored.
        """
        await self._stored(origin, first, me)
        async with self._lock(origin):
            copy = await self._copy(origin)
            size = await self._run(copy.append, first, entries, hashes)
            if size > self.records[origin].next_entry:
                await self._run(self.state.set_next_entry, origin, size)
                self.records[origin] = replace(self.records[origin], next_entry=size)
        await self._notify(origin)

    async def _finish(self, header: UploadHeader, target: PendingCheckpoint) -> bytes:
        """Cosign ``target`` once the stored tree at its size has its root; returns the lines.

        Raises:
            MirrorConflictError: the mirror checkpoint moved past ``upload_end`` meanwhile.
        """
        origin, size = header.origin, header.upload_end
        async with self._lock(origin):
            copy = await self._copy(origin)
            root = await self._run(copy.root, size)
            if root != target.root_hash:
                # Unreachable when every package was verified: never sign what is not held.
                raise OvertError(
                    f"{origin}: stored tree at size {size} does not match its checkpoint"
                )
            await self._run(copy.complete, size)  # every tile a client of this size asks for
            record = self.records[origin]
            if size < record.mirror_size:
                raise MirrorConflictError(
                    mirror_info(record), f"the mirror checkpoint is already at {record.mirror_size}"
                )
            mirror, lines = cosign(target, self.signer)
            if await self._run(self.state.set_mirror, mirror):
                self.records[origin] = replace(self.records[origin], mirror=mirror)
                try:
                    await self._run(copy.publish, mirror.note)
                except OvertError as err:  # served from the state regardless
                    log.error("cannot write the mirror checkpoint to the tiles: %s", err)
            return lines


def serve(
    app: MirrorApp,
    host: str,
    port: int,
    ready: Callable[[], None] | None = None,
    limits: ServerLimits | None = None,
) -> None:
    """Runs ``app`` until interrupted (uvicorn) under ``limits``."""
    try:
        run(app, host, port, ready, limits)
    finally:
        app.close()
