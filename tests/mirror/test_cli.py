"""``overt mirror``: the commands, their one-line failures, and following a log while the
mirror goes down and comes back."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from overt.cli.main import main

from .sim import ORIGIN, MirrorUnderTest, grow, make_log

OVERT = [sys.executable, "-m", "overt.cli.main"]


def test_init_trust_vkey_status(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    log = make_log(tmp_path / "log", 3)
    log.close()
    assert main(["mirror", "init", str(tmp_path / "m"), "--name", "cli.test/m"]) == 0
    vkey = capsys.readouterr().out.strip()
    assert vkey.startswith("cli.test/m+")
    assert main(["mirror", "trust", str(tmp_path / "m"), str(tmp_path / "log" / "log.vkey")]) == 0
    assert "now mirroring mirror.test/log" in capsys.readouterr().out
    assert main(["mirror", "trust", str(tmp_path / "m"), str(tmp_path / "log" / "log.vkey")]) == 0
    assert "already mirroring" in capsys.readouterr().out
    assert main(["mirror", "vkey", str(tmp_path / "m")]) == 0
    assert capsys.readouterr().out.strip() == vkey
    assert main(["mirror", "status", str(tmp_path / "m")]) == 0
    assert json.loads(capsys.readouterr().out) == {}  # a log is added when a server first runs


def test_failures_are_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    for argv in (
        ["mirror", "serve", str(tmp_path / "nothing")],
        ["mirror", "push", "http://127.0.0.1:9/", "--log", str(tmp_path / "nothing")],
        ["mirror", "prune", str(tmp_path / "nothing"), ORIGIN, "5"],
    ):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("overt: ") and err.count("\n") == 1, err


def test_prune_refuses_an_index_beyond_the_mirror_checkpoint(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    make_log(tmp_path / "log", 3).close()
    mirror = MirrorUnderTest(tmp_path / "m", tmp_path / "log")
    with mirror.serve():
        pass  # the server adds the log's record
    assert main(["mirror", "prune", str(tmp_path / "m"), ORIGIN, "5"]) == 1
    assert "beyond the mirror checkpoint" in capsys.readouterr().err
    with mirror.serve(), mirror.pusher() as pusher:
        pusher.push()
    assert main(["mirror", "prune", str(tmp_path / "m"), ORIGIN, "2"]) == 0
    assert mirror.record().min_index == 2


def test_follow_catches_up_after_the_mirror_was_down(tmp_path: Path) -> None:
    log = make_log(tmp_path / "log", 700)
    mirror = MirrorUnderTest(tmp_path / "m", tmp_path / "log")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mirror.url = f"http://127.0.0.1:{port}"
    reached: list[int] = []
    stop = threading.Event()
    pusher = mirror.pusher()
    follower = threading.Thread(
        target=pusher.follow,
        args=(0.05,),
        kwargs={
            "stop": stop.is_set,
            "on_push": lambda r: reached.append(r.size),
            "max_backoff": 0.2,
        },
    )
    follower.start()  # the mirror is down: the pusher retries
    try:
        time.sleep(0.3)
        assert reached == []
        for size in (700, 1500):
            with mirror.serve(port):
                deadline = time.monotonic() + 20
                while not reached or reached[-1] < size:
                    assert time.monotonic() < deadline, reached
                    time.sleep(0.05)
            grow(log, 800)  # while the mirror is down again
    finally:
        stop.set()
        follower.join(20)
        pusher.close()
        log.close()
    assert mirror.record().mirror_size == 1500


def test_log_serve_feeds_its_mirror(tmp_path: Path) -> None:
    """``overt log serve --mirror URL``: the log keeps the mirror up as it grows."""
    import httpx

    from overt.log.client import LogClient
    from overt.log.log import Log

    Log.create(tmp_path / "log", ORIGIN).close()
    mirror = MirrorUnderTest(tmp_path / "m", tmp_path / "log")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mirror.serve() as mirror_url:
        server = subprocess.Popen(
            [
                *OVERT,
                "log",
                "serve",
                str(tmp_path / "log"),
                "--listen",
                f"127.0.0.1:{port}",
                *("--mirror", mirror_url),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{url}/checkpoint", timeout=1)
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline
                    time.sleep(0.05)
            token = (tmp_path / "log" / "token").read_text().strip()
            with LogClient(url, token) as client:
                for i in range(5):
                    client.add(b"served entry %d" % i)
            while (record := mirror.record()) is None or record.mirror_size < 5:
                assert time.monotonic() < deadline, record
                time.sleep(0.05)
        finally:
            server.terminate()
            server.wait(30)
