"""Reviews bound to file digests: make one, verify one, and measure coverage. No I/O.

- :func:`make_review` builds the predicate of a review of ``snapshot``'s files
  (:mod:`overt.formats.source_review`), refusing patterns that match no file, line
  ranges and findings outside the reviewed files.
- :func:`verify_review` takes a review's bundle (as ``overt review record`` writes it)
  and the log's key: the review and the reviewer's key set are both in the log
  (inclusion proofs against one checkpoint signed by the log), the key set follows
  from its first key, and a key of it signed the review. The reviewer is named by that
  first key's DSSE key ID, which a rotation keeps: two reviewers are independent when
  their first keys differ.
- :func:`coverage` counts, for a snapshot, the files and lines reviewed by at least
  ``min_reviewers`` reviewers **by file digest** (a file unchanged since an older
  snapshot keeps its reviews, whatever its path), the files changed since they were
  reviewed, and the open findings (those on a file digest the snapshot still holds).
- :func:`diff_snapshots` lists what a reviewer still has to read between two snapshots.
"""

from __future__ import annotations

import fnmatch
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from overt.errors import FormatError, OvertError, VerificationError
from overt.formats.note import Verifier
from overt.formats.source_review import (
    REVIEW_PREDICATE,
    ReviewedFile,
    ReviewFinding,
    ReviewPredicate,
    severity_rank,
)
from overt.formats.source_snapshot import Snapshot

__all__ = [
    "Coverage",
    "InvalidReviewError",
    "Review",
    "ReviewError",
    "ReviewerKeyError",
    "SnapshotDiff",
    "coverage",
    "diff_snapshots",
    "make_review",
    "verify_review",
]


class ReviewError(OvertError):
    """A review that cannot be recorded (files not in the snapshot, a bad range)."""


class ReviewerKeyError(ReviewError):
    """A reviewer key whose key set is not in the log (``overt review keygen --log``)."""


class InvalidReviewError(VerificationError):
    """A review bundle that does not verify; ``.source`` names it."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        super().__init__(f"review {source}: {reason}")


# --- making -------------------------------------------------------------------------------


def make_review(
    snapshot: Snapshot,
    reviewer: str,
    patterns: Sequence[str],
    verdict: str,
    thoroughness: str,
    lines: Sequence[tuple[str, int, int]] = (),
    findings: Sequence[tuple[str, str, int, str]] = (),
) -> ReviewPredicate:
    """The predicate of ``reviewer``'s review of the files of ``snapshot`` that ``patterns``
    match (``fnmatch``: ``*`` also crosses ``/``). ``lines``: (path, start, end) narrows a
    reviewed file to those ranges; ``findings``: (severity, path, line, text).

    Raises:
        ReviewError: a pattern matching no file of the snapshot, a range or finding on a
            file that is not reviewed, overlapping ranges; FormatError: a bad verdict,
            thoroughness or severity.
    """
    by_path = snapshot.by_path()
    chosen: dict[str, str] = {}
    for pattern in patterns:
        matched = [p for p in by_path if fnmatch.fnmatchcase(p, pattern)]
        if not matched:
            raise ReviewError(f"{pattern!r} matches no file of snapshot {snapshot.digest[:16]}...")
        chosen.update((p, by_path[p].sha256) for p in matched)
    ranges: dict[str, list[tuple[int, int]]] = {}
    for path, start, end in lines:
        if path not in chosen:
            raise ReviewError(f"--lines {path}:{start}-{end}: {path} is not a reviewed file")
        if not 1 <= start <= end:
            raise ReviewError(f"--lines {path}:{start}-{end}: not 1 <= START <= END")
        ranges.setdefault(path, []).append((start, end))
    for path, spans in ranges.items():
        spans.sort()
        if any(b[0] <= a[1] for a, b in itertools.pairwise(spans)):
            raise ReviewError(f"--lines: ranges of {path} overlap")
    found = []
    for severity, path, line, text in findings:
        if path not in chosen:
            raise ReviewError(f"finding on {path}: not a reviewed file")
        severity_rank(severity)
        found.append(ReviewFinding(severity, path, chosen[path], line, text))
    files = tuple(
        ReviewedFile(p, chosen[p], tuple(ranges.get(p, ())))
        for p in sorted(chosen, key=lambda p: p.encode())
    )
    try:
        return ReviewPredicate(reviewer, verdict, thoroughness, files, tuple(found))
    except FormatError as err:
        raise ReviewError(f"not a valid review: {err.reason}") from err


# --- verifying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Review:
    """A verified review: who (first key's DSSE key ID and name), of what, where in the log."""

    reviewer: str
    reviewer_name: str
    snapshot: str
    predicate: ReviewPredicate
    index: int


def verify_review(bundle_bytes: bytes, log_verifier: Verifier, source: str = "bundle") -> Review:
    """The verified review in ``bundle_bytes`` (see the module notes).

    Raises:
        InvalidReviewError: malformed, not a review, not in the log, its key set not in
            the log or not a chain, or not signed by a key of that set.
    """
    from overt.formats import merkle
    from overt.formats.dsse import parse_envelope, verify_envelope
    from overt.formats.proof import verify_proof
    from overt.formats.statement import KeySet, parse_predicate, parse_statement
    from overt.publish.bundle import parse_bundle
    from overt.publish.keys import parse_publisher_key
    from overt.publish.keyset import KeyState, follow_keyset

    try:
        bundle = parse_bundle(bundle_bytes)
        checkpoint = verify_proof(
            bundle.proof, merkle.leaf_hash(bundle.entry), log_verifier
        ).checkpoint.checkpoint
        if not bundle.keysets:
            raise InvalidReviewError(source, "carries no reviewer key set")
        for logged in bundle.keysets:
            merkle.verify_inclusion(
                merkle.leaf_hash(logged.entry),
                logged.index,
                checkpoint.size,
                logged.hashes,
                checkpoint.root_hash,
            )
        first_set = parse_predicate(
            parse_statement(parse_envelope(bundle.keysets[0].entry).payload)
        )
        if not isinstance(first_set, KeySet) or first_set.sequence != 1 or not first_set.keys:
            raise InvalidReviewError(source, "its first key set is not a key set 1")
        first = parse_publisher_key(first_set.keys[0])
        keys = follow_keyset(KeyState.pinned(first), [k.entry for k in bundle.keysets])
        envelope = parse_envelope(bundle.entry)
        verify_envelope(envelope, keys.trusted())
        statement = parse_statement(envelope.payload)
        if statement.predicate_type != REVIEW_PREDICATE:
            raise InvalidReviewError(source, f"{statement.predicate_type} is not a review")
        predicate = ReviewPredicate.from_json(statement.predicate)
        if parse_publisher_key(predicate.reviewer).keyid not in keys.trusted():
            raise InvalidReviewError(source, "names a reviewer key that is not of its key set")
        snapshot = statement.subjects[0].sha256
        if snapshot is None or statement.subjects[0].name != "source":
            raise InvalidReviewError(source, "its subject is not a source digest")
    except InvalidReviewError:
        raise
    except OvertError as err:
        raise InvalidReviewError(source, str(err)) from err
    return Review(first.keyid, first.name, snapshot, predicate, bundle.proof.index)


# --- coverage -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """What :func:`coverage` found; :meth:`to_json` is the ``--json`` output."""

    snapshot: str
    min_reviewers: int
    files: int
    files_reviewed: int
    lines: int | None
    lines_reviewed: int | None
    reviewers: tuple[str, ...]
    unreviewed: tuple[str, ...]
    changed: tuple[str, ...]
    open_findings: tuple[tuple[str, ReviewFinding], ...] = field(default=())

    @property
    def file_share(self) -> float:
        return 100.0 * self.files_reviewed / self.files if self.files else 100.0

    @property
    def line_share(self) -> float | None:
        if self.lines is None or self.lines_reviewed is None:
            return None
        return 100.0 * self.lines_reviewed / self.lines if self.lines else 100.0

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "min_reviewers": self.min_reviewers,
            "files": self.files,
            "files_reviewed": self.files_reviewed,
            "file_share": round(self.file_share, 2),
            "lines": self.lines,
            "lines_reviewed": self.lines_reviewed,
            "line_share": None if self.line_share is None else round(self.line_share, 2),
            "reviewers": list(self.reviewers),
            "unreviewed": list(self.unreviewed),
            "changed_since_reviewed": list(self.changed),
            "open_findings": [{"reviewer": r, **f.to_json()} for r, f in self.open_findings],
        }


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def coverage(
    snapshot: Snapshot,
    reviews: Iterable[Review],
    min_reviewers: int = 1,
    line_counts: Mapping[str, int] | None = None,
) -> Coverage:
    """Coverage of ``snapshot`` by verified ``reviews`` (see the module notes).

    A reviewer covers a file when one of their reviews read it whole, or (given
    ``line_counts``: sha256 -> number of lines) when their line ranges cover every line.
    Lines count only with ``line_counts``; a line is reviewed when ``min_reviewers``
    reviewers read it.

    Raises:
        ReviewError: ``min_reviewers`` < 1 (an empty requirement is not a pass).
    """
    if min_reviewers < 1:
        raise ReviewError("min_reviewers must be at least 1")
    wanted = {f.sha256 for f in snapshot.files}
    # digest -> reviewer -> None (whole file) or the line ranges read
    read: dict[str, dict[str, list[tuple[int, int]] | None]] = {}
    seen_paths: set[str] = set()
    findings: list[tuple[str, ReviewFinding]] = []
    reviewers: set[str] = set()
    for review in reviews:
        for rf in review.predicate.files:
            seen_paths.add(rf.path)
            if rf.sha256 not in wanted:
                continue
            reviewers.add(review.reviewer)
            by = read.setdefault(rf.sha256, {})
            if not rf.lines:
                by[review.reviewer] = None
            elif review.reviewer not in by or by[review.reviewer] is not None:
                spans = by.setdefault(review.reviewer, [])
                assert spans is not None
                spans.extend(rf.lines)
        findings += [(review.reviewer, x) for x in review.predicate.findings if x.sha256 in wanted]
    files_reviewed = 0
    lines_total = 0 if line_counts is not None else None
    lines_reviewed = 0 if line_counts is not None else None
    unreviewed: list[str] = []
    changed: list[str] = []
    for f in snapshot.files:
        by = read.get(f.sha256, {})
        count = None if line_counts is None else line_counts.get(f.sha256, 0)
        whole = 0
        per_line: list[list[tuple[int, int]]] = []
        for spans in by.values():
            if spans is None or (count is not None and _merge(spans) == [(1, count)]):
                whole += 1
            else:
                per_line.append(_merge(spans))
        if whole >= min_reviewers:
            files_reviewed += 1
        else:
            (changed if f.path in seen_paths and not by else unreviewed).append(f.path)
        if count is not None and lines_total is not None and lines_reviewed is not None:
            lines_total += count
            lines_reviewed += _lines_read_by(count, whole, per_line, min_reviewers)
    return Coverage(
        snapshot.digest,
        min_reviewers,
        len(snapshot.files),
        files_reviewed,
        lines_total,
        lines_reviewed,
        tuple(sorted(reviewers)),
        tuple(unreviewed),
        tuple(changed),
        tuple(sorted(findings, key=lambda rf: -severity_rank(rf[1].severity))),
    )


def _lines_read_by(
    count: int, whole: int, partial: Sequence[Sequence[tuple[int, int]]], k: int
) -> int:
    """Lines of a ``count``-line file read by at least ``k`` reviewers."""
    if whole >= k:
        return count
    events: list[tuple[int, int]] = []
    for spans in partial:
        for start, end in spans:
            if start <= count:
                events += [(start, 1), (min(end, count) + 1, -1)]
    need = k - whole
    total, depth, last = 0, 0, 1
    for pos, delta in sorted(events):
        if depth >= need:
            total += pos - last
        depth += delta
        last = pos
    return total


# --- diff -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotDiff:
    """Paths added, changed (same path, other digest) and removed from OLD to NEW."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    def to_read(self) -> tuple[str, ...]:
        """What a reviewer of OLD still has to read in NEW."""
        return tuple(sorted((*self.added, *self.changed), key=lambda p: p.encode()))


def diff_snapshots(old: Snapshot, new: Snapshot, reviewed: Iterable[str] = ()) -> SnapshotDiff:
    """What changed from ``old`` to ``new``; files whose digest is in ``reviewed`` are left
    out of ``added`` and ``changed`` (someone already read those bytes)."""
    known = set(reviewed)
    before, after = old.by_path(), new.by_path()
    added = [p for p, f in after.items() if p not in before and f.sha256 not in known]
    changed = [
        p
        for p, f in after.items()
        if p in before and before[p].sha256 != f.sha256 and f.sha256 not in known
    ]
    removed = [p for p in before if p not in after]
    return SnapshotDiff(tuple(added), tuple(changed), tuple(removed))
