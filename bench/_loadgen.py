"""A small keep-alive HTTP/1.1 load generator for ``POST /add`` (run as a separate process).

    python -m bench._loadgen URL[,URL...] TOKEN --clients 64 --seconds 5 --size 1024 [--acks FILE]

Each client owns one connection and sends one request at a time, as an updater
would; with several URLs (front ends of one log) the clients are spread over
them. A poller reads the first URL's ``/checkpoint`` every few milliseconds, so
that the time to integration of every entry (request sent -> first checkpoint
covering its index seen) is measured from the outside, like a client would see
it. ``--acks FILE`` writes one ``INDEX HEX`` line per acknowledged entry (the
entry is HEX padded with dots to ``--size``), for checking them against the
tiles. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import cast
from urllib.parse import urlsplit


async def request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> tuple[bytes, bytes]:
    writer.write(data)
    status = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line == b"\r\n":
            break
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


class Run:
    def __init__(self) -> None:
        self.sent: list[tuple[float, int]] = []  # (start, index)
        self.acked: list[tuple[int, str]] = []  # (index, hex)
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.sizes: list[tuple[float, int]] = []  # (first seen, checkpoint size)
        self.done = False


class _Client(asyncio.Protocol):
    """One keep-alive connection sending ``POST /add`` one at a time, in callbacks (no
    coroutine per request: this process shares the CPUs with the servers it measures)."""

    def __init__(self, head: bytes, pad: bytes, until: float, run: Run) -> None:
        self.head, self.pad, self.until, self.run = head, pad, until, run
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.unique = ""
        self.started = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        if time.perf_counter() >= self.until:
            self.transport.close()
            return
        self.unique = os.urandom(16).hex()
        self.started = time.perf_counter()
        self.transport.write(self.head + self.unique.encode() + self.pad)

    def data_received(self, data: bytes) -> None:
        try:
            self._received(data)
        except Exception as err:  # a reply this cannot read: end this client, loudly
            if not self.done.done():
                self.done.set_exception(err)
            assert self.transport is not None
            self.transport.close()

    def _received(self, data: bytes) -> None:
        buffer = self.buffer + data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            self.buffer = buffer
            return
        at = buffer.lower().find(b"content-length:", 0, end)
        length = int(buffer[at + 15 : buffer.index(b"\r\n", at)]) if at >= 0 else 0
        if len(buffer) < end + 4 + length:
            self.buffer = buffer
            return
        reply = buffer[end + 4 : end + 4 + length]
        self.buffer = buffer[end + 4 + length :]
        run = self.run
        if buffer.startswith(b"HTTP/1.1 200"):
            index = int(reply)
            run.latencies.append(time.perf_counter() - self.started)
            run.sent.append((self.started, index))
            run.acked.append((index, self.unique))
        else:
            run.errors.append(buffer[: buffer.index(b"\r\n")].decode())
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _client(host: str, port: int, token: str, size: int, until: float, run: Run) -> None:
    head = f"POST /add HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Length: {size}\r\n\r\n".encode()
    pad = b"." * (size - 32)
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: _Client(head, pad, until, run), host, port)
    await client.done


async def _poller(host: str, port: int, run: Run) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    req = f"GET /checkpoint HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    last = -1
    try:
        while True:
            _, body = await request(reader, writer, req)
            size = int(body.split(b"\n")[1])
            if size != last:
                run.sizes.append((time.perf_counter(), size))
                last = size
            if run.done and run.sent and size > max(i for _, i in run.sent):
                return
            await asyncio.sleep(0.005)
    finally:
        writer.close()


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))] if values else 0.0


async def _main(args: argparse.Namespace) -> dict[str, object]:
    urls = [urlsplit(u) for u in args.url.split(",")]
    targets = [(u.hostname or "127.0.0.1", u.port or 80) for u in urls]
    run = Run()
    poller = asyncio.create_task(_poller(*targets[0], run))
    started = time.perf_counter()
    until = started + args.seconds
    await asyncio.gather(
        *(
            _client(*targets[n % len(targets)], args.token, args.size, until, run)
            for n in range(args.clients)
        )
    )
    elapsed = time.perf_counter() - started
    run.done = True
    await asyncio.wait_for(poller, 30)
    # Time to integration: first checkpoint seen whose size covers the index.
    integration: list[float] = []
    sizes = run.sizes
    for start, index in run.sent:
        seen = next(t for t, s in sizes if s > index and t >= start)
        integration.append(seen - start)
    integration.sort()
    run.latencies.sort()
    if args.acks:
        with open(args.acks, "w") as out:
            out.writelines(f"{index} {unique}\n" for index, unique in run.acked)
    return {
        "requests": len(run.latencies),
        "errors": len(run.errors),
        "first_error": run.errors[0] if run.errors else "",
        "seconds": elapsed,
        "rate": len(run.latencies) / elapsed,
        "ack_p50": _pct(run.latencies, 0.50),
        "ack_p99": _pct(run.latencies, 0.99),
        "integration_p50": _pct(integration, 0.50),
        "integration_p99": _pct(integration, 0.99),
        "checkpoints": len(sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--acks", help="write 'INDEX HEX' per acknowledged entry here")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(json.dumps(asyncio.run(_main(args))))


if __name__ == "__main__":
    main()
