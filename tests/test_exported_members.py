"""Every public module declares its API in ``__all__`` (httpx's test_exported_members).

A name in ``__all__`` must exist; a public class or function defined in the
module must be in ``__all__`` (or start with an underscore). This keeps the
library surface deliberate: what an updater may import is what is listed.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import overt

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(overt.__path__, "overt.")
    if not any(part.startswith("_") for part in m.name.split("."))
    and not m.name.startswith(("overt.cli", "overt.demo"))
    and not m.ispkg
)


def test_modules_were_found() -> None:
    assert "overt.formats.note" in MODULES and "overt.log.log" in MODULES


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
