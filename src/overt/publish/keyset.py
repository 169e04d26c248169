"""Publisher key sets: rotation and revocation, followed from one pinned first key.

A client pins one key, the publisher's first. Every change of the publisher's
keys is a logged publication of kind ``key-set``
(``https://overt.dev/key-set/v1``, see :mod:`overt.formats.statement`)::

    sequence   n (1, 2, ...)            the n-th key set
    keys       [publisher vkey, ...]    the keys valid from this set on
    revoked    [publisher vkey, ...]    keys never valid again (compromise)
    threshold  t                        signatures from this set needed for set n+1
    previous   sha256 hex of key set n-1's log entry (null for n = 1)

Key set ``n`` must be signed by ``threshold`` keys of set ``n - 1`` (the pinned
key, threshold 1, for set 1): rotation and revocation are authorised by the
previous keys, and ``previous`` hash-chains the sets so that two different
sets with one sequence number are a detectable fork. Revocations accumulate: a
revoked key can never come back. Only the keys of the latest set sign
publications; a key rotated out (not revoked) simply stops being valid.

:func:`follow_keyset` is pure logic: state in, key-set entries (the exact
logged envelope bytes) in, new state out or an error. Entries the state already
covers are skipped (one with the state's own sequence number must be the same
entry), so a client can feed it the whole chain every time.

Example::

    state = KeyState.pinned(first_key)
    state = follow_keyset(state, [entry_1, entry_2])   # -> keys of set 2

Currency (docs/adr/0012-key-sets-in-their-own-witnessed-log.md): a chain alone
cannot show that it is the *whole* chain; a stolen key plus a chain that stops
before the revocation would pass :func:`follow_keyset`. So the key sets are also
the entries of their own small log, entry ``i`` being key set ``i + 1`` and
nothing else. :func:`verify_current_keyset` takes every entry of that log and a
checkpoint of it cosigned by the witness quorum within a maximum age, recomputes
the root from the entries (which proves both that they are included and that the
last one is the log's last entry) and follows them: the key set it returns was
the publisher's current one at most ``max_age`` seconds ago.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from overt.errors import FormatError, OvertError, VerificationError
from overt.formats import merkle
from overt.formats.checkpoint import Checkpoint
from overt.formats.dsse import (
    PAYLOAD_TYPE_IN_TOTO,
    format_envelope,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)
from overt.formats.keytypes import RawPublicKey
from overt.formats.statement import (
    KeySet,
    format_statement,
    make_statement,
    parse_predicate,
    parse_statement,
)
from overt.publish.keys import (
    PUBLISHER_KEY_TYPES,
    PublisherKey,
    PublisherSigner,
    parse_publisher_key,
)

__all__ = [
    "KEY_SET_SUBJECT",
    "HybridSignatureError",
    "KeySetError",
    "KeyState",
    "check_chain_against_log",
    "follow_keyset",
    "keyset_digest",
    "make_keyset_entry",
    "verify_current_keyset",
]

#: The subject name of every key-set statement; its digest is over the key list.
KEY_SET_SUBJECT = "overt-key-set"


class KeySetError(VerificationError):
    """A key-set chain that does not follow: a gap, a fork, a bad link, a revived key."""


class HybridSignatureError(KeySetError):
    """Signed, but not by a key of every algorithm a hybrid key set requires."""


@dataclass(frozen=True)
class KeyState:
    """Where a client is in the publisher's key-set chain."""

    sequence: int
    keys: tuple[PublisherKey, ...]
    revoked: frozenset[str]  # DSSE key IDs
    threshold: int
    digest: str | None  # sha256 hex of the latest key-set entry (None: only the pinned key)
    #: Algorithms each of which must sign (a hybrid set, see :func:`check_hybrid`).
    require: tuple[str, ...] = ()

    @classmethod
    def pinned(cls, first_key: PublisherKey) -> KeyState:
        return cls(0, (first_key,), frozenset(), 1, None)

    def trusted(self) -> dict[str, RawPublicKey]:
        """DSSE key ID -> public key, for the keys valid now."""
        return {k.keyid: k.public_key for k in self.keys}

    def check_hybrid(self, keyids: Iterable[str], what: str) -> None:
        """Refuse ``what`` unless its verified signers (``keyids``, keys of this set)
        include one key of each algorithm this set requires.

        Raises:
            HybridSignatureError: an algorithm this set requires signed nothing.
        """
        if not self.require:
            return
        signed = {k.algorithm for k in self.keys if k.keyid in set(keyids)}
        missing = [a for a in self.require if a not in signed]
        if missing:
            raise HybridSignatureError(
                f"{what} lacks a {missing[0]} signature: key set {self.sequence} requires"
                f" one by a key of each of {', '.join(self.require)} (hybrid)"
            )


def keyset_digest(entry: bytes) -> str:
    """The chain link of a key-set entry: sha256 hex of its exact log entry bytes."""
    return hashlib.sha256(entry).hexdigest()


def _subject_digest(keys: Sequence[str]) -> str:
    return hashlib.sha256("".join(k + "\n" for k in keys).encode()).hexdigest()


def make_keyset_entry(
    state: KeyState,
    signers: Sequence[PublisherSigner],
    keys: Sequence[PublisherKey],
    revoke: Sequence[PublisherKey] = (),
    threshold: int = 1,
    require: Sequence[str] = (),
) -> bytes:
    """Build and sign key set ``state.sequence + 1``; returns the log entry bytes.

    ``require`` makes it a hybrid set: algorithms (``ed25519``, ``ml-dsa-44``) each of
    which must sign every publication and the next key set.

    The entry is checked with :func:`follow_keyset` before it is returned, so a
    set the clients would refuse is never logged.

    Raises:
        KeySetError: the signers are not ``state.threshold`` keys of ``state``, a
            key is revoked, or the threshold exceeds the number of keys.
        FormatError: a malformed key list.
    """
    if not 1 <= threshold <= len(keys):
        raise KeySetError(f"threshold {threshold} is not between 1 and {len(keys)} keys")
    vkeys = tuple(k.vkey for k in keys)
    body = KeySet(
        sequence=state.sequence + 1,
        keys=vkeys,
        revoked=tuple(k.vkey for k in revoke),
        threshold=threshold,
        previous=state.digest,
        require=tuple(require),
    )
    statement = make_statement(KEY_SET_SUBJECT, _subject_digest(vkeys), body)
    envelope = sign_envelope(
        PAYLOAD_TYPE_IN_TOTO, format_statement(statement), [(s.keyid, s) for s in signers]
    )
    entry = format_envelope(envelope)
    follow_keyset(state, [entry])
    return entry


def follow_keyset(start: KeyState | PublisherKey, entries: Sequence[bytes]) -> KeyState:
    """Follow key-set entries (in chain order) from ``start``; returns the new state.

    Raises:
        FormatError: an entry that is not a key-set statement in a DSSE envelope.
        InvalidSignatureError, UnknownKeyError: a set not signed by ``threshold``
            keys of the set before it.
        KeySetError: a sequence gap, a ``previous`` link that does not match, a
            different entry for the sequence already held (a fork), a revoked key
            listed again, or a subject digest that does not match the keys.
    """
    state = KeyState.pinned(start) if isinstance(start, PublisherKey) else start
    for entry in entries:
        envelope = parse_envelope(entry)
        statement = parse_statement(envelope.payload)
        body = parse_predicate(statement)
        if not isinstance(body, KeySet):
            raise FormatError("key-set entry", "not a key-set statement", statement.predicate_type)
        digest = keyset_digest(entry)
        if body.sequence < state.sequence:
            continue
        if body.sequence == state.sequence:
            if digest != state.digest:
                raise KeySetError(
                    f"two different key sets with sequence {body.sequence} (a fork of the chain)"
                )
            continue
        if body.sequence != state.sequence + 1:
            raise KeySetError(f"key set {body.sequence} follows key set {state.sequence}")
        if body.previous != state.digest:
            raise KeySetError(f"key set {body.sequence} does not link to key set {state.sequence}")
        signers = verify_envelope(envelope, state.trusted(), threshold=state.threshold).keyids
        state.check_hybrid(signers, f"key set {body.sequence}")
        if statement.subjects[0].name != KEY_SET_SUBJECT or statement.subjects[0].sha256 != (
            _subject_digest(body.keys)
        ):
            raise KeySetError(f"key set {body.sequence} subject does not match its keys")
        keys = tuple(parse_publisher_key(k) for k in body.keys)
        revoked = state.revoked | {parse_publisher_key(k).keyid for k in body.revoked}
        if len({k.keyid for k in keys}) != len(keys):
            raise KeySetError(f"key set {body.sequence} lists one key twice")
        back = [k.vkey for k in keys if k.keyid in revoked]
        if back:
            raise KeySetError(f"key set {body.sequence} lists revoked key {back[0]}")
        if body.threshold > len(keys):
            raise KeySetError(f"key set {body.sequence} threshold exceeds its keys")
        have = {k.algorithm for k in keys}
        for algorithm in body.require:
            if algorithm not in PUBLISHER_KEY_TYPES or algorithm not in have:
                raise KeySetError(
                    f"key set {body.sequence} requires {algorithm!r} signatures but holds no"
                    f" such key (publisher key types: {', '.join(PUBLISHER_KEY_TYPES)})"
                )
        state = KeyState(
            body.sequence, keys, frozenset(revoked), body.threshold, digest, body.require
        )
    return state


def verify_current_keyset(
    start: KeyState | PublisherKey, entries: Sequence[bytes], checkpoint: Checkpoint
) -> KeyState:
    """Follow ``entries``, the *whole* key-set log that ``checkpoint`` commits to.

    ``checkpoint`` must already be verified (signed by the key-set log, cosigned by
    the witness quorum recently enough: the caller's policy decides); this checks
    that ``entries`` are exactly its leaves, in order, so the last of them is the
    newest key set the log held, and that the chain follows from ``start``.

    Raises:
        KeySetError: the entries are not the checkpoint's tree (a chain that stops
            before a logged key set, an extra or reordered entry), or ``start`` is
            a client state that already holds a newer key set than the log's last.
        FormatError, InvalidSignatureError, UnknownKeyError: see :func:`follow_keyset`.
    """
    if len(entries) != checkpoint.size:
        raise KeySetError(
            f"the bundle carries {len(entries)} key set(s) but key-set log {checkpoint.origin}"
            f" holds {checkpoint.size}: not the current key set"
        )
    if merkle.root_hash([merkle.leaf_hash(e) for e in entries]) != checkpoint.root_hash:
        raise KeySetError(
            f"the bundle's key sets are not the entries of key-set log {checkpoint.origin}"
            f" at size {checkpoint.size}"
        )
    state = follow_keyset(start, entries)
    if state.sequence != checkpoint.size:
        raise KeySetError(
            f"this client already follows key set {state.sequence}, newer than the last entry"
            f" of key-set log {checkpoint.origin} (size {checkpoint.size})"
        )
    return state


def check_chain_against_log(
    state: KeyState,
    chain: Sequence[bytes],
    signer: PublisherKey,
    logged: Iterable[tuple[int, bytes]],
) -> None:
    """Refuse to publish with a key-set chain that is not the one the log holds.

    ``state`` and ``chain`` are the publisher's chain file (:func:`overt.publish.chain.read_chain`),
    ``signer`` the key about to sign, ``logged`` the key-set entries the log holds
    (index, exact entry bytes). A bundle carries ``chain``; an endpoint that pinned the
    publisher's first key accepts the signer only if ``chain`` leads from that key to
    it. Two mistakes make bundles that endpoints which saw the real chain accept and
    fresh endpoints refuse, and both show in the log:

    - the signer was added by a logged key set that ``chain`` does not hold (e.g. the
      fresh chain ``overt publisher keygen NEW`` starts, used after a rotation);
    - the log holds the key set that follows ``chain``'s newest one (a stale copy).

    Raises:
        KeySetError: either mistake, naming the logged key set and its index.
    """
    have = {keyset_digest(e) for e in chain}
    for index, entry in logged:
        if keyset_digest(entry) in have:
            continue
        try:
            body = parse_predicate(parse_statement(parse_envelope(entry).payload))
        except FormatError:
            continue
        if not isinstance(body, KeySet):
            continue
        try:
            listed = {parse_publisher_key(k).keyid for k in body.keys}
        except FormatError:
            continue
        if body.sequence == state.sequence + 1:
            try:
                follow_keyset(state, [entry])
            except OvertError:
                pass  # not a successor of this chain (another publisher's, or forged)
            else:
                raise KeySetError(
                    f"the log holds key set {body.sequence} (log index {index}) after this"
                    f" chain's newest set {state.sequence}: the chain file is behind the log;"
                    f" use the publisher's current chain"
                )
        if signer.keyid in listed:
            raise KeySetError(
                f"key {signer.vkey} was added by key set {body.sequence} (log index {index}),"
                f" which this chain does not hold: endpoints that pinned the publisher's first"
                f" key would refuse these bundles; publish with the publisher's chain"
                f" (--chain, the file `overt publisher rotate` extended)"
            )
