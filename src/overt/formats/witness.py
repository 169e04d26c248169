"""The wire formats of the witness protocol (c2sp.org/tlog-witness@v1.0.0, add-checkpoint, sign-subtree).

Request body of ``POST <submission prefix>/add-checkpoint``::

    body       = old-line *proof-line LF checkpoint
    old-line   = "old" SP size LF         ; size: "0" / %x31-39 *DIGIT, < 2^63
    proof-line = base64(hash) LF          ; a 32-byte hash, at most 63 lines
    checkpoint = signed note              ; c2sp.org/tlog-checkpoint, any signatures

Example (the spec's; the proof runs from size 20852014 to the checkpoint's size)::

    old 20852014
    PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
    jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
    5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
    /6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

    — example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=

The reply is either ``200`` with one or more note signature lines (the
witness's cosignatures on the checkpoint, :func:`parse_cosignature_lines`), or
``409 Conflict`` with ``Content-Type: text/x.tlog.size`` and the size of the
latest checkpoint the witness cosigned for that origin (:func:`parse_size_body`)::

    20852014

The checkpoint part is kept as bytes here: parsing and verifying it is the
witness's job (:mod:`overt.witness.core`), under its own error codes. This
module only checks that it is a syntactically valid signed note. Parsing is
strict and canonical; ``format_*`` is the exact inverse of ``parse_*``.

Request body of the optional ``POST <submission prefix>/sign-subtree``: a subtree
(draft-ietf-plants-merkle-tree-certs §4, :mod:`overt.formats.subtree`), its hash, a
subtree consistency proof to a checkpoint, and that checkpoint carrying the
witness's own cosignature::

    body         = range-line hash-line *proof-line LF checkpoint
    range-line   = "subtree" SP start SP end LF   ; canonical decimals, [start, end) a subtree
    hash-line    = base64(hash) LF                ; the subtree's 32-byte Merkle tree hash
    proof-line   = base64(hash) LF                ; at most 63 lines

    subtree 8 13
    mbsQCg+dEIMGlpqeGgk94JutQwKKS2Lo5IuDhKmDjiU=
    CD82D2LDm0phY0+xKbHyZfq3Hw21lVkuV7Zis5EFg0k=

    example.com/behind-the-sofa
    14
    ...

The reply is ``200`` with subtree cosignature lines (ML-DSA-44, timestamp zero;
:func:`parse_cosignature_lines`), or a status the spec names.

Spec: https://c2sp.org/tlog-witness@v1.0.0. Versioning: this module follows
v1.0.0, both calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from overt.errors import FormatError
from overt.formats.checkpoint import MAX_TREE_SIZE
from overt.formats.merkle import HASH_SIZE
from overt.formats.note import (
    MAX_NOTE_SIZE,
    Note,
    Signature,
    _format_signature_line,
    _parse_signature_line,
    parse_note,
)
from overt.formats.strict import b64decode_strict, b64encode, parse_decimal
from overt.formats.subtree import is_valid_subtree

__all__ = [
    "CONTENT_TYPE_SIZE",
    "MAX_PROOF_LINES",
    "MAX_REQUEST_SIZE",
    "MAX_SUBTREE_REQUEST_SIZE",
    "AddCheckpointRequest",
    "SignSubtreeRequest",
    "format_add_checkpoint",
    "format_cosignature_lines",
    "format_sign_subtree",
    "format_size_body",
    "parse_add_checkpoint",
    "parse_cosignature_lines",
    "parse_sign_subtree",
    "parse_size_body",
]

CONTENT_TYPE_SIZE = "text/x.tlog.size"
"""Content type of the ``409 Conflict`` body."""

MAX_PROOF_LINES = 63
"""Most consistency proof lines a request may carry (the spec's limit)."""

_MAX_HEAD = len("old \n") + len(str(MAX_TREE_SIZE)) + MAX_PROOF_LINES * 45 + 1
MAX_REQUEST_SIZE = _MAX_HEAD + MAX_NOTE_SIZE
"""Largest request body accepted, in bytes: the longest header and the largest note."""

_MAX_SUBTREE_HEAD = (
    len("subtree  \n") + 2 * len(str(MAX_TREE_SIZE)) + (1 + MAX_PROOF_LINES) * 45 + 1
)
MAX_SUBTREE_REQUEST_SIZE = _MAX_SUBTREE_HEAD + MAX_NOTE_SIZE
"""Largest sign-subtree request body accepted, in bytes."""

_MAX_REPLY = 64 * 1024


@dataclass(frozen=True)
class AddCheckpointRequest:
    """An add-checkpoint request: old size, consistency proof, signed checkpoint note.

    ``checkpoint`` is the note exactly as sent and ``note`` its parse: nothing in
    either is trusted yet. Construction checks every field.

    Raises:
        FormatError: on construction, a size outside [0, 2^63), more than 63 proof
            hashes, a hash that is not 32 bytes, or a checkpoint that is not a signed note.
    """

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes
    note: Note = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if type(self.old_size) is not int or not 0 <= self.old_size <= MAX_TREE_SIZE:
            raise FormatError(
                "add-checkpoint old size", "not an int in [0, 2^63)", repr(self.old_size)
            )
        _check_hashes(self.proof, "add-checkpoint request")
        object.__setattr__(self, "note", parse_note(self.checkpoint))


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    if len(proof) > MAX_PROOF_LINES:
        raise FormatError(what, f"more than {MAX_PROOF_LINES} proof lines")
    for digest in proof:
        if type(digest) is not bytes or len(digest) != HASH_SIZE:
            raise FormatError("consistency proof hash", f"not {HASH_SIZE} bytes", repr(digest))


@dataclass(frozen=True)
class SignSubtreeRequest:
    """A sign-subtree request: subtree range and hash, subtree consistency proof, checkpoint.

    ``[start, end)`` is a subtree (draft-ietf-plants-merkle-tree-certs §4.1);
    ``checkpoint`` is the note as sent and ``note`` its parse. Whether ``end`` fits
    the checkpoint, the proof holds and the witness signed the checkpoint is the
    witness's decision (:func:`overt.witness.core.verify_subtree_request`).

    Raises:
        FormatError: on construction, a range that is not a subtree below 2^63, a hash
            that is not 32 bytes, more than 63 proof hashes, or a checkpoint that is not
            a signed note.
    """

    start: int
    end: int
    subtree_hash: bytes
    proof: tuple[bytes, ...]
    checkpoint: bytes
    note: Note = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not is_valid_subtree(self.start, self.end) or self.end > MAX_TREE_SIZE:
            raise FormatError(
                "sign-subtree range",
                "not a subtree (0 <= start < end < 2^63, start a multiple of BIT_CEIL(end - start))",
                f"[{self.start!r}, {self.end!r})",
            )
        if type(self.subtree_hash) is not bytes or len(self.subtree_hash) != HASH_SIZE:
            raise FormatError("subtree hash", f"not {HASH_SIZE} bytes", repr(self.subtree_hash))
        _check_hashes(self.proof, "sign-subtree request")
        object.__setattr__(self, "note", parse_note(self.checkpoint))


def _parse_size(text: bytes, what: str) -> int:
    return parse_decimal(text, what, MAX_TREE_SIZE)


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parses an add-checkpoint request body.

    Raises:
        FormatError: oversized, no ``old`` line, a non-canonical size, a proof line that
            is not the canonical base64 of 32 bytes, more than 63 proof lines, no empty
            line before the checkpoint, or a checkpoint that is not a signed note.
    """
    if len(body) > MAX_REQUEST_SIZE:
        raise FormatError("add-checkpoint request", f"larger than {MAX_REQUEST_SIZE} bytes")
    # Proof lines are never empty, so the first empty line ends the header.
    split = body.find(b"\n\n", 0, _MAX_HEAD + 1)
    if split < 0:
        raise FormatError(
            "add-checkpoint request", "no empty line within 63 proof lines", body[:80]
        )
    lines = body[:split].split(b"\n")
    old = lines[0]
    if not old.startswith(b"old "):
        raise FormatError("add-checkpoint request", "does not start with an old size line", old)
    old_size = _parse_size(old[4:], "add-checkpoint old size")
    proof = _parse_hash_lines(lines[1:], "add-checkpoint request")
    return AddCheckpointRequest(old_size, tuple(proof), body[split + 2 :])


def format_add_checkpoint(request: AddCheckpointRequest) -> bytes:
    """Encodes an add-checkpoint request body; the exact inverse of :func:`parse_add_checkpoint`.

    (Every field was checked when ``request`` was built.)
    """
    head = [f"old {request.old_size}\n", *(b64encode(h) + "\n" for h in request.proof), "\n"]
    return "".join(head).encode("ascii") + request.checkpoint


def _parse_hash_lines(lines: Sequence[bytes], what: str) -> list[bytes]:
    if len(lines) > MAX_PROOF_LINES:
        raise FormatError(what, f"more than {MAX_PROOF_LINES} proof lines")
    out = []
    for line in lines:
        digest = b64decode_strict(line, "consistency proof line")
        if len(digest) != HASH_SIZE:
            raise FormatError("consistency proof line", f"not {HASH_SIZE} bytes", line)
        out.append(digest)
    return out


def parse_sign_subtree(body: bytes) -> SignSubtreeRequest:
    """Parses a sign-subtree request body.

    Raises:
        FormatError: oversized; no ``subtree`` line, or one whose start and end are not
            canonical decimals separated by single spaces, or not a subtree; a hash or
            proof line that is not the canonical base64 of 32 bytes; more than 63 proof
            lines; no empty line before the checkpoint; or a checkpoint that is not a
            signed note.
    """
    what = "sign-subtree request"
    if len(body) > MAX_SUBTREE_REQUEST_SIZE:
        raise FormatError(what, f"larger than {MAX_SUBTREE_REQUEST_SIZE} bytes")
    split = body.find(b"\n\n", 0, _MAX_SUBTREE_HEAD + 1)
    if split < 0:
        raise FormatError(what, "no empty line within 63 proof lines", body[:80])
    lines = body[:split].split(b"\n")
    head = lines[0].split(b" ")
    if len(head) != 3 or head[0] != b"subtree":
        raise FormatError(what, "does not start with a 'subtree <start> <end>' line", lines[0])
    start = _parse_size(head[1], "subtree start")
    end = _parse_size(head[2], "subtree end")
    if len(lines) < 2:
        raise FormatError(what, "no subtree hash line", body[:80])
    subtree_hash = b64decode_strict(lines[1], "subtree hash line")
    if len(subtree_hash) != HASH_SIZE:
        raise FormatError("subtree hash line", f"not {HASH_SIZE} bytes", lines[1])
    proof = _parse_hash_lines(lines[2:], what)
    return SignSubtreeRequest(start, end, subtree_hash, tuple(proof), body[split + 2 :])


def format_sign_subtree(request: SignSubtreeRequest) -> bytes:
    """Encodes a sign-subtree request body; the exact inverse of :func:`parse_sign_subtree`."""
    head = [
        f"subtree {request.start} {request.end}\n",
        b64encode(request.subtree_hash) + "\n",
        *(b64encode(h) + "\n" for h in request.proof),
        "\n",
    ]
    return "".join(head).encode("ascii") + request.checkpoint


def parse_size_body(body: bytes) -> int:
    """Parses a ``text/x.tlog.size`` body: a canonical decimal size and a newline.

    Raises:
        FormatError: anything else.
    """
    if not body.endswith(b"\n"):
        raise FormatError("tlog size", "does not end in a newline", body[:40])
    return _parse_size(body[:-1], "tlog size")


def format_size_body(size: int) -> bytes:
    """Encodes a ``text/x.tlog.size`` body; the inverse of :func:`parse_size_body`.

    Raises:
        FormatError: a size outside [0, 2^63).
    """
    if type(size) is not int or not 0 <= size <= MAX_TREE_SIZE:
        raise FormatError("tlog size", "not an int in [0, 2^63)", repr(size))
    return b"%d\n" % size


def parse_cosignature_lines(body: bytes) -> tuple[Signature, ...]:
    """Parses a 200 reply: one or more note signature lines, each ending in a newline.

    Nothing is verified: append the lines to the checkpoint and open the note with
    the witness keys you trust (c2sp.org/tlog-witness says how).

    Raises:
        FormatError: empty, oversized, no final newline, or a malformed line.
    """
    if not body or len(body) > _MAX_REPLY:
        raise FormatError("cosignature lines", "empty or oversized", body[:60])
    if not body.endswith(b"\n"):
        raise FormatError("cosignature lines", "no final newline", body[-60:])
    try:
        lines = body[:-1].decode("utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise FormatError("cosignature lines", "not valid UTF-8", body[:60]) from err
    return tuple(_parse_signature_line(line.encode("utf-8")) for line in lines)


def format_cosignature_lines(signatures: Sequence[Signature]) -> bytes:
    """Encodes signature lines; the inverse of :func:`parse_cosignature_lines`.

    Raises:
        FormatError: no signature, or a malformed one.
    """
    if not signatures:
        raise FormatError("cosignature lines", "no signature")
    return b"".join(_format_signature_line(s) for s in signatures)
