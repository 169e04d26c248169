"""Reading a log directory's public files without opening the log.

Kept apart from :mod:`overt.log.log` so that ``overt log vkey`` and ``overt log
token`` import nothing but this (start-up well under 0.1 s): neither needs the
writer lock, the verification core or the dedup index.
"""

from __future__ import annotations

from pathlib import Path

from overt.errors import ConfigError

__all__ = ["read_token", "read_vkey"]


def _read(directory: Path | str, name: str) -> str:
    try:
        return (Path(directory) / name).read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{directory} is not an overt log: {err}") from err


def read_vkey(directory: Path | str) -> str:
    """The verifier key of the log in ``directory`` (no lock needed). Raises ConfigError."""
    return _read(directory, "log.vkey")


def read_token(directory: Path | str) -> str:
    """The bearer token for ``POST /add`` of the log in ``directory``. Raises ConfigError."""
    return _read(directory, "token")
