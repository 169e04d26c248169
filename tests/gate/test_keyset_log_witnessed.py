"""The key-set log as a real, witnessed log directory: publish re-cosigns it before it
writes bundles, so a quiet key-set log still gives endpoints a fresh checkpoint."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overt.formats.checkpoint import parse_checkpoint
from overt.formats.note import parse_note
from overt.formats.statement import Update
from overt.gate import UpdateGate, parse_client_policy
from overt.log.log import Log
from overt.publish.keys import generate_publisher_key
from overt.publish.keyset import KeyState, make_keyset_entry
from overt.publish.publisher import Publication, keyset_checkpoint, open_log_writer, publish
from overt.witness.config import init_witness, load_witness, trust_log
from overt.witness.server import WitnessApp

if TYPE_CHECKING:
    from conftest import Server

REGIONS = ("asia", "europe")


def _cosigned_at(note: bytes) -> list[int]:
    from overt.formats.cosignature import cosignature_timestamp

    return sorted(cosignature_timestamp(s.signature) for s in parse_note(note).signatures[1:])


def test_quiet_key_set_log_is_cosigned_again_for_each_publish(
    tmp_path: Path, asgi_server: Callable[[Any], Server]
) -> None:
    logs = {
        name: Log.create(tmp_path / name, f"vendor.example/{name}") for name in ("main", "keys")
    }
    lines = []
    for region in REGIONS:
        directory = tmp_path / region
        vkey = init_witness(directory, f"{region}.witness.example")
        for log in logs.values():
            trust_log(directory, log.vkey)
        config = load_witness(directory)
        server = asgi_server(WitnessApp(config.open_state(), config.logs, config.signer))
        lines.append(f"witness {region} {vkey} {server.url}")
    lines += ["group regions 2 asia europe", "quorum regions"]
    witness_policy = "\n".join(lines) + "\n"
    for log in logs.values():
        log.set_policy(f"log {log.vkey}\n{witness_policy}".encode())
    keys_vkey, main_vkey = logs["keys"].vkey, logs["main"].vkey
    for log in logs.values():
        log.close()

    _, first = generate_publisher_key("vendor.example/release")
    _, second = generate_publisher_key("vendor.example/release-2")
    chain = [make_keyset_entry(KeyState.pinned(first.key), [first], [second.key])]
    with open_log_writer(str(tmp_path / "keys")) as keyset_log:
        note = keyset_checkpoint(keyset_log, chain)
        assert parse_checkpoint(parse_note(note).text).size == 1
        time.sleep(1.1)  # cosignature timestamps are whole seconds
        again = keyset_checkpoint(keyset_log, chain)
    assert min(_cosigned_at(again)) > max(_cosigned_at(note))

    artifact = b"agent 1.0.0"
    item = Publication(
        "agent.bin", hashlib.sha256(artifact).hexdigest(), Update("agent", "1.0.0", "stable")
    )
    with (
        open_log_writer(str(tmp_path / "main")) as main,
        open_log_writer(str(tmp_path / "keys")) as keyset_log,
    ):
        (bundle,) = publish(main, second, [item], keysets=chain, keyset_log=keyset_log)
    policy = parse_client_policy(
        json.dumps(
            {
                "version": 1,
                "logs": [main_vkey],
                "witness_policy": witness_policy,
                "publisher": first.key.vkey,
                "pins": [{"product": "agent", "channels": ["stable"]}],
                "max_checkpoint_age": 60,
                "keyset_log": {"log": keys_vkey, "max_age": 60},
            }
        ).encode()
    )
    with UpdateGate(policy) as gate:
        assert gate.admit(artifact, bundle).keyids == (second.keyid,)
