"""What computing or checking a source snapshot refuses (see :mod:`overt.errors` for the tree)."""

from __future__ import annotations

from overt.errors import OvertError

__all__ = ["DirtyTreeError", "NotARepositoryError", "RevisionError", "SourceError"]


class SourceError(OvertError):
    """A source tree that cannot be snapshot or does not match; ``.path`` names what."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(message)


class NotARepositoryError(SourceError):
    """A revision was named for a directory that is not a git repository."""

    def __init__(self, directory: str) -> None:
        super().__init__(f"{directory} is not a git repository (a --rev needs one)", directory)


class RevisionError(SourceError):
    """A revision that names no commit in the repository."""

    def __init__(self, rev: str, directory: str) -> None:
        self.rev = rev
        super().__init__(f"{rev!r} is not a commit of the git repository {directory}", directory)


class DirtyTreeError(SourceError):
    """Uncommitted changes that a snapshot of the committed revision would not hold."""

    def __init__(self, directory: str, first: str) -> None:
        self.first = first
        super().__init__(
            f"{directory} has uncommitted changes (first: {first}); commit them, or pass"
            " --allow-dirty to snapshot the committed revision without them",
            directory,
        )
