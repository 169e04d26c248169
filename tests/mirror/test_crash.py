"""kill -9 a mirror mid-upload: it resumes, and never cosigns what it does not hold."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from overt.formats.checkpoint import parse_checkpoint
from overt.formats.note import parse_note, parse_vkey
from overt.log.client import HTTPSource, verify_log
from overt.mirror.config import load_mirror
from overt.mirror.store import MirroredTiles, origin_hash

from .sim import ORIGIN, MirrorUnderTest, make_log

SIZE = 30_000
OVERT = [sys.executable, "-m", "overt.cli.main"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(directory: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            *OVERT,
            "mirror",
            "serve",
            str(directory),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/logs", timeout=1)
            return proc
        except httpx.TransportError:
            assert proc.poll() is None, "mirror server died"
            assert time.monotonic() < deadline, "mirror server did not start"
            time.sleep(0.05)


def _check_never_cosigned_beyond_what_it_holds(directory: Path) -> int:
    """The durable state after a crash: the mirror checkpoint is at most the stored size,
    and the stored tiles at its size have its root. Returns the stored size."""
    config = load_mirror(directory)
    with config.open_state() as state:
        record = state.get(ORIGIN)
    assert record is not None
    copy = MirroredTiles(config.tiles_for(ORIGIN), record.next_entry)  # the tiles hold it
    if record.mirror is not None:
        assert record.mirror.size <= record.next_entry
        assert copy.root(record.mirror.size) == record.mirror.root_hash
    return record.next_entry


def test_mirror_killed_mid_upload_resumes_and_never_cosigns_what_it_does_not_hold(
    tmp_path: Path,
) -> None:
    log = make_log(tmp_path / "log", SIZE)
    log.close()
    mirror = MirrorUnderTest(tmp_path / "mirror", tmp_path / "log")
    port = _port()
    url = f"http://127.0.0.1:{port}"
    mirror.url = url
    stored = 0
    for kill_at in (5_000,):
        proc = _serve(mirror.directory, port)
        # Push in the background of this process: a child that we kill -9 the mirror under.
        child = subprocess.Popen(
            [*OVERT, "mirror", "push", url, "--log", str(tmp_path / "log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:  # until the mirror has stored some of it
            config = load_mirror(mirror.directory)
            with config.open_state() as state:
                record = state.get(ORIGIN)
            if record is not None and record.next_entry >= kill_at:
                break
            assert time.monotonic() < deadline, "the upload did not progress"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        child.wait(30)
        now = _check_never_cosigned_beyond_what_it_holds(mirror.directory)
        assert now >= stored
        stored = now
    assert stored < SIZE, "killed after the whole log was stored: the test proves nothing"
    # Restarted, a push resumes from where the mirror stands and completes.
    proc = _serve(mirror.directory, port)
    try:
        with mirror.pusher() as pusher:
            result = pusher.push()
        assert result.size == SIZE
        assert result.sent <= SIZE - stored + 4096  # resumed, not restarted
        note = httpx.get(f"{url}/{origin_hash(ORIGIN)}/checkpoint").content
        assert parse_checkpoint(parse_note(note).text).size == SIZE
        log_key = parse_vkey((tmp_path / "log" / "log.vkey").read_text().strip())
        with HTTPSource(f"{url}/{origin_hash(ORIGIN)}") as source:
            verify_log(source, log_key)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    _check_never_cosigned_beyond_what_it_holds(mirror.directory)
