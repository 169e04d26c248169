"""The ``.overt`` bundle: everything an endpoint needs to check a publication offline.

``overt publish FILE`` writes ``FILE.overt``, one JSON object (UTF-8, members
sorted, no insignificant whitespace, one final newline)::

    {
      "mediaType":    "application/vnd.overt.bundle.v1+json",
      "envelope":     {DSSE envelope of the publication's in-toto statement},
      "proof":        "c2sp.org/tlog-proof@v1\\nindex N\\n<hashes>\\n\\n<witnessed checkpoint>",
      "keysets":      [{"envelope": {...}, "index": N, "hashes": [base64, ...]}, ...],
      "attestations": [{"envelope": {...}, "index": N, "hashes": [base64, ...]}, ...],
      "consistency":  [{"old_size": M, "new_size": N, "hashes": [base64, ...]}, ...],
      "source":       "overt-source-snapshot/v1\n..."          (optional)
      "keyset_checkpoint": "<checkpoint of the key-set log, with cosignatures>"  (optional)
      "subtree_proof": "overt/tlog-subtree-proof@v1\nindex N\n..."     (optional)
    }

- The log entry of a publication is the canonical serialization of its
  envelope (:func:`overt.formats.dsse.format_envelope`); its leaf hash is
  RFC 6962's ``SHA-256(0x00 || entry)``.
- ``proof`` is a c2sp.org/tlog-proof: the entry's index, its inclusion proof
  and the checkpoint (with witness cosignatures) it is proven against.
- ``keysets`` is the publisher's key-set chain (:mod:`overt.publish.keyset`),
  oldest first; each entry is proven included in the *same* checkpoint.
- ``attestations`` are other logged envelopes about the same artifact (auditor
  sign-offs on a rule bundle), proven included in the same checkpoint.
- ``source`` (optional) is the text of the source snapshot the release was built
  from (:mod:`overt.formats.source_snapshot`): too large for a log entry, it is
  trusted only through its SHA-256, which the publisher's logged SLSA provenance
  attestation names (``overt publish --source``; checked by :mod:`overt.gate.source`).
- ``keyset_checkpoint`` (optional): a witnessed checkpoint of the publisher's
  key-set log (docs/adr/0012-key-sets-in-their-own-witnessed-log.md), whose
  entries are exactly ``keysets``, in order: an endpoint whose policy names that
  log recomputes its root from them, which proves that the last one is the log's
  last entry. ``keysets`` keep their proofs in ``proof``'s checkpoint (the main
  log holds them too), so endpoints without the key-set log check them as before.
- ``subtree_proof`` (optional): the publication's entry proven against a
  witnessed 256-entry subtree (:mod:`overt.formats.subtree_proof`, ADR 0013),
  for the same index as ``proof``; added once the range is complete and
  cosigned. With a ``keyset_log`` in its policy, the gate proves inclusion by
  it and takes freshness from ``keyset_checkpoint`` (:mod:`overt.gate.verify`).
- ``consistency`` optionally carries RFC 6962 consistency proofs between the
  proof's checkpoint and other tree sizes, so an offline client whose last
  checkpoint has one of those sizes needs no network.

Parsing is strict: exactly these members, the exact media type, canonical
base64 hashes of 32 bytes, non-negative integer sizes, a well-formed tlog-proof,
at most :data:`MAX_BUNDLE_SIZE` bytes. Nothing in a bundle is trusted until
:mod:`overt.gate` has verified it. ``v1`` in the media type is the version; a
change that an old reader would misread gets ``v2``.
"""

from __future__ import annotations

import binascii
import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from overt.errors import FormatError
from overt.formats.dsse import (
    Envelope,
    envelope_from_json,
    envelope_to_json,
    format_envelope,
    parse_envelope,
)
from overt.formats.note import parse_note
from overt.formats.proof import HEADER, TlogProof, format_proof, parse_proof
from overt.formats.strict import (
    dump_json_canonical,
    json_b64,
    json_int,
    json_list,
    json_str,
    load_json,
)
from overt.formats.subtree_proof import parse_subtree_proof

__all__ = [
    "MAX_BUNDLE_SIZE",
    "MEDIA_TYPE",
    "Bundle",
    "ConsistencyProof",
    "LoggedEntry",
    "format_bundle",
    "parse_bundle",
]

MEDIA_TYPE = "application/vnd.overt.bundle.v1+json"
MAX_BUNDLE_SIZE = 8 << 20
_MAX_LIST = 256
_MAX_HASHES = 128
_MEMBERS = frozenset({"mediaType", "envelope", "proof", "keysets", "attestations", "consistency"})


def _fail(reason: str, data: object = "") -> FormatError:
    return FormatError("overt bundle", reason, data if isinstance(data, str) else repr(data)[:80])


@dataclass(frozen=True)
class LoggedEntry:
    """A logged envelope (``entry``, canonical bytes) and its inclusion proof."""

    entry: bytes
    index: int
    hashes: tuple[bytes, ...]
    #: The envelope ``entry`` is the canonical form of, beside that very bytes object: what
    #: :func:`parse_bundle` decoded it from, or what ``publish`` formatted it from.
    parsed: tuple[bytes, Envelope] | None = field(default=None, compare=False, repr=False)

    def envelope(self) -> Envelope:
        """``entry`` as an envelope: see :func:`_entry_envelope`."""
        return _entry_envelope(self.entry, self.parsed)


def _entry_envelope(entry: bytes, parsed: tuple[bytes, Envelope] | None) -> Envelope:
    """``entry`` parsed, or the envelope :func:`parse_bundle` made it from (not parsed twice).

    The envelope is used only beside the very bytes object it was formatted into (an
    identity check, not equality): a copy with other entry bytes (``dataclasses.replace``)
    is parsed afresh, so the envelope checked is always the one hashed into the log.

    Raises:
        FormatError: ``entry`` is not a DSSE envelope.
    """
    if parsed is not None and parsed[0] is entry:
        return parsed[1]
    return parse_envelope(entry)


@dataclass(frozen=True)
class ConsistencyProof:
    """An RFC 6962 consistency proof from ``old_size`` to ``new_size``."""

    old_size: int
    new_size: int
    hashes: tuple[bytes, ...]


@dataclass(frozen=True)
class Bundle:
    """A parsed, unverified bundle."""

    entry: bytes
    proof: TlogProof
    keysets: tuple[LoggedEntry, ...] = ()
    attestations: tuple[LoggedEntry, ...] = ()
    consistency: tuple[ConsistencyProof, ...] = ()
    #: The source snapshot text (optional; see the module notes), trusted only by digest.
    source: bytes = b""
    #: See :attr:`LoggedEntry.parsed`.
    parsed: tuple[bytes, Envelope] | None = field(default=None, compare=False, repr=False)
    #: The key-set log's witnessed checkpoint (optional; see the module notes).
    keyset_checkpoint: bytes = b""
    #: The publication's overt/tlog-subtree-proof@v1 text (optional; see the module notes).
    subtree_proof: bytes = b""

    def envelope(self) -> Envelope:
        """``entry`` as an envelope: see :func:`_entry_envelope`."""
        return _entry_envelope(self.entry, self.parsed)


_WHAT = "overt bundle"


def _int(value: object, what: str) -> int:
    return json_int(value, _WHAT, what)


#: The canonical base64 of 32 bytes: 43 characters, the last with its 2 unused bits zero,
#: and one "=" (what json_b64(..., 32) accepts, spelled as one pattern).
_HASH_B64 = r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]="
_HASHES_B64 = re.compile(rf"(?:{_HASH_B64}(?:,{_HASH_B64})*)?")


def _hashes(value: object) -> tuple[bytes, ...]:
    items = json_list(value, _WHAT, "hashes", max_items=_MAX_HASHES)
    # The common case in one match and C-level decodes (a bundle carries a few hundred
    # hashes; one strict decode each was a third of parsing it); anything else goes
    # through json_b64, which says what is wrong.
    try:
        joined = ",".join(items)
    except TypeError:  # an item that is not a string
        joined = "-"
    # Each item 44 characters, so that the separators the pattern sees are the join's
    # (an item "A...=,A...=" must not pass as two hashes).
    if _HASHES_B64.fullmatch(joined) and len(joined) == 45 * len(items) - 1:
        return tuple(map(binascii.a2b_base64, items))
    return tuple(json_b64(item, _WHAT, "a hash", 32) for item in items)


def _list(value: object, what: str) -> list[Any]:
    return json_list(value, _WHAT, what, max_items=_MAX_LIST)


def _members(obj: object, members: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or set(obj) != members:
        raise _fail(f"{what} does not have exactly the members {sorted(members)}", obj)
    return obj


def _entry(obj: object) -> tuple[bytes, Envelope]:
    envelope = envelope_from_json(obj)
    if all(s.keyid is not None for s in envelope.signatures):
        # envelope_from_json accepted exactly the members and the canonical base64 that
        # format_envelope writes, so obj's canonical dump is the entry: the payload is not
        # encoded again (a review's payload is ~15 KB of base64; tests/gate/test_bundle.py
        # checks the equality on every bundle it parses).
        return dump_json_canonical(obj), envelope
    return format_envelope(envelope), envelope


def _logged(obj: object, what: str) -> LoggedEntry:
    item = _members(obj, {"envelope", "index", "hashes"}, what)
    entry, envelope = _entry(item["envelope"])
    return LoggedEntry(
        entry, _int(item["index"], f"{what} index"), _hashes(item["hashes"]), (entry, envelope)
    )


def parse_bundle(data: bytes) -> Bundle:
    """Parse a ``.overt`` bundle (without verifying anything).

    Raises:
        FormatError: anything that is not exactly the documented format.
    """
    raw = load_json(data, _WHAT, MAX_BUNDLE_SIZE)
    optional = (
        {"source", "keyset_checkpoint", "subtree_proof"} & set(raw)
        if isinstance(raw, dict)
        else set()
    )
    obj = _members(raw, set(_MEMBERS) | optional, "the bundle")
    if obj["mediaType"] != MEDIA_TYPE:
        raise _fail(f"mediaType is not {MEDIA_TYPE}", obj["mediaType"])
    proof = parse_proof(json_str(obj["proof"], _WHAT, "proof").encode("utf-8"))
    consistency = []
    for item in _list(obj["consistency"], "consistency"):
        c = _members(item, {"old_size", "new_size", "hashes"}, "a consistency proof")
        consistency.append(
            ConsistencyProof(
                _int(c["old_size"], "old_size"),
                _int(c["new_size"], "new_size"),
                _hashes(c["hashes"]),
            )
        )
    entry, envelope = _entry(obj["envelope"])
    keysets = tuple(_logged(k, "a key set") for k in _list(obj["keysets"], "keysets"))
    keyset_checkpoint = b""
    if "keyset_checkpoint" in optional:
        keyset_checkpoint = _note(obj["keyset_checkpoint"])
    subtree_proof = b""
    if "subtree_proof" in optional:
        subtree_proof = _subtree_proof(obj["subtree_proof"], proof.index)
    return Bundle(
        entry=entry,
        proof=proof,
        keysets=keysets,
        attestations=tuple(
            _logged(a, "an attestation") for a in _list(obj["attestations"], "attestations")
        ),
        consistency=tuple(consistency),
        source=json_str(obj["source"], _WHAT, "source").encode("utf-8")
        if "source" in optional
        else b"",
        parsed=(entry, envelope),
        keyset_checkpoint=keyset_checkpoint,
        subtree_proof=subtree_proof,
    )


def _subtree_proof(value: object, index: int) -> bytes:
    """A subtree proof's text, parsed strictly here (its cosignatures checked by the gate).

    Raises:
        FormatError: malformed, or for another index than the bundle's ``proof``.
    """
    text = json_str(value, _WHAT, "subtree_proof").encode("utf-8")
    if parse_subtree_proof(text).index != index:
        raise _fail("subtree_proof is for another entry than proof", text[:80].decode())
    return text


def _note(value: object) -> bytes:
    """A signed note's text: parsed (strictly) here, its signatures checked by the gate."""
    text = json_str(value, _WHAT, "keyset_checkpoint").encode("utf-8")
    parse_note(text)
    return text


def _b64(hashes: Sequence[bytes]) -> list[str]:
    # strict.b64encode's spelling, without its two Python calls per hash (a bundle has ~15).
    return [binascii.b2a_base64(h, newline=False).decode("ascii") for h in hashes]


def _envelope_json(entry: bytes, parsed: tuple[bytes, Envelope] | None = None) -> dict[str, Any]:
    """The envelope object of a log entry, which must be a canonical DSSE envelope.

    With ``parsed`` for this very ``entry`` object (what :func:`parse_bundle` decoded it
    from, or :func:`overt.publish.publisher.publish` formatted it from), the entry is
    that envelope's canonical form by construction: its JSON is made from it directly,
    not decoded, checked and encoded again (most of formatting a bundle).
    """
    if parsed is not None and parsed[0] is entry:
        return envelope_to_json(parsed[1])
    try:
        obj = json.loads(entry)
    except ValueError as err:
        raise _fail("a log entry is not JSON", entry[:60].decode("utf-8", "replace")) from err
    if dump_json_canonical(envelope_to_json(envelope_from_json(obj))) != entry:
        raise _fail(
            "a log entry is not a canonical DSSE envelope", entry[:60].decode("utf-8", "replace")
        )
    return obj  # type: ignore[no-any-return]


def _logged_json(e: LoggedEntry) -> dict[str, Any]:
    return {
        "envelope": _envelope_json(e.entry, e.parsed),
        "index": e.index,
        "hashes": _b64(e.hashes),
    }


@functools.lru_cache(maxsize=8)
def _checked_checkpoint(checkpoint: bytes) -> bytes:
    """``checkpoint`` once it is known to format as a tlog-proof (cached: a batch shares one)."""
    format_proof(TlogProof(0, (), checkpoint))
    return checkpoint


def _proof_text(p: TlogProof) -> str:
    """``format_proof(p)``, checking the shared checkpoint once per batch, not per bundle.

    The layout is c2sp.org/tlog-proof's; a test asserts byte equality with
    :func:`overt.formats.proof.format_proof` for every shape (extra, no hashes).
    """
    if (
        type(p.index) is not int
        or not 0 <= p.index < 1 << 63
        or any(len(h) != 32 for h in p.hashes)
    ):
        return format_proof(p).decode("utf-8")  # let it raise the precise FormatError
    lines = [HEADER.decode("ascii")]
    if p.extra is not None:
        return format_proof(p).decode("utf-8")
    lines.append(f"index {p.index}")
    lines += _b64(p.hashes)
    return (
        "".join(line + "\n" for line in lines)
        + "\n"
        + _checked_checkpoint(p.checkpoint).decode("utf-8")
    )


def format_bundle(bundle: Bundle) -> bytes:
    """Serialize ``bundle`` canonically (the inverse of :func:`parse_bundle`).

    Raises:
        FormatError: an entry that is not a canonical DSSE envelope, or a
            malformed proof.
    """
    obj = {
        "mediaType": MEDIA_TYPE,
        "envelope": _envelope_json(bundle.entry, bundle.parsed),
        "proof": _proof_text(bundle.proof),
        "keysets": [_logged_json(k) for k in bundle.keysets],
        "attestations": [_logged_json(a) for a in bundle.attestations],
        "consistency": [
            {"old_size": c.old_size, "new_size": c.new_size, "hashes": _b64(c.hashes)}
            for c in bundle.consistency
        ],
    }
    if bundle.source:
        obj["source"] = bundle.source.decode("utf-8")
    if bundle.keyset_checkpoint:
        obj["keyset_checkpoint"] = _note(bundle.keyset_checkpoint.decode("utf-8")).decode("utf-8")
    if bundle.subtree_proof:
        text = bundle.subtree_proof.decode("utf-8")
        obj["subtree_proof"] = _subtree_proof(text, bundle.proof.index).decode("utf-8")
    return dump_json_canonical(obj) + b"\n"
