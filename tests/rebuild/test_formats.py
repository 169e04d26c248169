"""SLSA VSA v1 and Provenance v1 as overt writes them: round trips and what is refused."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.errors import FormatError
from overt.formats.slsa_provenance import Provenance
from overt.formats.source_snapshot import FileEntry, Snapshot, format_snapshot, parse_snapshot
from overt.formats.vsa import Vsa

VSA = Vsa("https://overt.dev/rebuilder/r1", "2026-11-26T12:00:00Z", "app.whl",
          (("overt:source-snapshot", "ab" * 32),), False, "cd" * 32, "zip member x differs")  # fmt: skip
PROV = Provenance("ab" * 32, "https://ci.example/builder", "12" * 20, "34" * 20)


def test_vsa_and_provenance_round_trip() -> None:
    assert Vsa.from_json(json.loads(json.dumps(VSA.to_json()))) == VSA
    assert Provenance.from_json(json.loads(json.dumps(PROV.to_json()))) == PROV
    assert VSA.source_snapshot == "ab" * 32


def _set(path: list[Any], value: object) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


@pytest.mark.parametrize(
    "mutate",
    [
        _set(["verificationResult"], "MAYBE"),
        _set(["policy", "uri"], "https://example.com/lenient"),
        _set(["timeVerified"], "2026-11-26 12:00:00"),
        _set(["overtRebuild", "outputSha256"], "CD" * 32),
        _set(["inputAttestations", 0, "digest", "sha256"], "ab" * 31),
        _set(["extra"], 1),
        _set(["verifier"], "r1"),
    ],
)
def test_malformed_vsa_is_refused(mutate: Callable[[dict[str, Any]], None]) -> None:
    doc = copy.deepcopy(VSA.to_json())
    mutate(doc)
    with pytest.raises(FormatError):
        Vsa.from_json(doc)


@pytest.mark.parametrize(
    "mutate",
    [
        _set(["buildDefinition", "buildType"], "https://example.com/other"),
        _set(["buildDefinition", "externalParameters", "source", "uri"], "git+https://x"),
        _set(["buildDefinition", "externalParameters", "source", "digest", "sha256"], "00"),
        _set(["runDetails", "builder"], {}),
        _set(["buildDefinition", "resolvedDependencies", 0, "digest", "gitCommit"], "xyz"),
    ],
)
def test_malformed_provenance_is_refused(mutate: Callable[[dict[str, Any]], None]) -> None:
    doc = copy.deepcopy(PROV.to_json())
    mutate(doc)
    with pytest.raises(FormatError):
        Provenance.from_json(doc)


_NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00\n\r\t\x7f"),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", "..") and not any(ord(c) < 32 for c in s))


@given(
    st.dictionaries(
        st.lists(_NAME, min_size=1, max_size=3).map("/".join),
        st.tuples(st.sampled_from(["100644", "100755", "120000"]), st.binary(max_size=8)),
        max_size=12,
    )
)
def test_any_snapshot_round_trips_and_its_digest_is_its_text(
    files: dict[str, tuple[str, bytes]],
) -> None:
    import hashlib

    paths = set(files)
    # A tree has no path below a file: keep only the leaves.
    leaves = {p: v for p, v in files.items() if not any(q.startswith(p + "/") for q in paths)}
    snap = Snapshot.of(
        FileEntry(mode, hashlib.sha256(data).hexdigest(), path)
        for path, (mode, data) in leaves.items()
    )
    text = format_snapshot(snap)
    parsed = parse_snapshot(text)
    assert parsed == snap and format_snapshot(parsed) == text
    assert parsed.digest == hashlib.sha256(text).hexdigest() == snap.digest
