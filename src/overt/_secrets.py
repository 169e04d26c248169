"""One check for every secret file overt reads: a private key or a bearer token.

``overt witness serve`` and ``overt log serve`` (and everything else that loads
a signing key) refuse a secret that group or others can read or write, the way
ssh refuses a private key: a key others could read is a key others may hold.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from overt.errors import ConfigError

__all__ = ["require_private"]


def require_private(path: Path | str, what: str) -> None:
    """Refuse ``path`` unless only its owner may read or write it (mode 0600 or stricter).

    Raises:
        ConfigError: the file cannot be inspected, or group/others have any access;
            one line naming the file, its mode and the fix.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror}") from err
    if mode & 0o077:
        raise ConfigError(
            f"{what} {path} is readable or writable by others (mode {mode:04o}): chmod 600 {path}"
        )
