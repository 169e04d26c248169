"""The witness state protocol on SQLite and PostgreSQL: the same tests against both."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text
from tests.witness.simulators import Clock, LogSimulator

from overt.errors import ConfigError
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
from overt.witness.errors import WitnessConflictError
from overt.witness.state import (
    PostgresWitnessState,
    StateError,
    WitnessState,
    WitnessStore,
)
from overt.witness.state import open_state as open_state_url

from .conftest import PostgresSchema


@pytest.fixture(params=["sqlite", "postgresql"])
def open_state(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], WitnessStore]]:
    """A function opening the state (again and again: several processes share it)."""
    opened: list[WitnessStore] = []
    if request.param == "sqlite":

        def opener() -> WitnessStore:
            opened.append(WitnessState(tmp_path / "state.db"))
            return opened[-1]

    else:
        pg: PostgresSchema = request.getfixturevalue("postgres")

        def opener() -> WitnessStore:
            opened.append(PostgresWitnessState(pg.url, connect_args=pg.connect_args))
            return opened[-1]

    yield opener
    for state in opened:
        state.close()


def _record(origin: str, size: int, fill: int = 1) -> CosignedCheckpoint:
    return CosignedCheckpoint(origin, size, bytes([fill]) * 32, b"note %d\n" % size)


def test_stale_compare_and_set_is_refused(open_state: Callable[[], WitnessStore]) -> None:
    state: WitnessStore = open_state()
    a1, a2, a3 = _record("a", 1), _record("a", 2), _record("a", 3)
    assert state.get("a") is None
    assert state.compare_and_set(None, a1)
    assert not state.compare_and_set(None, a2)  # someone got there first
    assert state.compare_and_set(a1, a2)
    assert not state.compare_and_set(a1, a3)  # stale expectation
    assert not state.compare_and_set(_record("a", 2, fill=9), a3)  # same size, other root
    assert state.get("a") == a2
    assert state.compare_and_set(None, _record("b", 5))
    assert state.origins() == ["a", "b"]
    with pytest.raises(StateError):
        state.compare_and_set(a2, _record("b", 3))
    # Another process sees the records: they are in the database.
    assert open_state().get("a") == a2


def test_two_witness_processes_never_both_advance_from_one_record(
    open_state: Callable[[], WitnessStore],
) -> None:
    """Split view through the state: of racing writers with one expectation, one wins."""
    first: WitnessStore = open_state()
    base = _record("race", 1)
    assert first.compare_and_set(None, base)
    states = [open_state() for _ in range(4)]
    wins: list[bool] = []
    barrier = threading.Barrier(len(states))

    def race(n: int) -> None:
        barrier.wait()
        wins.append(states[n].compare_and_set(base, _record("race", 2, fill=n + 10)))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(len(states))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False, False, False, True]


class _World:
    def __init__(self) -> None:
        self.signer = CosignatureSigner("w.example/w", Ed25519PrivateKey.generate(), Clock())
        self.log = LogSimulator("state.example/log")
        self.logs = known_logs([self.log.verifier])

    def submission(self, old: int, new: int | None = None) -> Submission:
        old, proof, note = self.log.request(old, new)
        return verify_submission(AddCheckpointRequest(old, tuple(proof), note), self.logs)

    def decide(self, stored: CosignedCheckpoint | None, submission: Submission) -> Cosigned:
        return decide(stored, submission, self.signer)


def test_rollback_is_refused_by_apply(open_state: Callable[[], WitnessStore]) -> None:
    world = _World()
    world.log.grow(3)
    first = world.submission(0, 3)
    world.log.grow(2)
    second = world.submission(3, 5)
    stale = world.submission(0, 5)
    state: WitnessStore = open_state()
    results = state.apply([first, second, stale], world.decide)
    assert isinstance(results[0], Cosigned)
    assert isinstance(results[1], Cosigned)
    assert isinstance(results[2], WitnessConflictError)
    assert results[2].size == 5
    assert state.get(world.log.origin) == results[1].state
    assert open_state().get(world.log.origin) == results[1].state


def test_a_schema_from_a_newer_overt_is_refused(postgres: PostgresSchema) -> None:
    PostgresWitnessState(postgres.url, connect_args=postgres.connect_args).close()
    engine = create_engine(postgres.url, connect_args=postgres.connect_args)
    with engine.begin() as conn:
        conn.execute(text("UPDATE overt_schema_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(StateError, match="revision '0099', newer than this overt"):
        PostgresWitnessState(postgres.url, connect_args=postgres.connect_args)


def test_unreachable_postgres_is_a_state_error() -> None:
    with pytest.raises(StateError, match="cannot open the witness state database"):
        PostgresWitnessState("postgresql://nobody@127.0.0.1:1/none")


def test_witness_state_by_url(tmp_path: Path, postgres: PostgresSchema) -> None:
    """``overt witness serve --db URL``: SQLite keeps the embedded file format, PostgreSQL
    is migrated; anything else is refused before a connection is tried."""
    with open_state_url(f"sqlite:///{tmp_path / 'w.db'}") as state:
        assert isinstance(state, WitnessState) and state.origins() == []
    url = f"{postgres.url}?options=-csearch_path%3D{postgres.schema}"
    with open_state_url(url.replace("postgresql+psycopg://", "postgresql://")) as state:
        assert isinstance(state, PostgresWitnessState)
        assert state.compare_and_set(None, _record("u", 1))
    with pytest.raises(ConfigError, match="unsupported database URL 'mysql'"):
        open_state_url("mysql://root:pw@db/w")
