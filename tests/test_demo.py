"""``make run`` works: log, three witnesses and a monitor start, and an entry verifies 2-of-3;
the telemetry path (collector, send, refused document, logged read, access check, ledger
verify, reconcile) runs with real ``overt`` processes.

A second ``make run`` beside a running one, or on a busy port, says so in one line and
touches nothing of the running demo.
"""

from __future__ import annotations

import fcntl
import json
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from overt.demo import REGIONS, WITNESS_KEY_TYPES, check_ports
from overt.formats.note import parse_note, parse_vkey
from overt.formats.policy import parse_policy
from overt.formats.subtree_proof import verify_subtree_cosignatures
from overt.log.subtrees import SubtreeStore
from overt.portal.checks import witness_rows
from overt.publish.bundle import parse_bundle
from overt.telemetry.ledger import read_log_entries, verify_ledger

# The log, three witnesses, the telemetry collector, the portal, three mirrors.
PORTS = 9


def _free_port_block() -> int:
    # PORTS consecutive free ports, below the kernel's ephemeral range: a port the kernel may
    # hand to any outgoing connection on this machine (the demo's own CLI calls to the log,
    # other tests) could be taken between one smoke run and the next on the same ports.
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(50):
        base = random.randrange(10000, max(low, 10000 + 2 * PORTS) - PORTS)
        ok = True
        for p in range(base, base + PORTS):
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return base
    raise RuntimeError("no free ports")


def _smoke(directory: Path, port: int) -> subprocess.CompletedProcess[str]:
    # As `make run` does: a state directory relative to the working directory.
    argv = ["--dir", directory.name, "--port", str(port), "--smoke"]
    out = subprocess.run(
        [sys.executable, "-m", "overt.demo", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=directory.parent,
    )
    assert out.returncode == 0, out.stderr + (directory / "services.log").read_text()
    return out


def test_make_run_smoke(tmp_path: Path) -> None:
    port = _free_port_block()
    vkeys: list[str] = []
    for run in range(2):  # second run reuses the state of the first
        out = _smoke(tmp_path, port)
        assert "witness cosignatures" in out.stdout
        # The portal's URL comes first (issue 14).
        first = out.stdout.splitlines()[0]
        assert first == f"overt Transparency Center portal: http://127.0.0.1:{port + 5}/", first
        # The history it shows: releases, an update, rule bundles with their audits.
        history = tmp_path / "history"
        for name in ("agent-1.1.0.msi", "agent-1.1.0.update", "rules-2026.11.2.yar"):
            assert (history / f"{name}.overt").is_file(), name
        assert (history / "rules-2026.11.2.yar.audit.json").is_file()
        # The source chain (issue 10): the release's files all reviewed by both reviewers,
        # the next snapshot's changed file not; two rebuilds match, the stamped one does not.
        assert "coverage 100% of files by 2 reviewers; next snapshot 80%" in out.stdout
        assert "(unreviewed: src/greeter/hello.py)" in out.stdout
        assert "rebuilds: 2 match, 1 mismatch" in out.stdout
        # Every key a user needs: the log's, each witness's, the policy and the token.
        assert (tmp_path / "log" / "log.vkey").read_text().strip() in out.stdout
        for region in ("asia", "europe", "americas"):
            wvkey = (tmp_path / f"witness-{region}" / "witness.vkey").read_text().strip()
            assert wvkey in out.stdout
        assert str(tmp_path / "policy.txt") in out.stdout
        # Each regional center also runs a mirror; all three hold the entry just appended.
        for i, region in enumerate(("asia", "europe", "americas")):
            mvkey = (tmp_path / f"mirror-{region}" / "mirror.vkey").read_text().strip()
            assert f"http://127.0.0.1:{port + 6 + i}  {mvkey}" in out.stdout
        assert "is held by the mirrors asia-m, europe-m, americas-m." in out.stdout
        # The log adds the mirrors' cosignatures to its checkpoint; bundles carry 2 of 3.
        note = parse_bundle((history / "agent-1.1.0.update.overt").read_bytes()).proof.checkpoint
        names = {s.name for s in parse_note(note).signatures}
        assert len(names & {f"{r}.mirror.transparency.example" for r in REGIONS}) >= 2, names
        # ADR 0014: one of the three witnesses is ML-DSA-44, a mixed quorum; the bundles'
        # checkpoint carries its cosignature, valid as the portal's server column checks it
        # (browsers cannot verify ML-DSA-44: the portal says "checked on the server").
        trust = parse_policy((tmp_path / "policy.txt").read_bytes())
        rows = {row.name: row for row in witness_rows(note, trust, time.time())}
        types = {r: parse_vkey(rows[r].vkey).key_type.algorithm.name for r in REGIONS}
        assert types == WITNESS_KEY_TYPES == {
            "asia": "ed25519", "europe": "ed25519", "americas": "ml-dsa-44"
        }  # fmt: skip
        assert rows["americas"].ok, rows["americas"]
        assert f"americas  http://127.0.0.1:{port + 3}  ml-dsa-44  " in out.stdout
        # It cosigned the log's first 256-entry range (overt.log.subtrees) on the first run.
        subtree = SubtreeStore(tmp_path / "log").get(0, 256)
        assert subtree is not None
        americas = parse_vkey(rows["americas"].vkey)
        assert verify_subtree_cosignatures(subtree, [("americas", americas)]) == ("americas",)
        assert "entries [0, 256) cosigned as one range by americas" in out.stdout
        # The vendor's key sets are in their own witnessed log; bundles carry its checkpoint.
        assert "revocation freshness: key-set log localhost/overt-demo-keys" in out.stdout
        assert (tmp_path / "keys-log" / "log.vkey").read_text().strip() in out.stdout
        assert str(tmp_path / "log" / "token") in out.stdout
        # The privacy officer's path: collector URL, receipt-log key, ledger, the commands.
        col = tmp_path / "collector"
        assert f"http://127.0.0.1:{port + 4}" in out.stdout
        assert (col / "receipts" / "log.vkey").read_text().strip() in out.stdout
        assert f"overt telemetry ledger verify {tmp_path / 'ledger'}" in out.stdout
        assert f"overt telemetry reconcile {tmp_path / 'ledger'}" in out.stdout
        assert "sample refused by samples.documents (pdf)" in out.stdout
        assert f"ledger acme/ledger: {run + 1} record(s) verified" in out.stdout
        assert f"{run + 1} matched, 0 missing, 0 extra, 0 altered" in out.stdout
        vkeys.append((col / "receipts" / "log.vkey").read_text())
    assert vkeys[0] == vkeys[1]  # the second run reused the collector
    # Checked here again, outside the demo: the ledger verifies, each send has a receipt,
    # and each read is in the access log with its reason; the document never left.
    col = tmp_path / "collector"
    records = verify_ledger(tmp_path / "ledger").records
    assert len(records) == 2 and all(r.events == 3 for r in records)
    _, receipts = read_log_entries(
        str(col / "receipts"), parse_vkey((col / "receipts" / "log.vkey").read_text().strip())
    )
    assert sorted(json.loads(e)["digest"] for e in receipts) == sorted(r.digest for r in records)
    _, access = read_log_entries(
        str(col / "access"), parse_vkey((col / "access" / "log.vkey").read_text().strip())
    )
    reads = [json.loads(e) for e in access]
    assert [r["digests"] for r in reads] == [[rec.digest] for rec in records]
    assert all(r["kind"] == "read" and r["reason"] and r["customer"] == "acme" for r in reads)
    policy = tmp_path / "policy.txt"
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "overt.cli.main",
            "log",
            "verify",
            str(tmp_path / "log"),
            "--vkey",
            str(tmp_path / "log" / "log.vkey"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr
    # The clients' policy also demands that 2 of the 3 centers' mirrors hold the log. With the
    # demo stopped only the log's own checkpoint can show it: it does when the mirrors cosigned
    # it before the stop (the log adds their cosignatures, docs/mirror.md); if the last entries
    # were not mirrored yet, nobody can show it any more and the same check refuses.
    held = subprocess.run(
        [sys.executable, "-m", "overt.cli.main", "log", "verify", str(tmp_path / "log"),
         "--policy", str(policy)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    last = parse_note((tmp_path / "log" / "tiles" / "checkpoint").read_bytes()).signatures
    on_checkpoint = {s.name for s in last} & {f"{r}.mirror.transparency.example" for r in REGIONS}
    if len(on_checkpoint) >= 2:
        assert held.returncode == 0 and "mirror quorum centers met by" in held.stdout, held.stderr
    else:
        assert held.returncode == 1 and "mirror quorum 'centers' not met" in held.stderr, (
            held.stderr
        )
    # The first run's 255 entries that complete the first 256-entry range (the subtree the
    # ML-DSA-44 witness cosigns), two demo entries, the telemetry policy and the region key,
    # published once, and the
    # portal's history, published once: two releases, an update, two rule bundles, two audits;
    # the source chain: two snapshots, two reviewer keys, two reviews, a release and its
    # provenance, three rebuild summaries, an SBOM.
    assert "size 278" in verify.stdout
    # Checked again outside the demo: the release bundle carries provenance, reviews, rebuilds
    # and SBOM, and its coverage holds; the changed file's does not.
    source = tmp_path / "history" / "source"
    vkey = (tmp_path / "log" / "log.vkey").read_text().strip()
    reviews = [str(source / "alice.review"), str(source / "bob.review")]
    for target, code in (("greeter-1.0.0-evidence.overt", 0), ("greeter-1.0.1.snap", 1)):
        coverage = subprocess.run(
            [sys.executable, "-m", "overt.cli.main", "review", "coverage", str(source / target),
             "--reviews", *reviews, "--vkey", vkey, "--min-reviewers", "2", "--require", "100"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert coverage.returncode == code, (target, coverage.stdout, coverage.stderr)
    assert (
        "BUILD_INFO is only in the rebuilt artifact" in (source / "bob-stamped.vsa.txt").read_text()
    )
    assert '"event":"entries"' in (tmp_path / "monitor.jsonl").read_text()
    # Other ports move the collector: the policy names its new URL under a new revision,
    # published again; the ledger and the receipts still reconcile.
    policy_v1 = json.loads((tmp_path / "telemetry" / "policy.json").read_bytes())
    moved = _free_port_block()
    out = _smoke(tmp_path, moved)
    policy_v2 = json.loads((tmp_path / "telemetry" / "policy.json").read_bytes())
    assert (policy_v1["version"], policy_v2["version"]) == (1, 2)
    assert policy_v2["collectors"] == {"eu": f"http://127.0.0.1:{moved + 4}"}
    assert "3 matched, 0 missing, 0 extra, 0 altered" in out.stdout


def test_sigterm_stops_every_service_the_demo_started(tmp_path: Path) -> None:
    # Was: the demo died alone and its servers kept the ports, so the next make run failed.
    port = _free_port_block()
    argv = [sys.executable, "-m", "overt.demo", "--dir", str(tmp_path), "--port", str(port)]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as demo:
        try:
            assert demo.stdout is not None
            for line in demo.stdout:
                if "Ctrl-C stops everything" in line:
                    break
            demo.send_signal(signal.SIGTERM)
            _, err = demo.communicate(timeout=30)
            assert demo.returncode == 0, err
        finally:
            if demo.poll() is None:
                demo.kill()
    check_ports(port)  # free again (as the next make run sees them): every service stopped


def test_a_damaged_demo_policy_is_one_line_and_left_as_is(tmp_path: Path) -> None:
    (tmp_path / "telemetry").mkdir()
    (tmp_path / "telemetry" / "policy.json").write_text('{"version": "1"}')
    out = _demo(tmp_path, _free_port_block())
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "policy.json" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert (tmp_path / "telemetry" / "policy.json").read_text() == '{"version": "1"}'


def _demo(directory: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "overt.demo", "--dir", str(directory), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_second_demo_beside_a_running_one_touches_nothing(tmp_path: Path) -> None:
    # A running demo holds its lock: simulated here by holding it ourselves.
    (tmp_path / "policy.txt").write_text("the running demo's policy\n")
    with open(tmp_path / "demo.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(b"4242\n")
        held.flush()
        out = _demo(tmp_path, _free_port_block())  # other ports than the running one
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "already running" in out.stderr, out.stderr
    assert "pid 4242" in out.stderr and "Traceback" not in out.stderr
    assert (tmp_path / "policy.txt").read_text() == "the running demo's policy\n"
    for state in ("log", "collector", "ledger", "telemetry"):
        assert not (tmp_path / state).exists()


@pytest.mark.parametrize("offset", [2, 4, 5], ids=["witness", "collector", "portal"])
def test_busy_port_is_one_line_and_writes_nothing(tmp_path: Path, offset: int) -> None:
    port = _free_port_block()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port + offset))
        busy.listen()
        out = _demo(tmp_path / "demo", port)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and f"127.0.0.1:{port + offset}" in out.stderr, out.stderr
    assert "--port" in out.stderr
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["demo.lock"]
