"""Small helpers shared by the CLI modules."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from overt.errors import ConfigError
from overt.formats.note import Verifier, parse_vkey
from overt.formats.policy import Policy, parse_policy


def read_input(name: str) -> bytes:
    """Bytes of FILE, or of stdin for ``-``. Raises ConfigError."""
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read {name}: {err.strerror}") from err


def load_vkey(arg: str) -> Verifier:
    """A verifier key given inline (``name+hash+key``) or as a file holding one."""
    text = arg
    path = Path(arg)
    if "+" not in arg or path.is_file():
        try:
            text = path.read_text().strip()
        except OSError as err:
            raise ConfigError(f"cannot read verifier key {arg}: {err.strerror}") from err
    return parse_vkey(text)


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal and for long runs."""

    def __init__(self, label: str, force: bool = False) -> None:
        self.label = label
        self.enabled = force or sys.stderr.isatty()
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        rate = done / max(now - self.started, 1e-9)
        filled = int(30 * done / total) if total else 30
        bar = "#" * filled + "." * (30 - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{total} ({rate:,.0f}/s)")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def load_policy(path: str | None) -> Policy | None:
    """A c2sp.org/tlog-policy file, or None. Raises ConfigError, FormatError."""
    if path is None:
        return None
    return parse_policy(read_input(path))
