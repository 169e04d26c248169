"""The transparency-dev/merkle test vectors (RFC 6962 / RFC 9162), in ``tests/data``.

``vectors/rfc6962/{inclusion,consistency}/**/*.json`` each hold one proof and whether verifying
it must fail (``wantErr``): happy paths, and proofs with a flipped bit, an extra or missing hash,
garbage before or after, wrong sizes, roots or leaves. ``constants.go.txt`` holds the leaf
inputs of those trees with every node, root and compact range hash.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from overt.errors import ProofError
from overt.formats.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemoryTree,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parent / "data" / "vectors" / "rfc6962"


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


def _b64(s: str) -> bytes:
    return base64.b64decode(s, validate=True)


def _proof(doc: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in doc["proof"] or []]


def test_the_vectors_are_all_there(reference: Path) -> None:
    # Guards against a silent skip: the parametrized lists below are built at import time.
    assert (reference / "vectors" / "rfc6962") == VECTORS
    assert len(_files("inclusion")) == 98
    assert len(_files("consistency")) == 98


@pytest.mark.parametrize("path", _files("inclusion"), ids=_id)
def test_inclusion_vector(path: Path) -> None:
    doc = json.loads(path.read_text())
    args = (doc["leafIdx"], doc["treeSize"], _proof(doc), _b64(doc["root"]))
    if doc["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(_b64(doc["leafHash"]), *args)
    else:
        verify_inclusion(_b64(doc["leafHash"]), *args)


@pytest.mark.parametrize("path", _files("consistency"), ids=_id)
def test_consistency_vector(path: Path) -> None:
    doc = json.loads(path.read_text())
    args = (doc["size1"], doc["size2"], _b64(doc["root1"]), _b64(doc["root2"]), _proof(doc))
    if doc["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def _go_block(source: str, func: str) -> str:
    start = source.index(f"func {func}()")
    return source[start : source.index("\n}\n", start)]


def _hexes(block: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in re.findall(r'hd\("([0-9a-f]*)"\)', block)]


@pytest.fixture(scope="module")
def constants() -> dict[str, Any]:
    source = (VECTORS / "constants.go.txt").read_text()
    nodes_block = _go_block(source, "NodeHashes")
    levels = [_hexes(b) for b in nodes_block.split("}, {")]
    compact = [
        [levels[int(a)][int(b)] for a, b in re.findall(r"nh\[(\d)\]\[(\d)\]", line)]
        for line in _go_block(source, "CompactTrees").splitlines()
        if line.strip().startswith(("{", "nil"))
    ]
    return {
        "leaves": _hexes(_go_block(source, "LeafInputs")),
        "nodes": levels,
        "roots": [EMPTY_ROOT, *_hexes(_go_block(source, "RootHashes"))],
        "compact": compact,
        "empty": _hexes(_go_block(source, "EmptyRootHash"))[0],
    }


def test_constants_parsed(constants: dict[str, Any]) -> None:
    assert len(constants["leaves"]) == 8
    assert [len(level) for level in constants["nodes"]] == [8, 4, 2, 1]
    assert len(constants["roots"]) == 9
    assert len(constants["compact"]) == 9


def test_empty_root(constants: dict[str, Any]) -> None:
    assert constants["empty"] == EMPTY_ROOT == root_hash([]) == MemoryTree().root()
    assert CompactRange().root() == EMPTY_ROOT


def test_leaf_and_node_hashes(constants: dict[str, Any]) -> None:
    nodes = constants["nodes"]
    assert [leaf_hash(d) for d in constants["leaves"]] == nodes[0]
    for h in range(1, 4):
        below = nodes[h - 1]
        assert [node_hash(below[2 * i], below[2 * i + 1]) for i in range(len(nodes[h]))] == nodes[h]


def test_roots_of_every_prefix(constants: dict[str, Any]) -> None:
    leaves = [leaf_hash(d) for d in constants["leaves"]]
    tree = MemoryTree(leaves)
    for size, want in enumerate(constants["roots"]):
        assert root_hash(leaves[:size]) == want
        assert tree.root(size) == want


def test_compact_ranges_of_every_prefix(constants: dict[str, Any]) -> None:
    leaves = [leaf_hash(d) for d in constants["leaves"]]
    cr = CompactRange()
    for size, want in enumerate(constants["compact"]):
        assert cr.size == size
        assert cr.hashes == want
        assert cr.root() == constants["roots"][size]
        if size < len(leaves):
            cr.append(leaves[size])
