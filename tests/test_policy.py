"""c2sp.org/tlog-policy: parsing, formatting, quorum evaluation and checkpoint verification."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.errors import (
    FormatError,
    InvalidSignatureError,
    PolicyError,
    StaleError,
    UnknownKeyError,
)
from overt.formats import policy as policy_mod
from overt.formats.checkpoint import Checkpoint, OriginError, sign_checkpoint
from overt.formats.cosignature import ALG_COSIGNATURE_V1, CosignatureSigner
from overt.formats.note import Ed25519Signer, Signature, format_note, parse_note, sign_note
from overt.formats.policy import (
    Group,
    Policy,
    PolicyLog,
    format_policy,
    parse_policy,
    verify_checkpoint,
)

NOW = 1_700_000_000
ORIGIN = "example.com/log"


def test_exported_names() -> None:
    assert set(policy_mod.__all__) == {
        "FUTURE_SKEW", "MAX_POLICY_SIZE", "NONE", "Group", "MirrorQuorumError", "Policy",
        "PolicyLog", "PolicyMirror", "PolicyWitness", "VerifiedCheckpoint", "format_policy",
        "mirror_prefix", "mirrors_holding", "open_trusted_checkpoint", "parse_policy",
        "require_mirrors", "verify_checkpoint",
    }  # fmt: skip


class Keys:
    """A log and named witnesses, each with a fresh key."""

    def __init__(self, witnesses: Sequence[str] = ("w1", "w2", "w3"), origin: str = ORIGIN):
        self.log = Ed25519Signer(origin, Ed25519PrivateKey.generate())
        self.witnesses = {
            n: CosignatureSigner(f"{n}.example/witness", Ed25519PrivateKey.generate(), lambda: NOW)
            for n in witnesses
        }

    def witness_lines(self) -> str:
        return "".join(f"witness {n} {s.vkey}\n" for n, s in self.witnesses.items())

    def policy(self, quorum: str = "group q 2 w1 w2 w3\nquorum q\n") -> Policy:
        return parse_policy(f"log {self.log.vkey}\n{self.witness_lines()}{quorum}".encode())

    def checkpoint(self, size: int = 5, cosigners: dict[str, float] | None = None) -> bytes:
        """A checkpoint signed by the log and cosigned by ``{witness: time}``."""
        note = sign_checkpoint(Checkpoint(self.log.name, size, bytes(range(32))), self.log)
        for name, when in (cosigners or {}).items():
            w = self.witnesses[name]
            signer = CosignatureSigner(w.name, w._private, lambda when=when: when)
            parsed = parse_note(note)
            note = sign_note(parsed.text, [signer], existing=parsed)
        return note


def _spec_example() -> str:
    spec = (Path(__file__).parent / "data/specs/c2sp/tlog-policy.md").read_text()
    return spec.split("## Example policy")[1].split("```")[1].strip("\n") + "\n"


def test_the_spec_example_policy_parses_with_real_keys(reference: Path) -> None:
    text = (reference / "specs/c2sp/tlog-policy.md").read_text()
    example = text.split("## Example policy")[1].split("```")[1]
    keys = Keys(("X1", "X2", "X3", "Y1", "Y2", "Y3"))
    example = example.replace("log <vkey>", f"log {keys.log.vkey}")
    for name, signer in keys.witnesses.items():
        example = example.replace(f"witness {name} <vkey>", f"witness {name} {signer.vkey}")
    p = parse_policy(example.encode())
    assert [w.name for w in p.witnesses] == ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    assert p.groups == (
        Group("X-witnesses", "2", ("X1", "X2", "X3")),
        Group("Y-witnesses", "any", ("Y1", "Y2", "Y3")),
        Group("X-and-Y", "all", ("X-witnesses", "Y-witnesses")),
    )
    assert p.quorum == "X-and-Y"
    # "at least two of the X-witnesses, and at least one of the Y-witnesses"
    assert p.quorum_met({"X1", "X3", "Y2"})
    assert not p.quorum_met({"X1", "Y1", "Y2", "Y3"})
    assert not p.quorum_met({"X1", "X2", "X3"})
    assert parse_policy(format_policy(p)) == p
    cp = keys.checkpoint(cosigners={"X2": NOW, "X3": NOW, "Y3": NOW})
    assert set(verify_checkpoint(cp, p, NOW).cosigned) == {"X2", "X3", "Y3"}
    with pytest.raises(PolicyError):
        verify_checkpoint(keys.checkpoint(cosigners={"X2": NOW, "X3": NOW}), p, NOW)


def test_whitespace_comments_urls_and_order() -> None:
    k = Keys()
    text = (
        "# a comment\n\n   \t\n"
        f"\twitness w1 {k.witnesses['w1'].vkey}   https://w1.example/ \n"
        f"  # indented comment\nlog\t{k.log.vkey}\thttps://log.example/\n"
        f"witness w2 {k.witnesses['w2'].vkey}\n"
        "group g any w1 w2\nquorum g"  # no final newline: accepted
    )
    p = parse_policy(text.encode())
    assert p.logs[0].url == "https://log.example/"
    assert p.logs[0].origin == ORIGIN
    assert p.witnesses[0].url == "https://w1.example/"
    assert (
        format_policy(p)
        == (
            f"log {k.log.vkey} https://log.example/\n"
            f"witness w1 {k.witnesses['w1'].vkey} https://w1.example/\n"
            f"witness w2 {k.witnesses['w2'].vkey}\n"
            "group g any w1 w2\nquorum g\n"
        ).encode()
    )
    assert parse_policy(format_policy(p)) == p


def test_names_are_opaque_octets() -> None:
    k = Keys(("K", "\u212a"))
    text = f"witness K {k.witnesses['K'].vkey}\n".encode()
    text += b"witness \xe2\x84\xaa " + k.witnesses["\u212a"].vkey.encode() + b"\n"
    text += b"witness \xff\xfe " + Keys(("z",)).witnesses["z"].vkey.encode() + b"\n"
    text += b"group g all K \xe2\x84\xaa \xff\xfe\nquorum g\n"
    p = parse_policy(text)
    assert len({w.name for w in p.witnesses}) == 3
    assert format_policy(p) == text


def _bad_policies() -> list[tuple[str, str]]:
    k = Keys()
    w1, w2 = k.witnesses["w1"].vkey, k.witnesses["w2"].vkey
    log = k.log.vkey
    return [
        (f"log {log}\nwitness w1 {w1}\nquorum w1\n\r", "control"),
        (f"log {log}\x00\nquorum none\n", "control"),
        (f"log {log}\nquorum none\nquorum none\n", "more than one quorum"),
        (f"log {log}\nquorum w1\nwitness w1 {w1}\n", "not defined above"),
        (f"log {log}\nwitness w1 {w1}\ngroup g 1 w2\nquorum g\n", "not defined above"),
        (f"log {log}\nwitness w1 {w1}\ngroup g 1 none\nquorum g\n", "not defined above"),
        (f"log {log}\nwitness w1 {w1}\ngroup g 1 w1 w1\nquorum g\n", "twice"),
        (f"log {log}\nwitness w1 {w1}\ngroup g 2 w1\nquorum g\n", "threshold"),
        (f"log {log}\nwitness w1 {w1}\ngroup g 0 w1\nquorum g\n", "threshold"),
        (f"log {log}\nwitness w1 {w1}\ngroup g 01 w1\nquorum g\n", "threshold"),
        (f"log {log}\nwitness w1 {w1}\ngroup g +1 w1\nquorum g\n", "threshold"),
        (f"log {log}\nwitness w1 {w1}\ngroup g some w1\nquorum g\n", "threshold"),
        (f"log {log}\nwitness w1 {w1}\ngroup g 1\nquorum g\n", "at least one member"),
        (f"log {log}\nwitness w1 {w1}\nwitness w1 {w2}\nquorum w1\n", "defined twice"),
        (f"log {log}\nwitness w1 {w1}\ngroup w1 any w1\nquorum w1\n", "defined twice"),
        (f"log {log}\nwitness none {w1}\nquorum none\n", "predefined"),
        (f"log {log}\nwitness w1 {w1}\nwitness w2 {w1}\nquorum w1\n", "duplicate witness key"),
        (f"log {log}\nlog {log}\nquorum none\n", "duplicate log key"),
        (f"log {w1}\nquorum none\n", "does not sign checkpoints"),
        (f"log {log}\nwitness w1 {log}\nquorum none\n", "cosignature"),
        (f"log {log}\nwitness w1 {w1[:-2]}\nquorum none\n", "vkey"),
        (f"log {log} url extra\nquorum none\n", "log takes"),
        (f"log {log}\nwitness w1\nquorum none\n", "witness takes"),
        (f"log {log}\nquorum\n", "quorum takes"),
        (f"log {log}\nquorum none none\n", "quorum takes"),
        (f"log {log}\nwitnesses w1 {w1}\nquorum none\n", "unknown keyword"),
        (f"LOG {log}\nquorum none\n", "unknown keyword"),
    ]


@pytest.mark.parametrize(("text", "reason"), _bad_policies())
def test_malformed_policies_are_refused(text: str, reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        parse_policy(text.encode())


@pytest.mark.parametrize("text", [b"", b"\n", b"# only a comment\n", b"log x"])
def test_empty_policy_is_a_policy_error_never_a_pass(text: bytes) -> None:
    with pytest.raises((PolicyError, FormatError)):
        parse_policy(text)
    if text != b"log x":
        with pytest.raises(PolicyError, match="no quorum"):
            parse_policy(text)


def test_policy_without_any_log_key_refuses_every_checkpoint() -> None:
    k = Keys()
    p = parse_policy(f"{k.witness_lines()}group q 2 w1 w2 w3\nquorum q\n".encode())
    cp = k.checkpoint(cosigners={"w1": NOW, "w2": NOW})
    with pytest.raises(PolicyError, match="no log key"):
        verify_checkpoint(cp, p, NOW)
    # ...unless the application supplies the log key from elsewhere (spec: "known from context").
    assert verify_checkpoint(cp, p, NOW, extra_logs=[PolicyLog(k.log.vkey)]).checkpoint.size == 5


def test_unsatisfiable_policy_object_is_refused() -> None:
    k = Keys()
    empty = Policy((PolicyLog(k.log.vkey),), (), (), None)
    with pytest.raises(PolicyError):
        verify_checkpoint(k.checkpoint(), empty, NOW)
    with pytest.raises(PolicyError):
        format_policy(empty)


def test_two_of_three_quorum() -> None:
    k = Keys()
    p = k.policy()
    for signers in ({"w1", "w2"}, {"w2", "w3"}, {"w1", "w3"}, {"w1", "w2", "w3"}):
        v = verify_checkpoint(k.checkpoint(cosigners=dict.fromkeys(signers, NOW)), p, NOW)
        assert set(v.cosigned) == signers
        assert v.log.origin == ORIGIN
        assert v.quorum_time == NOW
    for signers in (set(), {"w1"}, {"w3"}):
        cp = k.checkpoint(cosigners=dict.fromkeys(signers, NOW))
        with pytest.raises(PolicyError, match="not met"):
            verify_checkpoint(cp, p, NOW)


def test_cosignatures_by_unknown_witnesses_do_not_count() -> None:
    k = Keys()
    stranger = Keys(("w1", "w2"))  # same policy names, different keys
    p = k.policy()
    note = k.checkpoint(cosigners={"w1": NOW})
    parsed = parse_note(note)
    note = sign_note(parsed.text, [stranger.witnesses["w2"]], existing=parsed)
    with pytest.raises(PolicyError, match="not met"):
        verify_checkpoint(note, p, NOW)


def test_checkpoint_with_a_forged_witness_cosignature_is_refused() -> None:
    k = Keys()
    p = k.policy()
    note = k.checkpoint(cosigners={"w1": NOW, "w2": NOW, "w3": NOW})
    parsed = parse_note(note)
    sig = parsed.signatures[2]  # w2's cosignature
    forged = Signature(sig.name, sig.key_id, sig.signature[:-1] + bytes([sig.signature[-1] ^ 1]))
    sigs = (*parsed.signatures[:2], forged, *parsed.signatures[3:])
    bad = format_note(type(parsed)(parsed.text, sigs))
    # w1 and w3 alone would meet the 2-of-3 quorum, but a forgery refuses the note.
    with pytest.raises(InvalidSignatureError):
        verify_checkpoint(bad, p, NOW)


def test_checkpoint_of_another_log_is_refused() -> None:
    k = Keys()
    other = Keys(origin="evil.example/log")
    other.witnesses = k.witnesses
    note = other.checkpoint(cosigners={"w1": NOW, "w2": NOW})
    with pytest.raises(UnknownKeyError, match="no log key"):
        verify_checkpoint(note, k.policy(), NOW)
    same_name = Keys()  # same origin, another key
    same_name.witnesses = k.witnesses
    with pytest.raises(UnknownKeyError):
        verify_checkpoint(same_name.checkpoint(cosigners={"w1": NOW, "w2": NOW}), k.policy(), NOW)
    with pytest.raises(OriginError):
        verify_checkpoint(
            k.checkpoint(cosigners={"w1": NOW, "w2": NOW}), k.policy(), NOW, origin="x.example"
        )


def test_a_policy_may_list_two_keys_for_one_log() -> None:
    k = Keys()
    rotated = Keys()
    text = f"log {k.log.vkey}\nlog {rotated.log.vkey}\n{k.witness_lines()}quorum w1\n"
    p = parse_policy(text.encode())
    rotated.witnesses = k.witnesses
    v = verify_checkpoint(rotated.checkpoint(cosigners={"w1": NOW}), p, NOW)
    assert v.log.vkey == rotated.log.vkey


def test_freeze_stale_cosignatures_are_refused_with_max_age() -> None:
    k = Keys()
    p = k.policy()
    old = k.checkpoint(cosigners={"w1": NOW - 7200, "w2": NOW - 7000, "w3": NOW - 10})
    # Quorum time is the second-newest cosignature: w3 (10 s) and w2 (7000 s).
    v = verify_checkpoint(old, p, NOW, max_age=7200)
    assert v.quorum_time == NOW - 7000
    with pytest.raises(StaleError, match="7000 s ago"):
        verify_checkpoint(old, p, NOW, max_age=3600)
    fresh = k.checkpoint(cosigners={"w1": NOW - 60, "w3": NOW - 30})
    assert verify_checkpoint(fresh, p, NOW, max_age=3600).quorum_time == NOW - 60


def test_future_cosignatures_do_not_count() -> None:
    k = Keys()
    p = k.policy()
    note = k.checkpoint(cosigners={"w1": NOW, "w2": NOW + 3600})
    with pytest.raises(PolicyError, match="not met"):
        verify_checkpoint(note, p, NOW)
    skewed = k.checkpoint(cosigners={"w1": NOW, "w2": NOW + 60})
    assert verify_checkpoint(skewed, p, NOW).quorum_time == NOW


def test_quorum_none_needs_only_the_log_but_proves_no_freshness() -> None:
    k = Keys()
    p = k.policy("quorum none\n")
    v = verify_checkpoint(k.checkpoint(), p, NOW)
    assert v.quorum_time is None and v.cosigned == {}
    with pytest.raises(StaleError):
        verify_checkpoint(k.checkpoint(), p, NOW, max_age=10**9)
    with pytest.raises(PolicyError, match="current time"):
        verify_checkpoint(k.checkpoint(), p, None, max_age=10)


def test_every_single_byte_change_of_a_cosigned_checkpoint_is_refused() -> None:
    k = Keys()
    p = k.policy()
    note = k.checkpoint(cosigners={"w1": NOW, "w2": NOW})
    verify_checkpoint(note, p, NOW)
    for i in range(len(note)):
        mutated = note[:i] + bytes([note[i] ^ 0x01]) + note[i + 1 :]
        with pytest.raises((FormatError, InvalidSignatureError, UnknownKeyError, PolicyError)):
            verify_checkpoint(mutated, p, NOW)


def test_every_truncation_of_a_policy_is_refused_or_a_smaller_policy() -> None:
    k = Keys()
    text = format_policy(k.policy())
    for n in range(len(text)):
        try:
            p = parse_policy(text[:n])
        except (FormatError, PolicyError):
            continue
        # A truncation that still parses must be the full policy minus the final newline.
        assert text[:n] == text[:-1] and p == k.policy()


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_quorum_matches_a_direct_count(data: st.DataObject) -> None:
    names = ["a", "b", "c", "d", "e"]
    k1 = data.draw(st.integers(1, 3))
    k2 = data.draw(st.integers(1, 2))
    have = data.draw(st.sets(st.sampled_from(names)))
    keys = Keys(names)
    text = keys.witness_lines() + f"group g1 {k1} a b c\ngroup g2 {k2} d e\ngroup top all g1 g2\n"
    p = parse_policy(f"log {keys.log.vkey}\n{text}quorum top\n".encode())
    expect = len(have & {"a", "b", "c"}) >= k1 and len(have & {"d", "e"}) >= k2
    assert p.quorum_met(have) == expect


def test_witness_keys_are_cosignature_type() -> None:
    assert all(s.vkey.count("+") >= 2 for s in Keys().witnesses.values())
    assert ALG_COSIGNATURE_V1 == 0x04
    assert re.fullmatch(r".+\+[0-9a-f]{8}\+B.+", next(iter(Keys().witnesses.values())).vkey)
