"""Storage failures (disk full) are clear errors and never lose or corrupt acknowledged entries."""

from __future__ import annotations

import asyncio
import errno
import itertools
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from overt.errors import ConfigError, LogError
from overt.formats import merkle
from overt.formats.checkpoint import parse_checkpoint
from overt.formats.note import parse_note, parse_vkey
from overt.log.client import DirectorySource, verify_log
from overt.log.journal import Journal, replay
from overt.log.log import Log

ORIGIN = "faults.example/log"


class DiskFull:
    """Makes a function fail with ENOSPC the next ``times`` calls (a full disk)."""

    def __init__(self, target: Any, name: str, times: int = 1) -> None:
        self.target, self.name, self.times = target, name, times
        self.original: Callable[..., Any] = getattr(target, name)
        setattr(target, name, self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.times > 0:
            self.times -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.original(*args, **kwargs)


class FullFilesystem:
    """The os module as overt.log.fs sees it, with writes failing (ENOSPC) while ``full``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
        self.real = module.os
        self.full = True
        monkeypatch.setattr(module, "os", self)

    def write(self, fd: int, data: Any) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        written: int = self.real.write(fd, data)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class FullDatabase:
    """SQLite that cannot grow: every connection's max_page_count is its current size.

    SQLite then fails any write that needs a new page with "database or disk is full".
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        event.listen(engine, "connect", self._limit)
        engine.dispose()  # new connections get the limit

    @staticmethod
    def _limit(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        (pages,) = cur.execute("PRAGMA page_count").fetchone()
        cur.execute(f"PRAGMA max_page_count={pages}")
        cur.close()

    def free(self) -> None:
        event.remove(self.engine, "connect", self._limit)
        self.engine.dispose()


def check(directory: Path, expected: list[bytes]) -> None:
    with Log.open(directory) as log:
        assert log.size == len(expected)
        assert [log.entry(i) for i in range(log.size)] == expected
        verify_log(DirectorySource(directory), parse_vkey(log.vkey), ORIGIN)


def test_disk_full_during_bulk_add_is_a_log_error_and_loses_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        assert log.add_many([b"a", b"b"]) == [0, 1]
        DiskFull(log.store, "write_batch")
        with pytest.raises(LogError, match="No space left"):
            log.add_many([b"c", b"d"])
        assert log.size == 2
        assert log.add_many([b"c", b"d"]) == [2, 3]  # the disk has room again
    check(directory, [b"a", b"b", b"c", b"d"])


def test_disk_full_while_publishing_the_checkpoint(tmp_path: Path) -> None:
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        log.add_many([b"a"])
        DiskFull(log.store, "write_checkpoint")
        with pytest.raises(LogError):
            log.add_many([b"b"])
        assert log.add_many([b"b", b"c"]) == [1, 2]
    check(directory, [b"a", b"b", b"c"])


def test_disk_full_during_integration_keeps_sequenced_entries(tmp_path: Path) -> None:
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        assert log.sequence([b"a", b"b"]) == [0, 1]
        # Two integrations in a row hit the full disk.
        DiskFull(log.store, "write_batch", times=2)
        with pytest.raises(LogError):
            log.integrate()
        # Sequencing goes on after the promised indices...
        assert log.sequence([b"c", b"a"]) == [2, 0]
        with pytest.raises(LogError):
            log.integrate()
        assert (log.size, log.sequenced_size) == (0, 3)
        assert log.integrate() == 3
    check(directory, [b"a", b"b", b"c"])


def test_disk_full_while_journaling_cuts_the_torn_record(tmp_path: Path) -> None:
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        assert log.sequence([b"first"]) == [0]
        real_fdatasync = os.fdatasync
        DiskFull(os, "fdatasync")
        try:
            with pytest.raises(LogError, match="journal"):
                log.sequence([b"lost, never acknowledged"])
        finally:
            os.fdatasync = real_fdatasync
        assert log.sequence([b"second"]) == [1]
        # Stop without integrating: recovery must read both acknowledged records.
        log.journal.close()
        os.close(log._lock_fd)
        log._lock_fd = -1
        log.index.close()
    check(directory, [b"first", b"second"])


def test_full_disk_and_full_index_never_move_an_acknowledged_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's reproduction: [a, b, c] must never become [a, c] or [a, c, c].

    ``a`` is 200 entries, so that committing them to the index needs new pages.
    """
    import overt.log.fs

    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        database = FullDatabase(log.index.engine)
        filesystem = FullFilesystem(monkeypatch, overt.log.fs)
        filesystem.full = False
        a = [b"a%d" % i for i in range(200)]
        assert log.add_many(a) == list(range(200))
        filesystem.full = True
        assert log.sequence([b"b"]) == [200]  # acknowledged: durable in the journal
        with pytest.raises(LogError):
            log.integrate()
        assert (log.size, log.sequenced_size) == (200, 201)
        # Space is back.
        filesystem.full = False
        database.free()
        assert log.sequence([b"c"]) == [201]
        assert log.integrate() == 202
        assert [log.entry(i) for i in range(200, 202)] == [b"b", b"c"]
    check(directory, [*a, b"b", b"c"])


class _FullSQLite(sqlite3.Connection):
    """A SQLite connection whose writes fail as on a full disk while ``full`` (reads work)."""

    full = False

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(_FullSQLiteCursor)

    def commit(self) -> None:
        if _FullSQLite.full:
            raise sqlite3.OperationalError("database or disk is full")
        super().commit()


class _FullSQLiteCursor(sqlite3.Cursor):
    WRITES = ("INSERT", "UPDATE", "DELETE", "COMMIT")

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if _FullSQLite.full and sql.lstrip().upper().startswith(self.WRITES):
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        if _FullSQLite.full:
            raise sqlite3.OperationalError("database or disk is full")
        return super().executemany(sql, parameters)


def test_the_issues_full_disk_scenario_a_b_c_stays_a_b_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exactly the issue's steps: [a, b, c] was stored as [a, c], then [a, c, c] after reopening."""
    import overt.log.fs
    import overt.log.index

    real_create_engine = overt.log.index.create_engine

    def create_engine(url: str, **kwargs: Any) -> Engine:
        kwargs["connect_args"] = {"factory": _FullSQLite}
        return real_create_engine(url, **kwargs)

    monkeypatch.setattr(overt.log.index, "create_engine", create_engine)
    monkeypatch.setattr(_FullSQLite, "full", False)
    filesystem = FullFilesystem(monkeypatch, overt.log.fs)
    filesystem.full = False
    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        _FullSQLite.full = True  # the index cannot grow
        assert log.add_many([b"a"]) == [0]
        filesystem.full = True  # tile writes fail with ENOSPC; the journal still works
        assert log.sequence([b"b"]) == [1]
        with pytest.raises(LogError, match="No space left"):
            log.integrate()
        # Space is back.
        filesystem.full = False
        _FullSQLite.full = False
        assert log.sequence([b"c"]) == [2]
        assert log.integrate() == 3
        assert [log.entry(i) for i in range(3)] == [b"a", b"b", b"c"]
    check(directory, [b"a", b"b", b"c"])


def test_failed_index_commits_catch_up_once_the_database_has_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import overt.log.index

    real_create_engine = overt.log.index.create_engine

    def create_engine(url: str, **kwargs: Any) -> Engine:
        kwargs["connect_args"] = {"factory": _FullSQLite}
        return real_create_engine(url, **kwargs)

    monkeypatch.setattr(overt.log.index, "create_engine", create_engine)
    monkeypatch.setattr(_FullSQLite, "full", False)
    with Log.create(tmp_path / "l", ORIGIN) as log:
        _FullSQLite.full = True
        for n in range(3):
            assert log.add_many([b"full %d" % n]) == [n]
        with pytest.raises(LogError, match="re-derived"):
            log.flush_index()
        assert log.add_many([b"full 1"]) == [1]  # deduplicated from memory
        _FullSQLite.full = False
        assert log.add_many([b"room"]) == [3]
        log.flush_index()
        assert log.index.size() == 4 and not log._unindexed
        assert log.index.lookup([merkle.leaf_hash(b"full 0")]) == {merkle.leaf_hash(b"full 0"): 0}


# -- every I/O call site fails once --------------------------------------------
#
# A counting fault injector numbers every storage operation the log performs
# (file opens, writes, fsyncs, renames, deletions, directory listings, SQLite
# statements and commits) and fails the k-th one; the workload below runs once
# for every k, and again with a second failure shortly after the first (inside
# the recovery that follows it). New call sites are counted automatically: they
# go through the same os functions and the same SQLite connections.


class Injector:
    """Counts storage operations while active; fails those whose number is in ``fail``."""

    def __init__(self, root: Path, fail: set[int]) -> None:
        self.root = str(root)
        self.fail = fail
        self.count = 0
        self.active = False
        self.sites: list[str] = []

    def tick(self, site: str, error: Callable[[], Exception]) -> None:
        if not self.active:
            return
        self.count += 1
        self.sites.append(site)
        if self.count in self.fail:
            raise error()

    def disk_full(self, site: str) -> None:
        self.tick(site, lambda: OSError(errno.ENOSPC, f"No space left on device ({site})"))


_injector: Injector | None = None


def _audit(event_name: str, args: tuple[Any, ...]) -> None:
    """Path-based operations (Path.read_bytes, mkdir, unlink, iterdir, os.replace...)."""
    injector = _injector
    if injector is None or not injector.active:
        return
    if event_name in ("open", "os.mkdir", "os.remove", "os.scandir", "os.listdir", "os.rename"):
        path = args[0] if args else None
        if not isinstance(path, (str, os.PathLike)):
            return
        name = os.fspath(path)
        # Relative names: the tile store walks its tree with dir_fd (openat).
        if name.startswith(injector.root) or not os.path.isabs(name):
            injector.disk_full(f"{event_name} {os.path.basename(name)}")


_audit_installed = False


class FaultyOS:
    """The os module as the log's storage modules see it: fd operations are counted."""

    COUNTED = frozenset({"write", "fsync", "fdatasync", "ftruncate", "lseek"})

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in self.COUNTED:
            return attr

        def counted(*args: Any) -> Any:
            if _injector is not None:
                _injector.disk_full(f"os.{name}")
            if name in ("fsync", "fdatasync"):
                return None  # counted, not waited for: this test is about logic, not devices
            return attr(*args)

        return counted


def _sqlite_full() -> Exception:
    return sqlite3.OperationalError("database or disk is full")


class FaultyCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if _injector is not None:
            _injector.tick(f"sqlite {sql.split()[0]}", _sqlite_full)
        if sql.startswith("PRAGMA synchronous"):
            sql = "PRAGMA synchronous=OFF"  # as fsync above
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        if _injector is not None:
            _injector.tick(f"sqlite many {sql.split()[0]}", _sqlite_full)
        return super().executemany(sql, parameters)


class FaultyConnection(sqlite3.Connection):
    def cursor(self, factory: Any = FaultyCursor) -> Any:
        return super().cursor(factory)

    def commit(self) -> None:
        if _injector is not None:
            _injector.tick("sqlite commit", _sqlite_full)
        super().commit()


@pytest.fixture
def ram_path(tmp_path: Path) -> Iterator[Path]:
    """A directory in RAM where there is one (hundreds of short runs), else tmp_path."""
    if not Path("/dev/shm").is_dir():
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="overt-faults-", dir="/dev/shm"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def faulty_storage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Route the log's storage through the injector, deterministically (one I/O thread)."""
    global _audit_installed
    import overt.log.fs
    import overt.log.index
    import overt.log.journal
    import overt.log.log

    if not _audit_installed:
        sys.addaudithook(_audit)  # cannot be removed: inert while _injector is None
        _audit_installed = True
    for module in (overt.log.fs, overt.log.journal, overt.log.log):
        monkeypatch.setattr(module, "os", FaultyOS(os))
    real_create_engine = overt.log.index.create_engine

    def create_engine(url: str, **kwargs: Any) -> Engine:
        kwargs["connect_args"] = {"factory": FaultyConnection}
        return real_create_engine(url, **kwargs)

    monkeypatch.setattr(overt.log.index, "create_engine", create_engine)
    # Index commits inline and tile writes on one thread: the k-th operation is
    # the same one in every run.
    monkeypatch.setattr(overt.log.log, "_INDEX_LAG", 0)
    pool = ThreadPoolExecutor(1)
    monkeypatch.setattr(overt.log.fs, "_pool", pool)
    yield
    pool.shutdown()


def e(n: int) -> bytes:
    return b"entry %d" % n


# The workload: every way in (sequence, integrate, add_many with staged
# entries and duplicates, open with a journal to replay).
WORKLOAD: list[tuple[str, list[bytes]]] = [
    ("add_many", [e(0), e(1)]),
    ("sequence", [e(2)]),
    ("sequence", [e(3), e(0)]),
    ("integrate", []),
    ("sequence", [e(4)]),
    ("add_many", [e(5), e(4)]),
    ("sequence", [e(6)]),
    ("reopen", []),
    ("sequence", [e(7), e(6), e(8)]),
    ("integrate", []),
]


class Model:
    """What the log acknowledged: entry -> index."""

    def __init__(self) -> None:
        self.acked: dict[bytes, int] = {}

    def ack(self, entries: list[bytes], indices: list[int]) -> None:
        for entry, index in zip(entries, indices, strict=True):
            assert self.acked.setdefault(entry, index) == index, f"{entry!r} moved"
        assert len(set(self.acked.values())) == len(self.acked), "two entries at one index"


def check_invariant(log: Log, directory: Path, model: Model) -> None:
    """Every acknowledged index holds its entry; no entry twice; memory equals disk."""
    size, next_ = log.size, log.sequenced_size
    assert len(log._staged) == len(log._staged_hashes) == next_ - size
    logged = [log.entry(i) for i in range(size)] + list(log._staged)
    assert len(set(logged)) == len(logged), "an entry appears twice"
    for entry, index in model.acked.items():
        assert index < next_, f"acknowledged index {index} is beyond {next_}"
        assert logged[index] == entry, f"index {index} does not hold {entry!r}"
    # Deduplication knows every logged entry (from memory or the index).
    hashes = [merkle.leaf_hash(x) for x in logged]
    assert log._dedup(hashes) == {h: i for i, h in enumerate(hashes)}
    if log.failure is None:
        # Memory equals what is durable: the checkpoint and the journal.
        note = (directory / "checkpoint").read_bytes()
        assert parse_checkpoint(parse_note(note).text).size == size
        journaled = replay(Journal(directory / "journal").recover(), size)
        assert journaled[: len(log._staged)] == log._staged


def run_workload(directory: Path, injector: Injector) -> Model:
    model = Model()
    log: Log | None = Log.open(directory)
    for step, entries in WORKLOAD:
        attempts = len(injector.fail) + 2  # a fault fails one attempt at most
        for _ in range(attempts):
            injector.active = True
            try:
                if step == "reopen":
                    if log is not None:
                        log.close()
                        log = None
                    log = Log.open(directory)
                else:
                    assert log is not None
                    if step == "add_many":
                        model.ack(entries, log.add_many(entries))
                    elif step == "sequence":
                        model.ack(entries, log.sequence(entries))
                    else:
                        log.integrate()
            except (LogError, ConfigError) as err:
                # Typed, and only ever because of an injected fault.
                assert "No space left" in str(err) or "disk is full" in str(err), err
                continue
            finally:
                injector.active = False
                if log is not None:
                    check_invariant(log, directory, model)
            break
        else:
            pytest.fail(f"{step} still failing after {attempts} attempts")
    assert log is not None
    log.close()
    return model


def run_with_faults(tmp_path: Path, name: str, fail: set[int]) -> Injector:
    global _injector
    directory = tmp_path / name
    Log.create(directory, ORIGIN).close()
    injector = Injector(directory, fail)
    _injector = injector
    try:
        model = run_workload(directory, injector)
    finally:
        _injector = None
    # After reopening without faults: exactly what was acknowledged, nothing else.
    with Log.open(directory) as log:
        assert log.size == log.sequenced_size == len(model.acked)
        for entry, index in model.acked.items():
            assert log.entry(index) == entry
        vkey = parse_vkey(log.vkey)
    verify_log(DirectorySource(directory), vkey, ORIGIN)
    shutil.rmtree(directory)
    return injector


def run_every_fault(tmp_path: Path, faults: Callable[[int, Injector], list[set[int]]]) -> None:
    """Run the workload once per fault set ``faults(k, clean run)`` names, for every k."""
    clean = run_with_faults(tmp_path, "clean", set())
    kinds = {site.split()[0] for site in clean.sites}
    # The injector sees every kind of operation (else this test proves little).
    assert {"open", "os.write", "os.fsync", "os.fdatasync", "os.rename", "sqlite"} <= kinds
    for k in range(1, clean.count + 1):
        for fail in faults(k, clean):
            try:
                run_with_faults(tmp_path, "-".join(map(str, sorted(fail))), fail)
            except BaseException as err:
                where = [clean.sites[i - 1] for i in sorted(fail) if i <= clean.count]
                raise AssertionError(f"fault at operations {sorted(fail)} {where}: {err}") from err


def test_every_storage_operation_failing_once_loses_and_moves_nothing(
    ram_path: Path, faulty_storage: None
) -> None:
    run_every_fault(ram_path, lambda k, _: [{k}])


def second_faults(k: int, _clean: Injector) -> list[set[int]]:
    """For even k a second failure soon after (inside the recovery that follows, or
    the retry), one of the next four, a different one for each k; for odd k a disk
    full for a while: two to six operations in a row fail, then there is room again.
    One run per k keeps this bounded."""
    if k % 2 == 0:
        return [{k, k + 1 + (k // 2) % 4}]
    return [set(range(k, k + 2 + (k // 2) % 5))]


def test_failures_inside_the_recovery_and_a_disk_full_for_a_while_lose_and_move_nothing(
    ram_path: Path, faulty_storage: None
) -> None:
    run_every_fault(ram_path, second_faults)


# -- the server's integration loop -----------------------------------------------


def test_integration_loop_backs_off_while_the_disk_is_full_and_recovers_by_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No busy spin (the issue saw 100% CPU): attempts are spaced exponentially, capped."""
    import overt.log.fs
    from overt.log.server import Sequencer

    directory = tmp_path / "l"
    window, first, cap = 1.5, 0.02, 0.2
    with Log.create(directory, ORIGIN) as log:
        filesystem = FullFilesystem(monkeypatch, overt.log.fs)  # tiles fail, the journal works
        calls: list[float] = []
        real_integrate = log.integrate

        def integrate() -> int:
            calls.append(time.monotonic())
            return real_integrate()

        monkeypatch.setattr(log, "integrate", integrate)

        async def scenario() -> None:
            sequencer = Sequencer(log, backoff=(first, cap))
            sequencer.start()
            acknowledged = [await sequencer.add(b"entry %d" % i) for i in range(3)]
            assert acknowledged == [0, 1, 2]
            await asyncio.sleep(window)
            failing = len(calls)
            # Exponential then capped: at most log2(cap/first) + window/cap + slack.
            assert 4 <= failing <= 4 + window / cap + 2, calls
            gaps = [b - a for a, b in itertools.pairwise(calls)]
            assert all(gap >= first * 0.9 for gap in gaps), gaps
            assert max(gaps) <= cap * 2 + 0.5, gaps  # capped (slack for a loaded machine)
            assert log.size == 0 and log.failure is None  # nothing moved, memory = disk
            # Space is back: no request needed, the loop integrates by itself.
            filesystem.full = False
            deadline = time.monotonic() + 5
            while (log.size < 3 or sequencer.failures) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert log.size == 3 and sequencer.failures == 0
            await sequencer.stop()

        asyncio.run(scenario())
        assert [log.entry(i) for i in range(3)] == [b"entry 0", b"entry 1", b"entry 2"]
    check(directory, [b"entry %d" % i for i in range(3)])


def test_storage_failure_is_a_503_over_http_and_nothing_is_acknowledged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    import overt.log.journal
    from overt.log.server import LogApp

    directory = tmp_path / "l"
    with Log.create(directory, ORIGIN) as log:
        app = LogApp(log)
        headers = {"authorization": f"Bearer {log.token}"}
        disk = FullFilesystem(monkeypatch, overt.log.journal)  # the journal cannot grow

        async def post(entry: bytes) -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://log") as client:
                return await client.post("/add", content=entry, headers=headers)

        async def scenario() -> None:
            full = await post(b"refused")
            assert full.status_code == 503, full.text
            assert "No space left" in full.text
            disk.full = False
            ok = await post(b"stored")
            assert (ok.status_code, ok.text) == (200, "0\n")
            assert app.sequencer is not None
            await app.sequencer.stop()

        asyncio.run(scenario())
        assert (log.size, log.sequenced_size) == (1, 1)
    check(directory, [b"stored"])


def test_creating_a_log_on_a_full_disk_is_a_config_error_and_can_be_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import overt.log.fs

    filesystem = FullFilesystem(monkeypatch, overt.log.fs)
    with pytest.raises(ConfigError, match="No space left"):
        Log.create(tmp_path / "l", ORIGIN)
    filesystem.full = False
    Log.create(tmp_path / "l", ORIGIN).close()
    check(tmp_path / "l", [])
