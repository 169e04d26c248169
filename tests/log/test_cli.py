"""``overt log`` and ``overt proof``: the commands work end to end, and bad input is one line + exit 1/2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from overt.log.log import Log


def overt(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "overt.cli.main", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("overt: "), err
    return err


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    out = overt("log", "init", str(tmp_path / "log"), "--origin", "cli.example/log")
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().startswith("cli.example/log+")
    return tmp_path / "log"


def test_init_add_proof_verify_round_trip(log_dir: Path, tmp_path: Path) -> None:
    files = []
    for i in range(3):
        f = tmp_path / f"f{i}"
        f.write_bytes(b"file %d" % i)
        files.append(str(f))
    out = overt("log", "add", str(log_dir), *files, "-", stdin=b"from stdin")
    assert out.returncode == 0 and out.stdout == b"0\n1\n2\n3\n"
    again = overt("log", "add", str(log_dir), files[1])  # dedup
    assert again.stdout == b"1\n"
    vkey = overt("log", "vkey", str(log_dir)).stdout.decode().strip()
    assert vkey == (log_dir / "log.vkey").read_text().strip()
    assert len(overt("log", "token", str(log_dir)).stdout.strip()) == 64
    proof = overt("log", "proof", str(log_dir), "2")
    assert proof.returncode == 0 and proof.stdout.startswith(b"c2sp.org/tlog-proof@v1\nindex 2\n")
    (tmp_path / "p").write_bytes(proof.stdout)
    ok = overt("proof", "verify", str(tmp_path / "p"), "--entry", files[2], "--vkey", vkey)
    assert ok.returncode == 0 and ok.stdout.startswith(b"ok: entry 2 is in cli.example/log")
    ok = overt("log", "verify", str(log_dir), "--vkey", str(log_dir / "log.vkey"))
    assert ok.returncode == 0 and b"size 4" in ok.stdout


def test_proof_for_another_entry_is_refused(log_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    overt("log", "add", str(log_dir), str(tmp_path / "a"), str(tmp_path / "b"))
    (tmp_path / "p").write_bytes(overt("log", "proof", str(log_dir), "0").stdout)
    bad = overt(
        "proof",
        "verify",
        str(tmp_path / "p"),
        "--entry",
        str(tmp_path / "b"),
        "--vkey",
        str(log_dir / "log.vkey"),
    )
    assert bad.returncode == 1
    assert "leads to root" in one_line_error(bad)


def test_proof_from_another_log_is_refused(log_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    overt("log", "init", str(other), "--origin", "other.example/log")
    (tmp_path / "a").write_bytes(b"a")
    overt("log", "add", str(other), str(tmp_path / "a"))
    (tmp_path / "p").write_bytes(overt("log", "proof", str(other), "0").stdout)
    bad = overt(
        "proof",
        "verify",
        str(tmp_path / "p"),
        "--entry",
        str(tmp_path / "a"),
        "--vkey",
        str(log_dir / "log.vkey"),
    )
    assert bad.returncode == 1
    one_line_error(bad)


def test_tampered_log_fails_verification(log_dir: Path, tmp_path: Path) -> None:
    for i in range(300):
        (tmp_path / f"e{i}").write_bytes(b"entry %d" % i)
    overt("log", "add", str(log_dir), *[str(tmp_path / f"e{i}") for i in range(300)])
    bundle = log_dir / "tiles" / "tile" / "entries" / "000"
    data = bytearray(bundle.read_bytes())
    data[-1] ^= 1
    bundle.write_bytes(bytes(data))
    bad = overt("log", "verify", str(log_dir), "--vkey", str(log_dir / "log.vkey"))
    assert bad.returncode == 1
    assert "does not match its leaf hash" in one_line_error(bad)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("log", "add", "{log}", "/nonexistent/file"), 1, "cannot read /nonexistent/file"),
        (("log", "add", "{log}", "{empty}"), 1, "empty entry"),
        (("log", "add", "{log}", "{huge}"), 1, "larger than the maximum"),
        (("log", "add", "{tmp}/nolog", "{empty}"), 1, "not an overt log"),
        (("log", "proof", "{log}", "01"), 2, "not an index"),
        (("log", "proof", "{log}", "-1"), 2, ""),
        (("log", "proof", "{log}", "99"), 1, "index 99"),
        (("log", "init", "{log}", "--origin", "x"), 1, "already holds a log"),
        (("log", "init", "{tmp}/new", "--origin", "has space"), 1, "invalid origin"),
        (("log", "verify", "{log}", "--vkey", "not+a+key"), 1, ""),
        (("log", "verify", "{log}"), 1, "no log key"),
        (("log", "serve", "{log}", "--listen", "nowhere"), 2, "HOST:PORT"),
        (("log", "serve", "{log}", "--listen", "8080"), 2, "HOST:PORT"),
        (("log", "frobnicate"), 2, ""),
        (("proof", "verify", "{empty}", "--entry", "{empty}", "--vkey", "{log}/log.vkey"), 1, ""),
        (
            ("log", "verify", "{log}", "--vkey", "{log}/log.vkey", "--max-age", "60"),
            1,
            "needs a witness policy",
        ),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    log_dir: Path, tmp_path: Path, args: tuple[str, ...], code: int, needle: str
) -> None:
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "huge").write_bytes(b"x" * 65536)
    subst = {
        "log": str(log_dir),
        "tmp": str(tmp_path),
        "empty": str(tmp_path / "empty"),
        "huge": str(tmp_path / "huge"),
    }
    out = overt(*(a.format(**subst) for a in args))
    assert out.returncode == code, out.stderr
    if code == 1:
        assert needle in one_line_error(out)
    else:
        assert out.stderr.decode().startswith("overt: usage") or b"usage" in out.stderr
    # Nothing bad ever reaches the log.
    with Log.open(log_dir) as log:
        assert log.size == 0


def test_locked_log_says_so(log_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    with Log.open(log_dir):
        out = overt("log", "add", str(log_dir), str(tmp_path / "a"))
    assert out.returncode == 1
    assert "in use by another process" in one_line_error(out)


def test_verbose_shows_the_traceback(log_dir: Path) -> None:
    out = overt("--verbose", "log", "proof", str(log_dir), "5")
    assert out.returncode == 1 and b"Traceback" in out.stderr


def test_keys_are_private(log_dir: Path) -> None:
    assert os.stat(log_dir / "log.skey").st_mode & 0o077 == 0
