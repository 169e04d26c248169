"""Why a mirror refused an upload, with the HTTP status c2sp.org/tlog-mirror names.

``add-checkpoint`` is handled as a witness handles it, so its refusals are the
witness's (:mod:`overt.witness.errors`: 400, 403, 404, 409 with the pending
size, 422). ``add-entries`` refusals are these; the server answers with their
``status`` and :class:`overt.mirror.client.MirrorClient` raises them again from
the status it receives::

    OvertError
    └── MirrorError                   status
        ├── MirrorRequestError        400  a malformed body, or one that ended before any package
        ├── UnknownMirrorLogError     404  an origin the mirror does not mirror
        ├── MirrorConflictError       409  upload_end or upload_start not usable now (``.info``)
        ├── MirrorVerificationError   422  no pending checkpoint yet, or a package whose entries
        │                                  are not the log's (its proof does not verify)
        └── MirrorUnavailableError    0/5xx  no usable reply (network, timeout, server error)
"""

from __future__ import annotations

from overt.errors import OvertError
from overt.formats.mirror import MirrorInfo

__all__ = [
    "MirrorConflictError",
    "MirrorError",
    "MirrorRequestError",
    "MirrorUnavailableError",
    "MirrorVerificationError",
    "UnknownMirrorLogError",
]


class MirrorError(OvertError):
    """A mirror refused an upload, or could not be asked.

    Attributes:
        status: the HTTP status code that carries this refusal (0: no reply at all).
        reason: a plain-text explanation.
    """

    status = 0

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class MirrorRequestError(MirrorError):
    """400: the body does not parse, or ended before one package was authenticated."""

    status = 400


class UnknownMirrorLogError(MirrorError):
    """404: the mirror does not mirror this origin.

    Attributes:
        origin: the origin the upload named.
    """

    status = 404

    def __init__(self, origin: str, reason: str = "") -> None:
        self.origin = origin
        super().__init__(reason or f"this mirror does not mirror {origin!r}")


class MirrorConflictError(MirrorError):
    """409: ``upload_end`` is not a pending size the mirror knows (or is below its
    checkpoint), or ``upload_start`` is past its next entry or too far behind it.

    Retry with ``info.size`` as ``upload_end`` and ``info.next_entry`` as ``upload_start``.

    Attributes:
        info: what the mirror replied (a valid pending size, its next entry, a ticket).
    """

    status = 409

    def __init__(self, info: MirrorInfo, reason: str) -> None:
        self.info = info
        super().__init__(reason)


class MirrorVerificationError(MirrorError):
    """422: the mirror has no pending checkpoint for the log yet, or a package's
    subtree consistency proof does not verify (entries that are not the log's).

    Attributes:
        index: the first index of the refused package (None: no checkpoint yet).
    """

    status = 422

    def __init__(self, reason: str, index: int | None = None) -> None:
        self.index = index
        super().__init__(reason)


class MirrorUnavailableError(MirrorError):
    """No usable reply: a network failure, a timeout, a 5xx, or a reply off the protocol.

    ``status`` is the HTTP status received, or 0 when there was none.
    """

    def __init__(self, reason: str, status: int = 0) -> None:
        self.status = status
        super().__init__(reason)
