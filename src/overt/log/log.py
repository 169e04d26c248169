"""The tiled transparency log: sequencing, integration, checkpoints, proofs.

A :class:`Log` owns one directory (an exclusive ``flock`` keeps a second
process out)::

    DIR/log.json       origin and format version
    DIR/log.skey       the log's signed-note private key (0600)
    DIR/log.vkey       its verifier key
    DIR/token          bearer token for ``POST /add`` (0600)
    DIR/index.db       SQLite: dedup index, derived from the bundles (overt.log.index)
    DIR/journal/       sequenced entries not yet integrated (overt.log.journal)
    DIR/checkpoint     the latest checkpoint the log signed (the integration truth)
    DIR/witnesses.policy  optional c2sp.org/tlog-policy: witnesses and quorum (overt.log.witnessing)
    DIR/tiles/         checkpoint, tiles and entry bundles as c2sp.org/tlog-tiles serves them

``log.json`` may move two of them: ``"tiles"`` (a ``file:///`` or ``s3://``
URL, :func:`overt.log.stores.open_tiles`) and ``"index"`` (a ``sqlite:///``
or ``postgresql://`` URL, migrated on open by :func:`overt.db.upgrade`). The
storage seam is :mod:`overt.log.backend`; the integration step itself is pure
(:mod:`overt.log.integration`).

Appending a batch (``add_many``) is one pass of *integration*:

1. leaf hashes are computed, duplicates (in the log or in the batch) are
   resolved to their existing index, the rest get consecutive indices;
2. the new entry bundles and every tile they change (full and partial, all
   levels) are written and fsynced (``TileStore.write_batch``);
3. a checkpoint for the new size is signed and atomically written to
   ``DIR/checkpoint``; it is published (``DIR/tiles/checkpoint``) at once when
   the log has no witnesses, and once the witness quorum cosigned it when it
   has (``overt.log.witnessing``);
4. after step 3, a background thread commits the batch's leaf hashes to the
   dedup index (``overt.log.index``); until that commit returns they are
   answered from memory (``_unindexed``).

Indices are returned after step 3, so the signed checkpoint is the truth after
a crash: an entry is acknowledged if and only if a signed checkpoint covers it
(or, on the ``sequence`` path below, the journal holds it), and its bytes are
in durable entry bundles. The dedup index is derived data that may lag: on
open, entries between the index's size and the checkpoint are re-read from
their bundles and indexed again (anything beyond the checkpoint is dropped).
Stray tiles beyond the signed size are never served and are overwritten by
later batches. A checkpoint only commits to tiles that are already durable,
and the tree never forks.

Storage failures (disk full, I/O errors, a database that cannot commit) are
raised as :class:`~overt.errors.LogError` and never lose or move an
acknowledged entry. The in-memory state only advances after the write that
makes it durable has returned. After a failed write the log re-reads the
checkpoint and tiles (disk may be ahead of memory: a checkpoint renamed into
place before a later step failed) and adopts them. Staged entries stay
staged, the next index stays where it was. If that re-read fails too, the log
refuses writes until it succeeds; the next call retries it. A failed index
commit only leaves hashes in memory; a later commit catches up from there.
So indices never move and no entry is logged twice.

The index is off the critical path because random-key B-tree inserts are the
slowest step of a bulk append; running them behind the next batch's hashing
and writing roughly halves the time an append waits.

Two ways in:

- ``add_many`` (library, ``overt log add``): integrates the batch directly and
  returns once a checkpoint covers it. Best for bulk appends.
- ``sequence`` + ``integrate`` (the HTTP server): ``sequence`` assigns indices
  and makes the entries durable in the journal (``overt.log.journal``, one
  fsync per batch) and returns at once; ``integrate`` later folds everything
  sequenced so far into tiles and a checkpoint. On open, journaled entries
  beyond the checkpoint are integrated before anything else happens.
"""

from __future__ import annotations

import bisect
import collections
import fcntl
import itertools
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, Protocol

from overt.errors import (
    ConfigError,
    EntryError,
    FormatError,
    LogError,
    LogLockedError,
    NotFoundError,
    PolicyError,
)
from overt.formats import merkle, tiles
from overt.formats.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint, sign_checkpoint
from overt.formats.keytypes import DEFAULT_ALGORITHM, Purpose, choose, generate
from overt.formats.note import (
    Note,
    Signer,
    Verifier,
    format_note,
    parse_note,
    parse_skey,
    parse_vkey,
)
from overt.formats.policy import Policy, parse_policy
from overt.formats.proof import TlogProof, format_proof
from overt.log._files import read_token, read_vkey
from overt.log.backend import CheckpointLock, TileBackend, read_edge
from overt.log.fs import CheckpointFile, TileStore, atomic_write, read_beneath
from overt.log.integration import Edge, Integration, integrate, root_of
from overt.log.journal import Journal, replay

if TYPE_CHECKING:
    from overt.log.index import DedupIndex
    from overt.log.witnessing import Round, Witnessing

__all__ = ["MAX_BATCH", "Log", "LogView", "ObjectReader", "check_entry", "read_token", "read_vkey"]

_logger = logging.getLogger("overt.log")

#: Entries integrated per pass by the server (``overt.log.server``) and a shared log's
#: integrator; ``add_many`` makes passes of up to _BULK_ENTRIES.
MAX_BATCH = 16384
#: ``add_many`` integrates a bulk add in passes of at most this many entries, and of at
#: most _BULK_BYTES of them. Each pass costs a checkpoint (signed, fsynced), a round of
#: tile fsyncs and one dedup-index transaction, which rewrites most of the index's
#: B-tree pages (random keys): four times MAX_BATCH measured ~20% less CPU per entry
#: (1 KiB entries); the byte cap keeps a pass of large entries to 128 MiB in memory.
_BULK_ENTRIES = 4 * MAX_BATCH
_BULK_BYTES = 128 << 20
#: Expanded tiles kept in memory for proof generation (~16 KiB each: 64 MiB).
TILE_CACHE = 4096
#: Batches whose dedup-index commit may still be running behind the appends.
_INDEX_LAG = 4
_FORMAT_VERSION = 1
_ORIGIN = re.compile(r"[\x21-\x2a\x2c-\x7e]{1,255}")  # printable ASCII, no space or '+'


def _lock(directory: Path) -> int:
    """Take the directory's writer lock. Raises LogLockedError, LogError."""
    try:
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise LogError(f"cannot open the lock file of {directory}: {err}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        os.close(fd)
        raise LogLockedError(
            f"log {directory} is in use by another process (is `overt log serve` running?)"
        ) from err
    return fd


def _config_url(directory: Path, config: object, key: str) -> str | None:
    """The URL log.json holds under ``key`` (None if absent). Raises ConfigError."""
    value = config.get(key) if isinstance(config, dict) else None
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{directory}/log.json: {key!r} must be a URL string")
    return value


def _tiles(directory: Path, config: object) -> TileBackend:
    """Where the log's tiles are: log.json's "tiles" URL, else DIR/tiles. Raises ConfigError."""
    from overt.log.stores import open_tiles

    url = _config_url(directory, config, "tiles")
    return TileStore(directory / "tiles") if url is None else open_tiles(url)


def _close_store(store: TileBackend) -> None:
    """Release a remote backend's connections and threads (a directory has none)."""
    close = getattr(store, "close", None)
    if close is not None:
        close()


def _parse_witness_policy(text: bytes) -> Policy:
    policy = parse_policy(text)
    if not policy.witnesses or policy.quorum is None:
        raise PolicyError("a log's witness policy needs witness lines and a quorum")
    return policy


def _keep_cosignatures(published: bytes, note: bytes, policy: Policy | None) -> bytes:
    """``note`` plus the signature lines of ``published`` by keys that are neither in ``note``
    nor the policy's witnesses (a round says which witnesses cosign now), when both are the
    same checkpoint text: the mirrors' (they were verified when ``published`` was)."""
    old, new = parse_note(published), parse_note(note)
    if old.text != new.text:
        return note
    skip = {(s.name, s.key_id) for s in new.signatures}
    if policy is not None:
        skip |= {(w.verifier.name, w.verifier.key_id) for w in policy.witnesses}
    extra = tuple(s for s in old.signatures if (s.name, s.key_id) not in skip)
    return format_note(Note(new.text, new.signatures + extra)) if extra else note


class _Pass(NamedTuple):
    """One planned pass of a bulk add (Log._plan_pass)."""

    indices: list[int]
    new_entries: list[bytes]
    new_hashes: list[bytes]
    edge: Edge  # the edge it integrates on
    step: Integration | None


def _leaf_hashes(entries: Sequence[bytes]) -> list[bytes]:
    return merkle.leaf_hashes(entries)


def _check_entries(entries: Sequence[bytes]) -> list[int]:
    """The running total of the entries' sizes, once each is known to be a valid entry.

    Raises EntryError for the first empty or oversized entry (:func:`check_entry`).
    """
    sizes = list(map(len, entries))  # C loops: a bulk add has ~10^5 entries
    if sizes and (min(sizes) < 1 or max(sizes) > tiles.MAX_ENTRY_SIZE):
        for entry in entries:
            check_entry(entry)
    return list(itertools.accumulate(sizes))


def _bulk_passes(entries: Sequence[bytes], ends: Sequence[int], size: int) -> list[Sequence[bytes]]:
    """``entries`` cut into passes of at most _BULK_ENTRIES entries and _BULK_BYTES bytes
    (``ends``: running total of their sizes) for a log of ``size``. A pass ends where a
    tile does (so no partial tile is written and rewritten by the next pass), unless
    less than a tile fits; duplicates, which take no index, may shift that. The first
    passes are smaller (MAX_BATCH, then twice as many, up to _BULK_ENTRIES): the first is
    planned before any write can start, each next one while the one before is written."""
    passes: list[Sequence[bytes]] = []
    start, done = 0, 0
    while start < len(entries):
        end = min(len(entries), start + min(_BULK_ENTRIES, MAX_BATCH << len(passes)))
        if ends[end - 1] - done > _BULK_BYTES:
            end = bisect.bisect_right(ends, done + _BULK_BYTES, start, end)
        if end < len(entries):
            aligned = end - (size + end) % tiles.TILE_WIDTH
            end = aligned if aligned > start else max(end, start + 1)
        passes.append(entries[start:end])
        done = ends[end - 1]
        start = end
    return passes


def _storage_error(err: BaseException, what: str = "storage failure") -> LogError | None:
    """``err`` as the LogError callers expect, if it is a storage failure; else None.

    OSError (disk full...) and LogError (the index wraps its database errors)
    are storage failures, as are malformed stored bytes (FormatError). Anything
    else is a bug and propagates as it is.
    """
    if isinstance(err, LogError):
        return err
    if isinstance(err, (OSError, FormatError)):
        return LogError(f"{what}: {err}")
    return None


class _Tree(NamedTuple):
    """The integrated tree as the latest signed checkpoint and its tiles hold it."""

    size: int
    partials: list[list[bytes]]
    bundle: list[bytes]
    root: bytes
    signed: tuple[bytes, int]
    published: tuple[bytes, int]


def check_entry(entry: bytes) -> None:
    """Raise EntryError unless 1 <= len(entry) <= tiles.MAX_ENTRY_SIZE."""
    if not entry:
        raise EntryError("empty entry: entries are 1 to 65535 bytes")
    if len(entry) > tiles.MAX_ENTRY_SIZE:
        raise EntryError(f"entry of {len(entry)} bytes is larger than the maximum of 65535")


class ObjectReader(Protocol):
    """Where the tiles are: ``read(path)`` returns what tlog-tiles serves at ``<prefix>/<path>``.

    :class:`overt.log.fs.TileStore` and every :class:`overt.log.client.TileSource`
    (a directory, an HTTP server) have it. Raises NotFoundError or LogError.
    """

    def read(self, relpath: str, /) -> bytes: ...


class _TreeReads:
    """Reading a published tree from its tiles: what :class:`Log` and :class:`LogView` share.

    ``read_tile`` and ``read_bundle`` are what a server may serve: only what the
    published checkpoint covers (tlog-tiles: a client never sees a tile of a
    tree it cannot verify). Proofs and ``entry`` reach ``_readable_size()``.
    """

    tile_cache: tiles.TileCache
    _reader: tiles.TileReader | None
    _published: tuple[bytes, int]

    def _read(self, relpath: str) -> bytes:
        """The object at ``relpath`` (a tile, a bundle, the checkpoint). Raises NotFoundError."""
        raise NotImplementedError

    def _readable_size(self) -> int:
        raise NotImplementedError

    def _integrated_size(self) -> int | None:
        """The signed (integrated) size if known: only for saying why a proof is missing."""
        raise NotImplementedError

    @property
    def published_size(self) -> int:
        """Size of the published checkpoint (the last witnessed one when witnesses are set)."""
        return self._published[1]

    def checkpoint(self) -> bytes:
        """The published checkpoint (a signed note, cosigned when witnesses are set)."""
        return self._published[0]

    def read_tile(self, level: int, index: int, width: int = tiles.TILE_WIDTH) -> bytes:
        """The bytes of a hash tile the published checkpoint covers. Raises NotFoundError."""
        return self._tile_within(level, index, width, self._published[1])

    def read_bundle(self, index: int, width: int = tiles.TILE_WIDTH) -> bytes:
        """The bytes of an entry bundle the published checkpoint covers. Raises NotFoundError."""
        return self._bundle_within(index, width, self._published[1])

    def _tile_within(self, level: int, index: int, width: int, size: int) -> bytes:
        path = tiles.tile_path(level, index, width)
        if tiles.tile_width(level, index, size) < width:
            raise NotFoundError(f"tile {path} is beyond the published tree (size {size})")
        data = self._read(path)
        if len(data) != width * merkle.HASH_SIZE:
            raise LogError(f"tile {path} is damaged")
        return data

    def _bundle_within(self, index: int, width: int, size: int) -> bytes:
        path = tiles.entries_path(index, width)
        if tiles.tile_width(0, index, size) < width:
            raise NotFoundError(f"bundle {path} is beyond the published tree (size {size})")
        return self._read(path)

    def entry(self, index: int) -> bytes:
        """The entry at ``index``. Raises NotFoundError, FormatError (a damaged bundle)."""
        size = self._readable_size()
        if not 0 <= index < size:
            raise NotFoundError(f"index {index} is not in the log (size {size})")
        bundle = index // tiles.TILE_WIDTH
        width = min(tiles.TILE_WIDTH, size - bundle * tiles.TILE_WIDTH)
        raw = self._bundle_within(bundle, width, size)
        return tiles.parse_entry_bundle(raw, width)[index % tiles.TILE_WIDTH]

    def _subtree(self, size: int) -> merkle.SubtreeHash:
        # Keep the reader of the latest size: it memoises the right edge of the tree.
        reader = self._reader
        if reader is None or reader.size != size:
            readable = self._readable_size()

            def get_tile(level: int, index: int, width: int) -> bytes:
                return self._tile_within(level, index, width, readable)

            reader = tiles.subtree_from_tiles(get_tile, size, self.tile_cache)
            self._reader = reader
        return reader

    def subtree_reader(self, size: int | None = None) -> merkle.SubtreeHash:
        """``MTH(D[lo:hi])`` from the tiles of the tree of ``size`` (default: published);
        see :mod:`overt.formats.merkle` for the ranges it answers (overt.log.subtrees)."""
        size = self._published[1] if size is None else size
        if not 0 <= size <= self._readable_size():
            raise NotFoundError(f"no tree of size {size} to read subtrees from")
        return self._subtree(size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 inclusion proof of ``index`` in the tree of ``size`` (default: published)."""
        size = self._published[1] if size is None else size
        if not 0 <= index < size <= self._readable_size():
            raise NotFoundError(f"no inclusion proof for index {index} in a tree of size {size}")
        return merkle.inclusion_proof(index, size, self._subtree(size))

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """RFC 6962 consistency proof between two tree sizes (default new: published)."""
        new = self._published[1] if new is None else new
        if not 0 < old <= new <= self._readable_size():
            raise NotFoundError(f"no consistency proof from size {old} to size {new}")
        return merkle.consistency_proof(old, new, self._subtree(new))

    def proof(self, index: int) -> bytes:
        """The entry's c2sp.org/tlog-proof@v1 against the published checkpoint.

        Raises:
            NotFoundError: the published checkpoint does not cover ``index``; the
                message says whether the entry is integrated but not yet witnessed.
        """
        note, size = self._published
        hashes = self._proof_hashes(index, size)
        return format_proof(TlogProof(index=index, hashes=tuple(hashes), checkpoint=note))

    def _proof_hashes(self, index: int, size: int) -> list[bytes]:
        if not 0 <= index < size:
            integrated = self._integrated_size()
            if integrated is not None and index < integrated:
                raise NotFoundError(
                    f"entry {index} is integrated but not yet covered by a witnessed checkpoint"
                    f" (published size {size}); retry after witnessing"
                )
            known = f"size {integrated}" if integrated is not None else f"published size {size}"
            raise NotFoundError(f"index {index} is not in the log ({known})")
        return self.inclusion_proof(index, size)


class Log(_TreeReads):
    """A durable, deduplicating, tiled Merkle log in one directory.

    Thread-safe: appends are serialised by an internal lock; proofs and reads
    may run concurrently with an append (they only read durable tiles).
    """

    def __init__(self, directory: Path, *, _lock_fd: int) -> None:
        self.directory = directory
        self._lock_fd = _lock_fd
        try:
            config = json.loads((directory / "log.json").read_text())
            self.origin: str = config["origin"]
            if config.get("version") != _FORMAT_VERSION:
                raise ConfigError(f"{directory}: unsupported log format {config.get('version')!r}")
            if config.get("shared") is True:
                # Its checkpoint and sequence are in the database (overt.log.shared).
                raise ConfigError(
                    f"{directory} is shared by several front ends: append with POST /add to"
                    " `overt log serve`, read with `overt log proof` or `overt log verify URL`"
                )
            self.signer: Signer = parse_skey((directory / "log.skey").read_text().strip())
            self.vkey: str = (directory / "log.vkey").read_text().strip()
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError(f"{directory} is not an overt log: {err}") from err
        self.verifier: Verifier = parse_vkey(self.vkey)
        self.policy: Policy | None = None
        self._witnessing: Witnessing | None = None
        policy_path = directory / "witnesses.policy"
        if policy_path.exists():
            try:
                policy_text = policy_path.read_bytes()
            except OSError as err:
                raise ConfigError(f"cannot read {policy_path}: {err}") from err
            self.policy = _parse_witness_policy(policy_text)
        # The storage seam (overt.log.backend): tiles and the published
        # checkpoint, and the signed checkpoint swapped by compare-and-swap.
        self.store: TileBackend = _tiles(directory, config)
        self.checkpoint_lock: CheckpointLock = CheckpointFile(directory / "checkpoint")
        # Imported here: SQLAlchemy is 0.2 s of start-up that `overt log vkey` does not need.
        from overt.log.index import DedupIndex

        index_url = _config_url(directory, config, "index")
        if index_url is None:
            self.index: DedupIndex = DedupIndex.sqlite(directory / "index.db")
        else:
            from overt.db import engine_from_url, upgrade

            engine = engine_from_url(index_url)
            try:
                upgrade(engine)
            except ConfigError:
                engine.dispose()
                raise
            self.index = DedupIndex(engine)
        # Lock order: _write_lock (integration) before _seq_lock (index assignment).
        self._write_lock = threading.Lock()
        self._seq_lock = threading.Lock()
        # Serializes replacing the published note (witness rounds, mirror cosignatures).
        self._publish_lock = threading.Lock()
        try:
            self.journal = Journal(directory / "journal")
        except OSError as err:
            self.index.close()
            raise LogError(f"cannot open the journal: {err}") from err
        # Sequenced entries not yet integrated: indices _size.._next-1, all in the journal.
        self._staged: list[bytes] = []
        self._staged_hashes: list[bytes] = []
        self._index_thread = ThreadPoolExecutor(1, thread_name_prefix="overt-index")
        self._hash_thread = ThreadPoolExecutor(1, thread_name_prefix="overt-hash")
        # Leaf hashes sequenced or integrated but not yet committed to the index;
        # the index holds every hash below _indexed.
        self._unindexed: dict[bytes, int] = {}
        self._unindexed_lock = threading.Lock()
        self._index_jobs: list[Future[None]] = []
        self._indexed = 0
        # Why memory may be behind disk (a failed write whose re-read failed too);
        # writes are refused until _recover succeeds.
        self._suspect: str | None = None
        # Expanded tiles kept warm for proof generation, shared across tree sizes.
        self.tile_cache = tiles.TileCache(TILE_CACHE)
        self._reader: tiles.TileReader | None = None
        try:
            self._load()
        except BaseException:
            self._index_thread.shutdown(wait=True)
            self._hash_thread.shutdown(wait=True)
            self.journal.close()
            self.index.close()
            raise

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path | str,
        origin: str,
        *,
        tiles: str | None = None,
        index: str | None = None,
        key_type: str = DEFAULT_ALGORITHM,
    ) -> Log:
        """Create a new empty log with a fresh key of ``key_type``.

        ``key_type`` is ``ed25519`` (signed-note type 0x01) or ``ml-dsa-44`` (an ML-DSA-44
        cosignature, type 0x06, as tlog-checkpoint recommends): the registered type of
        that algorithm that signs checkpoints (:func:`overt.formats.keytypes.choose`).

        ``tiles`` (a ``file:///`` or ``s3://`` URL, see
        :func:`overt.log.stores.open_tiles`) puts the tiles elsewhere than
        DIR/tiles; ``index`` (a ``sqlite:///`` or ``postgresql://`` URL) the dedup
        index elsewhere than DIR/index.db. Both are kept in DIR/log.json.

        Raises ConfigError if DIR already holds a log or cannot be written (disk
        full...; run it again once there is room), or a URL is not supported;
        LogLockedError if it is in use.
        """
        directory = Path(directory)
        if not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"invalid origin {origin!r}: printable ASCII without spaces or '+'")
        kind = choose(key_type, Purpose.CHECKPOINT)
        try:
            kind.check_name(origin)
        except FormatError as err:
            raise ConfigError(f"origin {origin!r} cannot name a {key_type} key: {err}") from err
        config: dict[str, object] = {"version": _FORMAT_VERSION, "origin": origin}
        if tiles is not None:
            config["tiles"] = tiles
        if index is not None:
            from overt.db import normalize_url

            normalize_url(index)  # refuse an unsupported URL before creating anything
            config["index"] = index
        if (directory / "log.json").exists():
            raise ConfigError(f"{directory} already holds a log")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create the log directory {directory}: {err}") from err
        fd = _lock(directory)
        try:
            signer = generate(kind, origin)
            skey, vkey = signer.skey, signer.vkey
            atomic_write(directory / "log.skey", skey.encode() + b"\n", mode=0o600)
            atomic_write(directory / "log.vkey", vkey.encode() + b"\n")
            atomic_write(directory / "token", secrets.token_hex(32).encode() + b"\n", mode=0o600)
            signer = parse_skey(skey)
            empty = sign_checkpoint(Checkpoint(origin, 0, merkle.EMPTY_ROOT), signer)
            atomic_write(directory / "checkpoint", empty)
            store = _tiles(directory, config)
            try:
                store.write_checkpoint(empty)
            finally:
                _close_store(store)
            # log.json last: its presence marks a complete log.
            atomic_write(directory / "log.json", json.dumps(config).encode() + b"\n")
        except (OSError, LogError) as err:
            os.close(fd)
            raise ConfigError(f"cannot create a log in {directory}: {err}") from err
        except BaseException:
            os.close(fd)
            raise
        return cls(directory, _lock_fd=fd)

    @classmethod
    def open(cls, directory: Path | str) -> Log:
        """Open an existing log. Raises ConfigError, LogLockedError."""
        directory = Path(directory)
        if not (directory / "log.json").is_file():
            raise ConfigError(
                f"{directory} is not an overt log (no log.json); see `overt log init`"
            )
        fd = _lock(directory)
        try:
            return cls(directory, _lock_fd=fd)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        """Wait for index commits and release the directory.

        An index that cannot catch up is only logged: it is re-derived on open.
        """
        if self._witnessing is not None:
            self._witnessing.close()
            self._witnessing = None
        self.journal.close()
        if self._lock_fd >= 0:
            try:
                self.flush_index()
            except LogError as err:
                _logger.warning("%s", err)
            finally:
                self._index_thread.shutdown(wait=True)
                self._hash_thread.shutdown(wait=True)
        self.index.close()
        _close_store(self.store)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def token(self) -> str:
        """The bearer token for ``POST /add``. Raises ConfigError."""
        return read_token(self.directory)

    # -- state -------------------------------------------------------------

    def _read_tree(self) -> _Tree:
        """The tree as the latest signed checkpoint and its tiles are on disk. Only reads.

        Raises LogError (unreadable or inconsistent storage).
        """
        try:
            latest = self.checkpoint_lock.fetch()
            signed = parse_checkpoint(parse_note(latest).text)
            size = signed.size
            _, partials, bundle = read_edge(self.store, size)
            try:
                served = self.store.read("checkpoint")
                served_size = parse_checkpoint(parse_note(served).text).size
            except NotFoundError:
                # Missing, or a planted symlink (never followed): without witnesses
                # _publish_pending writes the signed one over it; with them there
                # is nothing safe to publish until an operator looks.
                if self.policy is not None:
                    raise
                served, served_size = b"", 0
        except (OSError, FormatError, LogError) as err:
            raise LogError(f"cannot read the log's state: {err}") from err
        root = root_of(size, partials)
        if signed.root_hash != root:
            raise LogError(f"tiles do not match the latest checkpoint at size {size}")
        if served_size > size:
            raise LogError(
                f"published checkpoint (size {served_size}) is ahead of the log ({size})"
            )
        return _Tree(size, partials, bundle, root, (latest, size), (served, served_size))

    def _set_tree(self, tree: _Tree) -> None:
        self._size, self._partials, self._bundle, self._root = (
            tree.size,
            tree.partials,
            tree.bundle,
            tree.root,
        )
        # One attribute each, so readers never pair a note with another note's size.
        self._signed = tree.signed
        self._published = tree.published

    def _publish_pending(self, tree: _Tree) -> _Tree:
        """Without witnesses every signed checkpoint is published: finish one a failure or
        crash interrupted. Raises LogError."""
        if self.policy is None and tree.published[0] != tree.signed[0]:
            try:
                self.store.write_checkpoint(tree.signed[0])
            except OSError as err:
                raise LogError(f"cannot publish the checkpoint: {err}") from err
            return tree._replace(published=tree.signed)
        return tree

    def _load(self) -> None:
        """Build the in-memory state from durable state (on open). Raises LogError."""
        tree = self._publish_pending(self._read_tree())
        size = tree.size
        indexed = self.index.size()
        if indexed > size:
            # Cannot happen with commits after the checkpoint; never trust such rows.
            self.index.truncate(size)
            indexed = size
        self._set_tree(tree)
        self._indexed = indexed
        if indexed < size:
            # Re-derive what the index misses; keep it in memory if it cannot commit.
            with self._unindexed_lock:
                self._unindexed.update(self._bundle_hashes(indexed, size))
            self._commit_index(None, indexed, size)
        self._replay_journal()

    def _replay_journal(self) -> None:
        """Integrate entries sequenced (acknowledged) but not integrated before a stop."""
        try:
            staged = replay(self.journal.recover(), self._size)
            # Later records go to a fresh segment: what a segment holds beyond
            # them was never acknowledged (overt.log.journal).
            self.journal.open_segment(self._size + len(staged))
        except OSError as err:
            raise LogError(f"cannot read the journal: {err}") from err
        # The recovered entries are promised indices: account for them before
        # trying to integrate, so that if integration fails (disk full) new
        # sequencing still continues after them and the journal stays valid.
        hashes = _leaf_hashes(staged)
        self._staged, self._staged_hashes = staged, hashes
        self._next = self._size + len(staged)
        with self._unindexed_lock:
            self._unindexed.update(zip(hashes, range(self._size, self._next), strict=True))
        self._integrate_staged()
        self._drop_journal()

    def _bundle_hashes(self, start: int, end: int) -> list[tuple[bytes, int]]:
        """(leaf hash, index) of [start, end), from the durable entry bundles. Raises LogError."""
        width = tiles.TILE_WIDTH
        pairs: list[tuple[bytes, int]] = []
        try:
            for n in range(start // width, (end + width - 1) // width):
                count = min(width, end - n * width)
                raw = self.store.read(tiles.entries_path(n, count))
                for offset, entry in enumerate(tiles.parse_entry_bundle(raw, count)):
                    index = n * width + offset
                    if index >= start:
                        pairs.append((merkle.leaf_hash(entry), index))
        except (OSError, FormatError, LogError) as err:
            raise LogError(f"cannot read entry bundles {start}..{end}: {err}") from err
        return pairs

    def _publish(self, size: int, root: bytes) -> bytes:
        """Sign and write a checkpoint for ``size``; publish it too without witnesses.

        Callers must have made every tile it commits to durable, and update the
        in-memory state only once this returns. Raises OSError, LogError
        (CheckpointConflictError: another writer moved the signed checkpoint).
        """
        note = sign_checkpoint(Checkpoint(self.origin, size, root), self.signer)
        self.checkpoint_lock.replace(self._signed[0], note)
        if self.policy is None:
            self.store.write_checkpoint(note)
        return note

    def publish_witnessed(self, note: bytes, size: int) -> None:
        """Publish a checkpoint the witnesses cosigned (see overt.log.witnessing).

        ``note`` must be one of this log's signed checkpoints for ``size`` with
        cosignature lines added. Raises LogError if it would move backwards.
        """
        with self._publish_lock:
            if size < self._published[1] or size > self._size:
                raise LogError(
                    f"refusing to publish size {size} (published {self._published[1]},"
                    f" log {self._size})"
                )
            # The same checkpoint cosigned again (a refresh) keeps the cosignatures the
            # published note has beyond this round's, e.g. its mirrors' (overt.log.mirroring).
            note = _keep_cosignatures(self._published[0], note, self.policy)
            try:
                self.store.write_checkpoint(note)
            except OSError as err:
                raise LogError(f"cannot publish the witnessed checkpoint: {err}") from err
            self._published = (note, size)

    def add_cosignatures(self, note: bytes, cosigners: Sequence[Verifier]) -> bool:
        """Add the cosignatures of ``note`` by ``cosigners`` (e.g. a mirror's reply) to the
        published checkpoint, if ``note`` is that checkpoint; returns whether it was.

        The text is unchanged, so every proof against it stays valid; the note is
        written atomically (fsynced) like any publication (overt.log.mirroring).

        Raises:
            FormatError, InvalidSignatureError: ``note`` is malformed, or a cosigner's
                signature on it does not verify (nothing is published then).
            LogError: the checkpoint cannot be written.
        """
        from overt.log.mirroring import merge_cosignatures

        # _write_lock: a log without witnesses publishes as it integrates.
        with self._write_lock, self._publish_lock:
            published, size = self._published
            merged = merge_cosignatures(published, note, cosigners)
            if merged is None:
                return False
            if merged != published:
                try:
                    self.store.write_checkpoint(merged)
                except OSError as err:
                    raise LogError(f"cannot publish the cosigned checkpoint: {err}") from err
                self._published = (merged, size)
            return True

    @property
    def size(self) -> int:
        """Size of the integrated tree: the latest checkpoint the log signed."""
        return self._size

    def latest_signed(self) -> tuple[bytes, int]:
        """The latest checkpoint the log signed (not necessarily witnessed yet) and its size."""
        return self._signed

    def witness(self, refresh: bool = False) -> Round | None:
        """Run one witnessing round now (no-op without a witness policy).

        The server witnesses after every integration by itself; library and CLI
        appends call this to publish what they added. With ``refresh``, a
        checkpoint already published is cosigned again (fresh timestamps: a
        publisher's key-set log before its bundles are written). Raises OvertError
        if a witness URL is missing; a quorum not met is reported in the Round.
        """
        if self.policy is None:
            return None
        if self._witnessing is None:
            from overt.log.witnessing import Witnessing

            self._witnessing = Witnessing(self, self.policy)
        return self._witnessing.cosign_latest(refresh)

    def set_policy(self, policy_text: bytes | None) -> None:
        """Install (or with None remove) the witness policy.

        Raises FormatError, PolicyError, LogError (the policy file cannot be written).
        """
        try:
            if policy_text is None:
                (self.directory / "witnesses.policy").unlink(missing_ok=True)
                self.policy = None
                return
            policy = _parse_witness_policy(policy_text)
            atomic_write(self.directory / "witnesses.policy", policy_text)
        except OSError as err:
            raise LogError(f"cannot store the witness policy: {err}") from err
        self.policy = policy
        if self._witnessing is not None:
            self._witnessing.close()
            self._witnessing = None

    # -- appending ---------------------------------------------------------

    def add(self, entry: bytes) -> int:
        """Append one entry durably; returns its index (the existing one if a duplicate)."""
        return self.add_many([entry])[0]

    def add_many(self, entries: Sequence[bytes]) -> list[int]:
        """Append entries durably, in order; returns their indices.

        Duplicates (of logged entries or within ``entries``) get the existing
        index. Raises EntryError (nothing is appended) if any entry is empty or
        larger than 65535 bytes, LogError if storage fails (batches before the
        failing one may be in the log: adding them again returns their indices).
        """
        ends = _check_entries(entries)
        indices: list[int] = []
        with self._write_lock, self._seq_lock:
            self._ready()
            # Sequenced entries come first: their indices are already promised.
            self._integrate_staged()
            before = self._size
            batches = _bulk_passes(entries, ends, self._size)
            # The next pass is planned on a helper thread while this one is written and
            # fsynced: its leaf hashes, the index lookup, its indices and its tiles (the
            # pure integration step, on top of the edge this pass will leave). A lookup
            # answers for everything integrated before it ran, which (both locks held)
            # leaves only this call's earlier passes: `added` answers for those. Nothing
            # planned touches the log's state; a failed write drops what was planned.
            helper = self._hash_thread
            looked_up = (
                helper.submit(self._hash_and_dedup, batches[1]) if len(batches) > 1 else None
            )
            jobs: list[Future[Any]] = [looked_up] if looked_up is not None else []
            added: dict[bytes, int] = {}
            try:
                if batches:
                    edge = Edge(self._size, self._partials, self._bundle)
                    plan = self._plan_pass(
                        batches[0], self._hash_and_dedup(batches[0]), added, edge
                    )
                for n in range(len(batches)):
                    added.update(zip(plan.new_hashes, itertools.count(plan.edge.size)))
                    upcoming = None
                    if looked_up is not None:
                        after = plan.step.edge if plan.step is not None else plan.edge
                        # `added` changes again only once this plan is taken.
                        upcoming = helper.submit(
                            self._plan_pass, batches[n + 1], looked_up, added, after
                        )
                        looked_up = None
                        if n + 2 < len(batches):
                            looked_up = helper.submit(self._hash_and_dedup, batches[n + 2])
                            jobs.append(looked_up)
                        jobs.append(upcoming)
                    if plan.new_entries:
                        try:
                            self._integrate(plan.new_entries, plan.new_hashes, plan)
                        except BaseException as err:
                            self._fail(err)
                        self._next = self._size  # nothing is staged during add_many
                    indices.extend(plan.indices)
                    if upcoming is not None:
                        plan = upcoming.result()
            finally:
                for job in jobs:
                    job.cancel()
            if self._size != before:
                # Journal records are numbered from their segment's start: later
                # sequenced entries go to a segment that starts after these
                # (sequence() opens one if this fails), so older ones can go.
                # The segment open before must not be appended to any more.
                try:
                    self.journal.open_segment(self._next)
                except OSError as err:
                    _logger.warning("cannot open a journal segment yet: %s", err)
                self._drop_journal()
        return indices

    def _ready(self) -> None:
        """Refuse writes on a closed log; catch up with disk after a failure. Both locks held.

        Raises LogError.
        """
        if self._lock_fd < 0:
            raise LogError("log is closed")
        if self._suspect is not None:
            self._recover()

    def _plan_pass(
        self,
        batch: Sequence[bytes],
        looked_up: tuple[list[bytes], dict[bytes, int]]
        | Future[tuple[list[bytes], dict[bytes, int]]],
        added: dict[bytes, int],
        edge: Edge,
    ) -> _Pass:
        """What integrating ``batch`` on top of ``edge`` takes: its indices, the new entries
        and hashes, and the pure integration step (None if nothing is new). Reads nothing
        of the log's state but ``looked_up`` (its hashes and the logged ones among them)
        and ``added`` (hashes logged by the passes before it, not looked up)."""
        hashes, known = looked_up.result() if isinstance(looked_up, Future) else looked_up
        if added:
            known.update((h, added[h]) for h in added.keys() & hashes)
        indices, new_entries, new_hashes = self._assign(batch, hashes, edge.size, known)
        step = integrate(edge, new_entries, new_hashes) if new_entries else None
        return _Pass(indices, new_entries, new_hashes, edge, step)

    def _hash_and_dedup(self, batch: Sequence[bytes]) -> tuple[list[bytes], dict[bytes, int]]:
        """The leaf hashes of ``batch`` and those of them already logged (see _dedup)."""
        hashes = merkle.leaf_hashes(batch)
        return hashes, self._dedup(hashes)

    def _dedup(self, hashes: Sequence[bytes]) -> dict[bytes, int]:
        """Indices of the hashes already logged, sequenced or integrating."""
        # Memory first: a hash leaves _unindexed only after its index commit, so
        # whatever is not found there is visible to the SQL lookup that follows.
        # The lock is held for C loops only: appends wait for it (a bulk add looks up
        # its next pass on a helper thread, beside the pass being integrated).
        with self._unindexed_lock:
            pending = self._unindexed
            known = {h: pending[h] for h in pending.keys() & hashes}
        rest = list(set(hashes).difference(known))
        if rest:
            known.update(self.index.lookup(rest))
        return known

    def _assign(
        self,
        entries: Sequence[bytes],
        hashes: list[bytes],
        first: int,
        known: dict[bytes, int] | None = None,
    ) -> tuple[list[int], list[bytes], list[bytes]]:
        """Indices for ``entries``, and the new entries and their hashes.

        A duplicate (logged, staged or earlier in ``entries``) gets the existing
        index; the others get consecutive indices from ``first``. ``known``: the
        logged ones among ``hashes`` if already looked up (:meth:`_dedup`).
        """
        if known is None:
            known = self._dedup(hashes)
        if not known and len(set(hashes)) == len(hashes):
            # Nothing logged before, no entry twice (a bulk add, mostly): in C.
            return list(range(first, first + len(entries))), list(entries), hashes
        indices: list[int] = []
        new_entries: list[bytes] = []
        new_hashes: list[bytes] = []
        for entry, h in zip(entries, hashes, strict=True):
            index = known.get(h)
            if index is None:
                index = known[h] = first + len(new_entries)
                new_entries.append(entry)
                new_hashes.append(h)
            indices.append(index)
        return indices, new_entries, new_hashes

    def sequence(self, entries: Sequence[bytes]) -> list[int]:
        """Assign indices and make entries durable in the journal; integrate later.

        Returns as soon as the entries are on disk (one fsync). They are in a
        published checkpoint after the next :meth:`integrate`. Duplicates get
        the existing index. Raises EntryError (nothing sequenced) for a bad
        entry, LogError (nothing sequenced) if storage fails.
        """
        for entry in entries:
            check_entry(entry)
        hashes = _leaf_hashes(entries)
        while True:
            if self._suspect is not None:
                # Rare: recovering needs the integration lock too (lock order).
                with self._write_lock, self._seq_lock:
                    self._ready()
            with self._seq_lock:
                if self._lock_fd < 0:
                    raise LogError("log is closed")
                if self._suspect is None:
                    return self._sequence(entries, hashes)

    def _sequence(self, entries: Sequence[bytes], hashes: list[bytes]) -> list[int]:
        """Assign indices and journal; caller holds _seq_lock. Raises LogError."""
        indices, new_entries, new_hashes = self._assign(entries, hashes, self._next)
        if not new_entries:
            return indices
        try:
            if self.journal.next_index != self._next:
                # No segment open (a failure closed it) or one whose numbering
                # no longer matches: records must land at their promised index.
                self.journal.open_segment(self._next)
            self.journal.append(new_entries)
        except OSError as err:
            raise LogError(f"cannot store entries in the journal: {err}") from err
        # Durable: only now do the indices count.
        new_pairs = zip(new_hashes, range(self._next, self._next + len(new_entries)), strict=True)
        with self._unindexed_lock:
            self._unindexed.update(new_pairs)
        self._next += len(new_entries)
        self._staged.extend(new_entries)
        self._staged_hashes.extend(new_hashes)
        return indices

    @property
    def sequenced_size(self) -> int:
        """Entries sequenced so far (integrated or not)."""
        return self._next

    @property
    def failure(self) -> str | None:
        """The storage failure the log has not recovered from yet, if any.

        While set, writes first retry reading the durable state (and raise
        LogError while that fails).
        """
        return self._suspect

    def integrate(self) -> int:
        """Integrate everything sequenced so far; returns the integrated size.

        Raises LogError if storage fails; the entries stay sequenced then (their
        indices do not change) and the next call retries.
        """
        with self._write_lock:
            with self._seq_lock:
                self._ready()
                entries, hashes = self._staged, self._staged_hashes
                if entries:
                    # Later appends go to a fresh segment, so this one can be
                    # dropped once integrated (if it cannot open, sequence()
                    # retries; the old segment is closed either way).
                    try:
                        self.journal.open_segment(self._next)
                    except OSError as err:
                        _logger.warning("cannot open a journal segment yet: %s", err)
                    self._staged, self._staged_hashes = [], []
            if entries:
                try:
                    self._integrate(entries, hashes)
                except BaseException as err:
                    with self._seq_lock:
                        # Sequenced meanwhile: after these, as their indices say.
                        self._staged = entries + self._staged
                        self._staged_hashes = hashes + self._staged_hashes
                        self._fail(err)
                self._drop_journal()
            return self._size

    def _integrate_staged(self) -> None:
        """Integrate staged entries; caller holds both locks. Raises LogError."""
        if self._staged:
            entries, hashes = self._staged, self._staged_hashes
            try:
                self._integrate(entries, hashes)
            except BaseException as err:
                self._fail(err)
            self._staged, self._staged_hashes = [], []
            self._drop_journal()

    def _drop_journal(self) -> None:
        """Delete journal segments the checkpoint covers (failures only delay that)."""
        try:
            self.journal.drop_before(self._size)
        except OSError as err:
            _logger.warning("cannot drop integrated journal segments yet: %s", err)

    def _fail(self, err: BaseException) -> NoReturn:
        """After a failed write: catch up with what is durable, raise (storage failures as
        LogError). Caller holds both locks and has put back what it took from the state."""
        self._suspect = str(err) or type(err).__name__
        error = _storage_error(err)
        try:
            self._recover()
        except LogError as again:
            _logger.error("storage failure: %s; still failing: %s", err, again)
        if error is None:
            raise err
        raise error from err

    def _recover(self) -> None:
        """Make the in-memory state what is durable again. Caller holds both locks.

        Disk may be ahead of memory: a checkpoint renamed into place before a
        later step (publishing it) failed. Then its entries are in the log: the
        staged ones among them leave the stage, and their hashes stay known for
        deduplication. Only reads (and finishes a publication). Raises LogError,
        leaving the state as it was and the log suspect.
        """
        self._wait_index()
        tree = self._publish_pending(self._read_tree())
        if tree.size < self._size:
            raise LogError(f"the checkpoint on disk (size {tree.size}) is behind {self._size}")
        gained = self._bundle_hashes(self._size, tree.size) if tree.size > self._size else []
        taken = min(len(gained), len(self._staged))
        if [h for h, _ in gained[:taken]] != self._staged_hashes[:taken]:
            raise LogError(f"entries {self._size}..{tree.size} on disk are not the ones staged")
        # Nothing below can fail.
        with self._unindexed_lock:
            self._unindexed.update(gained)
        del self._staged[:taken], self._staged_hashes[:taken]
        self._next = max(self._next, tree.size)
        self._set_tree(tree)
        self._suspect = None
        if self._indexed < self._size:
            # Commits that failed meanwhile: catch up from memory in the background.
            self._index_jobs.append(
                self._index_thread.submit(self._commit_index, None, self._indexed, self._size)
            )

    def _integrate(
        self, entries: list[bytes], hashes: list[bytes], plan: _Pass | None = None
    ) -> None:
        """Write ``entries`` durably, publish them, then advance the state. ``plan``:
        their integration step if already computed (on this very edge)."""
        start = self._size
        edge = Edge(start, self._partials, self._bundle)
        if plan is not None and plan.step is not None and plan.edge == edge:
            step = plan.step
        else:
            step = integrate(edge, entries, hashes)
        writes, (new_size, partials, bundle), root = step
        # Order matters for crash safety; see the module docstring. Memory
        # changes only once both writes returned (_recover handles the rest).
        self.store.write_batch(writes)
        note = self._publish(new_size, root)
        pairs = list(zip(hashes, range(start, new_size), strict=True))
        with self._unindexed_lock:
            self._unindexed.update(pairs)
        self._size, self._partials, self._bundle, self._root = new_size, partials, bundle, root
        self._signed = (note, new_size)
        if self.policy is None:
            self._published = (note, new_size)
        # The index commits behind the checkpoint, on its own thread (ADR 0002).
        self._index_jobs.append(
            self._index_thread.submit(self._commit_index, pairs, start, new_size)
        )
        # Back-pressure: never let the index fall more than a few batches behind.
        while len(self._index_jobs) > _INDEX_LAG:
            self._index_jobs.pop(0).result()

    def _commit_index(self, pairs: list[tuple[bytes, int]] | None, start: int, end: int) -> None:
        """Commit the hashes of [start, end) to the index; on failure keep them in memory.

        Runs on the index thread (or inline on open). If an earlier commit
        failed, the index stops short of ``start``: catch up from memory, which
        holds every hash not committed yet. Never raises: the index is derived
        data and its failure must not fail an append.
        """
        try:
            lo = self._indexed
            if lo >= end:
                return
            if pairs is None or lo != start:
                with self._unindexed_lock:
                    pairs = [(h, i) for h, i in self._unindexed.items() if lo <= i < end]
            self.index.record(pairs, end)
        except Exception as err:
            _logger.error("dedup index commit failed (kept in memory, retried later): %s", err)
            return
        self._indexed = end
        done = [h for h, _ in pairs]
        with self._unindexed_lock:  # pop(h, None) each, in a C loop: appends wait for this lock
            collections.deque(map(self._unindexed.pop, done, itertools.repeat(None)), maxlen=0)

    def _wait_index(self) -> None:
        while self._index_jobs:
            self._index_jobs.pop(0).result()

    def flush_index(self) -> None:
        """Wait until every integrated entry is committed to the dedup index.

        Raises LogError if the index cannot catch up (the log keeps working
        from memory, and re-derives the index on the next open).
        """
        with self._write_lock:
            self._wait_index()
            if self._indexed < self._size:
                self._commit_index(None, self._indexed, self._size)
            if self._indexed < self._size:
                raise LogError(
                    f"dedup index holds {self._indexed} of {self._size} entries; "
                    "it is re-derived from the entry bundles on the next open"
                )

    # -- reading: see _TreeReads -------------------------------------------

    def _read(self, relpath: str) -> bytes:
        return self.store.read(relpath)

    def _readable_size(self) -> int:
        # The log itself proves up to what it signed: witnesses need a consistency
        # proof to the size they are asked to cosign, before it is published.
        return self._size

    def _integrated_size(self) -> int | None:
        return self._size


class LogView(_TreeReads):
    """A read-only view of a log: its published checkpoint and tiles, nothing else.

    It never writes and never takes the directory lock, so proofs and reads
    work beside a running ``overt log serve`` (which owns the directory). It is
    a snapshot of the published checkpoint read at open: tiles are immutable
    and every tile that checkpoint covers was durable before it was published,
    so the view stays consistent while the log grows. ``store`` is any
    ``read(path)`` object: a :class:`~overt.log.fs.TileStore` (:meth:`open`
    does this for a log directory) or an :class:`overt.log.client.HTTPSource`,
    so a proof is built from a server's published tiles like any client would.

    Nothing read is trusted: the checkpoint is parsed strictly (and its log
    signature checked when ``verifier`` is given), and :meth:`proof` checks the
    proof it built against the checkpoint's root before returning it.
    """

    def __init__(
        self,
        store: ObjectReader,
        verifier: Verifier | None = None,
        *,
        integrated_size: int | None = None,
    ) -> None:
        note = store.read("checkpoint")
        if verifier is not None:
            checkpoint = open_checkpoint(note, verifier).checkpoint
        else:
            checkpoint = parse_checkpoint(parse_note(note).text)
        self.store = store
        self.origin = checkpoint.origin
        self.root_hash = checkpoint.root_hash
        self._published = (note, checkpoint.size)
        self._integrated = integrated_size
        self.tile_cache = tiles.TileCache(64)
        self._reader = None

    @classmethod
    def open(cls, directory: Path | str) -> LogView:
        """A view of the log directory ``directory``, without its lock.

        Raises ConfigError (not a log), NotFoundError (no published checkpoint,
        or one reached through a symlink), FormatError or VerificationError (a
        published checkpoint that does not parse or verify with ``log.vkey``).
        """
        directory = Path(directory)
        if not (directory / "log.json").is_file():
            raise ConfigError(
                f"{directory} is not an overt log (no log.json); see `overt log init`"
            )
        verifier = parse_vkey(read_vkey(directory))
        integrated: int | None
        try:
            # The log's own latest signed checkpoint: only to say why a proof is missing.
            latest = read_beneath(directory, "checkpoint")
            integrated = parse_checkpoint(parse_note(latest).text).size
        except (LogError, FormatError):
            integrated = None
        from overt.log.stores import configured_tiles

        store = configured_tiles(directory) or TileStore(directory / "tiles")
        return cls(store, verifier, integrated_size=integrated)

    def _read(self, relpath: str) -> bytes:
        return self.store.read(relpath)

    def _readable_size(self) -> int:
        return self._published[1]

    def _integrated_size(self) -> int | None:
        return self._integrated

    def proof(self, index: int) -> bytes:
        """The entry's tlog-proof against the published checkpoint, checked before it is returned.

        Raises NotFoundError (see :meth:`_TreeReads.proof`), ProofError or
        FormatError (tiles or bundle that do not match the checkpoint).
        """
        note, size = self._published
        hashes = self._proof_hashes(index, size)
        leaf = merkle.leaf_hash(self.entry(index))
        merkle.verify_inclusion(leaf, index, size, hashes, self.root_hash)
        return format_proof(TlogProof(index=index, hashes=tuple(hashes), checkpoint=note))
