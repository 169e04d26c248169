"""The witness's sign-subtree call (c2sp.org/tlog-witness): wire format, decision, attacks, HTTP.

The witness cosigns a subtree only when shown a checkpoint it cosigned itself and a subtree
consistency proof to that checkpoint's root; everything else is refused with the status the
spec names. The logs are :class:`LogSimulator` (real trees, real keys, dishonest on demand).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.errors import FormatError, InvalidSignatureError
from overt.formats.checkpoint import parse_checkpoint
from overt.formats.cosignature import ALG_ML_DSA_44, CosignatureSigner
from overt.formats.keytypes import KeySigner, generate, key_type
from overt.formats.note import Signature, parse_note, sign_note
from overt.formats.subtree import subtree_consistency_proof
from overt.formats.witness import (
    SignSubtreeRequest,
    format_cosignature_lines,
    format_sign_subtree,
    parse_cosignature_lines,
    parse_sign_subtree,
)
from overt.witness.client import WitnessClient
from overt.witness.core import known_logs
from overt.witness.errors import (
    UnknownLogError,
    WitnessConsistencyError,
    WitnessRequestError,
    WitnessSignatureError,
)
from overt.witness.subtree import sign_subtree

from .simulators import Clock, LogSimulator, WitnessUnderTest
from .test_format import _indented_block, assert_mutations_rejected_or_distinct

ORIGIN = "subtree.example/log"
WITNESS = "witness.example/w1"


def ml_dsa(name: str = WITNESS) -> KeySigner:
    return generate(key_type(ALG_ML_DSA_44), name, Clock())


def cosigned(
    log: LogSimulator, witness: KeySigner | CosignatureSigner, size: int | None = None
) -> bytes:
    """The log's checkpoint at ``size`` with the witness's cosignature, as add-checkpoint leaves it."""
    note = parse_note(log.checkpoint(size))
    return sign_note(note.text, [witness], existing=note)


def request(log: LogSimulator, start: int, end: int, checkpoint: bytes) -> SignSubtreeRequest:
    size = parse_checkpoint(parse_note(checkpoint).text).size
    proof = subtree_consistency_proof(start, end, size, log.tree.subtree)
    return SignSubtreeRequest(start, end, log.tree.subtree(start, end), tuple(proof), checkpoint)


@pytest.fixture
def log() -> LogSimulator:
    log = LogSimulator(ORIGIN)
    log.grow(300)
    return log


@pytest.fixture
def witness() -> KeySigner:
    return ml_dsa()


def decide(req: SignSubtreeRequest, log: LogSimulator, witness: KeySigner) -> bytes:
    return sign_subtree(req, known_logs([log.verifier]), witness, [witness.verifier()])


# --- wire format ------------------------------------------------------------------------


def test_spec_example_request_parses(reference: Path) -> None:
    spec = (reference / "specs/c2sp/tlog-witness.md").read_text("utf-8")
    start = spec.index("subtree 8 13\n")
    example = spec[start : spec.index("```", start)]
    # The example's signature is elided ("[...]"); put a well-formed line in its place.
    head, _, _ = example.rpartition("— ")
    line = format_cosignature_lines([Signature(WITNESS, b"\x01\x02\x03\x04", bytes(8 + 2420))])
    body = head.encode() + line
    req = parse_sign_subtree(body)
    assert (req.start, req.end) == (8, 13)
    assert req.subtree_hash == base64.b64decode("mbsQCg+dEIMGlpqeGgk94JutQwKKS2Lo5IuDhKmDjiU=")
    assert len(req.proof) == 4  # what a proof from [8, 13) to a tree of 14 has
    assert parse_checkpoint(req.note.text).size == 14
    assert format_sign_subtree(req) == body
    assert _indented_block(spec, "Example response body:\n")  # the reply shape is a note line


def test_every_byte_of_a_request_is_checked(log: LogSimulator, witness: KeySigner) -> None:
    body = format_sign_subtree(request(log, 256, 288, cosigned(log, witness)))
    # Keep the checkpoint short for speed: mutate the head and the first checkpoint lines.
    head_end = body.index(b"\n\n") + 60
    assert_mutations_rejected_or_distinct(
        body[:head_end], lambda b: parse_sign_subtree(b + body[head_end:])
    )


def test_every_byte_of_a_reply_is_checked(log: LogSimulator, witness: KeySigner) -> None:
    req = request(log, 256, 288, cosigned(log, witness))
    reply = decide(req, log, witness)
    (sig,) = parse_cosignature_lines(reply)
    verifier = witness.verifier()
    verifier.verify_subtree(ORIGIN, 256, 288, req.subtree_hash, sig.signature)
    for i in range(len(reply)):
        mutated = bytearray(reply)
        mutated[i] ^= 0x01
        try:
            (bad,) = parse_cosignature_lines(bytes(mutated))
        except (FormatError, ValueError):
            continue
        if (bad.name, bad.key_id) != (sig.name, sig.key_id):
            continue  # another key's line: a client ignores it
        with pytest.raises(InvalidSignatureError):
            verifier.verify_subtree(ORIGIN, 256, 288, req.subtree_hash, bad.signature)


@pytest.mark.parametrize(
    "head",
    [
        b"subtree 4 12",  # not aligned: 4 is not a multiple of 8
        b"subtree 3 5",
        b"subtree 5 5",  # empty
        b"subtree 9 8",
        b"subtree 08 16",
        b"subtree 8  16",
        b"subtree 8 16 ",
        b"subtree -8 16",
        b"subtree 8",
        b"Subtree 8 16",
        b"old 8",
    ],
)
def test_a_malformed_or_unaligned_range_line_is_refused(head: bytes) -> None:
    body = head + b"\n" + base64.b64encode(bytes(32)) + b"\n\norigin\n1\n" + b"A" * 44 + b"\n\n"
    with pytest.raises(FormatError):
        parse_sign_subtree(body)


def test_construction_checks_every_field(log: LogSimulator, witness: KeySigner) -> None:
    good = request(log, 256, 288, cosigned(log, witness))
    for start, end, h, proof in [
        (4, 12, good.subtree_hash, good.proof),
        (256, 288, good.subtree_hash[:31], good.proof),
        (256, 288, good.subtree_hash, (*good.proof, b"short")),
        (256, 288, good.subtree_hash, (bytes(32),) * 64),
        (256, 1 << 64, good.subtree_hash, good.proof),
    ]:
        with pytest.raises(FormatError):
            SignSubtreeRequest(start, end, h, proof, good.checkpoint)


# --- the decision -----------------------------------------------------------------------


def test_an_honest_request_is_cosigned_with_timestamp_zero(
    log: LogSimulator, witness: KeySigner
) -> None:
    checkpoint = cosigned(log, witness)
    for start, end in [(0, 256), (256, 288), (256, 300), (0, 300), (288, 296), (299, 300)]:
        req = request(log, start, end, checkpoint)
        (sig,) = parse_cosignature_lines(decide(req, log, witness))
        assert (sig.name, sig.key_id) == (witness.name, witness.key_id)
        assert sig.signature[:8] == bytes(8)  # the spec: subtree cosignatures carry no time
        witness.verifier().verify_subtree(ORIGIN, start, end, req.subtree_hash, sig.signature)


def test_an_older_checkpoint_the_witness_cosigned_still_serves(
    log: LogSimulator, witness: KeySigner
) -> None:
    old = cosigned(log, witness, 260)
    req = request(log, 0, 256, old)
    assert decide(req, log, witness)


def test_subtree_not_consistent_with_any_checkpoint_the_witness_signed_is_refused(
    log: LogSimulator, witness: KeySigner
) -> None:
    # A split view: the log's key signs a fork the witness never saw. The fork's checkpoint,
    # proof and subtree all agree with each other, but the witness never cosigned it.
    fork = log.fork()
    fork.rollback(200, regrow=100)
    with pytest.raises(WitnessSignatureError):
        decide(request(fork, 256, 288, fork.checkpoint()), log, witness)
    # The fork's subtree against the checkpoint the witness did cosign: the proof fails.
    honest = cosigned(log, witness)
    forged = request(fork, 256, 288, fork.checkpoint())
    replayed = SignSubtreeRequest(256, 288, forged.subtree_hash, forged.proof, honest)
    with pytest.raises(WitnessConsistencyError):
        decide(replayed, log, witness)


def test_forged_subtree_hash_is_refused(log: LogSimulator, witness: KeySigner) -> None:
    good = request(log, 256, 288, cosigned(log, witness))
    for i in range(32):
        bad = bytearray(good.subtree_hash)
        bad[i] ^= 0x80
        forged = SignSubtreeRequest(256, 288, bytes(bad), good.proof, good.checkpoint)
        with pytest.raises(WitnessConsistencyError):
            decide(forged, log, witness)


def test_every_proof_hash_is_checked(log: LogSimulator, witness: KeySigner) -> None:
    good = request(log, 0, 256, cosigned(log, witness))
    assert good.proof
    for i in range(len(good.proof)):
        proof = list(good.proof)
        proof[i] = bytes(a ^ 1 for a in proof[i])
        bad = SignSubtreeRequest(0, 256, good.subtree_hash, tuple(proof), good.checkpoint)
        with pytest.raises(WitnessConsistencyError):
            decide(bad, log, witness)
    for short_or_long in (good.proof[:-1], (*good.proof, bytes(32))):
        bad = SignSubtreeRequest(0, 256, good.subtree_hash, short_or_long, good.checkpoint)
        with pytest.raises(WitnessConsistencyError):
            decide(bad, log, witness)


def test_a_checkpoint_without_the_witness_cosignature_is_refused(
    log: LogSimulator, witness: KeySigner
) -> None:
    other = ml_dsa("witness.example/other")
    for checkpoint in (log.checkpoint(), cosigned(log, other)):
        with pytest.raises(WitnessSignatureError):
            decide(request(log, 0, 256, checkpoint), log, witness)


def test_a_bad_cosignature_by_the_witness_key_is_refused(
    log: LogSimulator, witness: KeySigner
) -> None:
    note = parse_note(cosigned(log, witness))
    sigs = list(note.signatures)
    broken = bytearray(sigs[-1].signature)
    broken[100] ^= 1
    sigs[-1] = Signature(sigs[-1].name, sigs[-1].key_id, bytes(broken))
    checkpoint = note.text + b"\n" + format_cosignature_lines(sigs)
    with pytest.raises(WitnessSignatureError):
        decide(request(log, 0, 256, checkpoint), log, witness)


def test_a_subtree_beyond_the_checkpoint_is_refused(log: LogSimulator, witness: KeySigner) -> None:
    old = cosigned(log, witness, 260)
    good = request(log, 256, 288, cosigned(log, witness))
    with pytest.raises(WitnessRequestError, match="ends after"):
        decide(SignSubtreeRequest(256, 288, good.subtree_hash, good.proof, old), log, witness)


def test_an_unknown_log_is_refused(log: LogSimulator, witness: KeySigner) -> None:
    stranger = LogSimulator("stranger.example/log")
    stranger.grow(256)
    req = request(stranger, 0, 256, cosigned(stranger, witness))
    with pytest.raises(UnknownLogError):
        decide(req, log, witness)


def test_an_ed25519_witness_does_not_offer_sign_subtree(log: LogSimulator) -> None:
    ed = CosignatureSigner(WITNESS, Ed25519PrivateKey.generate(), Clock())
    req = request(log, 0, 256, cosigned(log, ed))
    with pytest.raises(UnknownLogError, match="does not offer sign-subtree"):
        sign_subtree(req, known_logs([log.verifier]), ed, [ed.verifier()])


# --- over HTTP --------------------------------------------------------------------------


@pytest.fixture
def served(
    tmp_path: Path, log: LogSimulator, witness: KeySigner
) -> Iterator[tuple[str, WitnessUnderTest]]:
    w = WitnessUnderTest(tmp_path / "w", WITNESS, [log], Clock())
    w.signer = witness  # type: ignore[assignment]
    with w.serve() as url:
        yield url, w


def test_sign_subtree_over_http_with_every_status(
    served: tuple[str, WitnessUnderTest], log: LogSimulator, witness: KeySigner
) -> None:
    url, _ = served
    checkpoint = cosigned(log, witness)
    good = request(log, 256, 288, checkpoint)
    with WitnessClient(url, verifier=witness.verifier()) as client:
        lines = client.sign_subtree(good.start, good.end, good.subtree_hash, good.proof, checkpoint)
    (sig,) = parse_cosignature_lines(lines)
    witness.verifier().verify_subtree(
        ORIGIN, good.start, good.end, good.subtree_hash, sig.signature
    )

    def post(body: bytes) -> int:
        return httpx.post(f"{url}/sign-subtree", content=body).status_code

    body = format_sign_subtree(good)
    assert post(body) == 200
    assert post(body.replace(b"subtree 256 288", b"subtree 260 288", 1)) == 400
    forged = SignSubtreeRequest(256, 288, bytes(32), good.proof, checkpoint)
    assert post(format_sign_subtree(forged)) == 422
    assert post(format_sign_subtree(request(log, 256, 288, log.checkpoint()))) == 403
    stranger = LogSimulator("stranger.example/log")
    stranger.grow(300)
    assert (
        post(format_sign_subtree(request(stranger, 256, 288, cosigned(stranger, witness)))) == 404
    )
    assert httpx.get(f"{url}/sign-subtree").status_code == 405
    with WitnessClient(url) as client, pytest.raises(WitnessConsistencyError):
        client.sign_subtree(256, 288, bytes(32), good.proof, checkpoint)


def test_an_ed25519_witness_answers_404(tmp_path: Path, log: LogSimulator) -> None:
    w = WitnessUnderTest(tmp_path / "w", WITNESS, [log], Clock())
    with w.serve() as url:
        body = format_sign_subtree(request(log, 0, 256, cosigned(log, w.signer)))
        reply = httpx.post(f"{url}/sign-subtree", content=body)
    assert reply.status_code == 404
    assert "does not offer sign-subtree" in reply.text
