"""The update gate's verification core: no I/O, no clock, no network.

:func:`verify_publication` takes the artifact's digest, a ``.overt`` bundle
(:mod:`overt.publish.bundle`), the client policy (:mod:`overt.gate.policy`),
the client's state and the time, and returns the verified publication with the
next state, or raises the :class:`~overt.gate.errors.GateError` of the first
check that fails, in this order:

1. ``bundle``: the bundle, its envelope and its in-toto statement parse.
2. ``artifact-digest``: the artifact's SHA-256 is a subject of the statement.
3. ``publisher-signature`` / ``publisher-key``: the key-set chain in the bundle
   follows from the client's key state (or the pinned first key), and the
   envelope is signed by a key of the current set; a revoked or rotated-out
   key is refused, and so is a publication that a hybrid key set's algorithms
   (``require``: Ed25519 and ML-DSA-44) did not all sign. ``key-set-current``:
   with a ``keyset_log`` in the policy, the
   chain is every entry of the publisher's key-set log under a checkpoint its
   witness quorum cosigned within ``keyset_log.max_age`` (so the set used is
   the newest one, even for a client with no state).
4. ``pin``: a release, update or rule bundle of a kind, product and channel
   the policy admits.
5. ``inclusion``: the entry (and every key-set entry and attestation) is
   included in the bundle's checkpoint.
6. ``checkpoint`` / ``witness-quorum``: the checkpoint is signed by a policy
   log and cosigned by the witness quorum (c2sp.org/tlog-policy).
7. ``freshness``: the quorum cosigned it at most ``max_checkpoint_age`` ago.
   ``mirror-quorum``: with a ``mirror-quorum`` in the witness policy, the
   mirrors that cosigned the checkpoint, each from its minimum index on, hold
   the publication and its attestations (c2sp.org/tlog-mirror; overt's policy
   extension, :func:`overt.formats.policy.require_mirrors`). Mirrors cosign
   after the log publishes, so a shell may also plug in a
   :data:`MirrorFetcher`: mirror-cosigned checkpoints of the same log, each
   with a consistency proof from the bundle's checkpoint, count as well.
8. ``audit``: a rule bundle carries the required auditor sign-offs.
   ``source``: with a ``source`` requirement in the policy, a release or update
   carries its provenance, source snapshot, reviews and rebuild summaries, and
   they meet it (:mod:`overt.gate.source`).
9. ``rollback``: the version is not below the last one admitted for this
   product and channel (and an update's minimum previous version is met).
10. ``consistency``: the checkpoint is consistent with the last one this
    client accepted from that log (a proof from the bundle, or fetched).

A bundle with a subtree proof (:mod:`overt.formats.subtree_proof`), checked under a
policy with a ``keyset_log``, takes the split of docs/adr/0013-subtree-proofs.md
(unless it is a rule bundle or the policy has a ``source`` requirement: those rest on
attestations proven against the main checkpoint): ``inclusion`` is the subtree
proof, its subtree cosigned by the witness quorum (``witness-quorum``) in one of the
policy's logs; freshness is the key-set log checkpoint's, already demanded by
``key-set-current``; ``mirror-quorum`` counts the mirrors' subtree cosignatures; the
main log's checkpoint is not used, so ``consistency`` has nothing to compare and
the client's stored checkpoint of that log stays as it was.

The digest may be given as a callable so that a shell can hash a large
artifact on another thread while the signatures are checked; the result is
the same as running the checks one after the other (all are pure), and the
error reported is always the first failing check in the order above.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from overt.errors import (
    FormatError,
    InvalidSignatureError,
    OvertError,
    PolicyError,
    ProofError,
    UnknownKeyError,
    VerificationError,
)
from overt.formats import merkle
from overt.formats.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint
from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, Envelope, verify_envelope
from overt.formats.note import parse_note
from overt.formats.policy import (
    MirrorQuorumError,
    Policy,
    VerifiedCheckpoint,
    require_mirrors,
    verify_checkpoint,
)
from overt.formats.statement import (
    Release,
    RuleAudit,
    RuleBundle,
    Statement,
    Update,
    parse_predicate,
    parse_statement,
    version_key,
)
from overt.formats.subtree_proof import (
    VerifiedSubtreeProof,
    parse_subtree_proof,
    verify_subtree_cosignatures,
    verify_subtree_proof,
)
from overt.gate.errors import (
    ArtifactDigestError,
    AuditError,
    BundleError,
    CheckpointError,
    ConsistencyError,
    DataAvailabilityError,
    FreshnessError,
    GateError,
    InclusionError,
    KeySetCurrencyError,
    PinError,
    PublisherKeyError,
    PublisherSignatureError,
    VersionRollbackError,
    WitnessQuorumError,
)
from overt.gate.policy import ClientPolicy
from overt.gate.source import check_source
from overt.publish.bundle import Bundle, parse_bundle
from overt.publish.keyset import (
    HybridSignatureError,
    KeyState,
    follow_keyset,
    verify_current_keyset,
)

__all__ = [
    "Admission",
    "ConsistencyFetcher",
    "GateState",
    "MirrorFetcher",
    "VerifiedPublication",
    "verify_publication",
]

#: ``fetch(old_size, new_size) -> proof hashes``, e.g. ``LogClient.consistency_proof``.
ConsistencyFetcher = Callable[[int, int], Sequence[bytes]]

#: ``fetch(checkpoint) -> [(mirror's signed note, consistency proof from checkpoint)]``:
#: checkpoints mirrors cosigned, e.g. :func:`overt.monitor.mirrors.mirror_evidence`.
#: Untrusted: each is verified (the log's signature, the mirrors' cosignatures, the proof).
MirrorFetcher = Callable[[Checkpoint], Sequence[tuple[bytes, Sequence[bytes]]]]


@dataclass(frozen=True)
class GateState:
    """What a client remembers between admissions (persisted by :class:`UpdateGate`).

    ``checkpoints`` maps a log origin to the largest checkpoint (signed note)
    accepted from it; ``versions`` maps ``(line, product, channel)`` to the
    highest version admitted, where ``line`` is ``software`` (releases and
    updates) or ``rules`` (rule bundles); ``keys`` is the publisher key state.
    """

    checkpoints: Mapping[str, bytes] = field(default_factory=dict)
    versions: Mapping[tuple[str, str, str], str] = field(default_factory=dict)
    keys: KeyState | None = None


@dataclass(frozen=True)
class VerifiedPublication:
    """A publication that passed every check."""

    kind: str
    product: str
    channel: str
    version: str
    predicate: Release | Update | RuleBundle
    statement: Statement
    subject: str
    sha256: str
    index: int
    entry: bytes
    checkpoint: VerifiedCheckpoint
    keyids: tuple[str, ...]
    audits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: The subtree proof the inclusion rests on (then ``checkpoint`` is the key-set
    #: log's, which gave the freshness), or None for the full checkpoint path.
    subtree: VerifiedSubtreeProof | None = None


@dataclass(frozen=True)
class Admission:
    """The verified publication and the client state to persist after it."""

    publication: VerifiedPublication
    state: GateState


def _line(kind: str) -> str:
    return "rules" if kind == "rule-bundle" else "software"


def _current_keyset(
    start: KeyState, bundle: Bundle, policy: ClientPolicy, now: float
) -> tuple[KeyState, VerifiedCheckpoint]:
    """The key set the bundle proves current: the last entry of the publisher's key-set
    log under a checkpoint its witness quorum cosigned within ``keyset_log.max_age``
    (docs/adr/0012-key-sets-in-their-own-witnessed-log.md)."""
    req = policy.keyset_log
    assert req is not None
    if not bundle.keyset_checkpoint:
        raise KeySetCurrencyError(
            f"the policy requires the current key set from key-set log {req.log.origin};"
            " the bundle carries no checkpoint of it"
        )
    try:
        verified = verify_checkpoint(
            bundle.keyset_checkpoint,
            policy.witnesses,
            now,
            req.max_age,
            origin=req.log.origin,
            extra_logs=(req.log,),
        )
        keys = verify_current_keyset(start, [k.entry for k in bundle.keysets], verified.checkpoint)
        return keys, verified
    except OvertError as err:
        raise KeySetCurrencyError(f"key-set log {req.log.origin}: {err}") from err


def _publisher(
    envelope: Envelope, bundle: Bundle, policy: ClientPolicy, state: GateState, now: float
) -> tuple[KeyState, tuple[str, ...], VerifiedCheckpoint | None]:
    start = state.keys or KeyState.pinned(policy.publisher)
    keyset_cp = None
    if policy.keyset_log is not None:
        keys, keyset_cp = _current_keyset(start, bundle, policy, now)
    else:
        try:
            keys = follow_keyset(start, [k.entry for k in bundle.keysets])
        except OvertError as err:
            raise PublisherKeyError(f"publisher key-set chain refused: {err}") from err
    try:
        verified = verify_envelope(envelope, keys.trusted())
        keys.check_hybrid(verified.keyids, "the publication")
    except InvalidSignatureError as err:
        raise PublisherSignatureError(f"bad signature by a current publisher key ({err})") from err
    except HybridSignatureError as err:
        raise PublisherSignatureError(str(err)) from err
    except UnknownKeyError as err:
        ids = [s.keyid for s in envelope.signatures if s.keyid]
        revoked = [i for i in ids if i in keys.revoked]
        if revoked:
            raise PublisherKeyError(
                f"signed by revoked publisher key {revoked[0][:16]}... (key set {keys.sequence})"
            ) from err
        raise PublisherKeyError(
            f"not signed by a key of publisher key set {keys.sequence}"
            f" (signers: {', '.join(i[:16] for i in ids) or 'none named'})"
        ) from err
    return keys, verified.keyids, keyset_cp


def _pin(statement: Statement, policy: ClientPolicy) -> Release | Update | RuleBundle:
    predicate = parse_predicate(statement)
    if not isinstance(predicate, Release | Update | RuleBundle) or statement.kind is None:
        raise PinError(f"{statement.predicate_type} is not an installable publication")
    if statement.kind not in policy.kinds:
        raise PinError(f"this client does not admit {statement.kind} publications")
    if (predicate.product, predicate.channel) not in policy.pins:
        raise PinError(
            f"product {predicate.product!r} channel {predicate.channel!r} is not pinned by the policy"
        )
    return predicate


def _included(entry: bytes, index: int, hashes: Sequence[bytes], cp: Checkpoint, what: str) -> None:
    try:
        merkle.verify_inclusion(merkle.leaf_hash(entry), index, cp.size, hashes, cp.root_hash)
    except ProofError as err:
        raise InclusionError(f"{what} is not included in checkpoint {cp.size}: {err}") from err


def _checkpoint(note: bytes, policy: ClientPolicy, now: float) -> VerifiedCheckpoint:
    try:
        return verify_checkpoint(note, policy.witnesses, now, extra_logs=policy.logs)
    except PolicyError as err:
        raise WitnessQuorumError(str(err)) from err
    except InvalidSignatureError as err:
        origin = parse_checkpoint(parse_note(note).text).origin
        if err.name == origin:
            raise CheckpointError(f"bad log signature: {err}") from err
        raise WitnessQuorumError(f"forged witness cosignature: {err}") from err
    except (UnknownKeyError, VerificationError, FormatError) as err:
        raise CheckpointError(f"checkpoint not from a log this client trusts: {err}") from err


def _audits(
    sha256: str, bundle: Bundle, policy: ClientPolicy, cp: Checkpoint
) -> dict[str, tuple[str, ...]]:
    req = policy.rule_bundles
    if req is None:
        raise AuditError("the client policy names no rule-bundle auditors; rule bundles refused")
    if not sha256:
        raise AuditError("a rule-bundle statement must have exactly one sha256 subject")
    auditors = {a.keyid: a.public_key for a in req.auditors}
    passed: dict[str, set[str]] = {a: set() for a in req.audits}
    for i, att in enumerate(bundle.attestations):
        _included(att.entry, att.index, att.hashes, cp, f"attestation {i}")
        try:
            envelope = att.envelope()
        except FormatError as err:
            raise AuditError(f"attestation {i} is malformed: {err}") from err
        if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
            raise AuditError(
                f"attestation {i} is not an in-toto statement"
                f" (payloadType {envelope.payload_type!r})"
            )
        try:
            statement = parse_statement(envelope.payload)
            body = parse_predicate(statement)
        except FormatError as err:
            raise AuditError(f"attestation {i} is malformed: {err}") from err
        if not isinstance(body, RuleAudit) or sha256 not in (s.sha256 for s in statement.subjects):
            continue  # about something else: not a sign-off on this bundle
        try:
            signers = verify_envelope(envelope, auditors).keyids
        except UnknownKeyError:
            continue
        except InvalidSignatureError as err:
            raise AuditError(f"attestation {i} has a bad auditor signature") from err
        if body.result == "pass" and body.audit in passed:
            passed[body.audit].update(signers)
    for audit, keyids in passed.items():
        if len(keyids) < req.min_auditors:
            raise AuditError(
                f"audit {audit!r} signed off by {len(keyids)} auditor(s), {req.min_auditors} required"
            )
    return {a: tuple(sorted(k)) for a, k in passed.items()}


def _rollback(
    kind: str, predicate: Release | Update | RuleBundle, state: GateState
) -> tuple[tuple[str, str, str], str]:
    key = (_line(kind), predicate.product, predicate.channel)
    prev = state.versions.get(key)
    new = predicate.version
    if prev is not None:
        if version_key(new) < version_key(prev):
            raise VersionRollbackError(
                f"{predicate.product}/{predicate.channel} version {new} is older than the"
                f" installed {prev}"
            )
        floor = predicate.min_previous_version if isinstance(predicate, Update) else None
        if floor is not None and version_key(prev) < version_key(floor):
            raise VersionRollbackError(
                f"update {new} needs at least {floor} installed; this client has {prev}"
            )
        if version_key(prev) > version_key(new):  # pragma: no cover - excluded above
            new = prev
    return key, new


@functools.lru_cache(maxsize=16)
def _stored_checkpoint(note: bytes) -> Checkpoint:
    """The checkpoint of a note from the client's own state (verified when it was stored)."""
    return parse_checkpoint(parse_note(note).text)


def _consistency(
    cp: Checkpoint,
    note: bytes,
    bundle: Bundle,
    state: GateState,
    fetch: ConsistencyFetcher | None,
) -> bytes:
    """Check ``cp`` against the stored checkpoint; return the note to keep."""
    stored_note = state.checkpoints.get(cp.origin)
    if stored_note is None:
        return note
    old = _stored_checkpoint(stored_note)
    if old.size == cp.size:
        if old.root_hash != cp.root_hash:
            err = ConsistencyError(
                f"split view: two checkpoints of {cp.origin} at size {cp.size} with different roots"
            )
            err.evidence = (stored_note, note)
            raise err
        return stored_note
    small, big = (old, cp) if old.size < cp.size else (cp, old)
    proof: Sequence[bytes] | None = None
    for c in bundle.consistency:
        if (c.old_size, c.new_size) == (small.size, big.size):
            proof = c.hashes
            break
    if proof is None:
        if fetch is None:
            raise ConsistencyError(
                f"no consistency proof from size {small.size} to {big.size} (in the bundle or"
                " from the log)"
            )
        try:
            proof = fetch(small.size, big.size)
        except Exception as err:  # the fetcher is I/O the caller plugged in (network, disk):
            # whatever it raises, the gate's answer is a refused 'consistency' check.
            raise ConsistencyError(f"cannot fetch a consistency proof: {err}") from err
    try:
        merkle.verify_consistency(small.size, big.size, small.root_hash, big.root_hash, proof)
    except ProofError as err:
        e = ConsistencyError(
            f"checkpoint {cp.size} is not consistent with the last one seen ({old.size}): {err}"
        )
        e.evidence = (stored_note, note)
        raise e from err
    return note if cp.size > old.size else stored_note


def verify_publication(
    artifact_sha256: bytes | Callable[[], bytes],
    bundle: Bundle | bytes,
    policy: ClientPolicy,
    state: GateState,
    now: float,
    fetch_consistency: ConsistencyFetcher | None = None,
    fetch_mirrors: MirrorFetcher | None = None,
) -> Admission:
    """Run every check (see the module docstring); return the admission or raise.

    Raises:
        GateError: the subclass of the first failing check.
    """
    try:
        parsed = parse_bundle(bundle) if isinstance(bundle, bytes) else bundle
        envelope = parsed.envelope()
        if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
            raise FormatError("publication", "payloadType is not in-toto", envelope.payload_type)
        statement = parse_statement(envelope.payload)
        note = parsed.proof.checkpoint
        # The note's text ends at its last blank line; the signatures are checked in step 6.
        cp = parse_checkpoint(note[: note.rfind(b"\n\n") + 1])
    except FormatError as err:
        raise BundleError(str(err)) from err

    first: GateError | None = None
    admission: Admission | None = None
    try:
        admission = _checks(
            statement,
            envelope,
            parsed,
            policy,
            state,
            now,
            cp,
            note,
            fetch_consistency,
            fetch_mirrors,
        )
    except GateError as err:
        first = err
    digest = artifact_sha256() if callable(artifact_sha256) else artifact_sha256
    if digest.hex() not in (s.sha256 for s in statement.subjects):
        subjects = ", ".join(f"{s.name} {s.sha256}" for s in statement.subjects)
        raise ArtifactDigestError(
            f"artifact sha256 {digest.hex()} is not the publication's subject ({subjects})"
        )
    if first is not None:
        raise first
    assert admission is not None
    subject = next(s.name for s in statement.subjects if s.sha256 == digest.hex())
    return replace(
        admission, publication=replace(admission.publication, subject=subject, sha256=digest.hex())
    )


def _checks(
    statement: Statement,
    envelope: Envelope,
    bundle: Bundle,
    policy: ClientPolicy,
    state: GateState,
    now: float,
    cp: Checkpoint,
    note: bytes,
    fetch: ConsistencyFetcher | None,
    fetch_mirrors: MirrorFetcher | None = None,
) -> Admission:
    keys, keyids, keyset_cp = _publisher(envelope, bundle, policy, state, now)
    predicate = _pin(statement, policy)
    kind = statement.kind
    assert kind is not None
    if keyset_cp is not None and _by_subtree(bundle, kind, policy):
        return _checks_by_subtree(
            statement, bundle, policy, state, keys, keyids, keyset_cp, predicate, kind
        )
    _included(bundle.entry, bundle.proof.index, bundle.proof.hashes, cp, "the publication")
    for i, k in enumerate(bundle.keysets):
        _included(k.entry, k.index, k.hashes, cp, f"key set {i}")
    verified = _checkpoint(note, policy, now)
    if verified.quorum_time is None:
        raise FreshnessError("the witness policy has quorum none: freshness cannot be proven")
    age = now - verified.quorum_time
    if age > policy.max_checkpoint_age:
        raise FreshnessError(
            f"checkpoint {cp.origin} size {cp.size} was last cosigned by the witness quorum"
            f" {age:.0f} s ago, more than the allowed {policy.max_checkpoint_age:g} s"
        )
    _mirrored(verified, bundle, policy, fetch_mirrors)
    audits: dict[str, tuple[str, ...]] = {}
    if kind == "rule-bundle":
        audits = _audits(_subject_sha(statement), bundle, policy, cp)
    elif policy.source is not None:
        for i, att in enumerate(bundle.attestations):
            _included(att.entry, att.index, att.hashes, cp, f"attestation {i}")
        check_source(
            _subject_sha(statement),
            [a.envelope() for a in bundle.attestations],
            bundle.source,
            keys.trusted(),
            policy.source,
            now,
        )
    rollback = _rollback(kind, predicate, state)
    keep = _consistency(cp, note, bundle, state, fetch)
    checkpoints = dict(state.checkpoints)
    checkpoints[cp.origin] = keep
    publication = VerifiedPublication(
        kind=kind,
        product=predicate.product,
        channel=predicate.channel,
        version=predicate.version,
        predicate=predicate,
        statement=statement,
        subject="",
        sha256="",
        index=bundle.proof.index,
        entry=bundle.entry,
        checkpoint=verified,
        keyids=keyids,
        audits=audits,
    )
    return _admitted(publication, state, keys, rollback, checkpoints)


def _admitted(
    publication: VerifiedPublication,
    state: GateState,
    keys: KeyState,
    rollback: tuple[tuple[str, str, str], str],
    checkpoints: Mapping[str, bytes],
) -> Admission:
    """The admission of ``publication`` with the state to keep: the version admitted for its
    line (``rollback``: slot and version), the newer key state, ``checkpoints``."""
    slot, version = rollback
    versions = dict(state.versions)
    versions[slot] = version
    new_keys = keys if state.keys is None or keys.sequence > state.keys.sequence else state.keys
    return Admission(publication, GateState(checkpoints, versions, new_keys))


def _mirrored(
    verified: VerifiedCheckpoint,
    bundle: Bundle,
    policy: ClientPolicy,
    fetch: MirrorFetcher | None,
) -> None:
    """The mirror quorum holds every entry the admission rests on: the mirror cosignatures
    on the bundle's checkpoint, and those on later checkpoints ``fetch`` proves consistent."""
    witnesses = policy.witnesses
    if witnesses.mirror_quorum is None:
        return
    indices = [bundle.proof.index, *(a.index for a in bundle.attestations)]
    first, end = min(indices), max(indices) + 1
    sizes = dict.fromkeys(verified.cosigned, verified.checkpoint.size)
    try:
        require_mirrors(witnesses, sizes, first, end)
        return
    except MirrorQuorumError as err:
        if fetch is None:
            raise DataAvailabilityError(str(err)) from err
    try:
        evidence = fetch(verified.checkpoint)
    except Exception as err:  # the fetcher is the caller's I/O: a refusal, whatever it raises
        raise DataAvailabilityError(f"cannot fetch mirror checkpoints: {err}") from err
    for note, proof in evidence:
        for name, size in _mirror_cosigned(note, proof, verified, witnesses).items():
            sizes[name] = max(sizes.get(name, 0), size)
    try:
        require_mirrors(witnesses, sizes, first, end)
    except MirrorQuorumError as err:
        raise DataAvailabilityError(str(err)) from err


def _mirror_cosigned(
    note: bytes, proof: Sequence[bytes], verified: VerifiedCheckpoint, policy: Policy
) -> dict[str, int]:
    """``{mirror: size}`` for the policy mirrors that cosigned ``note``, a checkpoint of the
    same log proven (by ``proof``) to extend the verified one; empty if anything fails."""
    cp = verified.checkpoint
    try:
        signed = open_checkpoint(
            note, verified.log.verifier, cp.origin, cosigners=[m.verifier for m in policy.mirrors]
        )
        big = signed.checkpoint
        if big.size < cp.size:
            return {}
        if big.size == cp.size:
            if big.root_hash != cp.root_hash:
                return {}
        else:
            merkle.verify_consistency(cp.size, big.size, cp.root_hash, big.root_hash, proof)
    except (FormatError, VerificationError):
        return {}
    names = {(m.verifier.name, m.verifier.key_id): m.name for m in policy.mirrors}
    return {names[(sig.name, sig.key_id)]: big.size for _v, sig in signed.cosignatures()}


def _by_subtree(bundle: Bundle, kind: str, policy: ClientPolicy) -> bool:
    """Whether the subtree path applies (ADR 0013): the bundle carries a subtree proof, the
    policy takes freshness from the key-set log, and nothing else must be proven against
    the main checkpoint (a rule bundle's audits, a release's source evidence)."""
    return bool(bundle.subtree_proof) and kind != "rule-bundle" and policy.source is None


def _checks_by_subtree(
    statement: Statement,
    bundle: Bundle,
    policy: ClientPolicy,
    state: GateState,
    keys: KeyState,
    keyids: tuple[str, ...],
    keyset_cp: VerifiedCheckpoint,
    predicate: Release | Update | RuleBundle,
    kind: str,
) -> Admission:
    """Steps 5 to 10 for a bundle with a subtree proof: the publication's inclusion by the
    witnessed subtree (no log signature, a path of 8 hashes), freshness from the key-set
    log's checkpoint (checked in step 3 within ``keyset_log.max_age``), the mirror quorum
    from the mirrors' subtree cosignatures. The main log's checkpoint is not used, so
    the client's stored checkpoint of it is neither compared nor moved."""
    subtree = _subtree_included(bundle, policy)
    st = subtree.proof.subtree
    witnesses = policy.witnesses
    if witnesses.mirror_quorum is not None:
        try:
            mirrors = verify_subtree_cosignatures(
                st, [(m.name, m.verifier) for m in witnesses.mirrors]
            )
            index = subtree.proof.index
            require_mirrors(witnesses, dict.fromkeys(mirrors, st.end), index, index + 1)
        except MirrorQuorumError as err:
            raise DataAvailabilityError(str(err)) from err
        except (FormatError, InvalidSignatureError) as err:
            raise DataAvailabilityError(f"bad mirror subtree cosignature: {err}") from err
    rollback = _rollback(kind, predicate, state)
    publication = VerifiedPublication(
        kind=kind,
        product=predicate.product,
        channel=predicate.channel,
        version=predicate.version,
        predicate=predicate,
        statement=statement,
        subject="",
        sha256="",
        index=subtree.proof.index,
        entry=bundle.entry,
        checkpoint=keyset_cp,
        keyids=keyids,
        subtree=subtree,
    )
    return _admitted(publication, state, keys, rollback, state.checkpoints)


def _subtree_included(bundle: Bundle, policy: ClientPolicy) -> VerifiedSubtreeProof:
    """The publication proven by the bundle's subtree proof, cosigned by the witness
    quorum, in one of the policy's logs (not the key-set log)."""
    try:
        proof = parse_subtree_proof(bundle.subtree_proof)
    except FormatError as err:  # parse_bundle checked it; a Bundle built in code may not be
        raise BundleError(str(err)) from err
    origin = proof.subtree.origin
    if origin not in {log.origin for log in policy.logs}:
        raise InclusionError(f"the subtree proof is of log {origin}, not a log this client trusts")
    try:
        return verify_subtree_proof(
            proof, merkle.leaf_hash(bundle.entry), policy.witnesses, origin=origin
        )
    except PolicyError as err:
        raise WitnessQuorumError(str(err)) from err
    except InvalidSignatureError as err:
        raise WitnessQuorumError(f"forged subtree cosignature: {err}") from err
    except (FormatError, ProofError, VerificationError) as err:
        raise InclusionError(
            f"the publication is not included in subtree [{proof.subtree.start},"
            f" {proof.subtree.end}): {err}"
        ) from err


def _subject_sha(statement: Statement) -> str:
    """The one sha256 subject of a rule bundle (audits are about exactly one artifact)."""
    if len(statement.subjects) != 1:
        return ""
    return statement.subjects[0].sha256 or ""
