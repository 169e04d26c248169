"""The .overt bundle format: round trips, strict parsing, and its tlog-proof text."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from overt.errors import FormatError
from overt.formats.proof import TlogProof, format_proof
from overt.publish import bundle as bundle_mod
from overt.publish.bundle import (
    MEDIA_TYPE,
    Bundle,
    ConsistencyProof,
    LoggedEntry,
    format_bundle,
    parse_bundle,
)
from overt.publish.publisher import write_bundle

from .sim import World


@pytest.fixture(scope="module")
def sample() -> Bundle:
    world = World()
    world.publish("0.1.0")
    _, b = world.publish("1.0.0", consistency_from=[1])
    keyset = b.entry  # any canonical envelope will do for the format
    return Bundle(
        b.entry,
        b.proof,
        (LoggedEntry(keyset, 0, b.proof.hashes),),
        (LoggedEntry(keyset, 1, ()),),
        b.consistency,
    )


def test_exported_names() -> None:
    assert set(bundle_mod.__all__) == {
        "MAX_BUNDLE_SIZE", "MEDIA_TYPE", "Bundle", "ConsistencyProof", "LoggedEntry",
        "format_bundle", "parse_bundle",
    }  # fmt: skip


def test_round_trip_is_exact(sample: Bundle) -> None:
    data = format_bundle(sample)
    assert parse_bundle(data) == sample
    assert format_bundle(parse_bundle(data)) == data
    assert data.endswith(b"}\n") and b"\n" not in data[:-1]
    obj = json.loads(data)
    assert obj["mediaType"] == MEDIA_TYPE == "application/vnd.overt.bundle.v1+json"
    assert list(obj) == sorted(obj)
    assert obj["consistency"][0]["old_size"] == 1


def test_proof_text_is_exactly_format_proof(sample: Bundle) -> None:
    for p in (
        sample.proof,
        TlogProof(0, (), sample.proof.checkpoint),
        TlogProof(7, sample.proof.hashes, sample.proof.checkpoint, extra=b"context"),
    ):
        assert bundle_mod._proof_text(p).encode() == format_proof(p)


def _mutations() -> list[tuple[str, object]]:
    def m(path: list[object], value: object) -> object:
        def go(o: dict[str, object]) -> None:
            target: object = o
            for p in path[:-1]:
                target = target[p]  # type: ignore[index]
            if value is KeyError:
                del target[path[-1]]  # type: ignore[attr-defined]
            else:
                target[path[-1]] = value  # type: ignore[index]

        return go

    return [
        ("members", m(["extra"], 1)),
        ("members", m(["keysets"], KeyError)),
        ("mediaType", m(["mediaType"], "application/vnd.overt.bundle.v2+json")),
        ("proof", m(["proof"], 5)),
        ("tlog-proof", m(["proof"], "c2sp.org/tlog-proof@v2\nindex 0\n\nx")),
        ("keysets", m(["keysets"], {})),
        ("members", m(["keysets", 0, "extra"], 1)),
        ("index", m(["keysets", 0, "index"], -1)),
        ("index", m(["keysets", 0, "index"], True)),
        ("index", m(["keysets", 0, "index"], 1.0)),
        ("hash", m(["keysets", 0, "hashes", 0], "AAAA")),
        ("base64", m(["keysets", 0, "hashes", 0], "!" * 44)),
        ("canonical", m(["keysets", 0, "hashes", 0], "A" * 43 + "B")),
        ("hashes", m(["keysets", 0, "hashes"], "x")),
        ("old_size", m(["consistency", 0, "old_size"], "1")),
        ("members", m(["consistency", 0, "new"], 1)),
        ("DSSE", m(["envelope", "payload"], "!!")),
        ("DSSE", m(["attestations", 0, "envelope"], [])),
    ]


@pytest.mark.parametrize(("reason", "mutate"), _mutations())
def test_malformed_bundles_are_refused(sample: Bundle, reason: str, mutate: object) -> None:
    obj = json.loads(format_bundle(sample))
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(FormatError, match=reason):
        parse_bundle(json.dumps(obj).encode())


def test_every_truncation_is_refused(sample: Bundle) -> None:
    data = format_bundle(sample)
    for n in range(0, len(data) - 1, 7):
        with pytest.raises(FormatError):
            parse_bundle(data[:n])


def test_oversized_and_duplicate_members_are_refused(sample: Bundle) -> None:
    with pytest.raises(FormatError, match="larger than"):
        parse_bundle(b" " * (bundle_mod.MAX_BUNDLE_SIZE + 1))
    data = format_bundle(sample)
    with pytest.raises(FormatError, match="duplicate"):
        parse_bundle(data.replace(b'{"attestations"', b'{"mediaType":"x","attestations"', 1))


def test_format_refuses_non_canonical_entries(sample: Bundle) -> None:
    with pytest.raises(FormatError, match="canonical"):
        format_bundle(Bundle(b" " + sample.entry, sample.proof))
    with pytest.raises(FormatError):
        format_bundle(Bundle(b"not json", sample.proof))


def test_consistency_proof_dataclass() -> None:
    c = ConsistencyProof(1, 2, (b"\x00" * 32,))
    assert (c.old_size, c.new_size) == (1, 2)


def test_write_bundle_does_not_follow_a_planted_temp_name(sample: Bundle, tmp_path: Path) -> None:
    # The old temporary names were .NAME.PID.TID.tmp, opened without O_EXCL|O_NOFOLLOW:
    # a symlink planted there had the bundle written through it.
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    path = tmp_path / "agent.msi.overt"
    (tmp_path / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp").symlink_to(victim)
    write_bundle(path, sample)
    assert victim.read_text() == "untouched\n"
    assert parse_bundle(path.read_bytes()) == sample


def test_hash_lists_are_parsed_exactly_as_one_strict_decode_each() -> None:
    """The bundle's one-match fast path for hash lists accepts exactly what the strict
    per-hash decode accepts: every spelling of 32 bytes other than the canonical one, and
    anything that is not 32 bytes, is refused."""
    import base64

    from overt.formats.strict import json_b64
    from overt.publish.bundle import _hashes

    good = base64.b64encode(bytes(range(32))).decode()
    assert _hashes([good, good]) == (bytes(range(32)),) * 2
    assert _hashes([]) == ()
    spellings = [
        good[:-1],  # no padding
        good + "=",  # too much padding
        good[:-2] + "B=",  # unused bits set
        good[:-1] + "A",  # padding replaced
        " " + good,
        good.replace("A", "-", 1),
        base64.b64encode(bytes(31)).decode(),
        base64.b64encode(bytes(33)).decode(),
        base64.urlsafe_b64encode(bytes([0xFB] * 32)).decode(),
        good + "," + good,
        "",
    ]
    for bad in spellings:
        with pytest.raises(FormatError):
            json_b64(bad, "overt bundle", "a hash", 32)
        with pytest.raises(FormatError):
            _hashes([good, bad])
    for bad_type in (None, 1, [good], {"h": good}):
        with pytest.raises(FormatError):
            _hashes([good, bad_type])
    for last in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/":
        text = good[:-2] + last + "="
        try:
            want: object = json_b64(text, "overt bundle", "a hash", 32)
        except FormatError:
            want = FormatError
        try:
            got: object = _hashes([text])[0]
        except FormatError:
            got = FormatError
        assert got == want, text


def test_a_parsed_entry_is_its_envelope_formatted() -> None:
    """parse_bundle takes an entry's bytes from the bundle's own JSON (not re-encoded):
    they must be exactly format_envelope of the envelope parsed, for every shape."""
    import json as _json

    from overt.formats.dsse import envelope_from_json, format_envelope
    from overt.publish.bundle import _entry

    for sigs in (
        [{"keyid": "k1", "sig": "AAAA"}],
        [{"sig": "AAAA"}],
        [{"keyid": None, "sig": "AAAA"}],
        [{"keyid": "k1", "sig": "AAAA"}, {"keyid": "é", "sig": "AQID"}],
    ):
        obj = {"payload": "eyJhIjoxfQ==", "payloadType": "application/x-é", "signatures": sigs}
        entry, envelope = _entry(_json.loads(_json.dumps(obj)))
        assert entry == format_envelope(envelope_from_json(obj)) == format_envelope(envelope)
