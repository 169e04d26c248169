"""What a log entry says, for people: decoding entries and an in-memory search index.

The portal shows every entry of a transparency log. An entry is either a DSSE
envelope of an in-toto statement (what ``overt publish`` and the auditors log:
a release, an update, a rule bundle, a key set, a rule audit, SLSA provenance,
a source review, an SBOM, a disclosure advisory) or opaque bytes (a line of text,
a hash). :func:`decode_entry` turns one entry into a :class:`DecodedEntry`
without trusting it: it only parses (strictly, with :mod:`overt.formats`), and an
entry that does not parse is shown as what it is, never an error page. Nothing
here verifies a signature: what the portal verifies is that the entry is in the
log (:mod:`overt.portal.checks`).

:class:`EntryIndex` keeps the decoded rows of a log and answers searches by
kind, product, version and digest; it reads only the entries added since its last
:meth:`EntryIndex.update` (entry bundles, 256 entries a read).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from overt.disclosure.timeline import HEADER as COMMITMENT_HEADER
from overt.errors import FormatError
from overt.formats import tiles
from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, parse_envelope
from overt.formats.statement import (
    CYCLONEDX,
    DISCLOSURE_ADVISORY,
    SLSA_PROVENANCE,
    parse_statement,
)

__all__ = ["DecodedEntry", "EntryIndex", "EntryReader", "decode_entry"]

# Kinds the statement module does not name itself (Statement.kind covers the rest).
_EXTRA_KINDS = {
    SLSA_PROVENANCE: "provenance",
    DISCLOSURE_ADVISORY: "advisory",
    CYCLONEDX: "sbom",
}
_MAX_TEXT = 4096


@dataclass(frozen=True)
class DecodedEntry:
    """One log entry as the portal shows it (nothing in it is verified)."""

    index: int
    kind: str  # release, update, rule-bundle, ..., "statement", "text" or "binary"
    subject: str  # the first subject's name, or ""
    digest: str  # the first subject's sha256 hex, or ""
    product: str
    version: str
    size: int
    predicate_type: str = ""
    statement: str = ""  # the statement, pretty-printed JSON
    text: str = ""  # a text entry's text (capped), or a binary entry's hex prefix
    signers: tuple[str, ...] = ()  # DSSE key IDs (unverified: the gate checks them)
    predicate: Mapping[str, Any] | None = None

    @property
    def words(self) -> str:
        """What free-text search matches against (lower case)."""
        parts = (self.kind, self.subject, self.digest, self.product, self.version, self.text[:200])
        return " ".join(parts).lower()


def _field(predicate: Mapping[str, Any], name: str) -> str:
    value = predicate.get(name)
    return value if isinstance(value, str) else ""


def decode_entry(index: int, data: bytes) -> DecodedEntry:
    """The entry at ``index`` decoded for display. Never raises: what does not parse as a
    statement is a ``text`` (UTF-8) or ``binary`` entry."""
    if data[:1] == b"{":
        try:
            envelope = parse_envelope(data)
            if envelope.payload_type == PAYLOAD_TYPE_IN_TOTO:
                statement = parse_statement(envelope.payload)
                kind = statement.kind or _EXTRA_KINDS.get(statement.predicate_type, "statement")
                first = statement.subjects[0] if statement.subjects else None
                predicate = statement.predicate
                return DecodedEntry(
                    index=index,
                    kind=kind,
                    subject=first.name if first else "",
                    digest=(first.sha256 or "") if first else "",
                    product=_field(predicate, "product"),
                    version=_field(predicate, "version"),
                    size=len(data),
                    predicate_type=statement.predicate_type,
                    statement=json.dumps(statement.json, indent=2, sort_keys=True),
                    signers=tuple(s.keyid or "" for s in envelope.signatures),
                    predicate=predicate,
                )
        except FormatError:
            pass  # shown as text below: a malformed statement is still an entry of the log
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return DecodedEntry(index, "binary", "", "", "", "", len(data), text=data[:64].hex())
    # A disclosure programme's commitment to a report's state (overt.disclosure.timeline):
    # counted by the disclosure page, never shown as more than its text.
    kind = "disclosure-commitment" if text.startswith(COMMITMENT_HEADER + "\n") else "text"
    return DecodedEntry(index, kind, "", "", "", "", len(data), text=text[:_MAX_TEXT])


class EntryReader(Protocol):
    """What the index reads: a log's published entry bundles (:class:`overt.log.LogView`)."""

    def read_bundle(self, index: int, width: int = tiles.TILE_WIDTH) -> bytes: ...


class EntryIndex:
    """Decoded entries of one log, searchable; grows with :meth:`update`."""

    def __init__(self) -> None:
        self.rows: list[DecodedEntry] = []
        self._by_digest: dict[str, list[int]] = {}
        self._by_product: dict[str, list[int]] = {}
        self._by_kind: dict[str, list[int]] = {}
        self._by_version: dict[tuple[str, str], list[int]] = {}
        #: The raw disclosure commitment entries, for the programme statistics.
        self.commitments: list[bytes] = []

    def __len__(self) -> int:
        return len(self.rows)

    def update(self, reader: EntryReader, size: int) -> None:
        """Read and decode entries ``len(self)`` .. ``size - 1``.

        Raises:
            FormatError, NotFoundError, LogError: an entry bundle is missing or malformed
                (the rows read so far are kept).
        """
        width = tiles.TILE_WIDTH
        while len(self.rows) < size:
            start = len(self.rows)
            bundle = start // width
            count = min(width, size - bundle * width)
            entries = tiles.parse_entry_bundle(reader.read_bundle(bundle, count), count)
            self.add(entries[start - bundle * width :], start)

    def add(self, entries: Iterable[bytes], start: int) -> None:
        """Decode and index ``entries``, the first at index ``start`` (== ``len(self)``)."""
        if start != len(self.rows):
            raise ValueError(f"entries must be added in order: {start} != {len(self.rows)}")
        for i, data in enumerate(entries, start):
            row = decode_entry(i, data)
            self.rows.append(row)
            if row.digest:
                self._by_digest.setdefault(row.digest, []).append(i)
            if row.product:
                self._by_product.setdefault(row.product, []).append(i)
            self._by_kind.setdefault(row.kind, []).append(i)
            if row.kind == "disclosure-commitment":
                self.commitments.append(data)
            if row.product and row.version:
                self._by_version.setdefault((row.product, row.version), []).append(i)

    def search(
        self,
        *,
        kind: str = "",
        product: str = "",
        version: str = "",
        digest: str = "",
        text: str = "",
        limit: int = 100,
    ) -> list[DecodedEntry]:
        """Matching rows, newest first, at most ``limit``.

        ``digest`` is a full sha256 (a dictionary lookup) or a prefix of at least
        four hex digits; ``text`` matches kind, subject, digest, product and version.
        """
        candidates: Iterable[int]
        digest = digest.lower()
        if len(digest) == 64:
            candidates = reversed(self._by_digest.get(digest, []))
        elif product:
            candidates = reversed(self._by_product.get(product, []))
        elif kind:
            candidates = reversed(self._by_kind.get(kind, []))
        else:
            candidates = range(len(self.rows) - 1, -1, -1)
        needle = text.lower()
        found: list[DecodedEntry] = []
        for i in candidates:
            row = self.rows[i]
            if (
                (not kind or row.kind == kind)
                and (not product or row.product == product)
                and (not version or row.version == version)
                and (not digest or row.digest.startswith(digest))
                and (not needle or needle in row.words)
            ):
                found.append(row)
                if len(found) >= limit:
                    break
        return found

    def related(self, row: DecodedEntry) -> list[DecodedEntry]:
        """Other entries about the same artifact (same digest) or the same product version:
        release -> provenance -> reviews -> rebuilds -> SBOM -> advisories, audits of a bundle."""
        seen = {row.index}
        out: list[DecodedEntry] = []
        if row.digest:
            for i in self._by_digest.get(row.digest, []):
                if i not in seen:
                    seen.add(i)
                    out.append(self.rows[i])
        for i in self._by_version.get((row.product, row.version), []):
            if i not in seen:
                seen.add(i)
                out.append(self.rows[i])
        return sorted(out, key=lambda r: r.index)

    def kinds(self) -> dict[str, int]:
        """How many entries of each kind."""
        return {kind: len(rows) for kind, rows in sorted(self._by_kind.items())}
