"""The witness's HTTP face: c2sp.org/tlog-witness ``add-checkpoint`` and read endpoints.

Routes (the submission and monitoring prefixes are both the server root)::

    POST /add-checkpoint              body: old size, proof lines, empty line, checkpoint
                                      200 text/plain: the cosignature line(s)
                                      409 text/x.tlog.size: "<latest cosigned size>\\n"
                                      400 / 403 / 404 / 422: a plain-text reason
    POST /sign-subtree                body: subtree range, hash, proof lines, empty line,
                                      a checkpoint this witness cosigned
                                      200 text/plain: the subtree cosignature line
                                      400 / 403 / 404 / 422 (overt.witness.subtree);
                                      404 if the witness's key cannot sign subtrees
    GET  /logs                        origins this witness has cosigned, one per line
    GET  /checkpoint/<origin>         the latest cosigned checkpoint for an origin
                                      (percent-encoded; the log's signature(s) and this
                                      witness's cosignature), 404 if none
    GET  /<sha256(origin) hex>/checkpoint   the same, at the spec's monitoring path

Status codes for ``add-checkpoint`` are the spec's (see :mod:`overt.witness.core`);
405 for a wrong method, 404 for an unknown path, 413 for a body larger than
any valid request (refused on its Content-Length, before the body is read), 503
if the state cannot be written (nothing was cosigned). Input never causes a
500: a 500 is a bug, and is logged with its traceback. Connection-level limits
are :class:`overt._asgi.ServerLimits` (docs/servers.md).

Concurrency and durability: each request is parsed and its log signature
verified on arrival; then it joins a queue. A committer takes everything queued
(up to ``max_batch``) and decides it in one ``BEGIN IMMEDIATE`` transaction of
:meth:`overt.witness.state.WitnessState.apply` in its own thread: one fsync for
the whole batch, and requests for one log are decided one after another, each
against the record the previous one left. Replies are sent only after the
commit, so no cosignature is ever released that a crash could forget. With a
key whose signatures are made ahead in worker processes (ML-DSA-44), a batch
waits up to :data:`GATHER` for the signatures still on their way, so that one
transaction takes them all.

The app is a bare ASGI callable, like :class:`overt.log.server.LogApp`, because
``add-checkpoint`` is a hot path (thousands of requests a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

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
from overt.errors import ConfigError, FormatError, OvertError
from overt.formats.keytypes import KeySigner
from overt.formats.witness import (
    CONTENT_TYPE_SIZE,
    MAX_REQUEST_SIZE,
    MAX_SUBTREE_REQUEST_SIZE,
    parse_add_checkpoint,
    parse_sign_subtree,
)
from overt.witness.core import (
    Cosigned,
    CosignedCheckpoint,
    KnownLogs,
    Submission,
    decide,
    verify_submission,
)
from overt.witness.errors import (
    WitnessConflictError,
    WitnessConsistencyError,
    WitnessError,
    WitnessRequestError,
)
from overt.witness.signing import SigningPool
from overt.witness.state import Decide, WitnessStore
from overt.witness.subtree import can_sign_subtrees, sign_subtree, unsupported

__all__ = ["Committer", "ServerLimits", "WitnessApp", "answer_sign_subtree", "serve"]

log = logging.getLogger("overt.witness")


_TEXT = b"text/plain; charset=utf-8"
_SIZE = CONTENT_TYPE_SIZE.encode()
MAX_BATCH = 512
GATHER = 0.003
"""Seconds a batch waits for submissions whose signatures are still being made ahead."""


class _SignedAhead:
    """``signer``, with the signature it already made over ``text`` (and only that text)."""

    def __init__(self, signer: KeySigner, text: bytes, signature: bytes) -> None:
        self.name, self.key_id = signer.name, signer.key_id
        self._signer, self._text, self._signature = signer, text, signature

    def sign(self, text: bytes) -> bytes:
        return self._signature if text == self._text else self._signer.sign(text)


class Committer:
    """Decides and stores queued submissions in batches, one transaction per batch.

    With a slow-signing key (ML-DSA-44, ~0.6 ms of CPU per signature, GIL held) each
    request's cosignature is made ahead, in worker processes (overt.witness.signing), once the
    submission has verified and before it joins the queue; ``decide`` still decides inside
    the transaction and only then uses that signature. A signature made for a submission
    that ``decide`` refuses is dropped, never sent or stored. Otherwise the one writer
    thread would sign every cosignature inside its transaction, one at a time.
    """

    def __init__(self, state: WitnessStore, signer: KeySigner, max_batch: int = MAX_BATCH) -> None:
        self.state = state
        self.signer = signer
        # id(submission) -> (text, signature), for submissions waiting in the queue.
        self._ahead: dict[int, tuple[bytes, bytes]] = {}
        self.decide: Decide = self._decide
        self.max_batch = max_batch
        self._queue: list[tuple[Submission, asyncio.Future[Cosigned]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # One writer thread: SQLite serializes writers anyway, and one thread keeps
        # one connection.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="overt-witness-state")
        self._signing: SigningPool | None = None
        if signer.key_type.algorithm.slow_signing:
            self._signing = SigningPool(signer)
        self._signing_now = 0  # submissions whose signature is being made ahead
        self.gather = GATHER
        self.batches = 0

    def _decide(self, stored: CosignedCheckpoint | None, submission: Submission) -> Cosigned:
        ahead = self._ahead.pop(id(submission), None)
        signer = self.signer if ahead is None else _SignedAhead(self.signer, *ahead)
        return decide(stored, submission, signer)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def start_signing(self) -> None:
        """Starts the signing workers, if this key signs ahead (a server's startup)."""
        if self._signing is not None:
            try:
                await self._signing.start()
            except BrokenProcessPool as err:
                log.error("signing workers did not start, signing in the transaction: %s", err)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for _, future in self._queue:
            if not future.done():
                future.cancel()
        self._queue.clear()
        self._executor.shutdown(wait=True)
        if self._signing is not None:
            self._signing.close()

    async def submit(self, submission: Submission) -> Cosigned:
        """Returns the durable outcome, or raises the refusal (WitnessError) or StateError."""
        self.start()
        loop = asyncio.get_running_loop()
        if self._signing is not None:
            text = submission.request.note.text
            self._signing_now += 1
            try:
                signature = await self._signing.sign(text)
            except (FormatError, ConfigError):
                pass  # nothing this key can cosign, or a broken clock: decide says so
            except BrokenProcessPool as err:
                log.error("signing ahead failed, signing in the transaction: %s", err)
            else:
                self._ahead[id(submission)] = (text, signature)
            finally:
                self._signing_now -= 1
        future: asyncio.Future[Cosigned] = loop.create_future()
        self._queue.append((submission, future))
        self._wakeup.set()
        try:
            return await future
        finally:
            self._ahead.pop(id(submission), None)  # refused, or failed: never used

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if self._signing_now and len(self._queue) < self.max_batch and self.gather:
                    # Signatures made ahead land one at a time: while more are on their
                    # way, a moment's wait lets them into this transaction (one commit,
                    # one fsync for all; measured: ~30 us less CPU per request).
                    await asyncio.sleep(self.gather)
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                submissions = [s for s, _ in batch]
                try:
                    results = await loop.run_in_executor(
                        self._executor, self.state.apply, submissions, self.decide
                    )
                except Exception as err:  # every waiter must hear about it
                    log.error("storing %d decisions failed: %s", len(batch), err)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(err)
                    continue
                self.batches += 1
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)


class WitnessApp:
    """ASGI application of one witness: its key, the logs it knows, its state."""

    def __init__(
        self,
        state: WitnessStore,
        logs: KnownLogs,
        signer: KeySigner,
        max_batch: int = MAX_BATCH,
        *,
        reload: Callable[[], KnownLogs | None] | None = None,
    ) -> None:
        self.state = state
        self.signer = signer
        self.max_batch = max_batch
        self.committer: Committer | None = None
        # ``reload`` returns the known logs when they changed (None: unchanged);
        # it is asked at most once a second (see overt.witness.config.LogsWatcher).
        self._reload = reload
        self._checked = time.monotonic()
        self._set_logs(logs)

    def _set_logs(self, logs: KnownLogs) -> None:
        self.logs = logs
        self._by_hash = {hashlib.sha256(o.encode()).hexdigest(): o for o in logs}

    def _current_logs(self) -> KnownLogs:
        if self._reload is not None and time.monotonic() - self._checked >= 1.0:
            self._checked = time.monotonic()
            try:
                fresh = self._reload()
            except OvertError as err:  # keep serving the logs we know
                log.error("cannot reload the known logs: %s", err)
                fresh = None
            if fresh is not None:
                self._set_logs(fresh)
                log.warning("known logs reloaded: %s", ", ".join(sorted(fresh)) or "none")
        return self.logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http":
            await answer(scope, receive, send, self._route, "witness")

    async def _route(
        self, scope: Scope, receive: Receive, send: Send, path: str, method: str
    ) -> None:
        if path == "/add-checkpoint":
            if method != "POST":
                await error(send, 405, "use POST /add-checkpoint", [(b"allow", b"POST")])
                return
            await self._add_checkpoint(scope, receive, send)
            return
        if path == "/sign-subtree":
            if method != "POST":
                await error(send, 405, "use POST /sign-subtree", [(b"allow", b"POST")])
                return
            await self._sign_subtree(scope, receive, send)
            return
        if method not in ("GET", "HEAD"):
            await error(send, 405, "read endpoints take GET", [(b"allow", b"GET, HEAD")])
            return
        if path == "/logs":
            origins = await asyncio.to_thread(self.state.origins)
            await reply(send, 200, "".join(o + "\n" for o in origins).encode())
        elif path.startswith("/checkpoint/"):
            await self._checkpoint(path[len("/checkpoint/") :], send)
        elif path.endswith("/checkpoint") and path.count("/") == 2:
            self._current_logs()
            origin = self._by_hash.get(path[1 : -len("/checkpoint")])
            await self._checkpoint(origin, send)
        else:
            await error(send, 404, f"no such endpoint: {path}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._committer().start()
                await self._committer().start_signing()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.committer is not None:
                    await self.committer.stop()
                    self.committer = None
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _committer(self) -> Committer:
        if self.committer is None:
            self.committer = Committer(self.state, self.signer, self.max_batch)
        return self.committer

    async def _add_checkpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(scope, receive, MAX_REQUEST_SIZE)
        except BodyTooLargeError:
            await error(send, 413, f"request body larger than {MAX_REQUEST_SIZE} bytes", [CLOSE])
            return
        if body is None:
            return
        try:
            try:
                request = parse_add_checkpoint(body)
            except FormatError as err:
                raise WitnessRequestError(str(err)) from err
            submission = verify_submission(request, self._current_logs())
            outcome = await self._committer().submit(submission)
        except WitnessConflictError as err:
            await reply(send, 409, b"%d\n" % err.size, _SIZE)
            return
        except WitnessError as err:
            if isinstance(err, WitnessConsistencyError):
                # Signed by the log yet inconsistent: possible evidence of misbehaviour.
                log.warning(
                    "refused an inconsistent checkpoint: %s\n%s",
                    err,
                    body.decode("utf-8", "replace"),
                )
            await error(send, err.status, err.reason)
            return
        await reply(send, 200, outcome.lines)

    async def _sign_subtree(self, scope: Scope, receive: Receive, send: Send) -> None:
        await answer_sign_subtree(scope, receive, send, self.signer, self._current_logs())

    async def _checkpoint(self, origin: str | None, send: Send) -> None:
        record = None if origin is None else await asyncio.to_thread(self.state.get, origin)
        if record is None:
            await error(send, 404, f"no cosigned checkpoint for {origin!r}")
            return
        await reply(send, 200, record.note, headers=[(b"cache-control", b"no-cache")])


async def answer_sign_subtree(
    scope: Scope, receive: Receive, send: Send, signer: KeySigner, logs: KnownLogs
) -> None:
    """Answers ``POST /sign-subtree`` for ``signer`` (a witness's, or a mirror's).

    Pure and stateless (overt.witness.subtree): no queue, no transaction. The
    reference checkpoint must carry ``signer``'s own cosignature.
    """
    try:
        body = await read_body(scope, receive, MAX_SUBTREE_REQUEST_SIZE)
    except BodyTooLargeError:
        limit = MAX_SUBTREE_REQUEST_SIZE
        await error(send, 413, f"request body larger than {limit} bytes", [CLOSE])
        return
    if body is None:
        return
    try:
        if not can_sign_subtrees(signer):
            raise unsupported(signer.name)
        try:
            request = parse_sign_subtree(body)
        except FormatError as err:
            raise WitnessRequestError(str(err)) from err
        lines = sign_subtree(request, logs, signer, [signer.verifier()])
    except WitnessError as err:
        await error(send, err.status, err.reason)
        return
    await reply(send, 200, lines)


def serve(
    app: WitnessApp,
    host: str,
    port: int,
    ready: Callable[[], None] | None = None,
    limits: ServerLimits | None = None,
) -> None:
    """Runs ``app`` until interrupted (uvicorn, with uvloop/httptools) under ``limits``."""
    run(app, host, port, ready, limits)
