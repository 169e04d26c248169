"""Publisher keys and key sets: files, rotation, revocation, forks, following from a pin."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from overt.errors import (
    ConfigError,
    FormatError,
    InvalidSignatureError,
    UnknownKeyError,
)
from overt.formats.dsse import format_envelope, parse_envelope
from overt.publish.chain import append_chain, create_chain, read_chain
from overt.publish.keys import (
    generate_publisher_key,
    load_publisher_key,
    load_publisher_signer,
    parse_publisher_key,
    write_key_files,
)
from overt.publish.keyset import KeySetError, KeyState, follow_keyset, make_keyset_entry


def keys(n: int) -> list:  # type: ignore[type-arg]
    return [generate_publisher_key(f"vendor.example/k{i}")[1] for i in range(n)]


def test_key_files_are_private_and_round_trip(tmp_path: Path) -> None:
    skey, signer = generate_publisher_key("vendor.example/release")
    pub = write_key_files(tmp_path / "k", skey, signer)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert load_publisher_signer(tmp_path / "k").key == signer.key
    assert load_publisher_key(str(pub)) == signer.key == load_publisher_key(signer.key.vkey)
    assert signer.key.name == "vendor.example/release"
    assert len(signer.keyid) == 64
    with pytest.raises(ConfigError):
        write_key_files(tmp_path / "k", skey, signer)  # never overwritten
    os.chmod(tmp_path / "k", 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_publisher_signer(tmp_path / "k")


def test_witness_keys_are_not_publisher_keys() -> None:
    from overt.formats.cosignature import ALG_COSIGNATURE_V1
    from overt.formats.note import generate_key

    _, vkey = generate_key("w.example", ALG_COSIGNATURE_V1)
    with pytest.raises(FormatError, match="Ed25519"):
        parse_publisher_key(vkey)


def test_rotation_follows_from_the_pinned_first_key() -> None:
    a, b, c = keys(3)
    s0 = KeyState.pinned(a.key)
    e1 = make_keyset_entry(s0, [a], [a.key, b.key], threshold=2)
    s1 = follow_keyset(a.key, [e1])
    e2 = make_keyset_entry(s1, [a, b], [c.key], revoke=[a.key])
    s2 = follow_keyset(a.key, [e1, e2])
    assert (s2.sequence, [k.vkey for k in s2.keys]) == (2, [c.key.vkey])
    assert a.keyid in s2.revoked and s2.threshold == 1
    # Re-feeding the whole chain to a client that already has it is a no-op.
    assert follow_keyset(s2, [e1, e2]) == s2
    assert follow_keyset(s1, [e1, e2]) == s2


def test_threshold_of_the_previous_set_is_enforced() -> None:
    a, b, c = keys(3)
    s1 = follow_keyset(
        a.key, [make_keyset_entry(KeyState.pinned(a.key), [a], [a.key, b.key], threshold=2)]
    )
    with pytest.raises(UnknownKeyError):
        make_keyset_entry(s1, [a], [c.key])  # only one of the two required signers


def test_a_key_set_signed_by_a_stranger_is_refused() -> None:
    a, thief = keys(2)
    forged = make_keyset_entry(KeyState.pinned(thief.key), [thief], [thief.key])
    with pytest.raises(UnknownKeyError):
        follow_keyset(a.key, [forged])


def test_gaps_bad_links_and_forks_are_refused() -> None:
    a, b, c = keys(3)
    s0 = KeyState.pinned(a.key)
    e1 = make_keyset_entry(s0, [a], [b.key])
    s1 = follow_keyset(s0, [e1])
    e2 = make_keyset_entry(s1, [b], [c.key])
    with pytest.raises(KeySetError, match="follows key set 0"):
        follow_keyset(s0, [e2])  # gap
    other1 = make_keyset_entry(s0, [a], [c.key])  # a second set 1: a fork
    with pytest.raises(KeySetError, match="fork"):
        follow_keyset(s1, [other1])
    with pytest.raises(KeySetError, match="does not link"):
        follow_keyset(follow_keyset(s0, [other1]), [e2])


def test_revoked_keys_never_come_back() -> None:
    a, b = keys(2)
    s1 = follow_keyset(a.key, [make_keyset_entry(KeyState.pinned(a.key), [a], [b.key], [a.key])])
    with pytest.raises(KeySetError, match="revoked"):
        make_keyset_entry(s1, [b], [a.key, b.key])


def test_tampered_key_set_entries_are_refused() -> None:
    a, b = keys(2)
    entry = make_keyset_entry(KeyState.pinned(a.key), [a], [b.key])
    env = parse_envelope(entry)
    payload = env.payload.replace(b.key.vkey.encode(), a.key.vkey.encode())
    forged = format_envelope(type(env)(payload, env.payload_type, env.signatures))
    with pytest.raises((InvalidSignatureError, KeySetError)):
        follow_keyset(a.key, [forged])
    obj = json.loads(entry)
    obj["payloadType"] = "text/plain"
    with pytest.raises(FormatError):
        follow_keyset(a.key, [json.dumps(obj).encode()])


def test_chain_file(tmp_path: Path) -> None:
    a, b = keys(2)
    path = tmp_path / "k.chain"
    create_chain(path, a.key)
    state, entries = read_chain(path)
    assert (state.sequence, entries) == (0, [])
    e1 = make_keyset_entry(state, [a], [b.key])
    append_chain(path, e1)
    state, entries = read_chain(path)
    assert (state.sequence, entries) == (1, [e1])
    with pytest.raises(ConfigError):
        create_chain(path, a.key)
    path.write_bytes(path.read_bytes() + b"garbage\n")
    with pytest.raises(ConfigError):
        read_chain(path)
