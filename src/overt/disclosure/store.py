"""The programme's database: SQLAlchemy Core over SQLite (default) or PostgreSQL (by URL).

Tables (times are UTC epoch seconds; ``sealed`` columns are HPKE ciphertexts,
:mod:`overt.disclosure.crypto`, and the database never holds a report's text in clear)::

    reports(id PK, token_hash UNIQUE, researcher, vuln_class, state, verdict,
            cvss_vector, cvss_score, severity, received_at, updated_at, exploited_at,
            salt, size)
    bodies(report_id PK, sealed)                 -- apart, so listing scans small rows
    events(report_id, seq, state, verdict, actor, at, entry, proof)  -- the workflow, logged
    attachments(report_id, seq, size, sealed)
    messages(report_id, seq, author, at, sealed)
    reads(id, report_id, actor, at, what)        -- every read of a report
    accounts(username PK, role, password_hash)   -- argon2id hashes
    sessions(id_hash PK, username, csrf, expires)
    settings(key PK, value)                      -- the bounty table
    payouts(report_id PK, researcher, amount, paid_at)
    advisories(report_id PK, advisory_id UNIQUE, csaf, osv, published_at, entry, proof)

SQLite runs in WAL mode with ``synchronous=FULL``: a commit is on disk when it returns.
Each method is one transaction; every database failure is a :class:`StoreError`
(driver message only: no SQL, no parameters, so no report text in an error line).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
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
    func,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from overt.disclosure.errors import ReportNotFoundError, StoreError

__all__ = [
    "EventRow",
    "ReportRow",
    "Store",
    "SummaryRow",
]

_md = MetaData()
reports = Table(
    "reports",
    _md,
    Column("id", String(64), primary_key=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("researcher", String(100), nullable=False),
    Column("vuln_class", String(32), nullable=False),
    Column("state", String(32), nullable=False),
    Column("verdict", String(32)),
    Column("cvss_vector", String(256)),
    Column("cvss_score", Float),
    Column("severity", String(16)),
    Column("received_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("exploited_at", BigInteger),
    Column("salt", LargeBinary(32), nullable=False),
    Column("size", Integer, nullable=False),
    Index("reports_by_state", "state", "received_at"),
    Index("reports_by_time", "received_at", "id"),
)
# The sealed text lives apart from the metadata, so the triage list scans small rows only.
bodies = Table(
    "bodies",
    _md,
    Column("report_id", String(64), primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
)
events = Table(
    "events",
    _md,
    Column("report_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("state", String(32), nullable=False),
    Column("verdict", String(32)),
    Column("actor", String(100), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("proof", LargeBinary, nullable=False),
)
attachments = Table(
    "attachments",
    _md,
    Column("report_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("size", Integer, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)
messages = Table(
    "messages",
    _md,
    Column("report_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("author", String(100), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("sealed", LargeBinary, nullable=False),
)
reads = Table(
    "reads",
    _md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("report_id", String(64), nullable=False, index=True),
    Column("actor", String(100), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("what", String(64), nullable=False),
)
accounts = Table(
    "accounts",
    _md,
    Column("username", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256), nullable=False),
)
sessions = Table(
    "sessions",
    _md,
    Column("id_hash", LargeBinary(32), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("expires", BigInteger, nullable=False),
)
settings = Table(
    "settings",
    _md,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
payouts = Table(
    "payouts",
    _md,
    Column("report_id", String(64), primary_key=True),
    Column("researcher", String(100), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("paid_at", BigInteger, nullable=False),
)
advisories = Table(
    "advisories",
    _md,
    Column("report_id", String(64), primary_key=True),
    Column("advisory_id", String(64), nullable=False, unique=True),
    Column("csaf", LargeBinary, nullable=False),
    Column("osv", LargeBinary, nullable=False),
    Column("published_at", BigInteger, nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Column("proof", LargeBinary, nullable=False),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


@dataclass(frozen=True)
class EventRow:
    report_id: str
    seq: int
    state: str
    verdict: str | None
    actor: str
    at: int
    entry: bytes
    proof: bytes


@dataclass(frozen=True)
class ReportRow:
    """One report as stored (the body still sealed)."""

    id: str
    researcher: str
    vuln_class: str
    state: str
    verdict: str | None
    cvss_vector: str | None
    cvss_score: float | None
    severity: str | None
    received_at: int
    updated_at: int
    exploited_at: int | None
    salt: bytes
    sealed_body: bytes
    size: int


class SummaryRow(NamedTuple):
    """What the triage list shows of a report (nothing sealed). A tuple: lists are long."""

    id: str
    researcher: str
    vuln_class: str
    state: str
    verdict: str | None
    severity: str | None
    cvss_score: float | None
    received_at: int
    updated_at: int
    exploited_at: int | None


_SUMMARY = [
    reports.c.id,
    reports.c.researcher,
    reports.c.vuln_class,
    reports.c.state,
    reports.c.verdict,
    reports.c.severity,
    reports.c.cvss_score,
    reports.c.received_at,
    reports.c.updated_at,
    reports.c.exploited_at,
]


class Store:
    """The tables above in one database. Thread-safe (one connection per transaction)."""

    def __init__(self, engine: Engine) -> None:
        """Use (creating if needed) the tables in ``engine``. Raises StoreError."""
        self.engine = engine
        with self._failures("open the database"):
            _md.create_all(engine)

    @classmethod
    def open(cls, url_or_path: str | Path) -> Store:
        """A store at a SQLAlchemy URL (``postgresql+psycopg://...``) or a SQLite file path."""
        text = str(url_or_path)
        if "://" in text:
            return cls(create_engine(text, pool_pre_ping=True))
        engine = create_engine(f"sqlite:///{text}")
        event.listen(engine, "connect", _sqlite_pragmas)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    @contextmanager
    def _failures(what: str) -> Iterator[None]:
        try:
            yield
        except IntegrityError as err:
            raise StoreError(f"database: cannot {what}: conflicting record", True) from err
        except (SQLAlchemyError, sqlite3.Error) as err:
            reason = getattr(err, "orig", None) or err
            raise StoreError(f"database: cannot {what}: {reason}") from err

    @contextmanager
    def _tx(self, what: str) -> Iterator[Connection]:
        with self._failures(what), self.engine.begin() as conn:
            yield conn

    # -- reports -----------------------------------------------------------

    def add_reports(
        self,
        rows: Sequence[dict[str, Any]],
        first_events: Sequence[dict[str, Any]],
        attachment_rows: Sequence[dict[str, Any]],
    ) -> None:
        """Insert new reports with their first event and attachments, in one transaction."""
        with self._tx("store reports") as conn:
            meta = [{k: v for k, v in row.items() if k != "sealed_body"} for row in rows]
            conn.execute(reports.insert(), meta)
            conn.execute(
                bodies.insert(),
                [{"report_id": row["id"], "sealed": row["sealed_body"]} for row in rows],
            )
            conn.execute(events.insert(), list(first_events))
            if attachment_rows:
                conn.execute(attachments.insert(), list(attachment_rows))

    def report(self, report_id: str) -> ReportRow:
        """Raises ReportNotFoundError, StoreError."""
        with self._tx("read a report") as conn:
            row = conn.execute(
                select(reports, bodies.c.sealed.label("sealed_body"))
                .join(bodies, bodies.c.report_id == reports.c.id)
                .where(reports.c.id == report_id)
            ).first()
        if row is None:
            raise ReportNotFoundError(report_id)
        values = row._asdict()
        del values["token_hash"]
        return ReportRow(**values)

    def report_id_for_token(self, token_hash: bytes) -> str:
        """Raises ReportNotFoundError (for any token that is not a report's)."""
        with self._tx("find a report") as conn:
            row = conn.execute(
                select(reports.c.id).where(reports.c.token_hash == token_hash)
            ).first()
        if row is None:
            raise ReportNotFoundError("(tracking token)")
        return str(row[0])

    def summaries(self, state: str | None = None, limit: int | None = None) -> list[SummaryRow]:
        """Reports for the triage list, oldest first (optionally in one state)."""
        # Driver SQL: at 10,000 rows the Core result layer costs more than the query.
        columns = ", ".join(c.name for c in _SUMMARY)
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        sql = f"SELECT {columns} FROM reports"
        params: tuple[Any, ...] = ()
        if state is not None:
            sql += f" WHERE state = {mark}"
            params = (state,)
        sql += " ORDER BY received_at, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._tx("list reports") as conn:
            rows = conn.exec_driver_sql(sql, params).fetchall()
        make = SummaryRow._make
        return [make(row) for row in rows]

    def update_report(self, report_id: str, **values: Any) -> None:
        with self._tx("update a report") as conn:
            conn.execute(reports.update().where(reports.c.id == report_id).values(**values))

    def add_event(self, row: dict[str, Any], report_values: dict[str, Any]) -> None:
        """Record a transition and update the report, in one transaction."""
        with self._tx("record a transition") as conn:
            conn.execute(events.insert(), [row])
            conn.execute(
                reports.update().where(reports.c.id == row["report_id"]).values(**report_values)
            )

    def events(self, report_ids: Sequence[str] | None = None) -> list[EventRow]:
        """The events of some reports (all reports when None), in order."""
        query = select(events).order_by(events.c.report_id, events.c.seq)
        with self._tx("read transitions") as conn:
            if report_ids is None:
                return [EventRow(**row._asdict()) for row in conn.execute(query)]
            out: list[EventRow] = []
            ids = list(report_ids)
            for i in range(0, len(ids), 2000):  # SQLite caps bound parameters
                chunk = query.where(events.c.report_id.in_(ids[i : i + 2000]))
                out.extend(EventRow(**row._asdict()) for row in conn.execute(chunk))
            return out

    def attachments(self, report_id: str) -> list[tuple[int, int, bytes]]:
        """(seq, size, sealed) of a report's attachments."""
        query = (
            select(attachments.c.seq, attachments.c.size, attachments.c.sealed)
            .where(attachments.c.report_id == report_id)
            .order_by(attachments.c.seq)
        )
        with self._tx("read attachments") as conn:
            return [(int(a), int(b), bytes(c)) for a, b, c in conn.execute(query)]

    def add_message(self, report_id: str, author: str, at: int, sealed: bytes) -> int:
        with self._tx("store a message") as conn:
            last = conn.execute(
                select(func.max(messages.c.seq)).where(messages.c.report_id == report_id)
            ).scalar()
            seq = 0 if last is None else int(last) + 1
            conn.execute(
                messages.insert(),
                [
                    {
                        "report_id": report_id,
                        "seq": seq,
                        "author": author,
                        "at": at,
                        "sealed": sealed,
                    }
                ],
            )
        return seq

    def messages(self, report_id: str) -> list[tuple[int, str, int, bytes]]:
        """(seq, author, at, sealed) of a report's messages."""
        query = (
            select(messages.c.seq, messages.c.author, messages.c.at, messages.c.sealed)
            .where(messages.c.report_id == report_id)
            .order_by(messages.c.seq)
        )
        with self._tx("read messages") as conn:
            return [(int(s), str(a), int(t), bytes(c)) for s, a, t, c in conn.execute(query)]

    def record_read(self, report_id: str, actor: str, at: int, what: str) -> None:
        with self._tx("record a read") as conn:
            conn.execute(
                reads.insert(), [{"report_id": report_id, "actor": actor, "at": at, "what": what}]
            )

    def reads(self, report_id: str) -> list[tuple[str, int, str]]:
        """(actor, at, what) of every read of a report, in order."""
        query = (
            select(reads.c.actor, reads.c.at, reads.c.what)
            .where(reads.c.report_id == report_id)
            .order_by(reads.c.id)
        )
        with self._tx("read the access record") as conn:
            return [(str(a), int(t), str(w)) for a, t, w in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """Reports per state."""
        query = select(reports.c.state, func.count()).group_by(reports.c.state)
        with self._tx("count reports") as conn:
            return {str(s): int(n) for s, n in conn.execute(query)}

    # -- accounts and sessions ---------------------------------------------

    def add_account(self, username: str, role: str, password_hash: str) -> None:
        with self._tx(f"add account {username!r}") as conn:
            conn.execute(
                accounts.insert(),
                [{"username": username, "role": role, "password_hash": password_hash}],
            )

    def account(self, username: str) -> tuple[str, str] | None:
        """(role, password_hash), or None."""
        with self._tx("read an account") as conn:
            row = conn.execute(
                select(accounts.c.role, accounts.c.password_hash).where(
                    accounts.c.username == username
                )
            ).first()
        return None if row is None else (str(row[0]), str(row[1]))

    def set_password_hash(self, username: str, password_hash: str) -> None:
        with self._tx("update a password") as conn:
            conn.execute(
                accounts.update()
                .where(accounts.c.username == username)
                .values(password_hash=password_hash)
            )

    def add_session(self, id_hash: bytes, username: str, csrf: str, expires: int, now: int) -> None:
        """Open a session (and forget the expired ones)."""
        with self._tx("open a session") as conn:
            conn.execute(sessions.delete().where(sessions.c.expires < now))
            conn.execute(
                sessions.insert(),
                [{"id_hash": id_hash, "username": username, "csrf": csrf, "expires": expires}],
            )

    def session(self, id_hash: bytes) -> tuple[str, str, int] | None:
        """(username, csrf, expires), or None."""
        with self._tx("read a session") as conn:
            row = conn.execute(
                select(sessions.c.username, sessions.c.csrf, sessions.c.expires).where(
                    sessions.c.id_hash == id_hash
                )
            ).first()
        return None if row is None else (str(row[0]), str(row[1]), int(row[2]))

    def drop_session(self, id_hash: bytes) -> None:
        with self._tx("close a session") as conn:
            conn.execute(sessions.delete().where(sessions.c.id_hash == id_hash))

    # -- settings, payouts, advisories ---------------------------------------

    def setting(self, key: str) -> str | None:
        with self._tx("read a setting") as conn:
            row = conn.execute(select(settings.c.value).where(settings.c.key == key)).first()
        return None if row is None else str(row[0])

    def set_setting(self, key: str, value: str) -> None:
        with self._tx("write a setting") as conn:
            conn.execute(settings.delete().where(settings.c.key == key))
            conn.execute(settings.insert(), [{"key": key, "value": value}])

    def add_payout(self, report_id: str, researcher: str, amount: int, paid_at: int) -> None:
        """Raises StoreError if the report was already paid."""
        with self._tx(f"pay report {report_id} (paid already?)") as conn:
            conn.execute(
                payouts.insert(),
                [
                    {
                        "report_id": report_id,
                        "researcher": researcher,
                        "amount": amount,
                        "paid_at": paid_at,
                    }
                ],
            )

    def payouts(self) -> list[tuple[str, str, int, int]]:
        """(report_id, researcher, amount, paid_at) of every payout."""
        query = select(payouts).order_by(payouts.c.paid_at, payouts.c.report_id)
        with self._tx("read payouts") as conn:
            return [(str(r), str(w), int(a), int(t)) for r, w, a, t in conn.execute(query)]

    def add_advisory(
        self,
        report_id: str,
        advisory_id: str,
        csaf: bytes,
        osv: bytes,
        at: int,
        entry: bytes,
        proof: bytes,
    ) -> None:
        with self._tx(f"store the advisory of {report_id} (published already?)") as conn:
            conn.execute(
                advisories.insert(),
                [
                    {
                        "report_id": report_id,
                        "advisory_id": advisory_id,
                        "csaf": csaf,
                        "osv": osv,
                        "published_at": at,
                        "entry": entry,
                        "proof": proof,
                    }
                ],
            )

    def advisories(self) -> list[tuple[str, str, bytes, bytes, int, bytes]]:
        """(report_id, advisory_id, csaf, osv, published_at, proof), oldest first."""
        query = select(
            advisories.c.report_id,
            advisories.c.advisory_id,
            advisories.c.csaf,
            advisories.c.osv,
            advisories.c.published_at,
            advisories.c.proof,
        ).order_by(advisories.c.published_at, advisories.c.advisory_id)
        with self._tx("read advisories") as conn:
            return [
                (str(r), str(a), bytes(c), bytes(o), int(t), bytes(p))
                for r, a, c, o, t, p in conn.execute(query)
            ]
