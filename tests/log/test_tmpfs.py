"""A real full disk: the log server on a 512 KiB tmpfs, filled, then given room again.

The issue saw this on a server: entries acknowledged as 6..18 were stored at
5..17 and the integration loop spun at 100% CPU. Here every acknowledged index
must hold its entry, while full, after room is made (without a restart), and
after reopening.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from overt._asgi import make_server
from overt.formats.note import parse_vkey
from overt.log.client import DirectorySource, verify_log
from overt.log.log import Log
from overt.log.server import LogApp

ORIGIN = "tmpfs.example/log"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (needs root, or CAP_SYS_ADMIN; skipped with the reason otherwise)."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        pytest.skip("no mount/umount command on this machine")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "tmpfs"
    point.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=512k,mode=0700", "overt-test", str(point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield point
    finally:
        subprocess.run([umount, "-l", str(point)], check=False)


def entry(n: int) -> bytes:
    return b"tmpfs entry %06d " % n + b"x" * 300


def test_full_tmpfs_never_moves_an_acknowledged_entry_and_recovers_by_itself(
    tmpfs: Path,
) -> None:
    directory = tmpfs / "log"
    log = Log.create(directory, ORIGIN)
    # Ballast: most of the disk, freed later to give the log room again.
    ballast = tmpfs / "ballast"
    free = shutil.disk_usage(tmpfs).free
    ballast.write_bytes(b"\0" * max(0, free - 160 * 1024))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = make_server(LogApp(log), "127.0.0.1", port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    acked: dict[int, bytes] = {}

    def check_acked() -> None:
        with log._write_lock, log._seq_lock:  # a consistent snapshot beside the server
            size, staged = log.size, list(log._staged)
        for index, data in acked.items():
            held = log.entry(index) if index < size else staged[index - size]
            assert held == data, f"acknowledged index {index} holds {held[:20]!r}"

    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        headers = {"authorization": f"Bearer {log.token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def post(n: int) -> int:
                reply = client.post("/add", content=entry(n), headers=headers)
                assert reply.status_code in (200, 503), (reply.status_code, reply.text)
                if reply.status_code == 200:
                    index = int(reply.text)
                    assert acked.setdefault(index, entry(n)) == entry(n), f"index {index} reused"
                return reply.status_code

            # Fill the disk, eight writers at a time: until a whole round is
            # refused (bounded in count and time).
            n = refused = 0
            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                while n < 4000 and time.monotonic() - started < 60:
                    statuses = list(pool.map(post, range(n, n + 8)))
                    n += 8
                    refused += statuses.count(503)
                    if statuses.count(503) == 8:
                        break
                    check_acked()
            assert refused, "the disk never filled: this test proves nothing"
            check_acked()
            assert client.get("/checkpoint").status_code == 200  # reads still work

            # Make room. No restart, no request needed: the integration loop retries.
            ballast.unlink()
            deadline = time.monotonic() + 30
            while (log.size < log.sequenced_size or log.failure) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert log.size == log.sequenced_size and log.failure is None
            check_acked()
            # Appends work again (one round: every partial bundle rewrite takes room).
            with ThreadPoolExecutor(8) as pool:
                assert list(pool.map(post, range(n, n + 8))) == [200] * 8
            check_acked()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        log.close()
    with Log.open(directory) as log:
        assert log.size == len(acked) == max(acked) + 1
        for index, data in acked.items():
            assert log.entry(index) == data
        vkey = parse_vkey(log.vkey)
    verify_log(DirectorySource(directory), vkey, ORIGIN)
