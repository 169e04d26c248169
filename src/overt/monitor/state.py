"""A monitor's persisted state: the kept checkpoint, how far entries are checked, and evidence.

Layout of the state directory (``overt monitor --state DIR``)::

    DIR/state.json                 the position, one JSON object (below)
    DIR/evidence/<kind>-<id>.json  one file per inconsistency found, never deleted by overt

``state.json`` (canonical JSON, sorted members, strictly parsed on load)::

    {"version": 1,
     "log": "<key name>+<key ID hex>",        the log this state follows
     "checkpoint": "<signed note>",          the latest verified checkpoint, exactly as received
     "next": <int>,                          entries [0, next) are checked
     "edge": ["<base64 hash>", ...]}         the compact range of the tree [0, next)

An evidence file (:mod:`overt.monitor.verify` says what each kind proves)::

    {"version": 1, "kind": "equivocation" | "rollback" | "fork",
     "origin": "...", "reason": "...", "time": <POSIX seconds>,
     "notes": ["<signed note>", "<signed note>"],    both checkpoints, exactly as received
     "sources": ["<where the first came from>", "<where the second came from>"],
     "proof": ["<base64 hash>", ...],                a fork's consistency proof, else []
     "prefix_root": "<base64 hash>" | null}          a fork's prefix root, else null

:meth:`Evidence.verify` checks a record with the log's key alone, so it can be handed to
anyone.

Example: after following ``example.com/log`` to size 1000 and checking every entry,
``state.json`` holds that size-1000 checkpoint, ``"next": 1000`` and 6 edge hashes, one per set bit of 1000 (512 + 256 + 128 + 64 + 32 + 8).

Invariants (checked on load, not trusted): the checkpoint verifies under the log key; ``next``
is at most its size; ``edge`` has one hash per set bit of ``next``. The edge's root is not
re-proven on load; it was proven to be a prefix of the kept tree before it was saved and is
proven again, against the next checkpoint, before any entry after it counts.

Crash consistency: everything that must agree lives in the one ``state.json``, replaced
atomically (temporary file, fsync, ``os.replace``, fsync of the directory), so a crash
leaves either the old position or the new one. Evidence is written (atomically) *before*
anything else reacts to it, and its mere presence makes :meth:`MonitorState.require_clean`
refuse: once a monitor has proof that the log lied, every later verification through that
state fails until a human removes the evidence.

Versioning: ``"version": 1``; a reader refuses any other version.

Where the bytes live is a :class:`MonitorStore`: a directory (above), memory
(``overt monitor`` without ``--state``), or a database (:class:`DatabaseStore`,
SQLite or PostgreSQL by URL, for monitors that run on several machines or keep
their state with the rest of the operator's data). A database store keeps the
same two documents in two tables, keyed by a state name so that several
monitors can share one database::

    monitor_position(state TEXT PRIMARY KEY, data BLOB)          state.json
    monitor_evidence(state TEXT, name TEXT, data BLOB)           evidence/<name>

Each write is one committed transaction (durable on return); evidence rows are
only ever inserted, never replaced. The tables are created and migrated by
Alembic (:func:`overt.db.upgrade`) when the store opens.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from overt.errors import ConfigError, FormatError, InconsistentCheckpointError, OvertError
from overt.formats.checkpoint import SignedCheckpoint, open_checkpoint
from overt.formats.merkle import HASH_SIZE, CompactRange
from overt.formats.note import MAX_NOTE_SIZE, Verifier
from overt.formats.strict import (
    b64encode,
    dump_json_canonical,
    json_b64,
    json_int,
    json_list,
    json_str,
    load_json,
)
from overt.log.fs import atomic_write
from overt.monitor.verify import EVIDENCE_KINDS, ForkError, verify_evidence

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = [
    "STATE_VERSION",
    "DatabaseStore",
    "DirectoryStore",
    "Evidence",
    "MonitorState",
    "MonitorStore",
    "Position",
    "format_evidence",
    "format_state",
    "log_id",
    "make_evidence",
    "parse_evidence",
    "parse_state",
]

STATE_VERSION = 1
_MAX_STATE_SIZE = 4 * MAX_NOTE_SIZE  # a note, JSON-escaped, and at most 64 hashes
_MAX_EVIDENCE_SIZE = 8 * MAX_NOTE_SIZE
_STATE_KEYS = frozenset({"version", "log", "checkpoint", "next", "edge"})
_EVIDENCE_KEYS = frozenset(
    {"version", "kind", "origin", "reason", "time", "notes", "sources", "proof", "prefix_root"}
)
_KINDS = frozenset(EVIDENCE_KINDS)
_EVIDENCE_NAME = re.compile(r"[a-z]+-[0-9a-f]{16}\.json")


def log_id(verifier: Verifier) -> str:
    """How a state names its log: ``<key name>+<key ID hex>`` (the vkey without the key)."""
    return f"{verifier.name}+{verifier.key_id.hex()}"


@dataclass(frozen=True)
class Position:
    """Where a monitor stands: the kept checkpoint and the checked prefix ``[0, next)``.

    ``edge`` is the compact range of the checked prefix (``edge.size == next``).
    """

    checkpoint: SignedCheckpoint
    edge: CompactRange

    @property
    def next(self) -> int:
        return self.edge.size


@dataclass(frozen=True)
class Evidence:
    """Two signed checkpoints of one log that cannot both be honest, and why."""

    kind: str
    origin: str
    reason: str
    notes: tuple[bytes, ...]
    sources: tuple[str, ...]
    time: int
    proof: tuple[bytes, ...] = ()
    prefix_root: bytes | None = None

    def verify(self, verifier: Verifier) -> tuple[SignedCheckpoint, SignedCheckpoint]:
        """Checks, with the log key alone, that this record proves a ``kind`` inconsistency.

        Raises:
            FormatError, VerificationError: it does not (see
                :func:`overt.monitor.verify.verify_evidence`).
        """
        return verify_evidence(self.kind, self.notes, verifier, self.proof, self.prefix_root)

    @property
    def id(self) -> str:
        """A stable name: 16 hex digits of SHA-256 over the kind and the notes."""
        digest = hashlib.sha256(self.kind.encode())
        for note in self.notes:
            digest.update(len(note).to_bytes(8, "big") + note)
        return digest.hexdigest()[:16]

    @property
    def filename(self) -> str:
        return f"{self.kind}-{self.id}.json"


def _field(obj: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = obj[key]
    if kind is int:
        return json_int(value, what, repr(key))
    if kind is str:
        return json_str(value, what, repr(key), nonempty=False)
    return json_list(value, what, repr(key))


def _note_text(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(what, "a note is not a string", repr(value)[:60])
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise FormatError(what, "a note is not UTF-8", value[:60]) from err


def _b64_hash(item: object, what: str) -> bytes:
    return json_b64(item, what, "a hash", HASH_SIZE)


def _b64(h: bytes) -> str:
    return b64encode(h)


def format_state(position: Position, verifier: Verifier) -> bytes:
    """The ``state.json`` bytes for ``position`` of the log ``verifier``."""
    return dump_json_canonical(
        {
            "version": STATE_VERSION,
            "log": log_id(verifier),
            "checkpoint": position.checkpoint.raw.decode("utf-8"),
            "next": position.next,
            "edge": [_b64(h) for h in position.edge.hashes],
        }
    )


def parse_state(data: bytes, verifier: Verifier) -> Position:
    """Parses and re-verifies ``state.json`` for the log ``verifier``.

    Raises:
        FormatError: not the JSON object above (unknown or missing members, wrong types,
            non-canonical base64, an edge that does not fit ``next``, ``next`` beyond the
            checkpoint's size).
        ConfigError: the state belongs to another log, or has another version.
        VerificationError: the kept checkpoint does not verify under the log key.
    """
    obj = load_json(data, "monitor state", _MAX_STATE_SIZE)
    if not isinstance(obj, dict) or set(obj) != _STATE_KEYS:
        raise FormatError("monitor state", f"members must be {sorted(_STATE_KEYS)}", data[:60])
    if _field(obj, "version", int, "monitor state") != STATE_VERSION:
        raise ConfigError(f"monitor state version {obj['version']!r} is not {STATE_VERSION}")
    if _field(obj, "log", str, "monitor state") != log_id(verifier):
        raise ConfigError(f"monitor state follows the log {obj['log']!r}, not {log_id(verifier)!r}")
    signed = open_checkpoint(_note_text(obj["checkpoint"], "monitor state"), verifier)
    nxt = _field(obj, "next", int, "monitor state")
    if not 0 <= nxt <= signed.checkpoint.size:
        raise FormatError("monitor state", f"next {nxt} is not within the kept checkpoint")
    hashes = [_b64_hash(h, "monitor state") for h in _field(obj, "edge", list, "monitor state")]
    try:
        edge = CompactRange(nxt, hashes)
    except ValueError as err:
        raise FormatError("monitor state", str(err)) from err
    return Position(signed, edge)


def format_evidence(evidence: Evidence) -> bytes:
    """An evidence file's bytes (canonical JSON)."""
    return dump_json_canonical(
        {
            "version": STATE_VERSION,
            "kind": evidence.kind,
            "origin": evidence.origin,
            "reason": evidence.reason,
            "time": evidence.time,
            "notes": [n.decode("utf-8") for n in evidence.notes],
            "sources": list(evidence.sources),
            "proof": [_b64(h) for h in evidence.proof],
            "prefix_root": None if evidence.prefix_root is None else _b64(evidence.prefix_root),
        }
    )


def parse_evidence(data: bytes) -> Evidence:
    """Parses an evidence file (without verifying its notes: see the module docstring).

    Raises:
        FormatError: not the JSON object above.
    """
    what = "monitor evidence"
    obj = load_json(data, what, _MAX_EVIDENCE_SIZE)
    if not isinstance(obj, dict) or set(obj) != _EVIDENCE_KEYS:
        raise FormatError(what, f"members must be {sorted(_EVIDENCE_KEYS)}", data[:60])
    if _field(obj, "version", int, what) != STATE_VERSION:
        raise FormatError(what, f"version is not {STATE_VERSION}", repr(obj["version"]))
    kind = _field(obj, "kind", str, what)
    if kind not in _KINDS:
        raise FormatError(what, f"kind is not one of {sorted(_KINDS)}", kind)
    notes = tuple(_note_text(n, what) for n in _field(obj, "notes", list, what))
    sources = _field(obj, "sources", list, what)
    if not all(isinstance(s, str) for s in sources) or len(sources) != len(notes) or not notes:
        raise FormatError(what, "notes and sources must be non-empty lists of strings, paired")
    proof = tuple(_b64_hash(h, what) for h in _field(obj, "proof", list, what))
    prefix = obj["prefix_root"]
    return Evidence(
        kind=kind,
        origin=_field(obj, "origin", str, what),
        reason=_field(obj, "reason", str, what),
        notes=notes,
        sources=tuple(sources),
        time=_field(obj, "time", int, what),
        proof=proof,
        prefix_root=None if prefix is None else _b64_hash(prefix, what),
    )


class MonitorStore(Protocol):
    """Where a monitor keeps its two documents: the position and the evidence records.

    ``where`` names the place in messages. Every method raises ConfigError when
    the storage fails.
    """

    where: str

    def read_position(self) -> bytes | None:
        """The saved ``state.json`` bytes, or None."""
        ...

    def write_position(self, data: bytes) -> None:
        """Replace the position atomically; durable on return."""
        ...

    def add_evidence(self, name: str, data: bytes) -> str:
        """Store a record under ``name`` unless one is there (never replaced); says where."""
        ...

    def evidence_files(self) -> dict[str, bytes]:
        """Every stored record by name, including ones that may not parse."""
        ...


class _MemoryStore:
    where = "this monitor's memory"

    def __init__(self) -> None:
        self._position: bytes | None = None
        self._evidence: dict[str, bytes] = {}

    def read_position(self) -> bytes | None:
        return self._position

    def write_position(self, data: bytes) -> None:
        self._position = data

    def add_evidence(self, name: str, data: bytes) -> str:
        self._evidence.setdefault(name, data)
        return name

    def evidence_files(self) -> dict[str, bytes]:
        return dict(self._evidence)


class DirectoryStore:
    """``DIR/state.json`` and ``DIR/evidence/`` (the layout above). Raises ConfigError."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.state_file = self.directory / "state.json"
        self.evidence_dir = self.directory / "evidence"
        self.where = str(self.evidence_dir)
        try:
            self.evidence_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"cannot create state directory {directory}: {err}") from err

    def read_position(self) -> bytes | None:
        try:
            return self.state_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ConfigError(f"cannot read {self.state_file}: {err.strerror}") from err

    def write_position(self, data: bytes) -> None:
        try:
            atomic_write(self.state_file, data)
        except OSError as err:
            raise ConfigError(f"cannot write {self.state_file}: {err.strerror}") from err

    def add_evidence(self, name: str, data: bytes) -> str:
        path = self.evidence_dir / name
        if not path.exists():
            try:
                atomic_write(path, data)
            except OSError as err:
                raise ConfigError(f"cannot write {path}: {err.strerror}") from err
        return str(path)

    def evidence_files(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        try:
            names = sorted(p.name for p in self.evidence_dir.iterdir())
        except OSError as err:
            raise ConfigError(f"cannot list {self.evidence_dir}: {err.strerror}") from err
        for name in names:
            if name.startswith("."):  # a temporary file of an interrupted write
                continue
            try:
                out[name] = (self.evidence_dir / name).read_bytes()
            except OSError as err:
                raise ConfigError(f"cannot read evidence {name}: {err.strerror}") from err
        return out


class DatabaseStore:
    """The two documents in a database (``sqlite:///...`` or ``postgresql://...``).

    ``name`` keys this monitor's rows (several monitors may share a database).
    Raises ConfigError: the URL is not supported or the database cannot be used.
    """

    def __init__(
        self, url: str, name: str = "default", *, connect_args: dict[str, Any] | None = None
    ) -> None:
        from sqlalchemy import Column, LargeBinary, MetaData, String, Table

        from overt.db import engine_from_url, upgrade

        self.name = name
        metadata = MetaData()
        self._position = Table(
            "monitor_position",
            metadata,
            Column("state", String(255), primary_key=True),
            Column("data", LargeBinary, nullable=False),
        )
        self._evidence = Table(
            "monitor_evidence",
            metadata,
            Column("state", String(255), primary_key=True),
            Column("name", String(255), primary_key=True),
            Column("data", LargeBinary, nullable=False),
        )
        self.engine: Engine = engine_from_url(url, connect_args=connect_args)
        self.where = f"the monitor state {name!r} in the database"
        try:
            upgrade(self.engine)  # the tables come from the Alembic migrations
        except ConfigError:
            self.engine.dispose()
            raise

    @contextlib.contextmanager
    def _failures(self, what: str) -> Iterator[None]:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield
        except SQLAlchemyError as err:
            reason = getattr(err, "orig", None) or err
            raise ConfigError(f"cannot {what} {self.where}: {reason}") from err

    def _insert(self, table: Any) -> Any:
        # ON CONFLICT is spelled per dialect; both have the same Insert methods.
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    def read_position(self) -> bytes | None:
        from sqlalchemy import select

        t = self._position
        with self._failures("read"), self.engine.connect() as conn:
            data = conn.execute(select(t.c.data).where(t.c.state == self.name)).scalar()
        return None if data is None else bytes(data)

    def write_position(self, data: bytes) -> None:
        stmt = self._insert(self._position).values(state=self.name, data=data)
        stmt = stmt.on_conflict_do_update(index_elements=["state"], set_={"data": data})
        with self._failures("write"), self.engine.begin() as conn:
            conn.execute(stmt)

    def add_evidence(self, name: str, data: bytes) -> str:
        stmt = self._insert(self._evidence).values(state=self.name, name=name, data=data)
        with self._failures("write"), self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing())
        return f"{self.where} (evidence {name})"

    def evidence_files(self) -> dict[str, bytes]:
        from sqlalchemy import select

        t = self._evidence
        query = select(t.c.name, t.c.data).where(t.c.state == self.name).order_by(t.c.name)
        with self._failures("read"), self.engine.connect() as conn:
            return {row.name: bytes(row.data) for row in conn.execute(query)}

    def close(self) -> None:
        self.engine.dispose()


class MonitorState:
    """The state of one monitor, in ``directory`` or (with ``None``) only in memory.

    The in-memory form is what ``overt monitor`` without ``--state`` uses: the same
    rules, forgotten at exit. ``store`` (instead of ``directory``) puts it anywhere
    else, such as a :class:`DatabaseStore`.
    """

    def __init__(self, directory: Path | str | None, *, store: MonitorStore | None = None) -> None:
        if store is not None and directory is not None:
            raise ConfigError("a monitor state has a directory or a store, not both")
        self.directory = None if directory is None else Path(directory)
        self.store: MonitorStore = (
            store
            if store is not None
            else _MemoryStore()
            if self.directory is None
            else DirectoryStore(self.directory)
        )

    @property
    def state_file(self) -> Path | None:
        return None if self.directory is None else self.directory / "state.json"

    @property
    def evidence_dir(self) -> Path | None:
        return None if self.directory is None else self.directory / "evidence"

    def load(self, verifier: Verifier) -> Position | None:
        """The saved position for the log ``verifier``, or None if there is none yet.

        Raises:
            ConfigError: unreadable, malformed, or of another log (see :func:`parse_state`).
        """
        data = self.store.read_position()
        if data is None:
            return None
        try:
            return parse_state(data, verifier)
        except ConfigError:
            raise
        except OvertError as err:
            where = self.state_file or self.store.where
            raise ConfigError(f"monitor state {where} is unusable: {err}") from err

    def save(self, position: Position, verifier: Verifier) -> None:
        """Replaces the saved position, atomically and durably."""
        self.store.write_position(format_state(position, verifier))

    def save_evidence(self, evidence: Evidence) -> str:
        """Stores ``evidence`` (idempotent: the same notes give the same file); returns its name."""
        return self.store.add_evidence(evidence.filename, format_evidence(evidence))

    def _evidence_files(self) -> dict[str, bytes]:
        return self.store.evidence_files()

    def evidence(self) -> list[Evidence]:
        """Every stored piece of evidence that parses, oldest name first."""
        out = []
        for name, data in self._evidence_files().items():
            if _EVIDENCE_NAME.fullmatch(name):
                try:
                    out.append(parse_evidence(data))
                except FormatError:
                    continue
        return out

    def require_clean(self) -> None:
        """Returns only if no evidence of an inconsistent log is stored.

        Any file in the evidence directory counts, even one that does not parse: a damaged
        record of a lie is still a record of a lie.

        Raises:
            InconsistentCheckpointError: with the stored notes as ``evidence``.
        """
        files = self._evidence_files()
        if not files:
            return
        notes: list[bytes] = []
        for data in files.values():
            try:
                notes.extend(parse_evidence(data).notes)
            except FormatError:
                continue
        where = self.store.where
        raise InconsistentCheckpointError(
            f"the log was caught being inconsistent ({', '.join(sorted(files))} in {where});"
            " every verification through this state fails until the evidence is removed",
            tuple(notes),
        )


def make_evidence(
    err: InconsistentCheckpointError,
    kind: str,
    origin: str,
    sources: tuple[str, str],
    now: float | None = None,
) -> Evidence:
    """Evidence from an error of :mod:`overt.monitor.verify` (which carries both notes)."""
    return Evidence(
        kind=kind,
        origin=origin,
        reason=str(err),
        notes=tuple(err.evidence),
        sources=sources,
        time=int(time.time() if now is None else now),
        proof=err.proof if isinstance(err, ForkError) else (),
        prefix_root=err.prefix_root if isinstance(err, ForkError) else None,
    )
