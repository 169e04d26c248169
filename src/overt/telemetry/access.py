"""The ``telemetry-access`` monitor check: a customer follows its entries in a collector's
access log.

``overt monitor ... --check telemetry-access=CUSTOMER[:RETENTION_DAYS]`` alerts on every
entry of that access log that is

- not an access entry (the access log holds nothing else);
- a read of the customer's payloads with no stated reason or ticket;
- a read of a payload older than the retention the customer's policy declares
  (``RETENTION_DAYS``, default 30): it should have been deleted, not read.

Reads with a reason are reported by ``overt monitor`` as what they are: entries in a log the
customer watches. Deletions are expected and not alerted.
"""

from __future__ import annotations

from overt.errors import ConfigError, FormatError
from overt.formats.strict import parse_decimal
from overt.monitor.alert import Alert
from overt.telemetry.collector import parse_access_entry

__all__ = ["TelemetryAccessCheck"]


class TelemetryAccessCheck:
    """Alerts on one customer's access-log entries that break its policy (module docstring)."""

    name = "telemetry-access"

    def __init__(self, customer: str, retention_days: int = 30) -> None:
        self.customer = customer
        self.retention = retention_days * 86400

    @classmethod
    def from_arg(cls, arg: str | None) -> TelemetryAccessCheck:
        if not arg:
            raise ConfigError("telemetry-access wants CUSTOMER[:RETENTION_DAYS]")
        customer, sep, days = arg.partition(":")
        if not sep:
            return cls(customer)
        try:
            return cls(customer, parse_decimal(days, "retention days"))
        except FormatError as err:
            raise ConfigError(f"telemetry-access: {days!r} is not a number of days") from err

    def check(self, index: int, entry: bytes) -> list[Alert]:
        try:
            record = parse_access_entry(entry)
        except FormatError as err:
            return [Alert(self.name, index, f"entry {index} is not an access entry: {err}")]
        if record.customer != self.customer or record.kind != "read":
            return []
        alerts = []
        if not record.reason.strip():
            alerts.append(
                Alert(self.name, index, f"{record.actor} read {self.customer} data with no reason")
            )
        stale = [d for d, r in zip(record.digests, record.received, strict=True)
                 if record.time - r > self.retention]  # fmt: skip
        if stale:
            alerts.append(
                Alert(
                    self.name,
                    index,
                    f"{record.actor} read {len(stale)} {self.customer} payload(s) older than the"
                    f" retention ({stale[0][:16]}...): they should have been deleted",
                )
            )
        return alerts
