"""A desk over a real overt Log and a SQLite (or PostgreSQL) store, with a settable clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from overt.disclosure.advisories import Publisher
from overt.disclosure.bounty import VulnClass
from overt.disclosure.crypto import PSIRTKey
from overt.disclosure.service import Account, Desk, Role, Submission
from overt.disclosure.store import Store
from overt.disclosure.timeline import LocalCommitmentLog
from overt.log.log import Log
from overt.publish.keys import generate_publisher_key

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # a Wednesday


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, days: float) -> None:
        self.now += timedelta(days=days)


class Rig:
    def __init__(self, desk: Desk, log: Log, clock: Clock, store: Store) -> None:
        self.desk = desk
        self.log = log
        self.clock = clock
        self.store = store
        self.admin = desk.add_account("ada", "correct horse battery", Role.ADMIN)
        self.triager = desk.add_account("tom", "triager password 1", Role.TRIAGER)

    def submission(self, **changes: object) -> Submission:
        fields: dict[str, object] = {
            "title": "RCE in the updater",
            "description": "The update channel accepts unsigned manifests.",
            "researcher": "alice",
            "vuln_class": VulnClass.RCE_UPDATE_CHANNEL,
            "contact": "alice@example.org",
        }
        fields.update(changes)
        return Submission(**fields)  # type: ignore[arg-type]


def make_rig(tmp_path: Path, store: Store) -> Rig:
    log = Log.create(tmp_path / "log", "example.com/disclosure-log")
    clock = Clock()
    _skey, signer = generate_publisher_key("example.com/psirt")
    publisher = Publisher("Example PSIRT", "https://example.com", "https://psirt.example.com")
    desk = Desk(
        store,
        PSIRTKey.generate(),
        LocalCommitmentLog(log),
        "example.com/psirt",
        clock,
        publisher=publisher,
        signer=signer,
    )
    return Rig(desk, log, clock, store)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    store = Store.open(tmp_path / "disclosure.db")
    r = make_rig(tmp_path, store)
    yield r
    r.log.close()
    store.close()


__all__ = ["T0", "Account", "Clock", "Rig", "make_rig"]
