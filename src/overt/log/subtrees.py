"""The log's witnessed subtrees: completed ranges its ML-DSA-44 witnesses cosigned.

Once a checkpoint is published with the witnesses' cosignatures, every *completed
range* it covers (by default each full 256-entry tile: ``[0, 256)``, ``[256, 512)``,
...) is sent to each witness whose key signs subtrees, with c2sp.org/tlog-witness
``sign-subtree`` (:meth:`overt.witness.client.WitnessClient.sign_subtree`): the range,
its hash, a subtree consistency proof to that checkpoint, and the checkpoint carrying
the witness's own cosignature. The cosignatures are kept beside the tiles::

    DIR/subtrees/<start>-<end>   a subtree note (overt.formats.subtree_proof): origin,
                                 range, hash, and every subtree cosignature collected

Each file is replaced atomically (temporary file, fsync, rename, directory fsync) and
only ever gains signatures; a signature is stored only after it verified against the
witness's key, so nothing unverified is kept. A range is never cosigned twice by one
witness. ``overt log proof --subtree`` then proves an entry against its range
(:func:`subtree_proof`): a path of 8 hashes and the range's note, which stays valid
however large the log grows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from overt.errors import FormatError, LogError, NotFoundError
from overt.formats import merkle
from overt.formats.note import MAX_NOTE_SIZE, Signature
from overt.formats.subtree import subtree_inclusion_proof
from overt.formats.subtree_proof import (
    SubtreeNote,
    SubtreeProof,
    format_subtree_note,
    format_subtree_proof,
    parse_subtree_note,
)
from overt.formats.tiles import TILE_WIDTH
from overt.log.fs import atomic_write

if TYPE_CHECKING:
    import httpx

__all__ = [
    "RANGE_SIZE",
    "SUBTREES",
    "SubtreeStore",
    "completed_ranges",
    "fetch_subtree_note",
    "parse_range_name",
    "subtree_proof",
]

SUBTREES = "subtrees"
"""The directory, in the log directory, of the subtree notes."""

RANGE_SIZE = TILE_WIDTH
"""Entries per cosigned range by default: one full tile."""

_NAME = re.compile(r"(0|[1-9][0-9]*)-([1-9][0-9]*)")


def completed_ranges(
    size: int, range_size: int = RANGE_SIZE, first: int = 0
) -> list[tuple[int, int]]:
    """The ranges ``[k * range_size, (k + 1) * range_size)`` a tree of ``size`` completes,
    from the one starting at ``first`` (a multiple of ``range_size``).

    Raises:
        ValueError: ``range_size`` is not a power of two.
    """
    if range_size <= 0 or range_size & (range_size - 1):
        raise ValueError(f"range size {range_size} is not a power of two")
    return [(s, s + range_size) for s in range(first, size - range_size + 1, range_size)]


class SubtreeStore:
    """The subtree notes of one log directory (``DIR/subtrees``)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory) / SUBTREES

    def _path(self, start: int, end: int) -> Path:
        return self.directory / f"{start}-{end}"

    def get(self, start: int, end: int) -> SubtreeNote | None:
        """The note stored for ``[start, end)``, or None.

        Raises:
            LogError: the file cannot be read or does not parse (it was written verified).
        """
        try:
            data = self._path(start, end).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise LogError(f"cannot read subtree note {start}-{end}: {err.strerror}") from err
        try:
            note = parse_subtree_note(data)
        except FormatError as err:
            raise LogError(f"subtree note {start}-{end} is damaged: {err}") from err
        if (note.start, note.end) != (start, end):
            raise LogError(f"subtree note {start}-{end} is about [{note.start}, {note.end})")
        return note

    def add(self, note: SubtreeNote, signature: Signature) -> SubtreeNote:
        """Stores ``signature`` (verified by the caller) on the note's range; durable on return.

        Raises:
            LogError: another hash is stored for the range, or the write failed.
        """
        stored = self.get(note.start, note.end)
        if stored is not None and (stored.origin, stored.subtree_hash) != (
            note.origin,
            note.subtree_hash,
        ):
            raise LogError(f"subtree [{note.start}, {note.end}) has another hash on disk")
        kept = () if stored is None else stored.signatures
        kept = tuple(s for s in kept if (s.name, s.key_id) != (signature.name, signature.key_id))
        new = SubtreeNote(note.origin, note.start, note.end, note.subtree_hash, (*kept, signature))
        try:
            self.directory.mkdir(exist_ok=True)
            atomic_write(self._path(note.start, note.end), format_subtree_note(new))
        except OSError as err:
            raise LogError(f"cannot store subtree note {note.start}-{note.end}: {err}") from err
        return new

    def read(self, start: int, end: int) -> bytes | None:
        """The stored note's bytes for ``[start, end)`` (what ``GET /subtree/...`` serves).

        Raises:
            LogError: see :meth:`get`.
        """
        note = self.get(start, end)
        return None if note is None else format_subtree_note(note)

    def find(self, index: int) -> SubtreeNote | None:
        """The smallest stored range that holds entry ``index``, or None.

        Raises:
            LogError: see :meth:`get`.
        """
        try:
            names = [p.name for p in self.directory.iterdir()]
        except FileNotFoundError:
            return None
        except OSError as err:
            raise LogError(f"cannot list {self.directory}: {err.strerror}") from err
        best: tuple[int, int] | None = None
        for name in names:
            m = _NAME.fullmatch(name)
            if not m:
                continue  # a temporary file, or something that is not ours
            start, end = int(m.group(1)), int(m.group(2))
            if start <= index < end and (best is None or end - start < best[1] - best[0]):
                best = (start, end)
        return None if best is None else self.get(*best)


def parse_range_name(name: str) -> tuple[int, int] | None:
    """``(start, end)`` from a canonical ``<start>-<end>`` name, or None."""
    m = _NAME.fullmatch(name)
    if m is None or len(name) > 41:
        return None
    return int(m.group(1)), int(m.group(2))


def fetch_subtree_note(
    client: httpx.Client, url: str, index: int, range_size: int = RANGE_SIZE
) -> SubtreeNote:
    """The note of the range holding ``index`` from the log server at ``url``
    (``GET /subtree/<start>-<end>``), parsed strictly (not yet verified).

    Raises:
        NotFoundError: the server has no cosigned note for that range (yet).
        FormatError: the reply is not that range's subtree note.
        LogError: the request failed, or the reply is too large.
    """
    from overt._http import fetch

    start = index // range_size * range_size
    end = start + range_size
    where = f"{url.rstrip('/')}/subtree/{start}-{end}"
    response = fetch(client, "GET", where, MAX_NOTE_SIZE, LogError)
    if response.status == 404:
        raise NotFoundError(f"GET {where}: 404 (no witnessed subtree holds entry {index} yet)")
    if response.status != 200:
        raise LogError(f"GET {where}: HTTP {response.status}")
    note = parse_subtree_note(response.content)
    if (note.start, note.end) != (start, end):
        raise FormatError(
            "subtree note", f"asked for [{start}, {end})", f"[{note.start}, {note.end})"
        )
    return note


def subtree_proof(
    store: SubtreeStore | SubtreeNote,
    subtree: merkle.SubtreeHash,
    index: int,
    extra: bytes | None = None,
) -> bytes:
    """The subtree proof (:mod:`overt.formats.subtree_proof`) of entry ``index``.

    ``store`` is the log's notes, or the note of the range already fetched
    (:func:`fetch_subtree_note`); ``subtree`` answers complete ranges of the log (its tiles).

    Raises:
        NotFoundError: no cosigned range holds ``index`` yet.
        LogError: see :meth:`SubtreeStore.get`.
    """
    note = store.find(index) if isinstance(store, SubtreeStore) else store
    if note is None or not note.signatures:
        raise NotFoundError(
            f"no witnessed subtree holds entry {index} yet (ranges are cosigned once complete,"
            " by witnesses with ML-DSA-44 keys)"
        )
    hashes = subtree_inclusion_proof(index, note.start, note.end, subtree)
    return format_subtree_proof(SubtreeProof(index, tuple(hashes), note, extra))
