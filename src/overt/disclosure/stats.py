"""What the public learns from the log alone: report counts and response times.

Every commitment entry (:mod:`overt.disclosure.timeline`) shows a programme, a state, a
time and a case tag, so anyone holding the log can count the reports a programme received
and measure how long it took to acknowledge, fix and disclose them, without seeing any
report. :func:`timeline_stats` is the pure computation over entries; :func:`log_stats`
reads a log (directory or URL), checks every entry against the signed checkpoint's root
(each entry bundle against its level-0 tile, and all leaf hashes against the root), and
computes the statistics of one programme. Entries that are not commitments (advisory
publications, other programmes) are skipped.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from overt.disclosure.timeline import parse_entry
from overt.disclosure.workflow import State
from overt.errors import FormatError, ProofError
from overt.formats import merkle, tiles
from overt.formats.note import Verifier

__all__ = ["TimelineStats", "log_stats", "timeline_stats"]


@dataclass(frozen=True)
class TimelineStats:
    """Counts per state and median days from receipt to acknowledgement, fix and disclosure."""

    program: str | None
    reports: int
    by_state: dict[str, int] = field(default_factory=dict)
    median_days: dict[str, float] = field(default_factory=dict)


def timeline_stats(entries: Iterable[bytes], program: str | None = None) -> TimelineStats:
    """Statistics of the commitment entries among ``entries`` (of ``program``, if given)."""
    by_state: dict[str, int] = {}
    received: dict[bytes, float] = {}
    reached: dict[str, list[tuple[bytes, float]]] = {}
    for data in entries:
        try:
            entry = parse_entry(data)
        except FormatError:
            continue
        if program is not None and entry.program != program:
            continue
        by_state[entry.state.value] = by_state.get(entry.state.value, 0) + 1
        t = entry.time.timestamp()
        if entry.state is State.RECEIVED:
            received[entry.case] = t
        else:
            reached.setdefault(entry.state.value, []).append((entry.case, t))
    medians: dict[str, float] = {}
    for state in (State.ACKNOWLEDGED, State.FIXED, State.DISCLOSED):
        days = [
            (t - received[case]) / 86400
            for case, t in reached.get(state.value, [])
            if case in received
        ]
        if days:
            medians[state.value] = round(statistics.median(days), 2)
    return TimelineStats(program, by_state.get(State.RECEIVED.value, 0), by_state, medians)


def log_stats(url_or_dir: str, verifier: Verifier, program: str | None = None) -> TimelineStats:
    """:func:`timeline_stats` of a whole log, every entry verified against its checkpoint.

    Raises:
        VerificationError: the checkpoint is not signed by ``verifier``, an entry does not
            match its tile, or the tiles do not hash to the checkpoint's root.
        NotFoundError, LogError: the log cannot be read.
    """
    from overt.formats.checkpoint import open_checkpoint
    from overt.log.client import open_source, tile_reader

    source = open_source(url_or_dir)
    try:
        signed = open_checkpoint(source.read("checkpoint"), verifier)
        size = signed.checkpoint.size
        get_tile = tile_reader(source)
        entries: list[bytes] = []
        hashes: list[bytes] = []
        for n in range((size + tiles.TILE_WIDTH - 1) // tiles.TILE_WIDTH):
            width = min(tiles.TILE_WIDTH, size - n * tiles.TILE_WIDTH)
            bundle = tiles.parse_entry_bundle(source.read(tiles.entries_path(n, width)), width)
            hashes.extend(tiles.verify_entries(bundle, get_tile(0, n, width), n))
            entries.extend(bundle)
    finally:
        source.close()
    if size and merkle.root_hash(hashes) != signed.checkpoint.root_hash:
        raise ProofError(f"the entries do not hash to the checkpoint's root (size {size})")
    return timeline_stats(entries, program)
