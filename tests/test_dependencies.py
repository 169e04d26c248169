"""Every runtime dependency pyproject.toml declares is used by the package.

A declared but unused dependency costs every user an install and a supply-chain
risk for nothing (issue 8 found three). A dependency is "used" when ``src/``
imports it, or, for a database driver that SQLAlchemy loads by URL, names it in
a URL scheme.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = "\n".join(p.read_text() for p in sorted((ROOT / "src").rglob("*.py")))

# Distribution name -> how src/ shows that it uses it.
USE = {
    "cryptography": r"^\s*(from|import) cryptography\b",
    "uvicorn": r"^\s*(from|import) uvicorn\b",
    "httpx": r"^\s*(from|import) httpx\b",
    "sqlalchemy": r"^\s*(from|import) sqlalchemy\b",
    "yara-x": r"^\s*(from|import) yara_x\b",
    "yaramod": r"^\s*(from|import) yaramod\b",
    "plyara": r"^\s*(from|import) plyara\b",
    "cvss": r"^\s*(from|import) cvss\b",
    "argon2-cffi": r"^\s*(from|import) argon2\b",
    "jsonschema": r"^\s*(from|import) jsonschema\b",
    "cyclonedx-python-lib": r"^\s*(from|import) cyclonedx\b",
    "packaging": r"^\s*(from|import) packaging\b",
    "jinja2": r"^\s*(from|import) jinja2\b",
    "wordfreq": r"^\s*(from|import) wordfreq\b",
    "alembic": r"^\s*(from|import) alembic\b",
}


def _declared() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[\[<>=!~ ;]", dep, maxsplit=1)[0] for dep in project["dependencies"]]
    return [n.lower() for n in names]


def test_every_declared_dependency_has_a_use_pattern() -> None:
    assert sorted(_declared()) == sorted(USE), "add the new dependency's use pattern to USE"


@pytest.mark.parametrize("name", sorted(USE))
def test_declared_dependency_is_used(name: str) -> None:
    if name not in _declared():
        pytest.skip(f"{name} is no longer declared")
    assert re.search(USE[name], SOURCES, re.MULTILINE), f"{name} is declared but src/ never uses it"
