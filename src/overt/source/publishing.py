"""Log a source statement (snapshot) the way ``overt publish`` logs a release.

The shell the ``overt source`` command uses: the publisher key signs, its key-set chain
(``KEY.chain`` when present) is checked against the log before anything is logged and
travels in the bundle, exactly as :func:`overt.publish.publisher.publish` does for
releases. Files are written with :func:`write_atomic` (fsync, then rename).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from overt.errors import ConfigError

__all__ = ["publish_statement", "write_atomic"]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``: temp file, fsync, rename. Raises ConfigError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {err.strerror}") from err


def publish_statement(
    log_url: str,
    key: Path,
    name: str,
    sha256: str,
    predicate: tuple[str, Mapping[str, Any]],
    bundle_path: Path,
    *,
    token: str | None = None,
    timeout: float = 30.0,
) -> int:
    """Sign and log one statement with the publisher ``key``; write its bundle. Returns the index.

    Raises:
        ConfigError: an unreadable key or chain, a key not in its current key set;
        KeySetError: the chain is not the one the log holds; LogError: the log failed.
    """
    from overt.publish.chain import read_chain
    from overt.publish.keys import load_publisher_signer
    from overt.publish.keyset import KeyState, check_chain_against_log
    from overt.publish.publisher import (
        Publication,
        logged_keysets,
        open_log_writer,
        publish,
        write_bundle,
    )

    signer = load_publisher_signer(key)
    chain_path = key.with_name(key.name + ".chain")
    keysets: Sequence[bytes] = ()
    state = KeyState.pinned(signer.key)
    if chain_path.is_file():
        state, keysets = read_chain(chain_path)
        if signer.keyid not in state.trusted():
            raise ConfigError(
                f"{key} is not a key of the current key set {state.sequence} in {chain_path}"
            )
    with open_log_writer(log_url, token, timeout) as log:
        check_chain_against_log(state, keysets, signer.key, logged_keysets(log))
        (bundle,) = publish(log, signer, [Publication(name, sha256, predicate)], keysets=keysets)
    write_bundle(bundle_path, bundle)
    return bundle.proof.index
