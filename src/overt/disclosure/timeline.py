"""The provable timeline: a commitment to each report's every state, logged in an overt log.

At intake and at every transition the service appends one *commitment entry* to a
transparency log (c2sp.org/tlog-tiles, :class:`overt.log.Log` or a log server)::

    entry      = "overt.dev/disclosure-commitment/v1" LF
                 "program " program-name LF
                 "state " state LF                     ; received, acknowledged, ...
                 "time " rfc3339-utc-seconds LF        ; 2026-11-25T09:00:00Z
                 "case " base64(32 bytes) LF           ; SHA-256("case" 0x00 salt)
                 "commitment " base64(32 bytes) LF     ; see below

    commitment = SHA-256("overt.dev/disclosure-commitment/v1" 0x00 salt 0x00
                         report-id 0x00 state 0x00 time)

``salt`` is 32 random bytes per report, kept by the service and handed to the researcher in
the *receipt* (:class:`Receipt`). The log shows the state and time of every step and links
the steps of one case through its ``case`` tag, so anyone can count reports and measure
the programme's response times, but without the salt nobody can tell which report a case
is. With the receipt and the entry's tlog-proof (c2sp.org/tlog-proof), the researcher, or
anyone the researcher shows them to, can prove that report R was received (or moved to a
state) at the time stated, and the log's append-only, witnessed history keeps the service
from rewriting that later: :func:`verify_commitment` checks it with no other input.

Crash consistency: the entries are logged before the report is stored. A crash between
the two leaves a commitment no receipt refers to (it counts as a report nobody can
prove); it never leaves a stored report without its commitment.

Versioning: the first line names the version; another layout is another line.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from overt.disclosure.errors import ReceiptError
from overt.disclosure.workflow import State
from overt.errors import FormatError, OvertError
from overt.formats.merkle import leaf_hash
from overt.formats.note import Verifier
from overt.formats.proof import VerifiedProof, parse_proof, verify_proof
from overt.formats.strict import b64decode_strict, b64encode, json_members, json_str, load_json

if TYPE_CHECKING:
    from overt.log.client import LogClient
    from overt.log.log import Log

__all__ = [
    "HEADER",
    "RECEIPT_FORMAT",
    "Batcher",
    "CommitmentEntry",
    "CommitmentLog",
    "LocalCommitmentLog",
    "Receipt",
    "RemoteCommitmentLog",
    "VerifiedCommitment",
    "commitment_entry",
    "format_receipt",
    "format_time",
    "new_salt",
    "parse_entry",
    "parse_receipt",
    "parse_time",
    "verify_commitment",
]

HEADER = "overt.dev/disclosure-commitment/v1"
RECEIPT_FORMAT = "overt.dev/disclosure-receipt/v1"
_PROGRAM = re.compile(r"[\x21-\x7e]{1,100}")
_REPORT_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_MAX_RECEIPT = 4096


def format_time(at: datetime) -> str:
    """RFC 3339 UTC to the second, the one spelling commitments use."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time`.

    Raises:
        FormatError: any other spelling, or not a date.
    """
    if not _TIME.fullmatch(text):
        raise FormatError("commitment time", "not YYYY-MM-DDTHH:MM:SSZ", text[:40])
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as err:
        raise FormatError("commitment time", str(err), text) from err


def new_salt() -> bytes:
    return secrets.token_bytes(32)


def _commitment(salt: bytes, report_id: str, state: State, time: str) -> bytes:
    parts = [HEADER.encode(), salt, report_id.encode(), state.value.encode(), time.encode()]
    return hashlib.sha256(b"\x00".join(parts)).digest()


def _case_tag(salt: bytes) -> bytes:
    return hashlib.sha256(b"case\x00" + salt).digest()


@dataclass(frozen=True)
class CommitmentEntry:
    """A parsed log entry (what the public sees)."""

    program: str
    state: State
    time: datetime
    case: bytes
    commitment: bytes


def commitment_entry(
    program: str, salt: bytes, report_id: str, state: State, at: datetime
) -> bytes:
    """The log entry committing to ``report_id`` entering ``state`` at ``at``.

    Raises:
        FormatError: a program name or report id outside its grammar, a salt not 32 bytes.
    """
    if not _PROGRAM.fullmatch(program):
        raise FormatError("program name", "not 1-100 printable ASCII, no space", program[:100])
    if not _REPORT_ID.fullmatch(report_id):
        raise FormatError("report id", "not 1-64 of [A-Za-z0-9-]", report_id[:64])
    if len(salt) != 32:
        raise FormatError("commitment salt", "not 32 bytes")
    time = format_time(at)
    lines = [
        HEADER,
        f"program {program}",
        f"state {state.value}",
        f"time {time}",
        f"case {b64encode(_case_tag(salt))}",
        f"commitment {b64encode(_commitment(salt, report_id, state, time))}",
    ]
    return "".join(line + "\n" for line in lines).encode()


def parse_entry(data: bytes) -> CommitmentEntry:
    """Parse a commitment entry strictly (the layout above, nothing else).

    Raises:
        FormatError: anything but a canonical v1 commitment entry.
    """
    if len(data) > 1024:
        raise FormatError("commitment entry", "larger than 1024 bytes", data[:60])
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as err:
        raise FormatError("commitment entry", "not ASCII", data[:60]) from err
    lines = text.split("\n")
    keys = ("program", "state", "time", "case", "commitment")
    if len(lines) != 7 or lines[0] != HEADER or lines[6] != "":
        raise FormatError("commitment entry", f"not {HEADER} with five lines", data[:60])
    values: dict[str, str] = {}
    for key, line in zip(keys, lines[1:6], strict=True):
        prefix = key + " "
        if not line.startswith(prefix):
            raise FormatError("commitment entry", f"expected a {key} line", line)
        values[key] = line[len(prefix) :]
    if not _PROGRAM.fullmatch(values["program"]):
        raise FormatError("commitment entry", "bad program name", values["program"])
    try:
        state = State(values["state"])
    except ValueError as err:
        raise FormatError("commitment entry", "unknown state", values["state"]) from err
    entry = CommitmentEntry(
        values["program"],
        state,
        parse_time(values["time"]),
        b64decode_strict(values["case"], "commitment entry case", 32),
        b64decode_strict(values["commitment"], "commitment entry commitment", 32),
    )
    return entry


@dataclass(frozen=True)
class Receipt:
    """What the researcher keeps: the secret salt that opens the report's commitments."""

    program: str
    report_id: str
    salt: bytes
    received_at: datetime


def format_receipt(receipt: Receipt) -> bytes:
    """The receipt as JSON (the researcher's file)."""
    doc = {
        "format": RECEIPT_FORMAT,
        "program": receipt.program,
        "report_id": receipt.report_id,
        "salt": b64encode(receipt.salt),
        "received_at": format_time(receipt.received_at),
    }
    return json.dumps(doc, indent=1).encode() + b"\n"


def parse_receipt(data: bytes) -> Receipt:
    """Parse a receipt written by :func:`format_receipt`.

    Raises:
        FormatError: not such a receipt.
    """
    what = "disclosure receipt"
    doc = json_members(
        load_json(data, what, _MAX_RECEIPT),
        what,
        ("format", "program", "report_id", "salt", "received_at"),
    )
    if doc["format"] != RECEIPT_FORMAT:
        raise FormatError(what, f"format is not {RECEIPT_FORMAT}", str(doc["format"])[:60])
    report_id = json_str(doc["report_id"], what, "report_id", max_len=64)
    if not _REPORT_ID.fullmatch(report_id):
        raise FormatError(what, "report_id is not 1-64 of [A-Za-z0-9-]", report_id)
    return Receipt(
        json_str(doc["program"], what, "program", max_len=100),
        report_id,
        b64decode_strict(json_str(doc["salt"], what, "salt"), "receipt salt", 32),
        parse_time(json_str(doc["received_at"], what, "received_at")),
    )


@dataclass(frozen=True)
class VerifiedCommitment:
    """Proven: report ``report_id`` entered ``state`` at ``time``, logged at ``index``."""

    report_id: str
    state: State
    time: datetime
    index: int
    proof: VerifiedProof


def verify_commitment(
    receipt: Receipt,
    proof: bytes,
    log_verifier: Verifier,
    state: State = State.RECEIVED,
    at: datetime | None = None,
) -> VerifiedCommitment:
    """Proves from the receipt and the entry's tlog-proof alone that the report entered
    ``state`` at ``at`` (for ``received``, at defaults to the receipt's time).

    The entry is rebuilt from the receipt, so only the proof's checkpoint signature and
    inclusion path are trusted from outside, and the caller's ``log_verifier`` decides
    whose log that is.

    Raises:
        ReceiptError: no time given for a state other than ``received``.
        FormatError, VerificationError: the proof is malformed, its checkpoint is not
            signed by the log, or the rebuilt entry is not the one at the proof's index.
    """
    if at is None:
        if state is not State.RECEIVED:
            raise ReceiptError(receipt.report_id, f"the time of {state} is needed")
        at = receipt.received_at
    entry = commitment_entry(receipt.program, receipt.salt, receipt.report_id, state, at)
    parsed = parse_proof(proof)
    verified = verify_proof(parsed, leaf_hash(entry), log_verifier)
    return VerifiedCommitment(receipt.report_id, state, at, parsed.index, verified)


class CommitmentLog(Protocol):
    """Where commitments go: appends entries durably, returns each one's tlog-proof."""

    def append(self, entries: Sequence[bytes]) -> list[bytes]: ...


class LocalCommitmentLog:
    """A log directory opened in this process (:class:`overt.log.Log`, without witnesses)."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def append(self, entries: Sequence[bytes]) -> list[bytes]:
        indices = self.log.add_many(entries)
        return [self.log.proof(i) for i in indices]


class RemoteCommitmentLog:
    """A log server, through :class:`overt.log.client.LogClient` (``POST /add?proof=1``)."""

    def __init__(self, client: LogClient) -> None:
        self.client = client

    def append(self, entries: Sequence[bytes]) -> list[bytes]:
        return [self.client.add(entry)[1] for entry in entries]


T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class Batcher(Generic[T, R]):
    """Group commit: concurrent :meth:`call` s are run together by one ``run_batch`` call.

    The first caller to find no batch running becomes the leader and runs everything
    queued so far; callers arriving meanwhile queue for the next batch. A log append costs
    the same few fsyncs for one entry or a hundred, so intake under load needs this to
    reach hundreds of reports a second. A failed batch fails each of its callers.
    """

    def __init__(self, run_batch: Callable[[list[T]], list[R]], max_batch: int = 512) -> None:
        self._run = run_batch
        self._max = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Slot[T, R]] = []
        self._busy = False

    def call(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._cond:
            self._queue.append(slot)
            while True:
                while not slot.done and self._busy:
                    self._cond.wait()
                if slot.done:
                    return self._outcome(slot)
                # Lead: take the queue (up to max_batch; this caller's own slot may be
                # left for a later round when the queue is longer).
                self._busy = True
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                self._cond.release()
                try:
                    self._run_batch(batch)
                finally:
                    self._cond.acquire()
                    for s in batch:
                        s.done = True
                    self._busy = False
                    self._cond.notify_all()

    def _run_batch(self, batch: list[_Slot[T, R]]) -> None:
        try:
            results = self._run([s.item for s in batch])
            if len(results) != len(batch):
                raise OvertError("a batch returned the wrong number of results")
            for s, r in zip(batch, results, strict=True):
                s.result = r
        except BaseException as err:  # every caller of the batch sees the failure
            for s in batch:
                s.error = err

    @staticmethod
    def _outcome(slot: _Slot[T, R]) -> R:
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]
