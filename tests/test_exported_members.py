"""Every public module and package declares its API in ``__all__`` (httpx's test_exported_members).

A name in ``__all__`` must exist; a public class or function defined in the
module must be in ``__all__`` (or start with an underscore). This keeps the
library surface deliberate: what an updater may import is what is listed.

Packages re-export a small API lazily (PEP 562, :mod:`overt._lazy`): every name in a
package's ``__all__`` resolves, comes from inside the package, and importing the package
alone loads none of the heavy dependencies (``overt --help`` must start fast).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import overt

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(overt.__path__, "overt.")
    if not any(part.startswith("_") for part in m.name.split("."))
    and not m.name.startswith(("overt.cli", "overt.demo"))
    and not m.ispkg
)


PACKAGES = sorted(
    m.name
    for m in pkgutil.walk_packages(overt.__path__, "overt.")
    if m.ispkg and m.name != "overt.cli"  # the command, not a library: see overt.cli.main
)
HEAVY = ("sqlalchemy", "yaramod", "yara_x", "plyara", "httpx", "uvicorn")


def test_modules_were_found() -> None:
    assert "overt.formats.note" in MODULES and "overt.log.log" in MODULES
    assert {"overt.formats", "overt.log", "overt.rules", "overt.witness"} <= set(PACKAGES)


@pytest.mark.parametrize("name", MODULES)
def test_module_exports_its_public_members(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ lists missing {member}"
    defined = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", None) == name
    }
    missing = defined - set(exported)
    assert not missing, f"{name} defines public {sorted(missing)} outside __all__"


@pytest.mark.parametrize("name", PACKAGES)
def test_package_exports_a_deliberate_api(name: str) -> None:
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported, f"{name} has no __all__: give it a small public API"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    for member in exported:
        value = getattr(package, member)  # resolves (lazily) or raises AttributeError
        assert member in dir(package)
        origin = getattr(value, "__module__", None) or name
        assert origin.startswith(name + ".") or origin == name or not callable(value), (
            f"{name}.{member} comes from {origin}, outside the package"
        )
    with pytest.raises(AttributeError):
        _ = package.no_such_name
    failures, _tests = doctest.testmod(package, verbose=False)
    assert failures == 0, f"the example in {name}'s docstring fails"


def test_the_readme_names_exist() -> None:
    # The library entry points the README and docs/ show (they were AttributeErrors once).
    from overt.log import Log, verify_log

    assert Log.create and Log.open and verify_log


def test_importing_a_package_loads_no_heavy_dependency() -> None:
    code = (
        "import sys\n"
        f"import {', '.join(PACKAGES)}\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"importing the packages loads {run.stdout.strip()}"
