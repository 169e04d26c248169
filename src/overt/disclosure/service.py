"""The programme's desk: intake, tracking, triage, bounty; the shell around the pure core.

:class:`Desk` joins the pieces: the pure workflow (:mod:`~overt.disclosure.workflow`),
scoring and bounty rules, encryption at rest (:mod:`~overt.disclosure.crypto`), the
commitments in the log (:mod:`~overt.disclosure.timeline`) and the database
(:mod:`~overt.disclosure.store`). The HTTP server and the CLI are thin shells over it.

Who may do what (checked here, so every shell enforces the same rules):

- a *researcher* holds a report's tracking token: sees that report's status, timeline and
  messages, and writes messages; nothing else;
- a *triager* (account) reads reports, moves them through the workflow, scores them and
  writes messages;
- an *admin* (account) does what a triager does, and also changes the bounty table, pays
  bounties and manages accounts.

Every read of a report (by anyone, through any shell) is recorded with who and when.
Passwords are hashed with argon2id (``argon2-cffi``, RFC 9106 parameters).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from overt.disclosure.advisories import AdvisoryDetails, Publisher
from overt.disclosure.bounty import (
    DEFAULT_TABLE,
    BountyTable,
    Ledger,
    Payout,
    VulnClass,
    award,
    format_table,
    ledger,
    parse_table,
)
from overt.disclosure.crypto import PSIRTKey, open_sealed, seal
from overt.disclosure.errors import (
    AccessDeniedError,
    AuthenticationError,
    ReportNotFoundError,
    StoreError,
    SubmissionError,
    TooLargeError,
    TransitionError,
)
from overt.disclosure.scoring import Score, Severity, score
from overt.disclosure.store import EventRow, ReportRow, Store, SummaryRow
from overt.disclosure.timeline import (
    Batcher,
    CommitmentLog,
    Receipt,
    commitment_entry,
    new_salt,
)
from overt.disclosure.workflow import (
    Case,
    Deadlines,
    Event,
    Overdue,
    State,
    Verdict,
    advance,
    deadlines,
    mark_exploited,
    open_case,
    overdue,
)
from overt.errors import ConfigError, FormatError
from overt.formats.strict import b64decode_strict, json_list, json_members, json_str, load_json

if TYPE_CHECKING:
    from overt.publish.keys import PublisherSigner

__all__ = [
    "MAX_ATTACHMENT",
    "MAX_ATTACHMENTS",
    "MAX_DESCRIPTION",
    "MAX_MESSAGE",
    "MAX_SUBMISSION",
    "Account",
    "Attachment",
    "Desk",
    "Intake",
    "ReportView",
    "Role",
    "Submission",
    "Tracking",
    "check_submission",
    "parse_submission",
]

MAX_DESCRIPTION = 64 * 1024
MAX_ATTACHMENT = 1024 * 1024
MAX_ATTACHMENTS = 8
MAX_MESSAGE = 16 * 1024
#: A JSON submission at most: the description and attachments (base64) and some room.
MAX_SUBMISSION = MAX_DESCRIPTION * 2 + MAX_ATTACHMENTS * (MAX_ATTACHMENT * 4 // 3 + 1024) + 8192

_HANDLE = re.compile(r"[A-Za-z0-9._@+-]{1,100}")
_USERNAME = re.compile(r"[a-z0-9._-]{1,64}")
_SESSION_SECONDS = 8 * 3600


class Role(enum.StrEnum):
    TRIAGER = "triager"
    ADMIN = "admin"


@dataclass(frozen=True)
class Account:
    username: str
    role: Role


@dataclass(frozen=True)
class Attachment:
    name: str
    data: bytes


@dataclass(frozen=True)
class Submission:
    """A vulnerability report as a researcher submits it (validated by :func:`parse_submission`)."""

    title: str
    description: str
    researcher: str
    vuln_class: VulnClass
    contact: str = ""
    product: str = ""
    cvss: str | None = None
    attachments: tuple[Attachment, ...] = ()


def _text(value: object, field: str, max_len: int, *, nonempty: bool = True) -> str:
    if not isinstance(value, str) or (nonempty and not value.strip()):
        raise SubmissionError(field, "must be a non-empty string" if nonempty else "not a string")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_len:
        raise TooLargeError(field, size, max_len)
    if any(ord(c) < 32 and c not in "\n\r\t" for c in value) or "\x7f" in value:
        raise SubmissionError(field, "holds control characters", value[:60])
    return value


def check_submission(sub: Submission) -> Submission:
    """``sub`` if every field is within its grammar and limits (see :func:`parse_submission`)."""
    _text(sub.title, "title", 200)
    _text(sub.description, "description", MAX_DESCRIPTION)
    if not _HANDLE.fullmatch(sub.researcher):
        raise SubmissionError("researcher", "not 1-100 of [A-Za-z0-9._@+-]", sub.researcher[:100])
    _text(sub.contact, "contact", 200, nonempty=False)
    _text(sub.product, "product", 100, nonempty=False)
    if sub.cvss is not None:
        score(sub.cvss)
    if len(sub.attachments) > MAX_ATTACHMENTS:
        raise SubmissionError("attachments", f"more than {MAX_ATTACHMENTS}")
    for a in sub.attachments:
        _text(a.name, "attachment name", 200)
        if len(a.data) > MAX_ATTACHMENT:
            raise TooLargeError(f"attachment {a.name[:60]!r}", len(a.data), MAX_ATTACHMENT)
    return sub


def parse_submission(body: bytes) -> Submission:
    """A submission from the JSON API's body::

        {"title": "...", "description": "...", "researcher": "alice", "class": "rce",
         "contact": "...", "product": "...", "cvss": "CVSS:3.1/...",
         "attachments": [{"name": "poc.py", "data": "<base64>"}]}

    (``contact``, ``product``, ``cvss`` and ``attachments`` are optional.)

    Raises:
        TooLargeError: the body, the description or an attachment is above its limit.
        SubmissionError: not such a JSON object (unknown members are refused too).
        InvalidVectorError: the CVSS vector does not score.
    """
    if len(body) > MAX_SUBMISSION:
        raise TooLargeError("submission", len(body), MAX_SUBMISSION)
    what = "submission"
    try:
        doc = json_members(
            load_json(body, what, MAX_SUBMISSION),
            what,
            ("title", "description", "researcher", "class"),
            ("contact", "product", "cvss", "attachments"),
        )
        files = []
        for item in json_list(doc.get("attachments", []), what, "attachments"):
            member = json_members(item, "attachment", ("name", "data"))
            data = b64decode_strict(json_str(member["data"], "attachment", "data"), "attachment")
            files.append(Attachment(json_str(member["name"], "attachment", "name"), data))
        vector = doc.get("cvss")
        if vector is not None:
            vector = json_str(vector, what, "cvss")
    except SubmissionError:
        raise
    except FormatError as err:  # from the strict JSON helpers: name the field that was wrong
        raise SubmissionError(err.what, err.reason) from err
    try:
        vuln_class = VulnClass(json_str(doc["class"], what, "class"))
    except ValueError as err:
        raise SubmissionError("class", f"not one of {[c.value for c in VulnClass]}") from err
    return check_submission(
        Submission(
            title=_text(doc["title"], "title", 200),
            description=_text(doc["description"], "description", MAX_DESCRIPTION),
            researcher=_text(doc["researcher"], "researcher", 100),
            vuln_class=vuln_class,
            contact=_text(doc.get("contact", ""), "contact", 200, nonempty=False),
            product=_text(doc.get("product", ""), "product", 100, nonempty=False),
            cvss=vector,
            attachments=tuple(files),
        )
    )


@dataclass(frozen=True)
class Intake:
    """What a researcher gets back: the tracking token (secret), the receipt and its proof."""

    report_id: str
    token: str
    receipt: Receipt
    proof: bytes


@dataclass(frozen=True)
class Tracking:
    """A researcher's view of their report."""

    report_id: str
    title: str
    state: State
    verdict: Verdict | None
    severity: str | None
    deadlines: Deadlines
    events: tuple[tuple[Event, bytes], ...]  # each with its tlog-proof
    messages: tuple[tuple[str, datetime, str], ...]  # (author, at, text)


@dataclass(frozen=True)
class ReportView:
    """A triager's view of a report (decrypted; reading it was recorded)."""

    report_id: str
    researcher: str
    vuln_class: VulnClass
    title: str
    description: str
    contact: str
    product: str
    cvss: str | None
    score: float | None
    severity: str | None
    case: Case
    attachments: tuple[Attachment, ...]
    messages: tuple[tuple[str, datetime, str], ...]


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def _time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


class Desk:
    """The disclosure programme over one store, one PSIRT key and one commitment log."""

    def __init__(
        self,
        store: Store,
        key: PSIRTKey,
        log: CommitmentLog,
        program: str,
        clock: Callable[[], datetime] = _now,
        *,
        publisher: Publisher | None = None,
        signer: PublisherSigner | None = None,
    ) -> None:
        """``publisher`` and ``signer`` (the publisher key that signs logged advisories)
        are needed only to publish advisories."""
        from argon2 import PasswordHasher

        self.store = store
        self.key = key
        self.log = log
        self.program = program
        self.clock = clock
        self.publisher = publisher
        self.signer = signer
        self._hasher = PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        self._intake: Batcher[Submission, Intake] = Batcher(self.submit_many)
        self._transitions = threading.Lock()

    # -- intake and the researcher's side ------------------------------------

    def submit(self, sub: Submission) -> Intake:
        """Take one report (batched with concurrent ones: one log append, one transaction).

        Raises:
            SubmissionError, TooLargeError, InvalidVectorError: checked here, before the
                batch, so one bad submission never fails the others' intake.
            LogError, StoreError: the log or the database failed (nothing is stored).
        """
        return self._intake.call(check_submission(sub))

    def submit_many(self, subs: Sequence[Submission]) -> list[Intake]:
        """Take reports: seal them, log their commitments, store them; returns the receipts.

        Raises:
            SubmissionError, TooLargeError, InvalidVectorError: a malformed submission
                (nothing of the batch is taken).
            LogError, StoreError: the log or the database failed (nothing is stored).
        """
        at = self.clock()
        prepared = []
        for sub in subs:
            check_submission(sub)
            report_id = f"R-{secrets.token_hex(8)}"
            token = secrets.token_urlsafe(32)
            salt = new_salt()
            entry = commitment_entry(self.program, salt, report_id, State.RECEIVED, at)
            prepared.append((sub, report_id, token, salt, entry))
        proofs = self.log.append([p[4] for p in prepared])
        rows, first_events, files, out = [], [], [], []
        for (sub, report_id, token, salt, entry), proof in zip(prepared, proofs, strict=True):
            body = json.dumps(
                {
                    "title": sub.title,
                    "description": sub.description,
                    "contact": sub.contact,
                    "product": sub.product,
                }
            ).encode()
            scored = score(sub.cvss) if sub.cvss is not None else None
            rows.append(
                {
                    "id": report_id,
                    "token_hash": _token_hash(token),
                    "researcher": sub.researcher,
                    "vuln_class": sub.vuln_class.value,
                    "state": State.RECEIVED.value,
                    "verdict": None,
                    "cvss_vector": scored.vector if scored else None,
                    "cvss_score": scored.base if scored else None,
                    "severity": scored.severity.value if scored else None,
                    "received_at": _epoch(at),
                    "updated_at": _epoch(at),
                    "exploited_at": None,
                    "salt": salt,
                    "sealed_body": seal(self.key.public, body, "body", report_id),
                    "size": len(body) + sum(len(a.data) for a in sub.attachments),
                }
            )
            first_events.append(
                {
                    "report_id": report_id,
                    "seq": 0,
                    "state": State.RECEIVED.value,
                    "verdict": None,
                    "actor": sub.researcher,
                    "at": _epoch(at),
                    "entry": entry,
                    "proof": proof,
                }
            )
            for n, a in enumerate(sub.attachments):
                plain = a.name.encode() + b"\x00" + a.data
                files.append(
                    {
                        "report_id": report_id,
                        "seq": n,
                        "size": len(a.data),
                        "sealed": seal(self.key.public, plain, f"attachment {n}", report_id),
                    }
                )
            out.append(Intake(report_id, token, Receipt(self.program, report_id, salt, at), proof))
        self.store.add_reports(rows, first_events, files)
        return out

    def report_for_token(self, token: str) -> str:
        """The report a tracking token opens. Raises ReportNotFoundError."""
        if not 20 <= len(token) <= 100:
            raise ReportNotFoundError("(tracking token)")
        return self.store.report_id_for_token(_token_hash(token))

    def track(self, token: str) -> Tracking:
        """The researcher's view of the report the token opens (the read is recorded).

        Raises:
            ReportNotFoundError: no report has this token.
        """
        report_id = self.report_for_token(token)
        row = self.store.report(report_id)
        self.store.record_read(report_id, "researcher", _epoch(self.clock()), "status")
        body = self._body(row)
        case = self._case(row)
        event_rows = self.store.events([report_id])
        return Tracking(
            report_id,
            str(body["title"]),
            case.state,
            case.verdict,
            row.severity,
            deadlines(case),
            tuple((e, bytes(r.proof)) for e, r in zip(case.events, event_rows, strict=True)),
            self._messages(report_id),
        )

    def researcher_message(self, token: str, text: str) -> None:
        """Raises ReportNotFoundError, SubmissionError, TooLargeError."""
        report_id = self.report_for_token(token)
        self._add_message(report_id, "researcher", text)

    # -- triage --------------------------------------------------------------

    def view(self, account: Account, report_id: str) -> ReportView:
        """The whole report, decrypted, for a triager or admin (the read is recorded).

        Raises:
            ReportNotFoundError: no such report.
        """
        row = self.store.report(report_id)
        self.store.record_read(report_id, account.username, _epoch(self.clock()), "report")
        body = self._body(row)
        files = []
        for seq, _size, sealed in self.store.attachments(report_id):
            plain = open_sealed(self.key.private, sealed, f"attachment {seq}", report_id)
            name, _, data = plain.partition(b"\x00")
            files.append(Attachment(name.decode(), data))
        return ReportView(
            report_id,
            row.researcher,
            VulnClass(row.vuln_class),
            str(body["title"]),
            str(body["description"]),
            str(body["contact"]),
            str(body["product"]),
            row.cvss_vector,
            row.cvss_score,
            row.severity,
            self._case(row),
            tuple(files),
            self._messages(report_id),
        )

    def message(self, account: Account, report_id: str, text: str) -> None:
        """A triager's message to the researcher. Raises ReportNotFoundError, SubmissionError."""
        self.store.report(report_id)
        self._add_message(report_id, account.username, text)

    def transition(
        self, account: Account, report_id: str, to: State, verdict: Verdict | None = None
    ) -> bytes:
        """Move the report to ``to``; the commitment is logged first. Returns its tlog-proof.

        Raises:
            ReportNotFoundError, TransitionError: see :func:`overt.disclosure.workflow.advance`.
        """
        # One transition at a time: two triagers racing on one report must not both log a
        # commitment (the loser's would name a step that the database never took).
        with self._transitions:
            return self._transition(account, report_id, to, verdict)

    def _transition(
        self, account: Account, report_id: str, to: State, verdict: Verdict | None
    ) -> bytes:
        row = self.store.report(report_id)
        at = self.clock()
        case = advance(self._case(row), to, account.username, at, verdict)
        entry = commitment_entry(self.program, row.salt, report_id, to, at)
        [proof] = self.log.append([entry])
        values: dict[str, Any] = {"state": to.value, "updated_at": _epoch(at)}
        if verdict is not None:
            values["verdict"] = verdict.value
        self.store.add_event(
            {
                "report_id": report_id,
                "seq": len(case.events) - 1,
                "state": to.value,
                "verdict": verdict.value if verdict else None,
                "actor": account.username,
                "at": _epoch(at),
                "entry": entry,
                "proof": proof,
            },
            values,
        )
        return proof

    def set_cvss(self, account: Account, report_id: str, vector: str) -> Score:
        """Score the report. Raises InvalidVectorError, ReportNotFoundError."""
        scored = score(vector)
        self.store.report(report_id)
        self.store.update_report(
            report_id,
            cvss_vector=scored.vector,
            cvss_score=scored.base,
            severity=scored.severity.value,
        )
        return scored

    def flag_exploited(self, account: Account, report_id: str) -> Deadlines:
        """Record that the report is exploited in the wild; returns the new deadlines."""
        row = self.store.report(report_id)
        at = self.clock()
        case = mark_exploited(self._case(row), at)
        if row.exploited_at is None:
            self.store.update_report(report_id, exploited_at=_epoch(at))
        return deadlines(case)

    def triage_list(self, account: Account, state: State | None = None) -> list[SummaryRow]:
        """Every report (or those in ``state``), oldest first; nothing decrypted."""
        return self.store.summaries(state.value if state else None)

    def overdue(self, account: Account | None = None) -> list[Overdue]:
        """Deadlines missed and still open, now: reports not acknowledged in time, and
        valid reports not disclosed in time (what an alert should name)."""
        now = self.clock()
        open_rows = [
            r
            for r in self.store.summaries()
            if r.state != State.DISCLOSED.value and r.verdict in (None, Verdict.VALID.value)
        ]
        by_report: dict[str, list[EventRow]] = {}
        for e in self.store.events([r.id for r in open_rows]) if open_rows else []:
            by_report.setdefault(e.report_id, []).append(e)
        found: list[Overdue] = []
        for r in open_rows:
            case = self._case_from(r.id, by_report.get(r.id, []), r.exploited_at)
            acked = case.entered(State.ACKNOWLEDGED) is not None
            found.extend(o for o in overdue(case, now) if not (o.kind == "acknowledge" and acked))
        return found

    def case(self, report_id: str) -> Case:
        return self._case(self.store.report(report_id))

    def reads(self, account: Account, report_id: str) -> list[tuple[str, datetime, str]]:
        """Who read the report, when, and what (admins only).

        Raises:
            AccessDeniedError: not an admin.
        """
        self._admin(account, "see who read a report")
        return [(a, _time(t), w) for a, t, w in self.store.reads(report_id)]

    # -- bounty --------------------------------------------------------------

    def bounty_table(self) -> BountyTable:
        text = self.store.setting("bounty_table")
        return DEFAULT_TABLE if text is None else parse_table(text)

    def set_bounty_table(self, account: Account, table: BountyTable) -> None:
        """Raises AccessDeniedError: only an admin changes the table."""
        self._admin(account, "change the bounty table")
        self.store.set_setting("bounty_table", format_table(table))

    def pay(self, account: Account, report_id: str) -> Payout:
        """Record the bounty for a report triaged valid and scored (admins only).

        Raises:
            AccessDeniedError: not an admin.
            TransitionError: not triaged valid, not scored, or earns nothing.
            StoreError: paid already (409).
        """
        self._admin(account, "pay a bounty")
        row = self.store.report(report_id)
        case = self._case(row)
        if case.verdict != Verdict.VALID or row.severity is None:
            raise TransitionError(
                report_id, case.state.value, "paid", "not triaged valid and scored"
            )
        amount = award(
            self.bounty_table(), VulnClass(row.vuln_class), Severity(row.severity), case.verdict
        )
        if amount == 0:
            raise TransitionError(report_id, case.state.value, "paid", "the table pays nothing")
        at = self.clock()
        self.store.add_payout(report_id, row.researcher, amount, _epoch(at))
        return Payout(report_id, row.researcher, amount, at)

    def ledger(self, account: Account) -> Ledger:
        """Payout totals (admins only). Raises AccessDeniedError."""
        self._admin(account, "read the payout ledger")
        return ledger(Payout(r, w, a, _time(t)) for r, w, a, t in self.store.payouts())

    # -- advisories -------------------------------------------------------------

    def publish_advisory(
        self, account: Account, report_id: str, details: AdvisoryDetails
    ) -> tuple[str, bytes]:
        """Make, validate, log and store the CSAF and OSV advisories of a fixed report.

        Returns the CSAF document's path in the directory and the publication's
        tlog-proof.

        Raises:
            TransitionError: the report is not fixed (or disclosed) yet.
            FormatError: a document breaks its schema (nothing is logged).
            ConfigError: no publisher or publisher key configured.
            StoreError: the report or the advisory id has an advisory already (409).
        """
        from overt.disclosure import advisories as adv
        from overt.publish.publisher import Publication, make_entry

        if self.publisher is None or self.signer is None:
            raise ConfigError("no publisher configured: advisories cannot be published")
        view = self.view(account, report_id)
        if view.case.entered(State.FIXED) is None:
            raise TransitionError(report_id, view.case.state.value, "advisory", "not fixed yet")
        for rid, aid, *_ in self.store.advisories():
            if rid == report_id or aid == details.advisory_id:
                raise StoreError(f"advisory {aid} of report {rid} exists already", True)
        at = self.clock()
        csaf = adv.validate("csaf", adv.make_csaf(self.publisher, details, view, at))
        osv = adv.validate("osv", adv.make_osv(self.publisher, details, view, at))
        path = adv.csaf_path(details.advisory_id, at)
        predicate = {
            "advisory_id": details.advisory_id,
            "osv": {
                "id": adv.osv_id(details.advisory_id),
                "sha256": hashlib.sha256(osv).hexdigest(),
            },
        }
        entry = make_entry(
            self.signer,
            Publication(
                f"csaf/white/{path}",
                hashlib.sha256(csaf).hexdigest(),
                (adv.PREDICATE_TYPE, predicate),
            ),
        )
        [proof] = self.log.append([entry])
        self.store.add_advisory(report_id, details.advisory_id, csaf, osv, _epoch(at), entry, proof)
        return path, proof

    def advisory_files(self) -> dict[str, bytes]:
        """What ``/.well-known/csaf/`` and ``/osv/`` serve, by path under the site root."""
        from overt.disclosure import advisories as adv

        if self.publisher is None:
            return {}
        rows = self.store.advisories()
        files: dict[str, bytes] = {}
        listed: list[tuple[str, datetime]] = []
        for _rid, advisory_id, csaf, osv, at, proof in rows:
            path = adv.csaf_path(advisory_id, _time(at))
            listed.append((path, _time(at)))
            files[f".well-known/csaf/white/{path}"] = csaf
            files[f".well-known/csaf/white/{path}.sha256"] = adv.sha256_line(csaf, path).encode()
            files[f".well-known/csaf/white/{path}.tlog-proof"] = proof
            files[f"osv/{adv.osv_id(advisory_id)}.json"] = osv
        last = max((at for _p, at in listed), default=self.clock())
        files[".well-known/csaf/provider-metadata.json"] = adv.validate(
            "provider", adv.provider_metadata(self.publisher, last)
        )
        files[".well-known/csaf/white/index.txt"] = adv.index_txt([p for p, _ in listed]).encode()
        files[".well-known/csaf/white/changes.csv"] = adv.changes_csv(listed).encode()
        return files

    # -- accounts and sessions -------------------------------------------------

    def add_account(self, username: str, password: str, role: Role) -> Account:
        """Raises SubmissionError (bad name, password under 12 characters), StoreError."""
        if not _USERNAME.fullmatch(username):
            raise SubmissionError("username", "not 1-64 of [a-z0-9._-]", username[:64])
        if not 12 <= len(password) <= 1024:
            raise SubmissionError("password", "must be 12 to 1024 characters")
        self.store.add_account(username, role.value, self._hasher.hash(password))
        return Account(username, role)

    def login(self, username: str, password: str) -> Account:
        """The account, if the password is right.

        Raises:
            AuthenticationError: unknown user or wrong password (the same message and,
                as far as argon2 allows, the same time).
        """
        from argon2.exceptions import InvalidHashError, VerificationError

        found = self.store.account(username) if _USERNAME.fullmatch(username) else None
        stored = found[1] if found else self._dummy_hash
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError) as err:
            raise AuthenticationError("wrong username or password") from err
        if found is None:
            raise AuthenticationError("wrong username or password")
        if self._hasher.check_needs_rehash(stored):
            self.store.set_password_hash(username, self._hasher.hash(password))
        return Account(username, Role(found[0]))

    def open_session(self, account: Account) -> tuple[str, str]:
        """A new session: (session id for the cookie, CSRF token for the forms)."""
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = _epoch(self.clock())
        self.store.add_session(
            _token_hash(session_id), account.username, csrf, now + _SESSION_SECONDS, now
        )
        return session_id, csrf

    def session(self, session_id: str) -> tuple[Account, str]:
        """(account, CSRF token) of a live session.

        Raises:
            AuthenticationError: unknown or expired session.
        """
        found = self.store.session(_token_hash(session_id)) if len(session_id) <= 100 else None
        if found is None or found[2] < _epoch(self.clock()):
            raise AuthenticationError("not logged in (or the session expired)")
        account = self.store.account(found[0])
        if account is None:
            raise AuthenticationError("the account is gone")
        return Account(found[0], Role(account[0])), found[1]

    def close_session(self, session_id: str) -> None:
        self.store.drop_session(_token_hash(session_id))

    # -- internals -----------------------------------------------------------

    @staticmethod
    def _admin(account: Account, action: str) -> None:
        if account.role is not Role.ADMIN:
            raise AccessDeniedError(f"{account.role} {account.username}", action)

    def _body(self, row: ReportRow) -> dict[str, Any]:
        plain = open_sealed(self.key.private, bytes(row.sealed_body), "body", row.id)
        doc: dict[str, Any] = json.loads(plain)
        return doc

    def _add_message(self, report_id: str, author: str, text: str) -> None:
        _text(text, "message", MAX_MESSAGE)
        sealed = seal(self.key.public, text.encode(), f"message by {author}", report_id)
        self.store.add_message(report_id, author, _epoch(self.clock()), sealed)

    def _messages(self, report_id: str) -> tuple[tuple[str, datetime, str], ...]:
        out = []
        for _seq, author, at, sealed in self.store.messages(report_id):
            text = open_sealed(self.key.private, sealed, f"message by {author}", report_id)
            out.append((author, _time(at), text.decode()))
        return tuple(out)

    def _case(self, row: ReportRow) -> Case:
        return self._case_from(row.id, self.store.events([row.id]), row.exploited_at)

    @staticmethod
    def _case_from(report_id: str, rows: Sequence[EventRow], exploited_at: int | None) -> Case:
        if not rows:
            raise ReportNotFoundError(report_id)
        case = open_case(report_id, rows[0].actor, _time(rows[0].at))
        for r in rows[1:]:
            case = Case(
                report_id,
                (
                    *case.events,
                    Event(
                        State(r.state),
                        r.actor,
                        _time(r.at),
                        Verdict(r.verdict) if r.verdict else None,
                    ),
                ),
            )
        if exploited_at is not None:
            case = Case(report_id, case.events, _time(exploited_at))
        return case
