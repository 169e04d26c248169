"""The pure integration step and the checkpoint compare-and-swap (the storage seam)."""

from __future__ import annotations

from pathlib import Path

import pytest

from overt.errors import LogError, NotFoundError
from overt.formats import merkle, tiles
from overt.log import backend, integration
from overt.log.backend import CheckpointConflictError
from overt.log.fs import CheckpointFile
from overt.log.integration import EMPTY_EDGE, Edge, integrate, root_of
from overt.log.log import Log


def _entries(start: int, count: int) -> list[bytes]:
    return [b"entry %d" % i for i in range(start, start + count)]


@pytest.mark.parametrize("batches", [[1], [3, 5], [255, 1, 1], [256, 256, 1], [300, 70000 - 300]])
def test_integrated_root_and_tiles_match_the_merkle_tree(batches: list[int]) -> None:
    """Whatever the batch split, the edge's root is RFC 6962's and every tile is the tree's."""
    edge = EMPTY_EDGE
    objects: dict[str, bytes] = {}
    leaves: list[bytes] = []
    for count in batches:
        entries = _entries(edge.size, count)
        hashes = [merkle.leaf_hash(x) for x in entries]
        step = integrate(edge, entries, hashes)
        leaves += hashes
        assert step.edge.size == len(leaves)
        assert step.root == merkle.root_hash(leaves)
        objects.update(step.writes)
        edge = step.edge
    size = edge.size

    def get_tile(level: int, index: int, width: int) -> bytes:
        return objects[tiles.tile_path(level, index, width)]

    assert tiles.root_from_tiles(get_tile, size) == merkle.root_hash(leaves)
    last = (size - 1) // tiles.TILE_WIDTH
    bundle = objects[tiles.entries_path(last, size - last * tiles.TILE_WIDTH)]
    assert tiles.parse_entry_bundle(bundle)[-1] == b"entry %d" % (size - 1)


def test_integration_does_not_change_the_edge_it_was_given() -> None:
    entries = _entries(0, 3)
    first = integrate(EMPTY_EDGE, entries, [merkle.leaf_hash(x) for x in entries])
    snapshot = Edge(
        first.edge.size, [list(p) for p in first.edge.partials], list(first.edge.bundle)
    )
    more = _entries(3, 300)
    integrate(first.edge, more, [merkle.leaf_hash(x) for x in more])
    assert first.edge == snapshot
    assert root_of(3, first.edge.partials) == first.root


def test_integrating_nothing_writes_nothing() -> None:
    assert integrate(EMPTY_EDGE, [], []) == (
        [],
        EMPTY_EDGE,
        merkle.EMPTY_ROOT,
    )
    with pytest.raises(ValueError, match="2 entries but 1 leaf hashes"):
        integrate(EMPTY_EDGE, [b"a", b"b"], [merkle.leaf_hash(b"a")])


def test_second_writer_cannot_replace_a_checkpoint_it_did_not_extend(tmp_path: Path) -> None:
    """A fork stopped at the seam: a stale writer's compare-and-swap is refused."""
    path = tmp_path / "checkpoint"
    first = CheckpointFile(path)
    with pytest.raises(NotFoundError):
        first.fetch()
    first.create(b"size 0\n")
    with pytest.raises(LogError, match="already holds"):
        CheckpointFile(path).create(b"other\n")
    first.replace(b"size 0\n", b"size 1\n")
    # A writer that still believes in size 0 (it has not read the file since).
    with pytest.raises(CheckpointConflictError) as caught:
        CheckpointFile(path).replace(b"size 0\n", b"fork\n")
    assert (caught.value.expected, caught.value.found) == (b"size 0\n", b"size 1\n")
    with pytest.raises(CheckpointConflictError):
        first.replace(b"size 0\n", b"fork\n")
    assert path.read_bytes() == b"size 1\n"
    CheckpointFile(path).replace(b"size 1\n", b"size 2\n")
    assert path.read_bytes() == b"size 2\n"


def test_log_refuses_to_sign_over_a_checkpoint_moved_behind_it(tmp_path: Path) -> None:
    """Another writer's checkpoint is never overwritten: the append fails and the log re-reads."""
    with Log.create(tmp_path / "log", "seam.example/log") as log:
        log.add_many([b"a", b"b"])
        assert isinstance(log.checkpoint_lock, CheckpointFile)
        # Simulate another writer: the lock's memory no longer matches what the log signed.
        log.checkpoint_lock._known = b"someone else's checkpoint\n"
        with pytest.raises(CheckpointConflictError):
            log.add_many([b"c"])
        assert log.size == 2
        assert log.add_many([b"c"]) == [2]  # after re-reading the real checkpoint
        assert log.entry(2) == b"c"


def test_exported_members() -> None:
    assert backend.__all__ == [
        "CheckpointConflictError",
        "CheckpointLock",
        "TileBackend",
        "read_edge",
    ]
    assert integration.__all__ == ["EMPTY_EDGE", "Edge", "Integration", "integrate", "root_of"]
