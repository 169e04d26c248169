"""c2sp.org/tlog-checkpoint: spec example, strict parsing, signing and opening, mutation."""

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
    ConfigError,
    FormatError,
    InvalidSignatureError,
    OvertError,
    UnknownKeyError,
)
from overt.formats import checkpoint as checkpoint_module
from overt.formats.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    OriginError,
    SignedCheckpoint,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from overt.formats.cosignature import CosignatureSigner, cosign_line
from overt.formats.note import Ed25519Signer, parse_note, sign_note

ORIGIN = "example.com/behind-the-sofa"
ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")


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
def spec_note(reference: Path) -> bytes:
    text = (reference / "specs/c2sp/tlog-checkpoint.md").read_text("utf-8")
    blocks: list[str] = re.findall(r"```\n(.*?)```", text, re.S)
    return blocks[0].encode()


@pytest.fixture(scope="module")
def log() -> Ed25519Signer:
    return Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())


def test_exported_members() -> None:
    assert set(checkpoint_module.__all__) == {
        "MAX_TREE_SIZE",
        "Checkpoint",
        "OriginError",
        "SignedCheckpoint",
        "format_checkpoint",
        "open_checkpoint",
        "parse_checkpoint",
        "sign_checkpoint",
    }
    for name in checkpoint_module.__all__:
        assert hasattr(checkpoint_module, name)


def test_spec_example_parses(spec_note: bytes) -> None:
    note = parse_note(spec_note)
    cp = parse_checkpoint(note.text)
    assert cp == Checkpoint(ORIGIN, 20852163, ROOT)
    assert format_checkpoint(cp) == note.text
    assert [s.name for s in note.signatures] == [ORIGIN]  # key name = origin, as the spec says


def test_spec_example_is_refused_without_its_key(spec_note: bytes, log: Ed25519Signer) -> None:
    # The spec publishes no key for it; a key of the same name is another key.
    with pytest.raises(UnknownKeyError):
        open_checkpoint(spec_note, log.verifier())


def test_sign_and_open(log: Ed25519Signer) -> None:
    cp = Checkpoint(ORIGIN, 5, bytes(range(32)), ("ext one", "ext two"))
    signed = sign_checkpoint(cp, log)
    assert signed.startswith(format_checkpoint(cp) + b"\n\xe2\x80\x94 " + ORIGIN.encode())
    opened = open_checkpoint(signed, log.verifier(), ORIGIN)
    assert isinstance(opened, SignedCheckpoint)
    assert opened.checkpoint == cp
    assert opened.raw == signed
    assert opened.note == parse_note(signed)
    assert opened.verified[0][0] == log.verifier()
    assert opened.cosignatures() == ()


def test_wrong_origin_is_refused(log: Ed25519Signer) -> None:
    signed = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), log)
    with pytest.raises(OriginError) as info:
        open_checkpoint(signed, log.verifier(), "example.com/other-log")
    assert (info.value.origin, info.value.expected) == (ORIGIN, "example.com/other-log")


def test_log_key_named_otherwise_cannot_vouch_for_origin() -> None:
    # A key for log A signing a checkpoint whose origin is log B: refused on both ends.
    key = Ed25519PrivateKey.generate()
    signer_a = Ed25519Signer("example.com/log-a", key)
    with pytest.raises(ConfigError):
        sign_checkpoint(Checkpoint("example.com/log-b", 1, ROOT), signer_a)
    forged = sign_note(format_checkpoint(Checkpoint("example.com/log-b", 1, ROOT)), [signer_a])
    with pytest.raises(OriginError):
        open_checkpoint(forged, signer_a.verifier())


def test_checkpoint_signed_only_by_a_witness_is_refused(log: Ed25519Signer) -> None:
    witness = CosignatureSigner("witness.example/w", Ed25519PrivateKey.generate(), lambda: 1e9)
    text = format_checkpoint(Checkpoint(ORIGIN, 3, ROOT))
    only_witness = text + b"\n" + cosign_line(witness, text)
    with pytest.raises(UnknownKeyError):
        open_checkpoint(only_witness, log.verifier(), cosigners=[witness.verifier()])


def test_cosigners_are_verified_and_listed(log: Ed25519Signer) -> None:
    witnesses = [
        CosignatureSigner(f"witness{i}.example", Ed25519PrivateKey.generate(), lambda: 1.7e9)
        for i in range(3)
    ]
    signed = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), log)
    text = parse_note(signed).text
    # witnesses first in the note: the log's signature is still reported first
    cosigned = text + b"\n" + b"".join(cosign_line(w, text) for w in witnesses)
    cosigned += signed.split(b"\n\n")[1]
    verifiers = [w.verifier() for w in witnesses]
    opened = open_checkpoint(cosigned, log.verifier(), cosigners=verifiers[:2])
    assert opened.verified[0][1].name == ORIGIN
    assert [v for v, _ in opened.cosignatures()] == verifiers[:2]
    # without the cosigners' keys, their signatures are simply ignored
    assert open_checkpoint(cosigned, log.verifier()).cosignatures() == ()
    # a bad cosignature by a known witness refuses the checkpoint
    line = cosign_line(witnesses[0], text)
    sig = base64.b64decode(line.split(b" ")[-1])
    bad = line.split(b" ")[0] + b" " + line.split(b" ")[1] + b" "
    bad += base64.b64encode(sig[:-1] + bytes([sig[-1] ^ 1])) + b"\n"
    with pytest.raises(InvalidSignatureError):
        open_checkpoint(signed + bad, log.verifier(), cosigners=verifiers)


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"\n",
        ORIGIN.encode() + b"\n5\n",
        ORIGIN.encode() + b"\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",  # no final newline
        b"\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",  # empty origin
        ORIGIN.encode() + b"\n05\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        ORIGIN.encode() + b"\n+5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        ORIGIN.encode() + b"\n-5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        ORIGIN.encode() + b"\n 5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        ORIGIN.encode() + b"\n5 \nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        ORIGIN.encode() + b"\n5_0\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        ORIGIN.encode() + "\n\u0665\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n".encode(),
        ORIGIN.encode() + b"\n0x5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        ORIGIN.encode() + b"\n9223372036854775808\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        ORIGIN.encode() + b"\n" + b"9" * 5000 + b"\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        ORIGIN.encode() + b"\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",  # padding bits
        ORIGIN.encode() + b"\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I\n",  # no padding
        ORIGIN.encode() + b"\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I==\n",
        ORIGIN.encode() + b"\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jx\n",  # 30 bytes
        ORIGIN.encode() + b"\n5\nCsUYapGGPo4dkMgIAUqom-Xajj7h2fB2MPA3j2jxq2I=\n",  # base64url
        ORIGIN.encode() + b"\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n",  # empty ext
        ORIGIN.encode() + b"\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\nx\n\ny\n",
        ORIGIN.encode() + b"\r\n5\r\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\r\n",
        b"\xff\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
        b"a\tb\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: bytes) -> None:
    with pytest.raises(FormatError):
        parse_checkpoint(text)


def test_largest_size_is_accepted() -> None:
    cp = Checkpoint("o", MAX_TREE_SIZE, ROOT)
    assert parse_checkpoint(format_checkpoint(cp)) == cp
    assert parse_checkpoint(b"o\n0\n" + base64.b64encode(ROOT) + b"\n").size == 0


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint("", 1, ROOT),
        Checkpoint("a\nb", 1, ROOT),
        Checkpoint("a\tb", 1, ROOT),
        Checkpoint("\ud800", 1, ROOT),
        Checkpoint("o", -1, ROOT),
        Checkpoint("o", MAX_TREE_SIZE + 1, ROOT),
        Checkpoint("o", True, ROOT),
        Checkpoint("o", 1, ROOT[:31]),
        Checkpoint("o", 1, ROOT, ("",)),
        Checkpoint("o", 1, ROOT, ("a\nb",)),
    ],
)
def test_format_refuses_what_parse_would_not_return(cp: Checkpoint) -> None:
    with pytest.raises(FormatError):
        format_checkpoint(cp)


_line = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        Checkpoint,
        origin=_line,
        size=st.integers(0, MAX_TREE_SIZE),
        root_hash=st.binary(min_size=32, max_size=32),
        extensions=st.lists(_line, max_size=3).map(tuple),
    )
)
def test_checkpoint_round_trip(cp: Checkpoint) -> None:
    assert parse_checkpoint(format_checkpoint(cp)) == cp


def test_mutated_signed_checkpoints_are_refused(log: Ed25519Signer) -> None:
    signed = sign_checkpoint(Checkpoint(ORIGIN, 20852163, ROOT, ("x",)), log)
    assert_mutations_rejected(signed, lambda m: open_checkpoint(m, log.verifier(), ORIGIN))


def test_mutated_checkpoint_texts_are_refused_or_differ() -> None:
    text = format_checkpoint(Checkpoint(ORIGIN, 20852163, ROOT))
    # every mutation either fails to parse or parses to another checkpoint
    assert_mutations_rejected(text, parse_checkpoint)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=80)
    | st.lists(
        st.sampled_from(
            [b"\n", b"o", b"0", b"1", b"00", b" ", base64.b64encode(ROOT), b"=", b"\xe2"]
        ),
        max_size=12,
    ).map(b"".join)
)
def test_any_checkpoint_that_parses_is_canonical(data: bytes) -> None:
    try:
        cp = parse_checkpoint(data)
    except FormatError:
        return
    assert format_checkpoint(cp) == data
