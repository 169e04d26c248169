"""overt's subtree proofs (formats.subtree_proof): parsing, every-byte mutation, attacks, CLI.

The proof carries a subtree note whose signatures are real ML-DSA-44 subtree cosignatures
made with :meth:`overt.formats.keytypes.KeySigner.sign_subtree`, as a witness's
``sign-subtree`` returns them.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.cli import main as cli_main
from overt.errors import (
    FormatError,
    InvalidSignatureError,
    OvertError,
    PolicyError,
    ProofError,
)
from overt.formats.checkpoint import OriginError
from overt.formats.cosignature import ALG_ML_DSA_44, CosignatureSigner
from overt.formats.keytypes import KeySigner, generate, key_type
from overt.formats.merkle import MemoryTree, leaf_hash
from overt.formats.note import Ed25519Signer, Signature
from overt.formats.policy import Policy, parse_policy
from overt.formats.subtree import subtree_inclusion_proof
from overt.formats.subtree_proof import (
    HEADER,
    SubtreeNote,
    SubtreeProof,
    format_subtree_note,
    format_subtree_proof,
    parse_subtree_note,
    parse_subtree_proof,
    verify_subtree_proof,
)

ORIGIN = "proofs.example/log"
ENTRIES = [b"entry %d" % i for i in range(600)]
TREE = MemoryTree(leaf_hash(e) for e in ENTRIES)
LOG = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
W1 = generate(key_type(ALG_ML_DSA_44), "w1.example")
W2 = generate(key_type(ALG_ML_DSA_44), "w2.example")


def policy(quorum: str = "both", *witnesses: KeySigner) -> Policy:
    ws = witnesses or (W1, W2)
    lines = [f"log {LOG.verifier().vkey}"]
    lines += [f"witness {w.name.split('.')[0]} {w.verifier().vkey}" for w in ws]
    names = " ".join(w.name.split(".")[0] for w in ws)
    lines += [f"group both {len(ws)} {names}", f"quorum {quorum}"]
    return parse_policy(("\n".join(lines) + "\n").encode())


def cosign(
    start: int, end: int, *signers: KeySigner, subtree_hash: bytes | None = None
) -> SubtreeNote:
    h = TREE.subtree(start, end) if subtree_hash is None else subtree_hash
    sigs = tuple(
        Signature(s.name, s.key_id, s.sign_subtree(ORIGIN, start, end, h)) for s in signers
    )
    return SubtreeNote(ORIGIN, start, end, h, sigs)


def make(index: int, note: SubtreeNote, extra: bytes | None = None) -> bytes:
    hashes = subtree_inclusion_proof(index, note.start, note.end, TREE.subtree)
    return format_subtree_proof(SubtreeProof(index, tuple(hashes), note, extra))


@pytest.fixture(scope="module")
def proof() -> bytes:
    return make(300, cosign(256, 512, W1, W2))


def test_a_proof_verifies_and_round_trips(proof: bytes) -> None:
    verified = verify_subtree_proof(proof, leaf_hash(ENTRIES[300]), policy(), origin=ORIGIN)
    assert verified.cosigned_by == ("w1", "w2")
    assert len(verified.proof.hashes) == 8
    assert format_subtree_proof(parse_subtree_proof(proof)) == proof
    assert proof.startswith(HEADER + b"\nindex 300\n")
    extra = make(300, cosign(256, 512, W1), extra=b"context")
    assert parse_subtree_proof(extra).extra == b"context"


def test_every_byte_of_the_head_is_checked(proof: bytes) -> None:
    # Every change to the header, index, path and subtree lines fails to parse or to verify.
    # (The cosignature lines' bytes are the signatures' own: see the next test.)
    leaf, pol = leaf_hash(ENTRIES[300]), policy()
    head_len = proof.index(b"\n\n\xe2\x80\x94") + 2
    for i in range(head_len):
        for flip in (0x01, 0x20, 0x80):
            mutated = bytearray(proof)
            mutated[i] ^= flip
            with pytest.raises(OvertError):
                verify_subtree_proof(bytes(mutated), leaf, pol)
    for cut in range(0, len(proof), 97):
        with pytest.raises(OvertError):
            verify_subtree_proof(proof[:cut], leaf, pol)


def test_every_signature_byte_is_checked(proof: bytes) -> None:
    note = parse_subtree_proof(proof).subtree
    sig = note.signatures[0]
    raw = sig.signature
    for i in range(0, len(raw), 7):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        forged = SubtreeNote(
            note.origin,
            note.start,
            note.end,
            note.subtree_hash,
            (Signature(sig.name, sig.key_id, bytes(bad)), note.signatures[1]),
        )
        with pytest.raises(InvalidSignatureError):
            verify_subtree_proof(make(300, forged), leaf_hash(ENTRIES[300]), policy())


def test_subtree_note_round_trips_and_is_strict() -> None:
    note = cosign(0, 256, W1)
    data = format_subtree_note(note)
    assert parse_subtree_note(data) == note
    text = note.text
    for bad_text in (
        text.replace(b"subtree 0 256", b"subtree 00 256"),
        text.replace(b"subtree 0 256", b"subtree 0 256 "),
        text.replace(b"subtree 0 256", b"subtree 4 12"),
        text + b"extension\n",
        b"\n" + text,
    ):
        with pytest.raises(FormatError):
            parse_subtree_note(bad_text + data[len(text) :])


def test_forged_subtree_hash_is_refused() -> None:
    # Witnesses cosigned a hash; a proof that claims another (leading to a forged entry) fails.
    forged_tree = MemoryTree(leaf_hash(b"forged" if i == 300 else e) for i, e in enumerate(ENTRIES))
    honest = cosign(256, 512, W1, W2)
    forged = SubtreeNote(ORIGIN, 256, 512, forged_tree.subtree(256, 512), honest.signatures)
    hashes = subtree_inclusion_proof(300, 256, 512, forged_tree.subtree)
    raw = format_subtree_proof(SubtreeProof(300, tuple(hashes), forged))
    with pytest.raises(InvalidSignatureError):
        verify_subtree_proof(raw, leaf_hash(b"forged"), policy())
    # And the honest note with the forged path does not lead to the cosigned hash.
    raw = format_subtree_proof(SubtreeProof(300, tuple(hashes), honest))
    with pytest.raises(ProofError):
        verify_subtree_proof(raw, leaf_hash(b"forged"), policy())


def test_the_quorum_is_the_policys() -> None:
    one = make(10, cosign(0, 256, W1))
    with pytest.raises(PolicyError, match="does not meet the quorum"):
        verify_subtree_proof(one, leaf_hash(ENTRIES[10]), policy())
    assert verify_subtree_proof(one, leaf_hash(ENTRIES[10]), policy("w1")).cosigned_by == ("w1",)
    stranger = generate(key_type(ALG_ML_DSA_44), "w1.example")  # same name, another key
    with pytest.raises(PolicyError):
        verify_subtree_proof(
            make(10, cosign(0, 256, stranger)), leaf_hash(ENTRIES[10]), policy("w1")
        )


def test_a_subtree_of_another_log_is_refused() -> None:
    other = SubtreeNote("other.example/log", 0, 256, TREE.subtree(0, 256))
    sigs = tuple(
        Signature(s.name, s.key_id, s.sign_subtree(other.origin, 0, 256, other.subtree_hash))
        for s in (W1, W2)
    )
    raw = make(10, SubtreeNote(other.origin, 0, 256, other.subtree_hash, sigs))
    with pytest.raises(OriginError):
        verify_subtree_proof(raw, leaf_hash(ENTRIES[10]), policy())
    # The signatures are over the origin: relabelling the note breaks them.
    relabelled = make(10, SubtreeNote(ORIGIN, 0, 256, other.subtree_hash, sigs))
    with pytest.raises(InvalidSignatureError):
        verify_subtree_proof(relabelled, leaf_hash(ENTRIES[10]), policy())


def test_a_checkpoint_cosignature_vouches_only_for_its_own_tree() -> None:
    # An ML-DSA-44 checkpoint cosignature signs the same message with start 0, end = size
    # and a time: it stands for the subtree [0, size) (as in torchwood) and nothing else.
    from overt.formats.checkpoint import Checkpoint, sign_checkpoint
    from overt.formats.note import parse_note, sign_note

    timed = generate(key_type(ALG_ML_DSA_44), "w1.example", lambda: 1_750_000_000.0)

    def cosignature(size: int) -> Signature:
        note = parse_note(sign_checkpoint(Checkpoint(ORIGIN, size, TREE.root(size)), LOG))
        cosigned = parse_note(sign_note(note.text, [timed], existing=note))
        return next(s for s in cosigned.signatures if s.name == timed.name)

    pol = policy("w1", timed)
    raw = make(10, SubtreeNote(ORIGIN, 0, 256, TREE.subtree(0, 256), (cosignature(256),)))
    assert verify_subtree_proof(raw, leaf_hash(ENTRIES[10]), pol).cosigned_by == ("w1",)
    raw = make(10, SubtreeNote(ORIGIN, 0, 256, TREE.subtree(0, 256), (cosignature(512),)))
    with pytest.raises(InvalidSignatureError):
        verify_subtree_proof(raw, leaf_hash(ENTRIES[10]), pol)


def test_an_ed25519_witness_cannot_vouch_for_a_subtree() -> None:
    ed = CosignatureSigner("w1.example", Ed25519PrivateKey.generate())
    text = (f"log {LOG.verifier().vkey}\nwitness w1 {ed.verifier().vkey}\nquorum w1\n").encode()
    sig = Signature(ed.name, ed.key_id, bytes(72))
    raw = make(10, SubtreeNote(ORIGIN, 0, 256, TREE.subtree(0, 256), (sig,)))
    with pytest.raises(InvalidSignatureError):
        verify_subtree_proof(raw, leaf_hash(ENTRIES[10]), parse_policy(text))


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.replace(HEADER, b"c2sp.org/tlog-proof@v1"),
        lambda p: p.replace(b"index 300", b"index 200"),  # outside the subtree
        lambda p: p.replace(b"index 300", b"index 0300"),
        lambda p: p.replace(b"index 300\n", b"index 300\n" + base64.b64encode(bytes(31)) + b"\n"),
        lambda p: p.replace(b"\n\n", b"\n", 1),
        lambda p: p[: p.index(b"\xe2\x80\x94")],  # no cosignature
    ],
)
def test_malformed_proofs_are_refused(proof: bytes, damage: object) -> None:
    with pytest.raises(FormatError):
        parse_subtree_proof(damage(proof))  # type: ignore[operator]


def test_cli_verifies_a_subtree_proof(
    tmp_path: Path, proof: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p").write_bytes(proof)
    (tmp_path / "e").write_bytes(ENTRIES[300])
    pol = "\n".join(
        [f"log {LOG.verifier().vkey}"]
        + [f"witness {w.name.split('.')[0]} {w.verifier().vkey}" for w in (W1, W2)]
        + ["group both 2 w1 w2", "quorum both"]
    )
    (tmp_path / "policy").write_text(pol + "\n")
    base = ["proof", "verify", str(tmp_path / "p"), "--vkey", LOG.verifier().vkey]
    assert (
        cli_main.main([*base, "--entry", str(tmp_path / "e"), "--policy", str(tmp_path / "policy")])
        == 0
    )
    assert "subtree [256, 512), cosigned by w1, w2" in capsys.readouterr().out
    (tmp_path / "e").write_bytes(ENTRIES[301])
    assert (
        cli_main.main([*base, "--entry", str(tmp_path / "e"), "--policy", str(tmp_path / "policy")])
        == 1
    )
    assert cli_main.main([*base, "--entry", str(tmp_path / "e")]) == 1  # no policy: nobody vouches
    assert "give --policy" in capsys.readouterr().err
