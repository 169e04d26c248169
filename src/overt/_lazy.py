"""Lazy re-exports for the packages' ``__init__`` files (PEP 562).

A package lists its public names in ``__all__`` and imports them for the type checker
only; at run time :func:`lazy_exports` gives it a module ``__getattr__`` that imports the
defining submodule on first use. ``import overt.log`` therefore costs nothing, and
``overt --help`` does not pay for SQLAlchemy, httpx, uvicorn or the YARA parsers.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, re-exporting ``{module: [name, ...]}``.

    Raises (from the returned ``__getattr__``):
        AttributeError: the name is not one of the package's exports.
    """
    where = {name: module for module, names in exports.items() for name in names}

    def getattr_(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return getattr_, dir_
