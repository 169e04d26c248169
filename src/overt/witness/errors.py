"""Why a witness refused a checkpoint, with the HTTP status c2sp.org/tlog-witness names.

The same classes serve both sides: :mod:`overt.witness.core` raises them and
the server answers with their ``status``; :class:`overt.witness.client.WitnessClient`
raises them again from the status it receives::

    OvertError
    └── WitnessError                  status
        ├── WitnessRequestError       400  malformed body, or old size > checkpoint size
        ├── WitnessSignatureError     403  no valid signature by a trusted key for the origin
        ├── UnknownLogError           404  an origin the witness does not witness
        ├── WitnessConflictError      409  old size is not the witness's size (``.size``)
        ├── WitnessConsistencyError   422  bad consistency proof, wrong empty root, or
        │                                  same size with another root (a fork)
        └── WitnessUnavailableError   0/5xx  network failure, timeout, server error, or a
                                            reply that breaks the protocol
"""

from __future__ import annotations

from overt.errors import OvertError

__all__ = [
    "UnknownLogError",
    "WitnessConflictError",
    "WitnessConsistencyError",
    "WitnessError",
    "WitnessRequestError",
    "WitnessSignatureError",
    "WitnessUnavailableError",
]


class WitnessError(OvertError):
    """A witness refused a checkpoint, or could not be asked.

    Attributes:
        status: the HTTP status code that carries this refusal (0: no reply at all).
        reason: a plain-text explanation.
    """

    status = 0

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class WitnessRequestError(WitnessError):
    """400: a malformed request, or an old size larger than the checkpoint's size."""

    status = 400


class WitnessSignatureError(WitnessError):
    """403: the checkpoint has no valid signature by a key trusted for its origin."""

    status = 403


class UnknownLogError(WitnessError):
    """404: the witness does not witness this origin.

    Attributes:
        origin: the checkpoint's origin line.
    """

    status = 404

    def __init__(self, origin: str, reason: str = "") -> None:
        self.origin = origin
        super().__init__(reason or f"unknown log origin {origin!r}")


class WitnessConflictError(WitnessError):
    """409: the old size is not the size of the latest checkpoint the witness cosigned.

    Retry with ``size`` as the old size (and a consistency proof from it).

    Attributes:
        size: the witness's latest cosigned size for the origin (0 if none).
        old_size: the old size the request claimed, when known.
    """

    status = 409

    def __init__(self, size: int, old_size: int | None = None) -> None:
        self.size = size
        self.old_size = old_size
        claimed = "" if old_size is None else f"old size {old_size} is stale: "
        super().__init__(f"{claimed}the witness's latest cosigned size is {size}")


class WitnessConsistencyError(WitnessError):
    """422: the checkpoint is not consistent with what the witness cosigned before.

    A consistency proof that does not verify, a non-empty proof from size 0, a
    size-0 checkpoint whose root is not the empty tree's, or the witness's own
    size with another root hash (evidence of a fork, if the log signed it).
    """

    status = 422


class WitnessUnavailableError(WitnessError):
    """No usable reply: a network failure, a timeout, a 5xx, or a reply off the protocol.

    ``status`` is the HTTP status received, or 0 when there was none.
    """

    def __init__(self, reason: str, status: int = 0) -> None:
        self.status = status
        super().__init__(reason)
