"""The errors of overt's telemetry controls, each naming the rule or input it refused.

::

    OvertError
    ├── FormatError
    │   └── TelemetryPolicyFormatError  a policy that does not validate against the schema
    ├── VerificationError
    │   ├── LedgerTamperedError         an egress ledger whose entries or tree do not verify
    │   ├── CollectorReceiptError       a receipt that does not prove the payload was logged
    │   └── SealError                   a payload not sealed to this collector's key (422)
    └── TelemetryError                  the telemetry controls refused something
        ├── EventRefusedError           an event the policy does not allow; ``.rule``
        └── SampleRefusedError          a file sample the policy does not allow; ``.rule``

:attr:`status` is the HTTP status a collector answers with (RFC 9110 names them).
"""

from __future__ import annotations

from overt.errors import FormatError, OvertError, VerificationError

__all__ = [
    "CollectorReceiptError",
    "EventRefusedError",
    "LedgerTamperedError",
    "SampleRefusedError",
    "SealError",
    "TelemetryError",
    "TelemetryPolicyFormatError",
]


class TelemetryPolicyFormatError(FormatError):
    """A telemetry policy that is not valid JSON or does not validate; ``path`` is where."""

    status = 400

    def __init__(self, path: str, reason: str, data: str | bytes = b"") -> None:
        self.path = path
        super().__init__(f"telemetry policy at {path}", reason, data)


class LedgerTamperedError(VerificationError):
    """An egress ledger that does not verify: ``index`` is the first bad entry (or None)."""

    def __init__(self, reason: str, index: int | None = None) -> None:
        self.reason = reason
        self.index = index
        where = f" at entry {index}" if index is not None else ""
        super().__init__(f"egress ledger does not verify{where}: {reason}")


class CollectorReceiptError(VerificationError):
    """A collector receipt that does not prove that the payload ``digest`` was received."""

    def __init__(self, digest: str, reason: str) -> None:
        self.digest = digest
        self.reason = reason
        super().__init__(f"receipt for payload {digest[:16]}... does not verify: {reason}")


class SealError(VerificationError):
    """A payload that does not open with this collector's key (wrong region key, altered)."""

    status = 422

    def __init__(self, region: str, reason: str) -> None:
        self.region = region
        self.reason = reason
        super().__init__(f"payload not sealed to the {region} collector key: {reason}")


class TelemetryError(OvertError):
    """The telemetry controls refused something."""

    status = 400


class EventRefusedError(TelemetryError):
    """An event the policy does not allow.

    ``rule`` is the policy rule that refuses it (``events.process.fields.cmdline``), ``kind``
    the kind of violation (``unknown-event``, ``unknown-field``, ``missing-field``,
    ``type``, ``not-allowed``, ``not-a-url``, ``not-a-time``).
    """

    status = 422

    def __init__(self, rule: str, kind: str, detail: str) -> None:
        self.rule = rule
        self.kind = kind
        self.detail = detail
        super().__init__(f"event refused by {rule} ({kind}): {detail}")


class SampleRefusedError(TelemetryError):
    """A file sample the policy does not allow.

    ``rule`` names the policy rule (``samples.mode``, ``samples.max_bytes``,
    ``samples.never``, ``samples.documents``, ``samples.markings``, ``samples.archives``);
    ``kind`` is what the content was found to be and ``path`` where, inside archives
    (``outer.zip!inner/report.docx``).
    """

    status = 422

    def __init__(self, rule: str, kind: str, detail: str, path: str = "") -> None:
        self.rule = rule
        self.kind = kind
        self.detail = detail
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"sample refused by {rule} ({kind}{where}): {detail}")
