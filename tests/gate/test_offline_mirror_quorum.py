"""An offline endpoint enforces a mirror quorum from the bundle alone.

Mirrors cosign a checkpoint only once they hold its entries, after the log published it; the
log collects their cosignatures onto its published checkpoint (same text, more lines:
overt.log.mirroring), and bundles made afterwards carry them. Here: a real log directory
with a real witness and three real mirror servers (one of them down), ``overt publish
--wait-mirrors``, and an ``UpdateGate`` with no network and a 2-of-3 mirror quorum.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.mirror.sim import MirrorUnderTest

from overt.errors import InvalidSignatureError
from overt.formats.note import parse_note, parse_vkey
from overt.gate import UpdateGate, parse_client_policy
from overt.gate.errors import DataAvailabilityError
from overt.log.log import Log
from overt.log.mirroring import merge_cosignatures
from overt.witness.config import init_witness, load_witness, trust_log
from overt.witness.server import WitnessApp

if TYPE_CHECKING:
    from conftest import Server

ORIGIN = "mirror.test/log"


@contextlib.contextmanager
def _centers(
    tmp_path: Path, asgi_server: Callable[[Any], Server], up: int = 2
) -> Iterator[tuple[str, list[MirrorUnderTest]]]:
    """A log directory witnessed by one real witness, three mirrors of which ``up`` serve;
    yields the tlog-policy (the log's and the endpoints'): 2 of the 3 mirrors must hold it."""
    log = Log.create(tmp_path / "log", ORIGIN)
    witness = init_witness(tmp_path / "asia", "asia.witness.example")
    trust_log(tmp_path / "asia", log.vkey)
    config = load_witness(tmp_path / "asia")
    server = asgi_server(WitnessApp(config.open_state(), config.logs, config.signer))
    mirrors = [MirrorUnderTest(tmp_path / f"m{i}", tmp_path / "log") for i in range(3)]
    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(m.serve()) for m in mirrors[:up]]
        with socket.socket() as s:  # a port nothing listens on: that center is down
            s.bind(("127.0.0.1", 0))
            urls += [f"http://127.0.0.1:{s.getsockname()[1]}"] * (3 - up)
        policy = f"log {log.vkey}\nwitness asia {witness} {server.url}\nquorum asia\n" + "".join(
            f"mirror m{i} {m.vkey} {url}\n"
            for i, (m, url) in enumerate(zip(mirrors, urls, strict=True))
        )
        policy += "group centers 2 m0 m1 m2\nmirror-quorum centers\n"
        log.set_policy(policy.encode())
        log.close()
        (tmp_path / "centers.policy").write_text(policy)
        yield policy, mirrors


def _overt(tmp_path: Path, *argv: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "overt.cli.main", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _publish(tmp_path: Path, version: str, *extra: str) -> tuple[int, str]:
    (tmp_path / f"agent-{version}.msi").write_bytes(f"agent {version}\n".encode())
    return _overt(
        tmp_path, "publish", f"agent-{version}.msi", "--log", "log", "--key", "vendor.key",
        "--kind", "update", "--product", "agent", "--version", version, *extra,
    )  # fmt: skip


def _gate(tmp_path: Path, policy: str) -> UpdateGate:
    doc = {
        "version": 1,
        "logs": [(tmp_path / "log" / "log.vkey").read_text().strip()],
        "witness_policy": policy,
        "publisher": (tmp_path / "vendor.key.pub").read_text().strip(),
        "pins": [{"product": "agent", "channels": ["stable"]}],
        "max_checkpoint_age": 3600,
    }
    # No fetch_mirrors, no consistency fetcher: the endpoint is offline.
    return UpdateGate(parse_client_policy(json.dumps(doc).encode()), None)


def test_offline_gate_admits_a_bundle_made_after_the_mirror_quorum_cosigned(
    tmp_path: Path, asgi_server: Callable[[Any], Server]
) -> None:
    assert (
        _overt(tmp_path, "publisher", "keygen", "vendor.key", "--name", "vendor.example/r")[0] == 0
    )
    with _centers(tmp_path, asgi_server) as (policy, mirrors):
        code, out = _publish(
            tmp_path, "1.0.0", "--wait-mirrors", "centers.policy", "--timeout", "20"
        )
        assert code == 0, out
        bundle = (tmp_path / "agent-1.0.0.msi.overt").read_bytes()
        with _gate(tmp_path, policy) as gate:
            pub = gate.admit((tmp_path / "agent-1.0.0.msi").read_bytes(), bundle)
        assert {"asia", "m0", "m1"} <= set(pub.checkpoint.cosigned)
        # `overt log proof` made afterwards carries the mirror cosignatures too.
        code, out = _overt(tmp_path, "log", "proof", "log", "0")
        assert code == 0 and out.count("\u2014 mirror.test/m1 ") >= 2, out
        # A witness refresh of the same checkpoint keeps the mirrors' lines.
        with Log.open(tmp_path / "log") as log:
            before = parse_note(log.checkpoint()).signatures
            log.witness(refresh=True)
            after = parse_note(log.checkpoint()).signatures
        mirror_keys = {(parse_vkey(m.vkey).name, parse_vkey(m.vkey).key_id) for m in mirrors[:2]}
        assert mirror_keys <= {(s.name, s.key_id) for s in after}
        assert len(after) == len(before)


def test_vendor_withholding_data_from_the_centers_is_refused_offline(
    tmp_path: Path, asgi_server: Callable[[Any], Server]
) -> None:
    """The vendor logs and witnesses a release but never feeds the regional centers: the
    bundle's checkpoint carries no mirror cosignature, and an offline endpoint refuses it."""
    assert (
        _overt(tmp_path, "publisher", "keygen", "vendor.key", "--name", "vendor.example/r")[0] == 0
    )
    with _centers(tmp_path, asgi_server) as (policy, _mirrors):
        code, out = _publish(tmp_path, "1.0.0")  # no --wait-mirrors: the data stays home
        assert code == 0, out
        with _gate(tmp_path, policy) as gate, pytest.raises(DataAvailabilityError) as err:
            gate.admit(
                (tmp_path / "agent-1.0.0.msi").read_bytes(),
                (tmp_path / "agent-1.0.0.msi.overt").read_bytes(),
            )
        assert err.value.check == "mirror-quorum"


def test_publish_waiting_for_a_quorum_of_centers_that_are_down_fails_in_time(
    tmp_path: Path, asgi_server: Callable[[Any], Server]
) -> None:
    assert (
        _overt(tmp_path, "publisher", "keygen", "vendor.key", "--name", "vendor.example/r")[0] == 0
    )
    with _centers(tmp_path, asgi_server, up=1):
        started = time.monotonic()
        code, out = _publish(
            tmp_path, "1.0.0", "--wait-mirrors", "centers.policy", "--timeout", "2"
        )
        assert time.monotonic() - started < 60
    assert code == 1 and len(out.strip().splitlines()) == 1, out
    assert "mirror quorum 'centers' not met for entries [0, 1): held by m0" in out, out
    assert not (tmp_path / "agent-1.0.0.msi.overt").exists()


def test_a_forged_mirror_cosignature_is_never_added_to_the_checkpoint(tmp_path: Path) -> None:
    from overt.formats.note import Note, Signature, format_note
    from overt.mirror.config import init_mirror

    log = Log.create(tmp_path / "log", ORIGIN)
    log.add_many([b"entry"])
    published = log.checkpoint()
    mirror = parse_vkey(init_mirror(tmp_path / "m", "mirror.test/m"))
    text = parse_note(published).text
    forged = format_note(
        Note(
            text,
            (*parse_note(published).signatures, Signature(mirror.name, mirror.key_id, b"\0" * 72)),
        )
    )
    with pytest.raises(InvalidSignatureError):
        log.add_cosignatures(forged, [mirror])
    assert log.checkpoint() == published
    assert (tmp_path / "log" / "tiles" / "checkpoint").read_bytes() == published
    # A cosignature of another checkpoint (the log moved on) is not added either.
    log.add_many([b"later"])
    assert merge_cosignatures(log.checkpoint(), published, [mirror]) is None
    assert log.add_cosignatures(published, [mirror]) is False
    log.close()


def test_log_serve_adds_its_mirrors_cosignatures_to_the_served_checkpoint(
    tmp_path: Path, asgi_server: Callable[[Any], Server]
) -> None:
    """``overt log serve --mirror URL``: the served checkpoint gains the mirrors' lines."""
    import httpx

    from overt.demo import _wait_http
    from overt.log.client import LogClient

    with _centers(tmp_path, asgi_server) as (_policy, mirrors):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        argv = ["log", "serve", "log", "--listen", f"127.0.0.1:{port}"]
        for m in mirrors[:2]:
            argv += ["--mirror", m.url]
        server = subprocess.Popen(
            [sys.executable, "-m", "overt.cli.main", *argv],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_http(f"{url}/checkpoint", server, timeout=60)
            deadline = time.monotonic() + 60
            with LogClient(url, (tmp_path / "log" / "token").read_text().strip()) as client:
                client.add(b"served entry")
            keys = {(parse_vkey(m.vkey).name, parse_vkey(m.vkey).key_id) for m in mirrors[:2]}
            while True:
                note = httpx.get(f"{url}/checkpoint", timeout=5).content
                if note.split(b"\n")[1] == b"1" and keys <= {
                    (s.name, s.key_id) for s in parse_note(note).signatures
                }:
                    break
                assert time.monotonic() < deadline, note
                time.sleep(0.1)
        finally:
            server.terminate()
            server.wait(30)
