"""Feeding a mirror (c2sp.org/tlog-mirror) and reading what it holds.

:class:`MirrorClient` speaks the submission API of one mirror (one keep-alive
connection); :class:`MirrorPusher` is the *mirror client* of the spec: it takes
a log's published checkpoint and tiles from any tile source (a log directory,
or a log's URL) and brings the mirror up to that checkpoint::

    with MirrorPusher(open_source("http://127.0.0.1:8080"), log_vkey,
                      MirrorClient("http://127.0.0.1:8095")) as pusher:
        note = pusher.push()   # the log's checkpoint with the mirror's cosignature

One :meth:`MirrorPusher.push`:

1. reads the log's published checkpoint (its signature checked with the log key);
2. ``add-checkpoint`` with a consistency proof from the mirror's pending size
   (learned from its 409 reply, as for a witness);
3. ``add-entries`` from the mirror's next entry (learned from its 409/202
   mirror-info replies) to the checkpoint's size, in requests of at most 32
   packages (8192 entries), gzip-compressed, each package with its subtree
   consistency proof computed from the log's tiles;
4. returns the checkpoint with the mirror's cosignature (checked when the
   mirror's key is given).

A mirror that was down is caught up by the next push: everything it misses is
sent from where it stands. :meth:`MirrorPusher.follow` pushes every
``interval`` seconds, retrying with back-off while the mirror is unreachable.
Failures are :class:`~overt.mirror.errors.MirrorError` (or the witness errors
of ``add-checkpoint``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from overt._http import fetch
from overt.errors import FormatError, LogError, OvertError
from overt.formats import tiles
from overt.formats.checkpoint import open_checkpoint, parse_checkpoint
from overt.formats.merkle import consistency_proof
from overt.formats.mirror import (
    CONTENT_TYPE_INFO,
    REQUEST_PACKAGES,
    EntryPackage,
    MirrorInfo,
    UploadHeader,
    format_package,
    format_upload_header,
    package_count,
    package_range,
    parse_mirror_info,
)
from overt.formats.note import MAX_NOTE_SIZE, Verifier, parse_note
from overt.formats.strict import parse_decimal
from overt.formats.subtree import subtree_consistency_proof
from overt.formats.witness import (
    parse_cosignature_lines,
)
from overt.log.client import TileSource
from overt.mirror.errors import (
    MirrorConflictError,
    MirrorError,
    MirrorRequestError,
    MirrorUnavailableError,
    MirrorVerificationError,
    UnknownMirrorLogError,
)
from overt.mirror.store import origin_hash
from overt.witness.client import WitnessClient
from overt.witness.errors import (
    WitnessConflictError,
    WitnessError,
)

__all__ = ["MirrorClient", "MirrorPusher", "PushResult", "Uploaded", "feed_mirrors"]

_logger = logging.getLogger("overt.mirror.push")

_MAX_REPLY = 64 * 1024
#: add-entries requests a pusher keeps in flight.
_PIPELINE = 2


@dataclass(frozen=True)
class Uploaded:
    """The outcome of one ``add-entries`` request: done (``lines``: the mirror holds
    everything up to ``size``) or not yet (``info``)."""

    lines: bytes | None = None
    info: MirrorInfo | None = None
    size: int | None = None


class MirrorClient:
    """One mirror, at ``url`` (its submission and monitoring prefix)."""

    def __init__(
        self, url: str, timeout: float = 30.0, *, client: httpx.Client | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self._client = client or httpx.Client(timeout=timeout, headers={"user-agent": "overt"})
        self._witness = WitnessClient(self.url, client=self._client)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> MirrorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> None:
        """Makes ``checkpoint`` the mirror's pending checkpoint for its log (as a witness's
        ``add-checkpoint``, without a cosignature in the reply).

        Raises:
            WitnessConflictError: 409; ``.size`` is the mirror's pending size.
            WitnessRequestError, WitnessSignatureError, UnknownLogError,
                WitnessConsistencyError: 400, 403, 404, 422.
            WitnessUnavailableError: no reply, a timeout, another status.
        """
        self._witness.add_checkpoint(old_size, proof, checkpoint, cosigns=False)

    def add_entries(
        self, header: UploadHeader, packages: Sequence[bytes], *, compress: bool = True
    ) -> Uploaded:
        """Uploads formatted packages (a prefix of the canonical sequence from ``header``).

        Returns :class:`Uploaded` with the mirror's cosignature lines (200) or its
        mirror-info (202: send the rest from ``info.next_entry``).

        Raises:
            MirrorConflictError: 409 (``.info``: retry with its size and next entry).
            MirrorRequestError, UnknownMirrorLogError, MirrorVerificationError: 400, 404, 422.
            MirrorUnavailableError: no reply, a timeout, another status, or a malformed reply.
        """
        body = format_upload_header(header) + b"".join(packages)
        headers = {"content-type": "application/octet-stream"}
        if compress:
            packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            body = packer.compress(body) + packer.flush()
            headers["content-encoding"] = "gzip"
        url = f"{self.url}/add-entries"
        response = fetch(
            self._client,
            "POST",
            url,
            _MAX_REPLY,
            MirrorUnavailableError,
            content=body,
            headers=headers,
        )
        status = response.status
        if status == 200:
            try:
                parse_cosignature_lines(response.content)
            except FormatError as err:
                raise MirrorUnavailableError(f"POST {url}: malformed reply: {err}", 200) from err
            return Uploaded(lines=response.content, size=header.upload_end)
        if status in (202, 409):
            ctype = response.headers.get("content-type", "").split(";")[0].strip()
            try:
                if ctype != CONTENT_TYPE_INFO:
                    raise FormatError(f"{status} reply", f"content type {ctype!r}")
                info = parse_mirror_info(response.content)
            except FormatError as err:
                raise MirrorUnavailableError(f"POST {url}: {status}: {err}", status) from err
            if status == 202:
                return Uploaded(info=info)
            raise MirrorConflictError(info, f"{url}: 409: {response.reason}")
        if status == 404:
            raise UnknownMirrorLogError(header.origin, f"{url}: 404: {response.reason}")
        if status == 400:
            raise MirrorRequestError(f"{url}: 400: {response.reason}")
        if status == 422:
            raise MirrorVerificationError(f"{url}: 422: {response.reason}")
        raise MirrorUnavailableError(f"POST {url}: HTTP {status}: {response.reason}", status)

    def checkpoint(self, origin: str) -> bytes | None:
        """The mirror checkpoint for ``origin`` (unverified), or None before the first.

        Raises:
            MirrorUnavailableError: no reply, or a status other than 200/404.
        """
        url = f"{self.url}/{origin_hash(origin)}/checkpoint"
        response = fetch(self._client, "GET", url, MAX_NOTE_SIZE, MirrorUnavailableError)
        if response.status == 404:
            return None
        if response.status != 200:
            raise MirrorUnavailableError(f"GET {url}: HTTP {response.status}", response.status)
        return response.content

    def min_index(self, origin: str) -> int:
        """The mirror's minimum index for ``origin``.

        Raises:
            MirrorUnavailableError: no reply, another status, or a malformed body.
        """
        url = f"{self.url}/{origin_hash(origin)}/min-index"
        response = fetch(self._client, "GET", url, 64, MirrorUnavailableError)
        if response.status != 200:
            raise MirrorUnavailableError(f"GET {url}: HTTP {response.status}", response.status)
        text = response.content
        try:
            if not text.endswith(b"\n"):
                raise FormatError("min-index", "no final newline", text)
            return parse_decimal(text[:-1], "min-index")
        except FormatError as err:
            raise MirrorUnavailableError(f"GET {url}: {err}", 200) from err


@dataclass(frozen=True)
class PushResult:
    """One push: the checkpoint size reached, entries sent, and the cosigned checkpoint."""

    size: int
    sent: int
    note: bytes


class MirrorPusher:
    """Brings one mirror up to a log's published checkpoint (see the module docstring).

    ``source`` reads the log's tiles; ``log_key`` verifies its checkpoints;
    ``mirror_key``, if given, is the mirror's cosignature key: its cosignature is
    then checked before :meth:`push` returns.
    """

    def __init__(
        self,
        source: TileSource,
        log_key: Verifier,
        client: MirrorClient,
        *,
        mirror_key: Verifier | None = None,
        compress: bool = True,
    ) -> None:
        self.source = source
        self.log_key = log_key
        self.client = client
        self.mirror_key = mirror_key
        self.compress = compress
        self.pending_size = 0  # the mirror's pending size, as far as we know
        self.next_entry = 0  # the mirror's next entry, as far as we know
        self._cache = tiles.TileCache(1024)

    def close(self) -> None:
        self.client.close()
        self.source.close()

    def __enter__(self) -> MirrorPusher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get_tile(self, size: int) -> Callable[[int, int, int], bytes]:
        def get_tile(level: int, index: int, width: int) -> bytes:
            if tiles.tile_width(level, index, size) < width:
                raise LogError(f"tile {level}/{index} width {width} is beyond size {size}")
            return self.source.read(tiles.tile_path(level, index, width))

        return get_tile

    def push(self) -> PushResult:
        """Bring the mirror up to the log's published checkpoint; returns the cosigned note.

        Raises:
            MirrorError, WitnessError: the mirror refused, or is unreachable.
            LogError, VerificationError: the log's checkpoint or tiles cannot be read
                or do not verify.
        """
        note = self.source.read("checkpoint")
        checkpoint = open_checkpoint(note, self.log_key).checkpoint
        size, origin = checkpoint.size, checkpoint.origin
        subtree = tiles.subtree_from_tiles(self._get_tile(size), size, self._cache)
        self._add_checkpoint(note, size, subtree)
        if self.next_entry == 0:
            self.next_entry = self._mirror_size(origin)
        start, sent, conflicts = min(self.next_entry, size), 0, 0
        # Two requests in flight: the mirror authenticates the next one while it stores
        # this one (it waits for the first rather than refusing the second). Each starts
        # where the one before it ends, as it does unless a request fails or another
        # client moved the mirror: then what is in flight is let finish, and the upload
        # goes on from the next entry the mirror reports.
        with ThreadPoolExecutor(_PIPELINE, thread_name_prefix="overt-push") as pool:
            while True:
                inflight: deque[tuple[int, int, Future[Uploaded]]] = deque()
                nxt = start
                try:
                    while True:
                        while len(inflight) < _PIPELINE and (nxt < size or not inflight):
                            packages = self._packages(nxt, size, subtree)
                            end = (
                                package_range(nxt, size, len(packages) - 1).end if packages else nxt
                            )
                            header = UploadHeader(origin, nxt, size)
                            future = pool.submit(
                                self.client.add_entries, header, packages, compress=self.compress
                            )
                            inflight.append((nxt, end, future))
                            nxt = end
                        first, end, future = inflight.popleft()
                        try:
                            done = future.result()
                        except MirrorError as err:
                            _logger.debug("add-entries [%d, %d): %s", first, end, err)
                            raise
                        _logger.debug("add-entries [%d, %d): %s", first, end, done.info or "done")
                        if done.lines is not None:
                            sent += size - first
                            self.next_entry = max(self.next_entry, size)
                            return PushResult(size, sent, self._cosigned(note, done.lines))
                        assert done.info is not None
                        if done.info.next_entry <= first:
                            raise MirrorUnavailableError(
                                f"{self.client.url}: 202 without progress at {first}"
                            )
                        sent += min(done.info.next_entry, size) - first
                        self.next_entry = min(done.info.next_entry, size)
                        conflicts = 0
                        if done.info.next_entry != end:
                            break  # not where the next request starts: start over from it
                except MirrorConflictError as err:
                    # Requests still in flight may have stored more meanwhile.
                    reached = max(err.info.next_entry, _drain(inflight))
                    conflicts = conflicts + 1 if reached <= start else 0
                    if conflicts > 3:
                        raise
                    self.next_entry = reached
                    if err.info.size != size:
                        # Our size is no longer pending there: make it pending again.
                        self.pending_size = err.info.size
                        self._add_checkpoint(note, size, subtree)
                    start = min(reached, size)
                    continue
                except BaseException:
                    _drain(inflight)
                    raise
                self.next_entry = max(self.next_entry, _drain(inflight))
                start = min(self.next_entry, size)

    def _packages(self, start: int, size: int, subtree: Callable[[int, int], bytes]) -> list[bytes]:
        """The first packages (at most 32) of the canonical sequence of ``[start, size)``."""
        chunk = min(package_count(start, size), REQUEST_PACKAGES)
        return [self._package(start, size, i, subtree) for i in range(chunk)]

    def _mirror_size(self, origin: str) -> int:
        """The size of the mirror's checkpoint: where to start uploading (a hint, so unverified;
        the mirror's 409 corrects it). 0 if there is none or it cannot be read."""
        try:
            note = self.client.checkpoint(origin)
            return 0 if note is None else parse_checkpoint(parse_note(note).text).size
        except (MirrorError, FormatError):
            return 0

    def _add_checkpoint(self, note: bytes, size: int, subtree: Callable[[int, int], bytes]) -> None:
        """Make ``note`` (of ``size``) the mirror's pending checkpoint, from its pending size.

        Raises:
            MirrorConflictError: the mirror's pending checkpoint is past ``size``
                (a newer copy of the log fed it): nothing to do from this copy.
            WitnessError: the mirror refused, or is unreachable.
        """
        old = self.pending_size
        for _ in range(3):
            if old > size:
                self.pending_size = old
                raise MirrorConflictError(
                    MirrorInfo(old, self.next_entry),
                    f"{self.client.url}: pending size {old} is past the log's {size}",
                )
            proof = [] if old in (0, size) else consistency_proof(old, size, subtree)
            try:
                self.client.add_checkpoint(old, proof, note)
            except WitnessConflictError as err:
                old = err.size
                continue
            self.pending_size = size
            return
        raise MirrorUnavailableError(f"{self.client.url}: the pending size keeps moving")

    def _package(
        self, start: int, size: int, i: int, subtree: Callable[[int, int], bytes]
    ) -> bytes:
        rng = package_range(start, size, i)
        n = rng.subtree_start // tiles.TILE_WIDTH
        width = min(tiles.TILE_WIDTH, size - n * tiles.TILE_WIDTH)
        raw = self.source.read(tiles.entries_path(n, width))
        proof = subtree_consistency_proof(rng.subtree_start, rng.end, size, subtree)
        lo = rng.start - rng.subtree_start
        if lo == 0 and rng.count == width:
            # A whole bundle: its bytes are the package's entries, length-prefixed alike.
            # (Not checked here: the mirror authenticates every entry, and refuses a
            # damaged bundle with 400 or 422.)
            return raw + bytes((len(proof),)) + b"".join(proof)
        try:
            bundle = tiles.parse_entry_bundle(raw, width)
        except FormatError as err:
            raise LogError(f"entry bundle {n} of the log: {err}") from err
        entries = tuple(bundle[lo : lo + rng.count])
        return format_package(EntryPackage(entries, tuple(proof)))

    def _cosigned(self, note: bytes, lines: bytes) -> bytes:
        cosigned = note + lines
        if self.mirror_key is not None:
            text = parse_note(note).text
            key = self.mirror_key
            mine = [
                s
                for s in parse_cosignature_lines(lines)
                if (s.name, s.key_id) == (key.name, key.key_id)
            ]
            if not mine:
                raise MirrorUnavailableError(
                    f"{self.client.url}: no cosignature by {key.name}", 200
                )
            for sig in mine:
                key.verify(text, sig.signature)
        return cosigned

    def follow(
        self,
        interval: float = 1.0,
        *,
        stop: Callable[[], bool] = lambda: False,
        on_push: Callable[[PushResult], None] | None = None,
        max_backoff: float = 30.0,
    ) -> None:
        """Push every ``interval`` seconds until ``stop()``; back off while the mirror is down."""
        backoff = interval
        last = -1
        while not stop():
            try:
                result = self.push()
            except (MirrorError, WitnessError, OvertError) as err:
                _logger.warning("mirror %s: %s (retrying in %.1f s)", self.client.url, err, backoff)
                _sleep(backoff, stop)
                backoff = min(max_backoff, backoff * 2)
                continue
            backoff = interval
            if on_push is not None and result.size != last:
                on_push(result)
            last = result.size
            _sleep(interval, stop)


def feed_mirrors(
    log_dir: Path,
    urls: Sequence[str],
    interval: float = 1.0,
    *,
    keys: Mapping[str, Verifier] | None = None,
    cosigned: Callable[[bytes, Verifier], object] | None = None,
) -> Callable[[], None]:
    """Keep each mirror at ``urls`` up to the log in ``log_dir`` (its published checkpoint
    and tiles, its ``log.vkey``), each from a thread of its own (:meth:`MirrorPusher.follow`);
    returns the function that stops them. What ``overt log serve --mirror URL`` runs.

    ``keys`` maps a URL to that mirror's key: its cosignature is then checked, and
    passed with the key to ``cosigned`` (the log adds it to its published checkpoint:
    :meth:`overt.log.log.Log.add_cosignatures`) after each push that moved the mirror.

    Raises:
        ConfigError, FormatError: the log's verifier key cannot be read.
    """
    from overt.formats.note import parse_vkey
    from overt.log._files import read_vkey
    from overt.log.client import DirectorySource

    log_key = parse_vkey(read_vkey(log_dir))
    stop = threading.Event()
    threads = []
    for url in urls:
        key = (keys or {}).get(url)
        pusher = MirrorPusher(DirectorySource(log_dir), log_key, MirrorClient(url), mirror_key=key)
        on_push = None
        if key is not None and cosigned is not None:

            def on_push(result: PushResult, key: Verifier = key, url: str = url) -> None:
                try:
                    assert cosigned is not None
                    cosigned(result.note, key)
                except OvertError as err:  # the log moved on, or could not write: next push
                    _logger.warning("mirror %s: cosignature not kept: %s", url, err)

        def run(
            pusher: MirrorPusher = pusher, on_push: Callable[..., None] | None = on_push
        ) -> None:
            with pusher:
                pusher.follow(interval, stop=stop.is_set, on_push=on_push)

        thread = threading.Thread(target=run, name=f"overt-mirror-feed {url}", daemon=True)
        thread.start()
        threads.append(thread)

    def stop_all() -> None:
        stop.set()
        for thread in threads:
            thread.join(30)

    return stop_all


def _drain(inflight: deque[tuple[int, int, Future[Uploaded]]]) -> int:
    """Let the requests still in flight finish; returns the furthest next entry they
    reported (0 if none did)."""
    reached = 0
    for first, _, future in inflight:
        with contextlib.suppress(Exception):
            done = future.result()
            if done.info is not None:
                reached = max(reached, done.info.next_entry)
            else:  # done: every entry up to the size is held
                reached = max(reached, done.size if done.size is not None else first)
    inflight.clear()
    return reached


def _sleep(seconds: float, stop: Callable[[], bool]) -> None:
    end = time.monotonic() + seconds
    while not stop() and time.monotonic() < end:
        time.sleep(min(0.05, end - time.monotonic()) if end > time.monotonic() else 0)
