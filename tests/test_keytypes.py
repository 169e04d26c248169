"""Key types as a registry (overt.formats.keytypes) and ML-DSA-44 cosignatures (type 0x06).

External vectors: the ML-DSA-44 log key and signed checkpoint of torchwood's litewitness
test (tests/data/vectors/torchwood/mldsa.txt, made by Go's crypto/mldsa). No Go toolchain
on this machine: Go is present through that fixed output; the live peer is dilithium-py
(tests/interop/test_mldsa_peer.py).
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import mldsa

from overt.cli import _util as cli_util
from overt.errors import (
    ConfigError,
    FormatError,
    InvalidSignatureError,
    OvertError,
    PolicyError,
    UnknownKeyError,
)
from overt.formats import keytypes
from overt.formats.checkpoint import Checkpoint, format_checkpoint, open_checkpoint
from overt.formats.cosignature import (
    ALG_ML_DSA_44,
    COSIGNATURE_V1,
    ML_DSA_44_COSIGNATURE,
    cosign_line,
    cosignature_timestamp,
    subtree_line,
    subtree_message,
)
from overt.formats.keytypes import (
    ED25519,
    ED25519_NOTE,
    ML_DSA_44,
    KeySigner,
    KeyType,
    KeyVerifier,
    Purpose,
    choose,
    generate,
    key_type,
    key_types,
    parse_skey,
    parse_vkey,
    register,
)
from overt.formats.merkle import leaf_hash
from overt.formats.note import open_note, parse_note, sign_note
from overt.formats.policy import parse_policy, verify_checkpoint

T = 1679315147
ORIGIN = "example.com/behind-the-sofa"
ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
TEXT = format_checkpoint(Checkpoint(ORIGIN, 20852163, ROOT))
EMPTY = hashlib.sha256(b"").digest()


def mutations(data: bytes) -> Iterator[bytes]:
    """Every truncation; every single-bit flip and a few syntax bytes at every position."""
    for i in range(len(data)):
        yield data[:i]
    for i, byte in enumerate(data):
        values = {byte ^ (1 << bit) for bit in range(8)} | set(b"\n +=\x00A/")
        for v in sorted(values - {byte}):
            yield data[:i] + bytes([v]) + data[i + 1 :]


def _pq(name: str = "witness.example/pq", now: float = T) -> KeySigner:
    return generate(ML_DSA_44_COSIGNATURE, name, clock=lambda: now)


@pytest.fixture(scope="module")
def torchwood(reference: Path) -> tuple[str, bytes, bytes]:
    """(log vkey, signed checkpoint, gentest seed) of torchwood's ML-DSA-44 litewitness test."""
    text = (reference / "vectors/torchwood/mldsa.txt").read_text("utf-8")
    match = re.search(r"-key (example\.com/mldsa-log\+\S+)", text)
    seed = re.search(r"# gentest seed: ([0-9a-f]{64})", text)
    assert match and seed
    body = text.split("old 0\n\n", 1)[1].split("```", 1)[0]
    return match.group(1), body.encode(), bytes.fromhex(seed.group(1))


# --- the registry -----------------------------------------------------------------------


def test_the_registry_holds_three_types() -> None:
    assert [(kt.alg, kt.name) for kt in key_types()] == [
        (0x01, "ed25519"),
        (0x04, "cosignature/v1"),
        (0x06, "ml-dsa-44"),
    ]
    assert key_type(0x06) is ML_DSA_44_COSIGNATURE and ALG_ML_DSA_44 == 0x06
    assert (ML_DSA_44.public_size, ML_DSA_44.seed_size, ML_DSA_44.signature_size) == (
        1312,
        32,
        2420,
    )
    assert ML_DSA_44_COSIGNATURE.signature_size == 8 + 2420
    assert COSIGNATURE_V1.signature_size == 8 + 64 and ED25519_NOTE.signature_size == 64
    assert keytypes.algorithms() == (ED25519, ML_DSA_44)
    with pytest.raises(FormatError, match="0x02"):
        key_type(0x02)


def test_what_each_type_may_sign() -> None:
    assert ED25519_NOTE.purposes == {Purpose.NOTE, Purpose.CHECKPOINT}
    assert COSIGNATURE_V1.purposes == {Purpose.COSIGNATURE}
    assert ML_DSA_44_COSIGNATURE.purposes == {
        Purpose.CHECKPOINT,
        Purpose.COSIGNATURE,
        Purpose.SUBTREE,
    }
    assert choose("ed25519", Purpose.CHECKPOINT) is ED25519_NOTE
    assert choose("ed25519", Purpose.COSIGNATURE) is COSIGNATURE_V1
    assert choose("ml-dsa-44", Purpose.CHECKPOINT) is ML_DSA_44_COSIGNATURE
    assert choose("ml-dsa-44", Purpose.COSIGNATURE) is ML_DSA_44_COSIGNATURE
    with pytest.raises(ConfigError, match="ml-dsa-44"):
        choose("ed25519", Purpose.SUBTREE)
    with pytest.raises(ConfigError):
        choose("rsa", Purpose.CHECKPOINT)


def test_the_cli_offers_exactly_the_registered_algorithms() -> None:
    # cli/_util spells them out so that `overt --help` imports no formats.
    assert tuple(a.name for a in keytypes.algorithms()) == cli_util.KEY_TYPES
    assert cli_util.DEFAULT_KEY_TYPE == keytypes.DEFAULT_ALGORITHM


def test_a_type_byte_is_registered_once() -> None:
    register(ED25519_NOTE)  # the same entry again is a no-op
    with pytest.raises(ConfigError, match="0x06"):
        register(replace(ML_DSA_44_COSIGNATURE, name="impostor"))


def test_a_new_key_type_is_one_registry_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a type touches only where its KeyType is declared: keys, notes, policy follow."""
    monkeypatch.setattr(keytypes, "_REGISTRY", dict(keytypes._REGISTRY))
    prefixed = register(
        KeyType(
            alg=0xFA,  # reserved by signed-note for future use: no real key has it
            name="example-prefixed",
            algorithm=ML_DSA_44,
            purposes=frozenset({Purpose.NOTE}),
            message=lambda name, _t, text: b"example/v1\n" + text,
        )
    )
    signer = generate(prefixed, "example.com/k")
    assert parse_skey(signer.skey).vkey == signer.vkey
    verifier = parse_vkey(signer.vkey)
    assert verifier.key_type is prefixed
    note = sign_note(b"hello\n", [signer])
    assert open_note(note, [verifier]).note.text == b"hello\n"
    raw = verifier.public_key
    sig = parse_note(note).signatures[0].signature
    raw.verify(sig, b"example/v1\nhello\n")  # the entry's message, nothing else


# --- ML-DSA-44 keys ---------------------------------------------------------------------


def test_ml_dsa_keys_follow_the_spec_key_id_rule() -> None:
    signer = _pq()
    public = base64.b64decode(signer.vkey.split("+", 2)[2])
    assert public[0] == 0x06 and len(public) == 1 + 1312
    expected = hashlib.sha256(b"witness.example/pq\n" + public).digest()[:4]
    assert signer.key_id == expected and signer.vkey.split("+")[1] == expected.hex()
    assert parse_vkey(signer.vkey) == signer.verifier()
    again = parse_skey(signer.skey)
    assert again.vkey == signer.vkey and again.skey == signer.skey
    assert "PRIVATE" not in repr(signer)
    assert len(base64.b64decode(signer.skey.split("+", 4)[4])) == 1 + 32  # type || seed


def test_torchwood_seed_gives_torchwood_key(torchwood: tuple[str, bytes, bytes]) -> None:
    vkey, _, seed = torchwood
    signer = KeySigner(
        ML_DSA_44_COSIGNATURE,
        "example.com/mldsa-log",
        mldsa.MLDSA44PrivateKey.from_seed_bytes(seed),
    )
    assert signer.vkey == vkey


def test_torchwood_log_signature_verifies(torchwood: tuple[str, bytes, bytes]) -> None:
    vkey, note, _ = torchwood
    log = parse_vkey(vkey)
    assert log.key_type is ML_DSA_44_COSIGNATURE
    signed = open_checkpoint(note, log)
    assert signed.checkpoint.size == 1
    assert signed.checkpoint.root_hash == leaf_hash(b"testonly")
    sig = signed.verified[0][1].signature
    assert len(sig) == 8 + 2420 and log.timestamp(sig) == 0  # made by SignSubtree
    assert isinstance(log, KeyVerifier)
    log.verify_subtree("example.com/mldsa-log", 0, 1, leaf_hash(b"testonly"), sig)
    with pytest.raises(InvalidSignatureError):
        log.verify_subtree("example.com/mldsa-log", 0, 1, leaf_hash(b"testonlz"), sig)


def test_every_byte_of_an_ml_dsa_vkey_matters(torchwood: tuple[str, bytes, bytes]) -> None:
    vkey = torchwood[0].encode()
    original = parse_vkey(vkey.decode())
    for mutated in mutations(vkey):
        try:
            other = parse_vkey(mutated.decode("utf-8", "replace"))
        except FormatError:
            continue
        assert other != original, mutated


def test_every_byte_of_an_ml_dsa_skey_matters() -> None:
    signer = _pq()
    skey = signer.skey.encode()
    for mutated in mutations(skey):
        try:
            other = parse_skey(mutated.decode("utf-8", "replace"))
        except FormatError:
            continue
        assert other.vkey != signer.vkey, mutated


def test_every_byte_of_an_ml_dsa_cosignature_line_matters(
    torchwood: tuple[str, bytes, bytes],
) -> None:
    """Every truncation and every change of the line's text, every bit of its signature.

    (Every syntax byte at every base64 position, as for Ed25519, would be 30,000 ML-DSA
    verifications; flipping each decoded byte reaches every signature byte in 2,432.)
    """
    vkey, note, _ = torchwood
    log = parse_vkey(vkey)
    text, line = note.split(b"\n\n", 1)
    prefix, b64 = line[:-1].rsplit(b" ", 1)
    raw = base64.b64decode(b64)
    assert len(raw) == 4 + 8 + 2420
    open_note(note, [log])
    candidates = [line[:i] for i in range(len(line))]
    candidates += [m + b" " + b64 + b"\n" for m in mutations(prefix)]
    for i in range(len(raw)):
        flipped = raw[:i] + bytes([raw[i] ^ (1 << (i % 8))]) + raw[i + 1 :]
        candidates.append(prefix + b" " + base64.b64encode(flipped) + b"\n")
    for mutated in candidates:
        try:
            opened = open_note(text + b"\n\n" + mutated, [log])
        except OvertError:
            continue
        pytest.fail(f"mutated signature line accepted: {opened.verified[0][1]!r}")


def test_every_byte_of_the_signed_checkpoint_matters(torchwood: tuple[str, bytes, bytes]) -> None:
    vkey, note, _ = torchwood
    log = parse_vkey(vkey)
    text, line = note.split(b"\n\n", 1)
    for mutated in mutations(text + b"\n"):
        try:
            open_checkpoint(mutated + b"\n" + line, log)
        except OvertError:
            continue
        pytest.fail(f"mutated checkpoint accepted: {mutated!r}")


# --- ML-DSA-44 cosignatures -------------------------------------------------------------


def _spec_message(name: bytes, t: int, origin: bytes, start: int, end: int, root: bytes) -> bytes:
    """tlog-cosignature's cosigned_message, written out independently of overt's code."""
    return (
        b"subtree/v1\n\x00"
        + struct.pack(">B", len(name))
        + name
        + struct.pack(">Q", t)
        + struct.pack(">B", len(origin))
        + origin
        + struct.pack(">QQ", start, end)
        + root
    )


def test_a_cosignature_signs_the_spec_message() -> None:
    w = _pq()
    sig = w.sign(TEXT)
    assert len(sig) == 8 + 2420 and cosignature_timestamp(sig) == T
    message = _spec_message(w.name.encode(), T, ORIGIN.encode(), 0, 20852163, ROOT)
    assert subtree_message(w.name, T, ORIGIN, 0, 20852163, ROOT) == message
    w.public_key.verify(sig[8:], message)
    w.verify(TEXT, sig)
    line = cosign_line(w, TEXT)
    assert line.startswith("— witness.example/pq ".encode()) and line.endswith(b"\n")
    note = sign_note(TEXT, [generate(ED25519_NOTE, ORIGIN)])
    assert open_note(note[:-1] + b"\n" + line, [w.verifier()]).verified  # a note's line


def test_the_signature_commits_to_the_cosigner_name() -> None:
    """One ML-DSA key, two names: a cosignature by one name is no cosignature by the other."""
    w = _pq("a.example/w")
    other = KeyVerifier(ML_DSA_44_COSIGNATURE, "b.example/w", w.public_key)
    with pytest.raises(InvalidSignatureError):
        other.verify(TEXT, w.sign(TEXT))


def test_a_cosignature_of_another_tree_or_time_fails() -> None:
    w = _pq()
    sig = w.sign(TEXT)
    other = format_checkpoint(Checkpoint(ORIGIN, 20852164, ROOT))
    for text, signature in [
        (other, sig),
        (TEXT, (T + 1).to_bytes(8, "big") + sig[8:]),
        (TEXT, sig[:-1]),
        (TEXT, sig + b"\x00"),
        (TEXT, (1 << 63).to_bytes(8, "big") + sig[8:]),
    ]:
        with pytest.raises(InvalidSignatureError):
            w.verify(text, signature)


def test_ed25519_and_ml_dsa_signatures_are_not_interchangeable() -> None:
    ed = generate(COSIGNATURE_V1, "witness.example/pq", clock=lambda: T)
    pq = _pq()
    with pytest.raises(InvalidSignatureError):
        pq.verify(TEXT, ed.sign(TEXT))
    with pytest.raises(InvalidSignatureError):
        ed.verify(TEXT, pq.sign(TEXT))


def test_checkpoints_with_extension_lines_are_refused() -> None:
    """The ML-DSA message does not cover them: they would be unsigned text (as in torchwood)."""
    w = _pq()
    extended = format_checkpoint(Checkpoint(ORIGIN, 5, ROOT, ("ext",)))
    with pytest.raises(FormatError, match="extension"):
        w.sign(extended)
    sig = w.sign(TEXT.replace(b"20852163", b"5"))
    with pytest.raises(InvalidSignatureError):
        w.verify(extended, sig)


def test_names_and_origins_fit_in_a_length_byte() -> None:
    generate(ML_DSA_44_COSIGNATURE, "n" * 255)
    with pytest.raises(FormatError, match="255"):
        generate(ML_DSA_44_COSIGNATURE, "n" * 256)
    generate(COSIGNATURE_V1, "n" * 256)  # Ed25519's message does not carry the name
    with pytest.raises(FormatError, match="origin"):
        _pq().sign(format_checkpoint(Checkpoint("o" * 256, 5, ROOT)))
    _pq().sign(format_checkpoint(Checkpoint("o" * 255, 5, ROOT)))


def test_the_empty_tree_has_the_empty_hash() -> None:
    w = _pq()
    w.verify(format_checkpoint(Checkpoint("a", 0, EMPTY)), w.sign(b"a\n0\n" + _b64(EMPTY)))
    with pytest.raises(FormatError, match="empty"):
        w.sign(format_checkpoint(Checkpoint("a", 0, ROOT)))


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data) + b"\n"


def test_a_broken_clock_is_refused() -> None:
    for now in (-1.0, float("nan"), float(1 << 63)):
        with pytest.raises(ConfigError):
            _pq(now=now).sign(TEXT)


# --- subtree cosignatures ---------------------------------------------------------------


def test_a_subtree_cosignature_has_timestamp_zero() -> None:
    w = _pq()
    line = subtree_line(w, ORIGIN, 8, 12, ROOT)
    sig = base64.b64decode(line.decode().rstrip("\n").split(" ")[-1])[4:]
    assert sig[:8] == bytes(8)
    w.public_key.verify(sig[8:], _spec_message(w.name.encode(), 0, ORIGIN.encode(), 8, 12, ROOT))
    w.verify_subtree(ORIGIN, 8, 12, ROOT, sig)
    for args in [(ORIGIN, 8, 13, ROOT), (ORIGIN, 0, 12, ROOT), ("other", 8, 12, ROOT)]:
        with pytest.raises(InvalidSignatureError):
            w.verify_subtree(*args, sig)
    with pytest.raises(InvalidSignatureError):  # a timestamp on a subtree not at 0
        w.verify_subtree(ORIGIN, 8, 12, ROOT, T.to_bytes(8, "big") + sig[8:])


def test_a_checkpoint_cosignature_is_one_of_the_whole_tree() -> None:
    w = _pq()
    w.verify_subtree(ORIGIN, 0, 20852163, ROOT, w.sign(TEXT))


def test_subtree_ranges_the_message_cannot_carry() -> None:
    for start, end, t in [(5, 4, 0), (4, 4, 0), (1, 2, T), (-1, 2, 0), (0, 1 << 63, 0)]:
        with pytest.raises(FormatError):
            subtree_message("w", t, ORIGIN, start, end, ROOT)
    with pytest.raises(FormatError):
        subtree_message("w", 0, ORIGIN, 0, 1, ROOT[:31])


def test_only_subtree_types_sign_subtrees() -> None:
    ed = generate(COSIGNATURE_V1, "w.example/ed")
    with pytest.raises(ConfigError, match="subtrees"):
        ed.sign_subtree(ORIGIN, 0, 1, ROOT)
    with pytest.raises(InvalidSignatureError):
        ed.verify_subtree(ORIGIN, 0, 1, ROOT, bytes(8 + 64))


# --- quorums of both kinds --------------------------------------------------------------


def test_a_mixed_quorum_counts_both_kinds() -> None:
    log = generate(ML_DSA_44_COSIGNATURE, ORIGIN, clock=lambda: T)
    ed = generate(COSIGNATURE_V1, "ed.example/w", clock=lambda: T + 1)
    pq = generate(ML_DSA_44_COSIGNATURE, "pq.example/w", clock=lambda: T + 2)
    policy = parse_policy(
        f"log {log.vkey}\nwitness ed {ed.vkey}\nwitness pq {pq.vkey}\n"
        "group both all ed pq\nquorum both\n".encode()
    )
    note = sign_note(TEXT, [log, ed, pq])
    verified = verify_checkpoint(note, policy, now=T + 10, max_age=60)
    assert verified.cosigned == {"ed": T + 1, "pq": T + 2}
    assert verified.quorum_time == T + 1
    with pytest.raises(PolicyError, match="quorum"):
        verify_checkpoint(sign_note(TEXT, [log, ed]), policy, now=T + 10)
    with pytest.raises(UnknownKeyError):  # a log signature is required, of the log's type
        verify_checkpoint(sign_note(TEXT, [ed, pq]), policy, now=T + 10)


def test_policy_refuses_keys_of_the_wrong_role() -> None:
    log = generate(ML_DSA_44_COSIGNATURE, ORIGIN)
    ed_witness = generate(COSIGNATURE_V1, "ed.example/w")
    with pytest.raises(FormatError, match="does not sign checkpoints"):
        parse_policy(f"log {ed_witness.vkey}\nquorum none\n".encode())
    plain = generate(ED25519_NOTE, "plain.example/w")
    with pytest.raises(FormatError, match="cosignature"):
        parse_policy(f"log {log.vkey}\nwitness w {plain.vkey}\nquorum w\n".encode())


def test_cosignature_timestamps_of_both_sizes() -> None:
    assert cosignature_timestamp(_pq().sign(TEXT)) == T
    assert cosignature_timestamp(generate(COSIGNATURE_V1, "e", clock=lambda: 7).sign(TEXT)) == 7
    with pytest.raises(FormatError):
        cosignature_timestamp(bytes(8 + 100))


def test_the_per_type_classes_ask_the_key_type() -> None:
    """Ed25519Signer, CosignatureVerifier...: constructors, and isinstance by key type."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from overt.formats.cosignature import CosignatureSigner, CosignatureVerifier
    from overt.formats.note import Ed25519Signer, Ed25519Verifier

    private = Ed25519PrivateKey.generate()
    cosigner = CosignatureSigner("w.example", private, clock=lambda: T)
    parsed = parse_skey(cosigner.skey)
    assert type(parsed) is KeySigner and isinstance(parsed, CosignatureSigner)
    assert isinstance(parse_vkey(cosigner.vkey), CosignatureVerifier)
    assert parse_vkey(cosigner.vkey) == CosignatureVerifier("w.example", private.public_key())
    assert not isinstance(parsed, Ed25519Signer) and not isinstance(_pq(), CosignatureSigner)
    assert not isinstance(parse_vkey(cosigner.vkey), Ed25519Verifier)
    plain = Ed25519Signer("w.example", private)
    assert plain.key_id != cosigner.key_id  # one key, two types: two key IDs
    assert isinstance(parse_skey(plain.skey), Ed25519Signer)
