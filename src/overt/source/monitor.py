"""The monitor's ``source-evidence`` check: releases without their evidence, and mismatches.

``overt monitor --check source-evidence[=KINDS[:GRACE]]`` follows the statements in the log:

- a rebuild summary (SLSA VSA, :mod:`overt.formats.vsa`) that reports a mismatch is an
  alert at once, naming the artifact and where the outputs differ;
- a release or update that, ``GRACE`` entries after it was logged (default 1000), still
  lacks any of ``KINDS`` (a comma list of ``review``, ``rebuild``, ``sbom``; default all
  three) is an alert, once. A release's source is the one its SLSA provenance names
  (``overt publish --source``); a review counts for it when it reviewed that source
  digest, a rebuild when it reproduced the artifact from it, an SBOM when it is about the
  artifact. A release logged without provenance lacks its reviews and rebuilds.

Evidence arrives after a release, so the check waits ``GRACE`` entries before it calls
something missing. It reads what statements claim; it does not judge whose signature is
enough (that is each endpoint's client policy, :mod:`overt.gate.source`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from overt.errors import ConfigError, FormatError
from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, parse_envelope
from overt.formats.slsa_provenance import PROVENANCE_PREDICATE
from overt.formats.source_review import REVIEW_PREDICATE
from overt.formats.statement import parse_statement
from overt.formats.strict import parse_decimal
from overt.formats.vsa import VSA_PREDICATE, Vsa
from overt.monitor.alert import Alert

__all__ = ["KINDS", "SourceEvidenceCheck"]

KINDS = ("review", "rebuild", "sbom")
_CYCLONEDX = "https://cyclonedx.org/bom"


@dataclass
class _Release:
    index: int
    name: str
    source: str | None = None


@dataclass
class SourceEvidenceCheck:
    """See the module notes."""

    kinds: tuple[str, ...] = KINDS
    grace: int = 1000
    name: str = "source-evidence"
    _releases: dict[str, _Release] = field(default_factory=dict)
    _reviewed: set[str] = field(default_factory=set)
    _rebuilt: set[tuple[str, str]] = field(default_factory=set)
    _sboms: set[str] = field(default_factory=set)

    @classmethod
    def from_arg(cls, arg: str | None) -> SourceEvidenceCheck:
        """``KINDS[:GRACE]``. Raises ConfigError."""
        if arg is None:
            return cls()
        kinds_text, _, grace_text = arg.partition(":")
        kinds = tuple(k for k in kinds_text.split(",") if k)
        if not kinds or not set(kinds) <= set(KINDS):
            raise ConfigError(f"source-evidence wants kinds among {', '.join(KINDS)}, not {arg!r}")
        try:
            grace = parse_decimal(grace_text, "grace") if grace_text else 1000
        except FormatError as err:
            raise ConfigError(
                f"source-evidence grace must be a number of entries: {arg!r}"
            ) from err
        return cls(kinds, grace)

    def check(self, index: int, entry: bytes) -> list[Alert]:
        alerts = self._see(index, entry)
        for sha, release in list(self._releases.items()):
            if index - release.index < self.grace:
                continue
            missing = self._missing(sha, release)
            del self._releases[sha]  # reported (or complete) once
            if missing:
                alerts.append(
                    Alert(
                        self.name,
                        release.index,
                        f"release {release.name} (entry {release.index}) still lacks"
                        f" {', '.join(missing)} {self.grace} entries later",
                    )
                )
        return alerts

    def _missing(self, sha: str, release: _Release) -> list[str]:
        missing = []
        if "review" in self.kinds and (
            release.source is None or release.source not in self._reviewed
        ):
            missing.append("reviews" if release.source else "provenance (so reviews)")
        if "rebuild" in self.kinds and (
            release.source is None or (sha, release.source) not in self._rebuilt
        ):
            missing.append("a matching rebuild")
        if "sbom" in self.kinds and sha not in self._sboms:
            missing.append("an SBOM")
        return missing

    def _see(self, index: int, entry: bytes) -> list[Alert]:
        if not entry.startswith(b"{"):
            return []
        try:
            envelope = parse_envelope(entry)
            if envelope.payload_type != PAYLOAD_TYPE_IN_TOTO:
                return []
            statement = parse_statement(envelope.payload)
        except FormatError:
            return []  # not a statement: the dsse-envelope check speaks for malformed ones
        ptype = statement.predicate_type
        subjects = [(s.name, s.sha256) for s in statement.subjects if s.sha256]
        if statement.kind in ("release", "update"):
            for name, sha in subjects:
                self._releases.setdefault(sha, _Release(index, name))
        elif ptype == PROVENANCE_PREDICATE:
            source = (
                statement.predicate.get("buildDefinition", {})
                .get("externalParameters", {})
                .get("source", {})
                .get("digest", {})
                .get("sha256")
            )
            for _, sha in subjects:
                if sha in self._releases and isinstance(source, str):
                    self._releases[sha].source = source
        elif ptype == REVIEW_PREDICATE:
            self._reviewed.update(sha for _, sha in subjects)
        elif ptype == VSA_PREDICATE:
            try:
                vsa = Vsa.from_json(statement.predicate)
            except FormatError:
                return [Alert(self.name, index, f"entry {index} is a malformed rebuild summary")]
            if not vsa.passed:
                names = ", ".join(n for n, _ in subjects)
                return [
                    Alert(
                        self.name,
                        index,
                        f"rebuild mismatch for {names} by {vsa.verifier}:"
                        f" {vsa.difference or 'the output differs'}",
                    )
                ]
            if vsa.source_snapshot is not None:
                self._rebuilt.update((sha, vsa.source_snapshot) for _, sha in subjects)
        elif ptype.startswith(_CYCLONEDX):
            self._sboms.update(sha for _, sha in subjects)
        return []
