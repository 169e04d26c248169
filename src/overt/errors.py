"""The exception tree shared by every part of overt.

Every error overt raises on purpose is an :class:`OvertError`. The shared bases
live here; each domain defines its own leaves under them, next to the code
that raises them (the module is named on the right). Each leaf carries the
input that was wrong, so that a CLI line or an HTTP reply can say exactly what
was refused. This is the whole tree (``tests/test_errors.py`` checks it
against the code)::

    OvertError
    ├── FormatError                 bytes that do not parse (strict, canonical)
    │   ├── TilePathError           a tile or entry-bundle path that is not canonical
    │   ├── BodyTooLargeError       an HTTP request body above its limit (_asgi; 413)
    │   ├── RuleParseError          a YARA rule file that does not parse (rules.parse)
    │   ├── InvalidVectorError      a CVSS vector that does not score (disclosure.errors)
    │   ├── SubmissionError         a malformed report or message (disclosure.errors; 400)
    │   └── TelemetryPolicyFormatError  a telemetry policy the schema refuses (telemetry.errors)
    ├── VerificationError           well-formed, but not provably true
    │   ├── InvalidSignatureError   a signature from a known key that does not verify
    │   ├── UnknownKeyError         no signature from any key the verifier trusts
    │   ├── ProofError              an inclusion or consistency proof that does not hold
    │   │   ├── EntryMismatchError  an entry that is not its hash in the tile (formats.tiles)
    │   │   └── TilesMismatchError  a log's tiles contradict its checkpoint (monitor.verify)
    │   ├── PolicyError             a policy that cannot be met, or is empty
    │   │   └── MirrorQuorumError   too few mirrors hold the entries (formats.policy)
    │   ├── InconsistentCheckpointError  two checkpoints that cannot both be honest
    │   │   ├── EquivocationError   two roots at one size (monitor.verify)
    │   │   ├── RollbackError       a log went back to a smaller tree (monitor.verify)
    │   │   └── ForkError           a larger tree that rewrote history (monitor.verify)
    │   ├── StaleError              a checkpoint or cosignature that is too old
    │   ├── OriginError             a checkpoint of another log (formats.checkpoint)
    │   ├── KeySetError             a publisher key-set chain that does not follow (publish.keyset)
    │   │   └── HybridSignatureError  a hybrid key set's algorithm did not sign (publish.keyset)
    │   ├── ReceiptError            a disclosure receipt the log does not bear out (disclosure.errors)
    │   ├── LedgerTamperedError     an egress ledger that does not verify (telemetry.errors)
    │   ├── CollectorReceiptError   a collector receipt that does not verify (telemetry.errors)
    │   ├── SealError               a payload not sealed to the collector's key (telemetry.errors)
    │   ├── InvalidReviewError      a source review bundle that does not verify (source.review)
    │   └── GateError               the update gate refuses; ``.check`` names the check (gate.errors)
    │       ├── BundleError             bundle
    │       ├── ArtifactDigestError     artifact-digest
    │       ├── PublisherSignatureError publisher-signature
    │       ├── PublisherKeyError       publisher-key
    │       ├── KeySetCurrencyError     key-set-current (not the recently witnessed last key set)
    │       ├── PinError                pin
    │       ├── InclusionError          inclusion
    │       ├── CheckpointError         checkpoint
    │       ├── WitnessQuorumError      witness-quorum
    │       ├── FreshnessError          freshness
    │       ├── DataAvailabilityError   mirror-quorum
    │       ├── AuditError              audit
    │       ├── SourceRequirementError  source (reviews, coverage, findings, rebuilds)
    │       ├── VersionRollbackError    rollback (a version older than the one installed)
    │       └── ConsistencyError        consistency
    ├── LogError                    the log refused an operation
    │   ├── EntryError              an entry that can never be logged (empty, too large)
    │   ├── LogLockedError          another process owns the log directory
    │   ├── CheckpointConflictError the signed checkpoint moved under a writer (log.backend)
    │   ├── NotFoundError           an index, tile or object that does not exist (yet)
    │   │   ├── ProofRequestError   a proof asked for outside the tree (formats.merkle)
    │   │   └── ReportNotFoundError no such disclosure report (disclosure.errors; 404)
    │   └── QuorumMissingError      the witness quorum did not cosign in time (publish.publisher)
    ├── UsageError                  CLI arguments that do not make a command (cli._util; exit 2)
    ├── ConfigError                 a missing or unreadable configuration, key or state file
    │   ├── StateError              a witness state database that cannot be used (witness.state)
    │   └── MirrorStateError        a mirror state database that cannot be used (mirror.state)
    ├── WitnessError                a witness refused a checkpoint; ``.status`` (witness.errors)
    │   ├── WitnessRequestError     400 malformed request
    │   ├── WitnessSignatureError   403 no valid signature by a trusted key
    │   ├── UnknownLogError         404 an origin the witness does not witness
    │   ├── WitnessConflictError    409 old size is not the witness's size
    │   ├── WitnessConsistencyError 422 not consistent with what it cosigned
    │   └── WitnessUnavailableError 0/5xx no usable reply
    ├── MirrorError                 a mirror refused an upload; ``.status`` (mirror.errors)
    │   ├── MirrorRequestError      400 malformed body, or no complete package
    │   ├── UnknownMirrorLogError   404 an origin the mirror does not mirror
    │   ├── MirrorConflictError     409 upload_end or upload_start not usable (``.info``)
    │   ├── MirrorVerificationError 422 no pending checkpoint, or entries not the log's
    │   └── MirrorUnavailableError  0/5xx no usable reply
    ├── SourceError                 a source tree that cannot be snapshot (source.errors)
    │   ├── NotARepositoryError     a --rev for a directory that is not a git repository
    │   ├── RevisionError           a revision that names no commit
    │   └── DirtyTreeError          uncommitted changes (without --allow-dirty)
    ├── ReviewError                 a review that cannot be recorded (source.review)
    │   └── ReviewerKeyError        a reviewer key that is not logged
    ├── RebuildError                a rebuild not done, or not matching (rebuild.errors)
    │   ├── BuildError              the build failed, wrote no output, or outside its directory
    │   │   └── BuildTimeoutError   the build ran past its timeout
    │   ├── SourceMismatchError     the source directory is not the snapshot
    │   └── RebuildMismatchError    the rebuilt output is not the released artifact
    ├── SbomError                   an SBOM not made or not valid, an unreadable OSV export (sbom)
    ├── DisclosureError             the disclosure service refused (disclosure.errors)
    │   ├── TransitionError         a workflow step not allowed now (409)
    │   ├── AccessDeniedError       the caller's role does not allow it (403)
    │   ├── AuthenticationError     no valid session, token or password (401)
    │   ├── CSRFError               a form post without the CSRF token (403)
    │   ├── TooLargeError           above a size limit (413)
    │   ├── RateLimitedError        too many requests from one address (429)
    │   └── StoreError              the database failed or refused a conflict (503/409)
    └── TelemetryError              the telemetry controls refused (telemetry.errors)
        ├── EventRefusedError       an event the policy does not allow; ``.rule``
        └── SampleRefusedError      a file sample the policy does not allow; ``.rule``

Class names are unique across overt, so a name in this tree (or in a log line)
says which class it is. Exceptions whose names start with ``_`` are private
control flow inside one module and never reach a caller.

Foreign exceptions are wrapped with ``raise ... from err`` so that callers only
ever have to catch :class:`OvertError`.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EntryError",
    "FormatError",
    "InconsistentCheckpointError",
    "InvalidSignatureError",
    "LogError",
    "LogLockedError",
    "NotFoundError",
    "OvertError",
    "PolicyError",
    "ProofError",
    "StaleError",
    "TilePathError",
    "UnknownKeyError",
    "VerificationError",
]


def _preview(data: bytes | str, limit: int = 60) -> str:
    """A short, printable rendering of untrusted input for error messages."""
    text = data if isinstance(data, str) else data.decode("utf-8", "backslashreplace")
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "..."


class OvertError(Exception):
    """Base class of every error overt raises on purpose."""


class FormatError(OvertError):
    """Input that does not parse as the named format.

    Attributes:
        what: the format or field being parsed (``"checkpoint"``, ``"note signature"``).
        reason: what is wrong with it.
        data: the offending bytes or text (possibly truncated by the raiser).
    """

    def __init__(self, what: str, reason: str, data: bytes | str = b"") -> None:
        self.what = what
        self.reason = reason
        self.data = data
        suffix = f": {_preview(data)!s}" if data else ""
        super().__init__(f"malformed {what}: {reason}{suffix}")


class TilePathError(FormatError):
    """A tile or entry-bundle path that is not in canonical tlog-tiles form."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        super().__init__("tile path", reason, path)


class VerificationError(OvertError):
    """Well-formed input that could not be proven true."""


class InvalidSignatureError(VerificationError):
    """A signature by a known key (name + key ID) that does not verify."""

    def __init__(self, name: str, key_id: bytes | int) -> None:
        self.name = name
        self.key_id = key_id
        kid = key_id.hex() if isinstance(key_id, bytes) else f"{key_id:08x}"
        super().__init__(f"invalid signature by {name} (key ID {kid})")


class UnknownKeyError(VerificationError):
    """No signature by any trusted key was found."""

    def __init__(self, detail: str = "no signature from a trusted key") -> None:
        super().__init__(detail)


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof that does not hold."""


class PolicyError(VerificationError):
    """A verification policy that is empty, malformed or not satisfied."""


class InconsistentCheckpointError(VerificationError):
    """Two checkpoints of one log that cannot both be honest (fork, rollback).

    ``evidence`` holds the signed notes that prove it, when the raiser has them.
    """

    def __init__(self, message: str, evidence: tuple[bytes, ...] = ()) -> None:
        self.evidence = evidence
        super().__init__(message)


class StaleError(VerificationError):
    """A checkpoint or cosignature older than the caller allows (freeze attack)."""


class LogError(OvertError):
    """The log refused or failed an operation."""


class EntryError(LogError):
    """An entry that can never be logged (empty, or larger than the maximum)."""


class LogLockedError(LogError):
    """Another process holds the log directory's lock."""


class NotFoundError(LogError):
    """An index, tile or stored object that does not exist (or not yet)."""


class ConfigError(OvertError):
    """A missing, unreadable or invalid configuration, key or state file."""
