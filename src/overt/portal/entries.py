"""What a log entry says, for people: decoding entries and a search index on disk.

The portal shows every entry of a transparency log. An entry is either a DSSE
envelope of an in-toto statement (what ``overt publish`` and the auditors log:
a release, an update, a rule bundle, a key set, a rule audit, SLSA provenance,
a source review, an SBOM, a disclosure advisory) or opaque bytes (a line of text,
a hash). :func:`decode_entry` turns one entry into a :class:`DecodedEntry`
without trusting it: it only parses (strictly, with :mod:`overt.formats`), and an
entry that does not parse is shown as what it is, never an error page. Nothing
here verifies a signature: what the portal verifies is that the entry is in the
log (:mod:`overt.portal.checks`).

:class:`EntryIndex` keeps the decoded rows of a log in SQLite (SQLAlchemy Core, a
file on disk: a 1,000,000-entry log is not held in memory) and answers searches by
kind, product, version, digest and text; it reads only the entries added since its
last :meth:`EntryIndex.update` (entry bundles, 256 entries a read), so a portal that
restarts over the same index file picks up where it stopped. The index is derived
data: it names the log it indexes (its verifier key) and is rebuilt from the log when
that, or its schema, differs, or when it holds more entries than the log (a log does
not shrink: such a file belongs to another history). Commits are not fsynced
(``synchronous=NORMAL``): after a crash the index may lose its last batch, which
the next update reads again.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from overt.disclosure.timeline import HEADER as COMMITMENT_HEADER
from overt.errors import FormatError, LogError
from overt.formats import tiles
from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, parse_envelope
from overt.formats.statement import (
    CYCLONEDX,
    DISCLOSURE_ADVISORY,
    SLSA_PROVENANCE,
    parse_statement,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["DecodedEntry", "EntryIndex", "EntryReader", "decode_entry"]

# Kinds the statement module does not name itself (Statement.kind covers the rest).
_EXTRA_KINDS = {
    SLSA_PROVENANCE: "provenance",
    DISCLOSURE_ADVISORY: "advisory",
    CYCLONEDX: "sbom",
    "https://overt.dev/source-snapshot/v1": "source-snapshot",
    "https://overt.dev/source-review/v1": "review",
    "https://slsa.dev/verification_summary/v1": "rebuild",
    "https://overt.dev/sbom-scan/v1": "sbom-scan",
}
_MAX_TEXT = 4096


@dataclass(frozen=True)
class DecodedEntry:
    """One log entry as the portal shows it (nothing in it is verified)."""

    index: int
    kind: str  # release, update, rule-bundle, ..., "statement", "text" or "binary"
    subject: str  # the first subject's name, or ""
    digest: str  # the first subject's sha256 hex, or ""
    product: str
    version: str
    size: int
    predicate_type: str = ""
    statement: str = ""  # the statement, pretty-printed JSON
    text: str = ""  # a text entry's text (capped), or a binary entry's hex prefix
    signers: tuple[str, ...] = ()  # DSSE key IDs (unverified: the gate checks them)
    predicate: Mapping[str, Any] | None = None

    @property
    def words(self) -> str:
        """What free-text search matches against (lower case)."""
        parts = (self.kind, self.subject, self.digest, self.product, self.version, self.text[:200])
        return " ".join(parts).lower()


def _field(predicate: Mapping[str, Any], name: str) -> str:
    value = predicate.get(name)
    return value if isinstance(value, str) else ""


def decode_entry(index: int, data: bytes) -> DecodedEntry:
    """The entry at ``index`` decoded for display. Never raises: what does not parse as a
    statement is a ``text`` (UTF-8) or ``binary`` entry."""
    if data[:1] == b"{":
        try:
            envelope = parse_envelope(data)
            if envelope.payload_type == PAYLOAD_TYPE_IN_TOTO:
                statement = parse_statement(envelope.payload)
                ptype = statement.predicate_type
                if ptype.startswith(CYCLONEDX + "/"):  # a versioned CycloneDX type: .../v1.6
                    ptype = CYCLONEDX
                kind = statement.kind or _EXTRA_KINDS.get(ptype, "statement")
                first = statement.subjects[0] if statement.subjects else None
                predicate = statement.predicate
                return DecodedEntry(
                    index=index,
                    kind=kind,
                    subject=first.name if first else "",
                    digest=(first.sha256 or "") if first else "",
                    product=_field(predicate, "product"),
                    version=_field(predicate, "version"),
                    size=len(data),
                    predicate_type=statement.predicate_type,
                    statement=json.dumps(statement.json, indent=2, sort_keys=True),
                    signers=tuple(s.keyid or "" for s in envelope.signatures),
                    predicate=predicate,
                )
        except FormatError:
            pass  # shown as text below: a malformed statement is still an entry of the log
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return DecodedEntry(index, "binary", "", "", "", "", len(data), text=data[:64].hex())
    # A disclosure programme's commitment to a report's state (overt.disclosure.timeline):
    # counted by the disclosure page, never shown as more than its text.
    kind = "disclosure-commitment" if text.startswith(COMMITMENT_HEADER + "\n") else "text"
    return DecodedEntry(index, kind, "", "", "", "", len(data), text=text[:_MAX_TEXT])


class EntryReader(Protocol):
    """What the index reads: a log's published entry bundles (:class:`overt.log.LogView`)."""

    def read_bundle(self, index: int, width: int = tiles.TILE_WIDTH) -> bytes: ...


#: Bumped when the tables change: an index file of another schema is rebuilt.
_SCHEMA = "4"
_BATCH = 64  # entry bundles (16,384 entries) per transaction while catching up
_MAX_PREDICATE = 4096  # bytes of a statement's scalar predicate fields kept for list pages


def _summary(predicate: Mapping[str, Any] | None) -> str:
    """The predicate's scalar fields as JSON (what list pages show: a bundle's rule count,
    an audit's name and result), capped; "" for none. Nested values stay in the log."""
    if not predicate:
        return ""
    scalars = {
        k: v for k, v in predicate.items() if isinstance(v, str | int | float | bool) or v is None
    }
    text = json.dumps(scalars, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= _MAX_PREDICATE else ""


class EntryIndex:
    """Decoded entries of one log in an SQLite file, searchable; grows with :meth:`update`.

    ``path`` None keeps the file in a private temporary directory, removed by :meth:`close`.
    ``log_id`` names the log (its verifier key): a file that indexed another log is
    emptied and rebuilt.

    Raises (any method):
        LogError: the index file cannot be opened, read or written.
    """

    def __init__(self, path: Path | None = None, log_id: str = "") -> None:
        from sqlalchemy import (
            Column,
            Float,
            Index,
            Integer,
            LargeBinary,
            MetaData,
            String,
            Table,
            Text,
            create_engine,
            event,
        )

        self._cleanup: Callable[[], None] | None = None
        if path is None:
            folder = tempfile.mkdtemp(prefix="overt-portal-")
            # Removed with the index (close, or garbage collection): it is only a cache.
            self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
            path = Path(folder) / "index.sqlite"
        self.path = path
        md = MetaData()
        self._meta = Table(
            "meta", md, Column("key", String(32), primary_key=True), Column("value", Text)
        )
        self._rows = Table(
            "entries",
            md,
            Column("idx", Integer, primary_key=True, autoincrement=False),
            Column("kind", String(64), nullable=False),
            Column("subject", Text, nullable=False),
            Column("digest", String(64), nullable=False),
            Column("product", Text, nullable=False),
            Column("version", Text, nullable=False),
            Column("size", Integer, nullable=False),
            Column("predicate_type", Text, nullable=False),
            Column("summary", Text, nullable=False),  # _summary(predicate)
            Column("signers", Text, nullable=False),  # DSSE key IDs, comma-separated
            Column("text", Text, nullable=False),  # a text entry's first 200 characters
            Column("words", Text, nullable=False),  # DecodedEntry.words
            Index("entries_digest", "digest", "idx"),
            Index("entries_kind", "kind", "idx"),
            Index("entries_product", "product", "version", "idx"),
        )
        self._kinds = Table(
            "kinds",
            md,
            Column("kind", String(64), primary_key=True),
            Column("n", Integer, nullable=False),
        )
        self._commitments = Table(
            "commitments",
            md,
            Column("idx", Integer, primary_key=True, autoincrement=False),
            Column("data", LargeBinary, nullable=False),
        )
        self._growth = Table(
            "growth",
            md,
            Column("t", Float, nullable=False),
            Column("size", Integer, primary_key=True, autoincrement=False),
        )
        self._md = md
        self._engine: Engine = create_engine(f"sqlite:///{path}")
        event.listen(self._engine, "connect", _pragmas)
        self._write = threading.Lock()  # one writer; readers run beside it (WAL)
        with self._failures("open"), self._engine.begin() as conn:
            md.create_all(conn)
            stored = {str(k): v for k, v in conn.execute(self._meta.select()).all()}
            if stored.get("schema") != _SCHEMA or stored.get("log") != log_id:
                md.drop_all(conn)
                md.create_all(conn)
                conn.execute(
                    self._meta.insert(),
                    [{"key": "schema", "value": _SCHEMA}, {"key": "log", "value": log_id}],
                )
        self._size = self._count()
        self._kind_counts: tuple[int, dict[str, int]] = (-1, {})

    @contextmanager
    def _failures(self, what: str) -> Iterator[None]:
        """A database failure as LogError (the driver's message, no SQL)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield
        except SQLAlchemyError as err:
            reason = getattr(err, "orig", None) or err
            raise LogError(f"portal index {self.path}: cannot {what}: {reason}") from err

    def _count(self) -> int:
        from sqlalchemy import func, select

        with self._failures("read"), self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self._rows)).scalar_one())

    def close(self) -> None:
        self._engine.dispose()
        if self._cleanup is not None:
            self._cleanup()

    def __len__(self) -> int:
        return self._size

    def update(self, reader: EntryReader, size: int) -> None:
        """Read and decode entries ``len(self)`` .. ``size - 1``. A ``size`` below
        ``len(self)`` (another history than the one indexed) empties the index first.

        Raises:
            FormatError, NotFoundError, LogError: an entry bundle is missing or malformed
                (the rows read so far are kept).
        """
        width = tiles.TILE_WIDTH
        with self._write:
            if size < self._size:
                self._reset()
            while self._size < size:
                batch: list[tuple[int, list[bytes]]] = []
                start = self._size
                while start < size and len(batch) < _BATCH:
                    bundle = start // width
                    count = min(width, size - bundle * width)
                    entries = tiles.parse_entry_bundle(reader.read_bundle(bundle, count), count)
                    batch.append((start, entries[start - bundle * width :]))
                    start = bundle * width + count
                self._add_locked(batch)

    def add(self, entries: Iterable[bytes], start: int) -> None:
        """Decode and index ``entries``, the first at index ``start`` (== ``len(self)``)."""
        with self._write:
            self._add_locked([(start, list(entries))])

    def _reset(self) -> None:
        with self._failures("reset"), self._engine.begin() as conn:
            for table in (self._rows, self._kinds, self._commitments, self._growth):
                conn.execute(table.delete())
        self._size = 0

    def _add_locked(self, batch: list[tuple[int, list[bytes]]]) -> None:
        from sqlalchemy.dialects.sqlite import insert

        rows: list[dict[str, Any]] = []
        commitments: list[dict[str, Any]] = []
        kinds: Counter[str] = Counter()
        expect = self._size
        for start, entries in batch:
            if start != expect:
                raise ValueError(f"entries must be added in order: {start} != {expect}")
            for i, data in enumerate(entries, start):
                row = decode_entry(i, data)
                kinds[row.kind] += 1
                if row.kind == "disclosure-commitment":
                    commitments.append({"idx": i, "data": data})
                rows.append(
                    {
                        "idx": i,
                        "kind": row.kind,
                        "subject": row.subject,
                        "digest": row.digest,
                        "product": row.product,
                        "version": row.version,
                        "size": row.size,
                        "predicate_type": row.predicate_type,
                        "summary": _summary(row.predicate),
                        "signers": ",".join(row.signers),
                        "text": row.text[:200],
                        "words": row.words,
                    }
                )
            expect = start + len(entries)
        if not rows:
            return
        upsert = insert(self._kinds)
        upsert = upsert.on_conflict_do_update(
            index_elements=["kind"], set_={"n": self._kinds.c.n + upsert.excluded.n}
        )
        with self._failures("write"), self._engine.begin() as conn:
            conn.execute(self._rows.insert(), rows)
            if commitments:
                conn.execute(self._commitments.insert(), commitments)
            conn.execute(upsert, [{"kind": k, "n": n} for k, n in kinds.items()])
        self._size = expect

    def _fetch(self, conn: Connection, where: Any, limit: int) -> list[DecodedEntry]:
        from sqlalchemy import select

        query = select(self._rows).where(where).order_by(self._rows.c.idx.desc()).limit(limit)
        return [_row(r) for r in conn.execute(query).mappings()]

    def get(self, index: int) -> DecodedEntry | None:
        """The indexed row ``index`` (its predicate's scalar fields only), or None."""
        with self._failures("read"), self._engine.connect() as conn:
            found = self._fetch(conn, self._rows.c.idx == index, 1)
        return found[0] if found else None

    def search(
        self,
        *,
        kind: str = "",
        product: str = "",
        version: str = "",
        digest: str = "",
        text: str = "",
        limit: int = 100,
    ) -> list[DecodedEntry]:
        """Matching rows, newest first, at most ``limit``.

        ``digest`` is a full sha256 or a prefix (an index range either way); ``text``
        matches kind, subject, digest, product, version and a text entry's start
        (a scan, newest first, that stops at ``limit`` matches).
        """
        from sqlalchemy import and_, true

        c = self._rows.c
        conds: list[Any] = []
        digest = digest.lower()
        if digest:
            conds.append(c.digest == digest if len(digest) == 64 else c.digest.startswith(digest))
        if kind:
            conds.append(c.kind == kind)
        if product:
            conds.append(c.product == product)
        if version:
            conds.append(c.version == version)
        if text:
            conds.append(c.words.contains(text.lower(), autoescape=True))
        with self._failures("search"), self._engine.connect() as conn:
            return self._fetch(conn, and_(true(), *conds), limit)

    def related(self, row: DecodedEntry, limit: int = 1000) -> list[DecodedEntry]:
        """Other entries about the same artifact (same digest) or the same product version:
        release -> provenance -> reviews -> rebuilds -> SBOM -> advisories, audits of a bundle."""
        from sqlalchemy import and_, or_

        c = self._rows.c
        same: list[Any] = []
        if row.digest:
            same.append(c.digest == row.digest)
        if row.product and row.version:
            same.append(and_(c.product == row.product, c.version == row.version))
        if not same:
            return []
        with self._failures("search"), self._engine.connect() as conn:
            found = self._fetch(conn, and_(or_(*same), c.idx != row.index), limit)
        return found[::-1]

    def evidence(self, rows: Iterable[DecodedEntry]) -> dict[int, dict[str, int]]:
        """For each row, how many other entries of each kind :meth:`related` would list
        (same digest, or same product and version): two queries for all the rows."""
        from sqlalchemy import select

        rows = list(rows)
        c = self._rows.c
        digests = {r.digest for r in rows if r.digest}
        pairs = {(r.product, r.version) for r in rows if r.product and r.version}
        found: dict[int, tuple[str, str, str, str]] = {}
        with self._failures("search"), self._engine.connect() as conn:
            columns = select(c.idx, c.kind, c.digest, c.product, c.version)
            for chunk in _chunks(sorted(digests)):
                for i, kind, digest, product, version in conn.execute(
                    columns.where(c.digest.in_(chunk))
                ):
                    found[i] = (kind, digest, product, version)
            for product in sorted({p for p, _ in pairs}):
                versions = sorted(v for p, v in pairs if p == product)
                for chunk in _chunks(versions):
                    query = columns.where(c.product == product, c.version.in_(chunk))
                    for i, kind, digest, product_, version in conn.execute(query):
                        found[i] = (kind, digest, product_, version)
        by_digest: dict[str, list[tuple[int, str]]] = {}
        by_pair: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for i, (kind, digest, product, version) in found.items():
            if digest:
                by_digest.setdefault(digest, []).append((i, kind))
            by_pair.setdefault((product, version), []).append((i, kind))
        out: dict[int, dict[str, int]] = {}
        for r in rows:
            seen = {r.index}
            counts: Counter[str] = Counter()
            for i, kind in [
                *(by_digest.get(r.digest, []) if r.digest else []),
                *(by_pair.get((r.product, r.version), []) if r.product and r.version else []),
            ]:
                if i not in seen:
                    seen.add(i)
                    counts[kind] += 1
            out[r.index] = dict(sorted(counts.items()))
        return out

    def kinds(self) -> dict[str, int]:
        """How many entries of each kind (read once per size of the index)."""
        size, counts = self._kind_counts
        if size == self._size:
            return counts
        with self._failures("read"), self._engine.connect() as conn:
            pairs = conn.execute(self._kinds.select().order_by(self._kinds.c.kind)).all()
            counts = {str(k): int(n) for k, n in pairs}
        self._kind_counts = (self._size, counts)
        return counts

    @property
    def commitments(self) -> list[bytes]:
        """The raw disclosure commitment entries, in log order (programme statistics)."""
        with self._failures("read"), self._engine.connect() as conn:
            query = self._commitments.select().order_by(self._commitments.c.idx)
            return [bytes(r.data) for r in conn.execute(query)]

    def record_growth(self, seen: Iterable[tuple[float, int]]) -> None:
        """Remember that the log had ``size`` entries at ``time`` for each ``(time, size)``
        (the earliest sighting of a size is kept: the portal's own, or a monitor's)."""
        from sqlalchemy import func
        from sqlalchemy.dialects.sqlite import insert

        values = [{"t": t, "size": n} for t, n in seen]
        if not values:
            return
        upsert = insert(self._growth)
        upsert = upsert.on_conflict_do_update(
            index_elements=["size"], set_={"t": func.min(self._growth.c.t, upsert.excluded.t)}
        )
        with self._failures("write"), self._engine.begin() as conn:
            conn.execute(upsert, values)

    def growth(self) -> list[tuple[float, int]]:
        """Every (time, size) this index saw, oldest first."""
        with self._failures("read"), self._engine.connect() as conn:
            query = self._growth.select().order_by(self._growth.c.size)
            return [(float(t), int(n)) for t, n in conn.execute(query).all()]


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    """Bound parameters per query well below SQLite's limit."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # derived data: a lost batch is read again
    cur.close()


def _row(r: Any) -> DecodedEntry:  # a RowMapping
    summary = r["summary"]
    return DecodedEntry(
        index=r["idx"],
        kind=r["kind"],
        subject=r["subject"],
        digest=r["digest"],
        product=r["product"],
        version=r["version"],
        size=r["size"],
        predicate_type=r["predicate_type"],
        text=r["text"],
        signers=tuple(r["signers"].split(",")) if r["signers"] else (),
        predicate=json.loads(summary) if summary else None,
    )
