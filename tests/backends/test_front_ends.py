"""Several front ends on one log (overt.log.shared): PostgreSQL (the real one, a schema
per test) and moto's S3 emulator (not Amazon S3), started here on 127.0.0.1.

The first tests drive two :class:`SharedLog` objects in this process; the others run
two real ``overt log serve`` processes under load and break something: kill -9 of
the sequencer; PostgreSQL crashed and restarted (a server the test starts for itself:
the machine's own is shared with other tests); PostgreSQL unreachable; the object
store unreachable for 10 s. The network faults are a TCP proxy cut in front of
PostgreSQL or moto (moto keeps its buckets in memory: stopping it would lose them). After each: the log recovers by itself, every acknowledged
entry is at its index in the bucket's bundles, no entry is there twice, every
checkpoint served is consistent with the final one (no fork), and Go's sumdb/tlog
client verifies the result.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.backends._cluster import (
    Checkpoints,
    FrontEnd,
    Load,
    Proxy,
    check_log,
    db_url,
    running,
    two_front_ends,
    wait_published,
    wait_until,
)
from tests.backends.conftest import PostgresSchema, PrivatePostgres
from tests.interop.test_go_tlog import GOPATH, PROGRAM

from overt.cli.main import main
from overt.errors import ConfigError, LogError
from overt.formats import merkle
from overt.formats.note import parse_vkey
from overt.log.backend import CheckpointConflictError
from overt.log.client import verify_log
from overt.log.log import Log
from overt.log.shared import SharedLog
from overt.log.stores import open_tiles

boto3 = pytest.importorskip("boto3")

ORIGIN = "shared.example/log"


@pytest.fixture
def bucket(endpoint: str, request: pytest.FixtureRequest) -> str:
    name = "fe-" + request.node.name.lower().replace("_", "-")[:50].strip("-")
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture(autouse=True)
def every_pass_integrates(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-process tests call integrate() back to back: no least interval between
    passes (the front-end processes keep overt.log.shared.INTERVAL)."""
    monkeypatch.setattr("overt.log.shared.INTERVAL", 0.0)


@pytest.fixture
def pair(
    tmp_path: Path, postgres: PostgresSchema, endpoint: str, bucket: str
) -> Iterator[tuple[SharedLog, SharedLog]]:
    """Two front ends of one new shared log, in this process (closed afterwards)."""
    tiles = f"s3://{bucket}/log?endpoint={endpoint}"
    with two_front_ends(tmp_path, ORIGIN, tiles, db_url(postgres)) as pair:
        yield pair


def test_front_ends_sequence_into_one_log_and_one_integrates(
    pair: tuple[SharedLog, SharedLog], endpoint: str, bucket: str
) -> None:
    a, b = pair
    tiles = f"s3://{bucket}/log?endpoint={endpoint}"
    # Dedup by leaf hash across front ends and within a batch, as on one.
    assert a.sequence([b"x", b"y", b"x"]) == [0, 1, 0]
    assert b.sequence([b"y", b"z"]) == [1, 2]
    a.integrate()  # takes the lease, integrates everything sequenced
    assert a.holds_lease and a.size == 3
    b.integrate()  # no lease: adopts the checkpoint
    assert not b.holds_lease and b.size == b.published_size == 3
    assert b.checkpoint() == a.checkpoint()
    proof = b.proof(2)  # from the bucket's tiles
    assert b"index 2\n" in proof
    verified = verify_log(open_tiles(tiles), parse_vkey(a.vkey))
    assert verified.checkpoint.checkpoint.size == 3
    # The holder closes (or dies): the lease moves, and so does integration.
    a.close()
    time.sleep(0.6)  # LEASE_RETRY
    assert b.sequence([b"w"]) == [3]
    b.integrate()
    assert b.holds_lease and b.size == 4
    assert b.entry(3) == b"w"


def test_a_stale_sequencer_cannot_fork_the_log(
    pair: tuple[SharedLog, SharedLog], endpoint: str, bucket: str
) -> None:
    """The lease holder loses its session mid-batch (a network blip) without noticing;
    its successor integrates the same entries. The stale one's tiles are byte for byte
    the successor's, and its checkpoint swap fails: one tree."""
    a, b = pair
    tiles = f"s3://{bucket}/log?endpoint={endpoint}"
    a.sequence([b"e%d" % i for i in range(300)])
    a.integrate()
    assert a.holds_lease and a.size == 300
    a.sequence([b"f%d" % i for i in range(300)])
    # a's session ends (PostgreSQL releases its advisory lock) but a has not checked yet.
    pid = a._lease_db.get().info.backend_pid
    with b._int_db.get().cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    b._int_db.get().commit()
    upload = a.store.write_batch

    def successor_first(items: list[tuple[str, bytes]]) -> None:
        b.integrate()  # b takes the lease and integrates the same 300 entries
        assert b.holds_lease and b.size == 600
        upload(items)

    a.store.write_batch = successor_first  # type: ignore[method-assign]
    a._lease_checked = time.monotonic()  # a believes it still holds the lease
    with pytest.raises(CheckpointConflictError):
        a.integrate()
    assert not a.holds_lease
    a.store.write_batch = upload  # type: ignore[method-assign]
    a.integrate()
    assert a.size == b.size == 600 and a.checkpoint() == b.checkpoint()
    view = verify_log(open_tiles(tiles), parse_vkey(a.vkey))
    assert view.checkpoint.checkpoint.size == 600


def test_a_holder_whose_session_ended_gives_up_the_lease(
    pair: tuple[SharedLog, SharedLog], postgres: PostgresSchema
) -> None:
    """The lease is the session's advisory lock: once the session is gone the holder
    stops integrating at its next check, even if it could connect again."""
    a, b = pair
    a.integrate()
    assert a.holds_lease
    pid = a._lease_db.get().info.backend_pid
    with b._int_db.get().cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    b._int_db.get().commit()
    a._lease_db.drop()  # as if it had reconnected: a new session holds nothing
    a._lease_checked = float("-inf")  # its next pass checks
    a.integrate()
    b.sequence([b"after"])
    b.integrate()
    assert b.holds_lease and b.size == 1
    a.integrate()
    assert not a.holds_lease and a.size == 1


def test_a_checkpoint_whose_upload_failed_is_published_by_the_next_pass(
    pair: tuple[SharedLog, SharedLog],
) -> None:
    """The swap committed, the checkpoint object's PUT failed: the next pass publishes it
    (and serves it) without waiting for another entry."""
    a, _ = pair
    a.integrate()
    a.sequence([b"only"])
    publish = a.store.write_checkpoint

    def unreachable(note: bytes) -> None:
        raise LogError("object storage: cannot access checkpoint: unreachable")

    a.store.write_checkpoint = unreachable  # type: ignore[method-assign]
    with pytest.raises(LogError, match="unreachable"):
        a.integrate()
    assert a.size == 1 and a.published_size == 0
    a.store.write_checkpoint = publish  # type: ignore[method-assign]
    a.integrate()
    assert a.published_size == 1
    assert a.store.read("checkpoint") == a.checkpoint() == a.latest_signed()[0]


def test_database_restored_behind_a_front_end_is_refused(pair: tuple[SharedLog, SharedLog]) -> None:
    """A checkpoint row older than what a front end served is never served (rollback)."""
    a, b = pair
    a.sequence([b"one"])
    a.integrate()
    empty = b.checkpoint()
    b.integrate()
    served = b.checkpoint()
    with a._int_db.get().cursor() as cur:
        cur.execute("UPDATE log_checkpoint SET note = %s, size = 0", (empty,))
    a._int_db.get().commit()
    with pytest.raises(LogError, match="refusing to go back"):
        b.integrate()
    assert b.checkpoint() == served


def test_a_shared_log_is_refused_by_log_add_and_needs_postgresql(
    tmp_path: Path,
    postgres: PostgresSchema,
    endpoint: str,
    bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tiles = f"s3://{bucket}/log?endpoint={endpoint}"
    SharedLog.create(tmp_path / "log", ORIGIN, tiles=tiles, index=db_url(postgres)).close()
    (tmp_path / "e").write_bytes(b"entry")
    assert main(["log", "add", str(tmp_path / "log"), str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err
    assert "shared by several front ends" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ConfigError):
        Log.open(tmp_path / "log")
    with pytest.raises(ConfigError, match="postgresql"):
        SharedLog.create(tmp_path / "other", ORIGIN, tiles=tiles, index="sqlite:///x.db")


def _cluster(tmp_path: Path, tiles: str, db: str) -> list[FrontEnd]:
    SharedLog.create(tmp_path / "a", ORIGIN, tiles=tiles, index=db).close()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    return [FrontEnd(tmp_path / "a", "a"), FrontEnd(tmp_path / "b", "b")]


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """Go's sumdb/tlog client of tests/interop, built once; None without Go (the
    tests' own checks still run, and the interop tests say that they skipped)."""
    if shutil.which("go") is None or not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        return None
    work = tmp_path_factory.mktemp("go")
    (work / "main.go").write_text(PROGRAM)
    env = dict(
        os.environ, GO111MODULE="off", GOPATH=str(GOPATH), GOCACHE=str(work / "cache"), GOFLAGS=""
    )
    build = ["go", "build", "-o", str(work / "client"), str(work / "main.go")]
    subprocess.run(build, env=env, check=True, cwd=work, timeout=300)
    return work / "client"


def _monitor_once(url: str, vkey: str, state: Path) -> None:
    """``overt monitor --once`` with persistent state: its second run proves the tree it
    sees now consistent with the one it saw before (and checks every new entry)."""
    out = subprocess.run(
        [
            *(sys.executable, "-m", "overt.cli.main", "monitor", url, "--vkey", vkey),
            *("--state", str(state), "--once"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _go_verifies(go_client: Path | None, url: str, vkey: str) -> None:
    if go_client is None:
        return
    out = subprocess.run([str(go_client), url, vkey], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"ok {ORIGIN} ")


def test_the_sequencer_killed_mid_load_is_replaced_and_loses_nothing(
    tmp_path: Path,
    postgres: PostgresSchema,
    endpoint: str,
    bucket: str,
    go_client: Path | None,
) -> None:
    tiles = f"s3://{bucket}/log?endpoint={endpoint}"
    store = open_tiles(tiles)
    front_ends = _cluster(tmp_path, tiles, db_url(postgres))
    token = (tmp_path / "a" / "token").read_text().strip()
    vkey = (tmp_path / "a" / "log.vkey").read_text().strip()
    with running(front_ends), Checkpoints(front_ends, store) as polled:
        wait_until(lambda: any(fe.holds_lease() for fe in front_ends), 10, "a lease holder")
        leader = next(fe for fe in front_ends if fe.holds_lease())
        other = next(fe for fe in front_ends if fe is not leader)
        with Load(front_ends, token) as load:
            wait_until(lambda: load.count() >= 200, 30, "200 acknowledged entries")
            _monitor_once(other.url, vkey, tmp_path / "monitor")
            leader.kill()  # mid-batch: integration runs continuously under load
            killed_at = load.count()
            takeover = wait_until(other.holds_lease, 10, "the other front end taking the lease")
            wait_until(lambda: load.count() >= killed_at + 200, 30, "200 more after the kill")
        assert takeover < 5, f"takeover took {takeover:.1f} s"
        wait_published(other, max(load.acked.values()) + 1)
        # The killed one comes back as a front end without the lease, on the same tree.
        leader.start()
        wait_published(leader, max(load.acked.values()) + 1)
        assert not leader.holds_lease()
        check_log(store, vkey, load.acked, polled.seen)
        _monitor_once(leader.url, vkey, tmp_path / "monitor")
        _go_verifies(go_client, other.url, vkey)
        _go_verifies(go_client, leader.url, vkey)


def test_postgresql_unreachable_mid_load_recovers_by_itself(
    tmp_path: Path, postgres: PostgresSchema, endpoint: str, bucket: str, go_client: Path | None
) -> None:
    tiles = f"s3://{bucket}/log?endpoint={endpoint}"
    store = open_tiles(tiles)
    proxy = Proxy(("127.0.0.1", 5432))
    try:
        front_ends = _cluster(tmp_path, tiles, db_url(postgres, proxy.port))
        token = (tmp_path / "a" / "token").read_text().strip()
        vkey = (tmp_path / "a" / "log.vkey").read_text().strip()
        with running(front_ends), Checkpoints(front_ends, store) as polled:
            with Load(front_ends, token) as load:
                wait_until(lambda: load.count() >= 200, 30, "200 acknowledged entries")
                proxy.cut()
                time.sleep(0.5)
                during = load.count()
                time.sleep(1.5)
                assert load.count() == during, "acknowledged without a database"
                proxy.restore()
                wait_until(lambda: load.count() >= during + 200, 30, "200 more after restore")
            assert load.failures > 0
            wait_until(lambda: any(fe.holds_lease() for fe in front_ends), 10, "a lease holder")
            for fe in front_ends:
                wait_published(fe, max(load.acked.values()) + 1)
            check_log(store, vkey, load.acked, polled.seen)
            _go_verifies(go_client, front_ends[1].url, vkey)
    finally:
        proxy.close()


def test_postgresql_crashed_and_restarted_mid_load_recovers_by_itself(
    tmp_path: Path,
    private_postgres: PrivatePostgres,
    endpoint: str,
    bucket: str,
    go_client: Path | None,
) -> None:
    """A real PostgreSQL restart, ``pg_ctl restart -m immediate`` (a crash: WAL replay on
    start), on a server of the test's own: every commit acknowledged before it survives."""
    tiles = f"s3://{bucket}/log?endpoint={endpoint}"
    store = open_tiles(tiles)
    front_ends = _cluster(tmp_path, tiles, private_postgres.url)
    token = (tmp_path / "a" / "token").read_text().strip()
    vkey = (tmp_path / "a" / "log.vkey").read_text().strip()
    with running(front_ends), Checkpoints(front_ends, store) as polled:
        with Load(front_ends, token) as load:
            wait_until(lambda: load.count() >= 200, 30, "200 acknowledged entries")
            private_postgres.restart("immediate")
            restarted = load.count()
            wait_until(lambda: load.count() >= restarted + 200, 30, "200 more after restart")

        def taken() -> int:
            return sum(fe.output.read_text().count("took the sequencer lease") for fe in front_ends)

        # The crash ended the holder's session: the lease is taken a second time within
        # seconds (entries are acknowledged meanwhile, so the load alone does not tell).
        wait_until(lambda: taken() >= 2, 10, "the lease taken again after the crash")
        wait_until(lambda: any(fe.holds_lease() for fe in front_ends), 10, "a lease holder")
        for fe in front_ends:
            wait_published(fe, max(load.acked.values()) + 1)
        check_log(store, vkey, load.acked, polled.seen)
        _go_verifies(go_client, front_ends[0].url, vkey)


def test_object_store_unreachable_for_10_s_recovers_by_itself(
    tmp_path: Path, postgres: PostgresSchema, endpoint: str, bucket: str, go_client: Path | None
) -> None:
    """Sequencing goes on while tiles cannot be written (entries wait in the database);
    integration resumes when the store answers again."""
    port = urlsplit(endpoint).port
    assert port is not None
    proxy = Proxy(("127.0.0.1", port))
    try:
        tiles = f"s3://{bucket}/log?endpoint=http://127.0.0.1:{proxy.port}"
        store = open_tiles(f"s3://{bucket}/log?endpoint={endpoint}")  # the checks' own path
        front_ends = _cluster(tmp_path, tiles, db_url(postgres))
        token = (tmp_path / "a" / "token").read_text().strip()
        vkey = (tmp_path / "a" / "log.vkey").read_text().strip()
        with running(front_ends), Checkpoints(front_ends, store) as polled:
            with Load(front_ends, token) as load:
                wait_until(lambda: load.count() >= 200, 30, "200 acknowledged entries")
                proxy.cut()
                at_cut = load.count()
                time.sleep(1)
                stuck = max(fe.metrics()["overt_log_published_size"] for fe in front_ends)
                time.sleep(9)
                assert max(fe.metrics()["overt_log_published_size"] for fe in front_ends) == stuck
                during = load.count()
                proxy.restore()
            assert during > at_cut  # POST /add kept acknowledging: sequencing needs no store
            for fe in front_ends:
                wait_published(fe, max(load.acked.values()) + 1)
            check_log(store, vkey, load.acked, polled.seen)
            _go_verifies(go_client, front_ends[1].url, vkey)
    finally:
        proxy.close()


def test_leaf_hash_dedup_holds_across_front_ends_under_load(
    pair: tuple[SharedLog, SharedLog],
) -> None:
    """The same entries sent to both front ends at once get one index each."""
    a, b = pair
    from concurrent.futures import ThreadPoolExecutor

    batches = [[b"dup %d" % i for i in range(n, n + 50)] for n in range(0, 250, 25)]
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda t: t[0].sequence(t[1]),
                [(a, x) for x in batches] + [(b, x) for x in batches],
            )
        )
    index: dict[bytes, int] = {}
    for batch, got in zip(batches + batches, results, strict=True):
        for entry, i in zip(batch, got, strict=True):
            assert index.setdefault(entry, i) == i
    assert sorted(index.values()) == list(range(len(index)))
    for _ in range(20):
        if a.integrate() >= len(index) and b.integrate() >= len(index):
            break
    assert [merkle.leaf_hash(a.entry(i)) for i in range(len(index))] == [
        merkle.leaf_hash(e) for e, _ in sorted(index.items(), key=lambda kv: kv[1])
    ]


def test_a_shared_log_may_sign_with_ml_dsa_44(
    tmp_path: Path, postgres: PostgresSchema, endpoint: str, bucket: str
) -> None:
    tiles = f"s3://{bucket}/log?endpoint={endpoint}"
    log = SharedLog.create(
        tmp_path / "pq", ORIGIN, tiles=tiles, index=db_url(postgres), key_type="ml-dsa-44"
    )
    try:
        assert log.sequence([b"x", b"y"]) == [0, 1]
        log.integrate()
        verifier = parse_vkey(log.vkey)
        assert verifier.key_type.name == "ml-dsa-44"
        assert verify_log(open_tiles(tiles), verifier).checkpoint.checkpoint.size == 2
    finally:
        log.close()
