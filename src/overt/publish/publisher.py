"""Publishing: sign statements, log them, and write self-contained ``.overt`` bundles.

:func:`publish` turns a batch of artifacts into logged publications in one log
round trip: each artifact's in-toto statement is wrapped in a DSSE envelope
signed by the publisher, every envelope (plus the publisher's key-set chain and
any attestations) is appended with one ``add_many``, and each bundle gets its
inclusion proof against the log's latest (witnessed) checkpoint.

The log is anything with the narrow :class:`LogWriter` interface: an
:class:`overt.log.Log` directory, or :class:`HTTPLogWriter` around a log
server's :class:`overt.log.client.LogClient`.

Bundle files are written with a temporary file (random name, created
``O_EXCL | O_NOFOLLOW``: nothing planted beside it is written through) and
``os.replace``, but without fsync: a bundle is derived data (the entry is durable in the log, and the proof
can be fetched again), so losing one to a crash costs a re-run, not evidence.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from overt.errors import ConfigError, FormatError, LogError, NotFoundError, OvertError
from overt.formats.checkpoint import parse_checkpoint
from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, format_envelope, sign_envelope
from overt.formats.note import parse_note
from overt.formats.proof import TlogProof
from overt.formats.statement import Predicate, format_statement, make_statement
from overt.log.fs import atomic_write
from overt.publish.bundle import Bundle, ConsistencyProof, LoggedEntry, format_bundle
from overt.publish.keys import PublisherSigner

if TYPE_CHECKING:
    from overt.log.log import Log

__all__ = [
    "HTTPLogWriter",
    "KeySetLog",
    "KeySetLogWriter",
    "LogWriter",
    "Publication",
    "QuorumMissingError",
    "keyset_checkpoint",
    "logged_keysets",
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


class KeySetLog(Protocol):
    """What publishing needs from the publisher's key-set log (docs/adr/0012)."""

    def add_many(self, entries: Sequence[bytes]) -> list[int]: ...

    def fresh_checkpoint(self) -> bytes:
        """The newest checkpoint, cosigned by the witness quorum as recently as the log can."""
        ...


class KeySetLogWriter(LogWriter, KeySetLog, Protocol):
    """What :func:`open_log_writer` gives: a log that can serve as either."""


class _Client(Protocol):
    source: Any  # a TileSource (entry bundles, for logged_keysets)

    def sequence(self, entry: bytes) -> int: ...

    def checkpoint(self) -> bytes: ...

    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...

    def consistency_proof(self, old: int, new: int) -> list[bytes]: ...


class QuorumMissingError(LogError):
    """The log did not publish a checkpoint covering the entries in time: its witness
    quorum is not met. The entries are durable; re-running once the witnesses are
    back finds them (deduplicated) and completes."""

    def __init__(
        self,
        url: str,
        index: int,
        seconds: float | None,
        up: Sequence[str],
        down: Sequence[str],
    ) -> None:
        self.index, self.up, self.down = index, tuple(up), tuple(down)
        if up or down:
            who = (
                f"witnesses answering: {', '.join(up) or 'none'};"
                f" not answering: {', '.join(down) or 'none'}"
            )
        else:
            who = "the log does not say which witnesses answer"
        # A log directory is witnessed once, synchronously: there is nothing to wait longer for.
        within = f" within {seconds:g} s" if seconds is not None else ""
        retry = ", or wait longer with --timeout SECONDS" if seconds is not None else ""
        super().__init__(
            f"witness quorum missing: {url} logged entry {index} durably but published no"
            f" checkpoint covering it{within} ({who}); re-run when the witnesses are back{retry}"
        )


class HTTPLogWriter:
    """A :class:`LogWriter` over a log server client.

    Each entry is sent with ``POST /add`` (durable on reply); then the published
    checkpoint is polled until it covers them, for at most ``timeout`` seconds
    (a log with witnesses publishes only once its quorum has cosigned).
    """

    def __init__(
        self,
        client: _Client,
        timeout: float = 30.0,
        url: str = "the log",
        metrics: Callable[[], str] | None = None,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.url = url
        self.metrics = metrics

    def add_many(self, entries: Sequence[bytes]) -> list[int]:
        indices = [self.client.sequence(e) for e in entries]
        if indices:
            self._wait_published(max(indices))
        return indices

    def _wait_published(self, index: int) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.05
        while True:
            note = self.client.checkpoint()
            if parse_checkpoint(parse_note(note).text).size > index:
                return
            if time.monotonic() >= deadline:
                up, down = self._witness_states()
                raise QuorumMissingError(self.url, index, self.timeout, up, down)
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)

    def _witness_states(self) -> tuple[list[str], list[str]]:
        """Witnesses that answered the log's last round, and those that did not (/metrics)."""
        if self.metrics is None:
            return [], []
        try:
            text = self.metrics()
        except OvertError:
            return [], []
        up: list[str] = []
        down: list[str] = []
        for m in _WITNESS_UP.finditer(text):
            (up if m.group(2) == "1" else down).append(m.group(1))
        return up, down

    def checkpoint(self) -> bytes:
        return self.client.checkpoint()

    def fresh_checkpoint(self) -> bytes:
        # A log server cosigns its checkpoint again every `refresh` seconds (60 by
        # default) when it is quiet: what it publishes is as fresh as it gets.
        return self.client.checkpoint()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.client.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self.client.consistency_proof(old, new)


_WITNESS_UP = re.compile(r'^overt_witness_up\{witness="([^"\n]{1,200})"\} ([01])$', re.MULTILINE)


@dataclass(frozen=True)
class Publication:
    """One artifact to publish: its name, sha256 (hex) and predicate."""

    name: str
    sha256: str
    predicate: Predicate | tuple[str, Mapping[str, Any]]


def make_entry(signer: PublisherSigner | Sequence[PublisherSigner], item: Publication) -> bytes:
    """The log entry of ``item``: its statement in a DSSE envelope signed by ``signer``
    (or by each of several: one key of each algorithm a hybrid key set requires).

    Raises:
        FormatError: a malformed digest or predicate.
    """
    return _signed_entry(signer, item)[0]


def _signed_entry(
    signer: PublisherSigner | Sequence[PublisherSigner], item: Publication
) -> tuple[bytes, Envelope]:
    """:func:`make_entry`'s bytes and the envelope they are the canonical form of."""
    signers = [signer] if isinstance(signer, PublisherSigner) else list(signer)
    statement = make_statement(item.name, item.sha256, item.predicate)
    envelope = sign_envelope(
        PAYLOAD_TYPE_IN_TOTO, format_statement(statement), [(s.keyid, s) for s in signers]
    )
    return format_envelope(envelope), envelope


def publish(
    log: LogWriter,
    signer: PublisherSigner | Sequence[PublisherSigner],
    items: Sequence[Publication],
    *,
    keysets: Sequence[bytes] = (),
    attestations: Sequence[bytes] = (),
    consistency_from: Sequence[int] = (),
    cosign: Callable[[bytes], bytes] | None = None,
    keyset_log: KeySetLog | None = None,
    mirrored: Callable[[int, int], bytes] | None = None,
) -> list[Bundle]:
    """Log ``items`` (and ``keysets``, ``attestations``) and return one bundle per item.

    ``consistency_from`` lists older tree sizes to embed consistency proofs from.
    ``cosign``, if given, is applied to the log's checkpoint before it goes in
    the bundles (e.g. to collect witness cosignatures when the log does not).
    ``keyset_log``, the publisher's key-set log: ``keysets`` (the whole chain) are
    made its entries (already logged ones are found again) and its freshly
    cosigned checkpoint goes in every bundle (:func:`keyset_checkpoint`).
    ``mirrored(first, end)``, if given, returns the log's checkpoint once it carries
    the mirror cosignatures for the new attestations and items ``[first, end)``
    (:func:`overt.log.mirroring.wait_for_mirrors`): the bundles are made on it, so
    an offline endpoint can check its mirror quorum.

    Raises:
        FormatError: a malformed item; LogError: the log refused or failed;
        NotFoundError: a ``consistency_from`` size beyond the log's tree;
        KeySetError: the key-set log holds other entries than ``keysets``.
    """
    keyset_note = b""
    if keyset_log is not None:
        keyset_note = keyset_checkpoint(keyset_log, keysets, cosign)
    signed = [_signed_entry(signer, item) for item in items]
    entries = [entry for entry, _ in signed]
    indices = log.add_many([*keysets, *attestations, *entries])
    held = indices[len(keysets) :]
    first, end = (min(held), max(held) + 1) if held else (0, 0)  # (0, 0): nothing to hold
    note = log.checkpoint() if mirrored is None else mirrored(first, end)
    if cosign is not None:
        note = cosign(note)
    size = parse_checkpoint(parse_note(note).text).size
    if any(i >= size for i in indices):
        raise LogError(f"the log's checkpoint (size {size}) does not cover the new entries yet")
    beyond = [old for old in consistency_from if not 0 < old <= size]
    if beyond:
        raise NotFoundError(
            f"no consistency proof from size {beyond[0]}: the log's tree has size {size}"
        )
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
        if old < size
    )
    bundles = []
    for parsed, index in zip(signed, indices[k + a :], strict=True):
        proof = TlogProof(index, tuple(log.inclusion_proof(index, size)), note)
        bundles.append(
            Bundle(
                parsed[0],
                proof,
                logged_keysets,
                logged_atts,
                consistency,
                # format_bundle writes the envelope it was made from, not parsed again.
                parsed=parsed,
                keyset_checkpoint=keyset_note,
            )
        )
    return bundles


def keyset_checkpoint(
    log: KeySetLog, chain: Sequence[bytes], cosign: Callable[[bytes], bytes] | None = None
) -> bytes:
    """Make ``chain`` (every key-set entry, oldest first) the entries of the key-set log,
    and return its freshly cosigned checkpoint, which must commit to exactly them.

    Entries already logged are found again (logs deduplicate), so this is also how a
    key set logged only in the main log reaches the key-set log.

    Raises:
        KeySetError: the key-set log holds other entries, or more (the chain is
            behind the log: publish with the publisher's current chain).
        LogError: the log failed, or its witness quorum did not cosign.
    """
    from overt.publish.keyset import KeySetError

    indices = log.add_many(chain)
    if indices != list(range(len(chain))):
        raise KeySetError(
            f"the key-set log holds other entries than this chain (its key sets landed at"
            f" indices {indices}, not 0..{len(chain) - 1}): a key-set log holds one"
            f" publisher's chain and nothing else"
        )
    note = log.fresh_checkpoint()
    if cosign is not None:
        note = cosign(note)
    size = parse_checkpoint(parse_note(note).text).size
    if size != len(chain):
        raise KeySetError(
            f"the key-set log holds {size} key set(s), this chain {len(chain)}: the chain is"
            f" behind the log; use the publisher's current chain"
        )
    return note


@contextlib.contextmanager
def open_log_writer(
    url_or_dir: str, token: str | None = None, timeout: float = 30.0
) -> Iterator[KeySetLogWriter]:
    """A :class:`LogWriter` for a log server URL (token: argument or ``OVERT_LOG_TOKEN``)
    or a log directory (whose appends are witnessed at once if it has a witness policy).

    ``timeout``: seconds a server log may take to publish a checkpoint covering
    the new entries (its witness quorum cosigning) before :class:`QuorumMissingError`.

    Raises:
        ConfigError: no token for a URL, or the directory is not a log;
        LogLockedError: the directory is in use.
    """
    token = token or os.environ.get("OVERT_LOG_TOKEN")
    if "://" in url_or_dir:
        if not token:
            raise ConfigError(
                f"no write token for {url_or_dir}: pass --token or set OVERT_LOG_TOKEN"
                " (the log's operator prints it with `overt log token LOG_DIR`)"
            )
        from overt.log.client import LogClient

        with LogClient(url_or_dir, token, timeout=max(timeout, 30.0)) as client:
            yield HTTPLogWriter(
                _Unauthorized(client, url_or_dir),
                timeout,
                url_or_dir,
                metrics=lambda: _read_metrics(client.http, url_or_dir),
            )
        return
    from overt.log.log import Log

    log = Log.open(url_or_dir)
    try:
        yield _WitnessedLog(log)
    finally:
        log.close()


#: /metrics is a few lines per witness; a reply larger than this is not read further.
_METRICS_LIMIT = 64 * 1024


def _read_metrics(http: Any, url: str) -> str:
    """GET ``url``/metrics, at most :data:`_METRICS_LIMIT` bytes, within a deadline.

    Raises:
        LogError: no reply, a status other than 200, or a reply above the limit.
    """
    from overt._http import fetch

    reply = fetch(http, "GET", f"{url.rstrip('/')}/metrics", _METRICS_LIMIT, LogError)
    if reply.status != 200:
        raise LogError(f"GET {url}/metrics: HTTP {reply.status}")
    return reply.content.decode("utf-8", "replace")


class _Unauthorized:
    """A LogClient whose 401 says what to do about it (the server's reply is a bare status)."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.source = client.source
        self.url = url

    def sequence(self, entry: bytes) -> int:
        try:
            index: int = self.client.sequence(entry)
        except LogError as err:
            if ": HTTP 401" in str(err):
                raise ConfigError(
                    f"{self.url} refused the write token (HTTP 401): pass the log's token with"
                    " --token or OVERT_LOG_TOKEN (its operator prints it with"
                    " `overt log token LOG_DIR`)"
                ) from err
            raise
        return index

    def checkpoint(self) -> bytes:
        return self.client.checkpoint()  # type: ignore[no-any-return]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.client.inclusion_proof(index, size)  # type: ignore[no-any-return]

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self.client.consistency_proof(old, new)  # type: ignore[no-any-return]


class _WitnessedLog:
    """A log directory whose appends are witnessed at once (if it has a witness policy)."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def add_many(self, entries: Sequence[bytes]) -> list[int]:
        indices = self.log.add_many(entries)
        result = self.log.witness()
        if result is not None and indices and self.log.published_size <= max(indices):
            assert self.log.policy is not None
            down = [w.name for w in self.log.policy.witnesses if w.name not in result.cosigned_by]
            raise QuorumMissingError(
                str(self.log.directory), max(indices), None, result.cosigned_by, down
            )
        return indices

    def checkpoint(self) -> bytes:
        return self.log.checkpoint()

    def fresh_checkpoint(self) -> bytes:
        result = self.log.witness(refresh=True)
        if result is not None and not result.published:
            assert self.log.policy is not None
            down = [w.name for w in self.log.policy.witnesses if w.name not in result.cosigned_by]
            raise QuorumMissingError(
                str(self.log.directory), self.log.size - 1, None, result.cosigned_by, down
            )
        return self.log.checkpoint()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.log.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self.log.consistency_proof(old, new)


def logged_keysets(log: LogWriter, cache: Path | None = None) -> list[tuple[int, bytes]]:
    """(index, entry) of every key-set statement in the log's published tree.

    For :func:`overt.publish.keyset.check_chain_against_log`. Reads the entry bundles
    (a writer of another kind yields nothing). With ``cache``, a small JSON file
    remembers, per log origin, the tree size scanned and the key sets found, so the
    next call reads only the bundles added since: the log is append-only, and the
    cache is the publisher's own file.

    The bytes are not verified: a log that hides a key set only takes this check's
    power away, it cannot make a bundle pass an endpoint's own verification.

    Raises:
        LogError, FormatError: an entry bundle cannot be read.
    """
    from overt.formats import tiles
    from overt.formats.dsse import parse_envelope

    if isinstance(log, _WitnessedLog):
        read: Callable[[int, int], bytes] = log.log.read_bundle
    elif isinstance(log, HTTPLogWriter):
        source = log.client.source
        read = lambda n, w: source.read(tiles.entries_path(n, w))  # noqa: E731
    else:
        return []
    checkpoint = parse_checkpoint(parse_note(log.checkpoint()).text)
    size = checkpoint.size
    cached = _read_scan_cache(cache).get(checkpoint.origin) if cache is not None else None
    start = 0
    found: list[tuple[int, bytes]] = []
    if cached is not None and cached[0] <= size:
        start, found = cached
    for n in range(start // tiles.TILE_WIDTH, (size + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH):
        width = min(tiles.TILE_WIDTH, size - n * tiles.TILE_WIDTH)
        for i, entry in enumerate(tiles.parse_entry_bundle(read(n, width), width)):
            index = n * tiles.TILE_WIDTH + i
            if index < start or not entry.startswith(b"{"):
                continue
            try:
                payload = parse_envelope(entry).payload
            except FormatError:
                continue
            if _KEY_SET_TYPE in payload:
                found.append((index, entry))
    if cache is not None and size > start:
        _write_scan_cache(cache, checkpoint.origin, size, found)
    return found


def _read_scan_cache(path: Path) -> dict[str, tuple[int, list[tuple[int, bytes]]]]:
    """origin -> (size scanned, key sets found); an unreadable cache is an empty one."""
    import base64
    import json

    try:
        doc = json.loads(path.read_bytes())
        return {
            origin: (int(v["size"]), [(int(i), base64.b64decode(e)) for i, e in v["keysets"]])
            for origin, v in doc["logs"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # a cache only saves reading: rebuild it


def _write_scan_cache(
    path: Path, origin: str, size: int, found: Sequence[tuple[int, bytes]]
) -> None:
    import base64
    import json

    logs = {
        o: {"size": s, "keysets": [[i, base64.b64encode(e).decode()] for i, e in f]}
        for o, (s, f) in _read_scan_cache(path).items()
    }
    logs[origin] = {"size": size, "keysets": [[i, base64.b64encode(e).decode()] for i, e in found]}
    with contextlib.suppress(OSError):  # not written: the next publish reads the log again
        atomic_write(path, json.dumps({"logs": logs}, sort_keys=True).encode(), sync=False)


# A cheap filter before the full parse (KEY_SET, the predicate type, holds it).
_KEY_SET_TYPE = b"key-set"


def write_bundle(path: Path, bundle: Bundle) -> None:
    """Write ``bundle`` to ``path`` atomically (temp file and rename; see the module notes).

    Raises:
        ConfigError: the file cannot be written.
    """
    data = format_bundle(bundle)
    try:
        atomic_write(path, data, sync=False)
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
