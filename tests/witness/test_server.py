"""The witness over HTTP: every status code on bad input, the read endpoints, the client."""

from __future__ import annotations

import hashlib
import importlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.errors import FormatError, InvalidSignatureError
from overt.formats.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint, sign_checkpoint
from overt.formats.cosignature import CosignatureSigner, cosignature_timestamp
from overt.formats.note import parse_note, parse_vkey
from overt.formats.policy import parse_policy, verify_checkpoint
from overt.formats.witness import MAX_REQUEST_SIZE, parse_cosignature_lines
from overt.log.log import Log
from overt.witness import __all__ as witness_all
from overt.witness.client import WitnessClient
from overt.witness.config import LOGS, LogsWatcher
from overt.witness.core import known_logs
from overt.witness.errors import (
    UnknownLogError,
    WitnessConflictError,
    WitnessConsistencyError,
    WitnessRequestError,
    WitnessSignatureError,
    WitnessUnavailableError,
)

from .simulators import T0, Clock, LogSimulator, WitnessUnderTest

ORIGIN = "http.example/log"


class Served:
    def __init__(self, url: str, log: LogSimulator, witness: WitnessUnderTest) -> None:
        self.url = url
        self.log = log
        self.witness = witness

    def post(self, body: bytes) -> httpx.Response:
        return httpx.post(f"{self.url}/add-checkpoint", content=body)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    log = LogSimulator(ORIGIN)
    witness = WitnessUnderTest(tmp_path / "w", "w.example/witness", [log], Clock())
    with witness.serve() as url:
        yield Served(url, log, witness)


def test_package_exports() -> None:
    assert set(witness_all) == {
        "UnknownLogError",
        "WitnessClient",
        "WitnessConflictError",
        "WitnessConsistencyError",
        "WitnessError",
        "WitnessRequestError",
        "WitnessSignatureError",
        "WitnessUnavailableError",
    }


def test_200_is_signature_lines_that_verify(served: Served) -> None:
    note = served.log.grow(3)
    reply = served.post(served.log.body(0))
    assert reply.status_code == 200
    assert reply.content.startswith("\u2014 w.example/witness ".encode())
    assert reply.content.endswith(b"\n")
    (sig,) = parse_cosignature_lines(reply.content)
    assert cosignature_timestamp(sig.signature) == int(T0)
    opened = open_checkpoint(
        note + reply.content,
        served.log.verifier,
        cosigners=[served.witness.signer.verifier()],
    )
    assert len(opened.cosignatures()) == 1


# --- every refusal, on the wire ---------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 0\n",
        b"old 00\n\n",
        b"hello\n\nworld\n",
        b"old 1\nnot base64!\n\n",
        b"\xff\xfe",
    ],
)
def test_400_malformed_body(served: Served, body: bytes) -> None:
    reply = served.post(body)
    assert reply.status_code == 400
    assert reply.headers["content-type"].startswith("text/plain")


def test_400_malformed_checkpoint_in_a_valid_note(served: Served) -> None:
    bad = b"old 0\n\n\n" + served.log.grow(1)  # an empty line before the origin
    assert served.post(bad).status_code == 400


def test_413_oversized_body(served: Served) -> None:
    reply = served.post(b"old 0\n\n" + b"a" * (MAX_REQUEST_SIZE + 1))
    assert reply.status_code == 413
    assert reply.headers["connection"] == "close"


def test_400_old_size_above_checkpoint_size(served: Served) -> None:
    served.log.grow(3)
    body = served.log.body(0).replace(b"old 0\n", b"old 4\n", 1)
    assert served.post(body).status_code == 400


def test_403_untrusted_key(served: Served) -> None:
    impostor = LogSimulator(ORIGIN)
    impostor.grow(2)
    assert served.post(impostor.body(0)).status_code == 403


def test_403_bad_signature_by_the_trusted_key(served: Served) -> None:
    served.log.grow(2)
    body = bytearray(served.log.body(0))
    body[-5] = ord("A") if body[-5] != ord("A") else ord("B")
    assert served.post(bytes(body)).status_code == 403


def test_404_unknown_origin(served: Served) -> None:
    other = LogSimulator("other.example/log")
    other.grow(1)
    reply = served.post(other.body(0))
    assert reply.status_code == 404
    assert b"other.example/log" in reply.content


def test_409_has_the_size_body(served: Served) -> None:
    served.log.grow(4)
    assert served.post(served.log.body(0)).status_code == 200
    served.log.grow(1)
    reply = served.post(served.log.body(3))
    assert reply.status_code == 409
    assert reply.headers["content-type"] == "text/x.tlog.size"
    assert reply.content == b"4\n"


def test_422_bad_proof(served: Served) -> None:
    served.log.grow(4)
    assert served.post(served.log.body(0)).status_code == 200
    served.log.grow(4)
    # One hash too many at the end of the proof.
    body = served.log.body(4).replace(b"\n\n", b"\n" + b"A" * 43 + b"=\n\n", 1)
    assert served.post(body).status_code == 422


def test_422_empty_root_on_a_fresh_log(tmp_path: Path) -> None:
    log = LogSimulator("fresh.example/log")
    witness = WitnessUnderTest(tmp_path / "w", "w.example/witness", [log], Clock())
    empty = sign_checkpoint(Checkpoint(log.origin, 0, b"\7" * 32), log.signer)
    with witness.serve() as url:
        reply = httpx.post(f"{url}/add-checkpoint", content=b"old 0\n\n" + empty)
    assert reply.status_code == 422


def test_405_and_unknown_paths(served: Served) -> None:
    assert httpx.get(f"{served.url}/add-checkpoint").status_code == 405
    assert httpx.post(f"{served.url}/logs").status_code == 405
    assert httpx.get(f"{served.url}/nothing-here").status_code == 404
    assert httpx.get(f"{served.url}/").status_code == 404


def test_mutated_requests_never_cause_a_500(served: Served) -> None:
    served.log.grow(9)
    assert served.post(served.log.body(0)).status_code == 200
    served.log.grow(5)
    body = served.log.body(9)
    rng = random.Random(3)
    with httpx.Client() as client:
        for _ in range(300):
            mutated = bytearray(body)
            for _ in range(rng.randint(1, 3)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            cut = rng.choice([len(mutated), rng.randrange(len(mutated))])
            reply = client.post(f"{served.url}/add-checkpoint", content=bytes(mutated[:cut]))
            assert reply.status_code in (200, 400, 403, 404, 409, 422), reply.content


# --- read endpoints ---------------------------------------------------------------------


def test_read_endpoints(served: Served) -> None:
    assert httpx.get(f"{served.url}/logs").content == b""
    assert httpx.get(f"{served.url}/checkpoint/{quote(ORIGIN, safe='')}").status_code == 404
    note = served.log.grow(6)
    lines = served.post(served.log.body(0)).content
    assert httpx.get(f"{served.url}/logs").content == ORIGIN.encode() + b"\n"
    for path in (
        f"/checkpoint/{quote(ORIGIN, safe='')}",  # percent-encoded, as the client sends it
        f"/checkpoint/{ORIGIN}",  # a raw slash works too
        f"/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint",  # the spec's path
    ):
        reply = httpx.get(served.url + path)
        assert reply.status_code == 200, path
        assert reply.content == note + lines
    unknown = hashlib.sha256(b"nobody").hexdigest()
    assert httpx.get(f"{served.url}/{unknown}/checkpoint").status_code == 404
    assert httpx.get(f"{served.url}/checkpoint/nobody").status_code == 404


# --- the client ---------------------------------------------------------------------


def test_client_maps_every_status(served: Served) -> None:
    log = served.log
    with WitnessClient(served.url, 5, verifier=served.witness.signer.verifier()) as client:
        log.grow(3)
        assert client.add_checkpoint(*log.request(0)).startswith("\u2014".encode())
        log.grow(2)
        with pytest.raises(WitnessConflictError):
            client.add_checkpoint(*log.request(0))
        with pytest.raises(WitnessRequestError):
            client.add_checkpoint(5, [], log.checkpoint(3))
        with pytest.raises(WitnessSignatureError):
            impostor = LogSimulator(ORIGIN)
            impostor.grow(6)
            client.add_checkpoint(*impostor.request(0))
        with pytest.raises(UnknownLogError) as unknown:
            other = LogSimulator("other.example/log")
            other.grow(1)
            client.add_checkpoint(*other.request(0))
        assert unknown.value.origin == "other.example/log"
        with pytest.raises(WitnessConsistencyError):
            client.add_checkpoint(3, [b"\0" * 32], log.checkpoint())
        assert client.latest("other.example/log") is None
        assert client.logs() == [ORIGIN]


def test_client_refuses_to_send_a_malformed_request(served: Served) -> None:
    with WitnessClient(served.url) as client, pytest.raises(FormatError):
        client.add_checkpoint(0, [b"short"], served.log.grow(1))


def test_client_checks_the_cosignature_with_the_witness_key(served: Served) -> None:
    served.log.grow(2)
    wrong = CosignatureSigner("w.example/witness", Ed25519PrivateKey.generate()).verifier()
    # Another key under the same name: the reply has no cosignature by it.
    with (
        WitnessClient(served.url, verifier=wrong) as client,
        pytest.raises(WitnessUnavailableError, match="no cosignature"),
    ):
        client.add_checkpoint(*served.log.request(0))
    good = served.witness.signer.verifier()
    served.log.grow(1)
    reply = served.post(served.log.body(2))
    assert reply.status_code == 200
    # A cosignature of another checkpoint does not verify for this one.
    sig = parse_cosignature_lines(reply.content)[0]
    with pytest.raises(InvalidSignatureError):
        good.verify(parse_note(served.log.checkpoint(2)).text, sig.signature)


def test_client_network_failure_is_unavailable(tmp_path: Path) -> None:
    log = LogSimulator(ORIGIN)
    log.grow(1)
    with WitnessClient("http://127.0.0.1:9", timeout=2) as client:
        with pytest.raises(WitnessUnavailableError) as err:
            client.add_checkpoint(*log.request(0))
        assert err.value.status == 0
        with pytest.raises(WitnessUnavailableError):
            client.latest(ORIGIN)


# --- with the real log ------------------------------------------------------------------


def test_real_log_checkpoints_are_witnessed_and_pass_a_policy(tmp_path: Path) -> None:
    clock = Clock()
    with Log.create(tmp_path / "log", "real.example/log") as log:
        log_verifier = parse_vkey(log.vkey)
        witnesses = []
        for region in ("asia", "europe"):
            w = WitnessUnderTest(tmp_path / region, f"{region}.example/w", [], clock)
            w.logs = known_logs([log_verifier])
            witnesses.append(w)
        policy = parse_policy(
            (
                f"log {log.vkey}\n"
                + "".join(f"witness w{i} {w.signer.vkey}\n" for i, w in enumerate(witnesses))
                + "group all-of-them all w0 w1\nquorum all-of-them\n"
            ).encode()
        )
        with witnesses[0].serve() as url0, witnesses[1].serve() as url1:
            clients = [WitnessClient(url0), WitnessClient(url1)]
            witnessed = 0
            for batch in range(3):
                log.add_many([b"entry %d.%d" % (batch, i) for i in range(5 + batch)])
                note = log.checkpoint()
                size = parse_checkpoint(parse_note(note).text).size
                proof = log.consistency_proof(witnessed, size) if witnessed else []
                lines = b"".join(c.add_checkpoint(witnessed, proof, note) for c in clients)
                verified = verify_checkpoint(note + lines, policy, clock(), max_age=60)
                assert verified.checkpoint.size == size
                witnessed = size
            for c in clients:
                c.close()


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            "overt.witness.errors",
            {
                "UnknownLogError",
                "WitnessConflictError",
                "WitnessConsistencyError",
                "WitnessError",
                "WitnessRequestError",
                "WitnessSignatureError",
                "WitnessUnavailableError",
            },
        ),
        (
            "overt.witness.state",
            {
                "SCHEMA_VERSION",
                "Decide",
                "PostgresWitnessState",
                "StateError",
                "WitnessState",
                "WitnessStore",
                "open_state",
            },
        ),
        (
            "overt.witness.server",
            {"Committer", "ServerLimits", "WitnessApp", "answer_sign_subtree", "serve"},
        ),
        ("overt.witness.client", {"WitnessClient"}),
        (
            "overt.witness.config",
            {
                "LOGS",
                "SKEY",
                "STATE",
                "VKEY",
                "LogsWatcher",
                "WitnessConfig",
                "init_witness",
                "load_witness",
                "read_logs",
                "trust_log",
            },
        ),
    ],
)
def test_module_exports(module: str, names: set[str]) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == names
    for name in names:
        assert hasattr(mod, name)


def test_known_logs_are_reloaded_and_a_broken_list_keeps_the_old_ones(tmp_path: Path) -> None:
    first, second = LogSimulator("first.example/log"), LogSimulator("second.example/log")
    witness = WitnessUnderTest(tmp_path / "w", "w.example/witness", [first], Clock())
    (tmp_path / "w" / LOGS).write_text(first.vkey + "\n")
    witness.reload = LogsWatcher(tmp_path / "w")
    first.grow(1)
    second.grow(1)
    with witness.serve() as url, WitnessClient(url) as client:
        client.add_checkpoint(*first.request(0))
        (tmp_path / "w" / LOGS).write_text("garbage\n")
        time.sleep(1.05)
        first.grow(1)
        client.add_checkpoint(*first.request(1))  # the broken list is not used
        (tmp_path / "w" / LOGS).write_text(second.vkey + "\n")
        time.sleep(1.05)
        client.add_checkpoint(*second.request(0))
        with pytest.raises(UnknownLogError):  # dropped from the list: no longer witnessed
            first.grow(1)
            client.add_checkpoint(*first.request(2))
