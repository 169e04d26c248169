"""The region collector: sealed payloads in, signed receipts out, every read logged first.

A collector directory (``overt collector init``) holds::

    DIR/collector.json    region, name, retention bound, store URL (when not SQLite)
    DIR/collector.key     the region's HPKE key (0600); DIR/collector.key.pub the logged text
    DIR/policies/C.json   the logged policy of each customer C it accepts payloads for
    DIR/token             bearer token of the query API (0600)
    DIR/receipts/         the receipt log (an overt Log: tlog-tiles, signed checkpoints)
    DIR/access/           the access log (an overt Log)
    DIR/store.db          the payload store (SQLite; PostgreSQL with ``--store URL``)

**Receiving** (:meth:`Collector.receive`): the payload must open with the region key for
the customer it names (else :class:`~overt.telemetry.errors.SealError`, HTTP 422) and obey
that customer's policy (the same :class:`~overt.telemetry.filter.EventFilter` checks: event
types, no field the policy drops or does not name, allow-lists, truncation lengths; samples
screened again), else :class:`~overt.telemetry.errors.EventRefusedError` or
:class:`~overt.telemetry.errors.SampleRefusedError` (422). It is then stored (the sealed
bytes: still encrypted to the region key at rest) and its receipt entry, the canonical JSON
``{"customer", "digest", "received", "size", "v": 1}``, appended to the receipt log. Both
are durable before the receipt is returned (the database commits with
``synchronous=FULL``; the log's ``add_many`` returns once a signed checkpoint covers the
entry), so a restart loses no acknowledged payload. A payload sent twice gets the same
receipt (the store keeps the first arrival time, the log deduplicates the identical entry).
Concurrent requests are committed in groups: one database transaction and one log
integration for every payload that arrived meanwhile.

The receipt is a c2sp.org/tlog-proof of the entry: the endpoint verifies it against the
collector's receipt-log key and keeps it; ``overt telemetry reconcile`` compares the whole
receipt log with the endpoint's egress ledger.

**Reading** (:meth:`Collector.read`) is the only way stored data comes out. It needs an
actor and a reason (a ticket), and appends the access entry
``{"actor", "customer", "digests", "kind": "read", "reason", "received", "time", "v": 1}``
to the access log, durably, before a byte is returned; without a reason it is refused.
**Expiry** (:meth:`Collector.expire`) deletes payloads older than the customer's declared
retention and logs a ``"kind": "delete"`` entry. Customers follow their entries in the
access log with ``overt monitor`` and the ``telemetry-access`` check
(:mod:`overt.telemetry.access`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.errors import ConfigError, FormatError, LogError, OvertError
from overt.formats.strict import dump_json_canonical, load_json
from overt.telemetry.errors import (
    CollectorReceiptError,
    EventRefusedError,
    SealError,
    TelemetryError,
)
from overt.telemetry.policy import FieldRule, TelemetryPolicy, parse_policy
from overt.telemetry.samples import screen_sample
from overt.telemetry.sealing import CollectorKey, open_payload

__all__ = [
    "AccessRecord",
    "Collector",
    "CollectorReceipt",
    "access_entry",
    "parse_access_entry",
    "parse_receipt_entry",
    "receipt_entry",
    "verify_receipt",
]

_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ACTOR = re.compile(r"[A-Za-z0-9@._+-]{1,128}")
MAX_PAYLOAD = 48 << 20


# -- entries ---------------------------------------------------------------------------


def receipt_entry(customer: str, digest: str, size: int, received: int) -> bytes:
    """The receipt-log entry of one payload (canonical JSON)."""
    return dump_json_canonical(
        {"customer": customer, "digest": digest, "received": received, "size": size, "v": 1}
    )


def parse_receipt_entry(entry: bytes) -> tuple[str, str, int, int]:
    """``(customer, digest, size, received)`` of a receipt entry, parsed strictly.

    Raises:
        FormatError: not the canonical JSON of exactly these members.
    """
    obj = load_json(entry, "receipt entry", 4096)
    if not isinstance(obj, dict) or set(obj) != {"customer", "digest", "received", "size", "v"}:
        raise FormatError("receipt entry", "not the documented members", entry[:80])
    customer, digest, size, received = obj["customer"], obj["digest"], obj["size"], obj["received"]
    if (
        obj["v"] != 1
        or not isinstance(customer, str)
        or not _NAME.fullmatch(customer)
        or not isinstance(digest, str)
        or not _HEX64.fullmatch(digest)
        or type(size) is not int
        or type(received) is not int
        or size < 0
        or received < 0
    ):
        raise FormatError("receipt entry", "a member of the wrong type or form", entry[:80])
    if receipt_entry(customer, digest, size, received) != entry:
        raise FormatError("receipt entry", "not in canonical form", entry[:80])
    return customer, digest, size, received


@dataclass(frozen=True)
class AccessRecord:
    """One access-log entry: who read (or deleted) which of a customer's payloads, and why."""

    kind: str
    actor: str
    customer: str
    digests: tuple[str, ...]
    received: tuple[int, ...]
    reason: str
    time: int


def access_entry(record: AccessRecord) -> bytes:
    return dump_json_canonical(
        {
            "actor": record.actor,
            "customer": record.customer,
            "digests": list(record.digests),
            "kind": record.kind,
            "reason": record.reason,
            "received": list(record.received),
            "time": record.time,
            "v": 1,
        }
    )


def parse_access_entry(entry: bytes) -> AccessRecord:
    """Raises: FormatError: not the canonical JSON of an access entry."""
    obj = load_json(entry, "access entry", 1 << 16)
    members = {"actor", "customer", "digests", "kind", "reason", "received", "time", "v"}
    if not isinstance(obj, dict) or set(obj) != members or obj["v"] != 1:
        raise FormatError("access entry", "not the documented members", entry[:80])
    digests, received = obj["digests"], obj["received"]
    if (
        obj["kind"] not in ("read", "delete")
        or not all(isinstance(obj[k], str) for k in ("actor", "customer", "reason"))
        or not isinstance(digests, list)
        or not isinstance(received, list)
        or len(digests) != len(received)
        or not all(isinstance(d, str) and _HEX64.fullmatch(d) for d in digests)
        or not all(type(r) is int for r in received)
        or type(obj["time"]) is not int
    ):
        raise FormatError("access entry", "a member of the wrong type or form", entry[:80])
    record = AccessRecord(
        obj["kind"],
        obj["actor"],
        obj["customer"],
        tuple(digests),
        tuple(received),
        obj["reason"],
        obj["time"],
    )
    if access_entry(record) != entry:
        raise FormatError("access entry", "not in canonical form", entry[:80])
    return record


@dataclass(frozen=True)
class CollectorReceipt:
    """What the endpoint keeps: the receipt entry, its index and its tlog-proof."""

    entry: bytes
    index: int
    proof: bytes

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.entry.decode(), "index": self.index, "proof": self.proof.decode()}


def verify_receipt(
    receipt: bytes | dict[str, Any], sealed: bytes, verifier: Any
) -> CollectorReceipt:
    """The receipt (the JSON a collector answered) for the payload ``sealed``, once its
    entry names that payload and its tlog-proof holds under the receipt log's ``verifier``.

    Raises:
        CollectorReceiptError: malformed, another payload's, or a proof that does not hold.
    """
    from overt.formats import merkle
    from overt.formats.proof import verify_proof

    digest = hashlib.sha256(sealed).hexdigest()
    try:
        doc = load_json(receipt, "receipt", 1 << 20) if isinstance(receipt, bytes) else receipt
        if not isinstance(doc, dict) or set(doc) != {"entry", "index", "proof"}:
            raise FormatError("receipt", "members are entry, index, proof")
        entry, proof = doc["entry"].encode(), doc["proof"].encode()
        _customer, named, size, _received = parse_receipt_entry(entry)
        if named != digest or size != len(sealed):
            raise FormatError("receipt", f"names payload {named[:16]}... of {size} bytes")
        verified = verify_proof(proof, merkle.leaf_hash(entry), verifier)
        if verified.proof.index != doc["index"]:
            raise FormatError("receipt", "index differs from the proof's")
    except (OvertError, AttributeError) as err:
        raise CollectorReceiptError(digest, str(err)) from err
    return CollectorReceipt(entry, doc["index"], proof)


# -- the store -------------------------------------------------------------------------


class _Store:
    """Payloads on SQLAlchemy Core (SQLite by default, PostgreSQL by URL)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import (
            BigInteger,
            Column,
            LargeBinary,
            MetaData,
            String,
            Table,
            create_engine,
            event,
        )

        md = MetaData()
        self.table = Table(
            "telemetry_payloads",
            md,
            Column("digest", String(64), primary_key=True),
            Column("customer", String(64), nullable=False, index=True),
            Column("size", BigInteger, nullable=False),
            Column("received", BigInteger, nullable=False),
            Column("sealed", LargeBinary, nullable=False),
        )
        if "://" in url:
            self.engine = create_engine(url, pool_pre_ping=True)
        else:
            self.engine = create_engine(f"sqlite:///{url}")
            event.listen(self.engine, "connect", _sqlite_pragmas)
        with self._failures("open the payload store"):
            md.create_all(self.engine)

    @staticmethod
    @contextmanager
    def _failures(what: str) -> Iterator[None]:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield
        except SQLAlchemyError as err:
            raise LogError(f"cannot {what}: {type(err).__name__}") from err

    def add(self, rows: Sequence[tuple[str, str, int, int, bytes]]) -> dict[str, int]:
        """Store new rows (one transaction); returns each digest's first arrival time."""
        from sqlalchemy import select

        t = self.table
        with self._failures("store payloads"), self.engine.begin() as conn:
            digests = [r[0] for r in rows]
            found = conn.execute(select(t.c.digest, t.c.received).where(t.c.digest.in_(digests)))
            known = {str(r[0]): int(r[1]) for r in found}
            fresh: dict[str, dict[str, Any]] = {}
            for digest, customer, size, received, sealed in rows:
                if digest not in known and digest not in fresh:
                    fresh[digest] = {
                        "digest": digest,
                        "customer": customer,
                        "size": size,
                        "received": received,
                        "sealed": sealed,
                    }
            if fresh:
                conn.execute(t.insert(), list(fresh.values()))
        times = {d: int(r) for d, r in known.items()}
        times.update({d: row["received"] for d, row in fresh.items()})
        return times

    def get(self, customer: str, digests: Sequence[str]) -> list[tuple[str, int, bytes]]:
        from sqlalchemy import select

        t = self.table
        with self._failures("read payloads"), self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.digest, t.c.received, t.c.sealed).where(
                    t.c.customer == customer, t.c.digest.in_(list(digests))
                )
            ).all()
        return [(r[0], int(r[1]), bytes(r[2])) for r in rows]

    def older_than(self, customer: str, cutoff: int) -> list[tuple[str, int]]:
        from sqlalchemy import select

        t = self.table
        with self._failures("list payloads"), self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.digest, t.c.received).where(
                    t.c.customer == customer, t.c.received < cutoff
                )
            ).all()
        return [(r[0], int(r[1])) for r in rows]

    def delete(self, digests: Sequence[str]) -> None:
        t = self.table
        with self._failures("delete payloads"), self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.digest.in_(list(digests))))

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


# -- the collector ---------------------------------------------------------------------


@dataclass
class _Pending:
    customer: str
    digest: str
    size: int
    received: int
    sealed: bytes
    done: Future[CollectorReceipt]


class Collector:
    """One region's collector directory (module docstring). Thread-safe."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time) -> None:
        from overt.log.log import Log

        self.directory = directory
        try:
            config = json.loads((directory / "collector.json").read_text())
            self.region: str = config["region"]
            self.name: str = config["name"]
            store = config.get("store") or str(directory / "store.db")
            self.token = (directory / "token").read_text().strip()
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError(f"{directory} is not a collector directory: {err}") from err
        self.key = CollectorKey.load(directory / "collector.key")
        self.clock = clock
        self.policies: dict[str, TelemetryPolicy] = {}
        for path in sorted((directory / "policies").glob("*.json")):
            policy = parse_policy(path.read_bytes())
            self.policies[policy.customer] = policy
        self.receipts = Log.open(directory / "receipts")
        self.access = Log.open(directory / "access")
        self.store = _Store(store)
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._busy = False

    @classmethod
    def init(
        cls, directory: Path | str, region: str, name: str, store: str | None = None
    ) -> Collector:
        """Create a collector directory with a new region key and empty logs.

        Raises:
            ConfigError: the directory exists, or a bad region or name.
        """
        from overt.log.log import Log

        d = Path(directory)
        if not _NAME.fullmatch(region):
            raise ConfigError(f"region {region!r} is not lowercase letters, digits, _ . -")
        try:
            d.mkdir(parents=True)
            (d / "policies").mkdir()
        except OSError as err:
            raise ConfigError(f"cannot create {d}: {err.strerror}") from err
        key = CollectorKey.generate(region)
        key.save(d / "collector.key")
        (d / "collector.key.pub").write_bytes(key.published())
        fd = os.open(d / "token", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        Log.create(d / "receipts", f"{name}/receipts").close()
        Log.create(d / "access", f"{name}/access").close()
        config = {"region": region, "name": name, "store": store}
        (d / "collector.json").write_text(json.dumps(config, indent=1) + "\n")
        return cls(d)

    def add_policy(self, data: bytes) -> TelemetryPolicy:
        """Accept payloads for the policy's customer under this (logged) policy.

        Raises:
            TelemetryPolicyFormatError: not a valid policy. ConfigError: another region's.
        """
        policy = parse_policy(data)
        if policy.region != self.region:
            raise ConfigError(f"policy of {policy.customer} is for region {policy.region}")
        # Durable before it is acknowledged: temp file, fsync, rename, fsync the directory.
        folder = self.directory / "policies"
        tmp = folder / f".{policy.customer}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / f"{policy.customer}.json")
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.policies[policy.customer] = policy
        return policy

    def close(self) -> None:
        self.receipts.close()
        self.access.close()
        self.store.close()

    # -- receiving ---------------------------------------------------------------

    def check(self, customer: str, sealed: bytes) -> str:
        """The digest of a payload that opens and obeys the customer's policy (pure).

        Raises:
            SealError: an unknown customer, or not sealed to this region's key for it.
            EventRefusedError, SampleRefusedError: the payload breaks the policy.
        """
        policy = self.policies.get(customer)
        if policy is None:
            raise SealError(self.region, f"no policy for customer {customer[:64]!r}")
        plain = open_payload(self.key.private, self.region, customer, sealed)
        try:
            doc = load_json(plain, "payload", MAX_PAYLOAD)
        except FormatError as err:
            raise EventRefusedError("payload", "type", err.reason) from err
        if not isinstance(doc, dict) or doc.get("customer") != customer:
            raise EventRefusedError("payload", "type", "not this customer's payload")
        if doc.get("policy") != policy.version:
            raise EventRefusedError(
                "version", "not-allowed", f"sent under policy {doc.get('policy')!r}"
            )
        if doc.get("kind") == "events" and isinstance(doc.get("events"), list):
            _check_events(policy, doc["events"])
        elif doc.get("kind") == "sample" and isinstance(doc.get("sample"), str):
            try:
                data = base64.b64decode(doc["sample"], validate=True)
            except ValueError as err:
                raise EventRefusedError("payload", "type", "sample is not base64") from err
            screen_sample(data, policy.samples, consent=True)
        else:
            raise EventRefusedError("payload", "type", "neither events nor a sample")
        return hashlib.sha256(sealed).hexdigest()

    def receive(self, customer: str, sealed: bytes) -> CollectorReceipt:
        """Check, store and receipt one payload (durable when this returns).

        Raises:
            TelemetryError, SealError: refused (see :meth:`check`); nothing is stored.
            LogError: the store or the receipt log failed; nothing was acknowledged.
        """
        digest = self.check(customer, sealed)
        pending = _Pending(customer, digest, len(sealed), int(self.clock()), sealed, Future())
        with self._lock:
            self._queue.append(pending)
            lead = not self._busy
            if lead:
                self._busy = True
        if lead:
            self._drain()
        return pending.done.result()

    def _drain(self) -> None:
        # Group commit: the first caller commits everything queued meanwhile, batch after
        # batch, until the queue is empty; the others wait on their futures.
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._busy = False
                    return
            try:
                self._commit(batch)
            except BaseException as err:  # every waiter must hear of it
                for p in batch:
                    if not p.done.done():
                        p.done.set_exception(err)

    def _commit(self, batch: list[_Pending]) -> None:
        times = self.store.add(
            [(p.digest, p.customer, p.size, p.received, p.sealed) for p in batch]
        )
        entries = [receipt_entry(p.customer, p.digest, p.size, times[p.digest]) for p in batch]
        # The store committed first: a crash before the log append leaves a stored payload
        # without a receipt, never a receipt without its payload; the endpoint retries.
        indices = self.receipts.add_many(entries)
        for p, entry, index in zip(batch, entries, indices, strict=True):
            p.done.set_result(CollectorReceipt(entry, index, self.receipts.proof(index)))

    # -- reading -------------------------------------------------------------------

    def read(
        self, actor: str, customer: str, digests: Sequence[str], reason: str
    ) -> list[tuple[str, bytes]]:
        """The plaintext of ``digests`` of ``customer``, after the read is logged.

        Raises:
            TelemetryError: no actor or no reason (nothing is logged or returned).
            LogError: the access log could not record it (nothing is returned).
        """
        if not _ACTOR.fullmatch(actor):
            raise TelemetryError(f"a read needs an actor name, not {actor[:40]!r}")
        if not reason.strip() or len(reason) > 500:
            raise TelemetryError("a read needs a reason or ticket (at most 500 characters)")
        if not digests or not all(_HEX64.fullmatch(d) for d in digests):
            raise TelemetryError("a read names the payloads it reads by their SHA-256")
        rows = self.store.get(customer, digests)
        record = AccessRecord(
            "read",
            actor,
            customer,
            tuple(r[0] for r in rows),
            tuple(r[1] for r in rows),
            reason,
            int(self.clock()),
        )
        self.access.add_many([access_entry(record)])  # durable before any data is returned
        return [
            (digest, open_payload(self.key.private, self.region, customer, sealed))
            for digest, _received, sealed in rows
        ]

    def expire(self) -> list[AccessRecord]:
        """Delete every payload older than its customer's retention; each deletion logged."""
        now = int(self.clock())
        done = []
        for customer, policy in sorted(self.policies.items()):
            old = self.store.older_than(customer, now - policy.retention_days * 86400)
            if not old:
                continue
            record = AccessRecord(
                "delete",
                self.name,
                customer,
                tuple(d for d, _ in old),
                tuple(r for _, r in old),
                f"retention of {policy.retention_days} days",
                now,
            )
            self.access.add_many([access_entry(record)])
            self.store.delete([d for d, _ in old])
            done.append(record)
        return done


_HOST = re.compile(r"[A-Za-z0-9.:\[\]_-]{1,255}")


def _reduced(rule: FieldRule, value: object) -> bool:
    """Whether ``value`` is what the endpoint's transform can have produced."""
    t = rule.transform
    if isinstance(value, bool) and t not in ("keep", "allow"):
        return False
    if t == "keep":
        return isinstance(value, str | int | float)
    if t == "truncate":
        return isinstance(value, str) and len(value) <= rule.length
    if t == "hash":
        return isinstance(value, str) and bool(_HEX64.fullmatch(value))
    if t == "host":
        return isinstance(value, str) and bool(_HOST.fullmatch(value))
    if t == "coarsen":
        if isinstance(value, int | float):
            return bool(value % rule.step == 0)
        return isinstance(value, str) and value.endswith("Z")
    if t == "allow":
        return any(type(v) is type(value) and v == value for v in rule.values)
    return False  # drop: the field must not arrive at all


def _check_events(policy: TelemetryPolicy, events: list[Any]) -> None:
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise EventRefusedError("events", "type", "an event is not an object with a type")
        kind = event["type"]
        rules = policy.events.get(kind)
        if rules is None:
            raise EventRefusedError("events", "unknown-event", f"{kind[:80]!r} arrived")
        for name, value in event.items():
            if name == "type":
                continue
            rule = rules.get(name)
            if rule is None or rule.transform == "drop":
                raise EventRefusedError(
                    f"events.{kind}.fields", "unknown-field", f"{name[:80]!r} arrived"
                )
            if not _reduced(rule, value):
                raise EventRefusedError(
                    f"events.{kind}.fields.{name}", "not-allowed", "not reduced by its transform"
                )
        for name, rule in rules.items():
            if rule.required and name not in event:
                raise EventRefusedError(
                    f"events.{kind}.fields.{name}", "missing-field", "a required field is missing"
                )
