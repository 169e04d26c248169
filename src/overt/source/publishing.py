"""Log a source statement (snapshot) the way ``overt publish`` logs a release.

The shell the ``overt source`` command uses: the publisher key signs, its key-set chain
(``KEY.chain`` when present) is checked against the log before anything is logged and
travels in the bundle, exactly as :func:`overt.publish.publisher.publish` does for
releases. Files are written with :func:`write_atomic` (fsync, then rename).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overt.errors import ConfigError

if TYPE_CHECKING:
    from overt.publish.bundle import Bundle
    from overt.publish.keys import PublisherSigner
    from overt.publish.publisher import LogWriter, Publication

__all__ = [
    "gather_evidence",
    "provenance_entry",
    "publish_statement",
    "publish_with_logged_key",
    "write_atomic",
]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``: temp file, fsync, rename. Raises ConfigError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {err.strerror}") from err


def publish_statement(
    log_url: str,
    key: Path,
    name: str,
    sha256: str,
    predicate: tuple[str, Mapping[str, Any]],
    bundle_path: Path,
    *,
    token: str | None = None,
    timeout: float = 30.0,
) -> int:
    """Sign and log one statement with the publisher ``key``; write its bundle. Returns the index.

    Raises:
        ConfigError: an unreadable key or chain, a key not in its current key set;
        KeySetError: the chain is not the one the log holds; LogError: the log failed.
    """
    from overt.publish.chain import read_chain
    from overt.publish.keys import load_publisher_signer
    from overt.publish.keyset import KeyState, check_chain_against_log
    from overt.publish.publisher import (
        Publication,
        logged_keysets,
        open_log_writer,
        publish,
        write_bundle,
    )

    signer = load_publisher_signer(key)
    chain_path = key.with_name(key.name + ".chain")
    keysets: Sequence[bytes] = ()
    state = KeyState.pinned(signer.key)
    if chain_path.is_file():
        state, keysets = read_chain(chain_path)
        if signer.keyid not in state.trusted():
            raise ConfigError(
                f"{key} is not a key of the current key set {state.sequence} in {chain_path}"
            )
    with open_log_writer(log_url, token, timeout) as log:
        check_chain_against_log(state, keysets, signer.key, logged_keysets(log))
        (bundle,) = publish(log, signer, [Publication(name, sha256, predicate)], keysets=keysets)
    write_bundle(bundle_path, bundle)
    return bundle.proof.index


def publish_with_logged_key(
    log_url: str,
    key: Path,
    item: Publication,
    role: str,
    *,
    token: str | None = None,
    timeout: float = 30.0,
) -> Bundle:
    """Sign ``item`` with an independent party's ``key`` (a reviewer, a rebuilder: created
    by ``overt review keygen``, its key set 1 already logged) and log it; the bundle carries
    the party's key sets.

    Raises:
        ReviewerKeyError: no chain beside ``key``, ``key`` not of its current set, or its
            key set 1 not in the log (then nothing is logged); ConfigError: unreadable key;
        KeySetError, LogError: see :func:`publish_statement`.
    """
    from overt.publish.chain import read_chain
    from overt.publish.keys import load_publisher_signer
    from overt.publish.keyset import check_chain_against_log, keyset_digest
    from overt.publish.publisher import logged_keysets, open_log_writer, publish
    from overt.source.review import ReviewerKeyError

    signer = load_publisher_signer(key)
    chain = key.with_name(key.name + ".chain")
    if not chain.is_file():
        raise ReviewerKeyError(
            f"{key} is not a logged {role} key (no {chain}): create one with"
            " `overt review keygen KEY --name NAME --log LOG`"
        )
    state, entries = read_chain(chain)
    if not entries or signer.keyid not in state.trusted():
        raise ReviewerKeyError(f"{key} is not a key of the {role} key set in {chain}")
    with open_log_writer(log_url, token, timeout) as log:
        logged = logged_keysets(log)
        if keyset_digest(entries[0]) not in {keyset_digest(e) for _, e in logged}:
            raise ReviewerKeyError(
                f"the {role} key {signer.key.name} is not logged in {log_url}"
                f" (its key set 1 is not there): {role}s' keys must be logged first"
            )
        check_chain_against_log(state, entries, signer.key, logged)
        (bundle,) = publish(log, signer, [item], keysets=entries)
    return bundle


def provenance_entry(
    signer: PublisherSigner, name: str, sha256: str, snapshot_text: bytes, builder_id: str
) -> bytes:
    """The log entry of the SLSA provenance of artifact ``name``/``sha256`` built from the
    snapshot ``snapshot_text`` (:mod:`overt.formats.slsa_provenance`), signed by ``signer``.

    Raises:
        FormatError: a malformed snapshot or builder id.
    """
    from overt.formats.slsa_provenance import PROVENANCE_PREDICATE, Provenance
    from overt.formats.source_snapshot import parse_snapshot
    from overt.publish.publisher import Publication, make_entry

    snapshot = parse_snapshot(snapshot_text)
    provenance = Provenance(snapshot.digest, builder_id, snapshot.git_commit, snapshot.git_tree)
    return make_entry(
        signer, Publication(name, sha256, (PROVENANCE_PREDICATE, provenance.to_json()))
    )


def gather_evidence(
    log: LogWriter,
    release: Bundle,
    evidence: Sequence[Bundle],
    cosign: Callable[[bytes], bytes] | None = None,
) -> Bundle:
    """``release`` with the logged statements of ``evidence`` (reviews, rebuild summaries)
    added to its attestations, and every entry proven again against the log's current
    checkpoint, so that a gate checks them all offline against one checkpoint. ``cosign``
    as in :func:`overt.publish.publisher.publish`.

    Raises:
        LogError: the log's checkpoint does not cover an entry yet; NotFoundError, FormatError.
    """
    import dataclasses

    from overt.errors import LogError, ProofError
    from overt.formats import merkle
    from overt.formats.checkpoint import parse_checkpoint
    from overt.formats.note import parse_note
    from overt.formats.proof import TlogProof
    from overt.publish.bundle import LoggedEntry

    note = log.checkpoint()
    if cosign is not None:
        note = cosign(note)
    size = parse_checkpoint(parse_note(note).text).size
    known = {a.entry for a in release.attestations}
    added = []
    for b in evidence:
        if b.entry not in known:
            known.add(b.entry)
            added.append(LoggedEntry(b.entry, b.proof.index, ()))
    logged = [*release.keysets, *release.attestations, *added]
    beyond = [e.index for e in logged if e.index >= size] + [release.proof.index]
    if max(beyond) >= size:
        raise LogError(f"the log's checkpoint (size {size}) does not cover entry {max(beyond)} yet")

    root = parse_checkpoint(parse_note(note).text).root_hash

    def again(e: LoggedEntry) -> LoggedEntry:
        hashes = tuple(log.inclusion_proof(e.index, size))
        try:
            merkle.verify_inclusion(merkle.leaf_hash(e.entry), e.index, size, hashes, root)
        except ProofError as err:
            # A bundle that names the wrong index (or an entry never logged) is refused
            # here, not handed on for every endpoint to refuse.
            raise LogError(f"entry {e.index} of the log is not the statement given for it") from err
        return LoggedEntry(e.entry, e.index, hashes)

    main = again(LoggedEntry(release.entry, release.proof.index, ()))
    proof = TlogProof(main.index, main.hashes, note)
    return dataclasses.replace(
        release,
        proof=proof,
        keysets=tuple(again(e) for e in release.keysets),
        attestations=tuple(again(e) for e in (*release.attestations, *added)),
        consistency=(),
    )
