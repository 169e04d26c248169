"""overt's benchmark harness (``make bench``).

Each ``bench/bench_<topic>.py`` module exposes ``run(quick: bool) -> list[Result]``.
``python -m bench [topic ...] [--quick]`` runs them and writes the figures to
``bench/results/<topic>.json`` and the one speed table, in ``docs/speed.md``
(``python -m bench --table`` rewrites it from the results alone).
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (for servers the benches start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Result:
    """One measured figure, beside the target the issue names (if any)."""

    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
