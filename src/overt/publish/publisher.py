"""Publishing: sign statements, log them, and write self-contained ``.overt`` bundles.

:func:`publish` turns a batch of artifacts into logged publications in one log
round trip: each artifact's in-toto statement is wrapped in a DSSE envelope
signed by the publisher, every envelope (plus the publisher's key-set chain and
any attestations) is appended with one ``add_many``, and each bundle gets its
inclusion proof against the log's latest (witnessed) checkpoint.

The log is anything with the narrow :class:`LogWriter` interface: an
:class:`overt.log.Log` directory, or :class:`HTTPLogWriter` around a log
server's :class:`overt.log.client.LogClient`.

Bundle files are written with a temporary file and ``os.replace`` but without
fsync: a bundle is derived data (the entry is durable in the log, and the proof
can be fetched again), so losing one to a crash costs a re-run, not evidence.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from overt.errors import ConfigError, LogError
from overt.formats.checkpoint import parse_checkpoint
from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, format_envelope, sign_envelope
from overt.formats.note import parse_note
from overt.formats.proof import TlogProof
from overt.formats.statement import Predicate, format_statement, make_statement
from overt.log.log import Log
from overt.publish.bundle import Bundle, ConsistencyProof, LoggedEntry, format_bundle
from overt.publish.keys import PublisherSigner

__all__ = [
    "HTTPLogWriter",
    "LogWriter",
    "Publication",
    "make_entry",
    "open_log_writer",
    "publish",
    "write_bundle",
    "write_bundles",
]


class LogWriter(Protocol):
    """What publishing needs from a log."""

    def add_many(self, entries: Sequence[bytes]) -> list[int]: ...

    def checkpoint(self) -> bytes: ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, old: int, new: int) -> list[bytes]: ...


class _Client(Protocol):
    def add(self, entry: bytes) -> tuple[int, bytes]: ...

    def checkpoint(self) -> bytes: ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, old: int, new: int) -> list[bytes]: ...


class HTTPLogWriter:
    """A :class:`LogWriter` over a log server client (one ``POST /add`` per entry)."""

    def __init__(self, client: _Client) -> None:
        self.client = client

    def add_many(self, entries: Sequence[bytes]) -> list[int]:
        return [self.client.add(e)[0] for e in entries]

    def checkpoint(self) -> bytes:
        return self.client.checkpoint()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.client.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self.client.consistency_proof(old, new)


@dataclass(frozen=True)
class Publication:
    """One artifact to publish: its name, sha256 (hex) and predicate."""

    name: str
    sha256: str
    predicate: Predicate | tuple[str, Mapping[str, Any]]


def make_entry(signer: PublisherSigner, item: Publication) -> bytes:
    """The log entry of ``item``: its statement in a DSSE envelope signed by ``signer``.

    Raises:
        FormatError: a malformed digest or predicate.
    """
    statement = make_statement(item.name, item.sha256, item.predicate)
    envelope = sign_envelope(
        PAYLOAD_TYPE_IN_TOTO, format_statement(statement), [(signer.keyid, signer)]
    )
    return format_envelope(envelope)


def publish(
    log: LogWriter,
    signer: PublisherSigner,
    items: Sequence[Publication],
    *,
    keysets: Sequence[bytes] = (),
    attestations: Sequence[bytes] = (),
    consistency_from: Sequence[int] = (),
    cosign: Callable[[bytes], bytes] | None = None,
) -> list[Bundle]:
    """Log ``items`` (and ``keysets``, ``attestations``) and return one bundle per item.

    ``consistency_from`` lists older tree sizes to embed consistency proofs from.
    ``cosign``, if given, is applied to the log's checkpoint before it goes in
    the bundles (e.g. to collect witness cosignatures when the log does not).

    Raises:
        FormatError: a malformed item; LogError: the log refused or failed.
    """
    entries = [make_entry(signer, item) for item in items]
    indices = log.add_many([*keysets, *attestations, *entries])
    note = log.checkpoint()
    if cosign is not None:
        note = cosign(note)
    size = parse_checkpoint(parse_note(note).text).size
    if any(i >= size for i in indices):
        raise LogError(f"the log's checkpoint (size {size}) does not cover the new entries yet")
    k, a = len(keysets), len(attestations)
    logged_keysets = tuple(
        LoggedEntry(e, i, tuple(log.inclusion_proof(i, size)))
        for e, i in zip(keysets, indices[:k], strict=True)
    )
    logged_atts = tuple(
        LoggedEntry(e, i, tuple(log.inclusion_proof(i, size)))
        for e, i in zip(attestations, indices[k : k + a], strict=True)
    )
    consistency = tuple(
        ConsistencyProof(old, size, tuple(log.consistency_proof(old, size)))
        for old in consistency_from
        if 0 < old < size
    )
    bundles = []
    for entry, index in zip(entries, indices[k + a :], strict=True):
        proof = TlogProof(index, tuple(log.inclusion_proof(index, size)), note)
        bundles.append(Bundle(entry, proof, logged_keysets, logged_atts, consistency))
    return bundles


@contextlib.contextmanager
def open_log_writer(url_or_dir: str, token: str | None = None) -> Iterator[LogWriter]:
    """A :class:`LogWriter` for a log server URL (token: argument or ``OVERT_LOG_TOKEN``)
    or a log directory (whose appends are witnessed at once if it has a witness policy).

    Raises:
        ConfigError, LogLockedError: the directory is not a log, or is in use.
    """
    token = token or os.environ.get("OVERT_LOG_TOKEN")
    if "://" in url_or_dir:
        from overt.log.client import LogClient

        with LogClient(url_or_dir, token) as client:
            yield HTTPLogWriter(client)
        return
    log = Log.open(url_or_dir)
    try:
        yield _WitnessedLog(log)
    finally:
        log.close()


class _WitnessedLog:
    """A log directory whose appends are witnessed at once (if it has a witness policy)."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def add_many(self, entries: Sequence[bytes]) -> list[int]:
        indices = self.log.add_many(entries)
        self.log.witness()
        return indices

    def checkpoint(self) -> bytes:
        return self.log.checkpoint()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.log.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self.log.consistency_proof(old, new)


def write_bundle(path: Path, bundle: Bundle) -> None:
    """Write ``bundle`` to ``path`` atomically (temp file and rename; see the module notes).

    Raises:
        ConfigError: the file cannot be written.
    """
    data = format_bundle(bundle)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        raise ConfigError(f"cannot write bundle {path}: {err}") from err


def write_bundles(paths: Sequence[Path], bundles: Sequence[Bundle]) -> None:
    """Write one bundle per path (sequentially: threads measured no faster here).

    Raises:
        ConfigError: a file cannot be written.
    """
    if len(paths) != len(bundles):
        raise ValueError("one path per bundle")
    for path, bundle in zip(paths, bundles, strict=True):
        write_bundle(path, bundle)
