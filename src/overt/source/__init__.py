"""Source snapshots and reviews bound to file digests (issue 10).

- :mod:`overt.formats.source_snapshot`: the snapshot text (a canonical SHA-256 manifest).
- :mod:`overt.source.snapshot`: :func:`snapshot_tree`, the snapshot of a git revision or
  a directory.
- :mod:`overt.source.errors`: what it refuses.
- :mod:`overt.formats.source_review`: a review's predicate; :mod:`overt.source.review`:
  make and verify reviews, coverage by file digest, what changed between snapshots.

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
    from overt.source.review import (
        Coverage,
        InvalidReviewError,
        Review,
        ReviewerKeyError,
        ReviewError,
        SnapshotDiff,
        coverage,
        diff_snapshots,
        make_review,
        verify_review,
    )
    from overt.source.snapshot import snapshot_tree

__all__ = [
    "Coverage",
    "DirtyTreeError",
    "InvalidReviewError",
    "NotARepositoryError",
    "Review",
    "ReviewError",
    "ReviewerKeyError",
    "RevisionError",
    "SnapshotDiff",
    "SourceError",
    "coverage",
    "diff_snapshots",
    "make_review",
    "snapshot_tree",
    "verify_review",
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
            "overt.source.review": [
                "Coverage",
                "InvalidReviewError",
                "Review",
                "ReviewError",
                "ReviewerKeyError",
                "SnapshotDiff",
                "coverage",
                "diff_snapshots",
                "make_review",
                "verify_review",
            ],
        },
    )
