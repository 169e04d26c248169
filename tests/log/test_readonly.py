"""Read-only access beside a running server: proofs, keys and verification without the lock.

``overt log serve`` owns its directory (an exclusive lock). Proofs for existing
entries must still be available: from the directory through a read-only view
(published checkpoint and tiles only, no lock, no writes), and from the
server's published tiles over HTTP like any client. An entry that is durable
but not yet witnessed is answered with exactly that.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from overt.errors import NotFoundError, ProofError
from overt.formats import merkle, tiles
from overt.formats.cosignature import ALG_COSIGNATURE_V1
from overt.formats.note import generate_key, parse_vkey
from overt.formats.proof import parse_proof, verify_proof
from overt.log.client import LogClient
from overt.log.log import Log, LogView

ORIGIN = "readonly.example/log"


def overt(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "overt.cli.main", *args], capture_output=True, timeout=timeout
    )


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert err.startswith("overt: ") and err.count("\n") == 1 and err.endswith("\n"), err
    return err


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def log_serve(directory: Path) -> Iterator[str]:
    """A real ``overt log serve`` subprocess on 127.0.0.1; yields its URL once it is ready."""
    port = free_port()
    command = ["log", "serve", str(directory), "--listen", f"127.0.0.1:{port}"]
    errors = directory.parent / "serve.stderr"
    with errors.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "overt.cli.main", *command],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert proc.stdout is not None
    try:
        deadline = time.monotonic() + 30
        line = b""
        while b"serving" not in line:
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, errors.read_text()
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                line = proc.stdout.readline()
        # The lock is held from here on: a writer would be refused.
        assert overt("log", "add", str(directory), "-").returncode == 1
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def entries(n: int, start: int = 0) -> list[bytes]:
    return [b"read-only entry %d" % i for i in range(start, start + n)]


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "log"
    with Log.create(directory, ORIGIN) as log:
        log.add_many(entries(5))
    return directory


def _verify_with_cli(tmp_path: Path, proof: bytes, entry: bytes, vkey: str) -> str:
    (tmp_path / "proof").write_bytes(proof)
    (tmp_path / "entry").write_bytes(entry)
    out = overt("proof", "verify", str(tmp_path / "proof"), "--entry", str(tmp_path / "entry"))
    assert out.returncode == 2  # --vkey is required: the proof is checked against the log key
    out = overt(
        "proof", "verify", str(tmp_path / "proof"), "--entry", str(tmp_path / "entry"),
        "--vkey", vkey,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.decode()


def test_read_only_commands_work_beside_a_running_server(log_dir: Path, tmp_path: Path) -> None:
    vkey = (log_dir / "log.vkey").read_text().strip()
    token = (log_dir / "token").read_text().strip()
    with log_serve(log_dir) as url:
        # A new entry through the server: the read-only commands see it once published.
        with LogClient(url, token) as client:
            index, _ = client.add(b"added while serving")
        assert index == 5
        out = overt("log", "proof", str(log_dir), "5")
        assert out.returncode == 0, out.stderr
        assert "ok: entry 5 is in readonly.example/log" in _verify_with_cli(
            tmp_path, out.stdout, b"added while serving", vkey
        )
        out = overt("log", "proof", str(log_dir), "2")
        assert out.returncode == 0, out.stderr
        _verify_with_cli(tmp_path, out.stdout, entries(5)[2], vkey)

        assert overt("log", "vkey", str(log_dir)).stdout.decode().strip() == vkey
        assert overt("log", "token", str(log_dir)).stdout.decode().strip() == token
        out = overt("log", "verify", str(log_dir), "--vkey", vkey)
        assert out.returncode == 0, out.stderr
        assert b"size 6" in out.stdout

        # The same proof from the server's published tiles, as any client builds it.
        out = overt("log", "proof", url, "5")
        assert out.returncode == 0, out.stderr
        assert "ok: entry 5" in _verify_with_cli(tmp_path, out.stdout, b"added while serving", vkey)
        out = overt("log", "proof", url, "0")
        assert out.returncode == 0, out.stderr
        _verify_with_cli(tmp_path, out.stdout, entries(5)[0], vkey)
        beyond = overt("log", "proof", url, "6")
        assert beyond.returncode == 1
        assert "beyond the published checkpoint" in one_line(beyond)


def test_proof_for_an_integrated_but_unwitnessed_entry_says_so(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Log.create(directory, ORIGIN) as log:
        _, witness_vkey = generate_key("dead.example/w", ALG_COSIGNATURE_V1)
        policy = f"log {log.vkey}\nwitness dead {witness_vkey} http://127.0.0.1:9/\nquorum dead\n"
        log.set_policy(policy.encode())
        log.add_many(entries(3))  # durable and integrated; nobody cosigns it
        assert (log.size, log.published_size) == (3, 0)
        # The library says it too, with or without the lock.
        with pytest.raises(NotFoundError, match="integrated but not yet covered by a witnessed"):
            log.proof(1)
    out = overt("log", "proof", str(directory), "1")
    assert out.returncode == 1
    err = one_line(out)
    assert "entry 1 is integrated but not yet covered by a witnessed checkpoint" in err
    assert "retry after witnessing" in err
    out = overt("log", "proof", str(directory), "3")
    assert out.returncode == 1
    assert "index 3 is not in the log (size 3)" in one_line(out)


def test_view_matches_the_log_and_needs_no_lock(log_dir: Path) -> None:
    with Log.open(log_dir) as log:  # holds the writer lock
        view = LogView.open(log_dir)
        assert view.checkpoint() == log.checkpoint()
        assert view.published_size == 5
        for i in range(5):
            assert view.proof(i) == log.proof(i)
            assert view.entry(i) == log.entry(i)
        assert view.consistency_proof(2, 5) == log.consistency_proof(2, 5)
        log.add_many(entries(2, start=5))
        # A snapshot: the view answers for the checkpoint it opened.
        assert view.published_size == 5
        with pytest.raises(NotFoundError):
            view.proof(5)
        assert LogView.open(log_dir).proof(6) == log.proof(6)


def test_view_never_writes(log_dir: Path) -> None:
    def snapshot() -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(log_dir)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(log_dir.rglob("*"))
        }

    before = snapshot()
    view = LogView.open(log_dir)
    for i in range(5):
        view.proof(i)
    view.consistency_proof(1, 5)
    assert snapshot() == before
    assert not (log_dir / "lock").exists() or "lock" in before


def test_view_refuses_a_proof_its_tiles_do_not_support(log_dir: Path) -> None:
    """A tampered bundle (or tile) never leaves as a proof: the view checks it against the root."""
    bundle = log_dir / "tiles" / tiles.entries_path(0, 5)
    forged = tiles.format_entry_bundle([b"forged", *entries(5)[1:]])
    os.chmod(bundle, 0o644)
    bundle.write_bytes(forged)
    view = LogView.open(log_dir)
    with pytest.raises(ProofError):
        view.proof(0)
    out = overt("log", "proof", str(log_dir), "0")
    assert out.returncode == 1
    one_line(out)


def test_view_proof_verifies_with_the_library(log_dir: Path) -> None:
    view = LogView.open(log_dir)
    vkey = parse_vkey((log_dir / "log.vkey").read_text().strip())
    for i, entry in enumerate(entries(5)):
        verify_proof(parse_proof(view.proof(i)), merkle.leaf_hash(entry), vkey, ORIGIN)
