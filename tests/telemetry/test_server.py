"""The collector over HTTP: receipts, refusals with the spec's status, the logged query API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from overt.cli.main import main
from overt.errors import OvertError
from overt.formats.note import parse_vkey
from overt.log.log import read_vkey
from overt.telemetry.collector import Collector
from overt.telemetry.endpoint import Endpoint
from overt.telemetry.ledger import EgressLedger, read_log_entries
from overt.telemetry.policy import parse_policy
from overt.telemetry.sealing import CollectorKey
from overt.telemetry.server import CollectorApp

from .conftest import policy_bytes

EVENT = {"type": "process", "sha256": "ab" * 32}


def test_the_http_path(tmp_path: Path, asgi_server: Callable[[Any], Any]) -> None:
    collector = Collector.init(tmp_path / "c", "eu", "eu.telemetry.example")
    collector.add_policy(policy_bytes())
    url = asgi_server(CollectorApp(collector)).url
    ledger = EgressLedger.create(tmp_path / "ledger", "acme/ledger")
    endpoint = Endpoint(parse_policy(policy_bytes()), b"s", collector.key.public, ledger)
    out = endpoint.events([EVENT])
    headers = {"x-overt-customer": "acme"}
    r = httpx.post(f"{url}/v1/payloads", content=out.sealed, headers=headers)
    assert r.status_code == 200 and r.json()["index"] == 0
    assert httpx.get(f"{url}/v1/key").content == collector.key.published()

    wrong = Endpoint(endpoint.policy, b"s", CollectorKey.generate("eu").public, ledger)
    r = httpx.post(f"{url}/v1/payloads", content=wrong.events([EVENT]).sealed, headers=headers)
    assert r.status_code == 422 and "not sealed to the eu collector key" in r.text

    read = {"actor": "bob", "customer": "acme", "digests": [out.record.digest], "reason": ""}
    assert httpx.post(f"{url}/v1/read", json=read).status_code == 401
    auth = {"authorization": f"Bearer {collector.token}"}
    r = httpx.post(f"{url}/v1/read", json=read, headers=auth)
    assert r.status_code == 400 and "reason" in r.text
    bad = {**read, "reason": "CASE-7", "digests": [7]}
    assert httpx.post(f"{url}/v1/read", json=bad, headers=auth).status_code == 400
    read["reason"] = "CASE-7"
    r = httpx.post(f"{url}/v1/read", json=read, headers=auth)
    assert r.status_code == 200 and r.json()["payloads"][0]["digest"] == out.record.digest

    # Both logs are served as tlog-tiles and verify as any log does.
    vkey = parse_vkey(read_vkey(tmp_path / "c" / "receipts"))
    _, entries = read_log_entries(f"{url}/receipts", vkey)
    assert len(entries) == 1
    _, access = read_log_entries(f"{url}/access", parse_vkey(read_vkey(tmp_path / "c" / "access")))
    assert b'"reason":"CASE-7"' in access[0]
    assert httpx.get(f"{url}/receipts/../token").status_code == 404
    ledger.close()


def test_send_and_reconcile_from_the_shell(
    tmp_path: Path, asgi_server: Callable[[Any], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    collector = Collector.init(tmp_path / "c", "eu", "eu.telemetry.example")
    url = asgi_server(CollectorApp(collector)).url
    policy = policy_bytes(collectors={"eu": url})
    collector.add_policy(policy)
    (tmp_path / "p.json").write_bytes(policy)
    (tmp_path / "ev.jsonl").write_text(json.dumps(EVENT) + "\n" + json.dumps(EVENT) + "\n")
    key = str(tmp_path / "c" / "collector.key.pub")
    ledger = str(tmp_path / "ledger")
    (tmp_path / "salt").write_bytes(b"acme salt")
    argv = ["telemetry", "send", str(tmp_path / "p.json"), str(tmp_path / "ev.jsonl")]
    argv += ["--salt-file", str(tmp_path / "salt")]
    vkey = str(tmp_path / "c" / "receipts" / "log.vkey")
    sent = [*argv, "--ledger", ledger, "--key", key, "--batch", "1", "--receipts-vkey", vkey]
    assert main(sent) == 0
    rec = ["telemetry", "reconcile", ledger, f"{url}/receipts", "--receipts-vkey", vkey]
    capsys.readouterr()
    assert main(rec) == 0
    assert capsys.readouterr().out.endswith("2 matched, 0 missing, 0 extra, 0 altered\n")
    (tmp_path / "doc.exe").write_bytes(b"{\\rtf1 hello}")
    assert (
        main([*argv, "--ledger", ledger, "--key", key, "--sample", str(tmp_path / "doc.exe")]) == 1
    )
    assert "samples.documents (rtf)" in capsys.readouterr().err


def test_hostile_requests_are_never_a_server_error(
    tmp_path: Path, asgi_server: Callable[[Any], Any]
) -> None:
    import random

    collector = Collector.init(tmp_path / "c", "eu", "eu.telemetry.example")
    collector.add_policy(policy_bytes())
    url = asgi_server(CollectorApp(collector)).url
    auth = {"authorization": f"Bearer {collector.token}"}
    rng = random.Random(11)
    bodies = [b"", b"{}", b"[]", b"null", b'{"actor": 1}', b"\xff" * 64, bytes(300)]
    bodies += [rng.randbytes(rng.randrange(1, 400)) for _ in range(40)]
    reads = [
        {"actor": "a", "customer": "acme", "digests": "ab", "reason": "r"},
        {"actor": "a", "customer": "acme", "digests": [], "reason": "r"},
        {"actor": "", "customer": "acme", "digests": ["ab" * 32], "reason": "r"},
        {"actor": "a", "customer": 5, "digests": ["ab" * 32], "reason": "r"},
        {"actor": "a", "customer": "acme", "digests": ["ab" * 32], "reason": "r" * 501},
    ]
    with httpx.Client() as http:
        for body in bodies:
            for customer in ("acme", "", "x" * 300):
                r = http.post(
                    f"{url}/v1/payloads", content=body, headers={"x-overt-customer": customer}
                )
                assert r.status_code in (400, 422), (body[:40], r.status_code, r.text)
            r = http.post(f"{url}/v1/read", content=body, headers=auth)
            assert r.status_code == 400, (body[:40], r.text)
        for doc in reads:
            assert http.post(f"{url}/v1/read", json=doc, headers=auth).status_code == 400
        for path in ("/receipts/tile/9/000", "/access/../../etc/passwd", "/receipts/", "/x"):
            assert http.get(f"{url}{path}").status_code == 404
    assert collector.access.size == 0  # nothing refused was logged as read


def test_no_data_leaves_when_the_access_log_cannot_record_the_read(tmp_path: Path) -> None:
    collector = Collector.init(tmp_path / "c", "eu", "eu.telemetry.example")
    collector.add_policy(policy_bytes())
    ledger = EgressLedger.create(tmp_path / "ledger", "acme/ledger")
    out = Endpoint(parse_policy(policy_bytes()), b"s", collector.key.public, ledger).events([EVENT])
    collector.receive("acme", out.sealed)
    collector.access.close()  # the access log is gone: a read must fail, not bypass it
    with pytest.raises(OvertError):
        collector.read("bob", "acme", [out.record.digest], "CASE-9")
    ledger.close()


def test_send_admits_the_policy_and_key_only_through_the_gate(
    tmp_path: Path, asgi_server: Callable[[Any], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from tests.gate.sim import World

    from overt.publish.bundle import format_bundle
    from overt.publish.publisher import publish
    from overt.telemetry.policy import policy_publication
    from overt.telemetry.sealing import collector_key_publication

    world = World()
    world.clock.now = time.time()
    collector = Collector.init(tmp_path / "c", "eu", "eu.telemetry.example")
    url = asgi_server(CollectorApp(collector)).url
    policy = policy_bytes(collectors={"eu": url})
    collector.add_policy(policy)
    key_text = collector.key.published()
    bundles = publish(
        world.log,
        world.publisher,
        [policy_publication(parse_policy(policy)), collector_key_publication(key_text, 1)],
    )
    files = {
        "p.json": policy,
        "p.json.overt": format_bundle(bundles[0]),
        "key.pub": key_text,
        "key.pub.overt": format_bundle(bundles[1]),
        "salt": b"acme salt",
        "ev.jsonl": json.dumps(EVENT).encode() + b"\n",
        "client.json": json.dumps(
            world.policy_doc(
                pins=[
                    {"product": "overt-telemetry-policy", "channels": ["acme"]},
                    {"product": "overt-telemetry-collector-key", "channels": ["eu"]},
                ],
                kinds=["release"],
            )
        ).encode(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    t = str(tmp_path)
    argv = ["telemetry", "send", f"{t}/p.json", f"{t}/ev.jsonl", "--ledger", f"{t}/ledger",
            "--key", f"{t}/key.pub", "--salt-file", f"{t}/salt", "--client-policy",
            f"{t}/client.json", "--policy-bundle", f"{t}/p.json.overt", "--key-bundle",
            f"{t}/key.pub.overt"]  # fmt: skip
    assert main(argv) == 0
    assert main(argv[:-2]) == 2  # the gate needs both bundles: a usage error
    (tmp_path / "p.json").write_bytes(policy.replace(b'"drop"', b'"keep"'))  # not the logged one
    capsys.readouterr()
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("overt: artifact-digest")
    assert collector.receipts.size == 1
