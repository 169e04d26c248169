"""The witness's SQLite state: compare-and-set, group decisions, durability settings, restarts."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overt.formats.cosignature import CosignatureSigner
from overt.formats.witness import AddCheckpointRequest
from overt.witness.core import (
    Cosigned,
    CosignedCheckpoint,
    Submission,
    decide,
    known_logs,
    verify_submission,
)
from overt.witness.errors import WitnessConflictError, WitnessConsistencyError
from overt.witness.state import SCHEMA_VERSION, StateError, WitnessState

from .simulators import Clock, LogSimulator


def _record(origin: str, size: int, fill: int = 1) -> CosignedCheckpoint:
    return CosignedCheckpoint(origin, size, bytes([fill]) * 32, b"note %d\n" % size)


def test_durability_settings(tmp_path: Path) -> None:
    with WitnessState(tmp_path / "state.db") as state, state.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA user_version").scalar_one() == SCHEMA_VERSION


def test_compare_and_set(tmp_path: Path) -> None:
    with WitnessState(tmp_path / "state.db") as state:
        a1, a2, a3 = _record("a", 1), _record("a", 2), _record("a", 3)
        assert state.get("a") is None
        assert state.compare_and_set(None, a1)
        assert not state.compare_and_set(None, a2)  # someone got there first
        assert state.get("a") == a1
        assert state.compare_and_set(a1, a2)
        assert not state.compare_and_set(a1, a3)  # stale expectation
        # Same size, other root: the root is part of the expectation too.
        assert not state.compare_and_set(_record("a", 2, fill=9), a3)
        assert state.get("a") == a2
        assert state.origins() == ["a"]
        with pytest.raises(StateError):
            state.compare_and_set(a2, _record("b", 3))


def test_records_survive_a_restart(tmp_path: Path) -> None:
    with WitnessState(tmp_path / "state.db") as state:
        state.compare_and_set(None, _record("x.example/log", 7))
    # A plain sqlite3 connection sees it too: the data is in the file, not a cache.
    with sqlite3.connect(tmp_path / "state.db") as raw:
        assert raw.execute("SELECT size FROM checkpoints").fetchall() == [(7,)]
    with WitnessState(tmp_path / "state.db") as state:
        assert state.get("x.example/log") == _record("x.example/log", 7)


def test_another_schema_version_is_refused(tmp_path: Path) -> None:
    WitnessState(tmp_path / "state.db").close()
    with sqlite3.connect(tmp_path / "state.db") as raw:
        raw.execute("PRAGMA user_version = 99")
    with pytest.raises(StateError, match="schema version 99"):
        WitnessState(tmp_path / "state.db")


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateError):
        WitnessState(tmp_path / "nope" / "state.db")


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError):
        WitnessState(tmp_path / "state.db")


# --- apply: decisions in one transaction ------------------------------------------------


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.signer = CosignatureSigner("w.example/w", Ed25519PrivateKey.generate(), self.clock)
        self.log = LogSimulator("state.example/log")
        self.logs = known_logs([self.log.verifier])
        self.path = tmp_path / "state.db"

    def submission(self, old: int, new: int | None = None) -> Submission:
        old, proof, note = self.log.request(old, new)
        return verify_submission(AddCheckpointRequest(old, tuple(proof), note), self.logs)

    def decide(self, stored: CosignedCheckpoint | None, submission: Submission) -> Cosigned:
        return decide(stored, submission, self.signer)


def test_apply_decides_in_order_against_the_updated_record(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.log.grow(3)
    first = world.submission(0, 3)
    world.log.grow(2)
    second = world.submission(3, 5)
    stale = world.submission(0, 5)
    with WitnessState(world.path) as state:
        results = state.apply([first, second, stale], world.decide)
        assert isinstance(results[0], Cosigned)
        assert isinstance(results[1], Cosigned)
        assert isinstance(results[2], WitnessConflictError)
        assert results[2].size == 5
        assert state.get(world.log.origin) == results[1].state


def test_the_write_lock_is_held_from_read_to_commit(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.log.grow(3)
    with WitnessState(world.path) as state:

        def decide_then_break(stored: CosignedCheckpoint | None, sub: Submission) -> Cosigned:
            result = world.decide(stored, sub)
            # Another writer tries to slip a record in between our read and our write:
            # BEGIN IMMEDIATE holds the write lock, so it cannot (if it could, the
            # compare-and-set would fail and apply would raise StateError).
            raw = sqlite3.connect(world.path, timeout=0.1)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    raw.execute(
                        "INSERT INTO checkpoints VALUES ('state.example/log', 1, x'00', x'00')"
                    )
            finally:
                raw.close()
            return result

        (result,) = state.apply([world.submission(0)], decide_then_break)
        assert isinstance(result, Cosigned)
        assert state.get(world.log.origin) == result.state


def test_a_refused_decision_does_not_change_the_record(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.log.grow(4)
    with WitnessState(world.path) as state:
        (ok,) = state.apply([world.submission(0)], world.decide)
        assert isinstance(ok, Cosigned)
        fork = world.log.fork()
        fork.rollback(2, regrow=4)
        bad = verify_submission(
            AddCheckpointRequest(4, tuple(fork.proof(4)), fork.checkpoint()), world.logs
        )
        (refused,) = state.apply([bad], world.decide)
        assert isinstance(refused, WitnessConsistencyError)
        assert state.get(world.log.origin) == ok.state


def test_two_state_handles_on_one_file_never_lose_an_update(tmp_path: Path) -> None:
    """Two writers (as two processes would) race on one log: every size is cosigned once."""
    world = World(tmp_path)
    world.log.grow(1)
    steps = 40
    notes = []
    for _ in range(steps):
        size = world.log.size
        world.log.grow(1)
        notes.append((size, world.submission(size)))
    accepted: list[tuple[int, bytes]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)

    def writer() -> None:
        with WitnessState(world.path) as state:
            barrier.wait()
            for _old, submission in notes:
                (result,) = state.apply([submission], world.decide)
                if isinstance(result, Cosigned):
                    with lock:
                        accepted.append((result.state.size, result.state.root_hash))

    with WitnessState(world.path) as state:
        state.apply([world.submission(0, 1)], world.decide)
    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sizes = [size for size, _ in accepted]
    # Each step is accepted exactly once, by one of the two writers, in order.
    assert sorted(sizes) == list(range(2, steps + 2))
    with WitnessState(world.path) as state:
        final = state.get(world.log.origin)
    assert final is not None
    assert (final.size, final.root_hash) == (world.log.size, world.log.tree.root())


# --- storage failures: typed, and the record intact ----------------------------------------


class _FullDiskConnection(sqlite3.Connection):
    """A SQLite connection whose commits fail as on a full disk, while ``full``."""

    full = False

    def commit(self) -> None:
        if _FullDiskConnection.full:
            raise sqlite3.OperationalError("database or disk is full")
        super().commit()

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(_FullDiskCursor)


class _FullDiskCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if _FullDiskConnection.full and sql.strip().upper() == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return super().execute(sql, parameters)


def test_a_full_disk_is_a_state_error_and_leaves_the_record_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import overt.witness.state

    real = overt.witness.state.create_engine

    def create_engine(url: str, **kwargs: Any) -> Any:
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "factory": _FullDiskConnection}
        return real(url, **kwargs)

    monkeypatch.setattr(overt.witness.state, "create_engine", create_engine)
    monkeypatch.setattr(_FullDiskConnection, "full", False)
    world = World(tmp_path)
    world.log.grow(3)
    with WitnessState(world.path) as state:
        (ok,) = state.apply([world.submission(0)], world.decide)
        assert isinstance(ok, Cosigned)
        world.log.grow(2)
        newer = world.submission(3)
        _FullDiskConnection.full = True
        with pytest.raises(StateError, match="disk is full"):
            state.apply([newer], world.decide)
        with pytest.raises(StateError, match="disk is full"):
            state.compare_and_set(ok.state, _record(world.log.origin, 9))
        _FullDiskConnection.full = False
        # Nothing was stored, and the witness goes on once there is room.
        assert state.get(world.log.origin) == ok.state
        (later,) = state.apply([newer], world.decide)
        assert isinstance(later, Cosigned) and later.state.size == 5
    with WitnessState(world.path) as state:
        assert state.get(world.log.origin) == later.state
