"""No import cycles among the format, gate and publishing modules.

A cycle (``formats/note`` importing ``formats/cosignature`` inside a function while
``cosignature`` imports ``note``) makes the layering unreadable and the import
order fragile. Every import counts, at module level or inside a function; only
``if TYPE_CHECKING:`` blocks are ignored (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import overt

SRC = Path(overt.__file__).parent
CHECKED = ("overt.formats", "overt.gate", "overt.publish")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("overt."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("overt"):
                continue
            for alias in node.names:  # "from overt.formats import cosignature" names a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _is_module(sub) else node.module)
    return found


def _graph(checked: tuple[str, ...] = CHECKED) -> dict[str, set[str]]:
    graph = {}
    for path in SRC.rglob("*.py"):
        name = _module_name(path)
        if name.startswith(checked) and not name.endswith("__init__"):
            graph[name] = {m for m in _imports(path) if m.startswith(checked)}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt not in graph:
                continue  # package __init__ re-exports are not edges between modules
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_among_formats_gate_and_publish() -> None:
    graph = _graph()
    assert "overt.formats.note" in graph
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_in_the_log() -> None:
    """``log/log`` <-> ``log/witnessing`` was one: witnessing needs only a narrow protocol."""
    graph = _graph(("overt.log",))
    assert "overt.log.witnessing" in graph["overt.log.log"]
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_note_does_not_import_the_formats_built_on_it() -> None:
    below = {"overt.formats.strict", "overt.formats.keytypes"}  # the key-type registry
    assert not {m for m in _graph()["overt.formats.note"] if m not in below}
    assert not {m for m in _graph()["overt.formats.keytypes"] if m != "overt.formats.strict"}


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
