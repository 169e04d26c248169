"""SLSA Provenance v1, as ``overt publish --source`` writes it: which source a release was built from.

Spec: https://slsa.dev/spec/v1.0/provenance. An in-toto statement about the released
artifact, predicate type ``https://slsa.dev/provenance/v1``::

    {"buildDefinition": {
        "buildType": "https://overt.dev/build/v1",
        "externalParameters": {"source": {"uri": "overt:source-snapshot",
                                          "digest": {"sha256": SOURCE_DIGEST}}},
        "internalParameters": {},
        "resolvedDependencies": [{"uri": "overt:source-snapshot",
                                  "digest": {"sha256": SOURCE_DIGEST,
                                             "gitCommit": HEX40, "gitTree": HEX40}}]},
     "runDetails": {"builder": {"id": BUILDER_ID}, "metadata": {}}}

``SOURCE_DIGEST`` is the source digest of an overt source snapshot
(:mod:`overt.formats.source_snapshot`); ``gitCommit``/``gitTree`` are present for a git
snapshot. overt's build type says: the artifact is the output of building exactly the
files of that snapshot; the snapshot itself is logged beside it (its statement carries
the manifest), so a gate can measure the review coverage of the release's source.

Example::

    >>> p = Provenance("ab" * 32, "https://ci.example/builder", "12" * 20, "34" * 20)
    >>> Provenance.from_json(p.to_json()) == p
    True

Versioning: the predicate type's ``/v1``; overt's build type is versioned by its URI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from overt.errors import FormatError
from overt.formats.strict import json_list, json_members, json_str

__all__ = ["BUILD_TYPE", "PROVENANCE_PREDICATE", "SOURCE_URI", "Provenance"]

PROVENANCE_PREDICATE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://overt.dev/build/v1"
SOURCE_URI = "overt:source-snapshot"
_WHAT = "SLSA provenance"
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Provenance:
    """The source digest a release was built from, by which builder."""

    source_sha256: str
    builder_id: str
    git_commit: str | None = None
    git_tree: str | None = None

    def __post_init__(self) -> None:
        if not _HEX64.fullmatch(self.source_sha256):
            raise FormatError(
                _WHAT, "the source digest is not 64 lowercase hex", self.source_sha256
            )
        for value in (self.git_commit, self.git_tree):
            if value is not None and not _HEX40.fullmatch(value):
                raise FormatError(_WHAT, "a git id is not 40 lowercase hex", value)

    def to_json(self) -> dict[str, Any]:
        digest: dict[str, str] = {"sha256": self.source_sha256}
        if self.git_commit is not None:
            digest["gitCommit"] = self.git_commit
        if self.git_tree is not None:
            digest["gitTree"] = self.git_tree
        return {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": {"uri": SOURCE_URI, "digest": {"sha256": self.source_sha256}}
                },
                "internalParameters": {},
                "resolvedDependencies": [{"uri": SOURCE_URI, "digest": digest}],
            },
            "runDetails": {"builder": {"id": self.builder_id}, "metadata": {}},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Provenance:
        """Raises FormatError: not overt's build type, or its source missing or malformed."""
        m = json_members(dict(obj), _WHAT, ("buildDefinition", "runDetails"))
        build = json_members(
            m["buildDefinition"],
            _WHAT,
            ("buildType", "externalParameters"),
            ("internalParameters", "resolvedDependencies"),
        )
        if build["buildType"] != BUILD_TYPE:
            raise FormatError(_WHAT, "not overt's build type", str(build["buildType"]))
        source = json_members(build["externalParameters"], _WHAT, ("source",))["source"]
        source = json_members(source, _WHAT, ("uri", "digest"))
        if source["uri"] != SOURCE_URI:
            raise FormatError(
                _WHAT, "the source is not an overt source snapshot", str(source["uri"])
            )
        sha = json_str(
            json_members(source["digest"], _WHAT, ("sha256",))["sha256"], _WHAT, "sha256"
        )
        commit = tree = None
        for dep in json_list(build.get("resolvedDependencies", []), _WHAT, "resolvedDependencies"):
            dep = json_members(dep, _WHAT, ("uri", "digest"))
            digest = json_members(dep["digest"], _WHAT, ("sha256",), ("gitCommit", "gitTree"))
            if dep["uri"] == SOURCE_URI and digest["sha256"] == sha:
                commit, tree = digest.get("gitCommit"), digest.get("gitTree")
        run = json_members(m["runDetails"], _WHAT, ("builder",), ("metadata", "byproducts"))
        builder = json_members(run["builder"], _WHAT, ("id",), ("version", "builderDependencies"))
        return cls(sha, json_str(builder["id"], _WHAT, "builder id", max_len=1024), commit, tree)
