"""A small log for the portal: releases, a rule bundle with audits, hostile entries,
and a checkpoint cosigned by three witnesses under a 2-of-3 policy."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from overt.formats.cosignature import ALG_COSIGNATURE_V1
from overt.formats.note import Signer, generate_key, parse_note, parse_skey, sign_note
from overt.formats.statement import Release, RuleAudit, RuleBundle
from overt.log.log import Log, read_vkey
from overt.publish.keys import generate_publisher_key
from overt.publish.publisher import Publication, make_entry

REGIONS = ("asia", "europe", "americas")
RULES = b"rule planted { condition: true }"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@dataclass
class PortalLog:
    dir: Path
    witnesses: dict[str, Signer]
    vkey: str
    entries: list[bytes]
    publisher: str  # the vkey that signed every statement (and the audits)

    def cosign(self, names: tuple[str, ...] = REGIONS) -> None:
        """Publish the log's latest checkpoint cosigned by the witnesses ``names``."""
        with Log.open(self.dir) as log:
            note, size = log.latest_signed()
            parsed = parse_note(note)
            signed = sign_note(parsed.text, [self.witnesses[n] for n in names], parsed)
            log.publish_witnessed(signed, size)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_portal_log(base: Path, extra: list[bytes] | None = None) -> PortalLog:
    log_dir = base / "log"
    _skey, signer = generate_publisher_key("vendor.example/releases")
    rules = RULES
    entries = [
        b"overt demo: the Transparency Center started\n",
        make_entry(
            signer,
            Publication(
                "agent-1.2.0.msi",
                _digest(b"agent 1.2.0"),
                Release("agent", "1.2.0", "stable", "windows"),
            ),
        ),
        make_entry(
            signer,
            Publication(
                "rules-7.yar", _digest(rules), RuleBundle("agent", "stable", "yara", "7", 1)
            ),
        ),
        make_entry(
            signer,
            Publication("rules-7.yar", _digest(rules), RuleAudit("collection-audit", "fail")),
        ),
        make_entry(
            signer,
            Publication(HOSTILE, _digest(b"hostile"), Release(HOSTILE, "9.9.9", HOSTILE, HOSTILE)),
        ),
        HOSTILE.encode(),
        *(extra or []),
    ]
    witnesses: dict[str, Signer] = {}
    lines = []
    for region in REGIONS:
        skey, wvkey = generate_key(f"{region}.transparency.example", ALG_COSIGNATURE_V1)
        witnesses[region] = parse_skey(skey)
        lines.append(f"witness {region} {wvkey}")
    with Log.create(log_dir, "example.com/portal") as log:
        log.add_many(entries)
    vkey = read_vkey(log_dir)
    policy = [f"log {vkey}", *lines, f"group regions 2 {' '.join(REGIONS)}", "quorum regions"]
    (log_dir / "witnesses.policy").write_text("\n".join(policy) + "\n")
    made = PortalLog(log_dir, witnesses, vkey, entries, signer.key.vkey)
    made.cosign()
    return made


@pytest.fixture
def portal_log(tmp_path: Path) -> PortalLog:
    return make_portal_log(tmp_path)


NOW = time.time
