"""The error tree drawn in ``overt.errors`` is the tree in the code, and names are unique."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import overt
import overt.errors
from overt.errors import OvertError

_TREE_LINE = re.compile(r"(?P<indent>[ │]*)(?:[├└]── )?(?P<name>[A-Z][A-Za-z]*Error)\b")

#: Class names still shared by two modules (not exceptions). Left as they are because
#: each pair lives in separate domains' public APIs; do not add to this list.
_KNOWN_SHARED_NAMES = {"Bundle", "Event", "Severity", "Signature", "Submission"}


def _drawn_tree() -> dict[str, str | None]:
    """``{class name: drawn parent name}`` from the docstring of ``overt.errors``."""
    doc = overt.errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        m = _TREE_LINE.match(line)
        assert m, f"unparsable tree line {line!r}"
        depth = m.start("name")
        while stack and stack[-1][0] >= depth:
            stack.pop()
        name = m.group("name")
        assert name not in parents, f"{name} drawn twice"
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    return parents


def _all_classes() -> list[type]:
    found: dict[tuple[str, str], type] = {}
    for info in pkgutil.walk_packages(overt.__path__, "overt."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and value.__module__ == info.name:
                found[(value.__module__, value.__qualname__)] = value
    return list(found.values())


def _exceptions() -> list[type[BaseException]]:
    return [
        c for c in _all_classes() if issubclass(c, BaseException) and not c.__name__.startswith("_")
    ]


def test_every_exception_in_overt_is_an_overt_error() -> None:
    foreign = [
        f"{c.__module__}.{c.__name__}" for c in _exceptions() if not issubclass(c, OvertError)
    ]
    assert not foreign, f"not OvertError subclasses: {foreign}"


def test_the_drawn_tree_is_the_class_tree() -> None:
    drawn = _drawn_tree()
    assert drawn["OvertError"] is None
    classes = {c.__name__: c for c in _exceptions() if issubclass(c, OvertError)}
    missing = sorted(set(classes) - set(drawn))
    assert not missing, f"exceptions missing from the tree in overt/errors.py: {missing}"
    stale = sorted(set(drawn) - set(classes))
    assert not stale, f"the tree in overt/errors.py names classes that do not exist: {stale}"
    for name, cls in classes.items():
        if cls is OvertError:
            continue
        actual = next(b for b in cls.__bases__ if issubclass(b, OvertError))
        assert drawn[name] == actual.__name__, (
            f"{name} is drawn under {drawn[name]} but derives from {actual.__name__}"
        )


def test_class_names_are_unique() -> None:
    seen: dict[str, list[str]] = {}
    for c in _all_classes():
        if not c.__name__.startswith("_"):
            seen.setdefault(c.__name__, []).append(c.__module__)
    shared = {n: m for n, m in seen.items() if len(m) > 1 and n not in _KNOWN_SHARED_NAMES}
    assert not shared, f"one class name in several modules: {shared}"
    assert len(seen["RollbackError"]) == 1 and len(seen["WitnessState"]) == 1
