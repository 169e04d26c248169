"""Rule-audit attestations: an auditor's signed, logged verdict on one rule bundle.

An auditor (a transparency center, an independent reviewer) audits the exact
bytes of a rule bundle and signs an in-toto Statement about them::

    subject:       [{"name": <bundle file name>, "digest": {"sha256": <bundle sha256>}}]
    predicateType: https://overt.dev/rule-audit/v1
    predicate:     {"audit": <audit name, e.g. "no-espionage">,
                    "result": "pass" | "fail",          # against fail_on
                    "bundle": {...}, "auditor": {...}, "policy": {...},
                    "counts": {...}, "files": N, "rules": N, "findings": [finding IDs]}

``audit`` and ``result`` are what the update gate reads
(:class:`overt.formats.statement.RuleAudit`): a client policy names the audits
a rule bundle needs and how many distinct auditor keys must have signed off
``pass`` (``rule_bundles`` in the client policy). The other members come from
:func:`overt.rules.audit.audit_predicate` and say what was checked. The
envelope is DSSE, signed with the auditor's Ed25519 key (the same key format
as publisher keys), and logged, so a failed audit is as public as a passed one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, format_envelope, sign_envelope
from overt.formats.statement import (
    RULE_AUDIT,
    RuleAudit,
    Statement,
    format_statement,
    make_statement,
)
from overt.publish.keys import PublisherSigner
from overt.rules.audit import Report, audit_bundle_bytes, audit_predicate
from overt.rules.detectors import Severity

__all__ = ["DEFAULT_AUDIT", "Attestation", "attest_bundle", "audit_statement", "make_attestation"]

#: The audit name overt's rule auditor signs off by default.
DEFAULT_AUDIT = "no-espionage"


@dataclass(frozen=True)
class Attestation:
    """A signed audit verdict, ready to log (``envelope`` is the log entry)."""

    envelope: bytes
    report: Report
    passed: bool
    sha256: str


def make_attestation(
    name: str,
    data: bytes,
    report: Report,
    signer: PublisherSigner,
    audit: str = DEFAULT_AUDIT,
    fail_on: Severity = Severity.HIGH,
) -> Attestation:
    """Sign the audit ``report`` of the bundle ``data`` as a rule-audit statement.

    Raises:
        FormatError: an audit name the statement cannot carry.
    """
    statement = audit_statement(name, data, report, audit, fail_on)
    envelope = sign_envelope(
        PAYLOAD_TYPE_IN_TOTO, format_statement(statement), [(signer.keyid, signer)]
    )
    passed = statement.predicate["result"] == "pass"
    return Attestation(
        format_envelope(envelope), report, passed, statement.subjects[0].digest["sha256"]
    )


def audit_statement(
    name: str,
    data: bytes,
    report: Report,
    audit: str = DEFAULT_AUDIT,
    fail_on: Severity = Severity.HIGH,
) -> Statement:
    """The unsigned rule-audit statement of ``report`` on the bundle ``data``: what
    :func:`make_attestation` signs, and what the portal hands an auditor to sign offline.

    Raises:
        FormatError: an audit name the statement cannot carry.
    """
    sha256 = hashlib.sha256(data).hexdigest()
    passed = not report.fails(fail_on)
    body = {
        **audit_predicate(report, fail_on),
        "audit": audit,
        "result": "pass" if passed else "fail",
    }
    statement = make_statement(name, sha256, (RULE_AUDIT, body))
    RuleAudit.from_json(statement.predicate)  # what the gate will read must parse
    return statement


def attest_bundle(
    name: str,
    data: bytes,
    signer: PublisherSigner,
    audit: str = DEFAULT_AUDIT,
    fail_on: Severity = Severity.HIGH,
    dynamic: bool = True,
) -> Attestation:
    """Audit the bundle bytes (``.yar`` text, tar, tar.gz or zip) and sign the verdict."""
    report = audit_bundle_bytes(name, data, dynamic=dynamic)
    return make_attestation(name, data, report, signer, audit, fail_on)
