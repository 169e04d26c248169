"""A small log for the portal: releases, a rule bundle with audits, hostile entries,
and a checkpoint cosigned by three witnesses under a 2-of-3 policy."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from overt.formats.cosignature import ALG_COSIGNATURE_V1
from overt.formats.note import Signer, generate_key, parse_note, parse_skey, sign_note
from overt.formats.source_snapshot import FileEntry, Snapshot, format_snapshot, snapshot_predicate
from overt.formats.statement import Release, RuleAudit, RuleBundle
from overt.log.log import Log, read_vkey
from overt.portal.accounts import AccountStore, PartnerRole
from overt.portal.app import Portal, PortalConfig
from overt.publish.keys import PublisherSigner, generate_publisher_key
from overt.publish.keyset import KeyState, make_keyset_entry
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
        """Publish the log's latest checkpoint cosigned by the witnesses ``names`` only.

        The log keeps a published checkpoint's other cosignatures when the same checkpoint
        is cosigned again (overt.log.Log.publish_witnessed), so the published file is then
        written as this round alone: what a server showing only these cosignatures serves.
        """
        with Log.open(self.dir) as log:
            note, size = log.latest_signed()
            parsed = parse_note(note)
            signed = sign_note(parsed.text, [self.witnesses[n] for n in names], parsed)
            log.publish_witnessed(signed, size)
        (self.dir / "tiles" / "checkpoint").write_bytes(signed)


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
PASSWORD = "correct horse battery"
RULES_10 = b'rule collect_banner {\n    strings:\n        $b = "TOP SECRET//NOFORN" wide ascii\n    condition:\n        $b\n}\n'


def _keyset(signer: PublisherSigner) -> bytes:
    return make_keyset_entry(KeyState.pinned(signer.key), [signer], [signer.key])


@dataclass
class Partners:
    log: PortalLog
    state: Path
    artifacts: Path
    reviewer: PublisherSigner
    auditor: PublisherSigner
    stranger: PublisherSigner  # a key whose key set is not logged
    snapshot: Snapshot
    reviewer_skey: str  # the reviewer's private key text (what the browser's signer imports)

    def portal(self, **kw: Any) -> Portal:
        config = PortalConfig(
            self.log.dir,
            state=self.state,
            artifacts=self.artifacts,
            log=str(self.log.dir),
            secure_cookies=False,
            refresh=0.0,
            **kw,
        )
        return Portal(config)


def _keyset(signer: PublisherSigner) -> bytes:
    return make_keyset_entry(KeyState.pinned(signer.key), [signer], [signer.key])


def make_partners(tmp_path: Path) -> Partners:
    """A log with a reviewer's and an auditor's key sets, a source snapshot and a rule
    bundle (their files in ``artifacts``), no witnesses; accounts alice (reviewer), bob
    (auditor), carol (admin) and mallory (a reviewer whose key was never logged)."""
    _, vendor = generate_publisher_key("vendor.example/source")
    reviewer_skey, reviewer = generate_publisher_key("alice.example/review")
    _, auditor = generate_publisher_key("bob.example/audit")
    _, stranger = generate_publisher_key("mallory.example/review")
    files = [
        FileEntry("100644", hashlib.sha256(b"print('hi')\n").hexdigest(), "app.py"),
        FileEntry("100644", hashlib.sha256(HOSTILE.encode()).hexdigest(), "README"),
    ]
    snapshot = Snapshot.of(files)
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "source.snapshot").write_bytes(format_snapshot(snapshot))
    (artifacts / "rules-10.yar").write_bytes(RULES_10)
    bundle = RuleBundle("agent", "stable", "yara", "10", 1)
    extra = [
        _keyset(reviewer),
        _keyset(auditor),
        make_entry(vendor, Publication("source", snapshot.digest, snapshot_predicate(snapshot))),
        make_entry(
            vendor, Publication("rules-10.yar", hashlib.sha256(RULES_10).hexdigest(), bundle)
        ),
    ]
    made = make_portal_log(tmp_path, extra)
    # Without witnesses: the portal's appends are published at once (witnessing is not what
    # these tests are about; test_portal.py and test_verify_js.py cover it).
    (made.dir / "witnesses.policy").unlink()
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    store = AccountStore(state)
    store.add("alice", PartnerRole.REVIEWER, PASSWORD, reviewer.key.vkey)
    store.add("bob", PartnerRole.AUDITOR, PASSWORD, auditor.key.vkey)
    store.add("carol", PartnerRole.ADMIN, PASSWORD, None)
    store.add("mallory", PartnerRole.REVIEWER, PASSWORD, stranger.key.vkey)
    return Partners(made, state, artifacts, reviewer, auditor, stranger, snapshot, reviewer_skey)
