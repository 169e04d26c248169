"""CycloneDX 1.6 SBOMs of a Python project or an installed environment.

:func:`make_sbom` describes either

- a **project** (a directory holding ``pyproject.toml``): the root component is the
  project (``[project]`` name and version), its components the distributions its
  dependencies resolve to in the running Python environment, transitively (markers
  evaluated for this interpreter; a dependency that is not installed is listed without
  a version), or
- an **environment** (a virtual environment's directory, or a ``site-packages``
  directory): every distribution installed in it.

Each component is a ``library`` with its PyPI package URL (``pkg:pypi/NAME@VERSION``,
the name normalized as PEP 503 says) as its ``bom-ref``, plus the dependency graph. The
output is built with cyclonedx-python-lib and validated (:func:`validate_sbom`) against
the CycloneDX 1.6 JSON schema that library ships. ``SOURCE_DATE_EPOCH``, when set, is
the SBOM's timestamp and seeds its serial number, so the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from overt.sbom.errors import SbomError

__all__ = ["make_sbom", "normalize", "validate_sbom"]

_NORMALIZE = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """A PyPI project name as PEP 503 normalizes it (``Foo_Bar`` -> ``foo-bar``)."""
    return _NORMALIZE.sub("-", name).lower()


def _site_packages(path: Path) -> list[str]:
    if path.name == "site-packages":
        return [str(path)]
    found = sorted(str(p) for p in path.glob("lib/python3*/site-packages"))
    found += sorted(str(p) for p in path.glob("Lib/site-packages"))
    return found


def _dists(paths: list[str] | None) -> dict[str, metadata.Distribution]:
    out: dict[str, metadata.Distribution] = {}
    found: Iterable[metadata.Distribution] = (
        metadata.distributions(path=paths) if paths is not None else metadata.distributions()
    )
    for dist in found:
        name = dist.metadata["Name"]
        if name:
            out.setdefault(normalize(name), dist)
    return out


def _requires(dist: metadata.Distribution) -> list[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for text in dist.requires or []:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(normalize(req.name))
    return names


def make_sbom(target: Path) -> bytes:
    """The CycloneDX 1.6 JSON SBOM of a project directory or an environment (see above).

    Raises:
        SbomError: neither a project nor an environment, an unreadable ``pyproject.toml``,
            or (a bug) an SBOM that does not validate.
    """
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL
    from packaging.requirements import InvalidRequirement, Requirement

    pyproject = target / "pyproject.toml"
    sites = _site_packages(target)
    if pyproject.is_file():
        try:
            project = tomllib.loads(pyproject.read_text("utf-8"))["project"]
            root_name, root_version = str(project["name"]), str(project.get("version", "0"))
            wanted = [normalize(Requirement(r).name) for r in project.get("dependencies", [])]
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError) as err:
            raise SbomError(f"cannot read the project of {pyproject}: {err}") from err
        except InvalidRequirement as err:
            raise SbomError(f"{pyproject}: a dependency is not a requirement: {err}") from err
        dists = _dists(None)
        root_type = ComponentType.APPLICATION
    elif sites:
        dists = _dists(sites)
        wanted = sorted(dists)
        root_name, root_version = target.resolve().name, "0"
        root_type = ComponentType.PLATFORM
    else:
        raise SbomError(
            f"{target} is neither a Python project (no pyproject.toml) nor an environment"
            " (no site-packages)"
        )

    def ref(name: str) -> str:
        dist = dists.get(name)
        version = dist.version if dist is not None else None
        return str(PackageURL("pypi", None, name, version))

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    seed = f"{root_name}@{root_version}:{epoch}"
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, seed) if epoch else None)
    if epoch is not None and epoch.isdigit():
        bom.metadata.timestamp = datetime.fromtimestamp(int(epoch), UTC)
    root = Component(
        name=root_name, version=root_version, type=root_type, bom_ref=f"{root_name}@{root_version}"
    )
    bom.metadata.component = root
    components: dict[str, Component] = {}
    queue = list(dict.fromkeys(wanted))
    while queue:
        name = queue.pop(0)
        if name in components:
            continue
        dist = dists.get(name)
        version = dist.version if dist is not None else None
        components[name] = Component(
            name=name,
            version=version,
            type=ComponentType.LIBRARY,
            purl=PackageURL("pypi", None, name, version),
            bom_ref=ref(name),
        )
        if dist is not None:
            queue += [n for n in _requires(dist) if n not in components]
    for component in components.values():
        bom.components.add(component)
    bom.register_dependency(root, [components[n] for n in dict.fromkeys(wanted)])
    for name, component in components.items():
        dist = dists.get(name)
        deps = [components[n] for n in _requires(dist) if n in components] if dist else []
        bom.register_dependency(component, deps)
    data = JsonV1Dot6(bom).output_as_string(indent=2).encode() + b"\n"
    validate_sbom(data)
    return data


def validate_sbom(data: bytes) -> None:
    """Check ``data`` against the CycloneDX 1.6 JSON schema shipped with cyclonedx-python-lib.

    Raises:
        SbomError: not JSON, or not valid CycloneDX 1.6 (the first schema error).
    """
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    try:
        json.loads(data)
        error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise SbomError(f"not a JSON SBOM: {err}") from err
    if error is not None:
        raise SbomError(f"not a valid CycloneDX 1.6 SBOM: {str(error)[:300]}")
