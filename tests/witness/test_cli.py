"""``overt witness``: init, trust, vkey, and serve (a real process, killed mid-stream)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from overt.cli.main import main
from overt.formats.checkpoint import parse_checkpoint
from overt.formats.cosignature import CosignatureVerifier
from overt.formats.note import generate_key, parse_note, parse_vkey
from overt.witness.client import WitnessClient
from overt.witness.config import LOGS, SKEY, load_witness, read_logs
from overt.witness.errors import UnknownLogError, WitnessConflictError, WitnessError

from .simulators import LogSimulator

NAME = "asia.witness.example"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse usage errors
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_init_prints_a_cosignature_vkey_and_keeps_the_key_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "witness", "init", str(tmp_path / "w"), "--name", NAME)
    assert code == 0
    verifier = parse_vkey(out.strip())
    assert isinstance(verifier, CosignatureVerifier)  # type 0x04
    assert verifier.name == NAME
    assert (tmp_path / "w" / SKEY).stat().st_mode & 0o777 == 0o600
    assert run(capsys, "witness", "vkey", str(tmp_path / "w"))[1] == out
    code, _, err = run(capsys, "witness", "init", str(tmp_path / "w"), "--name", NAME)
    assert code == 1
    assert "already holds a witness" in err


def test_init_refuses_a_bad_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "witness", "init", str(tmp_path / "w"), "--name", "has space")
    assert code == 1
    assert err.startswith("overt: ")


def test_a_key_readable_by_others_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "witness", "init", str(tmp_path / "w"), "--name", NAME)
    (tmp_path / "w" / SKEY).chmod(0o644)
    code, _, err = run(capsys, "witness", "vkey", str(tmp_path / "w"))
    assert code == 1
    assert "chmod 600" in err


def test_trust_adds_a_log_by_origin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = str(tmp_path / "w")
    run(capsys, "witness", "init", w, "--name", NAME)
    _, vkey = generate_key("log.example/one")
    code, out, _ = run(capsys, "witness", "trust", w, vkey)
    assert (code, out.split()[:3]) == (0, ["now", "witnessing", "log.example/one"])
    assert "already witnessing" in run(capsys, "witness", "trust", w, vkey)[1]
    _, vkey2 = generate_key("log.example/two")
    (tmp_path / "two.vkey").write_text(vkey2 + "\n")
    assert run(capsys, "witness", "trust", w, str(tmp_path / "two.vkey"))[0] == 0
    logs = read_logs(w)
    assert sorted(logs) == ["log.example/one", "log.example/two"]
    assert list(logs["log.example/one"]) == [parse_vkey(vkey)]
    assert load_witness(w).logs == logs


@pytest.mark.parametrize(
    "bad",
    [
        "not a vkey",
        "log.example/x+00000000+AAAA",
        generate_key("cosigner.example", 0x04)[1],  # a cosignature key is no log key
    ],
)
def test_trust_refuses_what_is_not_a_log_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    w = str(tmp_path / "w")
    run(capsys, "witness", "init", w, "--name", NAME)
    code, _, err = run(capsys, "witness", "trust", w, bad)
    assert code == 1
    assert err.startswith("overt: ")
    assert read_logs(w) == {}


def test_trust_needs_a_witness_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, vkey = generate_key("log.example/one")
    code, _, err = run(capsys, "witness", "trust", str(tmp_path), vkey)
    assert code == 1
    assert "not a witness directory" in err


def test_a_corrupt_log_list_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = tmp_path / "w"
    run(capsys, "witness", "init", str(w), "--name", NAME)
    (w / LOGS).write_text("# fine\n\ngarbage line\n")
    code, _, err = run(capsys, "witness", "vkey", str(w))
    assert code == 1
    assert f"{LOGS}:3" in err


def test_bad_listen_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "witness", "init", str(tmp_path / "w"), "--name", NAME)
    for bad in ("nowhere", "8080", "127.0.0.1:", "127.0.0.1:08080", "127.0.0.1:70000"):
        code, _, err = run(capsys, "witness", "serve", str(tmp_path / "w"), "--listen", bad)
        assert code == 2, bad  # a usage error, like any malformed argument
        assert "HOST:PORT" in err and err.count("\n") == 1


# --- serve, in a real process -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(directory: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "overt.cli.main",
            "witness",
            "serve",
            str(directory),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith(f"overt witness {NAME}: serving"), first + proc.stdout.read()
    return proc


def test_witness_killed_mid_stream_forgets_nothing_it_replied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL while a log streams checkpoints: every 200 it got is still on disk."""
    w = tmp_path / "w"
    log = LogSimulator("crash.example/log")
    run(capsys, "witness", "init", str(w), "--name", NAME)
    run(capsys, "witness", "trust", str(w), log.vkey)
    port = _free_port()
    proc = _start(w, port)
    acked = 0
    try:
        with WitnessClient(f"http://127.0.0.1:{port}", timeout=5) as client:
            # Kill it a moment after it has cosigned a few, while requests keep coming.
            killer = threading.Timer(0.2, lambda: os.kill(proc.pid, signal.SIGKILL))
            while True:
                log.grow(1 + acked % 3)
                try:
                    client.add_checkpoint(*log.request(acked))
                except WitnessError:
                    break  # the witness died
                acked = log.size
                if acked >= 10 and killer.ident is None:
                    killer.start()
            killer.join()
    finally:
        proc.kill()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert acked > 0, "no checkpoint was cosigned before the kill"
    proc = _start(w, port)
    try:
        with WitnessClient(f"http://127.0.0.1:{port}", timeout=5) as client:
            latest = client.latest(log.origin)
            assert latest is not None
            cp = parse_checkpoint(parse_note(latest).text)
            # The last acknowledged checkpoint, or the one in flight when it died.
            assert cp.size >= acked
            assert cp.root_hash == log.tree.root(cp.size)
            with pytest.raises(WitnessConflictError) as conflict:
                client.add_checkpoint(*log.request(0))
            assert conflict.value.size == cp.size
            client.add_checkpoint(*log.request(cp.size))  # and the stream goes on
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def test_trust_takes_effect_while_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = tmp_path / "w"
    log = LogSimulator("late.example/log")
    run(capsys, "witness", "init", str(w), "--name", NAME)
    port = _free_port()
    proc = _start(w, port)
    try:
        with WitnessClient(f"http://127.0.0.1:{port}", timeout=5) as client:
            log.grow(2)
            with pytest.raises(UnknownLogError):
                client.add_checkpoint(*log.request(0))
            assert run(capsys, "witness", "trust", str(w), log.vkey)[0] == 0
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.add_checkpoint(*log.request(0))
                    break
                except UnknownLogError:
                    assert time.monotonic() < deadline, "the new log was never picked up"
                    time.sleep(0.2)
            assert client.logs() == [log.origin]
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()
