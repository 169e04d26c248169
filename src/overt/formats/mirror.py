"""The wire formats of a transparency-log mirror (c2sp.org/tlog-mirror): ``add-entries`` and mirror-info.

Request body of ``POST <submission prefix>/add-entries``
(``Content-Type: application/octet-stream``, optionally ``Content-Encoding: gzip``)::

    body      = origin-len origin upload-start upload-end ticket-len ticket *package
    origin-len   = uint16                ; big-endian; 1..65535 bytes of UTF-8 origin
    upload-start = uint64                ; big-endian, < 2^63
    upload-end   = uint64                ; big-endian, upload-start <= upload-end < 2^63
    ticket-len   = uint16                ; 0..65535 bytes of opaque ticket
    package      = *(uint16 entry) num-hashes *hash   ; num-hashes: one byte, <= 63
                                                      ; hash: 32 bytes

The packages are a prefix of the *canonical sequence* of ``[upload_start,
upload_end)`` (:func:`package_ranges`): package ``i`` covers ``[start, end)``
with ``start = max(upload_start, rounded_start + 256 i)`` and ``end =
min(upload_end, rounded_start + 256 (i + 1))``, so packages align with entry
bundles. Its hashes are a *subtree consistency proof*
(draft-ietf-plants-merkle-tree-certs, "Subtree Consistency Proofs") of the
subtree ``[rounded_start + 256 i, end)`` to the checkpoint of size
``upload_end`` (:func:`overt.formats.subtree.subtree_consistency_proof`,
:func:`overt.formats.subtree.verify_subtree_consistency`). The number of entries in a package is not
in the body: it follows from the header and the package's position.

Worked example: ``upload_start = 300, upload_end = 700`` gives three packages,
``[300, 512)`` (subtree ``[256, 512)``), ``[512, 700)`` (subtree ``[512, 700)``);
the first package carries the 212 entries 300..511 and the proof of subtree
``[256, 512)`` to the tree of size 700, whose hash the mirror computes with the
44 entries 256..299 it already holds.

``409 Conflict`` and ``202 Accepted`` replies carry a *mirror-info* body
(``Content-Type: text/x.tlog.mirror-info``, :func:`parse_mirror_info`)::

    700                 ; the tree size of a valid pending checkpoint, decimal
    512                 ; the mirror's next entry, decimal
    <base64 ticket>     ; possibly empty

Parsing is strict and canonical (exact lengths, no trailing bytes, canonical
decimal and base64); every ``format_*`` is the exact inverse of its ``parse_*``.

Spec: https://c2sp.org/tlog-mirror (the text in ``../shared/specs/c2sp``).
Versioning: follows that text; ``sign-subtree`` is not implemented here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overt.errors import FormatError
from overt.formats.checkpoint import MAX_TREE_SIZE
from overt.formats.merkle import HASH_SIZE
from overt.formats.strict import b64decode_strict, b64encode, parse_decimal
from overt.formats.tiles import MAX_ENTRY_SIZE, TILE_WIDTH

__all__ = [
    "CONTENT_TYPE_ENTRIES",
    "CONTENT_TYPE_INFO",
    "MAX_HEADER_SIZE",
    "MAX_PACKAGE_SIZE",
    "MAX_PROOF_HASHES",
    "MAX_TICKET_SIZE",
    "PACKAGE_WIDTH",
    "REQUEST_PACKAGES",
    "EntryPackage",
    "MirrorInfo",
    "PackageRange",
    "UploadHeader",
    "format_mirror_info",
    "format_package",
    "format_upload",
    "format_upload_header",
    "package_count",
    "package_range",
    "package_ranges",
    "parse_mirror_info",
    "parse_package",
    "parse_upload",
    "parse_upload_header",
]

CONTENT_TYPE_ENTRIES = "application/octet-stream"
CONTENT_TYPE_INFO = "text/x.tlog.mirror-info"
#: Packages align with entry bundles: 256 entries.
PACKAGE_WIDTH = TILE_WIDTH
#: The most hashes a package's subtree consistency proof may carry.
MAX_PROOF_HASHES = 63
MAX_TICKET_SIZE = 0xFFFF
_MAX_ORIGIN_SIZE = 0xFFFF
#: The largest header: both length-prefixed fields at their maximum.
MAX_HEADER_SIZE = 2 + _MAX_ORIGIN_SIZE + 8 + 8 + 2 + MAX_TICKET_SIZE
#: The largest package: 256 entries of the largest size and a full proof.
MAX_PACKAGE_SIZE = PACKAGE_WIDTH * (2 + MAX_ENTRY_SIZE) + 1 + MAX_PROOF_HASHES * HASH_SIZE
#: Packages a client sends per request (the spec's advice: at most 32, 8192 entries).
REQUEST_PACKAGES = 32
_MAX_INFO_SIZE = 2 * 20 + 4 * ((MAX_TICKET_SIZE + 2) // 3) + 3


@dataclass(frozen=True)
class UploadHeader:
    """The fixed part of an ``add-entries`` body: which log, which interval, which ticket."""

    origin: str
    upload_start: int
    upload_end: int
    ticket: bytes = b""


@dataclass(frozen=True)
class PackageRange:
    """Package ``i`` of a canonical sequence: entries ``[start, end)``, proof of ``[subtree_start, end)``."""

    subtree_start: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class EntryPackage:
    """One package: its entries (in index order) and its subtree consistency proof."""

    entries: tuple[bytes, ...]
    proof: tuple[bytes, ...]


@dataclass(frozen=True)
class MirrorInfo:
    """A 409/202 reply: a valid pending size, the mirror's next entry, its ticket."""

    size: int
    next_entry: int
    ticket: bytes = b""


# --- the header -------------------------------------------------------------------------


def _check_header(header: UploadHeader) -> None:
    origin = header.origin.encode("utf-8", "surrogatepass")
    if not 1 <= len(origin) <= _MAX_ORIGIN_SIZE:
        raise FormatError("add-entries origin", "must be 1 to 65535 bytes", header.origin[:60])
    if not 0 <= header.upload_start <= header.upload_end <= MAX_TREE_SIZE:
        raise FormatError(
            "add-entries interval",
            "needs 0 <= upload_start <= upload_end < 2^63",
            f"[{header.upload_start}, {header.upload_end})",
        )
    if len(header.ticket) > MAX_TICKET_SIZE:
        raise FormatError("add-entries ticket", "longer than 65535 bytes")


def format_upload_header(header: UploadHeader) -> bytes:
    """The header bytes of an ``add-entries`` body.

    Raises:
        FormatError: an empty or oversized origin, a ticket over 65535 bytes, or
            an interval that is not ``0 <= start <= end < 2^63``.
    """
    _check_header(header)
    origin = header.origin.encode("utf-8")
    return b"".join(
        (
            len(origin).to_bytes(2, "big"),
            origin,
            header.upload_start.to_bytes(8, "big"),
            header.upload_end.to_bytes(8, "big"),
            len(header.ticket).to_bytes(2, "big"),
            header.ticket,
        )
    )


def parse_upload_header(data: bytes | bytearray | memoryview) -> tuple[UploadHeader, int] | None:
    """The header at the start of ``data`` and its length, or None if ``data`` is too short yet.

    Meant for a stream: call again with more bytes while it returns None.

    Raises:
        FormatError: an empty origin, an origin that is not UTF-8, upload_start
            above upload_end, or a size of 2^63 or more.
    """
    view = memoryview(data)
    if len(view) < 2:
        return None
    n = int.from_bytes(view[:2], "big")
    if n == 0:
        raise FormatError("add-entries origin", "empty")
    if len(view) < 2 + n + 18:
        return None
    raw = bytes(view[2 : 2 + n])
    try:
        origin = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FormatError("add-entries origin", "not UTF-8", raw[:60]) from err
    pos = 2 + n
    start = int.from_bytes(view[pos : pos + 8], "big")
    end = int.from_bytes(view[pos + 8 : pos + 16], "big")
    ticket_size = int.from_bytes(view[pos + 16 : pos + 18], "big")
    pos += 18
    if end > MAX_TREE_SIZE:
        raise FormatError("add-entries upload_end", "2^63 or more", str(end))
    if start > end:
        raise FormatError("add-entries interval", "upload_start above upload_end", f"{start}>{end}")
    if len(view) < pos + ticket_size:
        return None
    ticket = bytes(view[pos : pos + ticket_size])
    return UploadHeader(origin, start, end, ticket), pos + ticket_size


# --- the canonical sequence ---------------------------------------------------------------


def package_count(upload_start: int, upload_end: int) -> int:
    """How many packages the canonical sequence of ``[upload_start, upload_end)`` has."""
    if upload_start >= upload_end:
        return 0
    rounded_start = upload_start - upload_start % PACKAGE_WIDTH
    rounded_end = -(-upload_end // PACKAGE_WIDTH) * PACKAGE_WIDTH
    return (rounded_end - rounded_start) // PACKAGE_WIDTH


def package_range(upload_start: int, upload_end: int, i: int) -> PackageRange:
    """Package ``i`` of the canonical sequence of ``[upload_start, upload_end)``.

    Raises:
        ValueError: ``i`` is not in ``[0, package_count(...))``.
    """
    if not 0 <= i < package_count(upload_start, upload_end):
        raise ValueError(f"no package {i} in the upload [{upload_start}, {upload_end})")
    rounded_start = upload_start - upload_start % PACKAGE_WIDTH
    subtree_start = rounded_start + i * PACKAGE_WIDTH
    start = max(upload_start, subtree_start)
    end = min(upload_end, subtree_start + PACKAGE_WIDTH)
    return PackageRange(subtree_start, start, end)


def package_ranges(upload_start: int, upload_end: int) -> list[PackageRange]:
    """The canonical sequence of ``[upload_start, upload_end)``, in order (empty if equal)."""
    return [
        package_range(upload_start, upload_end, i)
        for i in range(package_count(upload_start, upload_end))
    ]


# --- packages ---------------------------------------------------------------------------


def format_package(package: EntryPackage) -> bytes:
    """The bytes of one package.

    Raises:
        FormatError: an entry that is empty or over 65535 bytes, more than 63
            proof hashes, or a hash that is not 32 bytes.
    """
    if len(package.proof) > MAX_PROOF_HASHES:
        raise FormatError("entry package", f"more than {MAX_PROOF_HASHES} proof hashes")
    out: list[bytes] = []
    for i, entry in enumerate(package.entries):
        if not 0 < len(entry) <= MAX_ENTRY_SIZE:
            raise FormatError("entry package", f"entry {i} is {len(entry)} bytes (1..65535)")
        out.append(len(entry).to_bytes(2, "big"))
        out.append(entry)
    if any(len(h) != HASH_SIZE for h in package.proof):
        raise FormatError("entry package", "a proof hash is not 32 bytes")
    out.append(bytes((len(package.proof),)))
    out.extend(package.proof)
    return b"".join(out)


def parse_package(
    data: bytes | bytearray | memoryview, offset: int, count: int
) -> tuple[EntryPackage, int] | None:
    """The package of ``count`` entries at ``data[offset:]`` and the offset after it,
    or None if ``data`` ends before the package does (a stream: call again with more).

    Raises:
        FormatError: a zero-length entry, or more than 63 proof hashes.
        ValueError: ``count`` is not in 1..256.
    """
    if not 1 <= count <= PACKAGE_WIDTH:
        raise ValueError(f"a package holds 1..{PACKAGE_WIDTH} entries, not {count}")
    view = memoryview(data)
    end = len(view)
    pos = offset
    entries: list[bytes] = []
    append = entries.append
    for i in range(count):
        if end - pos < 2:
            return None
        n = (view[pos] << 8) | view[pos + 1]
        if n == 0:
            raise FormatError("entry package", f"zero-length entry {i} at byte {pos}")
        pos += 2
        if end - pos < n:
            return None
        append(bytes(view[pos : pos + n]))
        pos += n
    if pos >= end:
        return None
    num_hashes = view[pos]
    if num_hashes > MAX_PROOF_HASHES:
        raise FormatError("entry package", f"{num_hashes} proof hashes at byte {pos} (at most 63)")
    pos += 1
    if end - pos < num_hashes * HASH_SIZE:
        return None
    proof = tuple(
        bytes(view[p : p + HASH_SIZE]) for p in range(pos, pos + num_hashes * HASH_SIZE, HASH_SIZE)
    )
    return EntryPackage(tuple(entries), proof), pos + num_hashes * HASH_SIZE


def format_upload(header: UploadHeader, packages: Sequence[EntryPackage]) -> bytes:
    """A whole ``add-entries`` body: the header and a prefix of the canonical sequence.

    Raises:
        FormatError: a bad header, more packages than the sequence has, or a
            package whose entry count is not its range's.
    """
    ranges = package_ranges(header.upload_start, header.upload_end)
    if len(packages) > len(ranges):
        raise FormatError("add-entries", f"{len(packages)} packages, the upload has {len(ranges)}")
    out = [format_upload_header(header)]
    for package, rng in zip(packages, ranges, strict=False):
        if len(package.entries) != rng.count:
            raise FormatError(
                "add-entries",
                f"package [{rng.start}, {rng.end}) has {len(package.entries)} entries",
            )
        out.append(format_package(package))
    return b"".join(out)


def parse_upload(body: bytes) -> tuple[UploadHeader, list[EntryPackage]]:
    """A whole ``add-entries`` body, strictly: the header and complete packages, nothing more.

    (The mirror reads a stream package by package instead; this is the exact
    inverse of :func:`format_upload`, for clients, tools and tests.)

    Raises:
        FormatError: a bad or truncated header, a bad or truncated package, or
            bytes after the last package of the canonical sequence.
    """
    parsed = parse_upload_header(body)
    if parsed is None:
        raise FormatError("add-entries", "truncated header", body[:60])
    header, pos = parsed
    packages: list[EntryPackage] = []
    for rng in package_ranges(header.upload_start, header.upload_end):
        if pos == len(body):
            break
        got = parse_package(body, pos, rng.count)
        if got is None:
            raise FormatError("add-entries", f"package [{rng.start}, {rng.end}) truncated")
        package, pos = got
        packages.append(package)
    if pos != len(body):
        raise FormatError("add-entries", f"trailing bytes at {pos}", body[pos : pos + 16])
    return header, packages


# --- mirror-info ----------------------------------------------------------------------------


def format_mirror_info(info: MirrorInfo) -> bytes:
    """A ``text/x.tlog.mirror-info`` body.

    Raises:
        FormatError: a size or next entry outside ``[0, 2^63)``, or a ticket over 65535 bytes.
    """
    for what, value in (("size", info.size), ("next entry", info.next_entry)):
        if type(value) is not int or not 0 <= value <= MAX_TREE_SIZE:
            raise FormatError(f"mirror-info {what}", "not an int in [0, 2^63)", repr(value))
    if len(info.ticket) > MAX_TICKET_SIZE:
        raise FormatError("mirror-info ticket", "longer than 65535 bytes")
    return b"%d\n%d\n%s\n" % (info.size, info.next_entry, b64encode(info.ticket).encode())


def parse_mirror_info(body: bytes) -> MirrorInfo:
    """A ``text/x.tlog.mirror-info`` body: three lines, each ending in a newline.

    Raises:
        FormatError: not exactly three lines, a non-canonical decimal, a size of
            2^63 or more, or a ticket that is not canonical base64 (or over 65535 bytes).
    """
    if len(body) > _MAX_INFO_SIZE:
        raise FormatError("mirror-info", "oversized", body[:60])
    lines = body.split(b"\n")
    if len(lines) != 4 or lines[3] != b"":
        raise FormatError("mirror-info", "not three newline-terminated lines", body[:60])
    size = parse_decimal(lines[0], "mirror-info size", MAX_TREE_SIZE)
    next_entry = parse_decimal(lines[1], "mirror-info next entry", MAX_TREE_SIZE)
    ticket = b64decode_strict(lines[2], "mirror-info ticket") if lines[2] else b""
    if len(ticket) > MAX_TICKET_SIZE:
        raise FormatError("mirror-info ticket", "longer than 65535 bytes")
    return MirrorInfo(size, next_entry, ticket)
