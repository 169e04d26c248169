"""Bare-ASGI plumbing shared by overt's HTTP servers (the log, the witness).

The hot servers speak ASGI directly (docs/adr/0003); this module holds what
they share: replies, plain-text errors, reading a request body under a size
cap, and running an app under uvicorn with limits that hold on the internet.

uvicorn's defaults do not: a connection that never finishes its headers stays
open forever, idle connections are never capped, and httptools accumulates a
header of any size. :class:`ServerLimits` names the limits, and a subclass of
uvicorn's httptools protocol enforces them per connection (uvicorn has no
option for a header timeout, a header size cap with httptools, or a cap on
open sockets; ``limit_concurrency`` answers 503 but keeps the socket open):

- ``request_timeout``: a request's line, headers and body must all arrive
  within this many seconds of the connection opening or of the request's
  first byte (slowloris); otherwise 408 (if the headers are incomplete) and
  the connection is closed. The app's own time to answer is not counted.
- ``max_header_bytes``: the request line and headers; beyond it, 431 and close.
- ``max_connections`` / ``max_connections_per_ip``: open sockets (per IPv4
  address or IPv6 /64); a connection beyond either is answered 503 and closed
  at once, before it is read.
- ``keep_alive``: an idle keep-alive connection is closed after this many seconds.
- more than :data:`MAX_PIPELINED` requests sent ahead of their replies close
  the connection (uvicorn would queue every one of them).

A peer that stops reading a response (its receive window stays shut) is
disconnected once the response has made no progress for ``request_timeout``:
otherwise the socket and the buffered response are held for ever.

Request bodies are capped per route by :func:`read_body`: a Content-Length
above the cap is refused with 413 before a byte of the body is read.
"""

from __future__ import annotations

import ipaddress
import logging
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from overt.errors import ConfigError, FormatError, OvertError

if TYPE_CHECKING:
    import argparse
    import asyncio

    import uvicorn

__all__ = [
    "CLOSE",
    "MAX_PIPELINED",
    "TEXT",
    "BodyTooLargeError",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "ServerLimits",
    "add_limit_arguments",
    "answer",
    "error",
    "limits_from_args",
    "make_server",
    "peer_key",
    "read_body",
    "reply",
    "run",
]

log = logging.getLogger("overt.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TEXT = b"text/plain; charset=utf-8"
#: Requests a peer may pipeline (send before reading the replies); more closes the connection.
MAX_PIPELINED = 16
#: A response header that makes uvicorn close the connection after the reply.
CLOSE = (b"connection", b"close")


@dataclass(frozen=True)
class ServerLimits:
    """What one peer may hold of a server; the defaults are meant for the open internet.

    See the module docstring for what each limit does, and docs/servers.md.
    """

    request_timeout: float = 10.0
    keep_alive: float = 5.0
    max_header_bytes: int = 16 * 1024
    max_connections: int = 1024
    max_connections_per_ip: int = 128

    def __post_init__(self) -> None:
        for name in ("request_timeout", "keep_alive"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                raise ConfigError(f"{name} must be in (0, 3600] seconds, got {value}")
        for name in ("max_header_bytes", "max_connections", "max_connections_per_ip"):
            value = getattr(self, name)
            if not 1 <= value <= 1 << 24:
                raise ConfigError(f"{name} must be a positive count, got {value}")


async def reply(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = TEXT,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a whole response with Content-Type and Content-Length."""
    all_headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A plain-text error reply: one line saying what was wrong."""
    await reply(send, status, message.encode("utf-8", "replace") + b"\n", headers=headers)


Route = Callable[[Scope, Receive, Send, str, str], Awaitable[None]]


async def answer(scope: Scope, receive: Receive, send: Send, route: Route, what: str) -> None:
    """Runs ``route(scope, receive, send, path, method)`` for one HTTP request.

    Routes answer every refusal of input themselves (a 4xx where it is found); what
    escapes them is the server's own failure: an :class:`~overt.errors.OvertError`
    (storage) is logged and answered 503 ``"<what> unavailable: <reason>"``, anything
    else is a bug, logged with its traceback and answered 500 with the connection
    closed. Neither is answered once the route has started its reply.
    """
    path: str = scope["path"]
    method: str = scope["method"]
    started = False

    async def tracked(message: Message) -> None:
        nonlocal started
        started = True
        await send(message)

    try:
        await route(scope, receive, tracked, path, method)
    except OvertError as err:
        log.error("request %s %s failed: %s", method, path, err)
        if not started:
            await error(send, 503, f"{what} unavailable: {err}")
    except Exception:
        log.exception("bug: request %s %r failed", method, path)
        if not started:
            await error(send, 500, "internal error (logged)", [CLOSE])


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body, or None if the client went away.

    Raises:
        BodyTooLargeError: the declared Content-Length is above ``limit`` (raised
            before any of the body is read), or the body passed ``limit`` bytes
            (reading stops there, so an oversized upload costs at most ``limit``
            bytes of memory). The caller answers 413 with :data:`CLOSE`.
    """
    for name, value in scope["headers"]:
        # A malformed Content-Length never gets here: httptools answers it with 400.
        if name == b"content-length" and value.isdigit():
            declared = int(value) if len(value) <= 18 else 1 << 62
            if declared > limit:
                raise BodyTooLargeError(declared)
    chunks: list[bytes] = []
    length = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        length += len(chunk)
        if length > limit:
            raise BodyTooLargeError(length)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class BodyTooLargeError(FormatError):
    """The request body passed the limit given to :func:`read_body`."""

    def __init__(self, seen: int) -> None:
        self.seen = seen
        super().__init__("request body", f"larger than allowed ({seen}+ bytes)")


def _raw_reply(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(message) + message
    )


_TIMED_OUT = _raw_reply(b"408 Request Timeout", b"request not received in time\n")
_HEAD_TOO_LARGE = _raw_reply(
    b"431 Request Header Fields Too Large", b"request line and headers too large\n"
)
_BUSY = _raw_reply(b"503 Service Unavailable", b"too many connections\n")


class _Refusals:
    """Logs refusals at most once every 10 s per kind: a flood must not flood the log too."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._count: Counter[str] = Counter()

    def note(self, kind: str, peer: str) -> None:
        self._count[kind] += 1
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) >= 10.0:
            self._last[kind] = now
            log.warning("refused: %s (last from %s; %d so far)", kind, peer, self._count[kind])


def peer_key(peername: object) -> str:
    """Who a connection counts against: its IPv4 address, or its IPv6 /64.

    One IPv6 host is routinely given a whole /64, so counting single IPv6
    addresses would let one peer open as many connections as it likes.
    """
    if not isinstance(peername, tuple) or not peername:
        return "?"
    host = str(peername[0])
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class _OncePerInterval(logging.Filter):
    """Lets each distinct message through at most once every 10 s (uvicorn warns once per
    bad request: a flood of them must not flood the log, nor fill its disk)."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        now = time.monotonic()
        key = str(record.msg)
        if now - self._last.get(key, -1e9) < 10.0:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


def _protocol_class(limits: ServerLimits) -> type[asyncio.Protocol]:
    """An httptools protocol class for one server, enforcing ``limits`` (module docstring)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError as err:  # uvicorn[standard] brings httptools
        raise ConfigError(f"overt's servers need httptools: {err}") from err

    per_ip: Counter[str] = Counter()
    refusals = _Refusals()
    # One watchdog per server sweeps the connections for overdue requests, a few
    # times per timeout: cheaper on the hot path than a timer per request.
    interval = min(1.0, limits.request_timeout / 4)
    watchdog: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}

    def sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        now = loop.time()
        for connection in list(connections):
            if isinstance(connection, GuardedProtocol):
                connection._watch(now)
        watchdog[loop] = loop.call_later(interval, sweep, loop, connections)

    class GuardedProtocol(HttpToolsProtocol):
        # Per connection: ``_peer`` is None until the connection was admitted;
        # ``_in_head`` while a request's line and headers are arriving (counted
        # in ``_head_bytes``); ``_deadline`` (loop time) is set from the
        # connection's start or a request's first byte until the request has
        # fully arrived.
        _peer: str | None = None
        _in_head = True
        _head_bytes = 0
        _deadline: float | None = None
        # A reply the peer does not read stays in the transport's buffer (and
        # holds the socket, even after close()): ``_pending`` is the buffered
        # size at ``_stalled_since``; no progress for request_timeout aborts.
        _pending = 0
        _stalled_since = 0.0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer = peer_key(transport.get_extra_info("peername"))
            if (
                len(self.connections) >= limits.max_connections
                or per_ip[peer] >= limits.max_connections_per_ip
            ):
                # Refused before it is read: the socket is closed at once, so
                # idle or slow peers can never hold more than the caps.
                refusals.note("too many connections", peer)
                transport.write(_BUSY)  # type: ignore[attr-defined]
                transport.close()
                return
            self._peer = peer
            per_ip[peer] += 1
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm()
            if self.loop not in watchdog:
                sweep(self.loop, self.connections)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._peer is None:
                return
            per_ip[self._peer] -= 1
            if per_ip[self._peer] <= 0:
                del per_ip[self._peer]
            self._peer = None
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._peer is None or self.transport.is_closing():
                return
            # Feed the head at most up to the cap: httptools keeps a header
            # being received in memory whole, so nothing past the cap may reach it.
            while self._in_head and data:
                room = limits.max_header_bytes - self._head_bytes
                if room <= 0:
                    self._refuse(_HEAD_TOO_LARGE, "request headers too large")
                    return
                piece, data = (data, b"") if len(data) <= room else (data[:room], data[room:])
                self._head_bytes += len(piece)
                if self._deadline is None:
                    self._arm()
                super().data_received(piece)
                if self.transport.is_closing():
                    return
            if data:
                super().data_received(data)

        def on_message_begin(self) -> None:
            if self._deadline is None:
                self._arm()
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_head = False
            if self.transport.is_closing():
                return  # the rest of a chunk already refused
            if len(self.pipeline) >= MAX_PIPELINED:
                # uvicorn queues every pipelined request of a chunk it has read
                # (256 KiB of tiny requests cost 16 MB): refuse the connection.
                refusals.note("too many pipelined requests", self._peer or "?")
                self.transport.abort()
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self.transport.is_closing():
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._deadline = None
            self._in_head = True
            self._head_bytes = 0
            if not self.transport.is_closing():
                super().on_message_complete()

        def _arm(self) -> None:
            self._deadline = self.loop.time() + limits.request_timeout

        def _disarm(self) -> None:
            self._deadline = None

        def _watch(self, now: float) -> None:
            if self._deadline is not None and self._deadline <= now:
                self._timed_out()
            pending = self.transport.get_write_buffer_size()
            if pending == 0 or pending != self._pending:
                self._pending, self._stalled_since = pending, now
            elif now - self._stalled_since >= limits.request_timeout:
                refusals.note("response not read in time", self._peer or "?")
                self.transport.abort()

        def _timed_out(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            if self._in_head and (self.cycle is None or self.cycle.response_complete):
                self._refuse(_TIMED_OUT, "request not received in time")
            else:
                # The app is reading a body that does not come: closing the
                # transport makes its receive() return http.disconnect.
                refusals.note("request body not received in time", self._peer or "?")
                self.transport.close()

        def _refuse(self, response: bytes, kind: str) -> None:
            refusals.note(kind, self._peer or "?")
            self._disarm()
            self.transport.write(response)
            self.transport.close()

    return GuardedProtocol


def _fd_headroom(limits: ServerLimits) -> ServerLimits:
    """Raise the open-file limit to fit ``max_connections`` (plus files and the database).

    If the hard limit is too low, ``max_connections`` is lowered to fit, with a warning:
    the cap must hold before the process runs out of descriptors, not after.
    """
    spare = 128
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = limits.max_connections + spare
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
        if soft < want:
            fit = max(1, soft - spare)
            log.warning(
                "open-file limit %d fits %d connections, not %d; capping at %d",
                soft,
                fit,
                limits.max_connections,
                fit,
            )
            return ServerLimits(
                limits.request_timeout,
                limits.keep_alive,
                limits.max_header_bytes,
                fit,
                min(fit, limits.max_connections_per_ip),
            )
    return limits


def make_server(
    app: Any,
    host: str,
    port: int,
    limits: ServerLimits | None = None,
    ready: Callable[[], None] | None = None,
) -> uvicorn.Server:
    """A uvicorn server for ``app`` enforcing ``limits`` (``server.run()`` serves it).

    ``ready`` is called once the socket is listening.
    """
    import uvicorn

    limits = _fd_headroom(limits or ServerLimits())
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_protocol_class(limits),
        ws="none",
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_keep_alive=limits.keep_alive,  # type: ignore[arg-type]
        # A peer that never finishes must not hold up a shutdown either.
        timeout_graceful_shutdown=30,
    )
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _OncePerInterval) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_OncePerInterval())
    server = uvicorn.Server(config)
    if ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets)
            ready()

        server.startup = startup  # type: ignore[method-assign]
    return server


def run(
    app: Any,
    host: str,
    port: int,
    ready: Callable[[], None] | None = None,
    limits: ServerLimits | None = None,
) -> None:
    """Serve ``app`` with uvicorn (uvloop/httptools) under ``limits`` until interrupted."""
    make_server(app, host, port, limits, ready).run()


def _seconds(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"want seconds in (0, 3600], got {text!r}")
    return value


def _count(text: str) -> int:
    import argparse

    if not text.isdigit() or not 1 <= int(text) <= 1 << 24:
        raise argparse.ArgumentTypeError(f"want a positive whole number, got {text!r}")
    return int(text)


_FLAGS: dict[str, tuple[str, Callable[[str], float], str, str]] = {
    "request_timeout": (
        "--request-timeout",
        _seconds,
        "SECONDS",
        "time for a whole request (line, headers, body) to arrive",
    ),
    "keep_alive": ("--keep-alive", _seconds, "SECONDS", "idle keep-alive connections close after"),
    "max_header_bytes": ("--max-header-bytes", _count, "BYTES", "request line plus headers"),
    "max_connections": ("--max-connections", _count, "N", "open connections at most"),
    "max_connections_per_ip": (
        "--max-connections-per-ip",
        _count,
        "N",
        "open connections from one address at most",
    ),
}


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--request-timeout``, ``--max-connections``, ... flags of :class:`ServerLimits`."""
    defaults = ServerLimits()
    group = parser.add_argument_group("limits (see docs/servers.md)")
    for field in fields(ServerLimits):
        flag, kind, metavar, help_text = _FLAGS[field.name]
        default = getattr(defaults, field.name)
        group.add_argument(
            flag,
            dest=field.name,
            type=kind,
            default=default,
            metavar=metavar,
            help=help_text,  # overt's help formatter shows the default
        )


def limits_from_args(args: argparse.Namespace) -> ServerLimits:
    """The :class:`ServerLimits` given by :func:`add_limit_arguments`' flags.

    Raises:
        ConfigError: a limit is out of range.
    """
    return ServerLimits(**{f.name: getattr(args, f.name) for f in fields(ServerLimits)})
