"""The monitor's state on every store: a directory, SQLite and PostgreSQL (same tests)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.monitor.sim import LogSimulator

from overt.errors import ConfigError, InconsistentCheckpointError
from overt.monitor import EventSink, Monitor, MonitorState
from overt.monitor.state import DatabaseStore, DirectoryStore, MonitorStore

from .conftest import PostgresSchema


@pytest.fixture(params=["directory", "sqlite", "postgresql"])
def open_state(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], MonitorState]]:
    """Opens the same state again each call (a monitor restarting)."""
    stores: list[DatabaseStore] = []

    def opener() -> MonitorState:
        store: MonitorStore
        if request.param == "directory":
            store = DirectoryStore(tmp_path / "state")
        elif request.param == "sqlite":
            stores.append(DatabaseStore(f"sqlite:///{tmp_path / 'monitor.db'}", "m1"))
            store = stores[-1]
        else:
            pg: PostgresSchema = request.getfixturevalue("postgres")
            stores.append(DatabaseStore(pg.url, "m1", connect_args=pg.connect_args))
            store = stores[-1]
        return MonitorState(None, store=store)

    yield opener
    for store in stores:
        store.close()


def _monitor(log: LogSimulator, state: MonitorState) -> Monitor:
    return Monitor(
        log,
        log.verifier,
        state,
        EventSink(io.StringIO()),
        fetch_threads=2,
        clock=lambda: 1_750_000_000.0,
    )


def test_rollback_is_detected_after_a_restart(open_state: Callable[[], MonitorState]) -> None:
    """The kept checkpoint survives a restart on every store, so a rollback is still caught."""
    log = LogSimulator()
    log.add_many(50)
    _monitor(log, open_state()).poll()
    kept = log.checkpoint()
    restarted = open_state()
    position = restarted.load(log.verifier)
    assert position is not None and position.checkpoint.raw == kept and position.next == 50
    log.published = 40  # the log serves an older tree again
    with pytest.raises(InconsistentCheckpointError) as caught:
        _monitor(log, restarted).poll()
    assert type(caught.value).__name__ == "RollbackError"
    [ev] = open_state().evidence()
    assert list(ev.notes) == [kept, log.checkpoint(40)]
    ev.verify(log.verifier)


def test_stored_evidence_keeps_refusing_and_is_never_replaced(
    open_state: Callable[[], MonitorState],
) -> None:
    log = LogSimulator()
    log.add_many(10)
    _monitor(log, open_state()).poll()
    other = log.branch(9)
    other.add(b"a different tenth entry")
    log.checkpoint_override = other.checkpoint()
    with pytest.raises(InconsistentCheckpointError):
        _monitor(log, open_state()).poll()
    state = open_state()
    [ev] = state.evidence()
    # The same record again is a no-op; the stored one stays.
    state.save_evidence(ev)
    assert [e.notes for e in open_state().evidence()] == [ev.notes]
    log.checkpoint_override = None
    with pytest.raises(InconsistentCheckpointError, match="until the evidence is removed"):
        open_state().require_clean()


def test_monitors_sharing_a_database_keep_apart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = DatabaseStore(url, "a"), DatabaseStore(url, "b")
    a.write_position(b"{}")
    a.add_evidence("x.json", b"1")
    assert b.read_position() is None and b.evidence_files() == {}
    assert a.evidence_files() == {"x.json": b"1"}
    a.close()
    b.close()


def test_unsupported_or_unreachable_database_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported database URL 'mysql'"):
        DatabaseStore("mysql://u:secret@h/db")
    with pytest.raises(ConfigError, match="cannot migrate the database: connection failed"):
        DatabaseStore("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ConfigError, match="not both"):
        MonitorState(tmp_path, store=DirectoryStore(tmp_path))
