"""The errors of the disclosure service, each carrying the input it refused and its HTTP status.

::

    OvertError
    ├── FormatError
    │   ├── InvalidVectorError      a CVSS vector the ``cvss`` library refuses (with its reason)
    │   └── SubmissionError         a report, message or setting that is malformed (400)
    ├── VerificationError
    │   └── ReceiptError            a receipt that the log's proof does not bear out
    ├── NotFoundError
    │   └── ReportNotFoundError     no such report (or not one the caller may know of: 404)
    └── DisclosureError             the service refused an operation
        ├── TransitionError         a workflow step that is not allowed from the current state (409)
        ├── AccessDeniedError       the caller's role does not allow it (403)
        ├── AuthenticationError     no valid session, token or password (401)
        ├── CSRFError               a form post without the session's CSRF token (403)
        ├── TooLargeError           a report, attachment or message above its size limit (413)
        ├── RateLimitedError        too many submissions or logins from one address (429)
        └── StoreError              the database failed (503)

:attr:`status` is the HTTP status the server answers with (RFC 9110 names them).
"""

from __future__ import annotations

from overt.errors import FormatError, NotFoundError, OvertError, VerificationError

__all__ = [
    "AccessDeniedError",
    "AuthenticationError",
    "CSRFError",
    "DisclosureError",
    "InvalidVectorError",
    "RateLimitedError",
    "ReceiptError",
    "ReportNotFoundError",
    "StoreError",
    "SubmissionError",
    "TooLargeError",
    "TransitionError",
]


class InvalidVectorError(FormatError):
    """A CVSS vector that does not parse or score; ``reason`` says why (from ``cvss``)."""

    status = 400

    def __init__(self, vector: str, reason: str) -> None:
        self.vector = vector
        super().__init__("CVSS vector", reason, vector[:200])


class SubmissionError(FormatError):
    """A malformed submission: ``field`` is what was wrong, ``reason`` how."""

    status = 400

    def __init__(self, field: str, reason: str, data: str | bytes = b"") -> None:
        self.field = field
        super().__init__(field, reason, data if isinstance(data, bytes) else data[:200])


class ReceiptError(VerificationError):
    """A receipt and a log proof that do not prove the claimed commitment."""

    status = 400

    def __init__(self, report_id: str, reason: str) -> None:
        self.report_id = report_id
        self.reason = reason
        super().__init__(f"receipt for report {report_id}: {reason}")


class ReportNotFoundError(NotFoundError):
    """No report with this id or tracking token."""

    status = 404

    def __init__(self, report_id: str) -> None:
        self.report_id = report_id
        super().__init__(f"no report {report_id[:80]!r}")


class DisclosureError(OvertError):
    """The disclosure service refused an operation."""

    status = 400


class TransitionError(DisclosureError):
    """A workflow step that the report's current state does not allow."""

    status = 409

    def __init__(self, report_id: str, current: str, wanted: str, reason: str = "") -> None:
        self.report_id = report_id
        self.current = current
        self.wanted = wanted
        why = f": {reason}" if reason else ""
        super().__init__(f"report {report_id} cannot go from {current} to {wanted}{why}")


class AccessDeniedError(DisclosureError):
    """``actor`` may not do ``action``."""

    status = 403

    def __init__(self, actor: str, action: str) -> None:
        self.actor = actor
        self.action = action
        super().__init__(f"{actor} may not {action}")


class AuthenticationError(DisclosureError):
    """No valid session, tracking token or password."""

    status = 401

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CSRFError(DisclosureError):
    """A state-changing form post without the session's CSRF token."""

    status = 403

    def __init__(self) -> None:
        super().__init__("missing or wrong CSRF token")


class TooLargeError(DisclosureError):
    """``what`` is ``size`` bytes, above its ``limit``."""

    status = 413

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(f"{what} is {size} bytes, more than the {limit} allowed")


class RateLimitedError(DisclosureError):
    """Too many requests of one kind (``what``) from one client (``client``)."""

    status = 429

    def __init__(self, what: str, client: str, retry_after: float) -> None:
        self.what = what
        self.client = client
        self.retry_after = retry_after
        super().__init__(f"too many {what} from {client}: retry in {retry_after:.0f} s")


class StoreError(DisclosureError):
    """The database failed (or refused a conflicting record, e.g. a second payout)."""

    status = 503

    def __init__(self, message: str, conflict: bool = False) -> None:
        self.conflict = conflict
        if conflict:
            self.status = 409
        super().__init__(message)
