"""``make run``: the Transparency Center on the embedded default (filesystem + SQLite).

Starts, on 127.0.0.1, one transparency log, three regional transparency
centers (Asia, Europe, Americas), each running a witness and a mirror
(c2sp.org/tlog-mirror, fed by the log itself, ``overt log serve --mirror``, which adds
their cosignatures to its checkpoint for offline endpoints), and a monitor,
with a policy of 2 of 3 witnesses cosigning and 2 of 3 mirrors holding the
data; every piece is a real ``overt`` process with its state under
``.demo/``. Prints the keys and the commands to append to and verify the log.
Stop with Ctrl-C; the state stays in ``.demo/`` for the next run.

It also walks a privacy officer's telemetry path (issue 11, docs/telemetry.md):
a regional collector (``overt collector serve``, region ``eu``) on the port
after the witnesses, the customer's telemetry policy and the region key
published to the demo log, a few events sent through the endpoint filter into
an egress ledger (``DIR/ledger``) with verified receipts, a document renamed
``setup.exe`` refused as a sample, one logged access read with a reason, the
customer's ``telemetry-access`` monitor check over the access log, and the
ledger verified and reconciled with the receipt log.

It publishes a small history for the portal (``DIR/history``: two releases of a product,
an update, two rule bundles each audited by an independent auditor, the second with a
planted rule collecting classified documents, which the audit fails), and the source ->
review -> rebuild chain of issue 10 (``DIR/history/source``, docs/source-review.md: a small
project snapshotted, reviewed twice, released with provenance, rebuilt twice to a match, an
SBOM, the evidence in one bundle; then a changed file left unreviewed and a build that embeds
its clock rebuilt to a mismatch), then starts the
Transparency Center portal (``overt portal serve``, docs/portal.md)
over the log on the port after the collector, and prints its URL first.

    python -m overt.demo [--dir .demo] [--port 8080] [--smoke]

``--smoke`` starts everything, appends and verifies one entry under the
policy, walks the telemetry path, then stops (used by the test suite).

Before anything is written, the demo takes ``DIR/demo.lock`` (a second
``make run`` on the same state stops there, whatever its ports) and checks
that its nine ports are free (the mirrors take the three after the portal). Every failure is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from overt.cli._util import check_listen
from overt.errors import ConfigError, OvertError
from overt.formats import merkle
from overt.formats.note import Verifier, parse_vkey
from overt.formats.policy import parse_policy
from overt.formats.proof import parse_proof, verify_proof
from overt.log.client import LogClient
from overt.log.fs import atomic_write
from overt.log.log import Log, read_token, read_vkey
from overt.witness.config import init_witness, trust_log

ORIGIN = "localhost/overt-demo"
#: The vendor's key-set log (docs/adr/0012): its key sets, witnessed by the same centers.
KEYS_ORIGIN = "localhost/overt-demo-keys"
REGIONS = ("asia", "europe", "americas")
#: Each center's witness key type (``overt witness init --key-type``). ADR 0014 asks for at
#: least one ML-DSA-44 witness in every quorum now: the quorum is mixed, and the log asks
#: the ML-DSA-44 witness to cosign each completed 256-entry range too (overt.log.subtrees).
WITNESS_KEY_TYPES = {"asia": "ed25519", "europe": "ed25519", "americas": "ml-dsa-44"}
# Ports: the log on PORT, the witnesses on the next three, the telemetry collector after them,
# then the Transparency Center portal, then the three centers' mirrors (c2sp.org/tlog-mirror).
COLLECTOR_OFFSET = 1 + len(REGIONS)
PORTAL_OFFSET = COLLECTOR_OFFSET + 1
MIRROR_OFFSET = PORTAL_OFFSET + 1
PORTS = MIRROR_OFFSET + len(REGIONS)
CUSTOMER = "acme"
TELEMETRY_REGION = "eu"
ANALYST = "analyst@vendor.example"
REASON = "CASE-1234 false positive review"


def _overt(*args: str) -> list[str]:
    return [sys.executable, "-m", "overt.cli.main", *args]


def _name(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    return " ".join(str(a) for a in args[3:5]) if isinstance(args, list) else str(args)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise OvertError(f"overt {_name(proc)} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise OvertError(f"{url} did not come up within {timeout:.0f} s")


def lock(base: Path) -> IO[bytes]:
    """Hold ``base/demo.lock`` for this run (released when the process ends).

    Raises:
        ConfigError: another demo runs on ``base`` (its pid is named).
    """
    path = base / "demo.lock"
    handle = open(path, "a+b")  # noqa: SIM115 (held for the life of the demo)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        handle.seek(0)
        pid = handle.read().decode("ascii", "replace").strip() or "?"
        handle.close()
        raise ConfigError(
            f"a demo is already running on {base}/ (pid {pid}); stop it with Ctrl-C,"
            f" or give this one its own state: make run ARGS='--dir OTHER --port PORT'"
        ) from err
    handle.seek(0)
    handle.truncate()
    handle.write(b"%d\n" % os.getpid())
    handle.flush()
    return handle


def check_ports(port: int) -> None:
    """Every port the demo needs is free. Raises ConfigError naming the first busy one."""
    for p in range(port, port + PORTS):
        try:
            check_listen("127.0.0.1", p)
        except ConfigError as err:
            raise ConfigError(
                f"{err}; the demo needs ports {port}-{port + PORTS - 1}:"
                f" pick others with make run ARGS='--port N'"
            ) from err


def setup(base: Path, port: int) -> Path:
    """Create (once) the log, witnesses and policy; returns the policy path."""
    log_dir = base / "log"
    if not (log_dir / "log.json").exists():
        Log.create(log_dir, ORIGIN).close()
    vkey = read_vkey(log_dir)
    lines = [f"log {vkey} http://127.0.0.1:{port}"]
    for i, region in enumerate(REGIONS, 1):
        directory = base / f"witness-{region}"
        if not (directory / "witness.skey").exists():
            init_witness(directory, f"{region}.transparency.example", WITNESS_KEY_TYPES[region])
        trust_log(directory, vkey)
        wvkey = (directory / "witness.vkey").read_text().strip()
        lines.append(f"witness {region} {wvkey} http://127.0.0.1:{port + i}")
    for i, region in enumerate(REGIONS):
        lines.append(f"mirror {region}-m {_mirror(base, region, vkey)} {_mirror_url(port, i)}")
    lines += [f"group regions 2 {' '.join(REGIONS)}", "quorum regions"]
    _keyset_log(base, lines[1:])
    lines += [f"group centers 2 {' '.join(r + '-m' for r in REGIONS)}", "mirror-quorum centers"]
    policy = "\n".join(lines).encode() + b"\n"
    parse_policy(policy)  # refuse to write a policy clients could not read
    policy_path = base / "policy.txt"
    # The log's lock first: a log served by a demo that lost its lock file stays untouched.
    with Log.open(log_dir) as log:
        log.set_policy(policy)
        atomic_write(policy_path, policy)
    return policy_path


def _keyset_log(base: Path, witness_lines: list[str]) -> None:
    """Create (once) the vendor's key-set log, cosigned by the same witnesses (they trust
    it before they start), so bundles carry its fresh checkpoint (revocation freshness)."""
    keys_dir = base / "keys-log"
    if not (keys_dir / "log.json").exists():
        Log.create(keys_dir, KEYS_ORIGIN).close()
    vkey = read_vkey(keys_dir)
    for region in REGIONS:
        trust_log(base / f"witness-{region}", vkey)
    with Log.open(keys_dir) as log:
        log.set_policy("\n".join([f"log {vkey}", *witness_lines]).encode() + b"\n")


def _keyset_banner(base: Path) -> str:
    """One line: the key-set log's checkpoint in the newest bundle, and who cosigned it when."""
    from overt.formats.policy import verify_checkpoint
    from overt.publish.bundle import parse_bundle

    keys_dir = base / "keys-log"
    note = parse_bundle((base / "history" / "agent-1.1.0.update.overt").read_bytes())
    if not note.keyset_checkpoint:
        return (
            "revocation freshness: bundles made before the key-set log (start from an empty .demo)"
        )
    policy = parse_policy((keys_dir / "witnesses.policy").read_bytes())
    verified = verify_checkpoint(note.keyset_checkpoint, policy)
    age = time.time() - (verified.quorum_time or 0)
    return (
        f"revocation freshness: key-set log {KEYS_ORIGIN} ({keys_dir}) size"
        f" {verified.checkpoint.size}, cosigned by {', '.join(sorted(verified.cosigned))}"
        f' {age:.0f} s ago; a policy with "keyset_log": {{"log": "{read_vkey(keys_dir)}",'
        f' "max_age": 3600}} refuses a revoked key within the hour, even on a fresh install'
    )


def _mirror(base: Path, region: str, log_vkey: str) -> str:
    """Create (once) a center's mirror of the log; returns its verifier key."""
    from overt.mirror.config import init_mirror
    from overt.mirror.config import trust_log as mirror_trust

    directory = base / f"mirror-{region}"
    if not (directory / "mirror.skey").exists():
        init_mirror(directory, f"{region}.mirror.transparency.example")
    mirror_trust(directory, log_vkey)
    return (directory / "mirror.vkey").read_text().strip()


def _mirror_url(port: int, i: int) -> str:
    return f"http://127.0.0.1:{port + MIRROR_OFFSET + i}"


def _wait_mirrored(port: int, size: int, timeout: float = 30.0) -> list[str]:
    """The regions whose mirror cosigned a checkpoint of at least ``size`` entries
    (waiting up to ``timeout`` for all three)."""
    from overt.formats.checkpoint import parse_checkpoint
    from overt.formats.note import parse_note
    from overt.formats.policy import mirror_prefix

    deadline = time.monotonic() + timeout
    while True:
        held = []
        for i, region in enumerate(REGIONS):
            try:
                reply = httpx.get(f"{mirror_prefix(_mirror_url(port, i), ORIGIN)}/checkpoint")
                if parse_checkpoint(parse_note(reply.content).text).size >= size:
                    held.append(region)
            except (httpx.HTTPError, OvertError):
                pass
        if len(held) == len(REGIONS) or time.monotonic() > deadline:
            return held
        time.sleep(0.2)


def fill_first_range(client: LogClient, log_vkey: str) -> int:
    """Append numbered entries until the next one completes the log's first 256-entry range
    (overt.log.subtrees), so the ML-DSA-44 witness cosigns it as a subtree; returns how many.

    A no-op once the log holds that many (a second run). Raises OvertError.
    """
    from concurrent.futures import ThreadPoolExecutor

    from overt.formats.checkpoint import open_checkpoint
    from overt.log.subtrees import RANGE_SIZE

    size = open_checkpoint(client.checkpoint(), parse_vkey(log_vkey)).checkpoint.size
    missing = range(size, RANGE_SIZE - 1)
    # Sent concurrently: the server sequences them into a few batches (one fsync each).
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: client.sequence(
                    b"overt demo: entry %d of the first %d-entry range\n" % (i, RANGE_SIZE)
                ),
                missing,
            )
        )
    return len(missing)


def _subtree_witnesses(base: Path) -> list[tuple[str, Verifier]]:
    """The centers whose witness key signs subtrees (ML-DSA-44), with their keys."""
    from overt.formats.keytypes import Purpose

    keys = [
        (region, parse_vkey((base / f"witness-{region}" / "witness.vkey").read_text().strip()))
        for region in REGIONS
    ]
    return [(r, v) for r, v in keys if v.key_type.may_sign(Purpose.SUBTREE)]


def _wait_subtree(base: Path, timeout: float = 20.0) -> list[str]:
    """The regions whose ML-DSA-44 witness cosigned the log's first 256-entry range as a
    subtree (DIR/log/subtrees/0-256), waiting up to ``timeout`` for each of them."""
    from overt.formats.subtree_proof import verify_subtree_cosignatures
    from overt.log.subtrees import RANGE_SIZE, SubtreeStore

    signers = _subtree_witnesses(base)
    if not signers:
        return []
    store = SubtreeStore(base / "log")
    deadline = time.monotonic() + timeout
    while True:
        note = store.get(0, RANGE_SIZE)
        held = list(verify_subtree_cosignatures(note, signers)) if note is not None else []
        if len(held) == len(signers) or time.monotonic() > deadline:
            return held
        time.sleep(0.2)


# The customer's events: what an endpoint product would hand to the filter.
_EVENTS = [
    {
        "type": "process",
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "user": "alice",
        "url": "https://intranet.acme.example/hr/pay.xlsx?id=7",
        "time": "2026-11-26T11:42:07Z",
        "verdict": "malicious",
        "path": "C:\\Users\\alice\\plans.docx",
    },
    {
        "type": "process",
        "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        "user": "bob",
        "url": "https://downloads.example.net/tool.zip",
        "time": "2026-11-26T11:43:55Z",
        "verdict": "clean",
        "path": "C:\\Users\\bob\\Downloads\\tool.zip",
    },
    {
        "type": "process",
        "sha256": "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
        "user": "alice",
        "time": "2026-11-26T11:47:12Z",
        "verdict": "clean",
    },
]


@dataclass(frozen=True)
class Telemetry:
    """Where the demo keeps the telemetry path's state (all under BASE)."""

    collector: Path  # BASE/collector: region key, receipt and access logs, token, store
    ledger: Path  # BASE/ledger: the endpoint's egress ledger
    folder: Path  # BASE/telemetry: policy, salt, events, the refused sample, publisher key
    url: str

    @property
    def policy(self) -> Path:
        return self.folder / "policy.json"


def _cli(*args: str, expect: int = 0, env: dict[str, str] | None = None) -> str:
    """Run one ``overt`` command to completion; its stdout, or OvertError naming it."""
    try:
        done = subprocess.run(
            _overt(*args),
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env} if env else None,
        )
    except subprocess.TimeoutExpired as err:
        raise OvertError(f"overt {' '.join(args[:2])} did not finish in 120 s") from err
    if done.returncode != expect:
        lines = done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["-"]
        raise OvertError(
            f"overt {' '.join(args[:2])} exited with {done.returncode}, not {expect}: {lines[-1]}"
        )
    return done.stdout if expect == 0 else done.stderr


def _revision(path: Path) -> dict[str, Any]:
    """The demo's earlier policy, to reuse its revision (or go one up).

    Raises:
        ConfigError: not a policy with an integer revision (the file is named, left as is).
    """
    try:
        old = json.loads(path.read_bytes())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path} is not the demo's telemetry policy: {err}") from err
    version = old.get("version") if isinstance(old, dict) else None
    if not isinstance(old, dict) or type(version) is not int or version < 1:
        raise ConfigError(f"{path} is not the demo's telemetry policy: no revision {version!r}")
    return old


def setup_telemetry(base: Path, port: int) -> Telemetry:
    """Create (once) the collector, the customer's policy, salt, events and sample.

    Idempotent: a second run reuses the collector and its logs; the policy's revision goes
    up only when its collector URL changed (another ``--port``).

    Raises:
        OvertError: an ``overt`` command failed (its last line is named).
    """
    tel = Telemetry(
        collector=base / "collector",
        ledger=base / "ledger",
        folder=base / "telemetry",
        url=f"http://127.0.0.1:{port + COLLECTOR_OFFSET}",
    )
    tel.folder.mkdir(exist_ok=True)
    if not (tel.collector / "collector.json").exists():
        _cli(
            "collector", "init", str(tel.collector),
            "--region", TELEMETRY_REGION, "--name", "demo.example/telemetry",
        )  # fmt: skip
    policy: dict[str, object] = {
        "format": "overt-telemetry-policy/v1",
        "customer": CUSTOMER,
        "version": 1,
        "region": TELEMETRY_REGION,
        "collectors": {TELEMETRY_REGION: tel.url},
        "retention_days": 30,
        "events": {
            "process": {
                "fields": {
                    "sha256": {"transform": "keep", "required": True},
                    "user": {"transform": "hash"},
                    "url": {"transform": "host"},
                    "time": {"transform": "coarsen", "step": 3600},
                    "verdict": {"transform": "allow", "values": ["clean", "malicious"]},
                    "path": {"transform": "drop"},
                }
            }
        },
        "samples": {"mode": "executables-only", "max_bytes": 33554432},
    }
    if tel.policy.exists():
        old = _revision(tel.policy)
        same = {**old, "version": 1} == policy
        policy["version"] = old["version"] if same else old["version"] + 1
    data = json.dumps(policy, indent=1).encode() + b"\n"
    if not tel.policy.exists() or tel.policy.read_bytes() != data:
        atomic_write(tel.policy, data)
        (tel.folder / "policy.json.overt").unlink(missing_ok=True)  # publish the new revision
    _cli("collector", "add-policy", str(tel.collector), str(tel.policy))
    salt = tel.folder / "salt"
    if not salt.exists():
        # The customer's own secret: the vendor never sees it, so hashed fields stay opaque.
        fd = os.open(salt, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(24).hex().encode())
    events = b"".join(json.dumps(e).encode() + b"\n" for e in _EVENTS)
    atomic_write(tel.folder / "events.jsonl", events)
    # A PDF renamed .exe: samples are screened by content, so it must never leave.
    atomic_write(tel.folder / "setup.exe", b"%PDF-1.7\n%%EOF\n")
    if not (tel.folder / "publisher.key").exists():
        _cli(
            "publisher", "keygen", str(tel.folder / "publisher.key"),
            "--name", "demo.example/telemetry-release",
        )  # fmt: skip
    return tel


# A small release history for the portal (issue 14): the vendor's releases, an update and
# two rule bundles, the second with a planted rule that collects classified documents,
# each bundle audited by an independent auditor (the second audit fails).
_RULES = {
    "2026.11.1": b"""rule emotet_loader {
    strings:
        $mz = { 4D 5A }
        $api = "VirtualAllocEx"
        $mutex = "Global\\\\EmotetLoader"
    condition:
        $mz at 0 and $api and $mutex
}
""",
    "2026.11.2": b"""rule emotet_loader {
    strings:
        $mz = { 4D 5A }
        $api = "VirtualAllocEx"
        $mutex = "Global\\\\EmotetLoader"
    condition:
        $mz at 0 and $api and $mutex
}

rule collect_us_banner {
    strings:
        $banner = "TOP SECRET//NOFORN" wide ascii nocase
    condition:
        $banner
}
""",
}


def seed_history(base: Path, log_url: str, log_token: str) -> None:
    """Publish (once, into ``base/history``) releases, an update and audited rule bundles.

    Raises:
        OvertError: a step failed (named).
    """
    folder = base / "history"
    folder.mkdir(exist_ok=True)
    env = {"OVERT_LOG_TOKEN": log_token}
    # One publisher identity per folder: the auditor's key lives apart from the vendor's.
    auditor = folder / "auditor" / "auditor.key"
    auditor.parent.mkdir(exist_ok=True)
    for key, name in ((folder / "vendor.key", "demo.example/agent-release"),
                      (auditor, "auditor.example/rule-audit")):  # fmt: skip
        if not key.exists():
            _cli("publisher", "keygen", str(key), "--name", name)
    publish = ("--log", log_url, "--key", str(folder / "vendor.key"), "--product", "agent",
               "--keyset-log", str(base / "keys-log"),
               "--wait-mirrors", str(base / "policy.txt"))  # fmt: skip
    for version in ("1.0.0", "1.1.0"):
        msi = folder / f"agent-{version}.msi"
        if not msi.with_name(msi.name + ".overt").exists():
            atomic_write(msi, b"agent installer %s\n" % version.encode())
            _cli("publish", str(msi), *publish, "--kind", "release", "--version", version,
                 "--platform", "windows", env=env)  # fmt: skip
    update = folder / "agent-1.1.0.update"
    if not update.with_name(update.name + ".overt").exists():
        atomic_write(update, b"agent update to 1.1.0\n")
        _cli("publish", str(update), *publish, "--kind", "update", "--version", "1.1.0",
             "--min-previous", "1.0.0", env=env)  # fmt: skip
    for version, text in _RULES.items():
        bundle = folder / f"rules-{version}.yar"
        if bundle.with_name(bundle.name + ".overt").exists():
            continue
        atomic_write(bundle, text)
        _cli("publish", str(bundle), *publish, "--kind", "rule-bundle", "--version", version,
             "--rule-count", str(text.count(b"rule ")), env=env)  # fmt: skip
        planted = b"collect_us_banner" in text
        _cli("rules", "attest", str(bundle), "--key", str(auditor),
             "--log", log_url, "--static-only", expect=1 if planted else 0, env=env)  # fmt: skip


# A small real Python project for the source -> review -> rebuild chain (issue 10,
# docs/source-review.md). Its build is offline and deterministic: a zip with sorted names and
# SOURCE_DATE_EPOCH times, unless ``--stamp`` embeds the build's own clock (not reproducible).
_PROJECT = {
    "pyproject.toml": b"""[project]
name = "greeter"
version = "1.0.0"
description = "The demo's small project: reviewed, released and rebuilt"
dependencies = []
""",
    "README": b"greeter: says hello. Built with: python build.py [OUTDIR]\n",
    "src/greeter/__init__.py": b'"""Says hello."""\n',
    "src/greeter/hello.py": b'def hello(name: str) -> str:\n    return f"hello, {name}"\n',
    "build.py": b"""import os, sys, time, zipfile
when = time.gmtime(int(os.environ["SOURCE_DATE_EPOCH"]))[:6]
out = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "--stamp" else "dist"
os.makedirs(out, exist_ok=True)
names = sorted(p for p in ("README", "pyproject.toml", "src/greeter/__init__.py",
                           "src/greeter/hello.py"))
with zipfile.ZipFile(os.path.join(out, "greeter.zip"), "w") as z:
    for name in names:
        z.writestr(zipfile.ZipInfo(name, when), open(name, "rb").read())
    if "--stamp" in sys.argv:  # what breaks reproducibility: the build's own clock
        z.writestr(zipfile.ZipInfo("BUILD_INFO", when), str(time.time()))
""",
}
_CHANGED = ("src/greeter/hello.py", b'def hello(name: str) -> str:\n    return f"hello, {name}!"\n')
_PLAIN_EPOCH = "315532800"  # a plain directory's SOURCE_DATE_EPOCH (docs/source-review.md)


@dataclass(frozen=True)
class SourceRun:
    """What the source chain showed (printed in the banner, checked by --smoke's test)."""

    release: str  # the release bundle carrying the evidence
    coverage: float  # percent of the release's files reviewed by 2 reviewers
    coverage_next: float  # the same reviews over the next snapshot (one file changed)
    unreviewed: list[str]  # the next snapshot's files the reviews no longer cover
    matches: int  # rebuilds that matched the released artifact
    mismatches: int  # rebuilds that did not (the build that embeds its clock)


def _write_project(root: Path, changed: bool) -> None:
    for name, data in _PROJECT.items():
        if changed and name == _CHANGED[0]:
            data = _CHANGED[1]
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(root / name, data)


def _coverage(snap: Path, reviews: list[Path], vkey: str) -> dict[str, Any]:
    out = _cli("review", "coverage", str(snap), "--reviews", *map(str, reviews),
               "--vkey", vkey, "--min-reviewers", "2", "--json")  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


def seed_source_chain(base: Path, log_url: str, log_token: str, vkey: str) -> SourceRun:
    """Walk (once, into ``base/history/source``) snapshot, reviews, release, rebuilds, SBOM.

    Idempotent: each step's output names it done, so a second run publishes nothing again.

    Raises:
        OvertError: a step did not give the expected result (named).
    """
    folder = base / "history" / "source"
    folder.mkdir(parents=True, exist_ok=True)
    env = {"OVERT_LOG_TOKEN": log_token}
    log = ("--log", log_url)
    vendor = str(base / "history" / "vendor.key")
    project, project2 = folder / "greeter-1.0.0", folder / "greeter-1.0.1"
    snap, snap2 = folder / "greeter-1.0.0.snap", folder / "greeter-1.0.1.snap"
    for root, path, changed in ((project, snap, False), (project2, snap2, True)):
        if not Path(f"{path}.overt").exists():
            _write_project(root, changed)
            _cli("source", "snapshot", str(root), "--out", str(path), "--publish", *log,
                 "--key", vendor, env=env)  # fmt: skip
    reviewers = ("alice", "bob")
    reviews: list[Path] = []
    for who in reviewers:
        key = folder / f"{who}.key"
        if not key.exists():
            _cli("review", "keygen", str(key), "--name", f"{who}.example/review", *log, env=env)
        review = folder / f"{who}.review"
        if not review.exists():
            _cli("review", "record", str(snap), "--key", str(key), "--files", "*",
                 "--verdict", "pass", "--thoroughness", "high", *log, "--out", str(review),
                 env=env)  # fmt: skip
        reviews.append(review)
    release_dir = folder / "release"
    release_dir.mkdir(exist_ok=True)
    artifact = release_dir / "greeter.zip"
    bundle = release_dir / "greeter.zip.overt"
    if not bundle.exists():
        build = subprocess.run(
            [sys.executable, "build.py", str(release_dir)], cwd=project, capture_output=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": _PLAIN_EPOCH, "TZ": "UTC"}, timeout=60,
        )  # fmt: skip
        if build.returncode != 0 or not artifact.is_file():
            raise OvertError(f"the greeter build failed: {build.stderr.decode()[-200:]}")
        _cli("publish", str(artifact), *log, "--key", vendor, "--kind", "release",
             "--product", "greeter", "--version", "1.0.0", "--source", str(snap),
             env=env)  # fmt: skip
    rebuild = ("rebuild", str(bundle), "--snapshot", str(snap), "--source", str(project),
               "--output", "dist/*.zip", *log)  # fmt: skip
    python = sys.executable
    vsas: list[Path] = []
    for who in reviewers:
        vsa = folder / f"{who}.vsa"
        if not vsa.exists():
            said = _cli(*rebuild, "--build", f"'{python}' build.py",
                        "--key", str(folder / f"{who}.key"), "--out", str(vsa),
                        env=env)  # fmt: skip
            atomic_write(Path(f"{vsa}.txt"), said.strip().encode() + b"\n")
        vsas.append(vsa)
    stamped = folder / "bob-stamped.vsa"
    if not stamped.exists():
        why = _cli(*rebuild, "--build", f"'{python}' build.py --stamp",
                   "--key", str(folder / "bob.key"), "--out", str(stamped),
                   expect=1, env=env)  # fmt: skip
        if "BUILD_INFO" not in why:
            raise OvertError(f"the stamped rebuild was not caught as a mismatch: {why[-200:]}")
        atomic_write(Path(f"{stamped}.txt"), why.strip().encode() + b"\n")
    sbom = folder / "greeter.cdx.json"
    if not Path(f"{sbom}.overt").exists():
        _cli("sbom", "create", str(project), "--publish", "--artifact", str(artifact), *log,
             "--key", vendor, "--out", str(sbom), env=env)  # fmt: skip
    full = folder / "greeter-1.0.0-evidence.overt"
    if not full.exists():
        _cli("source", "evidence", str(bundle), "--add", *map(str, reviews), *map(str, vsas),
             f"{sbom}.overt", *log, "--out", str(full), env=env)  # fmt: skip
    first = _coverage(full, reviews, vkey)
    second = _coverage(snap2, reviews, vkey)
    # What each rebuild said when it ran (kept beside its VSA bundle for the next run).
    results = [Path(f"{v}.txt").read_text() for v in (*vsas, stamped)]
    return SourceRun(
        str(full),
        float(first["file_share"]),
        float(second["file_share"]),
        [*second["changed_since_reviewed"], *second["unreviewed"]],
        sum(" matches " in line for line in results),
        sum("does not match" in line.lower() for line in results),
    )


@dataclass(frozen=True)
class TelemetryRun:
    """What the telemetry walk showed (printed in the banner, checked by --smoke's test)."""

    sent: list[str]  # "sent DIGEST (N event(s)), receipt I" lines
    refused: str  # the refused sample's one line
    read: str  # the digest read through the logged query API
    monitor: str
    ledger: str
    reconcile: str


def run_telemetry(tel: Telemetry, log_url: str, log_token: str) -> TelemetryRun:
    """Publish, send, refuse, read, monitor, verify and reconcile against a running collector.

    Raises:
        OvertError: a step did not give the expected result (the step is named).
    """
    publish = ("--log", log_url, "--key", str(tel.folder / "publisher.key"), "--kind", "release")
    env = {"OVERT_LOG_TOKEN": log_token}
    policy_bundle = tel.folder / "policy.json.overt"
    if not policy_bundle.exists():
        version = str(json.loads(tel.policy.read_bytes())["version"])
        _cli(
            "publish", str(tel.policy), *publish, "--product", "overt-telemetry-policy",
            "--version", version, "--channel", CUSTOMER, "--platform", "any",
            "--out", str(policy_bundle), env=env,
        )  # fmt: skip
    key = tel.collector / "collector.key.pub"
    key_bundle = tel.folder / "collector.key.pub.overt"
    if not key_bundle.exists():
        _cli(
            "publish", str(key), *publish, "--product", "overt-telemetry-collector-key",
            "--version", "1", "--channel", TELEMETRY_REGION, "--platform", "x25519",
            "--out", str(key_bundle), env=env,
        )  # fmt: skip
    receipts_vkey = str(tel.collector / "receipts" / "log.vkey")
    common = (
        "--ledger",
        str(tel.ledger),
        "--key",
        str(key),
        "--salt-file",
        str(tel.folder / "salt"),
    )
    out = _cli(
        "telemetry", "send", str(tel.policy), str(tel.folder / "events.jsonl"), *common,
        "--receipts", str(tel.folder / "receipts.jsonl"), "--receipts-vkey", receipts_vkey,
    )  # fmt: skip
    sent = [line for line in out.splitlines() if line.startswith("sent ")]
    if not sent:
        raise OvertError(f"overt telemetry send sent nothing: {out.strip()[:200]}")
    refused = _cli(
        "telemetry", "send", str(tel.policy), "--sample", str(tel.folder / "setup.exe"), *common,
        expect=1,
    ).strip()  # fmt: skip
    if "sample refused" not in refused:
        raise OvertError(f"the document sample was not refused as a document: {refused[:200]}")
    digest = sent[-1].split()[1]
    _cli(
        "collector", "read", tel.url, digest, "--customer", CUSTOMER,
        "--actor", ANALYST, "--reason", REASON,
        "--token-file", str(tel.collector / "token"),
    )  # fmt: skip
    monitor = _cli(
        "monitor", f"{tel.url}/access", "--vkey", str(tel.collector / "access" / "log.vkey"),
        "--check", f"telemetry-access={CUSTOMER}:30", "--once",
    )  # fmt: skip
    # --once exits 1 on any alert, so reaching here means none; say what was checked.
    checked = [json.loads(line) for line in monitor.splitlines() if '"entries"' in line]
    end = checked[-1]["end"] if checked else 0
    entries = "1 entry" if end == 1 else f"{end} entries"
    summary = f"access log: {entries} checked by telemetry-access={CUSTOMER}:30, no alert"
    ledger = _cli("telemetry", "ledger", "verify", str(tel.ledger)).strip()
    reconcile = _cli(
        "telemetry", "reconcile", str(tel.ledger), f"{tel.url}/receipts",
        "--receipts-vkey", receipts_vkey,
    ).strip()  # fmt: skip
    return TelemetryRun(sent, refused, digest, summary, ledger, reconcile.splitlines()[-1])


def _port(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 0 < int(text) <= 65536 - PORTS:
        raise argparse.ArgumentTypeError(f"not a port (1..{65536 - PORTS}): {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m overt.demo",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="state directory")
    parser.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="log port; the witnesses use the next three, then the collector, then the portal",
    )
    parser.add_argument("--smoke", action="store_true", help="start, append, verify, stop")
    args = parser.parse_args(argv)
    try:
        return _run(args.dir.resolve(), args.port, args.smoke)  # steps run with other cwds
    except OvertError as err:
        print(f"overt demo: {err}", file=sys.stderr)
        return 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run(base: Path, port: int, smoke: bool) -> int:
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create {base}: {err.strerror}") from err
    # Nothing of a running demo is touched: the lock and the ports come before any write.
    held = lock(base)
    # A SIGTERM (kill, a supervisor, a closed terminal's session) stops the demo like Ctrl-C:
    # the services it started are stopped too, not left holding its ports and state.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        check_ports(port)
        return _serve(base, port, smoke)
    finally:
        held.close()


def _serve(base: Path, port: int, smoke: bool) -> int:
    policy_path = setup(base, port)
    tel = setup_telemetry(base, port)
    log_dir = base / "log"
    url = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    logs = open(base / "services.log", "ab")  # noqa: SIM115 (closed in finally)
    try:
        mirrors = []  # started first: they start while the witnesses do
        for i, region in enumerate(REGIONS):
            listen = _mirror_url(port, i).removeprefix("http://")
            proc = subprocess.Popen(
                _overt("mirror", "serve", str(base / f"mirror-{region}"), "--listen", listen),
                stdout=logs,
                stderr=logs,
            )
            procs.append(proc)
            mirrors.append(proc)
        for i, region in enumerate(REGIONS, 1):
            wdir = base / f"witness-{region}"
            proc = subprocess.Popen(
                _overt("witness", "serve", str(wdir), "--listen", f"127.0.0.1:{port + i}"),
                stdout=logs,
                stderr=logs,
            )
            procs.append(proc)
            _wait_http(f"http://127.0.0.1:{port + i}/logs", proc)
        # The log feeds the centers' mirrors and adds their cosignatures to its checkpoint
        # (the policy names them), so bundles carry the mirror quorum (docs/mirror.md).
        feeds = [a for i in range(len(REGIONS)) for a in ("--mirror", _mirror_url(port, i))]
        proc = subprocess.Popen(
            _overt("log", "serve", str(log_dir), "--listen", f"127.0.0.1:{port}", *feeds),
            stdout=logs,
            stderr=logs,
        )
        procs.append(proc)
        _wait_http(f"{url}/checkpoint", proc)
        for i, proc in enumerate(mirrors):
            _wait_http(_mirror_url(port, i), proc)
        with LogClient(url, read_token(log_dir), timeout=30) as client:
            if _subtree_witnesses(base):  # a demo made before has Ed25519 witnesses only
                fill_first_range(client, read_vkey(log_dir))
            entry = b"overt demo: the Transparency Center started at %d\n" % int(time.time())
            index, raw = client.add(entry)
        verified = verify_proof(
            parse_proof(raw),
            merkle.leaf_hash(entry),
            parse_vkey(read_vkey(log_dir)),
            policy=parse_policy(policy_path.read_bytes()),
            now=time.time(),
            max_age=300,
        )
        cosigners = len(verified.checkpoint.cosignatures())
        mirrored = _wait_mirrored(port, index + 1)
        subtree = _wait_subtree(base)
        proc = subprocess.Popen(
            _overt(
                "collector", "serve", str(tel.collector),
                "--listen", f"127.0.0.1:{port + COLLECTOR_OFFSET}",
            ),
            stdout=logs,
            stderr=logs,
        )  # fmt: skip
        procs.append(proc)
        _wait_http(f"{tel.url}/v1/key", proc)
        walked = run_telemetry(tel, url, read_token(log_dir))
        seed_history(base, url, read_token(log_dir))
        chain = seed_source_chain(base, url, read_token(log_dir), read_vkey(log_dir))
        portal_url = f"http://127.0.0.1:{port + PORTAL_OFFSET}/"
        partner = seed_partner(base)
        proc = subprocess.Popen(
            _overt(
                "portal", "serve", str(log_dir),
                "--listen", f"127.0.0.1:{port + PORTAL_OFFSET}",
                "--monitor-events", str(base / "monitor.jsonl"),
                "--telemetry-policy", str(tel.policy),
                "--artifacts", str(base / "history"),
                "--access-log", str(tel.collector / "access"),
                # The partners' area: accounts (overt portal user add --state DIR/portal) and
                # what partners sign, logged through the log server.
                "--state", str(base / "portal"), "--log", url,
            ),
            stdout=logs,
            stderr=logs,
            env={**os.environ, "OVERT_LOG_TOKEN": read_token(log_dir)},
        )  # fmt: skip
        procs.append(proc)
        _wait_http(portal_url, proc)
        monitor_out = open(base / "monitor.jsonl", "ab")  # noqa: SIM115 (closed with logs)
        procs.append(
            subprocess.Popen(
                _overt(
                    "monitor",
                    url,
                    "--vkey",
                    str(log_dir / "log.vkey"),
                    "--policy",
                    str(policy_path),
                    "--state",
                    str(base / "monitor"),
                    "--interval",
                    "2",
                ),
                stdout=monitor_out,
                stderr=logs,
            )
        )
        print(f"overt Transparency Center portal: {portal_url}", flush=True)
        print(f"  partners' area: {portal_url}login as alice (reviewer), {partner}", flush=True)
        print(_banner(base, url, read_vkey(log_dir), policy_path, index, cosigners), flush=True)
        print(_subtree_banner(base, subtree), flush=True)
        print(_mirror_banner(base, port, index, mirrored), flush=True)
        print(_keyset_banner(base), flush=True)
        print(_source_banner(chain), flush=True)
        print(_telemetry_banner(tel, walked), flush=True)
        if smoke:
            # Until the monitor has checked the entries (a few seconds on a busy machine).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and procs[-1].poll() is None:
                if b'"event":"entries"' in (base / "monitor.jsonl").read_bytes():
                    break
                time.sleep(0.2)
            if procs[-1].poll() not in (None, 0):
                raise OvertError("the monitor stopped; see " + str(base / "services.log"))
            return 0
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        dead = [p for p in procs if p.poll() is not None]
        raise OvertError(f"overt {_name(dead[0])} stopped; see {base / 'services.log'}")
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        logs.close()


def _banner(base: Path, url: str, vkey: str, policy: Path, index: int, cosigners: int) -> str:
    overt = ".venv/bin/overt" if Path(".venv/bin/overt").exists() else "overt"
    port = int(url.rsplit(":", 1)[1])
    wvkeys = [(base / f"witness-{r}" / "witness.vkey").read_text().strip() for r in REGIONS]
    witnesses = "\n".join(
        f"  {region:<9} http://127.0.0.1:{port + i}  {_key_type(wvkey)}  {wvkey}"
        for i, (region, wvkey) in enumerate(zip(REGIONS, wvkeys, strict=True), 1)
    )
    return f"""
overt Transparency Center (state in {base}/, service logs in {base}/services.log)

  log       {url}   origin {ORIGIN}
  witnesses {", ".join(REGIONS)} on the next three ports; policy: 2 of 3, mixed key types (ADR 0014)
  monitor   alerts and events in {base}/monitor.jsonl

log verifier key ({base}/log/log.vkey):
  {vkey}
witness verifier keys (the portal checks ML-DSA-44 cosignatures on the server: browsers cannot):
{witnesses}
witness policy (give it to clients: --policy): {policy}
log write token (POST /add, publish --token): {base}/log/token

entry {index} was just appended and verified with {cosigners} witness cosignatures.

append a file (prints its index once durable; add ?proof=1 for its tlog-proof):
  curl -sS -H "Authorization: Bearer $({overt} log token {base}/log)" --data-binary @README.md {url}/add
read the witnessed checkpoint:
  curl -sS {url}/checkpoint
verify the whole log under the witness policy, cosigned in the last 10 minutes:
  {overt} log verify {url} --policy {policy} --max-age 600
see integrated vs published sizes and witness states:
  curl -sS {url}/metrics""".rstrip()


def _key_type(vkey: str) -> str:
    """The algorithm of a witness's verifier key, as ``overt witness init --key-type`` names it."""
    return parse_vkey(vkey).key_type.algorithm.name


def _subtree_banner(base: Path, cosigned_by: list[str]) -> str:
    overt = ".venv/bin/overt" if Path(".venv/bin/overt").exists() else "overt"
    if not cosigned_by:
        return (
            "\nsubtree cosignatures: the first 256-entry range is not cosigned"
            " (no ML-DSA-44 witness: start from an empty .demo)"
        )
    return f"""
subtree cosignatures (ADR 0013): entries [0, 256) cosigned as one range by {", ".join(cosigned_by)}
  (ML-DSA-44 witnesses only: Ed25519 cannot sign subtrees, so a subtree proof meets the 2 of 3
  policy once a second ML-DSA-44 witness joins); the range and its path for entry 7:
  {overt} log proof {base}/log 7 --subtree""".rstrip()


def _mirror_banner(base: Path, port: int, index: int, mirrored: list[str]) -> str:
    overt = ".venv/bin/overt" if Path(".venv/bin/overt").exists() else "overt"
    mirrors = "\n".join(
        f"  {region + '-m':<11} {_mirror_url(port, i)}  "
        f"{(base / f'mirror-{region}' / 'mirror.vkey').read_text().strip()}"
        for i, region in enumerate(REGIONS)
    )
    held = ", ".join(r + "-m" for r in mirrored) or "no mirror yet"
    return f"""
mirrors (c2sp.org/tlog-mirror; each center keeps the data; policy: 2 of 3 must hold it):
{mirrors}
entry {index} is held by the mirrors {held}.
the release bundles carry 2 of 3 mirror cosignatures (publish --wait-mirrors): offline endpoints check them.
verify the log from the mirrors alone, as if the log were down (nothing listens on port 9):
  {overt} log verify http://127.0.0.1:9 --policy {base}/policy.txt""".rstrip()


def seed_partner(base: Path) -> str:
    """A reviewer account in the portal's partners' area (docs/portal.md) for the source
    chain's reviewer alice, her logged key; the password is made once and kept 0600."""
    from overt.log.fs import atomic_write
    from overt.portal.accounts import AccountStore, PartnerRole

    state, key = base / "portal", base / "history" / "source" / "alice.key"
    password = state / "alice.password"
    if not password.exists():
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(12)
        vkey = Path(f"{key}.pub").read_text().strip()
        AccountStore(state).add("alice", PartnerRole.REVIEWER, secret, vkey)
        atomic_write(password, secret.encode() + b"\n", mode=0o600)
    return f"password in {password}, her key {key}"


def _source_banner(run: SourceRun) -> str:
    changed = ", ".join(run.unreviewed) or "none"
    return f"""
source chain (docs/source-review.md): release greeter 1.0.0 with provenance, 2 reviews,
  rebuilds, SBOM in one bundle: {run.release}
  coverage {run.coverage:.0f}% of files by 2 reviewers; next snapshot {run.coverage_next:.0f}%\
 (unreviewed: {changed})
  rebuilds: {run.matches} match, {run.mismatches} mismatch (a build that embeds its clock)\
""".rstrip()


def _telemetry_banner(tel: Telemetry, run: TelemetryRun) -> str:
    overt = ".venv/bin/overt" if Path(".venv/bin/overt").exists() else "overt"
    col = tel.collector
    sent = "\n".join(f"  {line}" for line in run.sent)
    return f"""
telemetry (docs/telemetry.md): customer {CUSTOMER}, region {TELEMETRY_REGION}
  collector   {tel.url}   (state in {col}/, token {col}/token)
  policy      {tel.policy}  (published to the log: {tel.folder}/policy.json.overt)
  region key  {col}/collector.key.pub  (published: {tel.folder}/collector.key.pub.overt)
  ledger      {tel.ledger}  (the endpoint's egress ledger)

receipt log verifier key ({col}/receipts/log.vkey):
  {(col / "receipts" / "log.vkey").read_text().strip()}
access log verifier key ({col}/access/log.vkey):
  {(col / "access" / "log.vkey").read_text().strip()}

events sent through the endpoint filter, recorded in the ledger, receipts verified:
{sent}
a PDF renamed setup.exe, offered as a sample: {run.refused}
read by {ANALYST} through the query API, logged with its reason first:
  {run.read} ({REASON!r})
{run.monitor}
{run.ledger}
reconcile with the receipt log: {run.reconcile}

verify the egress ledger:
  {overt} telemetry ledger verify {tel.ledger}
reconcile it with the collector's receipt log (sent vs received, both directions):
  {overt} telemetry reconcile {tel.ledger} {tel.url}/receipts --receipts-vkey {col}/receipts/log.vkey
follow who read {CUSTOMER}'s data (an access without a reason is an alert):
  {overt} monitor {tel.url}/access --vkey {col}/access/log.vkey \\
      --check telemetry-access={CUSTOMER}:30 --once

Ctrl-C stops everything.""".rstrip()


if __name__ == "__main__":
    sys.exit(main())
