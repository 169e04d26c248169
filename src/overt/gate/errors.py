"""The typed errors of the update gate: one class per check, in the order they run.

Every refusal is a :class:`GateError` whose :attr:`~GateError.check` names the
first check that failed (the CLI prints it as ``CHECK: reason``); the
underlying overt error is its ``__cause__``::

    GateError (VerificationError)
    ├── BundleError               bundle      the .overt file does not parse
    ├── ArtifactDigestError       artifact-digest   sha256 of the artifact is not the subject's
    ├── PublisherSignatureError   publisher-signature   bad or missing publisher signature
    ├── PublisherKeyError         publisher-key  signer not in the current key set / revoked
    ├── KeySetCurrencyError       key-set-current   key sets not the whole, recently witnessed key-set log
    ├── PinError                  pin          kind, product or channel this client does not take
    ├── InclusionError            inclusion    entry (or key set, attestation) not in the tree
    ├── CheckpointError           checkpoint   not signed by a policy log (another log)
    ├── WitnessQuorumError        witness-quorum   cosignatures do not meet the quorum
    ├── FreshnessError            freshness    quorum cosigned too long ago (freeze)
    ├── DataAvailabilityError     mirror-quorum   too few mirrors cosigned holding the entry
    ├── AuditError                audit        a rule bundle without the required sign-offs
    ├── SourceRequirementError    source       source not reviewed or reproduced as the policy asks
    ├── VersionRollbackError      rollback     older than what this client installed
    └── ConsistencyError          consistency  checkpoint not consistent with the last seen
"""

from __future__ import annotations

from typing import ClassVar

from overt.errors import VerificationError

__all__ = [
    "CHECKS",
    "ArtifactDigestError",
    "AuditError",
    "BundleError",
    "CheckpointError",
    "ConsistencyError",
    "DataAvailabilityError",
    "FreshnessError",
    "GateError",
    "InclusionError",
    "KeySetCurrencyError",
    "PinError",
    "PublisherKeyError",
    "PublisherSignatureError",
    "SourceRequirementError",
    "VersionRollbackError",
    "WitnessQuorumError",
]


class GateError(VerificationError):
    """A publication the gate refuses; :attr:`check` names the failed check."""

    check: ClassVar[str] = "gate"
    #: Signed notes proving a split view (set on :class:`ConsistencyError` when known).
    evidence: tuple[bytes, ...] = ()

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{self.check}: {reason}")


class BundleError(GateError):
    check = "bundle"


class ArtifactDigestError(GateError):
    check = "artifact-digest"


class PublisherSignatureError(GateError):
    check = "publisher-signature"


class PublisherKeyError(GateError):
    check = "publisher-key"


class KeySetCurrencyError(GateError):
    """The policy names a key-set log, and the bundle does not prove that the key set
    used is that log's last entry under a checkpoint its witness quorum cosigned
    within ``keyset_log.max_age`` (a stale chain, a frozen or forged checkpoint)."""

    check = "key-set-current"


class PinError(GateError):
    check = "pin"


class InclusionError(GateError):
    check = "inclusion"


class CheckpointError(GateError):
    check = "checkpoint"


class WitnessQuorumError(GateError):
    check = "witness-quorum"


class FreshnessError(GateError):
    check = "freshness"


class DataAvailabilityError(GateError):
    """The policy has a ``mirror-quorum`` (overt's tlog-policy extension) and the mirrors
    whose cosignatures on the checkpoint say they hold the publication's entries (from
    their minimum index on) do not meet it."""

    check = "mirror-quorum"


class AuditError(GateError):
    check = "audit"


class SourceRequirementError(GateError):
    """The release's source is not reviewed or reproduced as the policy's ``source`` asks
    (overt.gate.source); the message names the first unmet requirement."""

    check = "source"


class VersionRollbackError(GateError):
    check = "rollback"


class ConsistencyError(GateError):
    check = "consistency"


#: The checks in the order the gate runs them.
CHECKS: tuple[type[GateError], ...] = (
    BundleError,
    ArtifactDigestError,
    PublisherSignatureError,
    PublisherKeyError,
    KeySetCurrencyError,
    PinError,
    InclusionError,
    CheckpointError,
    WitnessQuorumError,
    FreshnessError,
    DataAvailabilityError,
    AuditError,
    SourceRequirementError,
    VersionRollbackError,
    ConsistencyError,
)
