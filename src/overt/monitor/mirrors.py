"""Reading a log through its mirrors (c2sp.org/tlog-mirror's monitoring API), as a client.

A mirror serves its copy of a log as tlog-tiles under ``<monitoring prefix>/<hex
sha256(origin)>`` (:func:`overt.formats.policy.mirror_prefix`); its checkpoint carries the
log's signature and the mirror's cosignature, which says the mirror durably holds every
entry of that tree from its minimum index on. This module gives clients (``overt log
verify``, ``overt monitor``) what they need to use mirrors:

- :class:`Mirror` / :func:`mirrors_from`: the mirrors to read, from the policy's ``mirror``
  lines (with URLs) and ``--mirror`` URLs;
- :func:`open_mirrored`: a mirror's checkpoint, verified (log key, and the mirror's
  cosignature when its key is known);
- :class:`FallbackSource`: a :class:`~overt.log.client.TileSource` that reads each path from
  the first source that serves it (the origin, then the mirrors). Nothing read through it is
  trusted: every client here verifies every tile and entry against a checkpoint the log
  signed, so which source answered cannot change a result, only whether there is one;
- :func:`merge_cosignatures`: one note with every signature that several sources carry on
  the same checkpoint (a mirror's copy and a witness's copy of one tree);
- :func:`mirror_sizes`: for a verified checkpoint, which mirrors are proven to hold which
  part of it (the input of :func:`overt.formats.policy.require_mirrors`), each from the
  higher of the policy's minimum index and the one it serves (:func:`served_min_index`);
- :func:`best_checkpoint`: with the log unreachable, the largest mirror checkpoint that
  passes the caller's policy; :func:`prove_entries`: entries proven to be a range of a
  signed tree, with subtree hashes from anyone's tiles;
- :func:`verify_mirrored_log`: ``overt log verify`` with mirrors and a mirror quorum;
  :func:`mirror_evidence`: later mirror checkpoints with consistency proofs, for the
  gate's ``fetch_mirrors`` (``overt verify``).

Example (the log down, two mirrors in the policy)::

    mirrors = mirrors_from(policy, origin)
    result = verify_mirrored_log(HTTPSource(log_url), mirrors, log_key, policy)
    result.origin_problem   # why the log itself was not read
    result.holding          # the mirrors that meet the mirror quorum for [0, size)

A mirror further ahead may have replaced a partial tile by the full one; reading a partial
tile or bundle falls back to the full one, cut to the width asked (tlog-tiles allows it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from overt._http import fetch
from overt.errors import (
    FormatError,
    InconsistentCheckpointError,
    LogError,
    NotFoundError,
    ProofError,
    TilePathError,
    UnknownKeyError,
    VerificationError,
)
from overt.formats import merkle, tiles
from overt.formats.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint, parse_checkpoint
from overt.formats.note import MAX_SIGNATURES, Note, Verifier, format_note, parse_note
from overt.formats.policy import Policy, mirror_prefix, open_trusted_checkpoint, require_mirrors
from overt.log.client import (
    HTTPSource,
    TileSource,
    VerifiedLog,
    open_source,
    tile_reader,
    verify_log,
)
from overt.monitor.gossip import AHEAD_UNPROVEN, BEHIND, Witness, compare_views

__all__ = [
    "FallbackSource",
    "Mirror",
    "MirrorView",
    "MirroredLog",
    "best_checkpoint",
    "merge_cosignatures",
    "mirror_evidence",
    "mirror_sizes",
    "mirrors_from",
    "open_mirrored",
    "prove_entries",
    "prover",
    "served_min_index",
    "verify_mirrored_log",
    "witness_copies",
]


@dataclass(frozen=True)
class Mirror:
    """A mirror to read: its policy name (or URL), its log source, its key and minimum index.

    ``source`` reads the mirrored log itself (the ``<prefix>/<hex sha256(origin)>`` tree).
    """

    name: str
    source: TileSource
    verifier: Verifier | None = None
    min_index: int = 0


def mirrors_from(
    policy: Policy | None,
    origin: str,
    urls: Sequence[str] = (),
    connect: Callable[[str], TileSource] = open_source,
) -> list[Mirror]:
    """The policy's mirrors that have a URL, then ``urls`` (monitoring prefixes or folders).

    A URL given both ways is read once, with the policy's key and minimum index.
    """
    out: list[Mirror] = []
    seen: set[str] = set()
    for m in policy.mirrors if policy is not None else ():
        if m.url is not None and m.url.rstrip("/") not in seen:
            seen.add(m.url.rstrip("/"))
            out.append(
                Mirror(m.name, connect(mirror_prefix(m.url, origin)), m.verifier, m.min_index)
            )
    for url in urls:
        if url.rstrip("/") not in seen:
            seen.add(url.rstrip("/"))
            out.append(Mirror(url, connect(mirror_prefix(url, origin))))
    return out


def open_mirrored(note: bytes, log_verifier: Verifier, mirror: Mirror) -> SignedCheckpoint:
    """A mirror's checkpoint: signed by the log, and cosigned by the mirror if its key is known.

    Raises:
        FormatError: a malformed note.
        InvalidSignatureError: the log's or the mirror's signature is bad.
        UnknownKeyError: the log did not sign it, or the mirror's key is known and its
            cosignature is missing (a mirror cosigns only what it holds).
        OriginError: the note is of another log.
    """
    cosigners = [] if mirror.verifier is None else [mirror.verifier]
    signed = open_checkpoint(note, log_verifier, log_verifier.name, cosigners=cosigners)
    if mirror.verifier is not None and not signed.cosignatures():
        raise UnknownKeyError(f"mirror {mirror.name} served a checkpoint without its cosignature")
    return signed


def merge_cosignatures(notes: Sequence[bytes]) -> bytes:
    """One note with the signature lines of every note in ``notes`` (all of one text).

    The first note's lines come first; a line already present is not repeated. Nothing is
    verified here: the result is opened like any note received.

    Raises:
        FormatError: a note does not parse, the texts differ, or too many signatures.
    """
    if not notes:
        raise FormatError("note", "nothing to merge", b"")
    first = parse_note(notes[0])
    sigs = list(first.signatures)
    for other in notes[1:]:
        parsed = parse_note(other)
        if parsed.text != first.text:
            raise FormatError("note", "cannot merge signatures of different texts", other[:60])
        sigs += [s for s in parsed.signatures if s not in sigs]
    if len(sigs) > MAX_SIGNATURES:
        raise FormatError("note", f"more than {MAX_SIGNATURES} signatures", notes[0][:60])
    return format_note(Note(first.text, tuple(sigs)))


class FallbackSource:
    """Reads each path from the first of ``sources`` that serves it.

    A source that is unreachable or does not have the path (:class:`LogError`, which
    includes :class:`NotFoundError`) is skipped; if none serves it, the first source's error
    is raised. Verification is the caller's: see the module docstring.
    """

    def __init__(self, sources: Sequence[TileSource]) -> None:
        if not sources:
            raise ValueError("a FallbackSource needs at least one source")
        self.sources = list(sources)

    def read(self, path: str) -> bytes:
        """Raises NotFoundError if no source has ``path``, else LogError."""
        errors: list[LogError] = []
        for source in self.sources:
            try:
                return _read_or_full(source, path)
            except LogError as err:
                errors.append(err)
        if all(isinstance(e, NotFoundError) for e in errors):
            raise NotFoundError("; ".join(str(e) for e in errors)) from errors[0]
        raise LogError("; ".join(str(e) for e in errors)) from errors[0]

    def close(self) -> None:
        for source in self.sources:
            source.close()


def _read_or_full(source: TileSource, path: str) -> bytes:
    try:
        return source.read(path)
    except NotFoundError:
        try:
            where = tiles.parse_tile_path(path)
        except TilePathError:
            raise
        if where.width == tiles.TILE_WIDTH:
            raise
    full = source.read(tiles.TilePath(where.level, where.index, tiles.TILE_WIDTH).path)
    if where.level is not None:
        return full[: where.width * merkle.HASH_SIZE]
    try:
        entries = tiles.parse_entry_bundle(full, tiles.TILE_WIDTH)
    except FormatError as err:
        raise LogError(f"{path}: the full bundle does not parse: {err}") from err
    return tiles.format_entry_bundle(entries[: where.width])


@dataclass(frozen=True)
class MirrorView:
    """What one mirror showed: its verified checkpoint and how it relates to the kept one.

    ``holds`` is the tree size of the kept checkpoint's tree the mirror is proven to hold
    (its own size if behind, the kept size if the same or ahead); 0 when it proved nothing,
    and then ``problem`` says why. ``min_index`` is the higher of the policy's and the one
    the mirror serves (``GET <prefix>/min-index``): it holds nothing below it.
    """

    mirror: Mirror
    signed: SignedCheckpoint | None
    holds: int
    problem: str | None = None
    min_index: int = 0


def served_min_index(mirror: Mirror) -> int:
    """The minimum index a mirror serves (tlog-mirror pruning; 0 if it does not say).

    Raises:
        LogError: the mirror answered something that is not a decimal.
    """
    source = mirror.source
    if not isinstance(source, HTTPSource):
        return 0
    url = f"{source.url}/min-index"
    reply = fetch(source.client, "GET", url, 32, LogError)
    if reply.status != 200:
        return 0
    if re.fullmatch(rb"(0|[1-9][0-9]{0,18})\n?", reply.content) is None:
        raise LogError(f"GET {url}: not a minimum index: {reply.content[:32]!r}")
    return int(reply.content)


def mirror_sizes(
    kept: SignedCheckpoint,
    mirrors: Sequence[Mirror],
    log_verifier: Verifier,
    prove: Callable[[int, int], tuple[list[bytes], bytes]],
) -> list[MirrorView]:
    """Ask each mirror for its checkpoint and prove how much of ``kept``'s tree it holds.

    ``prove(old, new)`` gives the consistency proof and the root at ``old`` from tiles of the
    tree of size ``new`` (any source: the roots it is checked against are signed).

    Raises:
        InconsistentCheckpointError: a mirror holds a log-signed checkpoint that cannot be
            honest next to ``kept`` (the log showed its mirror another history).
    """
    views: list[MirrorView] = []
    for m in mirrors:
        try:
            signed = open_mirrored(m.source.read("checkpoint"), log_verifier, m)
        except (LogError, FormatError, VerificationError) as err:
            views.append(MirrorView(m, None, 0, f"checkpoint: {err}"))
            continue
        try:
            relation = compare_views(kept, signed, prove)
        except InconsistentCheckpointError:
            raise
        except (LogError, FormatError, VerificationError) as err:
            views.append(MirrorView(m, signed, 0, f"cannot compare: {err}"))
            continue
        size = kept.checkpoint.size
        if relation == BEHIND:
            size = signed.checkpoint.size
        elif relation == AHEAD_UNPROVEN:
            views.append(MirrorView(m, signed, 0, "ahead of the kept tree, not proven"))
            continue
        try:
            floor = max(m.min_index, served_min_index(m))
        except LogError as err:
            views.append(MirrorView(m, signed, 0, f"min-index: {err}"))
            continue
        views.append(MirrorView(m, signed, size, min_index=floor))
    return views


def prover(source: TileSource) -> Callable[[int, int], tuple[list[bytes], bytes]]:
    """``prove(old, new)`` from ``source``'s tiles (the monitor's ``_prove`` without a cache)."""
    get_tile = tile_reader(source)

    def prove(old: int, new: int) -> tuple[list[bytes], bytes]:
        subtree = tiles.subtree_from_tiles(get_tile, new)
        return merkle.consistency_proof(old, new, subtree), subtree(0, old)

    return prove


def best_checkpoint(
    mirrors: Sequence[Mirror],
    log_verifier: Verifier,
    accept: Callable[[bytes], object],
    extra: Sequence[bytes] = (),
) -> bytes:
    """The largest checkpoint the mirrors serve that ``accept`` takes, with merged signatures.

    For a client whose origin log is unreachable. Each mirror's checkpoint is verified
    (:func:`open_mirrored`); the copies of one tree, and the ``extra`` notes of the same
    tree (witnesses' copies), are merged into one note (:func:`merge_cosignatures`), so that
    a witness quorum split across copies is met. ``accept(note)`` is the caller's trust
    decision (e.g. the policy's witness quorum); it raises to refuse.

    Raises:
        LogError: no mirror served a checkpoint that verifies.
        VerificationError, FormatError: ``accept`` refused every candidate (its last error).
    """
    by_text: dict[bytes, list[bytes]] = {}
    sizes: dict[bytes, int] = {}
    problems: list[str] = []
    for m in mirrors:
        try:
            note = m.source.read("checkpoint")
            signed = open_mirrored(note, log_verifier, m)
        except (LogError, FormatError, VerificationError) as err:
            problems.append(f"mirror {m.name}: {err}")
            continue
        text = parse_note(note).text
        by_text.setdefault(text, []).append(note)
        sizes[text] = signed.checkpoint.size
    if not by_text:
        raise LogError(f"no mirror served a checkpoint that verifies ({'; '.join(problems)})")
    for e in extra:
        try:
            text = parse_note(e).text
        except FormatError:
            continue
        if text in by_text:
            by_text[text].append(e)
    last: Exception | None = None
    for text in sorted(by_text, key=lambda t: sizes[t], reverse=True):
        merged = merge_cosignatures(by_text[text])
        try:
            accept(merged)
        except (FormatError, VerificationError) as err:
            last = err
            continue
        return merged
    assert last is not None
    raise last


def prove_entries(
    entries: Sequence[bytes],
    first: int,
    kept: SignedCheckpoint,
    subtree: Callable[[int, int], bytes],
) -> None:
    """Prove that ``entries`` are the entries ``[first, first + len)`` of ``kept``'s tree.

    ``subtree(lo, hi)`` gives subtree hashes of that tree from anyone's tiles (they are only
    helpers: the final root is checked against the signed one, so a lie fails the proof).

    Raises:
        ProofError: the entries are not those of the tree (rewritten, or of another tree).
        LogError, FormatError, VerificationError: ``subtree`` could not read a tile.
    """
    size, root = kept.checkpoint.size, kept.checkpoint.root_hash
    end = first + len(entries)
    if end > size:
        raise ProofError(f"entries [{first}, {end}) go beyond the tree of size {size}")
    edge = merkle.CompactRange.from_subtrees(first, subtree)
    edge.extend(merkle.leaf_hash(e) for e in entries)
    if end == size:
        if edge.root() != root:
            raise ProofError(f"entries [{first}, {end}) do not lead to the root at size {size}")
        return
    proof = merkle.consistency_proof(end, size, subtree)
    merkle.verify_consistency(end, size, edge.root(), root, proof)


@dataclass(frozen=True)
class MirroredLog:
    """``overt log verify`` with mirrors: the verified log, each mirror's view, who counts."""

    log: VerifiedLog
    views: tuple[MirrorView, ...]
    holding: tuple[str, ...]
    origin_problem: str | None


def verify_mirrored_log(
    origin: TileSource,
    mirrors: Sequence[Mirror],
    verifier: Verifier,
    policy: Policy | None = None,
    max_age: float | None = None,
    *,
    extra: Sequence[bytes] = (),
    progress: Callable[[int, int], None] | None = None,
) -> MirroredLog:
    """Verify the whole log, reading from the origin and, where it fails, from the mirrors.

    The checkpoint is the origin's (with any mirror's cosignatures on the same tree merged
    in), or when the origin is unreachable the largest one the mirrors serve that passes the
    policy (:func:`best_checkpoint`). Every entry and tile is then checked against it
    (:func:`overt.log.client.verify_log` over a :class:`FallbackSource`), and with a policy
    that has a ``mirror-quorum``, the mirrors proven to hold every entry ``[0, size)`` must
    meet it (:func:`overt.formats.policy.require_mirrors`).

    Raises:
        MirrorQuorumError: too few mirrors hold the log.
        InconsistentCheckpointError: a mirror holds a checkpoint the log cannot honestly
            have signed next to the verified one.
        VerificationError, LogError: see :func:`overt.log.client.verify_log`.
    """
    now = time.time()

    def accept(note: bytes) -> SignedCheckpoint:
        return open_trusted_checkpoint(
            note, verifier, policy, now=now, max_age=max_age, origin=verifier.name
        )

    origin_problem: str | None = None
    try:
        note = origin.read("checkpoint")
    except LogError as err:
        if not mirrors:
            raise
        origin_problem = str(err)
        note = best_checkpoint(mirrors, verifier, accept, extra)
    else:
        same = []
        for m in mirrors:
            try:
                copy = m.source.read("checkpoint")
                if parse_note(copy).text == parse_note(note).text:
                    same.append(copy)
            except (LogError, FormatError):
                continue
        if same:
            note = merge_cosignatures([note, *same])
    source = FallbackSource([origin, *(m.source for m in mirrors)])
    log = verify_log(source, verifier, verifier.name, progress, note, policy, max_age)
    views = mirror_sizes(log.checkpoint, mirrors, verifier, prover(source))
    sizes = {v.mirror.name: v.holds for v in views}
    floors = {v.mirror.name: v.min_index for v in views}
    if policy is not None:
        names = {(m.verifier.name, m.verifier.key_id): m.name for m in policy.mirrors}
        for v, sig in log.checkpoint.cosignatures():
            name = names.get((v.name, sig.key_id))
            if name is not None:
                sizes[name] = max(sizes.get(name, 0), log.checkpoint.checkpoint.size)
    holding: tuple[str, ...] = ()
    if policy is not None:
        holding = require_mirrors(policy, sizes, 0, log.checkpoint.checkpoint.size, floors)
    return MirroredLog(log, tuple(views), holding, origin_problem)


def mirror_evidence(
    mirrors: Sequence[Mirror], checkpoint: Checkpoint
) -> list[tuple[bytes, list[bytes]]]:
    """Each mirror's checkpoint with a consistency proof from ``checkpoint`` (the gate's
    :data:`~overt.gate.verify.MirrorFetcher`), the proof computed from the mirror's tiles.

    Nothing is verified here (the gate does it); a mirror that cannot be read, or is behind
    ``checkpoint``, is left out.
    """
    out: list[tuple[bytes, list[bytes]]] = []
    for m in mirrors:
        try:
            note = m.source.read("checkpoint")
            size = parse_checkpoint(parse_note(note).text).size
            if size < checkpoint.size or checkpoint.size == 0:
                continue
            proof: list[bytes] = []
            if size > checkpoint.size:
                subtree = tiles.subtree_from_tiles(tile_reader(m.source), size)
                proof = merkle.consistency_proof(checkpoint.size, size, subtree)
        except (LogError, FormatError, VerificationError):
            continue
        out.append((note, proof))
    return out


def witness_copies(witnesses: Sequence[Witness], origin: str) -> list[bytes]:
    """The latest checkpoints of ``origin`` the witnesses cosigned (those that answer): a
    mirror's copy of a tree may not carry the witness quorum; theirs add it."""
    notes: list[bytes] = []
    for w in witnesses:
        try:
            note = w.source.checkpoint(origin)
        except LogError:
            continue
        if note is not None:
            notes.append(note)
    return notes
