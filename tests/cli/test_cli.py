"""The ``overt`` command as a whole: exit codes, help, start-up cost, bulk input, messages.

Each test is named after the user mistake or lie it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from overt.cli import main as cli_main
from overt.formats.cosignature import ALG_COSIGNATURE_V1
from overt.formats.note import generate_key
from overt.log.log import Log

HEAVY = ("sqlalchemy", "httpx", "uvicorn", "yaramod", "yara_x")


def overt(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "overt.cli.main", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    try:
        code = cli_main.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse: --help, --version, usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    assert err.startswith("overt: ") and err.endswith("\n") and err.count("\n") == 1, err
    return err


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _subparsers(sub)


# --- help, version, exit codes --------------------------------------------------------


def test_every_positional_argument_has_help() -> None:
    parsers = list(_subparsers(cli_main.build_parser()))
    assert len(parsers) > 20
    for parser in parsers:
        for action in parser._actions:
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{parser.prog} {action.dest}: no help"


def test_every_default_is_shown_in_help() -> None:
    for parser in _subparsers(cli_main.build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if action.option_strings and action.default not in (
                None,
                False,
                [],
                argparse.SUPPRESS,
            ):
                assert action.help, f"{parser.prog} {action.option_strings}: no help"
                shown = "default" in action.help or f"(default: {action.default}" in " ".join(
                    text.split()
                )
                assert shown, f"{parser.prog} {action.option_strings}: default not shown"


def test_help_lists_every_command_without_building_them() -> None:
    def commands(parser: argparse.ArgumentParser) -> dict[str, str | None]:
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return {c.dest: c.help for c in action._choices_actions}

    full = commands(cli_main.build_parser())
    assert commands(cli_main.build_parser(["--help"])) == full
    assert commands(cli_main.build_parser(["log", "vkey", "x"])) == full


def test_rules_cli_lists_the_real_severities_and_audit_name() -> None:
    from overt.cli import rules as cli_rules
    from overt.rules.attest import DEFAULT_AUDIT
    from overt.rules.detectors import Severity

    assert list(cli_rules.LEVELS) == [str(s) for s in Severity]
    assert cli_rules.DEFAULT_AUDIT == DEFAULT_AUDIT


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from overt import __version__

    code, out, _ = run(capsys, "--version")
    assert (code, out) == (0, f"overt {__version__}\n")


def test_verbose_after_the_command_shows_the_traceback(tmp_path: Path) -> None:
    out = overt("log", "vkey", str(tmp_path / "nolog"), "--verbose")
    assert out.returncode == 1 and b"Traceback" in out.stderr
    quiet = overt("log", "vkey", str(tmp_path / "nolog"))
    assert quiet.returncode == 1 and b"Traceback" not in quiet.stderr
    one_line(quiet.stderr.decode())


@pytest.mark.parametrize("listen", ["8080", "nowhere", "host:", "host:0x50", "host:99999"])
def test_malformed_listen_address_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], listen: str
) -> None:
    code, _, err = run(capsys, "log", "serve", tmp_path, "--listen", listen)
    assert code == 2
    assert err.startswith("overt: usage") and "HOST:PORT" in err and err.count("\n") == 1


@pytest.mark.parametrize("group", ["log", "witness"])
def test_busy_port_is_one_line_and_exit_1(tmp_path: Path, group: str) -> None:
    if group == "log":
        Log.create(tmp_path / "d", "busy.example/log").close()
    else:
        assert overt("witness", "init", str(tmp_path / "d"), "--name", "w.example").returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = overt(group, "serve", str(tmp_path / "d"), "--listen", f"127.0.0.1:{port}")
    assert out.returncode == 1, out.stderr
    assert "already in use" in one_line(out.stderr.decode())


# --- start-up -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["log", "--help"],
        ["publish", "--help"],
        ["publisher", "rotate", "--help"],
        ["witness", "--help"],
        ["monitor", "--help"],
        ["rules", "audit", "--help"],
        ["disclosure", "--help"],
        ["log", "vkey", "{log}"],
    ],
)
def test_startup_imports_nothing_heavy(tmp_path: Path, argv: list[str]) -> None:
    Log.create(tmp_path / "log", "light.example/log").close()
    argv = [a.format(log=tmp_path / "log") for a in argv]
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['overt', *{argv!r}]\n"
        "try:\n"
        "    runpy.run_module('overt.cli.main', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in out.stdout, out.stdout[-500:] + out.stderr


def test_log_vkey_imports_no_verification_core(tmp_path: Path) -> None:
    Log.create(tmp_path / "log", "light.example/log").close()
    probe = (
        "import sys\n"
        "from overt.cli.main import main\n"
        f"main(['log', 'vkey', {str(tmp_path / 'log')!r}])\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith(('overt.formats', "
        "'overt.log.log', 'cryptography'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr


# --- bulk input -----------------------------------------------------------------------


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    Log.create(tmp_path / "log", "bulk.example/log").close()
    return tmp_path / "log"


def _records(entries: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(e)) + e for e in entries)


def test_bulk_add_from_records_needs_no_argument_per_entry(log_dir: Path) -> None:
    entries = [b"record %d" % i for i in range(3000)] + [b"x" * 65535]
    out = overt("log", "add", str(log_dir), "--records", stdin=_records(entries))
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().split() == [str(i) for i in range(len(entries))]
    with Log.open(log_dir) as log:
        assert log.size == len(entries)
        assert log.entry(2999) == b"record 2999"


def test_bulk_add_from_nul_separated_paths(log_dir: Path, tmp_path: Path) -> None:
    names = []
    for i in range(50):
        path = tmp_path / f"file with space {i}\n"
        path.write_bytes(b"file %d" % i)
        names.append(os.fsencode(path))
    stdin = b"\0".join(names)  # no trailing NUL: still read
    out = overt("log", "add", str(log_dir), "--stdin0", stdin=stdin)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().split() == [str(i) for i in range(50)]


@pytest.mark.parametrize(
    ("stdin", "needle"),
    [
        (b"\x00\x00\x00\x05abc", "ends inside the record"),
        (b"\x00\x00", "ends inside a length"),
        (b"\x00\x01\x00\x00" + b"x" * 65536, "over 65535"),
        (b"\xff\xff\xff\xff", "over 65535"),
        (b"\x00\x00\x00\x00", "empty"),
    ],
)
def test_truncated_or_oversized_records_are_refused_whole(
    log_dir: Path, stdin: bytes, needle: str
) -> None:
    out = overt("log", "add", str(log_dir), "--records", stdin=_records([b"ok"]) + stdin)
    assert out.returncode == 1
    assert needle in one_line(out.stderr.decode())
    with Log.open(log_dir) as log:
        assert log.size == 0  # the chunk failed before anything was written


def test_bulk_add_memory_is_bounded_in_bytes_too(
    log_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from overt.cli import log as cli_log

    batches: list[int] = []
    real = Log.add_many

    def add_many(self: Log, entries: list[bytes]) -> list[int]:
        batches.append(sum(map(len, entries)))
        return real(self, entries)

    monkeypatch.setattr(cli_log, "BULK_BYTES", 100)
    monkeypatch.setattr(Log, "add_many", add_many)
    data = _records([b"%029d" % i for i in range(10)])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, err = run(capsys, "log", "add", log_dir, "--records")
    assert code == 0, err
    assert out.split() == [str(i) for i in range(10)]
    assert batches == [116, 116, 58]  # 4, 4 and 2 entries of 29 bytes


def test_bulk_flags_and_files_do_not_mix(log_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    out = overt("log", "add", str(log_dir), str(tmp_path / "a"), "--records")
    assert out.returncode == 2 and "not both" in one_line(out.stderr.decode())
    out = overt("log", "add", str(log_dir), "--records", "--stdin0")
    assert out.returncode == 2
    out = overt("log", "add", str(log_dir))
    assert out.returncode == 2 and "nothing to add" in one_line(out.stderr.decode())


# --- witnesses down: messages ---------------------------------------------------------


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _witness_policy(tmp_path: Path) -> bytes:
    lines = []
    for region in ("asia", "europe"):
        skey, vkey = generate_key(f"{region}.witness.example", ALG_COSIGNATURE_V1)
        (tmp_path / f"{region}.skey").write_text(skey + "\n")
        lines.append(f"witness {region} {vkey} http://127.0.0.1:{_dead_port()}\n")
    return "".join(lines).encode() + b"group both 2 asia europe\nquorum both\n"


def test_quorum_warning_is_printed_once(log_dir: Path, tmp_path: Path) -> None:
    with Log.open(log_dir) as log:
        log.set_policy(_witness_policy(tmp_path))
    (tmp_path / "a").write_bytes(b"a")
    out = overt("log", "add", str(log_dir), str(tmp_path / "a"))
    assert out.returncode == 0, out.stderr
    err = out.stderr.decode()
    assert err.count("quorum not met") == 1, err
    assert err.count("\n") == 1 and "asia" in err and "europe" in err


def test_publish_while_the_quorum_is_down_says_so(
    log_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    asgi_server: Callable[[Any], Any],
) -> None:
    from overt.log.server import LogApp
    from overt.log.witnessing import Witnessing

    log = Log.open(log_dir)
    log.set_policy(_witness_policy(tmp_path))
    assert log.policy is not None
    witnessing = Witnessing(log, log.policy)
    server = asgi_server(LogApp(log, witnessing=witnessing))
    try:
        key = tmp_path / "vendor.key"
        assert run(capsys, "publisher", "keygen", key, "--name", "vendor.example/r")[0] == 0
        (tmp_path / "a.bin").write_bytes(b"artifact")
        base = ("publish", tmp_path / "a.bin", "--log", server.url, "--key", key)
        base += ("--kind", "release", "--product", "p", "--version", "1.0")
        # No token: say which and where to get one, not a bare "HTTP 401".
        os.environ.pop("OVERT_LOG_TOKEN", None)
        code, _, err = run(capsys, *base)
        assert code == 1 and "--token" in one_line(err) and "overt log token" in err
        code, _, err = run(capsys, *base, "--token", "0" * 64)
        assert code == 1 and "refused the write token" in one_line(err)
        # Right token, witnesses down: the quorum is named, and --timeout offered.
        token = (log_dir / "token").read_text().strip()
        code, _, err = run(capsys, *base, "--token", token, "--timeout", "1")
        assert code == 1, err
        one_line(err)
        assert "witness quorum missing" in err and "--timeout" in err
        assert "not answering: asia, europe" in err
    finally:
        server.stop()
        witnessing.close()
        log.close()


def test_publish_into_a_log_directory_without_its_quorum_says_so_once(
    log_dir: Path, tmp_path: Path
) -> None:
    with Log.open(log_dir) as log:
        log.set_policy(_witness_policy(tmp_path))
    key = tmp_path / "vendor.key"
    assert overt("publisher", "keygen", str(key), "--name", "vendor.example/r").returncode == 0
    (tmp_path / "a.bin").write_bytes(b"artifact")
    out = overt(
        "publish", str(tmp_path / "a.bin"), "--log", str(log_dir), "--key", str(key), "--kind",
        "release", "--product", "p", "--version", "1.0",
    )  # fmt: skip
    assert out.returncode == 1
    err = one_line(out.stderr.decode())  # the library's own warning is not repeated
    assert "witness quorum missing" in err and "not answering: asia, europe" in err


# --- monitor --------------------------------------------------------------------------


def test_monitor_takes_the_log_key_from_the_policy(
    log_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").write_bytes(b"a")
    assert run(capsys, "log", "add", log_dir, tmp_path / "a")[0] == 0
    vkey = (log_dir / "log.vkey").read_text().strip()
    (tmp_path / "policy").write_text(f"log {vkey}\nquorum none\n")
    code, out, err = run(
        capsys, "monitor", log_dir, "--policy", tmp_path / "policy", "--once", "--check",
        "size-limit=65535",
    )  # fmt: skip
    assert code == 0, err
    assert '"event"' in out
    code, _, err = run(capsys, "monitor", log_dir, "--once")
    assert code == 1 and "--vkey" in one_line(err)


# --- publisher keys and chains --------------------------------------------------------


@pytest.fixture
def pub(tmp_path: Path, log_dir: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    key = tmp_path / "vendor.key"
    assert run(capsys, "publisher", "keygen", key, "--name", "vendor.example/release")[0] == 0
    skey, vkey = generate_key("w.example", ALG_COSIGNATURE_V1)
    (tmp_path / "w.skey").write_text(skey + "\n")
    (tmp_path / "w.policy").write_text(f"witness w {vkey}\nquorum w\n")
    policy = {
        "version": 1,
        "logs": [(log_dir / "log.vkey").read_text().strip()],
        "witness_policy_file": "w.policy",
        "publisher": (tmp_path / "vendor.key.pub").read_text().strip(),
        "pins": [{"product": "agent", "channels": ["stable"]}],
        "max_checkpoint_age": 3600,
    }
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    return {"key": key, "log": log_dir, "tmp": tmp_path, "policy": tmp_path / "policy.json"}


def _publish(
    capsys: pytest.CaptureFixture[str], p: dict[str, Any], version: str, key: Path, *extra: object
) -> tuple[int, str, str]:
    artifact = p["tmp"] / f"agent-{version}"
    artifact.write_bytes(b"agent " + version.encode())
    return run(
        capsys, "publish", artifact, "--log", p["log"], "--key", key, "--kind", "update",
        "--product", "agent", "--version", version, "--unsafe-local-witness",
        p["tmp"] / "w.skey", *extra,
    )  # fmt: skip


def _endpoint(
    capsys: pytest.CaptureFixture[str], p: dict[str, Any], version: str, state: str
) -> tuple[int, str, str]:
    artifact = p["tmp"] / f"agent-{version}"
    return run(
        capsys, "verify", artifact, "--bundle", f"{artifact}.overt", "--policy", p["policy"],
        "--state", p["tmp"] / state, "--log", p["log"],
    )  # fmt: skip


def test_public_key_as_signing_key_says_it_is_public(
    pub: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _publish(capsys, pub, "1.0.0", Path(f"{pub['key']}.pub"))
    assert code == 1
    assert "public (verifier) key" in one_line(err) and "chmod" not in err
    # The same mistake with a witness key.
    vkey = pub["tmp"] / "w.vkey"
    vkey.write_text((pub["tmp"] / "w.policy").read_text().split()[2] + "\n")
    code, _, err = _publish(capsys, pub, "1.0.0", pub["key"], "--unsafe-local-witness", vkey)
    assert code == 1 and "not a private key" in one_line(err)


def test_consistency_from_beyond_the_tree_is_refused(
    pub: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _publish(capsys, pub, "1.0.0", pub["key"], "--consistency-from", "99")
    assert code == 1 and "size 99" in one_line(err)
    assert _publish(capsys, pub, "1.0.0", pub["key"], "--consistency-from", "1")[0] == 0
    code, _, err = _publish(capsys, pub, "1.0.1", pub["key"], "--consistency-from", "0")
    assert code == 2


def test_verify_max_age_tightens_the_policy(
    pub: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _publish(capsys, pub, "1.0.0", pub["key"])[0] == 0
    artifact = pub["tmp"] / "agent-1.0.0"
    args = ("verify", artifact, "--bundle", f"{artifact}.overt", "--policy", pub["policy"])
    assert run(capsys, *args, "--max-age", "600")[0] == 0
    code, _, err = run(capsys, *args, "--max-age", "0.000001")
    assert code == 1 and "freshness" in one_line(err)


def test_keygen_refuses_a_second_chain_beside_the_publishers(
    pub: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    new = pub["tmp"] / "new.key"
    code, _, err = run(capsys, "publisher", "keygen", new, "--name", "vendor.example/r2")
    assert code == 1 and "publisher rotate" in one_line(err)
    assert not new.exists()
    code, _, _ = run(
        capsys, "publisher", "keygen", new, "--name", "other.example/r", "--new-publisher"
    )
    assert code == 0 and Path(f"{new}.chain").is_file()


def test_rotation_with_a_fresh_chain_is_refused_before_fresh_endpoints_would(
    pub: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The key-rotation trap: a key added by the real chain, published with its own fresh chain."""
    import hashlib

    from overt.cli.publish import _local_witnesses
    from overt.formats.statement import Update
    from overt.publish.keys import load_publisher_signer
    from overt.publish.publisher import Publication, open_log_writer, publish, write_bundle

    chain = Path(f"{pub['key']}.chain")
    new = pub["tmp"] / "new.key"
    # The old way: keygen (a second identity with its own chain), added to the real chain.
    run(capsys, "publisher", "keygen", new, "--name", "vendor.example/r2", "--new-publisher")
    code, _, err = run(
        capsys, "publisher", "keyset", "--key", pub["key"], "--chain", chain, "--log",
        pub["log"], "--add", f"{new}.pub", "--remove", f"{pub['key']}.pub",
    )  # fmt: skip
    assert code == 0, err
    assert _publish(capsys, pub, "1.0.0", new, "--chain", chain)[0] == 0
    assert _endpoint(capsys, pub, "1.0.0", "seen")[0] == 0  # this endpoint saw key set 1
    # What `publish --key new.key` (chain new.key.chain, no key set) produced before:
    artifact = pub["tmp"] / "agent-2.0.0"
    artifact.write_bytes(b"agent 2.0.0")
    item = Publication(
        artifact.name,
        hashlib.sha256(b"agent 2.0.0").hexdigest(),
        Update("agent", "2.0.0", "stable"),
    )
    with open_log_writer(str(pub["log"])) as log:
        (bundle,) = publish(
            log,
            load_publisher_signer(new),
            [item],
            cosign=_local_witnesses([pub["tmp"] / "w.skey"]),
        )
    write_bundle(Path(f"{artifact}.overt"), bundle)
    assert _endpoint(capsys, pub, "2.0.0", "seen")[0] == 0  # accepted here...
    code, _, err = _endpoint(capsys, pub, "2.0.0", "fresh")
    assert code == 1 and "publisher-key" in err  # ...refused by every new endpoint
    # The tool refuses to make such a bundle, naming the logged key set.
    code, _, err = _publish(capsys, pub, "2.0.1", new)
    assert code == 1 and "key set 1" in one_line(err) and "--chain" in err
    # With the chain that the log holds, every endpoint accepts.
    code, _, err = _publish(capsys, pub, "2.0.1", new, "--chain", chain)
    assert code == 0, err
    assert _endpoint(capsys, pub, "2.0.1", "fresh2")[0] == 0
    assert _endpoint(capsys, pub, "2.0.1", "seen")[0] == 0


def test_rotate_extends_the_chain_and_fresh_endpoints_accept(
    pub: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _publish(capsys, pub, "1.0.0", pub["key"])[0] == 0
    assert _endpoint(capsys, pub, "1.0.0", "seen")[0] == 0
    chain = Path(f"{pub['key']}.chain")
    new = pub["tmp"] / "new.key"
    code, out, err = run(
        capsys, "publisher", "rotate", pub["key"], new, "--chain", chain, "--log", pub["log"],
        "--revoke-old",
    )  # fmt: skip
    assert code == 0, err
    assert "key set 1" in out
    assert new.is_file() and Path(f"{new}.chain").resolve() == chain.resolve()
    # No --chain: NEW.key.chain is the publisher's chain.
    code, _, err = _publish(capsys, pub, "2.0.0", new)
    assert code == 0, err
    assert _endpoint(capsys, pub, "2.0.0", "fresh")[0] == 0
    assert _endpoint(capsys, pub, "2.0.0", "seen")[0] == 0
    # The revoked key is refused by the tool.
    code, _, err = _publish(capsys, pub, "2.0.1", pub["key"])
    assert code == 1


def test_the_log_scan_is_cached_and_still_sees_new_key_sets(
    pub: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    chain = Path(f"{pub['key']}.chain")
    assert _publish(capsys, pub, "1.0.0", pub["key"])[0] == 0
    assert _publish(capsys, pub, "1.0.1", pub["key"])[0] == 0  # scans the log of size 1
    scan = Path(f"{chain}.scan")
    assert json.loads(scan.read_text())["logs"]["bulk.example/log"]["size"] >= 1
    before = json.loads(scan.read_text())["logs"]["bulk.example/log"]["size"]
    # A key set logged after the cached scan is still found (the scan resumes, not stops).
    new = pub["tmp"] / "new.key"
    assert run(capsys, "publisher", "rotate", pub["key"], new, "--chain", chain, "--log",
               pub["log"])[0] == 0  # fmt: skip
    from overt.publish.publisher import logged_keysets, open_log_writer

    with open_log_writer(str(pub["log"])) as log:
        found = logged_keysets(log, scan)
    assert [i for i, _ in found] and min(i for i, _ in found) >= before
    assert json.loads(scan.read_text())["logs"]["bulk.example/log"]["size"] > before
    # A corrupt cache is rebuilt, never trusted.
    scan.write_text("{not json")
    assert _publish(capsys, pub, "2.0.0", new)[0] == 0


def test_a_stale_chain_copy_is_refused(
    pub: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    chain = Path(f"{pub['key']}.chain")
    stale = pub["tmp"] / "stale.chain"
    stale.write_bytes(chain.read_bytes())
    code, _, err = run(
        capsys, "publisher", "rotate", pub["key"], pub["tmp"] / "new.key", "--chain", chain,
        "--log", pub["log"], "--keep-old",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = _publish(capsys, pub, "1.0.0", pub["key"], "--chain", stale)
    assert code == 1 and "behind the log" in one_line(err)
