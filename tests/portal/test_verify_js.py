"""The in-browser verifier (static/verify.js) agrees with the server's checks, step by step.

node (>= 20, WebCrypto with Ed25519) runs the very module the portal serves on the
same bytes the Python checks see: every entry of a log, then each kind of tampering
a hostile portal server could do (a tile, a cosignature, a proof hash, the entry, the
checkpoint's root), which must turn the same steps red on both sides.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.portal.conftest import PortalLog

from overt.formats.note import format_note, parse_note, parse_vkey, sign_note
from overt.formats.policy import parse_policy
from overt.portal.app import Portal, PortalConfig
from overt.portal.checks import browser_quorum, checkpoint_steps, entry_steps

HERE = Path(__file__).parent
VERIFY_JS = HERE.parent.parent / "src" / "overt" / "portal" / "static" / "verify.js"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true: node is not installed (the in-browser verifier's test peer)")
        pytest.skip("node is not installed")
    return node


def _run_js(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    run = subprocess.run(
        [_node(), str(HERE / "run_verify.mjs"), str(VERIFY_JS)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    result: list[dict[str, Any]] = json.loads(run.stdout)
    return result


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


def _cosignature_flipped(proof: bytes, witness: str) -> bytes:
    head, _, note = proof.partition(b"\n\n")
    parsed = parse_note(note)
    sigs = []
    for s in parsed.signatures:
        if s.name == witness or s.name.startswith(witness + "."):
            s = type(s)(s.name, s.key_id, _flip(s.signature, 20))
        sigs.append(s)
    return head + b"\n\n" + format_note(type(parsed)(parsed.text, tuple(sigs)))


def _raws(portal: Portal, index: int) -> tuple[bytes, bytes, bytes]:
    return portal._raw(portal.snapshot(), index)


def _compare(portal: Portal, cases: list[tuple[str, bytes, bytes, bytes]]) -> list[dict[str, Any]]:
    policy = portal.policy
    assert policy is not None
    trust = json.loads(portal._trust(None))
    js = _run_js(
        [
            {"entry": _b64(e), "proof": _b64(p), "tile": _b64(t), "trust": trust}
            for _, e, p, t in cases
        ]
    )
    verifier = parse_vkey(portal.vkey)
    for (name, entry, proof, tile), got in zip(cases, js, strict=True):
        expected = entry_steps(entry, proof, tile, verifier, policy, time.time())
        assert [(s["name"], s["ok"]) for s in got["steps"]] == [(s.name, s.ok) for s in expected], (
            name
        )
    return js


def test_every_entry_verifies_in_node_as_on_the_server(portal_log: PortalLog) -> None:
    portal = Portal(PortalConfig(portal_log.dir))
    cases = [(f"entry {i}", *_raws(portal, i)) for i in range(len(portal_log.entries))]
    for result in _compare(portal, cases):
        assert all(s["ok"] for s in result["steps"]), result


def test_tampering_turns_the_same_steps_red_in_node(portal_log: PortalLog) -> None:
    portal = Portal(PortalConfig(portal_log.dir))
    entry, proof, tile = _raws(portal, 2)
    head, _, _note = proof.partition(b"\n\n")
    hash_line = head.split(b"\n")[2]
    bad_hash = base64.b64encode(_flip(base64.b64decode(hash_line), 0))
    cases = [
        ("tampered tile", entry, proof, _flip(tile, 2 * 32 + 5)),
        ("truncated tile", entry, proof, tile[:-1]),
        ("one tampered cosignature", entry, _cosignature_flipped(proof, "asia"), tile),
        (
            "two tampered cosignatures: below the quorum",
            entry,
            _cosignature_flipped(_cosignature_flipped(proof, "asia"), "europe"),
            tile,
        ),
        ("tampered proof hash", entry, proof.replace(hash_line, bad_hash), tile),
        ("another entry's bytes", b"not the entry", proof, tile),
        ("tampered log signature", entry, _cosignature_flipped(proof, "example.com/portal"), tile),
    ]
    results = _compare(portal, cases)
    red = {
        name: {s["name"] for s in r["steps"] if not s["ok"]}
        for (name, *_), r in zip(cases, results, strict=True)
    }
    assert red["tampered tile"] == {"tile"}
    # An invalid signature by a policy witness refuses the checkpoint, as on the server
    # (overt.formats.policy), even though two valid ones would meet the quorum.
    assert red["one tampered cosignature"] == {"cosignature asia", "witness quorum"}
    assert red["two tampered cosignatures: below the quorum"] == {
        "cosignature asia",
        "cosignature europe",
        "witness quorum",
    }
    assert red["tampered proof hash"] == {"inclusion"}
    assert red["another entry's bytes"] == {"tile", "inclusion"}
    assert red["tampered log signature"] == {"log signature", "witness quorum"}


def test_a_missing_witness_is_red_in_node_too(portal_log: PortalLog) -> None:
    portal_log.cosign(("asia",))
    portal = Portal(PortalConfig(portal_log.dir))
    (result,) = _compare(portal, [("one cosigner", *_raws(portal, 1))])
    red = {s["name"] for s in result["steps"] if not s["ok"]}
    assert red == {"cosignature europe", "cosignature americas", "witness quorum"}


def test_in_browser_verification_of_an_entry_is_fast(portal_log: PortalLog) -> None:
    # issue 14: an entry verifies in the browser in <= 200 ms (node here: the same WebCrypto).
    portal = Portal(PortalConfig(portal_log.dir))
    (result,) = _compare(portal, [("timing", *_raws(portal, 1))])
    assert result["ms"] < 200, result["ms"]


def test_policy_quorum_for_the_browser(portal_log: PortalLog) -> None:
    policy = parse_policy((portal_log.dir / "witnesses.policy").read_bytes())
    assert browser_quorum(policy) == {
        "top": "regions",
        "groups": [{"name": "regions", "k": 2, "members": ["asia", "europe", "americas"]}],
    }


def _nested_policy(made: PortalLog) -> None:
    """asia, and one of europe or americas: a group inside a group."""
    lines = (made.dir / "witnesses.policy").read_text().splitlines()
    lines = [x for x in lines if x.startswith(("log ", "witness "))]
    lines += ["group west any europe americas", "group top all asia west", "quorum top"]
    (made.dir / "witnesses.policy").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("cosigned", "met"),
    [
        (("asia", "europe"), True),
        (("asia", "americas"), True),
        (("europe", "americas"), False),  # two of three, but not asia: the nested quorum fails
        (("asia",), False),
    ],
)
def test_a_nested_group_quorum_is_decided_in_node_as_on_the_server(
    portal_log: PortalLog, cosigned: tuple[str, ...], met: bool
) -> None:
    _nested_policy(portal_log)
    portal_log.cosign(cosigned)
    portal = Portal(PortalConfig(portal_log.dir))
    (result,) = _compare(portal, [("nested", *_raws(portal, 1))])
    quorum = next(s for s in result["steps"] if s["name"] == "witness quorum")
    assert quorum["ok"] is met, quorum


def _mldsa_vkey(name: str) -> str:
    import hashlib

    from cryptography.hazmat.primitives.asymmetric import mldsa

    raw = b"\x06" + mldsa.MLDSA44PrivateKey.generate().public_key().public_bytes_raw()
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    return f"{name}+{key_id.hex()}+{base64.b64encode(raw).decode()}"


def _with_cosignature(note: bytes, vkey: str, signature: bytes) -> bytes:
    name, key_hex, _ = vkey.split("+", 2)
    key_id = bytes.fromhex(key_hex)
    line = f"\u2014 {name} {base64.b64encode(key_id + signature).decode()}\n".encode()
    return note + line


def test_an_ml_dsa_cosignature_is_left_to_the_server_not_failed_in_the_browser(
    portal_log: PortalLog,
) -> None:
    # Browsers have no ML-DSA-44 (type 0x06, issue 14): its cosignature is "checked on the
    # server" in the browser's column; a quorum that needs it is not claimed by the browser.
    portal = Portal(PortalConfig(portal_log.dir))
    note = portal.snapshot().note
    trust = json.loads(portal._trust(None))
    pq = _mldsa_vkey("pq.transparency.example")
    trust["witnesses"].append({"name": "pq", "vkey": pq})
    signed = _with_cosignature(note, pq, bytes(8 + 2420))
    needs_pq = {**trust, "quorum": {"top": "both", "groups": [
        {"name": "both", "k": 2, "members": ["asia", "pq"]}]}}  # fmt: skip
    js = _run_js([{"checkpoint": _b64(signed), "trust": t} for t in (trust, needs_pq)])
    steps = [{s["name"]: s for s in r["steps"]} for r in js]
    for by_name in steps:
        assert by_name["cosignature pq"]["ok"] is None
        assert "checked on the server" in by_name["cosignature pq"]["detail"]
        assert by_name["cosignature asia"]["ok"] is True
    assert steps[0]["witness quorum"]["ok"] is True  # 2 of asia, europe, americas suffice
    assert steps[1]["witness quorum"]["ok"] is None  # met only with the ML-DSA cosignature
    portal_log.cosign(("europe",))  # asia is missing: even the server's pq cannot make it up
    without_asia = Portal(PortalConfig(portal_log.dir)).snapshot().note
    case = {"checkpoint": _b64(_with_cosignature(without_asia, pq, bytes(2428))), "trust": needs_pq}
    (missing,) = _run_js([case])
    assert {s["name"]: s["ok"] for s in missing["steps"]}["witness quorum"] is False


def test_an_ml_dsa_log_signature_is_left_to_the_server_not_failed_in_the_browser() -> None:
    # A log that follows tlog-checkpoint's SHOULD signs with an ML-DSA-44 cosignature (0x06).
    from overt.formats.checkpoint import Checkpoint, sign_checkpoint
    from overt.formats.cosignature import COSIGNATURE_V1, ML_DSA_44_COSIGNATURE
    from overt.formats.keytypes import generate

    log = generate(ML_DSA_44_COSIGNATURE, "pq.example/log")
    witness = generate(COSIGNATURE_V1, "w.example/w")
    empty = hashlib.sha256(b"").digest()
    note = sign_checkpoint(Checkpoint(log.name, 0, empty), log)
    note = note[:-1] + b"\n" + sign_note(parse_note(note).text, [witness]).split(b"\n\n")[1]
    trust = {
        "log": log.vkey,
        "witnesses": [{"name": "w", "vkey": witness.vkey}],
        "quorum": {"top": "w", "groups": []},
    }
    other = {**trust, "log": generate(ML_DSA_44_COSIGNATURE, "pq.example/log").vkey}
    js = _run_js([{"checkpoint": _b64(note), "trust": t} for t in (trust, other)])
    steps, unsigned = ({s["name"]: s for s in r["steps"]} for r in js)
    assert steps["log signature"]["ok"] is None
    assert "checked on the server" in steps["log signature"]["detail"]
    assert steps["cosignature w"]["ok"] is True
    assert steps["witness quorum"]["ok"] is None  # the browser cannot claim the whole checkpoint
    assert unsigned["log signature"]["ok"] is False  # another key's note: no signature at all
    assert unsigned["witness quorum"]["ok"] is False


def test_the_log_pages_checkpoint_checks_agree_in_node(portal_log: PortalLog) -> None:
    portal = Portal(PortalConfig(portal_log.dir))
    note = portal.snapshot().note
    trust = json.loads(portal._trust(None))
    tampered = _cosignature_flipped(b"x\n\n" + note, "americas").split(b"\n\n", 1)[1]
    notes = {"published": note, "one tampered cosignature": tampered}
    js = _run_js([{"checkpoint": _b64(n), "trust": trust} for n in notes.values()])
    verifier = parse_vkey(portal.vkey)
    for (name, n), got in zip(notes.items(), js, strict=True):
        expected = checkpoint_steps(n, verifier, portal.policy, time.time())
        assert [(s["name"], s["ok"]) for s in got["steps"]] == [(s.name, s.ok) for s in expected], (
            name
        )
    assert all(s["ok"] for s in js[0]["steps"])
    assert {s["name"] for s in js[1]["steps"] if not s["ok"]} == {
        "cosignature americas",
        "witness quorum",
    }


def test_every_single_byte_change_of_a_proof_is_caught_in_node_as_on_the_server(
    portal_log: PortalLog,
) -> None:
    # STYLE.md: every single-byte change of a valid proof must be rejected, by both verifiers,
    # at the same steps.
    portal = Portal(PortalConfig(portal_log.dir))
    entry, proof, tile = _raws(portal, 3)
    cases = [(f"byte {i} of the proof", entry, _flip(proof, i), tile) for i in range(len(proof))]
    for (name, *_), result in zip(cases, _compare(portal, cases), strict=True):
        assert not all(s["ok"] for s in result["steps"]), name


def test_every_single_byte_change_of_the_checkpoint_fails_the_same_steps_in_node(
    portal_log: PortalLog,
) -> None:
    portal = Portal(PortalConfig(portal_log.dir))
    note = portal.snapshot().note
    trust = json.loads(portal._trust(None))
    notes = [_flip(note, i) for i in range(len(note))]
    js = _run_js([{"checkpoint": _b64(n), "trust": trust} for n in notes])
    verifier = parse_vkey(portal.vkey)
    for i, (n, got) in enumerate(zip(notes, js, strict=True)):
        expected = checkpoint_steps(n, verifier, portal.policy, time.time())
        assert [(s["name"], s["ok"]) for s in got["steps"]] == [(s.name, s.ok) for s in expected], (
            f"byte {i}"
        )
        assert not all(s["ok"] for s in got["steps"]), f"byte {i}"


def test_an_ml_dsa_witness_is_verified_on_the_server_and_left_to_it_in_node(
    portal_log: PortalLog,
) -> None:
    # A real ML-DSA-44 witness (type 0x06) in the log's policy: the server verifies its
    # cosignature, node says "checked on the server" for it and for the quorum that needs
    # it; every other step agrees.
    from overt.formats.note import generate_key, parse_skey

    skey, vkey = generate_key("pq.transparency.example", 0x06)
    policy = (portal_log.dir / "witnesses.policy").read_text()
    policy = policy.replace(
        "quorum regions", f"witness pq {vkey}\ngroup both all asia pq\nquorum both"
    )
    (portal_log.dir / "witnesses.policy").write_text(policy)
    portal_log.witnesses["pq"] = parse_skey(skey)
    portal_log.cosign(("asia", "pq"))
    portal = Portal(PortalConfig(portal_log.dir))
    entry, proof, tile = _raws(portal, 1)
    now = time.time()
    verifier = parse_vkey(portal.vkey)
    expected = {s.name: s.ok for s in entry_steps(entry, proof, tile, verifier, portal.policy, now)}
    case = {"entry": _b64(entry), "proof": _b64(proof), "tile": _b64(tile)}
    (got,) = _run_js([{**case, "trust": json.loads(portal._trust(None))}])
    steps = {s["name"]: s["ok"] for s in got["steps"]}
    assert expected["cosignature pq"] is True and expected["witness quorum"] is True
    assert steps["cosignature pq"] is None and steps["witness quorum"] is None
    both = {k: v for k, v in steps.items() if v is not None}
    assert both == {
        k: v for k, v in expected.items() if k not in ("cosignature pq", "witness quorum")
    }
