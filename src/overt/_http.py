"""One capped, time-bounded HTTP exchange for every overt client.

A hostile server can stream a body forever, lie in its Content-Length, send a
gzip bomb, or trickle one byte at a time just inside the read timeout. httpx
reads a whole body into memory (``response.content``) and decodes
``Content-Encoding`` without a bound, so no client reads a body through it
directly. :func:`fetch` instead:

- asks for ``identity`` or ``gzip`` only, and decompresses itself with a bound
  on the output (``zlib`` ``max_length``), so the cap is on the decoded bytes;
- refuses a declared Content-Length above the cap before reading the body;
- stops reading at ``limit`` bytes (the largest reply the format allows, e.g.
  :data:`overt.formats.note.MAX_NOTE_SIZE` for a checkpoint) and raises;
- gives up once ``deadline`` seconds have passed in total, however slowly the
  bytes come;
- keeps at most :data:`ERROR_BODY_LIMIT` bytes of a non-2xx reply (a reason to
  show, truncated rather than refused).

Failures are raised as the caller's error type (``LogError``,
``WitnessUnavailableError``, ...), built from a one-line message.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

__all__ = ["ERROR_BODY_LIMIT", "Reply", "fetch"]

#: Bytes of a non-2xx reply kept (its plain-text reason); the rest is dropped unread.
ERROR_BODY_LIMIT = 4096


@dataclass(frozen=True)
class Reply:
    """A response read under a cap: status, headers, and the (decoded) body."""

    status: int
    headers: httpx.Headers
    content: bytes

    @property
    def reason(self) -> str:
        """The body as one line of text, for error messages."""
        return " ".join(self.content.decode("utf-8", "replace").split())[:500]


def fetch(
    client: httpx.Client,
    method: str,
    url: str,
    limit: int,
    error: Callable[[str], Exception],
    *,
    content: bytes | None = None,
    params: Mapping[str, str] | None = None,
    deadline: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """One request; the reply's body is read up to ``limit`` bytes within ``deadline`` seconds.

    ``deadline`` defaults to four times the client's read timeout (or 120 s);
    ``headers`` are sent with the request (e.g. a ``content-encoding``).

    Raises:
        Exception: ``error(message)`` if the request fails (network, timeout), the
            deadline passes, the body (decoded) is larger than ``limit``, or it is
            encoded in a way that was not asked for or is corrupt.
    """
    if deadline is None:
        read = client.timeout.read
        deadline = 4 * read if read is not None else 120.0
    end = time.monotonic() + deadline
    what = f"{method} {url}"
    try:
        with client.stream(
            method,
            url,
            content=content,
            params=params,
            headers={**(headers or {}), "accept-encoding": "gzip"},
        ) as response:
            status = response.status_code
            cap = limit if 200 <= status < 300 else ERROR_BODY_LIMIT
            body = _read(response, cap, truncate=not 200 <= status < 300, end=end)
            return Reply(status, response.headers, body)
    except _RefusedError as err:
        raise error(f"{what}: {err}") from None
    except httpx.HTTPError as err:
        raise error(f"{what}: {err!r}") from err


class _RefusedError(Exception):
    """Why a reply was not read to its end (becomes the caller's error)."""


def _read(response: httpx.Response, cap: int, *, truncate: bool, end: float) -> bytes:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise _RefusedError(f"reply in content-encoding {encoding[:40]!r}, which was not asked for")
    declared = response.headers.get("content-length", "")
    too_long = declared.isdigit() and (len(declared) > 18 or int(declared) > cap)
    if too_long and not truncate and encoding == "identity":
        raise _RefusedError(f"reply of {declared[:20]} bytes, more than the {cap} allowed")
    inflate = zlib.decompressobj(wbits=31) if encoding == "gzip" else None
    body = bytearray()
    raw = 0
    # The compressed size is bounded too: deflate never expands data by more than
    # a few bytes per 16 KiB block, so a longer stream is garbage.
    raw_cap = cap + cap // 64 + 1024
    for chunk in response.iter_raw():
        if time.monotonic() > end:
            raise _RefusedError("reply not received within the deadline")
        raw += len(chunk)
        if inflate is not None:
            if raw > raw_cap and not truncate:
                raise _RefusedError(f"compressed reply larger than {raw_cap} bytes")
            try:
                data = inflate.decompress(chunk, cap - len(body) + 1)
            except zlib.error as err:
                raise _RefusedError(f"corrupt gzip reply: {err}") from None
        else:
            data = chunk
        body += data
        if len(body) > cap:
            if truncate:
                return bytes(body[:cap])
            raise _RefusedError(f"reply larger than the {cap} bytes allowed")
        if inflate is not None and inflate.eof:
            if inflate.unused_data:
                raise _RefusedError("data after the end of the gzip reply")
            break
    if inflate is not None and not inflate.eof:
        raise _RefusedError("truncated gzip reply")
    return bytes(body)
