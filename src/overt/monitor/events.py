"""What a monitor says: JSON-lines events and alerts on a stream, alerts also to a webhook.

One JSON object per line, canonical (sorted members, no whitespace)::

    event   = {"event": kind, "level": level, "message": text, "time": posix-seconds, *data}
    level   = "info" | "warning" | "alert"

Example (a new verified checkpoint, then a check's alert)::

    {"event":"checkpoint","level":"info","message":"verified example.com/log size 42","origin":"example.com/log","root":"9f...","size":42,"time":1750000000.0}
    {"event":"check","level":"alert","check":"size-limit","index":41,"message":"entry 41 is 70000 bytes, more than 32768","time":1750000000.0}

``alert`` is the level that means someone should look: evidence of an inconsistent log, an
entry that fails a check, a checkpoint that does not verify. ``warning`` is an operational
problem (a witness down, the log unreachable). With a webhook URL, every alert is also POSTed
there as the same JSON object (``content-type: application/json``); a failed POST is logged
(logger ``overt.monitor``) and never stops the monitor: the stream is the record.

Versioning: new members may be added to events; existing ones keep their meaning.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

import httpx

from overt.formats.dsse import dump_json_canonical

__all__ = ["ALERT", "INFO", "LEVELS", "WARNING", "Event", "EventSink", "format_event"]

INFO = "info"
WARNING = "warning"
ALERT = "alert"
LEVELS = (INFO, WARNING, ALERT)

log = logging.getLogger("overt.monitor")

_RESERVED = frozenset({"event", "level", "message", "time"})


@dataclass(frozen=True)
class Event:
    """One thing the monitor reports; ``data`` holds JSON values (str, int, lists ...)."""

    kind: str
    level: str
    message: str
    time: float
    data: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"event level must be one of {LEVELS}, not {self.level!r}")
        clash = _RESERVED & set(self.data)
        if clash:
            raise ValueError(f"event data may not use the reserved names {sorted(clash)}")

    @property
    def is_alert(self) -> bool:
        return self.level == ALERT

    def as_json(self) -> dict[str, object]:
        return {
            **self.data,
            "event": self.kind,
            "level": self.level,
            "message": self.message,
            "time": self.time,
        }


def format_event(event: Event) -> bytes:
    """The event's JSON line, newline included."""
    return dump_json_canonical(event.as_json()) + b"\n"


class EventSink:
    """Writes events as JSON lines to ``stream`` and POSTs alerts to ``webhook``.

    ``events`` keeps every event of this run (the CLI's ``--once`` exit code and the tests
    read it); ``alerts`` counts the alerts.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        webhook: str | None = None,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        keep: int = 10_000,
    ) -> None:
        self.stream = sys.stdout if stream is None else stream
        self.webhook = webhook
        self.clock = clock
        self._client = client
        self._own_client = client is None
        self.keep = keep
        self.events: list[Event] = []
        self.alerts = 0
        self.webhook_failures = 0

    def emit(self, kind: str, level: str, message: str, **data: object) -> Event:
        """Builds, writes and (for alerts) POSTs one event; returns it."""
        event = Event(kind, level, message, self.clock(), dict(data))
        self.stream.write(format_event(event).decode("utf-8"))
        self.stream.flush()
        self.events.append(event)
        if len(self.events) > self.keep:
            del self.events[: len(self.events) - self.keep]
        if event.is_alert:
            self.alerts += 1
            if self.webhook is not None:
                self._post(event)
        return event

    def info(self, kind: str, message: str, **data: object) -> Event:
        return self.emit(kind, INFO, message, **data)

    def warning(self, kind: str, message: str, **data: object) -> Event:
        return self.emit(kind, WARNING, message, **data)

    def alert(self, kind: str, message: str, **data: object) -> Event:
        return self.emit(kind, ALERT, message, **data)

    def _post(self, event: Event) -> None:
        assert self.webhook is not None
        if self._client is None:
            self._client = httpx.Client(timeout=5.0, headers={"user-agent": "overt-monitor"})
        try:
            # Only the status is read: the reply's body is never downloaded.
            with self._client.stream(
                "POST",
                self.webhook,
                content=dump_json_canonical(event.as_json()),
                headers={"content-type": "application/json"},
            ) as response:
                if not 200 <= response.status_code < 300:
                    raise httpx.HTTPStatusError(
                        f"HTTP {response.status_code}", request=response.request, response=response
                    )
        except httpx.HTTPError as err:
            # The alert is already on the stream; a webhook is a convenience, not the record.
            self.webhook_failures += 1
            log.warning("webhook %s failed for %s alert: %s", self.webhook, event.kind, err)

    def close(self) -> None:
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None
