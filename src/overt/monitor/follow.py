"""Following a log: poll, verify, prove consistency, gossip, fetch and check new entries.

:class:`Monitor` is the shell around :mod:`overt.monitor.verify` (the decisions) and
:mod:`overt.monitor.state` (the memory). One :meth:`Monitor.poll`:

1. refuses to go on if the state holds evidence of an inconsistent log;
2. fetches ``<log>/checkpoint`` and verifies it: the log key (and origin), and with a
   tlog-policy the witness quorum (:func:`overt.formats.policy.verify_checkpoint`); a
   checkpoint that does not verify is an alert and is not used;
3. proves it consistent with the kept checkpoint, computing the consistency proof from the
   log's own tiles; equivocation, rollback or fork is saved as evidence, alerted, and raised;
4. keeps it (atomically, in the state) and compares it with every witness's latest cosigned
   checkpoint (:mod:`overt.monitor.gossip`): a split view is evidence too;
5. downloads the entries it has not checked yet through entry bundles, a batch of tiles at a
   time: each entry's leaf hash must equal its hash in the level-0 tile, and the tree grown
   from those hashes must be a prefix of the kept checkpoint's tree (a consistency proof from
   the batch's end to the checkpoint, or the root itself at the end); only then do the checks
   (:mod:`overt.monitor.checks`) see the entries, and the state moves past them;
6. with mirrors (c2sp.org/tlog-mirror, :mod:`overt.monitor.mirrors`): demands the policy's
   mirror quorum for the tree kept before this poll (mirrors get a poll to catch up), and
   re-reads ``audit_tiles`` old entry bundles a poll, round robin, from the log and from a
   mirror: entries the log deleted or rewrote after its mirrors stored them are an alert
   carrying self-contained evidence (the checkpoint, the original entry and its inclusion
   proof, and what the log serves instead).

With mirrors, a log that is unreachable or does not serve a tile is read from its mirrors
(checked against the same signed checkpoint), and when the log's checkpoint cannot be read,
the largest mirror checkpoint that passes the policy is followed, its cosignatures merged with
the witnesses' copies of the same tree.

A crash between running the checks on a batch and saving the state re-runs the checks on that
batch after a restart: checks are at-least-once, the state is never ahead of the checks. So a
check must not be able to crash the monitor: one that raises or times out on an entry is an
alert, and a check that parses untrusted data with native code does it in a worker process
(``rule-audit``: :mod:`overt.rules._sandbox`).

Example::

    with HTTPSource("https://log.example") as source:
        monitor = Monitor(source, parse_vkey(VKEY), MonitorState("state/"), EventSink())
        monitor.poll()                # or monitor.run(interval=10)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from overt.errors import (
    FormatError,
    InconsistentCheckpointError,
    LogError,
    NotFoundError,
    PolicyError,
    ProofError,
    VerificationError,
)
from overt.formats import merkle, tiles
from overt.formats.checkpoint import SignedCheckpoint, open_checkpoint, parse_checkpoint
from overt.formats.note import Verifier, parse_note
from overt.formats.policy import MirrorQuorumError, Policy, open_trusted_checkpoint, require_mirrors
from overt.formats.strict import b64encode
from overt.log.client import TileSource, tile_reader
from overt.monitor.checks import DEFAULT_CHECK_TIMEOUT, Check, CheckFailure, run_checks
from overt.monitor.events import EventSink
from overt.monitor.gossip import Witness, compare_views, open_witnessed
from overt.monitor.mirrors import (
    FallbackSource,
    Mirror,
    best_checkpoint,
    mirror_sizes,
    prove_entries,
    witness_copies,
)
from overt.monitor.state import MonitorState, Position, make_evidence
from overt.monitor.verify import TilesMismatchError, verify_successor

__all__ = ["Monitor", "PollResult"]

_W = tiles.TILE_WIDTH
_H = merkle.HASH_SIZE


@dataclass(frozen=True)
class PollResult:
    """What one poll did: the kept tree size, entries newly checked, alerts raised."""

    size: int
    checked: int
    entries: int
    alerts: int


class Monitor:
    """Follows one log (``source``, signed by ``verifier``), keeping ``state``, telling ``sink``.

    ``batch_tiles`` entry bundles are fetched (by ``fetch_threads`` threads) and proven
    together before the checks run and the state is saved. A check that raises, or spends more
    than ``check_timeout`` seconds on one entry (None: no limit), is a ``check-failed`` alert
    naming the check and the entry, and the monitor moves on
    (:func:`overt.monitor.checks.run_checks`). ``mirrors`` are read where the log fails and
    audited against it (step 6 of the module docstring), ``audit_tiles`` bundles a poll.
    """

    def __init__(
        self,
        source: TileSource,
        verifier: Verifier,
        state: MonitorState,
        sink: EventSink,
        *,
        policy: Policy | None = None,
        max_age: float | None = None,
        witnesses: Sequence[Witness] = (),
        checks: Sequence[Check] = (),
        check_timeout: float | None = DEFAULT_CHECK_TIMEOUT,
        batch_tiles: int = 64,
        fetch_threads: int = 4,
        clock: Callable[[], float] = time.time,
        name: str = "log",
        mirrors: Sequence[Mirror] = (),
        audit_tiles: int = 4,
    ) -> None:
        if batch_tiles < 1 or fetch_threads < 1:
            raise ValueError("batch_tiles and fetch_threads must be at least 1")
        self.origin_source = source
        self.mirrors = list(mirrors)
        self.audit_tiles = audit_tiles
        self._audit_next = 0  # the next full entry bundle the history audit re-reads
        if self.mirrors:
            source = FallbackSource([source, *(m.source for m in self.mirrors)])
        self.source = source
        self.verifier = verifier
        self.state = state
        self.sink = sink
        self.policy = policy
        self.max_age = max_age
        self.witnesses = list(witnesses) + [
            Witness(f"mirror {m.name}", _MirrorCheckpoint(m), m.verifier) for m in self.mirrors
        ]
        self.checks = list(checks)
        self.check_timeout = check_timeout
        self.batch_tiles = batch_tiles
        self.clock = clock
        self.name = name
        if max_age is not None and policy is None:
            raise PolicyError("freshness (max age) needs a witness policy")
        self._get_tile = tile_reader(source)
        self._cache = tiles.TileCache(256)
        self._pool = ThreadPoolExecutor(fetch_threads, thread_name_prefix="overt-monitor")

    @property
    def origin(self) -> str:
        return self.verifier.name

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one round ----------------------------------------------------------------------

    def poll(self) -> PollResult:
        """Checks the log once (see the module docstring).

        Raises:
            InconsistentCheckpointError: the state holds evidence, or this poll found some
                (saved and alerted first).
            LogError: the log's checkpoint could not be fetched.
            ConfigError: the state could not be read or written.
        """
        alerts = self.sink.alerts
        self._require_clean()
        note = self._read_checkpoint()
        position = self.state.load(self.verifier)
        # The mirrors must hold the tree kept before this poll (they cosign after the log
        # publishes, so the newest tree may not be mirrored yet): with --state, across runs.
        due = position.checkpoint.checkpoint.size if position is not None else 0
        signed = self._open(note)
        if signed is not None:
            position = self._advance(position, signed)
        if position is None:
            return PollResult(0, 0, 0, self.sink.alerts - alerts)
        self._gossip(position.checkpoint)
        before = position.next
        position = self._catch_up(position)
        if self.mirrors:
            self._check_mirrors(position.checkpoint, due)
            self._audit_history(position)
        return PollResult(
            position.checkpoint.checkpoint.size,
            position.next,
            position.next - before,
            self.sink.alerts - alerts,
        )

    def run(self, interval: float, stop: threading.Event | None = None) -> None:
        """Polls every ``interval`` seconds until ``stop`` is set.

        An unreachable log is a warning and the next poll tries again.

        Raises:
            InconsistentCheckpointError: evidence was found (or is on file): nothing through
                this state can be verified any more, so following stops.
            ConfigError: the state could not be read or written.
        """
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                self.poll()
            except LogError as err:
                self.sink.warning("log-unreachable", str(err), origin=self.origin)
            stop.wait(interval)

    def check_checkpoint(self, note: bytes, source: str = "client") -> str:
        """Checks a checkpoint someone else received against this monitor's kept view.

        A client (an updater, an auditor) that got ``note`` elsewhere asks the monitor
        whether it is the same tree, a proven prefix of it (BEHIND), or a proven extension
        (AHEAD; AHEAD_UNPROVEN if the log does not serve that tree's tiles yet). A checkpoint
        that cannot be honest next to the kept one is saved as evidence from ``source``,
        alerted and raised, and poisons the state like any other.

        Raises:
            InconsistentCheckpointError: the state holds evidence, or ``note`` is new evidence.
            FormatError, VerificationError: ``note`` does not verify under the log key, or the
                log's tiles contradict it.
            NotFoundError: the monitor has no kept checkpoint yet (poll first).
            LogError: the log's tiles could not be read.
        """
        self._require_clean()
        position = self.state.load(self.verifier)
        if position is None:
            raise NotFoundError(f"the monitor has no checkpoint of {self.origin} yet")
        signed = open_checkpoint(note, self.verifier, self.origin)
        kept = position.checkpoint
        try:
            return compare_views(kept, signed, self._prove)
        except InconsistentCheckpointError as err:
            self._evidence(err, {kept.raw: self.name, signed.raw: source})
            raise

    # --- steps --------------------------------------------------------------------------

    def _require_clean(self) -> None:
        try:
            self.state.require_clean()
        except InconsistentCheckpointError as err:
            self.sink.alert("evidence-on-file", str(err), origin=self.origin)
            raise

    def _trust(self, note: bytes) -> SignedCheckpoint:
        return open_trusted_checkpoint(
            note,
            self.verifier,
            self.policy,
            now=self.clock(),
            max_age=self.max_age,
            origin=self.origin,
        )

    def _read_checkpoint(self) -> bytes:
        """The log's checkpoint; if the log is unreachable, the best its mirrors serve."""
        try:
            return self.origin_source.read("checkpoint")
        except LogError as err:
            if not self.mirrors:
                raise
            problem = str(err)
        extra = witness_copies(self.witnesses, self.origin)
        try:
            note = best_checkpoint(self.mirrors, self.verifier, self._trust, extra)
        except (FormatError, VerificationError) as err:
            raise LogError(f"{problem}; and no mirror checkpoint passes: {err}") from err
        size = parse_checkpoint(parse_note(note).text).size
        self.sink.warning(
            "log-unreachable",
            f"{problem}; following the checkpoint of size {size} its mirrors serve",
            origin=self.origin,
        )
        return note

    def _open(self, note: bytes) -> SignedCheckpoint | None:
        """The log's checkpoint, verified; None (and an alert) if it does not verify."""
        try:
            signed = self._trust(note)
        except (FormatError, VerificationError) as err:
            self.sink.alert(
                "bad-checkpoint",
                f"the log's checkpoint does not verify: {err}",
                origin=self.origin,
                note=note.decode("utf-8", "replace")[:4096],
            )
            return None
        return signed

    def _prove(self, old: int, new: int) -> tuple[list[bytes], bytes]:
        """The consistency proof ``old -> new`` and the prefix root at ``old``, from tiles."""
        subtree = tiles.subtree_from_tiles(self._get_tile, new, self._cache)
        return merkle.consistency_proof(old, new, subtree), subtree(0, old)

    def _save(self, position: Position) -> None:
        self.state.save(position, self.verifier)

    def _evidence(self, err: InconsistentCheckpointError, sources: dict[bytes, str]) -> None:
        """Saves the evidence ``err`` carries, then alerts (in that order: see state.py)."""
        self._cache.clear()
        kind = getattr(err, "kind", "fork")
        labels = tuple(sources.get(n, "unknown") for n in err.evidence)
        a, b = labels[0], labels[-1]
        where = self.state.save_evidence(make_evidence(err, kind, self.origin, (a, b)))
        self.sink.alert(kind, str(err), origin=self.origin, evidence=where, sources=[a, b])

    def _advance(self, position: Position | None, signed: SignedCheckpoint) -> Position | None:
        cp = signed.checkpoint
        if position is None:
            # Trust on first use: nothing to be consistent with yet (the empty root still
            # has to be right, and every entry will be proven against this tree).
            try:
                verify_successor(signed, signed, [])
            except InconsistentCheckpointError as err:
                self._evidence(err, {signed.raw: self.name})
                raise
            position = Position(signed, merkle.CompactRange())
            self._save(position)
            self.sink.info(
                "checkpoint",
                f"first checkpoint of {self.origin}: size {cp.size}",
                origin=self.origin,
                size=cp.size,
                root=cp.root_hash.hex(),
                first=True,
            )
            return position
        kept = position.checkpoint
        if signed.raw == kept.raw:
            return position
        old = kept.checkpoint.size
        try:
            proof, prefix = self._prove(old, cp.size) if 0 < old < cp.size else ([], None)
        except NotFoundError as err:
            self.sink.warning(
                "tiles-unavailable",
                f"the log does not serve the tiles of its checkpoint (size {cp.size}): {err}",
                origin=self.origin,
                size=cp.size,
            )
            return position
        except (FormatError, VerificationError) as err:
            self._cache.clear()
            self.sink.alert("bad-tiles", str(err), origin=self.origin, size=cp.size)
            return position
        try:
            verify_successor(kept, signed, proof, prefix)
        except TilesMismatchError as err:
            self._cache.clear()
            self.sink.alert("bad-tiles", str(err), origin=self.origin, size=cp.size)
            return position
        except InconsistentCheckpointError as err:
            self._evidence(err, {kept.raw: f"{self.name} (kept)", signed.raw: self.name})
            raise
        if cp.size == old:
            return position  # the same tree, signed again: keep the note we have
        position = Position(signed, position.edge)
        self._save(position)
        self.sink.info(
            "checkpoint",
            f"{self.origin} grew from {old} to {cp.size}, consistent",
            origin=self.origin,
            size=cp.size,
            old_size=old,
            root=cp.root_hash.hex(),
        )
        return position

    def _gossip(self, kept: SignedCheckpoint) -> None:
        found: list[InconsistentCheckpointError] = []
        for w in self.witnesses:
            try:
                note = w.source.checkpoint(self.origin)
            except LogError as err:
                self.sink.warning("witness-unreachable", str(err), witness=w.name)
                continue
            if note is None:
                self.sink.warning(
                    "witness-unknown-log",
                    f"witness {w.name} has no checkpoint of {self.origin}",
                    witness=w.name,
                )
                continue
            try:
                witnessed = open_witnessed(note, self.verifier, w)
            except (FormatError, VerificationError) as err:
                self.sink.alert(
                    "witness-checkpoint-invalid",
                    f"witness {w.name} serves a checkpoint that does not verify: {err}",
                    witness=w.name,
                    origin=self.origin,
                )
                continue
            try:
                relation = compare_views(kept, witnessed, self._prove)
            except InconsistentCheckpointError as err:
                self._evidence(err, {kept.raw: self.name, witnessed.raw: f"witness {w.name}"})
                found.append(err)
                continue
            except (LogError, FormatError, VerificationError) as err:
                self.sink.warning("witness-compare-failed", str(err), witness=w.name)
                continue
            self.sink.info(
                "witness",
                f"witness {w.name} cosigned size {witnessed.checkpoint.size}: {relation}",
                witness=w.name,
                relation=relation,
                size=witnessed.checkpoint.size,
            )
        if found:
            raise found[0]

    def _fetch(self, tile: int, size: int) -> tuple[list[bytes], bytes]:
        width = tiles.tile_width(0, tile, size)
        bundle = self.source.read(tiles.entries_path(tile, width))
        hashes = self._get_tile(0, tile, width)
        return tiles.parse_entry_bundle(bundle, width), hashes

    def _catch_up(self, position: Position) -> Position:
        signed = position.checkpoint
        size, root = signed.checkpoint.size, signed.checkpoint.root_hash
        edge = position.edge.copy()
        while edge.size < size:
            lo = edge.size
            first = lo // _W
            last = min((size + _W - 1) // _W, first + self.batch_tiles)
            end = min(size, last * _W)
            try:
                fetched = list(self._pool.map(lambda t: self._fetch(t, size), range(first, last)))
            except NotFoundError as err:
                self.sink.warning("entries-unavailable", str(err), origin=self.origin, index=lo)
                return position
            except LogError as err:
                self.sink.warning("log-unreachable", str(err), origin=self.origin, index=lo)
                return position
            except (FormatError, VerificationError) as err:
                self._cache.clear()
                self.sink.alert("bad-bundle", str(err), origin=self.origin, index=lo)
                return position
            batch: list[tuple[int, bytes]] = []
            for tile, (entries, hashes) in zip(range(first, last), fetched, strict=True):
                base = tile * _W
                start = max(lo, base) - base
                try:
                    leaves = tiles.verify_entries(entries, hashes, tile, start)
                except tiles.EntryMismatchError as err:
                    self._cache.clear()
                    self.sink.alert("entry-mismatch", str(err), origin=self.origin, index=err.index)
                    return position
                for i, h in enumerate(leaves, start):
                    edge.append(h)
                    batch.append((base + i, entries[i]))
            try:
                if end < size:
                    proof, _ = self._prove(end, size)
                    merkle.verify_consistency(end, size, edge.root(), root, proof)
                elif edge.root() != root:
                    raise ProofError(f"the entries do not lead to the root at size {size}")
            except (ProofError, FormatError, VerificationError, NotFoundError) as err:
                self._cache.clear()
                self.sink.alert(
                    "bad-tiles",
                    f"entries [{lo}, {end}) are not a prefix of the tree at size {size}: {err}",
                    origin=self.origin,
                    index=lo,
                )
                return position
            self._run_checks(batch)
            position = Position(signed, edge.copy())
            self._save(position)
            self.sink.info(
                "entries",
                f"checked entries [{lo}, {end}) of {self.origin}",
                origin=self.origin,
                start=lo,
                end=end,
            )
        return position

    def _check_mirrors(self, kept: SignedCheckpoint, due: int) -> None:
        """The mirror quorum must hold entries ``[0, due)`` of the kept tree (an alert if not)."""
        if self.policy is None or self.policy.mirror_quorum is None or due == 0:
            return
        try:
            views = mirror_sizes(kept, self.mirrors, self.verifier, self._prove)
        except InconsistentCheckpointError:
            return  # the gossip with the same mirrors has saved it as evidence already
        sizes = {v.mirror.name: v.holds for v in views}
        for _verifier, sig in kept.cosignatures():
            key = (sig.name, sig.key_id)
            m = next(
                (m for m in self.policy.mirrors if (m.verifier.name, m.verifier.key_id) == key),
                None,
            )
            if m is not None:
                sizes[m.name] = max(sizes.get(m.name, 0), kept.checkpoint.size)
        floors = {v.mirror.name: v.min_index for v in views}
        try:
            require_mirrors(self.policy, sizes, 0, due, floors)
        except MirrorQuorumError as err:
            self.sink.alert(
                "mirror-quorum",
                str(err),
                origin=self.origin,
                first=err.first,
                end=err.end,
                holding=list(err.holding),
                problems={v.mirror.name: v.problem for v in views if v.problem},
            )

    def _audit_history(self, position: Position) -> None:
        """Re-read a few checked entry bundles from the log and compare them with a mirror's."""
        checked = position.next
        count = (checked + _W - 1) // _W
        if count == 0 or self.audit_tiles < 1:
            return
        kept = position.checkpoint
        for _ in range(min(self.audit_tiles, count)):
            tile = self._audit_next % count
            self._audit_next = tile + 1
            if not self._audit_tile(kept, tile, min(_W, checked - tile * _W)):
                return

    def _audit_tile(self, kept: SignedCheckpoint, tile: int, width: int) -> bool:
        """One bundle; False if the log could not be asked (the audit waits for next poll).

        Every mirror's copy is proven against the kept checkpoint: a mirror serving entries
        that are not the tree's is an alert too (it cosigned data it does not serve). A
        partial bundle may since have been completed: the full one, cut, is read instead.
        """
        path = tiles.entries_path(tile, width)
        served: list[bytes] | None
        try:
            served = tiles.parse_entry_bundle(
                FallbackSource([self.origin_source]).read(path), width
            )
        except NotFoundError:
            served = None
        except LogError:
            return False
        except FormatError:
            served = []
        size = kept.checkpoint.size
        held: tuple[Mirror, list[bytes], tiles.TileReader] | None = None
        for m in self.mirrors:
            # Through a fallback of its own: a mirror ahead may hold full tiles only.
            subtree = tiles.subtree_from_tiles(tile_reader(FallbackSource([m.source])), size)
            try:
                copy = tiles.parse_entry_bundle(FallbackSource([m.source]).read(path), width)
                prove_entries(copy, tile * _W, kept, subtree)
            except (ProofError, FormatError) as err:
                self.sink.alert(
                    "mirror-bad-entries",
                    f"mirror {m.name} serves entries [{tile * _W}, {tile * _W + width}) that"
                    f" are not those of the tree of size {size}: {err}",
                    origin=self.origin,
                    mirror=m.name,
                    index=tile * _W,
                )
                continue
            except (LogError, VerificationError):
                continue  # this mirror does not hold it (pruned, behind) or cannot be read
            held = held or (m, copy, subtree)
        if held is None or served == held[1]:
            return True
        m, original, subtree = held
        if served is None:
            index, kind = tile * _W, "history-deleted"
            what = f"the log no longer serves entries [{index}, {index + width})"
        else:
            index = tile * _W + next(
                (i for i, e in enumerate(original) if i >= len(served) or served[i] != e), 0
            )
            kind = "history-rewritten"
            what = f"the log serves another entry {index} than the one in its tree"
        try:
            proof = merkle.inclusion_proof(index, size, subtree)
        except (LogError, FormatError, VerificationError):
            return True
        at = index - tile * _W
        self.sink.alert(
            kind,
            f"{what} (size {size}); mirror {m.name} holds the original",
            origin=self.origin,
            index=index,
            mirror=m.name,
            checkpoint=kept.raw.decode("utf-8", "replace"),
            entry=b64encode(original[at]),
            proof=[b64encode(h) for h in proof],
            served=None if served is None or at >= len(served) else b64encode(served[at]),
        )
        return True

    def _run_checks(self, batch: Sequence[tuple[int, bytes]]) -> None:
        # A check that raises or times out on an entry is an alert naming both, and the
        # monitor moves on (overt.monitor.checks.run_checks): one hostile entry must not
        # stop the monitor on every restart.
        for res in run_checks(self.checks, batch, self.check_timeout):
            if isinstance(res, CheckFailure):
                self.sink.alert(
                    "check-failed",
                    f"check {res.check} failed on entry {res.index}: {res.why}",
                    check=res.check,
                    index=res.index,
                )
            else:
                self.sink.alert("check", res.message, check=res.check, index=res.index)


class _MirrorCheckpoint:
    """A mirror's checkpoint as a :class:`~overt.monitor.gossip.WitnessSource`, for gossip."""

    def __init__(self, mirror: Mirror) -> None:
        self.mirror = mirror
        self.url = mirror.name

    def logs(self) -> list[str]:
        return []

    def checkpoint(self, origin: str) -> bytes | None:
        try:
            return self.mirror.source.read("checkpoint")
        except NotFoundError:
            return None
