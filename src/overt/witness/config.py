"""A witness directory: its identity, the logs it witnesses, and its state.

Layout (``overt witness init DIR --name NAME``)::

    DIR/witness.skey   PRIVATE+KEY+<name>+<id>+<base64>  a cosigner key, mode 0600: Ed25519
                       cosignature/v1 (type 0x04) or ML-DSA-44 (0x06, ``--key-type ml-dsa-44``)
    DIR/witness.vkey   <name>+<id>+<base64>              what logs and clients put in a policy
    DIR/logs           one log vkey per line (type 0x01 or 0x06; its name is the origin);
                       blank lines and lines starting with '#' are ignored
    DIR/state.db       :class:`overt.witness.state.WitnessState`

The witness's key name is the witness's name. Every file is written atomically
(temporary file, fsync, rename, directory fsync). The server reads ``logs`` when
it starts and again when the file changes (:class:`LogsWatcher`, checked at most
once a second), so ``overt witness trust`` takes effect without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from overt._secrets import require_private
from overt.errors import ConfigError, FormatError
from overt.formats.keytypes import (
    DEFAULT_ALGORITHM,
    KeySigner,
    KeyVerifier,
    Purpose,
    choose,
    generate,
)
from overt.formats.note import Verifier, parse_skey, parse_vkey
from overt.log.fs import atomic_write
from overt.witness.core import KnownLogs, known_logs
from overt.witness.state import WitnessState

__all__ = [
    "LOGS",
    "SKEY",
    "STATE",
    "VKEY",
    "LogsWatcher",
    "WitnessConfig",
    "init_witness",
    "load_witness",
    "read_logs",
    "trust_log",
]

SKEY = "witness.skey"
VKEY = "witness.vkey"
LOGS = "logs"
STATE = "state.db"

_LOGS_HEADER = b"# Logs this witness cosigns: one log vkey per line (name = origin).\n"


@dataclass(frozen=True)
class WitnessConfig:
    """A loaded witness directory: signer, known logs, and the state file's path."""

    directory: Path
    signer: KeySigner
    logs: KnownLogs

    @property
    def name(self) -> str:
        return self.signer.name

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def open_state(self) -> WitnessState:
        return WitnessState(self.directory / STATE)


def init_witness(directory: Path | str, name: str, key_type: str = DEFAULT_ALGORITHM) -> str:
    """Creates a witness identity in ``directory``; returns its vkey.

    ``key_type`` is an algorithm name (``ed25519``, ``ml-dsa-44``); the key is that
    algorithm's cosignature type (overt.formats.keytypes).

    Raises:
        ConfigError: the directory already holds a witness, or cannot be written, or
            ``key_type`` names no cosignature type.
        FormatError: ``name`` is not a valid key name.
    """
    directory = Path(directory)
    if (directory / SKEY).exists():
        raise ConfigError(f"{directory} already holds a witness ({SKEY})")
    signer = generate(choose(key_type, Purpose.COSIGNATURE), name)
    skey, vkey = signer.skey, signer.vkey
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not (directory / LOGS).exists():
            atomic_write(directory / LOGS, _LOGS_HEADER)
        WitnessState(directory / STATE).close()
        atomic_write(directory / VKEY, vkey.encode() + b"\n")
        # The key last: its presence marks a complete witness directory.
        atomic_write(directory / SKEY, skey.encode() + b"\n", mode=0o600)
    except OSError as err:
        raise ConfigError(f"cannot create witness in {directory}: {err.strerror}") from err
    return vkey


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {what} {path}: {err}") from err


def _load_signer(directory: Path, clock: Callable[[], float]) -> KeySigner:
    path = directory / SKEY
    if not path.is_file():
        raise ConfigError(
            f"{directory} is not a witness directory (no {SKEY}); see `overt witness init`"
        )
    require_private(path, "witness key")
    try:
        signer = parse_skey(_read(path, "witness key").strip())
    except FormatError as err:
        raise ConfigError(f"{path}: {err}") from err
    if not signer.key_type.may_sign(Purpose.COSIGNATURE):
        raise ConfigError(f"{path} is a {signer.key_type.name} key, not a cosigner key")
    signer.clock = clock
    return signer


def read_logs(directory: Path | str) -> KnownLogs:
    """The logs a witness directory witnesses, by origin.

    Raises:
        ConfigError: the file is missing, or a line is not an Ed25519 vkey.
    """
    path = Path(directory) / LOGS
    verifiers: list[Verifier] = []
    for number, line in enumerate(_read(path, "log list").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            verifiers.append(parse_vkey(line))
        except FormatError as err:
            raise ConfigError(f"{path}:{number}: {err}") from err
    try:
        return known_logs(verifiers)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


class LogsWatcher:
    """Re-reads a witness directory's log list when the file changes (``overt witness trust``).

    Calling it returns the new known logs if the file's modification time or size
    changed since the last call, else None. Pass it as ``WitnessApp(reload=...)``.

    Raises:
        ConfigError: on a call, the changed file cannot be read or parsed (the
            caller keeps the logs it had).
    """

    def __init__(self, directory: Path | str) -> None:
        self.path = Path(directory) / LOGS
        self._seen = self._stamp()

    def _stamp(self) -> tuple[int, int]:
        try:
            st = self.path.stat()
        except OSError as err:
            raise ConfigError(f"cannot read log list {self.path}: {err.strerror}") from err
        return st.st_mtime_ns, st.st_size

    def __call__(self) -> KnownLogs | None:
        stamp = self._stamp()
        if stamp == self._seen:
            return None
        logs = read_logs(self.path.parent)
        self._seen = stamp
        return logs


def load_witness(directory: Path | str, clock: Callable[[], float] = time.time) -> WitnessConfig:
    """Loads a witness directory (key, known logs); ``clock`` timestamps cosignatures.

    Raises:
        ConfigError: a missing or unreadable file, a key readable by others, or a
            key whose type does not cosign (overt.formats.keytypes.Purpose.COSIGNATURE).
    """
    directory = Path(directory)
    signer = _load_signer(directory, clock)
    return WitnessConfig(directory, signer, read_logs(directory))


def trust_log(
    directory: Path | str, vkey: str, *, key_file: str = SKEY
) -> tuple[KeyVerifier, bool]:
    """Adds a log key to the witness's logs; returns it and whether it was new.

    ``key_file`` names the key that marks the directory (a mirror's logs file is
    the same: :func:`overt.mirror.config.trust_log`).

    Raises:
        ConfigError: not a witness directory, or the file cannot be written.
        FormatError: a malformed vkey, or one whose type does not sign checkpoints.
    """
    directory = Path(directory)
    if not (directory / key_file).is_file():
        raise ConfigError(
            f"{directory} is not a {key_file.split('.')[0]} directory (no {key_file})"
        )
    verifier = parse_vkey(vkey.strip())
    if not verifier.key_type.may_sign(Purpose.CHECKPOINT):
        raise FormatError("log vkey", "its type does not sign checkpoints (0x01, 0x06 do)", vkey)
    logs = read_logs(directory)
    if verifier in logs.get(verifier.name, ()):
        return verifier, False
    current = (directory / LOGS).read_bytes()
    if current and not current.endswith(b"\n"):
        current += b"\n"
    try:
        atomic_write(directory / LOGS, current + verifier.vkey.encode() + b"\n")
    except OSError as err:
        raise ConfigError(f"cannot write {directory / LOGS}: {err.strerror}") from err
    return verifier, True
