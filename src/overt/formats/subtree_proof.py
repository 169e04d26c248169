"""Offline proofs against a witnessed subtree: overt's subtree extension of c2sp.org/tlog-proof.

A c2sp.org/tlog-proof proves an entry against a whole checkpoint: an inclusion path to
the root of the tree at that size, which grows with the log and must be fetched again
whenever a newer checkpoint is wanted. A *subtree proof* proves it against one completed
range of the log instead, ``[start, end)`` (a subtree, draft-ietf-plants-merkle-tree-certs
§4, e.g. the 256 entries of one tile), whose hash the witnesses cosigned with
c2sp.org/tlog-witness ``sign-subtree``. The path is only as long as the range is deep
(8 hashes for 256 entries) and the proof never changes once the range is cosigned.

The layout is tlog-proof's, with its own first line (a tlog-proof parser refuses it
rather than misreading it) and a *subtree note* where the checkpoint was::

    proof        = "overt/tlog-subtree-proof@v1" LF
                   [ "extra " base64(extra) LF ]       ; opaque, unauthenticated
                   "index " decimal LF                 ; the entry's index in the log
                   *( base64(32-byte hash) LF )         ; subtree inclusion proof, at most 63
                   LF
                   subtree-note
    subtree-note = origin LF                            ; the log's origin (1-255 bytes)
                   "subtree " start SP end LF           ; canonical decimals, a subtree
                   base64(32-byte subtree hash) LF
                   LF
                   1*cosignature-line                   ; subtree cosignatures (ML-DSA-44)

Example (a log's entry 300, in its second tile, cosigned by two witnesses)::

    overt/tlog-subtree-proof@v1
    index 300
    9H7LuAm5Vad8U0cYuwZd1FvwJG6KZLq4Tp0pvHxmGFs=
    ... (8 hashes)

    example.com/log
    subtree 256 512
    y0Hf8e6/ObE9vC9kOs4cr0ClkGZz2tbBc6DU8yJrnQ0=

    — asia.witness.example BaN9GgAAAAAAAAAA...
    — europe.witness.example 6O0YNQAAAAAAAAAA...

The subtree note is a signed note (c2sp.org/signed-note) whose signatures are
tlog-cosignature ``subtree/v1`` cosignatures (timestamp zero) over the origin, range and
hash it states; it is also what a log stores for each cosigned range
(:mod:`overt.log.subtrees`). :func:`verify_subtree_proof` checks, with no I/O: the
origin is the expected log's; every signature by a policy witness verifies as a subtree
cosignature and those witnesses meet the policy's quorum; the inclusion proof leads from
the entry's leaf hash to the cosigned subtree hash. A subtree cosignature carries no
time: it says the range is part of the one history each witness saw, not that it is
recent, so there is no freshness check (``--max-age`` applies to checkpoints).

Design: docs/adr/0013-subtree-proofs.md. Versioning: the first line names the version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from overt.errors import FormatError, InvalidSignatureError, PolicyError
from overt.formats.checkpoint import MAX_TREE_SIZE, OriginError
from overt.formats.note import (
    MAX_NOTE_SIZE,
    Note,
    Signature,
    Verifier,
    format_note,
    parse_note,
)
from overt.formats.policy import Policy
from overt.formats.strict import b64decode_strict, b64encode, parse_decimal
from overt.formats.subtree import is_valid_subtree, verify_subtree_inclusion

__all__ = [
    "HEADER",
    "SubtreeNote",
    "SubtreeProof",
    "VerifiedSubtreeProof",
    "format_subtree_note",
    "format_subtree_proof",
    "parse_subtree_note",
    "parse_subtree_proof",
    "verify_subtree_cosignatures",
    "verify_subtree_proof",
]

HEADER = b"overt/tlog-subtree-proof@v1"
"""The first line of every v1 subtree proof."""

_MAX_EXTRA_SIZE = 1 << 16
_MAX_HASHES = 63
_MAX_ORIGIN = 255  # tlog-cosignature encodes the origin with a one-byte length
_MAX_SIZE = MAX_NOTE_SIZE + 2 * _MAX_EXTRA_SIZE + 4096


@dataclass(frozen=True)
class SubtreeNote:
    """A subtree ``[start, end)`` of the log ``origin`` with its hash and (unverified) cosignatures.

    Raises:
        FormatError: on construction, an origin that is empty, longer than 255 bytes or
            not one line; a range that is not a subtree below 2^63; a hash not 32 bytes.
    """

    origin: str
    start: int
    end: int
    subtree_hash: bytes
    signatures: tuple[Signature, ...] = ()

    def __post_init__(self) -> None:
        raw = self.origin.encode("utf-8") if isinstance(self.origin, str) else b""
        if not 0 < len(raw) <= _MAX_ORIGIN or b"\n" in raw:
            raise FormatError("subtree note origin", "empty, over 255 bytes or several lines")
        if not is_valid_subtree(self.start, self.end) or self.end > MAX_TREE_SIZE:
            raise FormatError(
                "subtree note", "not a subtree below 2^63", f"[{self.start!r}, {self.end!r})"
            )
        if type(self.subtree_hash) is not bytes or len(self.subtree_hash) != 32:
            raise FormatError("subtree note hash", "not 32 bytes", repr(self.subtree_hash))

    @property
    def text(self) -> bytes:
        """The note text: origin, range and hash lines."""
        return (
            f"{self.origin}\nsubtree {self.start} {self.end}\n"
            f"{b64encode(self.subtree_hash)}\n".encode()
        )


def _parse_subtree_text(text: bytes) -> tuple[str, int, int, bytes]:
    lines = text.split(b"\n")
    if len(lines) != 4 or lines[3] != b"":
        raise FormatError("subtree note", "text is not origin, range and hash lines", text)
    origin_line, range_line, hash_line = lines[:3]
    fields = range_line.split(b" ")
    if len(fields) != 3 or fields[0] != b"subtree":
        raise FormatError("subtree note", "no 'subtree <start> <end>' line", range_line)
    start = parse_decimal(fields[1], "subtree start", MAX_TREE_SIZE)
    end = parse_decimal(fields[2], "subtree end", MAX_TREE_SIZE)
    subtree_hash = b64decode_strict(hash_line, "subtree hash", 32)
    return origin_line.decode("utf-8"), start, end, subtree_hash


def parse_subtree_note(data: bytes) -> SubtreeNote:
    """Parses a subtree note (signed note of origin, range, hash) without verifying it.

    Raises:
        FormatError: not a signed note, or its text is not exactly the three lines.
    """
    note = parse_note(data)
    origin, start, end, subtree_hash = _parse_subtree_text(note.text)
    return SubtreeNote(origin, start, end, subtree_hash, note.signatures)


def format_subtree_note(sn: SubtreeNote) -> bytes:
    """Encodes a subtree note; the exact inverse of :func:`parse_subtree_note`.

    Raises:
        FormatError: no signatures, or a malformed one.
    """
    return format_note(Note(text=sn.text, signatures=sn.signatures))


@dataclass(frozen=True)
class SubtreeProof:
    """A parsed, unverified subtree proof: entry ``index``, its path, the subtree note."""

    index: int
    hashes: tuple[bytes, ...]
    subtree: SubtreeNote
    extra: bytes | None = None


def parse_subtree_proof(data: bytes) -> SubtreeProof:
    """Parses a subtree proof (without verifying it).

    Raises:
        FormatError: oversized; wrong first line; an empty or malformed extra line; a
            missing or non-canonical index, or one outside the subtree; a hash line that
            is not the canonical base64 of 32 bytes; more than 63 hashes; or a subtree
            note that does not parse.
    """
    if len(data) > _MAX_SIZE:
        raise FormatError("subtree proof", f"larger than {_MAX_SIZE} bytes", data[:60])
    head, sep, rest = data.partition(b"\n\n")
    if not sep:
        raise FormatError("subtree proof", "no blank line before the subtree note", data[:80])
    lines = head.split(b"\n")
    if lines[0] != HEADER:
        raise FormatError("subtree proof", f"first line is not {HEADER.decode()}", lines[0])
    lines = lines[1:]
    extra = None
    if lines and lines[0].startswith(b"extra "):
        extra = b64decode_strict(lines[0][len(b"extra ") :], "subtree proof extra")
        if not extra or len(extra) > _MAX_EXTRA_SIZE:
            raise FormatError("subtree proof extra", "empty or too large", lines[0][:60])
        lines = lines[1:]
    if not lines or not lines[0].startswith(b"index "):
        raise FormatError("subtree proof", "no index line", head[:80])
    index = parse_decimal(lines[0][len(b"index ") :], "subtree proof index", MAX_TREE_SIZE - 1)
    if len(lines) - 1 > _MAX_HASHES:
        raise FormatError("subtree proof", f"more than {_MAX_HASHES} hashes")
    hashes = tuple(b64decode_strict(line, "subtree proof hash", 32) for line in lines[1:])
    subtree = parse_subtree_note(rest)
    if not subtree.start <= index < subtree.end:
        raise FormatError(
            "subtree proof", f"index {index} is not in [{subtree.start}, {subtree.end})"
        )
    return SubtreeProof(index, hashes, subtree, extra)


def format_subtree_proof(p: SubtreeProof) -> bytes:
    """Encodes a subtree proof; the exact inverse of :func:`parse_subtree_proof`.

    Raises:
        FormatError: a field :func:`parse_subtree_proof` would not read back as-is.
    """
    lines = [HEADER]
    if p.extra is not None:
        lines.append(b"extra " + b64encode(p.extra).encode("ascii"))
    lines.append(b"index %d" % p.index)
    lines.extend(b64encode(h).encode("ascii") for h in p.hashes)
    out = b"".join(line + b"\n" for line in lines) + b"\n" + format_subtree_note(p.subtree)
    if parse_subtree_proof(out) != p:
        raise FormatError("subtree proof", "does not round-trip", out[:80])
    return out


@dataclass(frozen=True)
class VerifiedSubtreeProof:
    """A subtree proof whose quorum of subtree cosignatures and inclusion proof verified."""

    proof: SubtreeProof
    leaf_hash: bytes
    cosigned_by: tuple[str, ...]


def verify_subtree_cosignatures(
    subtree: SubtreeNote, cosigners: Sequence[tuple[str, Verifier]]
) -> tuple[str, ...]:
    """The names of ``cosigners`` (``(name, key)``) whose subtree cosignature verifies.

    Signatures by other keys are ignored, as for any signed note.

    Raises:
        InvalidSignatureError: a known key's signature does not verify (or the key cannot
            sign subtrees, or the signature carries a time).
        FormatError: two signatures by one known key.
    """
    by_id = {(v.name, v.key_id): (name, v) for name, v in cosigners}
    seen: set[tuple[str, bytes]] = set()
    good: list[str] = []
    for sig in subtree.signatures:
        known = by_id.get((sig.name, sig.key_id))
        if known is None:
            continue
        if (sig.name, sig.key_id) in seen:
            raise FormatError("subtree note", "two signatures by one known key", sig.name)
        seen.add((sig.name, sig.key_id))
        name, verifier = known
        verify = getattr(verifier, "verify_subtree", None)
        if verify is None:
            raise InvalidSignatureError(verifier.name, verifier.key_id)
        verify(subtree.origin, subtree.start, subtree.end, subtree.subtree_hash, sig.signature)
        good.append(name)
    return tuple(good)


def verify_subtree_proof(
    proof: SubtreeProof | bytes,
    leaf_hash: bytes,
    policy: Policy,
    *,
    origin: str | None = None,
) -> VerifiedSubtreeProof:
    """Verifies a subtree proof for ``leaf_hash`` against ``policy``'s witness quorum.

    The subtree's origin must be ``origin`` if given, and the name of one of the
    policy's logs if it has any (a subtree cosignature is a statement about an origin).

    Raises:
        FormatError: a malformed proof, or a leaf hash that is not 32 bytes.
        OriginError: the subtree is of another log.
        InvalidSignatureError: a policy witness's subtree cosignature does not verify.
        PolicyError: the verified cosigners do not meet the policy's quorum (or it has none).
        ProofError: the inclusion proof does not lead to the cosigned subtree hash.
    """
    if isinstance(proof, bytes | bytearray | memoryview):
        proof = parse_subtree_proof(bytes(proof))
    if len(leaf_hash) != 32:
        raise FormatError("leaf hash", "not 32 bytes", leaf_hash)
    st = proof.subtree
    if origin is not None and st.origin != origin:
        raise OriginError(st.origin, origin)
    logs = sorted({log.verifier.name for log in policy.logs})
    if logs and st.origin not in logs:
        raise OriginError(st.origin, " or ".join(logs))
    names = verify_subtree_cosignatures(st, [(w.name, w.verifier) for w in policy.witnesses])
    if not policy.quorum_met(names):
        raise PolicyError(
            f"subtree [{st.start}, {st.end}) of {st.origin}: cosigned by"
            f" {', '.join(names) or 'no policy witness'}, which does not meet the quorum"
        )
    verify_subtree_inclusion(
        leaf_hash, proof.index, st.start, st.end, proof.hashes, st.subtree_hash
    )
    return VerifiedSubtreeProof(proof, leaf_hash, names)
