"""c2sp.org/tlog-cosignature (Ed25519 cosignature/v1): spec example, signing, mutation."""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import ConfigError, FormatError, InvalidSignatureError, OvertError
from overt.formats import cosignature as cosignature_module
from overt.formats.checkpoint import Checkpoint, format_checkpoint, open_checkpoint, sign_checkpoint
from overt.formats.cosignature import (
    ALG_COSIGNATURE_V1,
    COSIGNATURE_V1,
    MAX_TIMESTAMP,
    CosignatureSigner,
    CosignatureVerifier,
    cosign_line,
    cosignature_timestamp,
    cosigned_message,
)
from overt.formats.note import (
    Ed25519Signer,
    Ed25519Verifier,
    Verifier,
    generate_key,
    open_note,
    parse_note,
    parse_skey,
    parse_vkey,
)

ORIGIN = "example.com/behind-the-sofa"
T = 1679315147


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


@pytest.fixture(scope="module")
def spec(reference: Path) -> str:
    return (reference / "specs/c2sp/tlog-cosignature.md").read_text("utf-8")


def _witness(name: str = "witness.example.com/w1", now: float = T) -> CosignatureSigner:
    return CosignatureSigner(name, Ed25519PrivateKey.generate(), clock=lambda: now)


def _line_signature(line: bytes) -> bytes:
    return base64.b64decode(line.rstrip(b"\n").split(b" ")[-1])


def test_exported_members() -> None:
    assert set(cosignature_module.__all__) == {
        "ALG_COSIGNATURE_V1",
        "ALG_ML_DSA_44",
        "COSIGNATURE_V1",
        "ML_DSA_44_COSIGNATURE",
        "MAX_TIMESTAMP",
        "CosignatureSigner",
        "CosignatureVerifier",
        "cosign_line",
        "cosignature_timestamp",
        "cosigned_message",
        "subtree_line",
        "subtree_message",
    }
    for name in cosignature_module.__all__:
        assert hasattr(cosignature_module, name)


def test_spec_example_cosignature_carries_the_spec_timestamp(spec: str) -> None:
    block = re.findall(r"```\n(.*?)```", spec, re.S)[0].encode()
    note = parse_note(block)
    log_sig, witness_sig = note.signatures
    assert log_sig.name == ORIGIN
    assert witness_sig.name == "witness.example.com/w1"
    assert len(witness_sig.signature) == 72
    # the timestamp in the example signature is the one in the spec's signed message
    assert cosignature_timestamp(witness_sig.signature) == T


def test_spec_example_signed_message(spec: str) -> None:
    block = re.search(r"\n((?:    .*\n)+)\nSemantically, a v1 cosignature", spec)
    assert block is not None
    expected = "".join(line[4:] + "\n" for line in block.group(1).splitlines()).encode()
    assert expected.startswith(b"cosignature/v1\ntime 1679315147\n")
    body = format_checkpoint(
        Checkpoint(
            ORIGIN, 20852163, base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
        )
    )
    assert cosigned_message(T, body) == expected


def test_key_id_uses_type_byte_4() -> None:
    w = _witness()
    public = w.public_key.public_bytes_raw()
    assert w.key_id == hashlib.sha256(w.name.encode() + b"\n\x04" + public).digest()[:4]
    assert w.vkey.split("+", 2)[2] == base64.b64encode(b"\x04" + public).decode()
    # the same key as a plain Ed25519 note key has another key ID: no cross-type confusion
    assert Ed25519Verifier(w.name, w.public_key).key_id != w.key_id


def test_sign_and_verify() -> None:
    w = _witness()
    text = format_checkpoint(Checkpoint(ORIGIN, 10, bytes(32)))
    sig = w.sign(text)
    assert len(sig) == 72
    assert cosignature_timestamp(sig) == T
    assert sig[:8] == T.to_bytes(8, "big")
    w.public_key.verify(sig[8:], cosigned_message(T, text))  # exactly the spec's message
    w.verifier().verify(text, sig)
    with pytest.raises(InvalidSignatureError):
        _witness().verifier().verify(text, sig)  # another key
    with pytest.raises(InvalidSignatureError):
        w.verifier().verify(text, (T + 1).to_bytes(8, "big") + sig[8:])  # another time
    with pytest.raises(InvalidSignatureError):
        w.verifier().verify(text.replace(b"10", b"11"), sig)


def test_plain_ed25519_signature_is_not_a_cosignature() -> None:
    key = Ed25519PrivateKey.generate()
    text = format_checkpoint(Checkpoint(ORIGIN, 10, bytes(32)))
    plain = Ed25519Signer("w", key).sign(text)
    with pytest.raises(InvalidSignatureError):
        CosignatureVerifier("w", key.public_key()).verify(text, bytes(8) + plain)


def test_extension_lines_are_signed() -> None:
    w = _witness()
    with_ext = format_checkpoint(Checkpoint(ORIGIN, 10, bytes(32), ("ext",)))
    sig = w.sign(with_ext)
    w.verifier().verify(with_ext, sig)
    assert cosigned_message(T, with_ext).endswith(b"\next\n")
    with pytest.raises(InvalidSignatureError):
        w.verifier().verify(format_checkpoint(Checkpoint(ORIGIN, 10, bytes(32))), sig)


def test_only_checkpoints_are_cosigned() -> None:
    w = _witness()
    with pytest.raises(FormatError):
        w.sign(b"hello\n")
    with pytest.raises(FormatError):
        cosign_line(w, b"hello\n")
    # a verifier cannot be made to accept a cosignature of something else
    sig = T.to_bytes(8, "big") + w._private.sign(b"cosignature/v1\ntime %d\nhello\n" % T)
    with pytest.raises(InvalidSignatureError):
        w.verifier().verify(b"hello\n", sig)


@pytest.mark.parametrize("now", [-1.0, math.nan, math.inf, float(2**63), 1e300])
def test_bad_clock_is_a_config_error(now: float) -> None:
    text = format_checkpoint(Checkpoint(ORIGIN, 10, bytes(32)))
    with pytest.raises(ConfigError):
        _witness(now=now).sign(text)


def test_clock_is_floored_to_seconds() -> None:
    text = format_checkpoint(Checkpoint(ORIGIN, 10, bytes(32)))
    assert cosignature_timestamp(_witness(now=T + 0.999).sign(text)) == T
    assert cosignature_timestamp(_witness(now=0.0).sign(text)) == 0


def test_timestamps_above_2_63_are_refused() -> None:
    w = _witness()
    text = format_checkpoint(Checkpoint(ORIGIN, 10, bytes(32)))
    sig = (MAX_TIMESTAMP + 1).to_bytes(8, "big") + bytes(64)
    with pytest.raises(FormatError):
        cosignature_timestamp(sig)
    with pytest.raises(InvalidSignatureError):
        w.verifier().verify(text, sig)
    with pytest.raises(FormatError):
        cosigned_message(MAX_TIMESTAMP + 1, text)
    with pytest.raises(FormatError):
        cosignature_timestamp(sig[:71])


def test_cosign_line_appends_to_a_checkpoint() -> None:
    log = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    w = _witness()
    signed = sign_checkpoint(Checkpoint(ORIGIN, 42, bytes(range(32))), log)
    text = parse_note(signed).text
    line = cosign_line(w, text)
    assert line.startswith("— witness.example.com/w1 ".encode())
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert _line_signature(line)[:4] == w.key_id
    cosigned = signed + line
    opened = open_checkpoint(cosigned, log.verifier(), cosigners=[w.verifier()])
    ((verifier, sig),) = opened.cosignatures()
    assert verifier == w.verifier()
    assert cosignature_timestamp(sig.signature) == T


def test_cosignature_keys_round_trip_through_text() -> None:
    skey, vkey = generate_key("witness.example/k", alg=ALG_COSIGNATURE_V1)
    signer, verifier = parse_skey(skey), parse_vkey(vkey)
    assert signer.key_type is verifier.key_type is COSIGNATURE_V1
    assert signer.verifier() == verifier
    assert signer.skey == skey
    text = format_checkpoint(Checkpoint(ORIGIN, 1, bytes(32)))
    verifier.verify(text, signer.sign(text))
    # the same name and key as an Ed25519 vkey is a different key
    assert Ed25519Verifier(verifier.name, verifier.public_key) != verifier


def test_mutated_cosigned_checkpoints_are_refused() -> None:
    log = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
    w = _witness()
    signed = sign_checkpoint(Checkpoint(ORIGIN, 7, bytes(range(32))), log)
    cosigned = signed + cosign_line(w, parse_note(signed).text)
    verifiers: list[Verifier] = [log.verifier(), w.verifier()]
    # both keys trusted: a mutation may only drop (or break) a signature, never survive unnoticed
    assert_mutations_rejected(cosigned, lambda m: open_note(m, verifiers))
    assert_mutations_rejected(
        cosigned, lambda m: open_checkpoint(m, log.verifier(), cosigners=verifiers[1:])
    )


@settings(max_examples=100, deadline=None)
@given(st.integers(0, MAX_TIMESTAMP), st.integers(0, 2**63 - 1))
def test_any_timestamp_round_trips(timestamp: int, size: int) -> None:
    w = _witness(now=timestamp)
    text = format_checkpoint(Checkpoint(ORIGIN, size, bytes(32)))
    sig = w.sign(text)
    assert cosignature_timestamp(sig) == timestamp
    w.verifier().verify(text, sig)
