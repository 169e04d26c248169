"""What a rebuild refuses or finds (see :mod:`overt.errors` for the tree)."""

from __future__ import annotations

from overt.errors import OvertError

__all__ = [
    "BuildError",
    "BuildTimeoutError",
    "RebuildError",
    "RebuildMismatchError",
    "SourceMismatchError",
]


class RebuildError(OvertError):
    """A rebuild that could not be done, or whose output is not the released artifact."""


class BuildError(RebuildError):
    """The build failed, wrote no output, or named an output outside its directory."""


class BuildTimeoutError(BuildError):
    """The build ran longer than its timeout (its processes were killed)."""

    def __init__(self, command: str, seconds: float) -> None:
        self.command = command
        self.seconds = seconds
        super().__init__(f"the build did not finish within {seconds:g} s (killed): {command}")


class SourceMismatchError(RebuildError):
    """The source directory is not the snapshot; ``.path`` is the first file that differs."""

    def __init__(self, directory: str, path: str, reason: str) -> None:
        self.path = path
        super().__init__(f"{directory} is not the snapshot: {path}: {reason}")


class RebuildMismatchError(RebuildError):
    """The rebuilt output is not the released artifact (the FAILED summary is logged)."""

    def __init__(self, name: str, difference: str) -> None:
        self.name = name
        self.difference = difference
        super().__init__(f"rebuild of {name} does not match: {difference}")
