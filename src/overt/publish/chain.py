"""The publisher's key-set chain file: the pinned first key and every key-set entry.

Plain text, one item per line::

    <first publisher vkey>
    <key-set entry 1: canonical DSSE envelope JSON>
    <key-set entry 2>
    ...

``overt publisher keygen`` starts it, ``overt publisher rotate/revoke`` append
to it (after logging the entry), and ``overt publish --chain`` copies the
entries into every bundle so that clients can follow them offline.
"""

from __future__ import annotations

import os
from pathlib import Path

from overt.errors import ConfigError, FormatError, OvertError
from overt.formats.dsse import format_envelope, parse_envelope
from overt.publish.keys import PublisherKey, parse_publisher_key
from overt.publish.keyset import KeyState, follow_keyset

__all__ = ["append_chain", "create_chain", "read_chain"]


def create_chain(path: Path, first: PublisherKey) -> None:
    """Start a chain file for ``first``. Raises ConfigError if it exists."""
    try:
        with path.open("x") as f:
            f.write(first.vkey + "\n")
    except OSError as err:
        raise ConfigError(f"cannot create key-set chain {path}: {err}") from err


def read_chain(path: Path) -> tuple[KeyState, list[bytes]]:
    """The current key state and the entries of a chain file.

    Raises:
        ConfigError: unreadable, malformed, or a chain that does not follow.
    """
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as err:
        raise ConfigError(f"cannot read key-set chain {path}: {err.strerror}") from err
    if not lines or lines[-1] != b"" or not lines[0]:
        raise ConfigError(f"{path} is not a key-set chain file")
    try:
        first = parse_publisher_key(lines[0].decode("utf-8"))
        entries = lines[1:-1]
        for e in entries:
            if format_envelope(parse_envelope(e)) != e:
                raise FormatError("key-set chain", "an entry is not a canonical envelope")
        state = follow_keyset(first, entries)
    except (OvertError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not a valid key-set chain: {err}") from err
    return state, entries


def append_chain(path: Path, entry: bytes) -> None:
    """Append a (logged) key-set entry, durably. Raises ConfigError."""
    try:
        with path.open("ab") as f:
            f.write(entry + b"\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        raise ConfigError(f"cannot append to key-set chain {path}: {err}") from err
