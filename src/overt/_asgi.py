"""Bare-ASGI plumbing shared by overt's HTTP servers (the log, the witness).

The hot servers speak ASGI directly (docs/adr/0003); this module holds what
they share: replies, plain-text errors, reading a request body under a size
cap, and running an app under uvicorn on a listen address.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from overt.errors import FormatError

__all__ = [
    "TEXT",
    "BodyTooLargeError",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "error",
    "read_body",
    "reply",
    "run",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TEXT = b"text/plain; charset=utf-8"


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


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None if the client went away or it exceeds ``limit`` bytes.

    Stops reading as soon as the limit is passed, so an oversized upload costs
    at most ``limit`` bytes of memory; the caller answers 413 or 400.
    """
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


def run(app: Any, host: str, port: int, ready: Callable[[], None] | None = None) -> None:
    """Serve ``app`` with uvicorn (uvloop/httptools when installed) until interrupted.

    ``ready`` is called once the socket is listening.
    """
    import uvicorn

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    if ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets)
            ready()

        server.startup = startup  # type: ignore[method-assign]
    server.run()
