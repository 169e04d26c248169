"""The egress ledger: every payload that left an endpoint, in a local overt log.

Each payload is recorded *before* it is sent (so nothing can leave unrecorded; a payload
that was recorded but never arrived shows up in :mod:`overt.telemetry.reconcile`) as one
log entry, the canonical JSON (sorted members, no whitespace) of::

    {"customer": "acme", "destination": "https://eu.telemetry.example", "digest": "<hex
     SHA-256 of the sealed payload>", "events": 100, "fields": ["process.sha256", ...],
     "kind": "events", "policy": 3, "region": "eu", "size": 41234, "time": 1764157327,
     "v": 1}

``kind`` is ``events`` or ``sample``; ``fields`` the sorted names (``type.field``) of the
fields that left; ``policy`` the revision of the policy enforced; ``time`` Unix seconds.

The ledger is an :class:`overt.log.Log` directory: entries in tlog-tiles bundles under a
checkpoint signed by the endpoint's ledger key. :func:`verify_ledger` reads it as any log
client does, trusting nothing in it but the key it is given: an entry edited, removed,
reordered or cut short breaks the tree under the signed checkpoint, and an earlier
checkpoint the auditor kept (``previous``) catches a ledger rolled back to a shorter one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.errors import FormatError, LogError, NotFoundError, OvertError, VerificationError
from overt.formats import merkle, tiles
from overt.formats.checkpoint import SignedCheckpoint
from overt.formats.note import parse_vkey
from overt.formats.strict import dump_json_canonical, load_json
from overt.telemetry.errors import LedgerTamperedError

__all__ = [
    "EgressLedger",
    "EgressRecord",
    "VerifiedLedger",
    "format_record",
    "parse_record",
    "read_log_entries",
    "verify_ledger",
]

_MEMBERS = frozenset(
    {"customer", "destination", "digest", "events", "fields", "kind", "policy", "region",
     "size", "time", "v"}
)  # fmt: skip
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FIELD = re.compile(r"[a-z][a-z0-9_.-]{0,130}")
_MAX_ENTRY = 65535


@dataclass(frozen=True)
class EgressRecord:
    """One payload that left (module docstring)."""

    digest: str
    size: int
    destination: str
    region: str
    customer: str
    fields: tuple[str, ...]
    events: int
    policy: int
    time: int
    kind: str = "events"

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "destination": self.destination,
            "digest": self.digest,
            "events": self.events,
            "fields": list(self.fields),
            "kind": self.kind,
            "policy": self.policy,
            "region": self.region,
            "size": self.size,
            "time": self.time,
            "v": 1,
        }


def format_record(record: EgressRecord) -> bytes:
    """The ledger entry of ``record`` (canonical JSON)."""
    return dump_json_canonical(record.to_json())


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if type(value) is not int or value < 0:
        raise FormatError("egress record", f"{key} is not a non-negative integer", repr(value))
    return value


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise FormatError("egress record", f"{key} is not a short string", repr(value)[:80])
    return value


def parse_record(entry: bytes) -> EgressRecord:
    """Parse a ledger entry strictly: exact members, types, canonical form.

    Raises:
        FormatError: anything else.
    """
    obj = load_json(entry, "egress record", _MAX_ENTRY)
    if not isinstance(obj, dict) or set(obj) != _MEMBERS:
        raise FormatError("egress record", "not the documented members", entry[:80])
    fields = obj["fields"]
    if not isinstance(fields, list) or not all(
        isinstance(f, str) and _FIELD.fullmatch(f) for f in fields
    ):
        raise FormatError("egress record", "fields is not a list of field names", entry[:80])
    if not isinstance(obj["digest"], str) or not _HEX64.fullmatch(obj["digest"]):
        raise FormatError("egress record", "digest is not a hex SHA-256", entry[:80])
    if obj["v"] != 1 or obj["kind"] not in ("events", "sample"):
        raise FormatError("egress record", "unknown version or kind", entry[:80])
    record = EgressRecord(
        obj["digest"],
        _int(obj, "size"),
        _str(obj, "destination"),
        _str(obj, "region"),
        _str(obj, "customer"),
        tuple(fields),
        _int(obj, "events"),
        _int(obj, "policy"),
        _int(obj, "time"),
        obj["kind"],
    )
    if format_record(record) != entry:
        raise FormatError("egress record", "not in canonical form", entry[:80])
    return record


class EgressLedger:
    """The endpoint's ledger directory (an :class:`overt.log.Log`)."""

    def __init__(self, log: Any) -> None:
        self.log = log

    @classmethod
    def create(cls, directory: Path | str, origin: str) -> EgressLedger:
        """A new ledger whose checkpoints name ``origin`` (``acme.example/ledger/host42``).

        Raises:
            LogError: the directory exists or cannot be written.
        """
        from overt.log.log import Log

        return cls(Log.create(directory, origin))

    @classmethod
    def open(cls, directory: Path | str) -> EgressLedger:
        """Raises: LogError, LogLockedError: not a ledger, or another process holds it."""
        from overt.log.log import Log

        return cls(Log.open(directory))

    def record(self, records: Sequence[EgressRecord]) -> list[int]:
        """Append ``records`` durably (one signed checkpoint covers them on return)."""
        return list(self.log.add_many([format_record(r) for r in records]))

    def close(self) -> None:
        self.log.close()

    def __enter__(self) -> EgressLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class VerifiedLedger:
    """A ledger whose every entry is proven under ``checkpoint``."""

    checkpoint: SignedCheckpoint
    records: tuple[EgressRecord, ...]


class _Snapshot:
    """A tile source that keeps what it read: the entries parsed after the verification
    are the very bytes that were verified, not a second read of the directory."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.seen: dict[str, bytes] = {}

    def read(self, path: str) -> bytes:
        if path not in self.seen:
            self.seen[path] = self.source.read(path)
        return self.seen[path]

    def close(self) -> None:
        self.source.close()


def read_log_entries(source: str, verifier: Any) -> tuple[SignedCheckpoint, list[bytes]]:
    """The checkpoint and every entry of a log (directory or URL), once all of it verifies
    against ``verifier`` (:func:`overt.log.client.verify_log`): the entries returned are the
    very bytes that were verified, not a second read.

    Raises:
        VerificationError, FormatError: the log does not verify.
        NotFoundError, LogError: a tile or bundle cannot be read.
    """
    from overt.log.client import open_source, verify_log

    snapshot = _Snapshot(open_source(source))
    try:
        verified = verify_log(snapshot, verifier)
        size = verified.checkpoint.checkpoint.size
        entries: list[bytes] = []
        width = tiles.TILE_WIDTH
        for n in range((size + width - 1) // width):
            w = min(width, size - n * width)
            entries.extend(tiles.parse_entry_bundle(snapshot.read(tiles.entries_path(n, w)), w))
    finally:
        snapshot.close()
    return verified.checkpoint, entries


def verify_ledger(
    directory: Path | str, vkey: str | None = None, previous: bytes | None = None
) -> VerifiedLedger:
    """Every record of the ledger in ``directory``, once all of it verifies.

    ``vkey`` is the ledger key the auditor trusts (by default the directory's own
    ``log.vkey``, which proves integrity but not who wrote it); ``previous`` an earlier
    checkpoint of the same ledger that the new one must extend.

    Raises:
        LedgerTamperedError: a signature, an entry, a tile or the root does not verify, an
            entry is not an egress record, or the ledger no longer extends ``previous``.
        ConfigError: no ``log.vkey`` to fall back on.
    """
    from overt.log._files import read_vkey

    verifier = parse_vkey(vkey if vkey is not None else read_vkey(directory))
    try:
        checkpoint, entries = read_log_entries(str(directory), verifier)
    except (VerificationError, FormatError, NotFoundError, LogError) as err:
        raise LedgerTamperedError(str(err)) from err
    records: list[EgressRecord] = []
    for i, entry in enumerate(entries):
        try:
            records.append(parse_record(entry))
        except FormatError as err:
            raise LedgerTamperedError(f"not an egress record: {err.reason}", i) from err
    if previous is not None:
        _extends(previous, verifier, entries, checkpoint)
    return VerifiedLedger(checkpoint, tuple(records))


def _extends(previous: bytes, verifier: Any, entries: list[bytes], now: SignedCheckpoint) -> None:
    from overt.formats.checkpoint import open_checkpoint

    try:
        old = open_checkpoint(previous, verifier).checkpoint
    except OvertError as err:
        raise LedgerTamperedError(f"the previous checkpoint does not verify: {err}") from err
    if old.size > now.checkpoint.size:
        raise LedgerTamperedError(
            f"rolled back from {old.size} to {now.checkpoint.size} entries", now.checkpoint.size
        )
    root = merkle.root_hash([merkle.leaf_hash(e) for e in entries[: old.size]])
    if root != old.root_hash:
        raise LedgerTamperedError(f"history before entry {old.size} was rewritten")
