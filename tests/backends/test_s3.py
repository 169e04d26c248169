"""Tiles on S3-compatible object storage, against moto's server mode started here.

moto is an S3 *emulator* (from PyPI), not Amazon S3: these tests show that the
backend speaks plain S3 (GetObject, PutObject, Cache-Control) and orders its
writes so that no reader sees a checkpoint before its tiles; they say nothing
about a real service's latency or failure modes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.backends.conftest import free_port

from overt.errors import ConfigError, LogError, NotFoundError
from overt.formats import tiles
from overt.formats.checkpoint import parse_checkpoint
from overt.formats.note import parse_note
from overt.log.log import Log, LogView
from overt.log.stores import open_tiles

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

ORIGIN = "s3.example/log"


@pytest.fixture
def bucket(endpoint: str, request: pytest.FixtureRequest) -> str:
    name = "overt-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name


def test_log_on_s3_serves_verifiable_tiles_with_cache_headers(
    tmp_path: Path, endpoint: str, bucket: str
) -> None:
    url = f"s3://{bucket}/logs/one?endpoint={endpoint}"
    entries = [b"entry %d" % i for i in range(300)]
    with Log.create(tmp_path / "log", ORIGIN, tiles=url) as log:
        assert log.add_many(entries) == list(range(300))
        vkey = log.vkey
    assert not (tmp_path / "log" / "tiles").exists()
    with Log.open(tmp_path / "log") as log:  # state read back from the bucket
        assert log.size == 300 and log.add(b"entry 0") == 0
        assert log.add(b"one more") == 300
    # A reader straight from the bucket: every proof checks against the checkpoint.
    view = LogView.open(tmp_path / "log")
    assert view.published_size == 301
    assert view.entry(299) == b"entry 299"
    view.proof(123)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    head = client.head_object(Bucket=bucket, Key="logs/one/" + tiles.tile_path(0, 0))
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    head = client.head_object(Bucket=bucket, Key="logs/one/checkpoint")
    assert head["CacheControl"] == "public, max-age=2"
    assert vkey.startswith(ORIGIN)


class _Watching:
    """An S3 client that checks, at every checkpoint PUT, that the tiles it commits to exist."""

    def __init__(self, real: Any, bucket: str, prefix: str) -> None:
        self.real, self.bucket, self.prefix = real, bucket, prefix
        self.checked = 0
        self.down = False

    def put_object(self, **kwargs: Any) -> Any:
        if self.down:
            raise ConnectionError("object store unreachable")
        if kwargs["Key"] == f"{self.prefix}/checkpoint":
            size = parse_checkpoint(parse_note(kwargs["Body"]).text).size
            for path in tiles.tiles_for_size(size):
                self.real.head_object(Bucket=self.bucket, Key=f"{self.prefix}/{path}")
            self.checked += 1
        return self.real.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_no_reader_sees_a_checkpoint_before_its_tiles_even_when_the_store_fails(
    tmp_path: Path, endpoint: str, bucket: str
) -> None:
    url = f"s3://{bucket}/p?endpoint={endpoint}"
    with Log.create(tmp_path / "log", ORIGIN, tiles=url) as log:
        store = log.store
        watching = _Watching(store.client, bucket, "p")  # type: ignore[attr-defined]
        store.client = watching  # type: ignore[attr-defined]
        for n in range(5):
            log.add_many([b"%d-%d" % (n, i) for i in range(97)])
        watching.down = True  # the object store becomes unreachable
        with pytest.raises(LogError, match="object storage"):
            log.add_many([b"lost?"])
        assert log.size == 5 * 97
        watching.down = False  # back: the log catches up by itself
        assert log.add_many([b"lost?"]) == [5 * 97]
        assert watching.checked == 6
    view = LogView.open(tmp_path / "log")
    assert view.published_size == 5 * 97 + 1 and view.entry(5 * 97) == b"lost?"


def test_tiles_urls_are_parsed_strictly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported tiles URL scheme 'gs'"):
        open_tiles("gs://bucket/x")
    with pytest.raises(ConfigError, match="unknown: acl"):
        open_tiles("s3://bucket/x?acl=public")
    with pytest.raises(ConfigError, match="file:///ABSOLUTE/PATH"):
        open_tiles("file://host/x")
    store = open_tiles(f"file://{tmp_path}/t")
    with pytest.raises(NotFoundError):
        store.read("checkpoint")
    with pytest.raises(ConfigError, match="unsupported tiles URL"):
        Log.create(tmp_path / "bad", ORIGIN, tiles="ftp://x/y")
    assert not (tmp_path / "bad" / "log.json").exists()


def test_cli_log_on_s3_is_verified_by_a_client(
    tmp_path: Path, endpoint: str, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from overt.cli import main as cli_main

    url = f"s3://{bucket}/cli?endpoint={endpoint}"
    assert (
        cli_main.main(["log", "init", str(tmp_path / "log"), "--origin", ORIGIN, "--tiles", url])
        == 0
    )
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    assert (
        cli_main.main(
            ["log", "add", str(tmp_path / "log"), str(tmp_path / "a"), str(tmp_path / "b")]
        )
        == 0
    )
    capsys.readouterr()
    log_dir = str(tmp_path / "log")
    code = cli_main.main(["log", "verify", log_dir, "--vkey", str(tmp_path / "log" / "log.vkey")])
    assert code == 0, capsys.readouterr().err
    assert "2" in capsys.readouterr().out


def test_log_serve_on_s3_acknowledges_and_publishes_through_the_bucket(
    tmp_path: Path, endpoint: str, bucket: str
) -> None:
    """POST /add on a log whose tiles are in a bucket: the entry reaches the bucket's tiles."""
    import httpx

    url = f"s3://{bucket}/served?endpoint={endpoint}"
    Log.create(tmp_path / "log", ORIGIN, tiles=url).close()
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "overt.cli.main",
            "log",
            "serve",
            str(tmp_path / "log"),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert "serving" in server.stdout.readline()
        token = (tmp_path / "log" / "token").read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            headers = {"authorization": f"Bearer {token}"}
            indices = [client.post("/add", content=b"e%d" % i, headers=headers) for i in range(20)]
            assert [int(r.text) for r in indices] == list(range(20))
            deadline = time.monotonic() + 10
            while LogView.open(tmp_path / "log").published_size < 20:
                assert time.monotonic() < deadline, "not integrated within 10 s"
                time.sleep(0.05)
            assert client.get("/tile/entries/000.p/20").status_code == 200
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout:
            server.stdout.close()
    view = LogView.open(tmp_path / "log")
    assert view.entry(19) == b"e19"
    view.proof(7)
