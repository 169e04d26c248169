"""overt's tlog-policy extension for c2sp.org/tlog-mirror: mirror lines and the mirror quorum."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import FormatError, InvalidSignatureError, PolicyError
from overt.formats.checkpoint import Checkpoint, sign_checkpoint
from overt.formats.cosignature import CosignatureSigner
from overt.formats.note import Ed25519Signer, format_note, parse_note, sign_note
from overt.formats.policy import (
    MirrorQuorumError,
    Policy,
    PolicyMirror,
    format_policy,
    mirror_prefix,
    mirrors_holding,
    parse_policy,
    require_mirrors,
    verify_checkpoint,
)

NOW = 1_700_000_000
ORIGIN = "example.com/log"


class Keys:
    """A log and named cosigners (witnesses and mirrors alike hold cosignature keys)."""

    def __init__(self, names: Sequence[str] = ("w1", "m1", "m2")) -> None:
        self.log = Ed25519Signer(ORIGIN, Ed25519PrivateKey.generate())
        self.cosigners = {
            n: CosignatureSigner(f"{n}.example/c", Ed25519PrivateKey.generate(), lambda: NOW)
            for n in names
        }

    def vkey(self, name: str) -> str:
        return self.cosigners[name].vkey

    def checkpoint(self, size: int = 10, cosigners: Sequence[str] = ()) -> bytes:
        note = sign_checkpoint(Checkpoint(ORIGIN, size, bytes(range(32))), self.log)
        for name in cosigners:
            parsed = parse_note(note)
            note = sign_note(parsed.text, [self.cosigners[name]], existing=parsed)
        return note

    def policy_text(self, extra: str = "") -> str:
        return (
            f"log {self.log.vkey}\n"
            f"witness w1 {self.vkey('w1')} http://127.0.0.1:1/w\n"
            f"mirror m1 {self.vkey('m1')} http://127.0.0.1:2/m\n"
            f"mirror m2 {self.vkey('m2')} http://127.0.0.1:3/m min-index=4\n"
            "group holders 2 m1 m2\n"
            "quorum w1\n"
            "mirror-quorum holders\n"
        ) + extra

    def policy(self) -> Policy:
        return parse_policy(self.policy_text().encode())


def test_two_mirrors_and_a_witness_in_one_policy() -> None:
    k = Keys()
    p = k.policy()
    assert [w.name for w in p.witnesses] == ["w1"]
    assert p.mirrors == (
        PolicyMirror("m1", k.vkey("m1"), "http://127.0.0.1:2/m", 0),
        PolicyMirror("m2", k.vkey("m2"), "http://127.0.0.1:3/m", 4),
    )
    assert p.mirror_quorum == "holders"
    assert format_policy(p).decode() == k.policy_text()  # already canonical
    assert parse_policy(format_policy(p)) == p
    # The witness quorum is met by w1; the mirror cosignatures are verified and recorded too.
    v = verify_checkpoint(k.checkpoint(cosigners=["w1", "m1", "m2"]), p, NOW)
    assert set(v.cosigned) == {"w1", "m1", "m2"}
    sizes = dict.fromkeys(v.cosigned, v.checkpoint.size)
    assert require_mirrors(p, sizes, 4, 10) == ("m1", "m2")
    # The mirrors do not stand in for the witness quorum unless it names them.
    with pytest.raises(PolicyError, match="witness quorum"):
        verify_checkpoint(k.checkpoint(cosigners=["m1", "m2"]), p, NOW)


def test_a_mirror_never_counts_below_its_minimum_index() -> None:
    k = Keys()
    p = k.policy()
    sizes = {"w1": 10, "m1": 10, "m2": 10}
    assert mirrors_holding(p, sizes, 3, 10) == ("m1",)  # m2 starts at 4
    with pytest.raises(MirrorQuorumError) as err:
        require_mirrors(p, sizes, 3, 10)
    assert (err.value.first, err.value.end, err.value.holding) == (3, 10, ("m1",))
    assert require_mirrors(p, sizes, 4, 5) == ("m1", "m2")


def test_a_mirror_holds_only_up_to_the_size_it_cosigned() -> None:
    k = Keys()
    p = k.policy()
    assert mirrors_holding(p, {"m1": 10, "m2": 7}, 5, 8) == ("m1",)
    with pytest.raises(MirrorQuorumError, match=r"\[5, 8\): held by m1"):
        require_mirrors(p, {"m1": 10, "m2": 7}, 5, 8)
    assert require_mirrors(p, {"m1": 10, "m2": 8}, 5, 8) == ("m1", "m2")


def test_a_witness_cosignature_is_not_a_mirror_holding_data() -> None:
    k = Keys()
    p = k.policy()
    with pytest.raises(MirrorQuorumError, match="held by m1"):
        require_mirrors(p, {"w1": 10, "m1": 10}, 4, 10)


def test_without_a_mirror_quorum_nothing_is_demanded() -> None:
    k = Keys()
    p = parse_policy(k.policy_text().replace("mirror-quorum holders\n", "").encode())
    assert p.mirror_quorum is None
    assert require_mirrors(p, {}, 0, 10) == ()
    assert require_mirrors(k.policy(), {}, 5, 5) == ()  # an empty range needs no data


def test_the_witness_quorum_may_count_mirrors() -> None:
    # A mirror is a cosigner: it too checked the checkpoint extends the last one it saw.
    k = Keys()
    text = k.policy_text().replace("quorum w1\n", "group any1 any w1 m1\nquorum any1\n")
    p = parse_policy(text.encode())
    assert set(verify_checkpoint(k.checkpoint(cosigners=["m1"]), p, NOW).cosigned) == {"m1"}


def test_a_forged_mirror_cosignature_refuses_the_checkpoint() -> None:
    k = Keys()
    p = k.policy()
    parsed = parse_note(k.checkpoint(cosigners=["w1", "m1"]))
    sigs = [
        replace(s, signature=s.signature[:-1] + bytes([s.signature[-1] ^ 1]))
        if s.name == "m1.example/c"
        else s
        for s in parsed.signatures
    ]
    forged = format_note(replace(parsed, signatures=tuple(sigs)))
    with pytest.raises(InvalidSignatureError, match="m1"):
        verify_checkpoint(forged, p, NOW)


def test_mirror_prefix_is_the_hex_sha256_of_the_origin() -> None:
    h = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert mirror_prefix("https://m.example/mon/", ORIGIN) == f"https://m.example/mon/{h}"


def _bad_mirror_policies() -> list[tuple[str, str]]:
    k = Keys()
    log, w1, m1 = k.log.vkey, k.vkey("w1"), k.vkey("m1")
    head = f"log {log}\nwitness w1 {w1}\n"
    return [
        (head + "mirror m1\nquorum w1\n", "mirror takes"),
        (head + f"mirror m1 {m1} u1 u2\nquorum w1\n", "mirror takes"),
        (head + f"mirror m1 {m1} min-index=1 u\nquorum w1\n", "mirror takes"),
        (head + f"mirror m1 {m1} u min-index=1 min-index=2\nquorum w1\n", "mirror takes"),
        (head + f"mirror m1 {m1} min-index=01\nquorum w1\n", "min-index"),
        (head + f"mirror m1 {m1} min-index=+1\nquorum w1\n", "min-index"),
        (head + f"mirror m1 {m1} min-index=\nquorum w1\n", "min-index"),
        (head + f"mirror m1 {m1} min-index=-1\nquorum w1\n", "min-index"),
        (head + f"mirror m1 {log}\nquorum w1\n", "cosignature"),
        (head + f"mirror m1 {w1}\nquorum w1\n", "duplicate witness or mirror key"),
        (head + f"mirror w1 {m1}\nquorum w1\n", "defined twice"),
        (head + f"mirror none {m1}\nquorum w1\n", "predefined"),
        (head + f"mirror m1 {m1}\nmirror m2 {m1}\nquorum w1\n", "duplicate"),
        (head + f"mirror m1 {m1}\nquorum w1\nmirror-quorum w1\n", "not mirrors"),
        (head + f"mirror m1 {m1}\ngroup g 1 m1 w1\nquorum w1\nmirror-quorum g\n", "not mirrors"),
        (head + f"mirror m1 {m1}\nquorum w1\nmirror-quorum none\n", "not defined above"),
        (head + f"quorum w1\nmirror-quorum m1\nmirror m1 {m1}\n", "not defined above"),
        (head + f"mirror m1 {m1}\nquorum w1\nmirror-quorum m1\nmirror-quorum m1\n", "more than"),
        (head + f"mirror m1 {m1}\nquorum w1\nmirror-quorum\n", "takes one name"),
        (head + f"mirror m1 {m1}\nquorum w1\nmirror-quorum m1 m1\n", "takes one name"),
        (head + f"mirrors m1 {m1}\nquorum w1\n", "unknown keyword"),
    ]


@pytest.mark.parametrize(("text", "reason"), _bad_mirror_policies())
def test_malformed_mirror_lines_are_refused(text: str, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_policy(text.encode())


def test_every_single_byte_change_of_a_mirror_policy_is_refused_or_changes_it() -> None:
    # No byte of a policy is ignored: flipping one either breaks it or makes a different policy.
    k = Keys()
    text = k.policy_text().encode()
    original = parse_policy(text)
    for i in range(len(text)):
        mutated = text[:i] + bytes([text[i] ^ 0x01]) + text[i + 1 :]
        try:
            p = parse_policy(mutated)
        except (FormatError, PolicyError):
            continue
        assert p != original, f"byte {i} ({chr(text[i])!r}) changed nothing"
        assert parse_policy(format_policy(p)) == p


def test_every_truncation_of_a_mirror_policy_is_refused_or_a_smaller_policy() -> None:
    k = Keys()
    text = k.policy_text().encode()
    for n in range(len(text)):
        try:
            p = parse_policy(text[:n])
        except (FormatError, PolicyError):
            continue
        # Cut right after "quorum w1": a valid policy without the mirror quorum (the line
        # is optional), or the whole policy without its final newline.
        assert p.mirror_quorum is None or text[:n] == text[:-1]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_mirror_quorum_matches_a_direct_count(data: st.DataObject) -> None:
    # k of n mirrors, each with a minimum index and a cosigned size: the quorum holds a range
    # exactly when k of them cover it.
    n = data.draw(st.integers(1, 4))
    k = data.draw(st.integers(1, n))
    names = [f"m{i}" for i in range(n)]
    keys = Keys(("w1", *names))
    mins = [data.draw(st.integers(0, 20)) for _ in names]
    sizes = {m: data.draw(st.integers(0, 30)) for m in names}
    first = data.draw(st.integers(0, 25))
    end = data.draw(st.integers(first, 30))
    lines = "".join(
        f"mirror {m} {keys.vkey(m)}" + (f" min-index={lo}" if lo else "") + "\n"
        for m, lo in zip(names, mins, strict=True)
    )
    p = parse_policy(
        f"log {keys.log.vkey}\nwitness w1 {keys.vkey('w1')}\n{lines}"
        f"group g {k} {' '.join(names)}\nquorum w1\nmirror-quorum g\n".encode()
    )
    covering = [m for m, lo in zip(names, mins, strict=True) if lo <= first and end <= sizes[m]]
    if first >= end or len(covering) >= k:
        require_mirrors(p, sizes, first, end)
    else:
        with pytest.raises(MirrorQuorumError):
            require_mirrors(p, sizes, first, end)
    assert mirrors_holding(p, sizes, first, end) == tuple(covering)
