"""A transparency-log witness (c2sp.org/tlog-witness@v1.0.0, cosignature/v1).

- :mod:`overt.witness.core`: the I/O-free decision (verify, check, cosign).
- :mod:`overt.witness.state`: the durable per-log record (SQLite, compare-and-set).
- :mod:`overt.witness.subtree`: the I/O-free ``sign-subtree`` decision (ML-DSA-44 witnesses).
- :mod:`overt.witness.server`: ``POST /add-checkpoint``, ``POST /sign-subtree``, ``GET /logs``,
  ``GET /checkpoint/<origin>``.
- :mod:`overt.witness.client`: :class:`WitnessClient`, for logs and monitors.
- :mod:`overt.witness.config`: the witness directory (key, trusted logs, state).
- :mod:`overt.witness.errors`: refusals, each with the spec's HTTP status.

The names below are re-exported lazily (imported on first use), so importing
the package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.witness.client import WitnessClient
    from overt.witness.errors import (
        UnknownLogError,
        WitnessConflictError,
        WitnessConsistencyError,
        WitnessError,
        WitnessRequestError,
        WitnessSignatureError,
        WitnessUnavailableError,
    )

__all__ = [
    "UnknownLogError",
    "WitnessClient",
    "WitnessConflictError",
    "WitnessConsistencyError",
    "WitnessError",
    "WitnessRequestError",
    "WitnessSignatureError",
    "WitnessUnavailableError",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.witness.client": ["WitnessClient"],
            "overt.witness.errors": [
                "UnknownLogError",
                "WitnessConflictError",
                "WitnessConsistencyError",
                "WitnessError",
                "WitnessRequestError",
                "WitnessSignatureError",
                "WitnessUnavailableError",
            ],
        },
    )
