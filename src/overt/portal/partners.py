"""The partners' area: hand out a statement to sign, accept the signed envelope back.

A partner's key never reaches the portal. A reviewer or auditor (an account with the
partner's own publisher key, :mod:`overt.portal.accounts`) gets from the portal the
exact in-toto statement to sign, the same one the CLI would sign
(``overt review record`` for a source review, ``overt rules attest`` for a rule
audit), signs it where the key is (``overt portal sign STATEMENT --key KEY``, or the
page's in-browser signer with a key the partner imports), and uploads the DSSE
envelope. :func:`accept_envelope` is the verification core (no I/O) that decides
whether the envelope may be logged (the caller logs its canonical bytes):

1. it parses (strict DSSE, an in-toto statement of one subject);
2. its predicate is the one the role files: ``source-review/v1`` for a reviewer,
   ``rule-audit/v1`` for an auditor, and parses as the gate will read it;
3. it is about something logged: a review's subject is a logged source snapshot, an
   audit's a logged rule bundle (``known(predicate type, digest)``, the caller's index);
4. it is signed by the partner's key as the log knows it: the partner's key-set chain,
   followed from the account's first key through the key-set entries of the log
   (:func:`overt.publish.keyset.follow_keyset`), must be logged (key set 1 at least)
   and a key of its current set must have signed; a review names that same key as
   its ``reviewer``.

Raises :class:`~overt.errors.FormatError` (1, 2), :class:`~overt.errors.VerificationError`
(3, a wrong role), :class:`~overt.errors.UnknownKeyError` (no logged key set, or no
signature by a current key), :class:`~overt.errors.InvalidSignatureError` (a current
key's signature does not verify).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from overt.errors import FormatError, UnknownKeyError, VerificationError
from overt.formats.dsse import (
    PAYLOAD_TYPE_IN_TOTO,
    format_envelope,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)
from overt.formats.source_review import REVIEW_PREDICATE, ReviewPredicate
from overt.formats.source_snapshot import SNAPSHOT_PREDICATE
from overt.formats.statement import (
    RULE_AUDIT,
    RULE_BUNDLE,
    RuleAudit,
    Statement,
    format_statement,
    parse_statement,
)
from overt.portal.accounts import PartnerAccount, PartnerRole

if TYPE_CHECKING:
    from overt.formats.source_snapshot import Snapshot
    from overt.publish.keys import PublisherSigner
    from overt.publish.keyset import KeyState

__all__ = [
    "Accepted",
    "accept_envelope",
    "audit_statement",
    "partner_keys",
    "pretty",
    "review_statement",
    "sign_statement",
]

#: What each role files: the statement's predicate type, and what its subject must be.
FILES = {
    PartnerRole.REVIEWER: (REVIEW_PREDICATE, SNAPSHOT_PREDICATE),
    PartnerRole.AUDITOR: (RULE_AUDIT, RULE_BUNDLE),
}


@dataclass(frozen=True)
class Accepted:
    """An envelope that may be logged: its exact bytes and what it says."""

    entry: bytes
    statement: Statement
    keyid: str  # the DSSE key ID of the partner's key that signed


def review_statement(
    snapshot: Snapshot,
    reviewer: str,
    patterns: Sequence[str],
    verdict: str,
    thoroughness: str,
    findings: Sequence[tuple[str, str, int, str]] = (),
) -> bytes:
    """The source-review statement ``overt review record`` would sign, to hand out.

    Raises:
        ReviewError, FormatError: see :func:`overt.source.review.make_review`.
    """
    from overt.formats.statement import make_statement
    from overt.source.review import make_review

    predicate = make_review(snapshot, reviewer, patterns, verdict, thoroughness, (), findings)
    statement = make_statement("source", snapshot.digest, (REVIEW_PREDICATE, predicate.to_json()))
    return format_statement(statement)


def audit_statement(name: str, data: bytes, audit: str) -> bytes:
    """The rule-audit statement ``overt rules attest --static-only`` would sign for the
    bundle ``data`` (the auditor's static checks, run here), to hand out.

    Raises:
        FormatError: an unreadable bundle, or an audit name the statement cannot carry.
    """
    from overt.rules import audit_bundle_bytes
    from overt.rules.attest import audit_statement as statement_of

    report = audit_bundle_bytes(name, data, dynamic=False)
    return format_statement(statement_of(name, data, report, audit))


def sign_statement(statement: bytes, signer: PublisherSigner) -> bytes:
    """The DSSE envelope of ``statement`` signed by ``signer`` (what a partner uploads).

    Raises:
        FormatError: ``statement`` is not an in-toto statement.
    """
    parse_statement(statement)
    envelope = sign_envelope(PAYLOAD_TYPE_IN_TOTO, statement, [(signer.keyid, signer)])
    return format_envelope(envelope)


def partner_keys(first_vkey: str, keysets: Sequence[bytes]) -> KeyState:
    """The partner's current keys: their chain followed from ``first_vkey`` through the
    logged key-set entries ``keysets`` (log order; other parties' sets are skipped).

    Raises:
        UnknownKeyError: no key set of this partner is logged.
        FormatError: ``first_vkey`` is not a publisher key.
    """
    from overt.publish.keys import parse_publisher_key
    from overt.publish.keyset import KeySetError, KeyState, follow_keyset

    state = KeyState.pinned(parse_publisher_key(first_vkey))
    for entry in keysets:
        try:
            state = follow_keyset(state, [entry])
        except (KeySetError, FormatError, VerificationError):
            continue  # another party's key set, or not the next link of this chain
    if state.sequence == 0:
        raise UnknownKeyError(
            f"the key {first_vkey.split('+', 1)[0]} has no logged key set: log it first"
            " (overt review keygen)"
        )
    return state


def accept_envelope(
    data: bytes,
    account: PartnerAccount,
    keysets: Sequence[bytes],
    known: Callable[[str, str], bool],
) -> Accepted:
    """Whether ``account`` may log the envelope ``data`` (the module docstring's steps).

    ``keysets``: the log's key-set entries, in log order. ``known(predicate type,
    sha256)``: whether the log holds a statement of that type about that digest.
    """
    if account.role not in FILES or account.vkey is None:
        raise VerificationError(f"{account.role.value}s file nothing to sign")
    predicate_type, subject_type = FILES[account.role]
    envelope = parse_envelope(data)
    if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
        raise FormatError("DSSE envelope", "not an in-toto statement", envelope.payload_type)
    statement = parse_statement(envelope.payload)
    if statement.predicate_type != predicate_type:
        raise VerificationError(
            f"{account.role.value}s file {predicate_type} statements,"
            f" not {statement.predicate_type}"
        )
    if len(statement.subjects) != 1 or not statement.subjects[0].sha256:
        raise FormatError("statement", "not exactly one subject with a sha256 digest")
    digest = statement.subjects[0].sha256
    if account.role is PartnerRole.REVIEWER:
        review = ReviewPredicate.from_json(statement.predicate)
        signed_by = review.reviewer
    else:
        RuleAudit.from_json(statement.predicate)
        signed_by = None
    if not known(subject_type, digest):
        raise VerificationError(f"nothing logged of type {subject_type} has sha256 {digest}")
    state = partner_keys(account.vkey, keysets)
    verified = verify_envelope(envelope, state.trusted())
    if signed_by is not None and signed_by not in {k.vkey for k in state.keys}:
        raise VerificationError(
            f"the review names reviewer {signed_by.split('+', 1)[0]}, not this partner's key"
        )
    return Accepted(format_envelope(envelope), statement, verified.keyids[0])


def pretty(statement: bytes) -> str:
    """A statement for people to read before they sign it (the bytes signed are the
    canonical ones handed out, not this)."""
    return json.dumps(json.loads(statement), indent=2, sort_keys=True, ensure_ascii=False)
