"""The gate's source requirement: reviewed and reproduced enough, checked offline. No I/O.

A client policy may hold a ``source`` member (:mod:`overt.gate.policy`)::

    "source": {
      "reviewers": ["<reviewer vkey>", ...],  "min_reviewers": 2,
      "min_coverage": 90,                      percent of the source's files
      "max_open_severity": "high",             refuse an open finding at or above (optional)
      "rebuilders": ["<rebuilder vkey>", ...], "min_rebuilders": 2,
      "sbom": {"scanners": ["<scanner vkey>", ...], "min_scanners": 1,     (optional)
               "max_severity": "high", "max_osv_age": 604800}
    }

Then a release or update is admitted only with this evidence in its bundle, every
statement proven included in the bundle's checkpoint (:mod:`overt.publish.bundle`):

1. ``provenance``: a SLSA Provenance v1 attestation (:mod:`overt.formats.slsa_provenance`)
   signed by a current publisher key, about the artifact, naming a source digest; the
   bundle's ``source`` is the snapshot text with that digest.
2. ``reviewers``: reviews (:mod:`overt.formats.source_review`) signed by at least
   ``min_reviewers`` of the policy's reviewer keys.
3. ``coverage``: at least ``min_coverage`` % of the snapshot's files reviewed by
   ``min_reviewers`` of them, by file digest (:func:`overt.source.review.coverage`).
4. ``findings``: no open finding (on a file digest the source still holds) at or above
   ``max_open_severity``.
5. ``rebuild``: no policy rebuilder reports a mismatch for the artifact (a FAILED VSA,
   :mod:`overt.formats.vsa`), and at least ``min_rebuilders`` of them report PASSED from
   this source digest.
6. ``sbom`` (with an ``sbom`` member): an SBOM (CycloneDX, predicate type
   ``https://cyclonedx.org/bom/v1.6``) signed by a current publisher key about the artifact.
7. ``vulnerabilities``: no scan verdict (:mod:`overt.sbom.verdict`) by a policy scanner on
   that SBOM reports a known vulnerability at or above ``max_severity``, and at least
   ``min_scanners`` of them report none from an OSV export at most ``max_osv_age`` seconds
   old. A verdict is bound to the SBOM by its digest, the SBOM to the release by the
   publisher's signature: a verdict on another release's SBOM says nothing about this one.

With ``min_reviewers`` and ``min_rebuilders`` both 0 (an SBOM requirement alone), steps 1
to 5 are skipped.

The first unmet requirement is the :class:`~overt.gate.errors.SourceRequirementError`
(check ``source``) whose message names it. Reviewers and rebuilders are pinned by the
policy: anyone can log a key, only the policy says whose word counts.
"""

from __future__ import annotations

import calendar
import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from overt.errors import (
    FormatError,
    InvalidSignatureError,
    OvertError,
    PolicyError,
    UnknownKeyError,
)
from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, parse_envelope, verify_envelope
from overt.formats.keytypes import RawPublicKey
from overt.formats.slsa_provenance import PROVENANCE_PREDICATE, Provenance
from overt.formats.source_review import REVIEW_PREDICATE, SEVERITIES, ReviewPredicate, severity_rank
from overt.formats.source_snapshot import parse_snapshot
from overt.formats.statement import Statement, parse_statement
from overt.formats.strict import json_int, json_members, json_str
from overt.formats.vsa import VSA_PREDICATE, Vsa
from overt.gate.errors import SourceRequirementError
from overt.publish.keys import PublisherKey, parse_publisher_key
from overt.sbom.verdict import (
    SBOM_PREDICATE,
    SCAN_PREDICATE,
    ScanVerdict,
    sbom_digest,
    scan_severity_rank,
)
from overt.source.review import Review, coverage

__all__ = [
    "SbomRequirement",
    "SourceEvidence",
    "SourceRequirement",
    "check_source",
    "parse_source_requirement",
]

_WHAT = "client policy source"


@dataclass(frozen=True)
class SbomRequirement:
    """Whose scans count, how many, the severity refused and the oldest OSV export accepted."""

    scanners: tuple[PublisherKey, ...]
    min_scanners: int
    max_severity: str
    max_osv_age: float


@dataclass(frozen=True)
class SourceRequirement:
    """What a release's source must show (see the module notes)."""

    reviewers: tuple[PublisherKey, ...]
    min_reviewers: int
    min_coverage: float
    max_open_severity: str | None
    rebuilders: tuple[PublisherKey, ...]
    min_rebuilders: int
    sbom: SbomRequirement | None = None


@dataclass(frozen=True)
class SourceEvidence:
    """What the evidence showed: the source digest, coverage, reviewers and rebuilders."""

    source_sha256: str
    file_share: float
    reviewers: tuple[str, ...]
    rebuilders: tuple[str, ...]
    scanners: tuple[str, ...] = ()


def _keys(value: object, field: str) -> tuple[PublisherKey, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FormatError(_WHAT, f"{field} is not a list of keys", repr(value)[:80])
    keys = tuple(parse_publisher_key(v) for v in value)
    if len({k.keyid for k in keys}) != len(keys):
        raise FormatError(_WHAT, f"{field} lists one key twice")
    return keys


def parse_source_requirement(obj: object) -> SourceRequirement:
    """Parse the policy's ``source`` member.

    Raises:
        FormatError: malformed; PolicyError: unsatisfiable (more reviewers or rebuilders
            required than listed, coverage above 100) or empty (requires nothing).
    """
    m = json_members(
        obj,
        _WHAT,
        ("reviewers", "min_reviewers", "min_coverage", "rebuilders", "min_rebuilders"),
        ("max_open_severity", "sbom"),
    )
    reviewers = _keys(m["reviewers"], "reviewers")
    rebuilders = _keys(m["rebuilders"], "rebuilders")
    k_review = json_int(m["min_reviewers"], _WHAT, "min_reviewers", 0)
    k_rebuild = json_int(m["min_rebuilders"], _WHAT, "min_rebuilders", 0)
    pct = m["min_coverage"]
    if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 100:
        raise PolicyError(f"source min_coverage {pct!r} is not a percentage (0 to 100)")
    severity = m.get("max_open_severity")
    if severity is not None:
        severity = json_str(severity, _WHAT, "max_open_severity", max_len=16)
        if severity not in SEVERITIES:
            raise FormatError(_WHAT, f"max_open_severity is not one of {SEVERITIES}", severity)
    if k_review > len(reviewers) or k_rebuild > len(rebuilders):
        raise PolicyError("source requires more reviewers or rebuilders than it lists")
    sbom = _sbom_requirement(m["sbom"]) if "sbom" in m else None
    if k_review == 0 and k_rebuild == 0 and sbom is None:
        raise PolicyError(
            "the source requirement requires nothing (min_reviewers and min_rebuilders 0)"
        )
    if pct > 0 and k_review == 0:
        raise PolicyError("source min_coverage needs min_reviewers >= 1")
    return SourceRequirement(reviewers, k_review, float(pct), severity, rebuilders, k_rebuild, sbom)


def _sbom_requirement(obj: object) -> SbomRequirement:
    what = f"{_WHAT} sbom"
    m = json_members(obj, what, ("scanners", "min_scanners", "max_severity", "max_osv_age"))
    scanners = _keys(m["scanners"], "sbom scanners")
    k = json_int(m["min_scanners"], what, "min_scanners", 1)
    if k > len(scanners):
        raise PolicyError(f"source sbom min_scanners {k} exceeds the {len(scanners)} scanners")
    severity = json_str(m["max_severity"], what, "max_severity", max_len=16)
    if severity not in SEVERITIES:
        raise FormatError(what, f"max_severity is not one of {SEVERITIES}", severity)
    age = m["max_osv_age"]
    if isinstance(age, bool) or not isinstance(age, int | float) or not 0 < age < 1e12:
        raise FormatError(what, "max_osv_age is not a positive number of seconds", repr(age))
    return SbomRequirement(scanners, k, severity, float(age))


@functools.lru_cache(maxsize=256)
def _keyid(vkey: str) -> str:
    """The DSSE key ID of a reviewer key named in a review (cached: reviews repeat them)."""
    return parse_publisher_key(vkey).keyid


def _signers(envelope: Envelope, keys: Mapping[str, RawPublicKey]) -> tuple[str, ...]:
    """The keys (of ``keys``) that signed ``envelope``; () when none did.

    Raises:
        SourceRequirementError: a bad signature by one of them.
    """
    if not keys:
        return ()
    try:
        return verify_envelope(envelope, keys).keyids
    except UnknownKeyError:
        return ()
    except InvalidSignatureError as err:
        raise SourceRequirementError(f"an attestation has a bad signature: {err}") from err


def check_source(
    artifact_sha256: str,
    attestations: Sequence[bytes | Envelope],
    source: bytes,
    publisher_keys: Mapping[str, RawPublicKey],
    req: SourceRequirement,
    now: float | None = None,
) -> SourceEvidence:
    """Check the source requirement (see the module notes) on already-included attestations
    (log entries, or the envelopes parsed from them).
    ``now`` (seconds since the epoch) is needed by an ``sbom`` requirement's ``max_osv_age``.

    Raises:
        SourceRequirementError: the first unmet requirement, named in its message.
    """
    try:
        return _check(artifact_sha256, attestations, source, publisher_keys, req, now)
    except SourceRequirementError:
        raise
    except OvertError as err:
        raise SourceRequirementError(f"malformed source evidence: {err}") from err


def _check(
    artifact_sha256: str,
    attestations: Sequence[bytes | Envelope],
    source: bytes,
    publisher_keys: Mapping[str, RawPublicKey],
    req: SourceRequirement,
    now: float | None,
) -> SourceEvidence:
    parsed: list[tuple[Envelope, Statement]] = []
    for entry in attestations:
        # Envelopes come parsed from the bundle (overt.publish.bundle.LoggedEntry.envelope).
        envelope = entry if isinstance(entry, Envelope) else parse_envelope(entry)
        if envelope.payload_type == PAYLOAD_TYPE_IN_TOTO:
            parsed.append((envelope, parse_statement(envelope.payload)))
    evidence = SourceEvidence("", 0.0, (), ())
    if req.min_reviewers or req.min_rebuilders:
        evidence = _check_chain(artifact_sha256, parsed, source, publisher_keys, req)
    if req.sbom is not None:
        if now is None:
            raise SourceRequirementError("sbom: no clock to check the OSV export's age against")
        scanners = _check_sbom(artifact_sha256, parsed, publisher_keys, req.sbom, now)
        evidence = dataclasses.replace(evidence, scanners=scanners)
    return evidence


def _when(text: str) -> float:
    """Seconds since the epoch of a verdict's YYYY-MM-DDTHH:MM:SSZ (already checked)."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def _check_sbom(
    artifact_sha256: str,
    parsed: Sequence[tuple[Envelope, Statement]],
    publisher_keys: Mapping[str, RawPublicKey],
    req: SbomRequirement,
    now: float,
) -> tuple[str, ...]:
    """Steps 6 and 7 of the module notes; the scanners whose verdicts count."""
    sboms: dict[str, set[str]] = {}  # SBOM digest -> scanners that found it clean and fresh
    for envelope, statement in parsed:
        if (
            statement.predicate_type == SBOM_PREDICATE
            and artifact_sha256 in (s.sha256 for s in statement.subjects)
            and _signers(envelope, publisher_keys)
        ):
            sboms.setdefault(sbom_digest(statement.predicate), set())
    if not sboms:
        raise SourceRequirementError(
            "sbom: no SBOM signed by the publisher about this artifact is in the bundle"
        )
    scanner_keys = {k.keyid: k.public_key for k in req.scanners}
    limit = scan_severity_rank(req.max_severity)
    stale = 0
    for envelope, statement in parsed:
        if statement.predicate_type != SCAN_PREDICATE:
            continue
        targets = [s.sha256 for s in statement.subjects if s.sha256 in sboms]
        if not targets:
            continue  # a verdict on another SBOM (another release's) says nothing here
        signers = _signers(envelope, scanner_keys)
        if not signers:
            continue
        verdict = ScanVerdict.from_json(statement.predicate)
        if scan_severity_rank(verdict.max_severity) >= limit:
            worst = next(v for v in verdict.vulnerable if v.severity == verdict.max_severity)
            raise SourceRequirementError(
                f"vulnerabilities: scanner {signers[0][:16]} found {worst.name} {worst.version}"
                f" {worst.severity} ({', '.join(worst.advisories)}), at or above the"
                f" {req.max_severity} the policy refuses"
            )
        if now - _when(verdict.osv_date) > req.max_osv_age:
            stale += 1
            continue
        for target in targets:
            if target is not None:
                sboms[target].update(signers)
    for digest, clean in sboms.items():
        if len(clean) < req.min_scanners:
            older = f" ({stale} verdict(s) from an older OSV export)" if stale else ""
            raise SourceRequirementError(
                f"vulnerabilities: SBOM {digest[:16]}... found free of known vulnerabilities"
                f" at or above {req.max_severity} by {len(clean)} of the {req.min_scanners}"
                f" required scanners, with an OSV export at most {req.max_osv_age:g} s old"
                f"{older}"
            )
    return tuple(sorted(set().union(*sboms.values())))


def _check_chain(
    artifact_sha256: str,
    parsed: Sequence[tuple[Envelope, Statement]],
    source: bytes,
    publisher_keys: Mapping[str, RawPublicKey],
    req: SourceRequirement,
) -> SourceEvidence:
    """Steps 1 to 5 of the module notes."""
    reviewer_keys = {k.keyid: k.public_key for k in req.reviewers}
    rebuilder_keys = {k.keyid: k.public_key for k in req.rebuilders}
    provenance: Provenance | None = None
    reviews: list[Review] = []
    passed: set[str] = set()
    for envelope, statement in parsed:
        if (
            statement.predicate_type == PROVENANCE_PREDICATE
            and provenance is None
            and artifact_sha256 in (s.sha256 for s in statement.subjects)
            and _signers(envelope, publisher_keys)
        ):
            provenance = Provenance.from_json(statement.predicate)
    if provenance is None:
        raise SourceRequirementError(
            "provenance: no SLSA provenance signed by the publisher names this artifact's source"
        )
    digest = provenance.source_sha256
    # parse_snapshot hashes the text it parses (canonical: its hash is the digest), so the
    # snapshot is hashed once, not once here and once there.
    try:
        snapshot = parse_snapshot(source)
    except FormatError:
        snapshot = None
    if snapshot is None or snapshot.digest != digest:
        raise SourceRequirementError(
            f"provenance: the bundle does not carry the source snapshot {digest[:16]}..."
        )
    for envelope, statement in parsed:
        if statement.predicate_type == REVIEW_PREDICATE:
            signers = _signers(envelope, reviewer_keys)
            if not signers:
                continue
            predicate = ReviewPredicate.from_json(statement.predicate)
            if _keyid(predicate.reviewer) not in signers:
                continue  # names another reviewer than the one who signed
            reviews.append(Review(signers[0], "", statement.subjects[0].sha256 or "", predicate, 0))
        elif statement.predicate_type == VSA_PREDICATE:
            if artifact_sha256 not in (s.sha256 for s in statement.subjects):
                continue
            signers = _signers(envelope, rebuilder_keys)
            if not signers:
                continue
            vsa = Vsa.from_json(statement.predicate)
            if vsa.source_snapshot != digest:
                continue  # a rebuild from another source says nothing about this one
            if not vsa.passed:
                raise SourceRequirementError(
                    f"rebuild: rebuilder {signers[0][:16]} reports a mismatch:"
                    f" {vsa.difference or 'the output differs'}"
                )
            passed.update(signers)
    cov = coverage(snapshot, reviews, max(req.min_reviewers, 1))
    if len(cov.reviewers) < req.min_reviewers:
        raise SourceRequirementError(
            f"reviewers: source {digest[:16]}... reviewed by {len(cov.reviewers)} of the"
            f" {req.min_reviewers} required reviewers"
        )
    if req.min_reviewers and cov.file_share < req.min_coverage:
        first = (cov.changed or cov.unreviewed or ("?",))[0]
        raise SourceRequirementError(
            f"coverage: {cov.file_share:.1f}% of the source's files reviewed by"
            f" {req.min_reviewers} reviewers, {req.min_coverage:g}% required (first unreviewed:"
            f" {first})"
        )
    if req.max_open_severity is not None:
        limit = severity_rank(req.max_open_severity)
        for _, finding in cov.open_findings:
            if severity_rank(finding.severity) >= limit:
                raise SourceRequirementError(
                    f"findings: open {finding.severity} finding at {finding.path}:{finding.line}:"
                    f" {finding.text}"
                )
    if len(passed) < req.min_rebuilders:
        raise SourceRequirementError(
            f"rebuild: reproduced by {len(passed)} of the {req.min_rebuilders} required rebuilders"
        )
    return SourceEvidence(digest, cov.file_share, cov.reviewers, tuple(sorted(passed)))
