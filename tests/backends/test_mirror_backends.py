"""The mirror's state on SQLite and PostgreSQL, and its copies in a bucket (moto's S3 emulator)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.mirror.sim import ORIGIN, MirrorUnderTest, make_log

from overt.formats.merkle import EMPTY_ROOT
from overt.formats.note import parse_vkey
from overt.log.client import verify_log
from overt.log.stores import open_tiles
from overt.mirror.core import MirrorRecord, PendingCheckpoint
from overt.mirror.state import MirrorState
from overt.mirror.store import prefixed_tiles_url
from overt.witness.core import CosignedCheckpoint

from .conftest import PostgresSchema


def _pg_url(pg: PostgresSchema) -> str:
    return f"{pg.url}?options=-csearch_path%3D{pg.schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MirrorState]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = _pg_url(request.getfixturevalue("postgres"))
    with MirrorState(url) as opened:
        yield opened


def _pending(size: int) -> PendingCheckpoint:
    return PendingCheckpoint(ORIGIN, size, bytes([size % 256]) * 32, b"note %d" % size)


def test_records_round_trip_and_never_go_back(state: MirrorState) -> None:
    assert state.add_log(ORIGIN) and not state.add_log(ORIGIN)
    record = state.get(ORIGIN)
    assert record == MirrorRecord(ORIGIN)
    for size in range(1, 21):
        new = MirrorRecord(ORIGIN, pending=(*record.pending, _pending(size))[-16:])
        state.set_pending(record, new)
        record = state.get(ORIGIN)
        assert record is not None and record.pending == new.pending
    assert [p.size for p in record.pending] == list(range(5, 21))
    state.set_next_entry(ORIGIN, 700)
    state.set_next_entry(ORIGIN, 600)  # never lowered
    assert state.get(ORIGIN).next_entry == 700  # type: ignore[union-attr]
    assert state.set_mirror(CosignedCheckpoint(ORIGIN, 512, EMPTY_ROOT, b"a"))
    assert not state.set_mirror(CosignedCheckpoint(ORIGIN, 300, EMPTY_ROOT, b"b"))  # no rewind
    assert state.set_mirror(CosignedCheckpoint(ORIGIN, 512, EMPTY_ROOT, b"c"))  # refreshed
    state.set_min_index(ORIGIN, 256)
    record = state.get(ORIGIN)
    assert record is not None and record.mirror is not None
    assert (record.mirror.note, record.min_index) == (b"c", 256)


@pytest.fixture
def bucket(endpoint: str) -> str:
    boto3 = pytest.importorskip("boto3")
    name = f"overt-mirror-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


def test_a_mirror_with_its_copies_in_a_bucket_and_its_state_in_postgresql(
    tmp_path: Path, postgres: PostgresSchema, endpoint: str, bucket: str
) -> None:
    log = make_log(tmp_path / "log", 600)
    log.close()
    tiles = f"s3://{bucket}/mirror?endpoint={endpoint}"
    mirror = MirrorUnderTest(
        tmp_path / "mirror", tmp_path / "log", tiles=tiles, db=_pg_url(postgres)
    )
    with mirror.serve(), mirror.pusher() as pusher:
        assert pusher.push().size == 600
    copy = open_tiles(prefixed_tiles_url(tiles, ORIGIN))
    log_key = parse_vkey((tmp_path / "log" / "log.vkey").read_text().strip())
    assert verify_log(copy, log_key).checkpoint.checkpoint.size == 600
    assert not (tmp_path / "mirror" / "tiles").exists()
