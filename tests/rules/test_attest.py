"""Rule-audit attestations end to end: audit -> signed, logged verdict -> publish -> gate -> monitor."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.formats.cosignature import CosignatureSigner
from overt.formats.note import parse_note, sign_note
from overt.formats.statement import RuleBundle
from overt.gate import UpdateGate, parse_client_policy
from overt.gate.errors import AuditError
from overt.log.client import DirectorySource
from overt.log.log import Log
from overt.monitor.checks import make_check
from overt.publish.bundle import format_bundle
from overt.publish.keys import generate_publisher_key, write_key_files
from overt.publish.publisher import Publication, publish
from overt.rules.attest import attest_bundle

FIXTURES = Path(__file__).parent / "fixtures"
CLEAN = (FIXTURES / "negative" / "pe_malware.yar").read_bytes()
SPYING = (FIXTURES / "positive" / "markings_plain.yar").read_bytes()


class Vendor:
    """A log with three local witness keys, a publisher and two independent auditors."""

    def __init__(self, tmp: Path) -> None:
        self.log = Log.create(tmp / "log", "rules.example/log")
        self.witnesses = [
            CosignatureSigner(f"{r}.witness.example", Ed25519PrivateKey.generate())
            for r in ("asia", "europe", "americas")
        ]
        _, self.publisher = generate_publisher_key("vendor.example/release")
        self.auditors = [generate_publisher_key(f"auditor{i}.example")[1] for i in (1, 2)]

    def cosign(self, note: bytes) -> bytes:
        parsed = parse_note(note)
        return sign_note(parsed.text, self.witnesses[:2], existing=parsed)

    def publish_rules(self, data: bytes, attestations: list[bytes]) -> bytes:
        item = Publication(
            "rules.yar",
            hashlib.sha256(data).hexdigest(),
            RuleBundle("agent", "stable", "yara-x", "2026.11.21", 1),
        )
        (bundle,) = publish(
            self.log, self.publisher, [item], attestations=attestations, cosign=self.cosign
        )
        return format_bundle(bundle)

    def policy(self, min_auditors: int = 2) -> object:
        names = ("asia", "europe", "americas")
        text = "".join(
            f"witness {n} {w.vkey}\n" for n, w in zip(names, self.witnesses, strict=True)
        )
        text += "group regions 2 asia europe americas\nquorum regions\n"
        doc = {
            "version": 1,
            "logs": [self.log.vkey],
            "witness_policy": text,
            "publisher": self.publisher.key.vkey,
            "pins": [{"product": "agent", "channels": ["stable"]}],
            "kinds": ["rule-bundle"],
            "max_checkpoint_age": 3600,
            "rule_bundles": {
                "auditors": [a.key.vkey for a in self.auditors],
                "audits": ["no-espionage"],
                "min_auditors": min_auditors,
            },
        }
        return parse_client_policy(json.dumps(doc).encode())


@pytest.fixture
def vendor(tmp_path: Path) -> Vendor:
    v = Vendor(tmp_path)
    yield v
    v.log.close()


def test_bundle_with_two_independent_clean_audits_is_admitted(vendor: Vendor) -> None:
    atts = [attest_bundle("rules.yar", CLEAN, a, dynamic=False) for a in vendor.auditors]
    assert all(a.passed for a in atts)
    bundle = vendor.publish_rules(CLEAN, [a.envelope for a in atts])
    admitted = UpdateGate(vendor.policy()).admit(CLEAN, bundle)
    assert admitted.audits["no-espionage"] and len(admitted.audits["no-espionage"]) == 2


def test_rule_bundle_with_one_auditor_is_refused(vendor: Vendor) -> None:
    att = attest_bundle("rules.yar", CLEAN, vendor.auditors[0], dynamic=False)
    bundle = vendor.publish_rules(CLEAN, [att.envelope])
    with pytest.raises(AuditError):
        UpdateGate(vendor.policy()).admit(CLEAN, bundle)


def test_espionage_rule_bundle_fails_audit_and_is_refused(vendor: Vendor) -> None:
    atts = [attest_bundle("rules.yar", SPYING, a, dynamic=False) for a in vendor.auditors]
    assert not any(a.passed for a in atts)
    bundle = vendor.publish_rules(SPYING, [a.envelope for a in atts])
    with pytest.raises(AuditError):
        UpdateGate(vendor.policy()).admit(SPYING, bundle)


def test_clean_audit_of_other_bytes_does_not_count(vendor: Vendor) -> None:
    """Auditors signed off a clean bundle; the vendor ships a different one under it."""
    atts = [attest_bundle("rules.yar", CLEAN, a, dynamic=False) for a in vendor.auditors]
    bundle = vendor.publish_rules(SPYING, [a.envelope for a in atts])
    with pytest.raises(AuditError):
        UpdateGate(vendor.policy()).admit(SPYING, bundle)


def test_monitor_audits_every_logged_rule_bundle(vendor: Vendor, tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "clean-bundle.yar").write_bytes(CLEAN)
    (store / "shipped.yar").write_bytes(SPYING)
    vendor.publish_rules(CLEAN, [])
    vendor.publish_rules(
        SPYING, [attest_bundle("rules.yar", SPYING, vendor.auditors[0], dynamic=False).envelope]
    )
    missing = b"rule missing { condition: true }\n"
    vendor.publish_rules(missing, [])
    check = make_check(f"rule-audit={store}")
    source = DirectorySource(vendor.log.directory)
    from overt.formats import tiles

    size = vendor.log.size
    entries = tiles.parse_entry_bundle(source.read(tiles.entries_path(0, size)), size)
    alerts = [a for i, e in enumerate(entries) for a in check.check(i, e)]
    text = "\n".join(a.message for a in alerts)
    assert "NOFORN" in text or "marking" in text  # the spying bundle's findings
    assert "an auditor failed 'no-espionage'" in text
    assert "not in the audit store" in text  # the bundle nobody can audit
    clean_index = 0
    assert not [a for a in alerts if a.index == clean_index]


def test_cli_attest_logs_verdict_and_exits_by_result(tmp_path: Path) -> None:
    Log.create(tmp_path / "log", "cli.example/log").close()
    skey, signer = generate_publisher_key("auditor.example")
    write_key_files(tmp_path / "auditor.key", skey, signer)
    key = tmp_path / "auditor.key"
    for data, name, code in ((CLEAN, "clean.yar", 0), (SPYING, "spy.yar", 1)):
        (tmp_path / name).write_bytes(data)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "overt.cli.main",
                "rules",
                "attest",
                str(tmp_path / name),
                "--key",
                str(key),
                "--log",
                str(tmp_path / "log"),
                "--static-only",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == code, out.stderr
        assert (tmp_path / f"{name}.audit.json").exists()
        assert ("pass:" if code == 0 else "FAIL:") in out.stdout
    with Log.open(tmp_path / "log") as log:
        assert log.size == 2  # the failing verdict is logged too
