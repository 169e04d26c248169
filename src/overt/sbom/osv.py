"""Match an SBOM's PyPI components against an OSV export, offline.

:func:`load_osv` reads OSV advisories (https://ossf.github.io/osv-schema/) from a folder of
``*.json`` files or a zip of them (OSV's own ``PyPI/all.zip``), each file one advisory,
with size caps. :func:`vulnerable_components` is pure: the SBOM's components with a PyPI
package URL, against the advisories' ``affected`` entries of ecosystem ``PyPI``. A
component is affected when its version is listed in ``versions``, or lies in an
``ECOSYSTEM`` range: from an ``introduced`` event (``"0"``: the first version) up to, not
including, the next ``fixed`` (or up to and including ``last_affected``). Versions are
compared as PEP 440 versions (``packaging``); names as PEP 503 normalizes them. A
withdrawn advisory does not count.

Each advisory has a severity, for the verdicts of :mod:`overt.sbom.verdict`: its
``database_specific.severity`` when it names one (GitHub's ``LOW``, ``MODERATE``,
``HIGH``, ``CRITICAL``), else the worst of its CVSS v3/v4 vectors' ratings (a ``CVSS:3.0``
vector is scored as 3.1, whose metrics it shares), else ``critical``: an advisory whose
severity cannot be shown to be lower counts as the worst (fail closed).
:func:`load_osv_export` also names the export: its SHA-256 (the zip's bytes, or the source-snapshot digest,
:mod:`overt.formats.source_snapshot`, of a folder's ``*.json`` files as regular files) and its date (the newest
``modified`` time of its advisories).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.sbom.errors import SbomError
from overt.sbom.generate import normalize

__all__ = [
    "Advisory",
    "OsvExport",
    "Vulnerable",
    "load_osv",
    "load_osv_export",
    "vulnerable_components",
]

_MAX_FILE = 16 << 20
_MAX_FILES = 500_000


@dataclass(frozen=True)
class Advisory:
    """The parts of an OSV advisory that matching needs."""

    id: str
    affected: tuple[Mapping[str, Any], ...]
    severity: str = "critical"
    modified: str | None = None  # YYYY-MM-DDTHH:MM:SSZ


@dataclass(frozen=True)
class Vulnerable:
    """A component of the SBOM and the advisories that affect its version."""

    name: str
    version: str
    advisories: tuple[str, ...]
    severity: str = "critical"  # the worst of its advisories'


@dataclass(frozen=True)
class OsvExport:
    """An OSV export: its advisories, its SHA-256 and its date (None: no advisory dated)."""

    advisories: tuple[Advisory, ...]
    sha256: str
    date: str | None


_GITHUB_SEVERITY = {"LOW": "low", "MODERATE": "medium", "MEDIUM": "medium", "HIGH": "high"}
_GITHUB_SEVERITY["CRITICAL"] = "critical"
_RANK = ("none", "low", "medium", "high", "critical")


def _severity_of(doc: Mapping[str, Any]) -> str:
    """The advisory's severity (see the module notes); ``critical`` when unknown."""
    specific = doc.get("database_specific")
    if isinstance(specific, dict) and isinstance(specific.get("severity"), str):
        named = _GITHUB_SEVERITY.get(specific["severity"].upper())
        if named is not None:
            return named
    from overt.disclosure.errors import InvalidVectorError
    from overt.disclosure.scoring import score

    found = []
    for s in doc.get("severity", []) if isinstance(doc.get("severity"), list) else []:
        vector = s.get("score") if isinstance(s, dict) else None
        if not isinstance(vector, str):
            continue
        if vector.startswith("CVSS:3.0/"):
            vector = "CVSS:3.1/" + vector[len("CVSS:3.0/") :]
        try:
            found.append(str(score(vector).severity))
        except InvalidVectorError:
            continue
    return max(found, key=_RANK.index) if found else "critical"


def _modified(doc: Mapping[str, Any]) -> str | None:
    value = doc.get("modified")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _advisory(data: bytes, where: str) -> Advisory | None:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise SbomError(f"{where} is not JSON: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise SbomError(f"{where} is not an OSV advisory (no id)")
    if doc.get("withdrawn"):
        return None
    affected = doc.get("affected", [])
    if not isinstance(affected, list):
        raise SbomError(f"{where}: affected is not a list")
    return Advisory(
        doc["id"],
        tuple(a for a in affected if isinstance(a, dict)),
        _severity_of(doc),
        _modified(doc),
    )


def load_osv(path: Path) -> list[Advisory]:
    """The advisories in a folder of OSV JSON files or a zip of them.

    Raises:
        SbomError: unreadable, not JSON, too large, or an entry that is not an advisory.
    """
    out: list[Advisory] = []
    try:
        if path.is_dir():
            files = sorted(path.rglob("*.json"))
            if len(files) > _MAX_FILES:
                raise SbomError(f"{path} holds more than {_MAX_FILES} files")
            for f in files:
                if f.stat().st_size > _MAX_FILE:
                    raise SbomError(f"{f} is larger than {_MAX_FILE} bytes")
                adv = _advisory(f.read_bytes(), str(f))
                if adv is not None:
                    out.append(adv)
            return out
        with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as z:
            infos = [i for i in z.infolist() if i.filename.endswith(".json")]
            if len(infos) > _MAX_FILES:
                raise SbomError(f"{path} holds more than {_MAX_FILES} files")
            for info in infos:
                if info.file_size > _MAX_FILE:
                    raise SbomError(f"{path}:{info.filename} is larger than {_MAX_FILE} bytes")
                adv = _advisory(z.read(info), f"{path}:{info.filename}")
                if adv is not None:
                    out.append(adv)
    except OSError as err:
        raise SbomError(f"cannot read the OSV export {path}: {err}") from err
    except zipfile.BadZipFile as err:
        raise SbomError(f"{path} is neither a folder nor a zip of OSV files: {err}") from err
    return out


def load_osv_export(path: Path) -> OsvExport:
    """:func:`load_osv`, with the export's digest and date (see the module notes).

    Raises:
        SbomError: as :func:`load_osv`; a folder that cannot be snapshot.
    """
    advisories = tuple(load_osv(path))
    try:
        if path.is_dir():
            from overt.errors import FormatError
            from overt.formats.source_snapshot import FileEntry, Snapshot

            files = [
                FileEntry(
                    "100644",
                    hashlib.sha256(f.read_bytes()).hexdigest(),
                    f.relative_to(path).as_posix(),
                )
                for f in path.rglob("*.json")
            ]
            try:
                digest = Snapshot.of(files).digest
            except FormatError as err:
                raise SbomError(f"cannot name the OSV export {path}: {err}") from err
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        raise SbomError(f"cannot read the OSV export {path}: {err}") from err
    dates = [a.modified for a in advisories if a.modified is not None]
    return OsvExport(advisories, digest, max(dates) if dates else None)


def _in_ranges(version: Any, ranges: Iterable[Any]) -> bool:
    from packaging.version import InvalidVersion, Version

    for r in ranges:
        if not isinstance(r, dict) or r.get("type") != "ECOSYSTEM":
            continue
        affected = False
        for event in r.get("events", []):
            if not isinstance(event, dict) or len(event) != 1:
                continue
            ((kind, value),) = event.items()
            try:
                bound = None if value == "0" else Version(str(value))
            except InvalidVersion:
                continue
            if kind == "introduced" and (bound is None or version >= bound):
                affected = True
            elif bound is not None and (
                (kind == "fixed" and version >= bound)
                or (kind == "last_affected" and version > bound)
            ):
                affected = False
        if affected:
            return True
    return False


def vulnerable_components(sbom: bytes, advisories: Sequence[Advisory]) -> list[Vulnerable]:
    """The SBOM's PyPI components that an advisory affects, each with the advisory IDs.

    Raises:
        SbomError: the SBOM is not JSON with a ``components`` list.
    """
    from packaging.version import InvalidVersion, Version

    try:
        doc = json.loads(sbom)
        components = doc.get("components", [])
        if not isinstance(components, list):
            raise TypeError("components is not a list")
    except (ValueError, UnicodeDecodeError, AttributeError, TypeError) as err:
        raise SbomError(f"not a CycloneDX JSON SBOM: {err}") from err
    index: dict[str, list[tuple[Advisory, Mapping[str, Any]]]] = {}
    for adv in advisories:
        for aff in adv.affected:
            pkg = aff.get("package")
            if isinstance(pkg, dict) and pkg.get("ecosystem") == "PyPI" and pkg.get("name"):
                index.setdefault(normalize(str(pkg["name"])), []).append((adv, aff))
    found = []
    for c in components:
        purl = c.get("purl", "") if isinstance(c, dict) else ""
        if not isinstance(purl, str) or not purl.startswith("pkg:pypi/") or "@" not in purl:
            continue
        name, _, version_text = purl[len("pkg:pypi/") :].partition("@")
        name = normalize(name)
        try:
            version = Version(version_text.split("?", 1)[0])
        except InvalidVersion:
            continue
        ids = []
        worst = 0
        for adv, aff in index.get(name, []):
            listed = aff.get("versions", [])
            named = isinstance(listed, list) and (str(version) in listed or version_text in listed)
            if named or _in_ranges(version, aff.get("ranges", [])):
                ids.append(adv.id)
                worst = max(worst, _RANK.index(adv.severity))
        if ids:
            found.append(Vulnerable(name, str(version), tuple(sorted(set(ids))), _RANK[worst]))
    return found
