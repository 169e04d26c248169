"""What a monitor check reports about one entry: :class:`Alert`.

A leaf module (it imports nothing from overt), so that checks living in other
packages (:mod:`overt.rules.watch`) can return alerts without importing the
check registry that imports them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Alert"]


@dataclass(frozen=True)
class Alert:
    """What a check found wrong with the entry at ``index``."""

    check: str
    index: int
    message: str
