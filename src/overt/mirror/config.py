"""A mirror directory: its identity, the logs it mirrors, where its copy and state are.

Layout (``overt mirror init DIR --name NAME``)::

    DIR/mirror.skey    PRIVATE+KEY+<name>+<id>+<base64>  a cosigner key, mode 0600: Ed25519
                       cosignature/v1 (0x04) or ML-DSA-44 (0x06, ``--key-type ml-dsa-44``,
                       which also signs subtrees: ``POST /sign-subtree``)
    DIR/mirror.vkey    <name>+<id>+<base64>              what clients put in a policy
    DIR/logs           one log vkey per line (its name is the origin), as a
                       witness's (overt.witness.config)
    DIR/mirror.json    {"version": 1, "tiles": URL?, "db": URL?}
    DIR/tiles/         the mirrored logs' tiles, one ``<hex sha256(origin)>/`` each
                       (unless "tiles" names a file:/// or s3:// URL)
    DIR/state.db       :class:`overt.mirror.state.MirrorState` (unless "db" names a database)
    DIR/lock           held by the one ``overt mirror serve`` of this mirror

The mirror's key name is its name. Every file is written atomically. The
server reads ``logs`` when it starts and again when the file changes, so
``overt mirror trust`` takes effect without a restart.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from overt._secrets import require_private
from overt.errors import ConfigError, FormatError, LogLockedError
from overt.formats.keytypes import (
    DEFAULT_ALGORITHM,
    KeySigner,
    KeyVerifier,
    Purpose,
    choose,
    generate,
)
from overt.formats.note import parse_skey
from overt.log.backend import TileBackend
from overt.log.fs import TileStore, atomic_write
from overt.log.stores import open_tiles
from overt.mirror.state import MirrorState
from overt.mirror.store import origin_hash, prefixed_tiles_url
from overt.witness import config as witness_config
from overt.witness.config import LOGS, read_logs
from overt.witness.core import KnownLogs

__all__ = [
    "CONFIG",
    "SKEY",
    "STATE",
    "VKEY",
    "MirrorConfig",
    "init_mirror",
    "load_mirror",
    "lock_mirror",
    "trust_log",
]

SKEY = "mirror.skey"
VKEY = "mirror.vkey"
CONFIG = "mirror.json"
STATE = "state.db"
_LOGS_HEADER = b"# Logs this mirror mirrors: one Ed25519 log vkey per line (name = origin).\n"


@dataclass(frozen=True)
class MirrorConfig:
    """A loaded mirror directory."""

    directory: Path
    signer: KeySigner
    logs: KnownLogs
    tiles_url: str | None
    db_url: str

    @property
    def name(self) -> str:
        return self.signer.name

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def open_state(self) -> MirrorState:
        """Raises MirrorStateError."""
        return MirrorState(self.db_url)

    def tiles_for(self, origin: str) -> TileBackend:
        """The tile backend of one mirrored log (``<tiles>/<hex sha256(origin)>/``).

        Raises:
            ConfigError: the tiles URL is not usable.
        """
        if self.tiles_url is None:
            return TileStore(self.directory / "tiles" / origin_hash(origin))
        return open_tiles(prefixed_tiles_url(self.tiles_url, origin))


def init_mirror(
    directory: Path | str,
    name: str,
    *,
    key_type: str = DEFAULT_ALGORITHM,
    tiles: str | None = None,
    db: str | None = None,
) -> str:
    """Creates a mirror in ``directory``; returns its vkey.

    ``key_type`` is an algorithm name (``ed25519``, ``ml-dsa-44``); the key is that
    algorithm's cosignature type (overt.formats.keytypes).

    ``tiles`` (``file:///PATH`` or ``s3://BUCKET/PREFIX``) and ``db``
    (``sqlite:///PATH`` or ``postgresql://...``) move the copy and the state
    out of the directory.

    Raises:
        ConfigError: the directory already holds a mirror, a URL is not usable,
            or the directory cannot be written.
        FormatError: ``name`` is not a valid key name.
    """
    directory = Path(directory)
    if (directory / SKEY).exists():
        raise ConfigError(f"{directory} already holds a mirror ({SKEY})")
    signer = generate(choose(key_type, Purpose.COSIGNATURE), name)
    skey, vkey = signer.skey, signer.vkey
    if tiles is not None:
        open_tiles(tiles)  # refuses a malformed URL before anything is written
    config: dict[str, object] = {"version": 1}
    if tiles is not None:
        config["tiles"] = tiles
    if db is not None:
        config["db"] = db
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / LOGS).exists():
            atomic_write(directory / LOGS, _LOGS_HEADER)
        atomic_write(directory / CONFIG, json.dumps(config, indent=1).encode() + b"\n")
        MirrorState(db or f"sqlite:///{directory.resolve() / STATE}").close()
        atomic_write(directory / VKEY, vkey.encode() + b"\n")
        # The key last: its presence marks a complete mirror directory.
        atomic_write(directory / SKEY, skey.encode() + b"\n", mode=0o600)
    except OSError as err:
        raise ConfigError(f"cannot create a mirror in {directory}: {err.strerror}") from err
    return vkey


def _config(directory: Path) -> tuple[str | None, str]:
    try:
        raw = json.loads((directory / CONFIG).read_text("utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read {directory / CONFIG}: {err}") from err
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise ConfigError(f"{directory / CONFIG}: not a version 1 mirror configuration")
    tiles, db = raw.get("tiles"), raw.get("db")
    for key, value in (("tiles", tiles), ("db", db)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{directory / CONFIG}: {key!r} must be a URL string")
    return tiles, db or f"sqlite:///{directory.resolve() / STATE}"


def load_mirror(directory: Path | str, clock: Callable[[], float] = time.time) -> MirrorConfig:
    """Loads a mirror directory; ``clock`` timestamps cosignatures.

    Raises:
        ConfigError: a missing or unreadable file, a key readable by others, or a
            key that is not a cosignature/v1 key.
    """
    directory = Path(directory)
    path = directory / SKEY
    if not path.is_file():
        raise ConfigError(
            f"{directory} is not a mirror directory (no {SKEY}); see `overt mirror init`"
        )
    require_private(path, "mirror key")
    try:
        signer = parse_skey(path.read_text("utf-8").strip())
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from err
    except FormatError as err:
        raise ConfigError(f"{path}: {err}") from err
    if not signer.key_type.may_sign(Purpose.COSIGNATURE):
        raise ConfigError(f"{path} is a {signer.key_type.name} key, not a cosigner key")
    signer.clock = clock
    tiles, db = _config(directory)
    return MirrorConfig(directory, signer, read_logs(directory), tiles, db)


def trust_log(directory: Path | str, vkey: str) -> tuple[KeyVerifier, bool]:
    """Adds a log key to the mirror's logs; returns it and whether it was new.

    Raises:
        ConfigError: not a mirror directory, or the file cannot be written.
        FormatError: a malformed vkey, or one that is not a log key.
    """
    return witness_config.trust_log(directory, vkey, key_file=SKEY)


def lock_mirror(directory: Path | str) -> int:
    """Take the mirror directory's writer lock (for ``serve``); returns its fd.

    Raises:
        LogLockedError: another process serves this mirror.
        ConfigError: the lock file cannot be opened.
    """
    path = Path(directory) / "lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise ConfigError(f"cannot open {path}: {err.strerror}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        os.close(fd)
        raise LogLockedError(f"mirror {directory} is in use by another process") from err
    return fd
