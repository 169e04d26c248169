"""A transparency-log mirror (c2sp.org/tlog-mirror): a cosigner that keeps the log's data.

- :mod:`overt.mirror.core`: the I/O-free decisions (pending checkpoint, upload
  checks, package authentication, cosigning).
- :mod:`overt.mirror.store`: the copy of each mirrored log, as tlog-tiles in the
  log's own tile backends (directory or bucket).
- :mod:`overt.mirror.state`: the durable per-log record (SQLite or PostgreSQL).
- :mod:`overt.mirror.server`: ``POST /add-checkpoint``, ``POST /add-entries`` and
  the monitoring API (``GET /<hex sha256(origin)>/checkpoint``, ``.../tile/...``,
  ``.../min-index``).
- :mod:`overt.mirror.client`: :class:`MirrorClient` (one mirror's API) and
  :class:`MirrorPusher` (brings a mirror up to a log's checkpoint).
- :mod:`overt.mirror.config`: the mirror directory (key, mirrored logs, URLs).
- :mod:`overt.mirror.errors`: refusals, each with the spec's HTTP status.

The wire format of ``add-entries`` is :mod:`overt.formats.mirror`. A client
reads a mirrored log like any tiled log, at ``<mirror URL>/<hex sha256(origin)>``
(:class:`overt.log.client.HTTPSource`); its checkpoint carries the log's
signature and the mirror's cosignature/v1, made only once every entry up to
it was durably stored.

The names below are re-exported lazily (imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.mirror.client import MirrorClient, MirrorPusher, PushResult
    from overt.mirror.errors import (
        MirrorConflictError,
        MirrorError,
        MirrorRequestError,
        MirrorUnavailableError,
        MirrorVerificationError,
        UnknownMirrorLogError,
    )
    from overt.mirror.store import origin_hash

__all__ = [
    "MirrorClient",
    "MirrorConflictError",
    "MirrorError",
    "MirrorPusher",
    "MirrorRequestError",
    "MirrorUnavailableError",
    "MirrorVerificationError",
    "PushResult",
    "UnknownMirrorLogError",
    "origin_hash",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.mirror.client": ["MirrorClient", "MirrorPusher", "PushResult"],
            "overt.mirror.errors": [
                "MirrorConflictError",
                "MirrorError",
                "MirrorRequestError",
                "MirrorUnavailableError",
                "MirrorVerificationError",
                "UnknownMirrorLogError",
            ],
            "overt.mirror.store": ["origin_hash"],
        },
    )
