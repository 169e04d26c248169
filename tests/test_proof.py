"""c2sp.org/tlog-proof@v1: spec example, strict parsing, verification on real trees, mutation."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import (
    FormatError,
    InvalidSignatureError,
    OvertError,
    ProofError,
    UnknownKeyError,
)
from overt.formats import proof as proof_module
from overt.formats.checkpoint import (
    Checkpoint,
    OriginError,
    format_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from overt.formats.cosignature import CosignatureSigner, cosign_line
from overt.formats.merkle import MemoryTree, leaf_hash
from overt.formats.note import Ed25519Signer, parse_note
from overt.formats.proof import (
    TlogProof,
    VerifiedProof,
    format_proof,
    parse_proof,
    verify_proof,
)

ORIGIN = "example.com/fancylog"


# Mutation helper. With --import-mode=importlib test modules cannot import each other, so
# this is the same generator as in test_note.py, kept small on purpose.
def mutations(data: bytes) -> Iterator[bytes]:
    """Every truncation; every single-bit flip and a few syntax bytes at every position."""
    for i in range(len(data)):
        yield data[:i]
    for i, byte in enumerate(data):
        values = {byte ^ (1 << bit) for bit in range(8)} | set(b"\n +=\x00A/\xe2")
        for v in sorted(values - {byte}):
            yield data[:i] + bytes([v]) + data[i + 1 :]


def assert_mutations_rejected(data: bytes, accept: Callable[[bytes], object]) -> None:
    original = accept(data)
    for mutated in mutations(data):
        try:
            result = accept(mutated)
        except OvertError:
            continue
        assert result != original, f"mutation accepted as the same object: {mutated!r}"


class Log:
    """A small in-memory log with a signing key and two witnesses."""

    def __init__(self, n: int) -> None:
        self.leaves = [f"entry {i}".encode() for i in range(n)]
        self.tree = MemoryTree([leaf_hash(e) for e in self.leaves])
        self.signer = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
        self.witnesses = [
            CosignatureSigner(f"witness{i}.example", Ed25519PrivateKey.generate(), lambda: 1.7e9)
            for i in range(2)
        ]
        cp = Checkpoint(ORIGIN, n, self.tree.root())
        signed = sign_checkpoint(cp, self.signer)
        text = parse_note(signed).text
        self.checkpoint = signed + b"".join(cosign_line(w, text) for w in self.witnesses)

    def proof(self, index: int, extra: bytes | None = None) -> TlogProof:
        hashes = tuple(self.tree.inclusion_proof(index))
        return TlogProof(index=index, hashes=hashes, checkpoint=self.checkpoint, extra=extra)

    def verify(self, proof: TlogProof, leaf: bytes) -> VerifiedProof:
        return verify_proof(
            proof,
            leaf,
            self.signer.verifier(),
            ORIGIN,
            extra_verifiers=[w.verifier() for w in self.witnesses],
        )


@pytest.fixture(scope="module")
def log() -> Log:
    return Log(13)


def test_exported_members() -> None:
    assert set(proof_module.__all__) == {
        "HEADER",
        "MAX_EXTRA_SIZE",
        "MAX_PROOF_SIZE",
        "TlogProof",
        "VerifiedProof",
        "format_proof",
        "parse_proof",
        "verify_proof",
    }
    for name in proof_module.__all__:
        assert hasattr(proof_module, name)


def test_spec_example(reference: Path, log: Log) -> None:
    spec = (reference / "specs/c2sp/tlog-proof.md").read_text("utf-8")
    example = re.findall(r"```\n(.*?)```", spec, re.S)[0].encode()
    # The spec elides its signatures ("hI2DJw[...]1roloI="): as printed it must not parse.
    with pytest.raises(FormatError):
        parse_proof(example)
    # With real signature lines by keys of the same names, everything else parses as is.
    head, body = example.split(b"\n\n", 1)
    text = body.split(b"\n\n")[0] + b"\n"
    signer = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    witness = CosignatureSigner("witness1.example", Ed25519PrivateKey.generate(), lambda: 1.7e9)
    signed = sign_checkpoint(parse_checkpoint(text), signer) + cosign_line(witness, text)
    proof = parse_proof(head + b"\n\n" + signed)
    assert proof.extra is not None and proof.extra.startswith(b"age-v1.2.1-darwin-arm64.tar.gz")
    assert proof.index == 73894
    assert len(proof.hashes) == 5
    assert proof.hashes[0] == base64.b64decode("gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=")
    assert proof.checkpoint == signed
    assert format_proof(proof) == head + b"\n\n" + signed
    # its hashes are not a proof for any leaf we know: verification fails on inclusion
    with pytest.raises(ProofError):
        verify_proof(proof, bytes(32), signer.verifier(), ORIGIN)


def test_every_index_verifies(log: Log) -> None:
    for index, entry in enumerate(log.leaves):
        proof = log.proof(index)
        assert parse_proof(format_proof(proof)) == proof
        verified = log.verify(proof, leaf_hash(entry))
        assert verified.leaf_hash == leaf_hash(entry)
        assert verified.checkpoint.checkpoint.size == 13
        assert len(verified.checkpoint.cosignatures()) == 2
        # the same proof does not prove any other entry
        other = log.leaves[(index + 1) % len(log.leaves)]
        with pytest.raises(ProofError):
            log.verify(proof, leaf_hash(other))


def test_verify_proof_takes_the_bytes_a_log_hands_out(log: Log) -> None:
    # The README once showed verify_proof(bytes) and it raised AttributeError.
    data = format_proof(log.proof(5))
    verified = verify_proof(data, leaf_hash(log.leaves[5]), log.signer.verifier(), ORIGIN)
    assert verified.proof == log.proof(5)
    with pytest.raises(FormatError):
        verify_proof(data[:-40], leaf_hash(log.leaves[5]), log.signer.verifier(), ORIGIN)


def test_wrong_index_or_size_is_refused(log: Log) -> None:
    proof = log.proof(3)
    leaf = leaf_hash(log.leaves[3])
    for index in (2, 4, 12, 13, 2**40):
        with pytest.raises(ProofError):
            log.verify(TlogProof(index, proof.hashes, proof.checkpoint), leaf)
    for hashes in (proof.hashes[:-1], (*proof.hashes, proof.hashes[0]), proof.hashes[::-1]):
        with pytest.raises(ProofError):
            log.verify(TlogProof(3, hashes, proof.checkpoint), leaf)


def test_single_leaf_log_has_an_empty_proof() -> None:
    single = Log(1)
    proof = single.proof(0)
    assert proof.hashes == ()
    encoded = format_proof(proof)
    assert encoded.startswith(b"c2sp.org/tlog-proof@v1\nindex 0\n\n")
    single.verify(parse_proof(encoded), leaf_hash(single.leaves[0]))


def test_checkpoint_must_be_the_logs(log: Log) -> None:
    proof = log.proof(5)
    leaf = leaf_hash(log.leaves[5])
    with pytest.raises(OriginError):
        verify_proof(proof, leaf, log.signer.verifier(), "example.com/another-log")
    impostor = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(UnknownKeyError):
        verify_proof(proof, leaf, impostor.verifier(), ORIGIN)
    # a witness key cannot stand in for the log key
    with pytest.raises(OriginError):
        verify_proof(proof, leaf, log.witnesses[0].verifier())


def test_bad_cosignature_by_known_witness_is_refused(log: Log) -> None:
    proof = log.proof(5)
    note = parse_note(proof.checkpoint)
    lines = proof.checkpoint.split(b"\n\n")[1].split(b"\n")[:-1]
    # re-sign the witness line over a different checkpoint: valid shape, wrong signature
    other = format_checkpoint(Checkpoint(ORIGIN, 13, bytes(32)))
    wrong = cosign_line(log.witnesses[1], other)
    forged = note.text + b"\n" + lines[0] + b"\n" + lines[1] + b"\n" + wrong
    with pytest.raises(InvalidSignatureError):
        log.verify(TlogProof(5, proof.hashes, forged), leaf_hash(log.leaves[5]))
    # unknown witnesses' signatures are ignored
    result = verify_proof(
        TlogProof(5, proof.hashes, forged), leaf_hash(log.leaves[5]), log.signer.verifier()
    )
    assert result.checkpoint.cosignatures() == ()


def test_extra_is_carried_but_not_trusted(log: Log) -> None:
    leaf = leaf_hash(log.leaves[7])
    a = log.verify(parse_proof(format_proof(log.proof(7, b"hello"))), leaf)
    b = log.verify(parse_proof(format_proof(log.proof(7, b"goodbye"))), leaf)
    assert a.proof.extra == b"hello" and b.proof.extra == b"goodbye"
    assert a != b


def test_leaf_hash_must_be_32_bytes(log: Log) -> None:
    with pytest.raises(FormatError):
        log.verify(log.proof(0), log.leaves[0])


_H = base64.b64encode(bytes(32))


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"c2sp.org/tlog-proof@v2\nindex 0", "version"),
        (b"c2sp.org/tlog-proof@v1 \nindex 0", "header space"),
        (b"C2SP.org/tlog-proof@v1\nindex 0", "header case"),
        (b"c2sp.org/tlog-proof@v1", "no index"),
        (b"c2sp.org/tlog-proof@v1\nindex 01", "leading zero"),
        (b"c2sp.org/tlog-proof@v1\nindex -1", "negative"),
        (b"c2sp.org/tlog-proof@v1\nindex +1", "sign"),
        (b"c2sp.org/tlog-proof@v1\nindex 1 ", "trailing space"),
        (b"c2sp.org/tlog-proof@v1\nindex  1", "double space"),
        (b"c2sp.org/tlog-proof@v1\nindex\t1", "tab"),
        (b"c2sp.org/tlog-proof@v1\nindex 9223372036854775807", "index too large"),
        (b"c2sp.org/tlog-proof@v1\nIndex 1", "case"),
        (b"c2sp.org/tlog-proof@v1\nextra \nindex 1", "empty extra"),
        (b"c2sp.org/tlog-proof@v1\nextra YQ\nindex 1", "extra unpadded"),
        (b"c2sp.org/tlog-proof@v1\nextra YR==\nindex 1", "extra padding bits"),
        (b"c2sp.org/tlog-proof@v1\nextra YQ==\nextra YQ==\nindex 1", "two extras"),
        (b"c2sp.org/tlog-proof@v1\nindex 1\nextra YQ==", "extra after index"),
        (b"c2sp.org/tlog-proof@v1\nindex 1\n" + _H[:-4], "short hash"),
        (b"c2sp.org/tlog-proof@v1\nindex 1\n" + _H + b"AAAA", "long hash"),
        (b"c2sp.org/tlog-proof@v1\nindex 1\n" + _H[:-2] + b"B=", "hash padding bits"),
        (b"c2sp.org/tlog-proof@v1\nindex 1\n" + _H + b" ", "hash trailing space"),
        (b"c2sp.org/tlog-proof@v1\nindex 1\n" + b"\n".join([_H] * 64), "64 hashes"),
        (b"c2sp.org/tlog-proof@v1\r\nindex 1", "CRLF"),
        (b"\nc2sp.org/tlog-proof@v1\nindex 1", "leading newline"),
    ],
)
def test_malformed_proofs_are_refused(log: Log, head: bytes, why: str) -> None:
    with pytest.raises(FormatError):
        parse_proof(head + b"\n\n" + log.checkpoint)


def test_proof_needs_a_well_formed_signed_checkpoint(log: Log) -> None:
    head = b"c2sp.org/tlog-proof@v1\nindex 1\n"
    with pytest.raises(FormatError):
        parse_proof(head + log.checkpoint)  # no blank line
    with pytest.raises(FormatError):
        parse_proof(head + b"\n" + parse_note(log.checkpoint).text)  # unsigned
    with pytest.raises(FormatError):
        parse_proof(head + b"\n" + b"not a checkpoint\n\n" + log.checkpoint.split(b"\n\n")[1])
    with pytest.raises(FormatError):
        parse_proof(head + b"\n" + log.checkpoint + b"trailing junk\n")


@pytest.mark.parametrize(
    "bad",
    [
        lambda p: TlogProof(-1, p.hashes, p.checkpoint),
        lambda p: TlogProof(True, p.hashes, p.checkpoint),
        lambda p: TlogProof(p.index, (bytes(31),), p.checkpoint),
        lambda p: TlogProof(p.index, (bytes(32),) * 64, p.checkpoint),
        lambda p: TlogProof(p.index, p.hashes, b"junk"),
        lambda p: TlogProof(p.index, p.hashes, p.checkpoint, b""),
    ],
)
def test_format_refuses_what_parse_would_not_return(
    log: Log, bad: Callable[[TlogProof], TlogProof]
) -> None:
    with pytest.raises(FormatError):
        format_proof(bad(log.proof(1)))


@settings(max_examples=200, deadline=None)
@given(
    index=st.integers(0, 2**63 - 2),
    hashes=st.lists(st.binary(min_size=32, max_size=32), max_size=63).map(tuple),
    extra=st.none() | st.binary(min_size=1, max_size=200),
)
def test_proof_round_trip(
    log: Log, index: int, hashes: tuple[bytes, ...], extra: bytes | None
) -> None:
    proof = TlogProof(index=index, hashes=hashes, checkpoint=log.checkpoint, extra=extra)
    assert parse_proof(format_proof(proof)) == proof


def test_mutated_proofs_are_refused(log: Log) -> None:
    leaf = leaf_hash(log.leaves[6])
    encoded = format_proof(log.proof(6, b"context"))
    assert_mutations_rejected(encoded, lambda m: log.verify(parse_proof(m), leaf))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"c2sp.org/tlog-proof@v1", b"extra ", b"YQ==", b"index ", b"0", b"1", b" ", b"\n", _H]
        ),
        max_size=12,
    ).map(b"".join)
)
def test_any_proof_that_parses_is_canonical(log: Log, head: bytes) -> None:
    data = head + b"\n\n" + log.checkpoint
    try:
        proof = parse_proof(data)
    except FormatError:
        return
    assert format_proof(proof) == data
