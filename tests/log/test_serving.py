"""What the log serves: only the published tree, never through a symlink, never a 500.

The attacks: a client reading entries the witnesses have not cosigned yet
(tiles beyond the published checkpoint), and a symlink planted in ``tiles/``
(at a tile, at a directory on a tile's path, at the checkpoint, at a temporary
file name) making the server serve, or the log write, a file outside the tree
such as ``log.skey``.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from overt.errors import LogError, NotFoundError
from overt.formats import tiles
from overt.formats.cosignature import ALG_COSIGNATURE_V1
from overt.formats.note import generate_key
from overt.log.client import DirectorySource
from overt.log.fs import TileStore, atomic_write
from overt.log.log import Log
from overt.log.server import LogApp

if TYPE_CHECKING:
    from conftest import Server

ORIGIN = "serving.example/log"


def entries(n: int, start: int = 0) -> list[bytes]:
    return [b"entry %d" % i for i in range(start, start + n)]


@pytest.fixture
def witnessed_log(tmp_path: Path) -> Iterator[Log]:
    """A log with a witness policy: 2 entries published (cosigned), 3 more integrated only."""
    log = Log.create(tmp_path / "log", ORIGIN)
    try:
        log.set_policy(_policy(log))
        log.add_many(entries(2))
        note, size = log.latest_signed()
        log.publish_witnessed(note, size)  # stands in for a witness round that met the quorum
        log.add_many(entries(3, start=2))
        assert (log.size, log.published_size) == (5, 2)
        yield log
    finally:
        log.close()


def _policy(log: Log) -> bytes:
    """A witness nobody runs: the log integrates, but nothing gets cosigned."""
    _, vkey = generate_key("dead.example/w", ALG_COSIGNATURE_V1)
    return f"log {log.vkey}\nwitness dead {vkey} http://127.0.0.1:9/\nquorum dead\n".encode()


# -- item: serve only what the published checkpoint covers ---------------------


def test_unwitnessed_tiles_are_not_served(witnessed_log: Log) -> None:
    log = witnessed_log
    # Published: size 2.
    assert len(log.read_tile(0, 0, 2)) == 64
    assert tiles.parse_entry_bundle(log.read_bundle(0, 2), 2) == entries(2)
    # Integrated, durable on disk, but not cosigned: a client must not see them.
    for width in (3, 5):
        with pytest.raises(NotFoundError):
            log.read_tile(0, 0, width)
        with pytest.raises(NotFoundError):
            log.read_bundle(0, width)
    # A full-width request is wider than the published tree too.
    with pytest.raises(NotFoundError):
        log.read_tile(0, 0)


def test_unwitnessed_tiles_are_404_over_http(
    witnessed_log: Log, asgi_server: Callable[[Any], Server]
) -> None:
    server = asgi_server(LogApp(witnessed_log))
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/tile/0/000.p/2").status_code == 200
        assert http.get("/tile/entries/000.p/2").status_code == 200
        for path in ("/tile/0/000.p/3", "/tile/0/000.p/5", "/tile/entries/000.p/5", "/tile/0/000"):
            response = http.get(path)
            assert response.status_code == 404, path
        assert http.get("/checkpoint").content == witnessed_log.checkpoint()


def test_proofs_for_witnessing_still_reach_the_integrated_tree(witnessed_log: Log) -> None:
    """Witnesses need a consistency proof up to the unpublished size: the log itself may read it."""
    log = witnessed_log
    assert len(log.consistency_proof(2, 5)) > 0
    assert len(log.inclusion_proof(4, 5)) > 0
    assert log.entry(4) == b"entry 4"


# -- item: the tile store never follows a symlink -------------------------------


@pytest.fixture
def plain_log(tmp_path: Path) -> Iterator[Log]:
    log = Log.create(tmp_path / "log", ORIGIN)
    try:
        log.add_many(entries(3))
        yield log
    finally:
        log.close()


def _plant(link: Path, target: Path) -> None:
    if link.exists() or link.is_symlink():
        if link.is_dir() and not link.is_symlink():
            link.rename(link.with_name(link.name + ".moved"))
        else:
            link.unlink()
    link.symlink_to(target)


def test_symlinked_tile_to_the_signing_key_is_not_served(
    plain_log: Log, asgi_server: Callable[[Any], Server]
) -> None:
    skey = plain_log.directory / "log.skey"
    root = plain_log.directory / "tiles"
    _plant(root / tiles.tile_path(0, 0, 3), skey)
    _plant(root / tiles.entries_path(0, 3), skey)
    with pytest.raises(NotFoundError):
        plain_log.read_tile(0, 0, 3)
    with pytest.raises(NotFoundError):
        plain_log.read_bundle(0, 3)
    with pytest.raises(NotFoundError):
        TileStore(root).read(tiles.entries_path(0, 3))
    with pytest.raises(NotFoundError):
        DirectorySource(plain_log.directory).read(tiles.entries_path(0, 3))
    server = asgi_server(LogApp(plain_log))
    with httpx.Client(base_url=server.url) as http:
        for path in ("/tile/0/000.p/3", "/tile/entries/000.p/3"):
            response = http.get(path)
            assert response.status_code == 404, (path, response.text)
            assert b"PRIVATE" not in response.content


def test_symlinked_directory_on_a_tile_path_is_not_followed(
    plain_log: Log, asgi_server: Callable[[Any], Server]
) -> None:
    root = plain_log.directory / "tiles"
    # An attacker's directory holding a "bundle" that is really the signing key.
    evil = plain_log.directory.parent / "evil"
    (evil / "000.p").mkdir(parents=True)
    (evil / "000.p" / "3").symlink_to(plain_log.directory / "log.skey")
    os.link(plain_log.directory / "log.skey", evil / "000.p" / "2")
    _plant(root / "tile" / "entries", evil)
    for relpath in ("tile/entries/000.p/2", "tile/entries/000.p/3"):
        with pytest.raises(NotFoundError):
            TileStore(root).read(relpath)
        with pytest.raises(NotFoundError):
            DirectorySource(root).read(relpath)
    server = asgi_server(LogApp(plain_log))
    with httpx.Client(base_url=server.url) as http:
        for path in ("/tile/entries/000.p/2", "/tile/entries/000.p/3"):
            response = http.get(path)
            assert response.status_code == 404, (path, response.text)
    # Nor does the log write through it: the batch fails, nothing lands in evil/.
    before = sorted(p.name for p in evil.rglob("*"))
    with pytest.raises(LogError, match="symlink"):
        plain_log.add_many([b"through the link"])
    assert sorted(p.name for p in evil.rglob("*")) == before


def test_symlink_loop_is_404_not_500(plain_log: Log, asgi_server: Callable[[Any], Server]) -> None:
    root = plain_log.directory / "tiles"
    loop = root / tiles.tile_path(0, 0, 3)
    loop.unlink()
    loop.symlink_to(loop.name)  # ELOOP when followed
    with pytest.raises(NotFoundError):
        plain_log.read_tile(0, 0, 3)
    server = asgi_server(LogApp(plain_log))
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/tile/0/000.p/3").status_code == 404


def test_fifo_in_the_tree_does_not_hang_a_reader(plain_log: Log) -> None:
    root = plain_log.directory / "tiles"
    path = root / tiles.entries_path(0, 3)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(NotFoundError):
        plain_log.read_bundle(0, 3)


def test_symlinked_checkpoint_to_the_signing_key_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with Log.create(directory, ORIGIN) as log:
        log.add_many(entries(3))
    root = directory / "tiles"
    _plant(root / "checkpoint", directory / "log.skey")
    with pytest.raises(NotFoundError):
        TileStore(root).read_checkpoint()
    with pytest.raises(NotFoundError):
        DirectorySource(directory).read("checkpoint")
    # Without witnesses the log republishes its latest checkpoint over the link
    # (the link itself is replaced; its target is untouched).
    skey_before = (directory / "log.skey").read_bytes()
    with Log.open(directory) as log:
        assert log.size == 3 and b"PRIVATE" not in log.checkpoint()
    assert not (root / "checkpoint").is_symlink()
    assert (directory / "log.skey").read_bytes() == skey_before


def test_symlinked_checkpoint_is_never_served_over_http(
    tmp_path: Path, asgi_server: Callable[[Any], Server]
) -> None:
    directory = tmp_path / "log"
    with Log.create(directory, ORIGIN) as log:
        log.add_many(entries(3))
        policy = _policy(log)
    _plant(directory / "tiles" / "checkpoint", directory / "log.skey")
    with Log.open(directory) as log:  # no witnesses: the signed checkpoint replaces the link
        server = asgi_server(LogApp(log))
        with httpx.Client(base_url=server.url) as http:
            body = http.get("/checkpoint").content
        assert body.startswith(ORIGIN.encode() + b"\n3\n") and b"PRIVATE" not in body
        log.set_policy(policy)
    _plant(directory / "tiles" / "checkpoint", directory / "log.skey")
    # With witnesses there is nothing the log may publish in its place: it refuses to open.
    with pytest.raises(LogError, match="checkpoint"):
        Log.open(directory)


def test_planted_temp_file_symlink_is_not_written_through(tmp_path: Path) -> None:
    """The temp name is random and created O_EXCL|O_NOFOLLOW: a planted link is never followed."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    target = tmp_path / "dir" / "file"
    target.parent.mkdir()
    # Every name the old scheme (.<name>.tmp<pid>) could use, planted.
    (target.parent / f".file.tmp{os.getpid()}").symlink_to(victim)
    atomic_write(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert victim.read_bytes() == b"precious"
    leftovers = [p.name for p in target.parent.iterdir() if p.name not in ("file",)]
    assert leftovers == [f".file.tmp{os.getpid()}"]
    assert stat.S_ISLNK((target.parent / leftovers[0]).lstat().st_mode)


# -- item: `log serve` refuses secrets others can read, as `witness serve` does -----


def _serve_refusal(*args: str) -> str:
    """Run a serve command that must refuse at once; its one stderr line."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = subprocess.run(
        [sys.executable, "-m", "overt.cli.main", *args, "--listen", f"127.0.0.1:{port}"],
        capture_output=True,
        timeout=60,  # a server that starts instead of refusing fails here
    )
    err = out.stderr.decode()
    assert out.returncode == 1, err
    assert err.startswith("overt: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("secret", ["log.skey", "token"])
def test_log_serve_refuses_a_world_readable_secret(tmp_path: Path, secret: str) -> None:
    directory = tmp_path / "log"
    Log.create(directory, ORIGIN).close()
    (directory / secret).chmod(0o644)
    err = _serve_refusal("log", "serve", str(directory))
    path = directory / secret
    assert f"{path} is readable or writable by others (mode 0644): chmod 600 {path}" in err


def test_log_and_witness_refuse_the_same_way(tmp_path: Path) -> None:
    from overt.witness.config import SKEY, init_witness

    init_witness(tmp_path / "w", "w.example/w")
    (tmp_path / "w" / SKEY).chmod(0o640)
    err = _serve_refusal("witness", "serve", str(tmp_path / "w"))
    path = tmp_path / "w" / SKEY
    assert f"{path} is readable or writable by others (mode 0640): chmod 600 {path}" in err


def test_symlinked_journal_segment_never_truncates_the_signing_key(tmp_path: Path) -> None:
    """The segment the log opens next (created or truncated) must not be reached through a link."""
    directory = tmp_path / "log"
    with Log.create(directory, ORIGIN) as log:
        log.add_many(entries(3))
    skey = (directory / "log.skey").read_bytes()
    (directory / "journal" / "3").unlink(missing_ok=True)
    (directory / "journal" / "3").symlink_to(directory / "log.skey")
    with pytest.raises(LogError, match="journal"):
        Log.open(directory)
    assert (directory / "log.skey").read_bytes() == skey
