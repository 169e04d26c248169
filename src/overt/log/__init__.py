"""The tiled transparency log (c2sp.org/tlog-tiles): storage, sequencing, serving, reading.

- :mod:`overt.log.log`: :class:`Log`, a log directory: append, integrate, sign, prove;
  :class:`LogView`, its published tiles read-only (no lock: beside a running server).
- :mod:`overt.log.client`: read and verify a log as any client does (:func:`verify_log`).
- :mod:`overt.log.server`: the HTTP server (tlog-tiles reads, ``POST /add``).
- :mod:`overt.log.witnessing`: collecting witness cosignatures for each checkpoint.
- :mod:`overt.log.journal`, :mod:`overt.log.fs`, :mod:`overt.log.index`: the storage under it.

Example (a log in a temporary directory, one entry, its offline proof)::

    >>> import tempfile
    >>> from overt.log import Log
    >>> log = Log.create(tempfile.mkdtemp() + "/log", "example.com/log")
    >>> log.add_many([b"hello"])
    [0]
    >>> log.proof(0).startswith(b"c2sp.org/tlog-proof@v1\\n")
    True
    >>> log.close()

The names below are imported on first use, so ``import overt.log`` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.log.client import (
        DirectorySource,
        HTTPSource,
        LogClient,
        TileSource,
        VerifiedLog,
        open_source,
        verify_log,
    )
    from overt.log.log import Log, LogView, read_token, read_vkey

__all__ = [
    "DirectorySource",
    "HTTPSource",
    "Log",
    "LogClient",
    "LogView",
    "TileSource",
    "VerifiedLog",
    "open_source",
    "read_token",
    "read_vkey",
    "verify_log",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.log.log": ["Log", "LogView", "read_token", "read_vkey"],
            "overt.log.client": [
                "DirectorySource",
                "HTTPSource",
                "LogClient",
                "TileSource",
                "VerifiedLog",
                "open_source",
                "verify_log",
            ],
        },
    )
