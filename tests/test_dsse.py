"""DSSE v1 envelopes: PAE from the spec, strict parsing, signing and verification."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from overt.errors import FormatError, InvalidSignatureError, PolicyError, UnknownKeyError
from overt.formats import dsse
from overt.formats.dsse import (
    PAYLOAD_TYPE_IN_TOTO,
    Envelope,
    Signature,
    format_envelope,
    pae,
    parse_envelope,
    sign_envelope,
    verify_envelope,
)

# RFC 8032 section 7.1, TEST 1: a public test key, never an operational one.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


def test_exported_names() -> None:
    assert set(dsse.__all__) == {
        "MAX_ENVELOPE_SIZE",
        "PAYLOAD_TYPE_IN_TOTO",
        "Envelope",
        "RawSigner",
        "Signature",
        "VerifiedEnvelope",
        "dump_json_canonical",
        "envelope_from_json",
        "envelope_to_json",
        "format_envelope",
        "load_json_strict",
        "pae",
        "parse_envelope",
        "sign_envelope",
        "verify_envelope",
    }


def test_pae_matches_the_dsse_spec_vector() -> None:
    # protocol.md, "Test Vectors".
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("t/\u20ac", "\u20ac".encode()) == "DSSEv1 5 t/\u20ac 3 \u20ac".encode()
    assert pae(PAYLOAD_TYPE_IN_TOTO, b"") == b"DSSEv1 28 application/vnd.in-toto+json 0 "


def test_pae_is_injective_across_the_boundary() -> None:
    assert pae("ab", b"cd") != pae("ab c", b"d")


def _key() -> tuple[str, Ed25519PrivateKey]:
    return "k1", Ed25519PrivateKey.from_private_bytes(RFC8032_SEED)


def test_sign_with_the_rfc8032_key_verifies_under_its_public_key() -> None:
    keyid, key = _key()
    assert key.public_key().public_bytes_raw() == RFC8032_PUB
    env = sign_envelope(PAYLOAD_TYPE_IN_TOTO, b'{"a":1}', [(keyid, key)])
    # Ed25519 is deterministic: the signature is a fixed function of key and PAE.
    assert env.signatures[0].sig == key.sign(pae(PAYLOAD_TYPE_IN_TOTO, b'{"a":1}'))
    verified = verify_envelope(env, {keyid: key.public_key()})
    assert verified.keyids == (keyid,)
    assert verified.payload == b'{"a":1}'


def test_format_is_canonical_and_round_trips() -> None:
    env = sign_envelope(PAYLOAD_TYPE_IN_TOTO, b"\x00\xffpayload", [_key()])
    data = format_envelope(env)
    assert data.startswith(
        b'{"payload":"AP9wYXlsb2Fk","payloadType":"application/vnd.in-toto+json"'
    )
    assert b" " not in data and not data.endswith(b"\n")
    assert parse_envelope(data) == env
    assert format_envelope(parse_envelope(data)) == data


def test_keyid_may_be_absent_and_round_trips() -> None:
    env = Envelope(b"x", "t", (Signature(None, b"s" * 64),))
    data = format_envelope(env)
    assert b"keyid" not in data
    assert parse_envelope(data) == env


def _valid_json() -> dict[str, object]:
    return json.loads(format_envelope(sign_envelope(PAYLOAD_TYPE_IN_TOTO, b"{}", [_key()])))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda o: o.pop("payload"), "members"),
        (lambda o: o.update(extra=1), "members"),
        (lambda o: o.update(payload="e30"), "base64"),  # unpadded
        (lambda o: o.update(payload="e3 0="), "base64"),
        (lambda o: o.update(payload="-_8="), "base64"),  # URL-safe alphabet
        (lambda o: o.update(payload="e31="), "canonical"),  # non-zero padding bits
        (lambda o: o.update(payload=5), "string"),
        (lambda o: o.update(payloadType=""), "payloadType"),
        (lambda o: o.update(signatures=[]), "signatures"),
        (lambda o: o.update(signatures={}), "signatures"),
        (lambda o: o.update(signatures=[{"keyid": "k"}]), "signature"),
        (lambda o: o.update(signatures=[{"sig": "", "keyid": "k"}]), "empty"),
        (lambda o: o.update(signatures=[{"sig": "AA==", "keyid": 1}]), "keyid"),
        (lambda o: o.update(signatures=[{"sig": "AA==", "x": 1}]), "signature"),
        (lambda o: o.update(signatures=[{"sig": "AA=="}] * 17), "more than"),
    ],
)
def test_malformed_envelopes_are_refused(mutate: object, reason: str) -> None:
    obj = _valid_json()
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(FormatError, match=reason):
        parse_envelope(json.dumps(obj).encode())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"null",
        b"\xff\xfe",
        b'{"payload":"","payload":"","payloadType":"t","signatures":[{"sig":"AA=="}]}',
        b'{"payload":"","payloadType":"t","signatures":[{"sig":"AA==","keyid":NaN}]}',
        b"{" * 100_000,
    ],
)
def test_garbage_is_a_format_error(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_envelope(data)


def test_oversized_envelope_is_refused_before_decoding() -> None:
    with pytest.raises(FormatError, match="larger than"):
        parse_envelope(b" " * (dsse.MAX_ENVELOPE_SIZE + 1))


def test_every_truncation_is_refused() -> None:
    data = format_envelope(sign_envelope(PAYLOAD_TYPE_IN_TOTO, b'{"a":1}', [_key()]))
    for n in range(len(data)):
        with pytest.raises(FormatError):
            parse_envelope(data[:n])


def test_every_single_byte_change_is_refused_or_fails_verification() -> None:
    keyid, key = _key()
    data = format_envelope(sign_envelope(PAYLOAD_TYPE_IN_TOTO, b'{"a":1}', [(keyid, key)]))
    trusted = {keyid: key.public_key()}
    for i in range(len(data)):
        mutated = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
        try:
            env = parse_envelope(mutated)
        except FormatError:
            continue
        with pytest.raises((InvalidSignatureError, UnknownKeyError, FormatError)):
            verify_envelope(env, trusted)


def test_tampered_payload_fails_with_invalid_signature() -> None:
    keyid, key = _key()
    env = sign_envelope(PAYLOAD_TYPE_IN_TOTO, b'{"a":1}', [(keyid, key)])
    forged = Envelope(b'{"a":2}', env.payload_type, env.signatures)
    with pytest.raises(InvalidSignatureError):
        verify_envelope(forged, {keyid: key.public_key()})


def test_payload_type_is_authenticated() -> None:
    keyid, key = _key()
    env = sign_envelope("text/plain", b"x", [(keyid, key)])
    swapped = Envelope(env.payload, "text/html", env.signatures)
    with pytest.raises(InvalidSignatureError):
        verify_envelope(swapped, {keyid: key.public_key()}, payload_type=None)
    with pytest.raises(FormatError, match="payloadType"):
        verify_envelope(env, {keyid: key.public_key()})


def test_unknown_signers_are_ignored_but_do_not_count() -> None:
    keyid, key = _key()
    other = Ed25519PrivateKey.generate()
    env = sign_envelope(PAYLOAD_TYPE_IN_TOTO, b"x", [("stranger", other), (keyid, key)])
    assert verify_envelope(env, {keyid: key.public_key()}).keyids == (keyid,)
    with pytest.raises(UnknownKeyError):
        verify_envelope(env, {"nobody": Ed25519PrivateKey.generate().public_key()})


def test_a_known_keyid_with_a_bad_signature_rejects_even_if_another_verifies() -> None:
    keyid, key = _key()
    good = sign_envelope(PAYLOAD_TYPE_IN_TOTO, b"x", [(keyid, key)]).signatures[0]
    env = Envelope(b"x", PAYLOAD_TYPE_IN_TOTO, (good, Signature(keyid, b"\x00" * 64)))
    with pytest.raises(InvalidSignatureError):
        verify_envelope(env, {keyid: key.public_key()})


def test_threshold_counts_distinct_keys() -> None:
    keyid, key = _key()
    k2 = Ed25519PrivateKey.generate()
    trusted = {keyid: key.public_key(), "k2": k2.public_key()}
    twice = sign_envelope(PAYLOAD_TYPE_IN_TOTO, b"x", [(keyid, key), (keyid, key)])
    with pytest.raises(UnknownKeyError):
        verify_envelope(twice, trusted, threshold=2)
    both = sign_envelope(PAYLOAD_TYPE_IN_TOTO, b"x", [(keyid, key), ("k2", k2)])
    assert verify_envelope(both, trusted, threshold=2).keyids == (keyid, "k2")


def test_empty_trust_is_a_policy_error_never_a_pass() -> None:
    env = sign_envelope(PAYLOAD_TYPE_IN_TOTO, b"x", [_key()])
    with pytest.raises(PolicyError):
        verify_envelope(env, {})
    with pytest.raises(PolicyError):
        verify_envelope(env, {"k1": _key()[1].public_key()}, threshold=0)
    with pytest.raises(PolicyError):
        sign_envelope(PAYLOAD_TYPE_IN_TOTO, b"x", [])


@given(st.binary(max_size=200), st.text(min_size=1, max_size=40), st.text(max_size=20))
def test_round_trip_property(payload: bytes, ptype: str, keyid: str) -> None:
    env = Envelope(payload, ptype, (Signature(keyid, b"sig"),))
    assert parse_envelope(format_envelope(env)) == env
    assert base64.b64decode(json.loads(format_envelope(env))["payload"]) == payload
