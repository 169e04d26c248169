"""Simulators for the gate's attack tests: a log that can fork or freeze, witnesses, a world.

No mocks: the log is a real Merkle tree (``MemoryTree``) with a real Ed25519
key signing real checkpoints; witnesses are real cosignature/v1 keys. The
simulators are *dishonest on demand*: the log can fork (split view) and the
witnesses cosign whatever they are shown (a colluding quorum), so that the
client's own checks are what is being tested.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.errors import ProofError
from overt.formats import merkle
from overt.formats.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint
from overt.formats.cosignature import CosignatureSigner
from overt.formats.merkle import MemoryTree, leaf_hash
from overt.formats.note import Ed25519Signer, parse_note, sign_note
from overt.formats.statement import Release, RuleBundle, Update
from overt.gate import UpdateGate, parse_client_policy
from overt.gate.policy import ClientPolicy
from overt.gate.verify import ConsistencyFetcher
from overt.publish.bundle import Bundle, format_bundle
from overt.publish.keys import PublisherKey, PublisherSigner, generate_publisher_key
from overt.publish.publisher import Publication, publish

T0 = 1_750_000_000.0


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


class WitnessRefusedError(Exception):
    """An honest witness refused a checkpoint that does not extend the last one it cosigned."""


class WitnessSimulator:
    """A witness that cosigns every checkpoint shown to it (it keeps no state), except
    for the origins in ``honest_for``: those it follows as c2sp.org/tlog-witness says,
    cosigning only a checkpoint that is its latest or provably extends it."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.signer = CosignatureSigner(name, Ed25519PrivateKey.generate(), clock)
        self.online = True
        self.honest_for: set[str] = set()
        self.latest: dict[str, tuple[int, bytes]] = {}

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def cosign(self, note: bytes, consistency: ConsistencyFetcher | None = None) -> bytes:
        parsed = parse_note(note)
        cp = parse_checkpoint(parsed.text)
        if cp.origin in self.honest_for:
            size, root = self.latest.get(cp.origin, (0, merkle.EMPTY_ROOT))
            if cp.size < size or (cp.size == size and cp.root_hash != root):
                raise WitnessRefusedError(f"{cp.origin} size {cp.size} after {size}")
            if 0 < size < cp.size:  # every tree extends the empty one
                proof = consistency(size, cp.size) if consistency else []
                try:
                    merkle.verify_consistency(size, cp.size, root, cp.root_hash, proof)
                except ProofError as err:
                    raise WitnessRefusedError(f"{cp.origin}: {err}") from err
            self.latest[cp.origin] = (cp.size, cp.root_hash)
        return sign_note(parsed.text, [self.signer], existing=parsed)


class LogSimulator:
    """An in-memory tlog with a real key; implements ``LogWriter`` for ``publish``."""

    def __init__(self, origin: str = "log.example/overt", key: Ed25519PrivateKey | None = None):
        self.key = key or Ed25519PrivateKey.generate()
        self.signer = Ed25519Signer(origin, self.key)
        self.tree = MemoryTree()
        self.entries: list[bytes] = []
        self.index: dict[bytes, int] = {}
        self.witnesses: list[WitnessSimulator] = []
        self.frozen_at: int | None = None

    @property
    def vkey(self) -> str:
        return self.signer.vkey

    def add_many(self, entries: Sequence[bytes]) -> list[int]:
        out = []
        for e in entries:
            h = leaf_hash(e)
            if h not in self.index:
                self.index[h] = self.tree.append(h)
                self.entries.append(e)
            out.append(self.index[h])
        return out

    def checkpoint(self, size: int | None = None) -> bytes:
        size = self.tree.size if size is None else size
        note = sign_checkpoint(
            Checkpoint(self.signer.name, size, self.tree.root(size)), self.signer
        )
        for w in self.witnesses:
            if w.online:
                try:
                    note = w.cosign(note, self.consistency_proof)
                except WitnessRefusedError:
                    continue
        return note

    def fresh_checkpoint(self) -> bytes:
        return self.checkpoint()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.tree.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        return self.tree.consistency_proof(old, new)

    def fork(self) -> LogSimulator:
        """Another view of this log: same key and history so far, then diverging."""
        other = LogSimulator(self.signer.name, self.key)
        other.witnesses = self.witnesses
        other.add_many(self.entries)
        return other


@dataclass
class World:
    """A publisher, a log with three witnesses, and a client policy trusting them."""

    clock: Clock = field(default_factory=Clock)
    log: LogSimulator = field(default_factory=LogSimulator)
    witnesses: list[WitnessSimulator] = field(default_factory=list)
    quorum: int = 2
    max_age: int = 3600
    publisher: PublisherSigner = field(init=False)
    pinned: PublisherKey = field(init=False)
    auditors: list[PublisherSigner] = field(default_factory=list)
    keysets: list[bytes] = field(default_factory=list)
    #: The publisher's key-set log (docs/adr/0012), when the client policy names one.
    keyset_log: LogSimulator | None = None

    def __post_init__(self) -> None:
        if not self.witnesses:
            self.witnesses = [
                WitnessSimulator(f"{region}.witness.example", self.clock)
                for region in ("asia", "europe", "americas")
            ]
        # The log asks the first `quorum` witnesses; the third stays a spare.
        self.log.witnesses = self.witnesses[: self.quorum]
        _, self.publisher = generate_publisher_key("vendor.example/release")
        self.pinned = self.publisher.key  # the client policy pins the first key for good
        self.auditors = [generate_publisher_key(f"auditor{i}.example")[1] for i in range(3)]

    def policy_doc(self, **overrides: object) -> dict[str, object]:
        names = ("asia", "europe", "americas")
        witness_policy = "".join(
            f"witness {n} {w.vkey}\n" for n, w in zip(names, self.witnesses, strict=True)
        )
        witness_policy += f"group regions {self.quorum} asia europe americas\nquorum regions\n"
        doc: dict[str, object] = {
            "version": 1,
            "logs": [self.log.vkey],
            "witness_policy": witness_policy,
            "publisher": self.pinned.vkey,
            "pins": [{"product": "agent", "channels": ["stable", "beta"]}],
            "max_checkpoint_age": self.max_age,
            "rule_bundles": {
                "auditors": [a.key.vkey for a in self.auditors],
                "audits": ["no-espionage"],
                "min_auditors": 2,
            },
        }
        if self.keyset_log is not None:
            doc["keyset_log"] = {"log": self.keyset_log.vkey, "max_age": self.max_age}
        doc.update(overrides)
        return doc

    def use_keyset_log(self) -> LogSimulator:
        """Give the publisher a key-set log, cosigned by this world's witnesses, which
        follow it honestly (they refuse a rollback or a fork of it)."""
        self.keyset_log = LogSimulator("vendor.example/keys")
        self.keyset_log.witnesses = self.witnesses[: self.quorum]
        for w in self.witnesses:
            w.honest_for.add(self.keyset_log.signer.name)
        return self.keyset_log

    def policy(self, **overrides: object) -> ClientPolicy:
        return parse_client_policy(json.dumps(self.policy_doc(**overrides)).encode())

    def gate(self, state_dir: Path | None = None, fetch_consistency: object = "log") -> UpdateGate:
        """A gate with this world's policy and clock; by default it fetches
        consistency proofs from the (main) log, as ``overt verify --state`` does."""
        fetch = self.log.consistency_proof if fetch_consistency == "log" else fetch_consistency
        return UpdateGate(self.policy(), state_dir, clock=self.clock, fetch_consistency=fetch)  # type: ignore[arg-type]

    def publish(
        self,
        version: str,
        artifact: bytes | None = None,
        *,
        kind: str = "update",
        channel: str = "stable",
        product: str = "agent",
        signer: PublisherSigner | Sequence[PublisherSigner] | None = None,
        log: LogSimulator | None = None,
        attestations: Sequence[bytes] = (),
        consistency_from: Sequence[int] = (),
        min_previous: str | None = None,
    ) -> tuple[bytes, Bundle]:
        artifact = artifact if artifact is not None else f"{product} {version}".encode()
        digest = hashlib.sha256(artifact).hexdigest()
        predicate: Update | Release | RuleBundle
        if kind == "update":
            predicate = Update(product, version, channel, min_previous)
        elif kind == "release":
            predicate = Release(product, version, channel, "linux-x86_64")
        else:
            predicate = RuleBundle(product, channel, "yara-x", version, 42)
        item = Publication(f"{product}-{version}.bin", digest, predicate)
        (bundle,) = publish(
            log or self.log,
            signer or self.publisher,
            [item],
            keysets=self.keysets,
            attestations=attestations,
            consistency_from=consistency_from,
            keyset_log=self.keyset_log,
        )
        return artifact, bundle


def bundle_bytes(bundle: Bundle) -> bytes:
    return format_bundle(bundle)
