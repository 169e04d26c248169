"""Source snapshots and reviews bound to file digests (issue 10).

- :mod:`overt.formats.source_snapshot`: the snapshot text (a canonical SHA-256 manifest).
- :mod:`overt.source.snapshot`: :func:`snapshot_tree`, the snapshot of a git revision or
  a directory.
- :mod:`overt.source.errors`: what it refuses.

See docs/source-review.md. The names below are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.source.errors import (
        DirtyTreeError,
        NotARepositoryError,
        RevisionError,
        SourceError,
    )
    from overt.source.snapshot import snapshot_tree

__all__ = [
    "DirtyTreeError",
    "NotARepositoryError",
    "RevisionError",
    "SourceError",
    "snapshot_tree",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.source.errors": [
                "DirtyTreeError",
                "NotARepositoryError",
                "RevisionError",
                "SourceError",
            ],
            "overt.source.snapshot": ["snapshot_tree"],
        },
    )
