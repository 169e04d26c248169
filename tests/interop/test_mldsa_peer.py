"""ML-DSA-44 cosignatures against an independent ML-DSA implementation.

The peer is dilithium-py (``dilithium_py.ml_dsa.ML_DSA_44``): a pure-Python FIPS 204
implementation written apart from OpenSSL/AWS-LC, which ``cryptography`` (overt's only
crypto) wraps. The tlog-cosignature ``subtree/v1`` message is written out here from the
spec, not taken from overt. No Go toolchain is installed on this machine, so Go's
``crypto/mldsa`` appears only through torchwood's fixed vector (tests/test_keytypes.py).
"""

from __future__ import annotations

import base64
import os
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from overt.errors import InvalidSignatureError
from overt.formats.checkpoint import Checkpoint, format_checkpoint, open_checkpoint
from overt.formats.cosignature import ML_DSA_44_COSIGNATURE, cosign_line, subtree_line
from overt.formats.keytypes import key_id, parse_skey, parse_vkey
from overt.formats.merkle import leaf_hash
from overt.formats.note import parse_note

T = 1_764_000_000
ORIGIN = "example.com/pq-log"
ROOT = leaf_hash(b"interop")


@pytest.fixture(scope="module")
def peer() -> Any:
    try:
        from dilithium_py import ml_dsa
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true: dilithium-py is not installed (the ML-DSA-44 test peer)")
        pytest.skip("dilithium-py is not installed (pip install -e '.[dev]')")
    return ml_dsa


def _message(name: str, t: int, origin: str, start: int, end: int, root: bytes) -> bytes:
    """tlog-cosignature's cosigned_message (RFC 8446 presentation language), from the spec."""
    n, o = name.encode(), origin.encode()
    return (
        b"subtree/v1\n\x00"
        + struct.pack(">B", len(n))
        + n
        + struct.pack(">Q", t)
        + struct.pack(">B", len(o))
        + o
        + struct.pack(">QQ", start, end)
        + root
    )


def _vkey(name: str, public: bytes) -> str:
    raw = b"\x06" + public
    return f"{name}+{key_id(name, raw).hex()}+{base64.b64encode(raw).decode()}"


def _skey(name: str, public: bytes, seed: bytes) -> str:
    kid = key_id(name, b"\x06" + public).hex()
    encoded = base64.b64encode(b"\x06" + seed).decode()
    return f"PRIVATE+KEY+{name}+{kid}+{encoded}"


def _line_signature(line: bytes) -> bytes:
    return base64.b64decode(line.decode().rstrip("\n").split(" ")[-1])[4:]


def test_the_peer_derives_overts_key_from_the_same_seed(peer: Any) -> None:
    seed = os.urandom(32)
    public, _ = peer.ML_DSA_44.key_derive(seed)
    signer = parse_skey(_skey("w.example", public, seed))
    assert signer.vkey == _vkey("w.example", public)  # skeys carry the FIPS 204 seed


def test_the_peer_verifies_overts_cosignatures(peer: Any) -> None:
    seed = os.urandom(32)
    public, _ = peer.ML_DSA_44.key_derive(seed)
    signer = parse_skey(_skey("w.example", public, seed), clock=lambda: T)
    text = format_checkpoint(Checkpoint(ORIGIN, 77, ROOT))
    sig = _line_signature(cosign_line(signer, text))
    assert sig[:8] == T.to_bytes(8, "big")
    assert peer.ML_DSA_44.verify(public, _message("w.example", T, ORIGIN, 0, 77, ROOT), sig[8:])
    sub = _line_signature(subtree_line(signer, ORIGIN, 64, 72, ROOT))
    assert sub[:8] == bytes(8)
    assert peer.ML_DSA_44.verify(public, _message("w.example", 0, ORIGIN, 64, 72, ROOT), sub[8:])
    # The name is in the message: the same signature is no signature for another name.
    assert not peer.ML_DSA_44.verify(public, _message("v.example", T, ORIGIN, 0, 77, ROOT), sig[8:])


def test_overt_verifies_the_peers_cosignatures(peer: Any) -> None:
    public, secret = peer.ML_DSA_44.keygen()
    verifier = parse_vkey(_vkey("w.example", public))
    assert verifier.key_type is ML_DSA_44_COSIGNATURE
    text = format_checkpoint(Checkpoint(ORIGIN, 77, ROOT))
    signature = peer.ML_DSA_44.sign(secret, _message("w.example", T, ORIGIN, 0, 77, ROOT))
    verifier.verify(text, T.to_bytes(8, "big") + signature)
    sub = peer.ML_DSA_44.sign(secret, _message("w.example", 0, ORIGIN, 64, 72, ROOT))
    verifier.verify_subtree(ORIGIN, 64, 72, ROOT, bytes(8) + sub)
    with pytest.raises(InvalidSignatureError):
        verifier.verify_subtree(ORIGIN, 64, 80, ROOT, bytes(8) + sub)
    # FIPS 204 pure mode with an empty context: a signature under another context fails.
    other = peer.ML_DSA_44.sign(secret, _message("w.example", T, ORIGIN, 0, 77, ROOT), ctx=b"x")
    with pytest.raises(InvalidSignatureError):
        verifier.verify(text, T.to_bytes(8, "big") + other)


def test_a_log_signed_by_the_peer_opens_as_a_checkpoint(peer: Any) -> None:
    public, secret = peer.ML_DSA_44.keygen()
    log = parse_vkey(_vkey(ORIGIN, public))
    text = format_checkpoint(Checkpoint(ORIGIN, 5, ROOT))
    signature = peer.ML_DSA_44.sign(secret, _message(ORIGIN, 0, ORIGIN, 0, 5, ROOT))
    raw = key_id(ORIGIN, b"\x06" + public) + bytes(8) + signature
    note = text + f"\n\u2014 {ORIGIN} {base64.b64encode(raw).decode()}\n".encode()
    assert open_checkpoint(note, log).checkpoint.size == 5


def test_the_peer_verifies_torchwoods_log_signature(peer: Any, reference: Path) -> None:
    """Three implementations agree: Go's (torchwood's vector), OpenSSL's, dilithium-py's."""
    fixture = (reference / "vectors/torchwood/mldsa.txt").read_text("utf-8")
    match = re.search(r"-key (example\.com/mldsa-log\+\S+)", fixture)
    assert match
    body = fixture.split("old 0\n\n", 1)[1].split("```", 1)[0].encode()
    log = parse_vkey(match.group(1))
    (sig,) = parse_note(body).signatures
    message = _message(log.name, 0, log.name, 0, 1, leaf_hash(b"testonly"))
    assert peer.ML_DSA_44.verify(log.public_bytes, message, sig.signature[8:])
    open_checkpoint(body, log)
