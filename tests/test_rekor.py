"""Real Sigstore Rekor bundles: signed-note checkpoints and RFC 6962 inclusion proofs.

Findings, checked by the tests below:

* Rekor v2 (tiles, staging ``log2025-alpha1``) signs its checkpoints as a standard
  c2sp.org/signed-note Ed25519 key: key name = origin = the log's host name, key ID =
  SHA-256(name || 0x0A || 0x01 || public key)[:4]. Its trusted-root ``logId`` is the
  *full* 32-byte SHA-256 of that same input, so the note key ID is ``logId[:4]``.
* Rekor v1 (production) signs checkpoints with ECDSA P-256 over the note text; its key
  name ``rekor.sigstore.dev`` is *not* the origin line (``rekor.sigstore.dev - <tree ID>``)
  and its key ID is SHA-256(DER SubjectPublicKeyInfo)[:4] (the ``logId`` prefix), like
  signed-note type 0x02. overt does not support that type; a test-local verifier checks it,
  and :func:`open_checkpoint` rightly refuses it (key name != origin).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from overt.errors import FormatError, InvalidSignatureError, OvertError, ProofError, UnknownKeyError
from overt.formats.checkpoint import (
    OriginError,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
)
from overt.formats.merkle import leaf_hash, verify_inclusion
from overt.formats.note import Ed25519Verifier, key_id, open_note, parse_vkey
from overt.formats.proof import TlogProof, format_proof, parse_proof, verify_proof

V2_ORIGIN = "log2025-alpha1.rekor.sigstage.dev"


def _load(reference: Path, name: str) -> Any:
    return json.loads((reference / "vectors/rekor" / name).read_text("utf-8"))


def _entry(bundle: Any) -> Any:
    (entry,) = bundle["verificationMaterial"]["tlogEntries"]
    return entry


def _log_key(root: Any, log_id: str) -> Any:
    (tlog,) = [t for t in root["tlogs"] if t["logId"]["keyId"] == log_id]
    return tlog


def _b64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _bit_flips(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        for bit in range(8):
            yield data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


# --- Rekor v2: Ed25519 signed-note checkpoint ---------------------------------------------


@pytest.fixture(scope="module")
def v2(reference: Path) -> tuple[Any, Ed25519Verifier]:
    entry = _entry(_load(reference, "staging-rekor-v2.txt.sigstore.json"))
    tlog = _log_key(_load(reference, "staging_trusted_root.json"), entry["logId"]["keyId"])
    assert tlog["publicKey"]["keyDetails"] == "PKIX_ED25519"
    public = serialization.load_der_public_key(_b64(tlog["publicKey"]["rawBytes"]))
    assert isinstance(public, Ed25519PublicKey)
    assert tlog["baseUrl"] == "https://" + V2_ORIGIN
    return entry, Ed25519Verifier(V2_ORIGIN, public)


def test_v2_key_id_is_the_signed_note_key_id(v2: tuple[Any, Ed25519Verifier]) -> None:
    entry, verifier = v2
    raw = verifier.public_key.public_bytes_raw()
    log_id = _b64(entry["logId"]["keyId"])
    assert log_id == hashlib.sha256(V2_ORIGIN.encode() + b"\n\x01" + raw).digest()
    assert verifier.key_id == key_id(V2_ORIGIN, b"\x01" + raw) == log_id[:4]
    assert parse_vkey(verifier.vkey) == verifier


def test_v2_checkpoint_verifies(v2: tuple[Any, Ed25519Verifier]) -> None:
    entry, verifier = v2
    proof = entry["inclusionProof"]
    envelope = proof["checkpoint"]["envelope"].encode()
    signed = open_checkpoint(envelope, verifier, V2_ORIGIN)
    assert signed.checkpoint.origin == V2_ORIGIN
    assert signed.checkpoint.size == int(proof["treeSize"]) == 646
    assert signed.checkpoint.root_hash == _b64(proof["rootHash"])
    assert signed.note.signatures[0].key_id == verifier.key_id


def test_v2_checkpoint_refused_by_other_staging_keys(reference: Path, v2: tuple[Any, Any]) -> None:
    entry, _ = v2
    envelope = entry["inclusionProof"]["checkpoint"]["envelope"].encode()
    root = _load(reference, "staging_trusted_root.json")
    others = [t for t in root["tlogs"] if t["publicKey"]["keyDetails"] == "PKIX_ED25519"]
    others = [t for t in others if t["logId"]["keyId"] != entry["logId"]["keyId"]]
    assert len(others) == 2
    for tlog in others:
        public = serialization.load_der_public_key(_b64(tlog["publicKey"]["rawBytes"]))
        assert isinstance(public, Ed25519PublicKey)
        # even under the right name, another key is not the log's key
        with pytest.raises(UnknownKeyError):
            open_checkpoint(envelope, Ed25519Verifier(V2_ORIGIN, public))


def test_v2_inclusion_proof(v2: tuple[Any, Ed25519Verifier]) -> None:
    entry, verifier = v2
    p = entry["inclusionProof"]
    leaf = leaf_hash(_b64(entry["canonicalizedBody"]))
    hashes = [_b64(h) for h in p["hashes"]]
    root = open_checkpoint(p["checkpoint"]["envelope"].encode(), verifier).checkpoint.root_hash
    verify_inclusion(leaf, int(p["logIndex"]), int(p["treeSize"]), hashes, root)
    # as a c2sp.org/tlog-proof, end to end
    proof = TlogProof(int(p["logIndex"]), tuple(hashes), p["checkpoint"]["envelope"].encode())
    encoded = format_proof(proof)
    assert parse_proof(encoded) == proof
    verified = verify_proof(parse_proof(encoded), leaf, verifier, V2_ORIGIN)
    assert verified.checkpoint.checkpoint.size == 646


def test_v2_mutated_proof_fails(v2: tuple[Any, Ed25519Verifier]) -> None:
    entry, verifier = v2
    p = entry["inclusionProof"]
    leaf = leaf_hash(_b64(entry["canonicalizedBody"]))
    hashes = [_b64(h) for h in p["hashes"]]
    cp = open_checkpoint(p["checkpoint"]["envelope"].encode(), verifier).checkpoint
    index, size, root = int(p["logIndex"]), cp.size, cp.root_hash
    verify_inclusion(leaf, index, size, hashes, root)
    for i, h in enumerate(hashes):
        for flipped in _bit_flips(h):
            with pytest.raises(ProofError):
                verify_inclusion(leaf, index, size, [*hashes[:i], flipped, *hashes[i + 1 :]], root)
    for bad_index in (index - 1, index + 1, 0):
        with pytest.raises(ProofError):
            verify_inclusion(leaf, bad_index, size, hashes, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"another entry"), index, size, hashes, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, hashes[:-1], root)


def test_v2_mutated_checkpoint_fails(v2: tuple[Any, Ed25519Verifier]) -> None:
    entry, verifier = v2
    envelope = entry["inclusionProof"]["checkpoint"]["envelope"].encode()
    original = open_checkpoint(envelope, verifier, V2_ORIGIN)
    for i in range(len(envelope)):
        for mutated in (envelope[:i], *_bit_flips(envelope[i : i + 1])):
            data = mutated if len(mutated) == i else envelope[:i] + mutated + envelope[i + 1 :]
            try:
                result = open_checkpoint(data, verifier, V2_ORIGIN)
            except OvertError:
                continue
            assert result != original


# --- Rekor v1: ECDSA checkpoint (test-local verifier) and inclusion proof -----------------


class RekorV1Verifier:
    """Verifies Rekor v1 checkpoint signatures: ECDSA P-256 SHA-256 over the note text."""

    def __init__(self, name: str, der: bytes) -> None:
        key = serialization.load_der_public_key(der)
        assert isinstance(key, ec.EllipticCurvePublicKey)
        self.name = name
        self.key_id = hashlib.sha256(der).digest()[:4]
        self._key = key

    def verify(self, text: bytes, signature: bytes) -> None:
        try:
            self._key.verify(signature, text, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as err:
            raise InvalidSignatureError(self.name, self.key_id) from err


@pytest.fixture(scope="module")
def v1(reference: Path) -> tuple[Any, RekorV1Verifier]:
    entry = _entry(_load(reference, "bundle_v3_github.whl.sigstore"))
    tlog = _log_key(_load(reference, "trustedroot.v1.json"), entry["logId"]["keyId"])
    assert tlog["baseUrl"] == "https://rekor.sigstore.dev"
    der = _b64(tlog["publicKey"]["rawBytes"])
    assert hashlib.sha256(der).digest() == _b64(entry["logId"]["keyId"])
    return entry, RekorV1Verifier("rekor.sigstore.dev", der)


def test_v1_checkpoint_verifies_with_spki_key_id(v1: tuple[Any, RekorV1Verifier]) -> None:
    entry, verifier = v1
    p = entry["inclusionProof"]
    envelope = p["checkpoint"]["envelope"].encode()
    opened = open_note(envelope, [verifier])
    cp = parse_checkpoint(opened.note.text)
    assert cp.origin == "rekor.sigstore.dev - 2605736670972794746"
    assert cp.size == int(p["treeSize"]) == 75441653
    assert cp.root_hash == _b64(p["rootHash"])
    # the key name is not the origin: overt's checkpoint opener refuses such a log
    with pytest.raises(OriginError):
        open_checkpoint(envelope, verifier)
    tampered = envelope.replace(b"75441653", b"75441654")
    with pytest.raises(InvalidSignatureError):
        open_note(tampered, [verifier])


def test_v1_inclusion_proof(v1: tuple[Any, RekorV1Verifier]) -> None:
    entry, verifier = v1
    p = entry["inclusionProof"]
    leaf = leaf_hash(_b64(entry["canonicalizedBody"]))
    hashes = [_b64(h) for h in p["hashes"]]
    cp = parse_checkpoint(open_note(p["checkpoint"]["envelope"].encode(), [verifier]).note.text)
    index = int(p["logIndex"])  # the shard-relative index (the entry's logIndex is global)
    assert index != int(entry["logIndex"])
    verify_inclusion(leaf, index, cp.size, hashes, cp.root_hash)
    # mutations fail: any flipped bit in any hash, a wrong index, a truncated proof
    for i, h in enumerate(hashes):
        for flipped in list(_bit_flips(h))[::17]:
            with pytest.raises(ProofError):
                verify_inclusion(
                    leaf, index, cp.size, [*hashes[:i], flipped, *hashes[i + 1 :]], cp.root_hash
                )
    with pytest.raises(ProofError):
        verify_inclusion(leaf, int(entry["logIndex"]), cp.size, hashes, cp.root_hash)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, cp.size, hashes[1:], cp.root_hash)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"x"), index, cp.size, hashes, cp.root_hash)


def test_bundle_checkpoints_are_canonical(v1: tuple[Any, Any], v2: tuple[Any, Any]) -> None:
    # overt's strict parser accepts real-world checkpoints byte for byte
    for entry, _ in (v1, v2):
        envelope = entry["inclusionProof"]["checkpoint"]["envelope"].encode()
        text = open_note(envelope, [v1[1], v2[1]]).note.text
        assert format_checkpoint(parse_checkpoint(text)) == text
    with pytest.raises(FormatError):
        parse_checkpoint(b"rekor.sigstore.dev\n075441653\n" + base64.b64encode(bytes(32)) + b"\n")
