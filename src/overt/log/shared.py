"""Several ``overt log serve`` front ends on one log: sequencing in PostgreSQL, integration
under a lease.

A *shared* log (``overt log init --shared``) keeps everything that changes in its
PostgreSQL schema and its tiles in a store every front end reaches (``s3://`` or a
shared ``file:///``); each front end has a copy of the log directory for the keys,
the token and ``log.json``. The tables (migrations ``0002`` and ``0004``, beside the
dedup table)::

    log_sequence(id = 1, next)           the next index to assign
    log_batches(start PRIMARY KEY, entries)  sequenced (acknowledged) batches not yet
                                         integrated: entries packed, the first at start
    log_checkpoint(id = 1, size, note)   the latest signed checkpoint, compare-and-swapped
    dedup(leaf_hash PRIMARY KEY, idx)    every sequenced entry's leaf hash

**Sequencing** (any front end, :meth:`SharedLog.sequence`): one statement, its own
transaction, locks the ``log_sequence`` row (``SELECT ... FOR UPDATE``), inserts
the batch's leaf hashes into ``dedup`` at consecutive indices, the batch itself as
one ``log_batches`` row, and advances ``next``. A hash that ``dedup`` holds fails
that statement (unique violation); the batch is then sequenced by one that looks
every hash up first and numbers only the new ones, a duplicate getting its
existing index. The statement commits asynchronously (``synchronous_commit =
off``), so the row lock is released before the commit's WAL flush and the other
front ends' statements do not queue behind it; a *barrier*, a transaction that
writes WAL and commits synchronously, then waits until the WAL is flushed past
it. Indices are returned once the barrier returned: that is when ``POST /add``
acknowledges, as on one front end. The row lock orders the statements, so the
batches always run contiguously from the integrated size, and a hash is never
given two indices (dedup by leaf hash). If PostgreSQL crashes before the flush,
the batch is lost with everything committed after it (the WAL is replayed in
order, so no gap can open), and none of it was acknowledged: a front end whose
statement saw another's unflushed rows (a duplicate) acknowledges only after its
own barrier, which flushes them too. ``overt log serve`` runs this on its event
loop (:meth:`SharedLog.sequence_async`), one batch at a time per front end; the
design and its measurements: ``docs/adr/0018-sequencing-commits-before-its-flush.md``.

**Integration** (one front end at a time, :meth:`SharedLog.integrate`): the holder
of the *lease*, a session-level advisory lock held on a connection of its own,
reads the pending batches (whole batches, so every checkpoint size is a batch
boundary), waits until what it read is flushed (it may have been committed
asynchronously a moment ago: nothing unflushed reaches the store), computes the
tiles (:mod:`overt.log.integration`), uploads them, then swaps the checkpoint row
(``UPDATE ... WHERE note = <the one it built on>``) in the transaction that
deletes the batches it integrated, and only then uploads the published
checkpoint. The other front ends re-read the checkpoint row every :data:`POLL`
seconds to serve reads and ``?proof=1``, and try to take the lease every
:data:`LEASE_RETRY` seconds.

Why nothing acknowledged is lost or moved and the tree never forks, whatever dies
when (``docs/adr/0017-several-front-ends-one-sequencing-table.md``):

- an acknowledged entry is in ``log_batches`` until a checkpoint covering it is
  committed, and the bundles holding it were durable before that commit;
- the tiles of a range of indices depend only on the entries at those indices,
  fixed when they were sequenced: a lease holder that has not yet noticed that it
  lost the lease and its successor upload byte-identical objects to the same paths;
- the checkpoint row moves only by compare-and-swap from the checkpoint an
  integrator built on, so a stale integrator's swap fails (it then reloads);
- the lease only avoids duplicate work: when its holder dies, PostgreSQL ends the
  session and releases the lock, and another front end takes it.

Front ends serve the checkpoint row's note (verified with the log's key), so what
they serve never goes backwards.

**Witnesses** (``witnesses.policy`` in the log directory, the same on every front
end): the lease holder signs each integrated tree, asks the policy's witnesses
(:class:`overt.log.witnessing.Witnessing`, as one front end does) and swaps the
checkpoint row only to a note that meets the quorum, so every front end serves,
and ``?proof=1`` returns, witnessed checkpoints only; the pending rows stay until
then. The witnesses' own state is what carries over a failover: a new holder
starts from the row's note, takes each witness that cosigned it to be at least at
its size (its add-checkpoint ``old``), and a witness further ahead (it cosigned a
tree the dead holder never swapped in) answers 409 with its size, which the next
round uses once the new holder's tree reaches it. Subtree cosignatures
(``sign-subtree``) and mirror cosignatures are not collected on a shared log.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from overt.errors import ConfigError, FormatError, LogError, VerificationError
from overt.formats import merkle, tiles
from overt.formats.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from overt.formats.keytypes import DEFAULT_ALGORITHM
from overt.formats.note import Signer, Verifier, parse_skey, parse_vkey
from overt.log._files import read_token
from overt.log.backend import CheckpointConflictError, TileBackend, read_edge
from overt.log.fs import atomic_write
from overt.log.integration import Edge, integrate, root_of
from overt.log.log import (
    MAX_BATCH,
    Log,
    _close_store,
    _parse_witness_policy,
    _TreeReads,
    check_entry,
)

if TYPE_CHECKING:
    import psycopg

    from overt.formats.policy import Policy
    from overt.log.witnessing import Witnessing

__all__ = ["INTERVAL", "LEASE_RETRY", "POLL", "SharedLog", "is_shared", "open_log", "set_policy"]

_logger = logging.getLogger("overt.log")

#: Seconds between two reads of the checkpoint row by a front end without the lease
#: (and between two looks for pending entries by the lease holder when idle).
POLL = 0.02
#: Least seconds between two integration passes of the lease holder: every pass
#: uploads the partial tiles and bundle at the edge and the checkpoint again, so
#: fewer, larger passes cost fewer object-store PUTs per entry.
INTERVAL = 0.2
#: Seconds between two attempts to take the lease.
LEASE_RETRY = 0.5
#: Seconds before a witnessing round that did not meet the quorum is tried again
#: (a newly integrated tree is asked at once).
WITNESS_RETRY = 2.0
#: Seconds after which a quiet log's witnessed checkpoint is cosigned again (fresh
#: timestamps for clients that demand a maximum age), as on one front end.
WITNESS_REFRESH = 60.0
#: Seconds between two checks that the lease's session is still alive.
_LEASE_CHECK = 1.0
# libpq: give up connecting after 5 s, notice a silent peer within ~10 s.
_CONNECT: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
}


# Sequencing, in one statement (its own transaction): lock the counter row (every
# front end's sequencing statements queue here), insert the batch's leaf hashes
# into dedup at consecutive indices from the counter on, store the batch in one
# row and advance the counter. Returns the counter before and after. Optimistic:
# a hash that dedup already holds fails it (unique violation), and the batch is
# sequenced again by _SEQUENCE_DEDUP, which looks every hash up first.
_SEQUENCE = """
WITH seq AS (SELECT next FROM log_sequence WHERE id = 1 FOR UPDATE),
d AS (
    INSERT INTO dedup (leaf_hash, idx)
    SELECT h, (SELECT next FROM seq) + ord - 1 FROM unnest(%s::bytea[]) WITH ORDINALITY AS t(h, ord)
),
b AS (INSERT INTO log_batches (start, entries) SELECT next, %s FROM seq),
u AS (UPDATE log_sequence SET next = (SELECT next FROM seq) + %s WHERE id = 1 RETURNING next)
SELECT (SELECT next FROM seq), next FROM u
"""

# Sequencing with duplicates: as _SEQUENCE, but the hashes that dedup holds keep
# their index and only the others are numbered, stored (packed in SQL, in batch
# order) and counted. Returns (leaf hash, index, counter after) for every hash.
_SEQUENCE_DEDUP = """
WITH seq AS (SELECT next FROM log_sequence WHERE id = 1 FOR UPDATE),
input AS (
    SELECT h, e, ord FROM unnest(%s::bytea[], %s::bytea[]) WITH ORDINALITY AS t(h, e, ord)
),
known AS (
    SELECT d.leaf_hash AS h, d.idx FROM dedup d JOIN input i ON d.leaf_hash = i.h
),
new AS (
    SELECT i.h, i.e, i.ord, (SELECT next FROM seq) + row_number() OVER (ORDER BY i.ord) - 1 AS idx
    FROM input i WHERE NOT EXISTS (SELECT 1 FROM known k WHERE k.h = i.h)
),
d AS (INSERT INTO dedup (leaf_hash, idx) SELECT h, idx FROM new),
b AS (
    INSERT INTO log_batches (start, entries)
    SELECT (SELECT next FROM seq),
        string_agg(substring(int4send(length(e)) FROM 3 FOR 2) || e, ''::bytea ORDER BY ord)
    FROM new HAVING count(*) > 0
),
u AS (
    UPDATE log_sequence SET next = (SELECT next FROM seq) + (SELECT count(*) FROM new)
    WHERE id = 1 RETURNING next
)
SELECT h, idx, (SELECT next FROM u) FROM known
UNION ALL SELECT h, idx, (SELECT next FROM u) FROM new
"""

# Waits until everything committed before it (by any session) is durable: a
# transaction that wrote WAL commits synchronously, and its flush covers every
# record written before its commit record (the WAL is flushed in order). The
# only WAL it writes is a logical-decoding message (prefix "overt", empty; a
# logical decoding client, if any, sees it): a transaction that wrote none, even
# with an xid (``SELECT txid_current()``), commits without a flush. Sequencing
# commits asynchronously, so the counter's row lock is not held through a WAL
# flush; the indices count (and POST /add replies) only after this returned.
_FLUSH = "SELECT pg_logical_emit_message(true, 'overt', '')"
_BARRIER = f"BEGIN; SET LOCAL synchronous_commit TO on; {_FLUSH}; COMMIT"

#: Most batch rows one integration pass reads (it also stops at MAX_BATCH entries).
_BATCH_ROWS = 256


def _pack(entries: Sequence[bytes]) -> bytes:
    """Entries as one ``log_batches`` value: each preceded by its length (2 bytes, big-endian)."""
    return b"".join([b for e in entries for b in (len(e).to_bytes(2, "big"), e)])


def _unpack(data: bytes, start: int) -> list[bytes]:
    """The entries of a ``log_batches`` value. Raises LogError (not what _pack wrote)."""
    entries: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        n = int.from_bytes(data[pos : pos + 2], "big")
        if n == 0 or pos + 2 + n > end:
            raise LogError(f"the batch stored at index {start} is malformed (byte {pos})")
        entries.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    if not entries:
        raise LogError(f"the batch stored at index {start} is empty")
    return entries


def _prepare(entries: Sequence[bytes]) -> tuple[list[bytes], dict[bytes, bytes]]:
    """Each entry's leaf hash, and the batch to sequence: leaf hash -> entry, each
    hash once, first occurrence first. Raises EntryError."""
    for entry in entries:
        check_entry(entry)
    hashes = [merkle.leaf_hash(e) for e in entries]
    batch: dict[bytes, bytes] = {}
    for entry, h in zip(entries, hashes, strict=True):
        batch.setdefault(h, entry)
    return hashes, batch


def _params(batch: dict[bytes, bytes]) -> tuple[list[bytes], bytes, int]:
    # Binary parameters: entries travel as bytes, not hex text.
    return list(batch), _pack(list(batch.values())), len(batch)


def _dedup_params(batch: dict[bytes, bytes]) -> tuple[list[bytes], list[bytes]]:
    return list(batch), list(batch.values())


def _numbered(batch: dict[bytes, bytes], row: Any) -> tuple[dict[bytes, int], int]:
    """_SEQUENCE's answer: the batch numbered from the counter's old value on."""
    if row is None:
        raise LogError("the shared log's sequence row is missing")
    first = int(row[0])
    return {h: first + n for n, h in enumerate(batch)}, int(row[1])


def _looked_up(rows: Sequence[Any]) -> tuple[dict[bytes, int], int]:
    """_SEQUENCE_DEDUP's answer: every hash's index, and the counter after."""
    return {bytes(h): int(i) for h, i, _ in rows}, max(int(n) for _, _, n in rows)


def open_log(directory: Path | str) -> Log | SharedLog:
    """The log in ``directory`` for serving: a :class:`SharedLog` if its log.json says
    ``"shared": true``, else :meth:`Log.open`. Raises ConfigError, LogError."""
    directory = Path(directory)
    if _config(directory).get("shared") is True:
        return SharedLog(directory)
    return Log.open(directory)


def is_shared(directory: Path | str) -> bool:
    """Whether ``directory`` holds a shared log (False for anything else, even no log)."""
    try:
        return _config(Path(directory)).get("shared") is True
    except ConfigError:
        return False


def set_policy(directory: Path | str, policy_text: bytes) -> Policy:
    """Install the witness policy in one front end's copy of a shared log's directory
    (``overt log witnesses``; every front end needs it, read when it starts). Raises
    ConfigError (not a shared log), FormatError, PolicyError, LogError (cannot write)."""
    directory = Path(directory)
    if not is_shared(directory):
        raise ConfigError(f"{directory} is not a shared log")
    policy = _parse_witness_policy(policy_text)
    try:
        atomic_write(directory / "witnesses.policy", policy_text)
    except OSError as err:
        raise LogError(f"cannot store the witness policy: {err}") from err
    return policy


def _config(directory: Path) -> dict[str, Any]:
    try:
        config = json.loads((directory / "log.json").read_text())
    except FileNotFoundError as err:
        raise ConfigError(
            f"{directory} is not an overt log (no log.json); see `overt log init`"
        ) from err
    except (OSError, ValueError) as err:
        raise ConfigError(f"{directory} is not an overt log: {err}") from err
    if not isinstance(config, dict):
        raise ConfigError(f"{directory}/log.json is not a JSON object")
    return config


def _db_error(err: BaseException, what: str) -> LogError:
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return LogError(f"database: cannot {what}: {reason}")


def _as_log_error(err: Exception, what: str) -> LogError | None:
    """``err`` as the LogError callers expect if it is a storage or database failure;
    None for anything else (a bug, which propagates as it is)."""
    import psycopg

    if isinstance(err, LogError):
        return err
    if isinstance(err, psycopg.Error):
        return _db_error(err, what)
    if isinstance(err, (OSError, FormatError)):
        return LogError(f"storage failure: {err}")
    return None


def _raise_as_log_error(err: Exception, what: str) -> NoReturn:
    """Raises ``err`` as :func:`_as_log_error` maps it (from ``err``), or ``err`` itself."""
    error = _as_log_error(err, what)
    if error is None or error is err:
        raise err
    raise error from err


class _Connection:
    """One dedicated PostgreSQL connection, opened on first use and after a failure."""

    def __init__(self, url: str, *, autocommit: bool = False, asynchronous: bool = False) -> None:
        self.url, self.autocommit, self.asynchronous = url, autocommit, asynchronous
        self._conn: psycopg.Connection[Any] | None = None

    def get(self) -> psycopg.Connection[Any]:
        import psycopg

        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self.url, autocommit=self.autocommit, **_CONNECT)
            if self.asynchronous:
                # Commits return before their WAL flush; _BARRIER waits for it.
                try:
                    conn.execute("SET synchronous_commit TO off")
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
        return self._conn

    def drop(self) -> None:
        """Close the connection (after a failure its state is unknown); never raises."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as err:  # already broken: nothing to release
                _logger.debug("closing a failed connection: %s", err)


class _AsyncConnection:
    """One PostgreSQL connection on the event loop, in autocommit, opened on first
    use and after a failure; :attr:`lock` keeps it to one statement at a time."""

    def __init__(self, url: str, *, asynchronous: bool = False) -> None:
        self.url, self.asynchronous = url, asynchronous
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.lock = asyncio.Lock()

    async def get(self) -> psycopg.AsyncConnection[Any]:
        import psycopg

        if self._conn is None or self._conn.closed:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, **_CONNECT)
            if self.asynchronous:
                try:
                    await conn.execute("SET synchronous_commit TO off")
                except BaseException:
                    conn.pgconn.finish()
                    raise
            self._conn = conn
        return self._conn

    def drop(self) -> None:
        """Close the connection (after a failure, or at shutdown from any thread: closing
        is libpq's PQfinish, nothing to await); never raises."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                conn.pgconn.finish()
            except Exception as err:  # already broken: nothing to release
                _logger.debug("closing a failed connection: %s", err)


class _Barrier:
    """Group flush for :meth:`SharedLog.sequence_async`: :meth:`wait` returns once a
    :data:`_BARRIER` that started after the call has committed. One runs at a time on
    a connection of its own; every batch that asked meanwhile shares the next one."""

    def __init__(self, url: str) -> None:
        self._db = _AsyncConnection(url)
        self._started = self._done = 0

    async def wait(self) -> None:
        """Raises psycopg.Error (the database failed: durability unknown)."""
        target = self._started + 1  # one that starts from now on covers this caller
        async with self._db.lock:
            if self._done >= target:
                return
            self._started += 1
            number = self._started
            try:
                conn = await self._db.get()
                await conn.execute(_BARRIER)
            except BaseException:
                self._db.drop()
                raise
            self._done = number

    def close(self) -> None:
        self._db.drop()


class SharedLog(_TreeReads):
    """One front end of a log shared through PostgreSQL (see the module docstring).

    Thread-safe: :meth:`sequence` and :meth:`integrate` may run on different
    threads; reads and proofs run beside both (they only read published tiles).
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = directory = Path(directory)
        config = _config(directory)
        try:
            self.origin: str = config["origin"]
            self.signer: Signer = parse_skey((directory / "log.skey").read_text().strip())
            self.vkey: str = (directory / "log.vkey").read_text().strip()
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError(f"{directory} is not an overt log: {err}") from err
        self.verifier: Verifier = parse_vkey(self.vkey)
        self.policy: Policy | None = None
        policy_path = directory / "witnesses.policy"
        if policy_path.exists():
            try:
                self.policy = _parse_witness_policy(policy_path.read_bytes())
            except OSError as err:
                raise ConfigError(f"cannot read {policy_path}: {err}") from err
        self._witnessing: Witnessing | None = None
        self._witnessed_at = float("-inf")  # the last round (any outcome) on this holder
        self._witness_asked = -1  # the signed size that round was for
        index, tiles_url = config.get("index"), config.get("tiles")
        if not isinstance(index, str) or not index.startswith("postgresql"):
            raise ConfigError(f"{directory}: a shared log needs its index on postgresql://")
        if not isinstance(tiles_url, str):
            raise ConfigError(
                f"{directory}: a shared log needs a tiles URL every front end reaches"
            )
        from overt.db import engine_from_url, upgrade
        from overt.log.stores import open_tiles

        engine = engine_from_url(index)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        self._url = "postgresql://" + index.split("://", 1)[1]
        self.store: TileBackend = open_tiles(tiles_url)
        # Autocommit: the sequencing statement is its own transaction (one round trip).
        self._seq_db = _Connection(self._url, autocommit=True, asynchronous=True)
        # The same on the event loop (sequence_async), and the barrier its batches share.
        self._aseq = _AsyncConnection(self._url, asynchronous=True)
        self._barrier = _Barrier(self._url)
        self._int_db = _Connection(self._url)
        self._lease_db = _Connection(self._url, autocommit=True)
        digest = hashlib.sha256(b"overt log lease\0" + self.origin.encode()).digest()
        self._lease_key = int.from_bytes(digest[:8], "big", signed=True)
        self._leader = False
        self._lease_tried = self._lease_checked = self._integrated_at = float("-inf")
        # Only the lease holder has an edge: the tree it extends.
        self._edge: Edge | None = None
        self._state_lock = threading.Lock()
        self._seq_lock = threading.Lock()  # one transaction at a time on _seq_db
        self._int_lock = threading.Lock()
        self._failure: str | None = None
        self._next = 0
        self.tile_cache = tiles.TileCache(1024)
        self._reader: tiles.TileReader | None = None
        self._closed = False
        self._row: bytes | None = None  # the checkpoint row's note, as last read or swapped
        try:
            self._create_rows()
            self._refresh()
            if self.policy is not None:
                self._witnessing = self._start_witnessing(self.policy)
        except BaseException:
            self.close()
            raise

    @classmethod
    def create(
        cls,
        directory: Path | str,
        origin: str,
        *,
        tiles: str,
        index: str,
        key_type: str = DEFAULT_ALGORITHM,
    ) -> SharedLog:
        """Create a shared log: an ordinary log directory marked ``"shared": true`` whose
        checkpoint and sequence live in ``index`` (a ``postgresql://`` URL), its key of
        ``key_type`` (:meth:`Log.create`). Copy the directory to every front end. Raises
        ConfigError, LogError."""
        if not index.startswith("postgresql"):
            raise ConfigError(
                "a shared log needs --db postgresql://... (the front ends meet there)"
            )
        directory = Path(directory)
        Log.create(directory, origin, tiles=tiles, index=index, key_type=key_type).close()
        config = _config(directory)
        config["shared"] = True
        try:
            atomic_write(directory / "log.json", json.dumps(config).encode() + b"\n")
        except OSError as err:
            raise ConfigError(f"cannot mark {directory} shared: {err}") from err
        return cls(directory)

    def close(self) -> None:
        """Release the lease and every connection."""
        if self._closed:
            return
        self._closed = True
        with self._int_lock:
            self._drop_lease()
            self._int_db.drop()
            if self._witnessing is not None:
                self._witnessing.close()
        with self._seq_lock:
            self._seq_db.drop()
        self._aseq.drop()
        self._barrier.close()
        _close_store(self.store)

    def __enter__(self) -> SharedLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def token(self) -> str:
        """The bearer token for ``POST /add``. Raises ConfigError."""
        return read_token(self.directory)

    # -- state -------------------------------------------------------------

    @property
    def size(self) -> int:
        """Size of the latest signed checkpoint this front end knows."""
        return self._signed[1]

    @property
    def sequenced_size(self) -> int:
        """Entries sequenced by any front end, as this one last saw it."""
        return self._next

    @property
    def failure(self) -> str | None:
        """The last storage or database failure, until a pass succeeds."""
        return self._failure

    @property
    def holds_lease(self) -> bool:
        """Whether this front end is the one integrating (the sequencer)."""
        return self._leader

    def latest_signed(self) -> tuple[bytes, int]:
        return self._signed

    def _readable_size(self) -> int:
        # The lease holder's proofs for its witnesses reach the tree it signed (its
        # tiles are uploaded before it signs); tiles served stop at the published one.
        return self._signed[1]

    def _integrated_size(self) -> int | None:
        return self._signed[1]

    def _read(self, relpath: str) -> bytes:
        return self.store.read(relpath)

    def _open(self, note: bytes) -> Checkpoint:
        """The checkpoint row's note, verified with the log's key. Raises LogError."""
        try:
            checkpoint = open_checkpoint(note, self.verifier).checkpoint
        except (FormatError, VerificationError) as err:
            raise LogError(
                f"the database holds a checkpoint that is not this log's: {err}"
            ) from err
        return checkpoint

    def _create_rows(self) -> None:
        """First open: the empty tree's checkpoint and the counter (the same on every
        front end: Ed25519 signatures are deterministic). Raises LogError."""
        empty = sign_checkpoint(Checkpoint(self.origin, 0, merkle.EMPTY_ROOT), self.signer)
        try:
            conn = self._int_db.get()
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO log_checkpoint (id, size, note) VALUES (1, 0, %s)"
                    " ON CONFLICT DO NOTHING",
                    (empty,),
                )
                cur.execute(
                    "INSERT INTO log_sequence (id, next) VALUES (1, 0) ON CONFLICT DO NOTHING"
                )
            conn.commit()
        except Exception as err:
            self._int_db.drop()
            raise _db_error(err, "initialise the shared log") from err

    def _refresh(self) -> None:
        """Adopt the checkpoint row and the counter (front ends without the lease).

        Raises LogError: unreachable, or a checkpoint that is not this log's or is
        behind what this front end already served (a database restored to an older
        state: refused, never served).
        """
        try:
            conn = self._int_db.get()
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT c.note, s.next FROM log_checkpoint c, log_sequence s"
                    " WHERE c.id = 1 AND s.id = 1"
                )
                row = cur.fetchone()
            conn.commit()
        except Exception as err:
            self._int_db.drop()
            raise _db_error(err, "read the checkpoint") from err
        if row is None:
            raise LogError("the shared log's checkpoint row is missing")
        note, following = bytes(row[0]), int(row[1])
        served = getattr(self, "_published", None)
        if served is None or note != served[0]:
            checkpoint = self._open(note)
            # Ahead, or the same checkpoint cosigned again (a witnessing refresh).
            if served is not None and (
                checkpoint.size < served[1]
                or (checkpoint.size == served[1] and _text(note) != _text(served[0]))
            ):
                raise LogError(
                    f"the database's checkpoint (size {checkpoint.size}) is not ahead of the"
                    f" one this front end served (size {served[1]}): refusing to go back"
                )
            self._signed = self._published = (note, checkpoint.size)
        self._row = note
        with self._state_lock:
            self._next = max(self._next, following)

    # -- sequencing (any front end) -----------------------------------------

    def sequence(self, entries: Sequence[bytes]) -> list[int]:
        """Assign indices in the database, durably; returns them once committed.

        Duplicates (of sequenced entries or within ``entries``) get the existing
        index. Raises EntryError (nothing sequenced) for a bad entry, LogError if
        the database fails (the entries may or may not be sequenced then; none is
        acknowledged, and sending them again returns their index if they were).
        """
        hashes, batch = _prepare(entries)
        if not batch:  # nothing to store: an empty batch row would take the next index
            return []
        try:
            with self._seq_lock:
                known, end = self._sequence(batch)
        except Exception as err:
            with self._seq_lock:
                self._seq_db.drop()
            _raise_as_log_error(err, "sequence entries")
        return self._acknowledge(hashes, known, end)

    def _acknowledge(self, hashes: list[bytes], known: dict[bytes, int], end: int) -> list[int]:
        """The indices of a durably sequenced batch, in the order of its entries."""
        with self._state_lock:
            self._next = max(self._next, end)
        return [known[h] for h in hashes]

    def _sequence(self, batch: dict[bytes, bytes]) -> tuple[dict[bytes, int], int]:
        """_SEQUENCE, or _SEQUENCE_DEDUP if it fails on a known hash (retried once if
        another front end sequenced one of these entries meanwhile), then _BARRIER."""
        import psycopg

        conn = self._seq_db.get()
        try:
            row = conn.execute(_SEQUENCE, _params(batch), binary=True).fetchone()
            result = _numbered(batch, row)
        except psycopg.errors.UniqueViolation:
            try:
                rows = conn.execute(_SEQUENCE_DEDUP, _dedup_params(batch), binary=True)
                result = _looked_up(rows.fetchall())
            except psycopg.errors.UniqueViolation:
                # The statement's snapshot predates the row lock it waited for: a
                # hash the other front end committed meanwhile looked new. Again,
                # with a fresh snapshot.
                rows = conn.execute(_SEQUENCE_DEDUP, _dedup_params(batch), binary=True)
                result = _looked_up(rows.fetchall())
        conn.execute(_BARRIER)  # durable once this returns: only then do the indices count
        return result

    async def sequence_async(self, entries: Sequence[bytes]) -> list[int]:
        """:meth:`sequence` on the running event loop (``overt log serve``): no thread,
        and the barrier shared by every batch committed before it started.

        The statement runs on one connection, one batch at a time; the barrier on
        another, so the next batch's statement runs while the previous one waits for
        the WAL flush. Raises as :meth:`sequence`.
        """
        import psycopg

        hashes, batch = _prepare(entries)
        if not batch:  # nothing to store: an empty batch row would take the next index
            return []
        seq = self._aseq
        try:
            async with seq.lock:
                try:
                    conn = await seq.get()
                    try:
                        cur = await conn.execute(_SEQUENCE, _params(batch), binary=True)
                        known, end = _numbered(batch, await cur.fetchone())
                    except psycopg.errors.UniqueViolation:
                        try:
                            cur = await conn.execute(
                                _SEQUENCE_DEDUP, _dedup_params(batch), binary=True
                            )
                            known, end = _looked_up(await cur.fetchall())
                        except psycopg.errors.UniqueViolation:  # as in _sequence
                            cur = await conn.execute(
                                _SEQUENCE_DEDUP, _dedup_params(batch), binary=True
                            )
                            known, end = _looked_up(await cur.fetchall())
                except BaseException:
                    seq.drop()
                    raise
            await self._barrier.wait()
        except Exception as err:
            _raise_as_log_error(err, "sequence entries")
        return self._acknowledge(hashes, known, end)

    # -- integration (the lease holder) -------------------------------------

    def integrate(self) -> int:
        """One pass: integrate a batch if this front end holds (or takes) the lease,
        else adopt the checkpoint row. Returns the signed size it knows.

        Raises LogError (nothing acknowledged is affected; the next pass retries).
        """
        with self._int_lock:
            if self._closed:
                raise LogError("log is closed")
            try:
                self._pass()
            except Exception as err:
                self._failure = str(err) or type(err).__name__
                # Whatever failed, the next pass starts again from the database.
                self._edge = None
                self._int_db.drop()
                # A failed pass may mean the database restarted, which ended the lease's
                # session too: the next pass asks at once instead of up to a second later.
                self._lease_checked = float("-inf")
                if isinstance(err, CheckpointConflictError):
                    self._drop_lease()
                _raise_as_log_error(err, "integrate")
            self._failure = None
            return self._signed[1]

    def _pass(self) -> None:
        now = time.monotonic()
        if self._leader and now - self._lease_checked >= _LEASE_CHECK:
            self._lease_checked = now
            if not self._lease_alive():
                _logger.warning("lost the sequencer lease (its database session ended)")
                self._drop_lease()
        if not self._leader and now - self._lease_tried >= LEASE_RETRY:
            self._lease_tried = now
            self._take_lease()
        if not self._leader:
            self._refresh()
            return
        if self._edge is None:
            self._load_edge()
        if now - self._integrated_at >= INTERVAL:
            self._integrate_batch()
        if self._witnessing is not None:
            self._witness(self._witnessing)

    def _take_lease(self) -> None:
        try:
            conn = self._lease_db.get()
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lease_key,)).fetchone()
        except Exception as err:
            self._lease_db.drop()
            raise _db_error(err, "try the sequencer lease") from err
        if row is not None and row[0] is True:
            self._leader = True
            self._lease_checked = time.monotonic()
            _logger.warning("took the sequencer lease: this front end integrates")

    def _lease_alive(self) -> bool:
        """Whether this front end's session still holds the advisory lock (a session
        opened again after a failure would not: ask PostgreSQL, not the socket)."""
        try:
            row = (
                self._lease_db.get()
                .execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                    " AND pid = pg_backend_pid() AND granted)"
                )
                .fetchone()
            )
        except Exception as err:
            _logger.warning("cannot check the sequencer lease: %s", err)
            return False
        return row is not None and row[0] is True

    def _drop_lease(self) -> None:
        """Stop integrating; closing the session releases the advisory lock."""
        self._leader = False
        self._edge = None
        # What it signed but never published is not this front end's to serve or witness.
        if hasattr(self, "_published"):  # not before the first read of the row
            self._signed = self._published
        self._lease_db.drop()

    def _load_edge(self) -> None:
        """The tree to extend: the checkpoint row and its tiles; publish it if the
        previous holder died before it did. Raises LogError, OSError, FormatError."""
        self._refresh()
        note, size = self._signed
        checkpoint = self._open(note)
        edge = read_edge(self.store, size)
        if root_of(size, edge.partials) != checkpoint.root_hash:
            raise LogError(f"the stored tiles do not match the checkpoint at size {size}")
        # The previous holder may have died (or failed) between its swap and this upload.
        self.store.write_checkpoint(note)
        # A holder starts from the row, whatever it had signed before (lost the lease, failed).
        self._signed = self._published = (note, size)
        self._edge = edge
        if self._witnessing is not None:
            self._seed_witnesses(self._witnessing, note, size)

    def _integrate_batch(self) -> None:
        edge = self._edge
        assert edge is not None
        conn = self._int_db.get()
        with conn.cursor() as cur:
            cur.execute(
                "SELECT start, entries FROM log_batches WHERE start >= %s ORDER BY start LIMIT %s",
                (edge.size, _BATCH_ROWS),
                binary=True,
            )
            rows = cur.fetchall()
            if rows:
                # What was read may be committed asynchronously but not yet flushed:
                # nothing goes to the store before it is durable (see _BARRIER).
                cur.execute("SET LOCAL synchronous_commit TO on")
                cur.execute(_FLUSH)
        conn.commit()
        if not rows:
            self._refresh_next()
            return
        entries: list[bytes] = []
        for start, packed in rows:
            if int(start) != edge.size + len(entries):
                raise LogError(f"pending entries from {edge.size} are not contiguous")
            batch = _unpack(bytes(packed), int(start))
            if entries and len(entries) + len(batch) > MAX_BATCH:
                break  # whole batches only: every checkpoint size is a batch boundary
            entries += batch
        hashes = [merkle.leaf_hash(e) for e in entries]
        writes, new_edge, root = integrate(edge, entries, hashes)
        # Tiles first, durable; then the checkpoint that commits to them.
        self._integrated_at = time.monotonic()
        self.store.write_batch(writes)
        note = sign_checkpoint(Checkpoint(self.origin, new_edge.size, root), self.signer)
        self._edge = new_edge
        self._signed = (note, new_edge.size)
        with self._state_lock:
            self._next = max(self._next, new_edge.size)
        if self._witnessing is None:
            self._publish(note, new_edge.size)
        # else: published by _witness once the witnesses' quorum cosigned it.

    def _publish(self, note: bytes, size: int) -> None:
        """Swap the checkpoint row from the note it holds to ``note`` (signed, cosigned when
        witnessed) in the transaction that deletes the rows it covers, then upload it.
        Raises CheckpointConflictError (another holder moved the row), LogError, OSError."""
        old = self._row
        conn = self._int_db.get()
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE log_checkpoint SET note = %s, size = %s WHERE id = 1 AND note = %s",
                (note, size, old),
            )
            if cur.rowcount != 1:
                conn.rollback()
                raise CheckpointConflictError(old or b"", None)
            # Whole batches only are integrated: those starting below size end there.
            cur.execute("DELETE FROM log_batches WHERE start < %s", (size,))
        conn.commit()
        self._row = note
        self.store.write_checkpoint(note)
        self._published = (note, size)

    # -- witnessing (the lease holder) --------------------------------------

    def _start_witnessing(self, policy: Policy) -> Witnessing:
        from overt.formats.keytypes import Purpose
        from overt.log.witnessing import Witnessing

        subtree = [
            w.name
            for w in policy.witnesses
            if (kt := getattr(w.verifier, "key_type", None)) is not None
            and kt.may_sign(Purpose.SUBTREE)
        ]
        if subtree:
            _logger.warning(
                "shared log: witnesses %s cosign checkpoints only; subtree cosignatures are"
                " not collected on a shared log",
                ", ".join(subtree),
            )
        # A view without directory or subtree reader: no subtree store on one front end's disk.
        return Witnessing(_HolderView(self), policy)

    def _seed_witnesses(self, witnessing: Witnessing, note: bytes, size: int) -> None:
        """Each witness whose cosignature the row's note carries is at least at ``size``:
        the add-checkpoint ``old`` of the next round (no 409 to learn it)."""
        from overt.formats.note import parse_note

        signers = {(s.name, s.key_id) for s in parse_note(note).signatures}
        for w in witnessing.policy.witnesses:
            state = witnessing.witnesses[w.name]
            if (w.verifier.name, w.verifier.key_id) in signers:
                state.size = max(state.size, size)
        # A new holder refreshes on its own schedule from now, not at once.
        witnessing.last_published = max(witnessing.last_published, time.monotonic())
        self._witness_asked = -1

    def _witness(self, witnessing: Witnessing) -> None:
        """A witnessing round if due: the signed tree is new, or its round failed
        :data:`WITNESS_RETRY` seconds ago, or the published one needs fresh cosignatures."""
        now = time.monotonic()
        signed = self._signed[1]
        unwitnessed = signed > self._published[1]
        stale = now - witnessing.last_published >= WITNESS_REFRESH
        if unwitnessed:
            due = signed != self._witness_asked or now - self._witnessed_at >= WITNESS_RETRY
        else:
            due = stale and now - self._witnessed_at >= WITNESS_RETRY
        if not due:
            return
        self._witnessed_at, self._witness_asked = now, signed
        witnessing.cosign_latest(refresh=not unwitnessed)

    def witness_status(self) -> str:
        """The witnesses' state as this front end knows it (Prometheus lines; empty
        without witnesses, and only the lease holder asks them)."""
        w = self._witnessing
        if w is None:
            return ""
        lines = [
            "# TYPE overt_witness_up gauge",
            *(f'overt_witness_up{{witness="{n}"}} {int(s.up)}' for n, s in w.witnesses.items()),
            "# TYPE overt_witness_size gauge",
            *(f'overt_witness_size{{witness="{n}"}} {s.size}' for n, s in w.witnesses.items()),
        ]
        return "\n".join(lines) + "\n"

    def _refresh_next(self) -> None:
        conn = self._int_db.get()
        row = conn.execute("SELECT next FROM log_sequence WHERE id = 1").fetchone()
        conn.commit()
        if row is not None:
            with self._state_lock:
                self._next = max(self._next, int(row[0]))


def _text(note: bytes) -> bytes:
    """A signed note's text (before the blank line): the checkpoint, without signatures."""
    return note.split(b"\n\n", 1)[0]


class _HolderView:
    """What :class:`overt.log.witnessing.Witnessing` needs of the lease holder
    (:class:`overt.log.witnessing.WitnessedLog`); called under the holder's pass."""

    def __init__(self, log: SharedLog) -> None:
        self._log = log

    @property
    def vkey(self) -> str:
        return self._log.vkey

    @property
    def size(self) -> int:
        return self._log.size

    @property
    def published_size(self) -> int:
        return self._log.published_size

    def latest_signed(self) -> tuple[bytes, int]:
        return self._log.latest_signed()

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        return self._log.consistency_proof(old, new)

    def publish_witnessed(self, note: bytes, size: int) -> None:
        """Swap the row to the cosigned note (a refresh: the same size again)."""
        log = self._log
        if not log.holds_lease or size < log.published_size or size > log.size:
            raise LogError(
                f"refusing to publish size {size} (published {log.published_size},"
                f" signed {log.size}, lease held: {log.holds_lease})"
            )
        log._publish(note, size)
