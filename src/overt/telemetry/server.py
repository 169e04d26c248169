"""The collector's HTTP API (bare ASGI on :mod:`overt._asgi`).

=======  ==========================  =====================================================
POST     ``/v1/payloads``            a sealed payload; header ``X-Overt-Customer``; answers
                                     200 with the receipt as JSON (``entry``, ``index``,
                                     ``proof``: a c2sp.org/tlog-proof), 422 if it is not
                                     sealed to this region's key or breaks the policy, 413
                                     above 48 MiB, 503 if it could not be made durable
GET      ``/v1/key``                 the region key text (the logged one)
POST     ``/v1/read``                the query API: bearer token; JSON ``{"actor",
                                     "customer", "digests", "reason"}``; the read is
                                     appended to the access log before the answer
                                     ``{"payloads": [{"digest", "plaintext"}]}`` (base64);
                                     400 without a reason, 401 without the token
GET      ``/receipts/<tlog-tiles>``  the receipt log, read as any tlog-tiles log
GET      ``/access/<tlog-tiles>``    the access log
=======  ==========================  =====================================================
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from overt._asgi import CLOSE, BodyTooLargeError, Receive, Scope, Send, error, read_body, reply
from overt.errors import FormatError, LogError, NotFoundError, OvertError, TilePathError
from overt.formats import tiles
from overt.formats.strict import load_json
from overt.telemetry.collector import MAX_PAYLOAD, Collector
from overt.telemetry.errors import SealError, TelemetryError

__all__ = ["CollectorApp"]

_JSON = b"application/json"


class CollectorApp:
    """ASGI app serving one :class:`Collector`."""

    def __init__(self, collector: Collector, threads: int = 64) -> None:
        self.collector = collector
        # Receiving blocks on fsync: many threads let one group commit cover many requests.
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="collector")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.pool.shutdown(wait=True)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        try:
            if method == "POST" and path == "/v1/payloads":
                await self._payload(scope, receive, send)
            elif method == "POST" and path == "/v1/read":
                await self._read(scope, receive, send)
            elif method == "GET" and path == "/v1/key":
                await reply(
                    send, 200, (self.collector.directory / "collector.key.pub").read_bytes()
                )
            elif method == "GET" and path.startswith(("/receipts/", "/access/")):
                await self._tiles(path, send)
            else:
                await error(send, 404, "not found")
        except BodyTooLargeError as err:
            await error(send, 413, str(err), headers=[CLOSE])
        except (SealError, TelemetryError) as err:
            await error(send, getattr(err, "status", 400), str(err))
        except (NotFoundError, TilePathError) as err:
            await error(send, 404, str(err))
        except FormatError as err:
            await error(send, 400, str(err))
        except LogError as err:
            await error(send, 503, f"not stored: {err}")
        except OvertError as err:
            await error(send, 400, str(err))

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def _payload(self, scope: Scope, receive: Receive, send: Send) -> None:
        customer = _header(scope, b"x-overt-customer")
        body = await read_body(scope, receive, MAX_PAYLOAD)
        if body is None:
            return
        receipt = await self._run(self.collector.receive, customer, body)
        await reply(send, 200, json.dumps(receipt.to_json()).encode(), _JSON)

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> None:
        auth = _header(scope, b"authorization")
        expected = f"Bearer {self.collector.token}"
        if not hmac.compare_digest(auth.encode(), expected.encode()):
            await error(send, 401, "the query API needs the collector's bearer token")
            return
        body = await read_body(scope, receive, 1 << 20)
        if body is None:
            return
        doc = load_json(body, "read request", 1 << 20)
        if not isinstance(doc, dict) or set(doc) != {"actor", "customer", "digests", "reason"}:
            raise FormatError("read request", "members are actor, customer, digests, reason")
        if not isinstance(doc["digests"], list) or not all(
            isinstance(x, str)
            for x in (doc["actor"], doc["customer"], doc["reason"], *doc["digests"])
        ):
            raise FormatError("read request", "a member of the wrong type")
        rows = await self._run(
            self.collector.read, doc["actor"], doc["customer"], doc["digests"], doc["reason"]
        )
        out = {
            "payloads": [{"digest": d, "plaintext": base64.b64encode(p).decode()} for d, p in rows]
        }
        await reply(send, 200, json.dumps(out).encode(), _JSON)

    async def _tiles(self, path: str, send: Send) -> None:
        from overt.log.client import DirectorySource

        which, _, rest = path[1:].partition("/")
        if rest != "checkpoint":
            tiles.parse_tile_path(rest)
        source = DirectorySource(self.collector.directory / which)
        data = await self._run(source.read, rest)
        await reply(send, 200, data, b"application/octet-stream")


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""
