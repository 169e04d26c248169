"""Shared fixtures: where the reference material in ``../shared`` lives."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"reference material not found at {SHARED} (see SOURCES.md)")
    return SHARED
