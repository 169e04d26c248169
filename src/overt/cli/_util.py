"""Small helpers shared by the CLI modules.

Importing this module must stay cheap (it runs for ``overt --help``): the
formats and anything heavier are imported inside the helpers that use them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from overt.errors import ConfigError, OvertError

if TYPE_CHECKING:
    from overt.formats.note import Verifier
    from overt.formats.policy import Policy


KEY_TYPES = ("ed25519", "ml-dsa-44")
"""The algorithms ``--key-type`` accepts: those of :mod:`overt.formats.keytypes`, spelled out
here because ``overt --help`` must not import the formats (tests/test_keytypes.py holds the
two equal)."""

DEFAULT_KEY_TYPE = "ed25519"
"""``overt.formats.keytypes.DEFAULT_ALGORITHM`` (docs/adr/0014-post-quantum-keys.md)."""


def add_key_type_argument(parser: argparse.ArgumentParser, role: str) -> None:
    """``--key-type``: the signature algorithm of the key that ``init`` creates."""
    parser.add_argument(
        "--key-type",
        choices=KEY_TYPES,
        default=DEFAULT_KEY_TYPE,
        help=f"the {role}'s signature algorithm; ml-dsa-44 is post-quantum, its signatures"
        " are 2.4 kB (default: %(default)s)",
    )


class UsageError(OvertError):
    """Arguments that argparse accepts but that do not make a command (exit 2, like argparse)."""


def read_input(name: str) -> bytes:
    """Bytes of FILE, or of stdin for ``-``. Raises ConfigError."""
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read {name}: {err.strerror}") from err


def vkey_text(arg: str) -> str:
    """The text of a verifier key given inline (``name+hash+key``) or as a file holding one.

    Raises:
        ConfigError: the file cannot be read.
    """
    path = Path(arg)
    if "+" in arg and not path.is_file():
        return arg
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read verifier key {arg}: {err}") from err


def load_vkey(arg: str) -> Verifier:
    """A verifier key given inline or as a file. Raises ConfigError, FormatError."""
    from overt.formats.note import parse_vkey

    return parse_vkey(vkey_text(arg))


def listen_address(text: str) -> tuple[str, int]:
    """argparse type for ``--listen HOST:PORT``: a malformed address is a usage error."""
    host, sep, port = text.rpartition(":")
    if (
        not sep
        or not host
        or not port.isascii()
        or not port.isdigit()
        or (len(port) > 1 and port[0] == "0")
        or not 0 < int(port) <= 65535
    ):
        raise argparse.ArgumentTypeError(f"want HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def check_listen(host: str, port: int) -> None:
    """Fail with one line now if ``host:port`` cannot be listened on (e.g. already in use).

    The server binds again right after; a port taken in between still fails
    there, but the common case (a second server on the same port) gets a clear
    message instead of the HTTP server's own exit.

    Raises:
        ConfigError: the address cannot be bound.
    """
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            # As the server does: a socket in TIME_WAIT does not make the port busy.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            reason = "the address is already in use (is another server running?)"
        else:
            reason = err.strerror or str(err)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}") from err


def server_exit(err: SystemExit, host: str, port: int) -> ConfigError:
    """The one-line error for an HTTP server that exited during start-up."""
    return ConfigError(f"the server on {host}:{port} could not start (exit {err.code})")


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
    from overt.formats.policy import parse_policy

    return parse_policy(read_input(path))
