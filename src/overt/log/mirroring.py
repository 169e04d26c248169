"""Mirror cosignatures on the log's own checkpoint, for endpoints that are offline.

A mirror (c2sp.org/tlog-mirror) cosigns a checkpoint only once it durably holds
every entry up to it, so always *after* the log published that checkpoint. An
endpoint's update gate is offline: it counts only the cosignatures on the
checkpoint its bundle carries. So the log collects them: each mirror's reply
cosignature (the 200 of its last ``add-entries``) is verified with the mirror's
key and added to the log's *published* checkpoint note, the same checkpoint
text with more signature lines (every proof against it stays valid), written
atomically and fsynced like any publication. Bundles and proofs made afterwards
(``overt publish``, ``overt log proof``) carry them, and the gate enforces the
policy's ``mirror-quorum`` from the bundle alone (docs/mirror.md).

Three pieces:

- :func:`merge_cosignatures` (pure): the published note with the verified new
  cosignatures of the same text added, or None when the texts differ (the log
  published a newer checkpoint meanwhile: the cosignature is of no use on it);
- :meth:`overt.log.log.Log.add_cosignatures` applies it under the log's locks;
  a witness refresh of the same checkpoint keeps the mirror lines;
- :func:`collect_mirror_cosignatures` pushes a log directory to its policy's
  mirrors and keeps their cosignatures (what ``overt publish --wait-mirrors``
  does for a log directory; ``overt log serve --mirror URL`` does it on every push),
  and :func:`wait_for_mirrors` polls a log (a directory or a server) until its
  published checkpoint carries the mirror quorum for a range of entries, bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from overt.errors import FormatError, LogError, OvertError, VerificationError
from overt.formats.checkpoint import open_checkpoint
from overt.formats.note import Note, Signature, Verifier, format_note, parse_note
from overt.formats.policy import MirrorQuorumError, Policy, PolicyMirror, require_mirrors

__all__ = [
    "MirrorCosigning",
    "collect_mirror_cosignatures",
    "merge_cosignatures",
    "mirror_sizes",
    "wait_for_mirrors",
]

_logger = logging.getLogger("overt.log.mirroring")


class MirrorCosigning(Protocol):
    """What collecting needs of a log; :class:`overt.log.log.Log` has it."""

    def checkpoint(self) -> bytes: ...

    def add_cosignatures(self, note: bytes, cosigners: Sequence[Verifier]) -> bool: ...


def merge_cosignatures(
    published: bytes, cosigned: bytes, cosigners: Sequence[Verifier]
) -> bytes | None:
    """``published`` with the signatures of ``cosigned`` by ``cosigners`` added.

    Both must be notes of the same text (else None: nothing to add to). A
    signature by a cosigner replaces that cosigner's line in ``published`` (a newer
    timestamp); lines by anyone else in ``cosigned`` are ignored. Every added
    signature is verified first: nothing unverified is published.

    Raises:
        FormatError: a note is malformed.
        InvalidSignatureError: a cosigner's signature does not verify.
    """
    old, new = parse_note(published), parse_note(cosigned)
    if old.text != new.text:
        return None
    keys = {(v.name, v.key_id): v for v in cosigners}
    added: dict[tuple[str, bytes], Signature] = {}
    for sig in new.signatures:
        verifier = keys.get((sig.name, sig.key_id))
        if verifier is None or (sig.name, sig.key_id) in added:
            continue
        verifier.verify(new.text, sig.signature)
        added[(sig.name, sig.key_id)] = sig
    if not added:
        return published
    kept = tuple(s for s in old.signatures if (s.name, s.key_id) not in added)
    return format_note(Note(old.text, kept + tuple(added.values())))


def mirror_sizes(note: bytes, log_key: Verifier, policy: Policy) -> dict[str, int]:
    """``{mirror name: checkpoint size}`` for the policy mirrors whose cosignature on
    ``note`` (a checkpoint the log signed) verifies.

    Raises:
        FormatError, VerificationError: the log did not sign ``note``, or a
            mirror's cosignature on it is bad.
    """
    signed = open_checkpoint(note, log_key, cosigners=[m.verifier for m in policy.mirrors])
    names = {(m.verifier.name, m.verifier.key_id): m.name for m in policy.mirrors}
    size = signed.checkpoint.size
    return {names[(s.name, s.key_id)]: size for _v, s in signed.cosignatures()}


def collect_mirror_cosignatures(
    log: MirrorCosigning,
    log_dir: Path,
    log_key: Verifier,
    mirrors: Sequence[PolicyMirror],
    timeout: float = 30.0,
) -> dict[str, str]:
    """Bring each mirror (that has a URL) up to the log's published checkpoint and add
    its cosignature to it; returns ``{mirror: error}`` for those that failed (a mirror
    down or refusing does not stop the others; the log is unchanged by it)."""
    from overt.log.client import DirectorySource
    from overt.mirror.client import MirrorClient, MirrorPusher

    def push(mirror: PolicyMirror) -> str:
        try:
            with MirrorPusher(
                DirectorySource(log_dir),
                log_key,
                MirrorClient(mirror.url or "", timeout),
                mirror_key=mirror.verifier,
            ) as pusher:
                result = pusher.push()
            log.add_cosignatures(result.note, [mirror.verifier])
        except OvertError as err:
            _logger.debug("mirror %s did not cosign: %s", mirror.name, err)  # in the final error
            return str(err)
        return ""

    reachable = [m for m in mirrors if m.url]
    if not reachable:
        return {}
    with ThreadPoolExecutor(len(reachable), thread_name_prefix="overt-mirror-cosign") as pool:
        errors = dict(zip((m.name for m in reachable), pool.map(push, reachable), strict=True))
    return {name: err for name, err in errors.items() if err}


def wait_for_mirrors(
    read_checkpoint: Callable[[], bytes],
    log_key: Verifier,
    policy: Policy,
    first: int,
    end: int,
    timeout: float,
    *,
    collect: Callable[[], Mapping[str, str]] | None = None,
    interval: float = 0.2,
) -> bytes:
    """The log's published checkpoint once its mirror cosignatures meet ``policy``'s
    mirror quorum for entries ``[first, end)``; ``collect`` (if given) is called
    before each look (e.g. :func:`collect_mirror_cosignatures` for a log directory).

    Raises:
        MirrorQuorumError: not met within ``timeout`` seconds (its message names the
            mirrors that hold the range, and the errors ``collect`` reported).
        LogError: the log's checkpoint cannot be read or does not verify.
    """
    deadline = time.monotonic() + timeout
    errors: Mapping[str, str] = {}
    while True:
        if collect is not None:
            errors = collect()
        note = read_checkpoint()
        try:
            sizes = mirror_sizes(note, log_key, policy)
        except (FormatError, VerificationError) as err:
            raise LogError(f"the log's published checkpoint does not verify: {err}") from err
        try:
            require_mirrors(policy, sizes, first, end)
            return note
        except MirrorQuorumError as err:
            if time.monotonic() + interval > deadline:
                why = "; ".join(f"{n}: {e}" for n, e in sorted(errors.items()))
                raise MirrorQuorumError(
                    f"{err} after {timeout:g} s{f' ({why})' if why else ''}",
                    err.first,
                    err.end,
                    err.holding,
                ) from err
        time.sleep(interval)
