"""Reproducible rebuilds: build a source snapshot in a clean copy, compare, sign a VSA.

- :mod:`overt.rebuild.build`: :func:`clean_build`, the fixed-environment build.
- :mod:`overt.rebuild.compare`: :func:`first_difference` (zip/wheel/tar member by
  member) and :func:`diffoscope` when it is installed.
- :mod:`overt.formats.vsa`: the SLSA Verification Summary v1 a rebuilder signs.
- :mod:`overt.rebuild.errors`: what a rebuild refuses or finds.

See docs/source-review.md. The names below are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overt._lazy import lazy_exports

if TYPE_CHECKING:
    from overt.rebuild.build import BuiltOutput, clean_build
    from overt.rebuild.compare import diffoscope, first_difference
    from overt.rebuild.errors import (
        BuildError,
        BuildTimeoutError,
        RebuildError,
        RebuildMismatchError,
        SourceMismatchError,
    )

__all__ = [
    "BuildError",
    "BuildTimeoutError",
    "BuiltOutput",
    "RebuildError",
    "RebuildMismatchError",
    "SourceMismatchError",
    "clean_build",
    "diffoscope",
    "first_difference",
]

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "overt.rebuild.build": ["BuiltOutput", "clean_build"],
            "overt.rebuild.compare": ["diffoscope", "first_difference"],
            "overt.rebuild.errors": [
                "BuildError",
                "BuildTimeoutError",
                "RebuildError",
                "RebuildMismatchError",
                "SourceMismatchError",
            ],
        },
    )
