"""The gate parses each envelope of a bundle once; never an envelope for other bytes.

``parse_bundle`` keeps the envelope it formatted each entry from, beside that very bytes
object, and the gate (overt.gate.verify, overt.gate.source) reuses it instead of parsing the
entry again. The entry is what is hashed into the log: an envelope must never be used for
any other bytes than its own.
"""

from __future__ import annotations

import dataclasses

from overt.formats.checkpoint import Checkpoint, sign_checkpoint
from overt.formats.dsse import parse_envelope
from overt.formats.merkle import MemoryTree, leaf_hash
from overt.formats.note import Ed25519Signer
from overt.formats.proof import TlogProof
from overt.formats.statement import Release
from overt.publish.bundle import Bundle, LoggedEntry, format_bundle, parse_bundle
from overt.publish.keys import generate_publisher_key
from overt.publish.publisher import Publication, make_entry


def _bundle() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _, signer = generate_publisher_key("vendor.example/release")
    entry = make_entry(signer, Publication("a.zip", "ab" * 32, Release("a", "1.0", "stable", "x")))
    other = make_entry(signer, Publication("b.zip", "cd" * 32, Release("a", "1.1", "stable", "x")))
    tree = MemoryTree()
    tree.append(leaf_hash(entry))
    tree.append(leaf_hash(other))
    log = Ed25519Signer("log.example/x", Ed25519PrivateKey.generate())
    note = sign_checkpoint(Checkpoint(log.name, 2, tree.root()), log)
    proof = TlogProof(0, tuple(tree.inclusion_proof(0)), note)
    logged = (LoggedEntry(other, 1, tuple(tree.inclusion_proof(1))),)
    return format_bundle(Bundle(entry, proof, (), logged)), other


def test_parsed_envelopes_are_reused_and_equal_a_fresh_parse() -> None:
    data, _ = _bundle()
    bundle = parse_bundle(data)
    assert bundle.parsed is not None and bundle.envelope() is bundle.parsed[1]
    assert bundle.envelope() == parse_envelope(bundle.entry)
    att = bundle.attestations[0]
    assert att.parsed is not None and att.envelope() is att.parsed[1]
    assert att.envelope() == parse_envelope(att.entry)
    assert bundle == dataclasses.replace(bundle, parsed=None)  # not part of equality


def test_a_swapped_entry_is_never_checked_as_the_envelope_of_other_bytes() -> None:
    data, other = _bundle()
    bundle = parse_bundle(data)
    swapped = dataclasses.replace(bundle, entry=other)  # keeps the old parsed envelope
    assert swapped.envelope() == parse_envelope(other) != bundle.envelope()
    att = dataclasses.replace(bundle.attestations[0], entry=bytes(bundle.entry))
    assert att.envelope() == parse_envelope(bundle.entry)
    # Equal bytes are not enough either: only the very object parse_bundle formatted.
    copy = dataclasses.replace(bundle, entry=bytes(bytearray(bundle.entry)))
    assert copy.parsed is not None and copy.entry is not copy.parsed[0]
