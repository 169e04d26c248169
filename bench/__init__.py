"""overt's benchmark harness (``make bench``).

Each ``bench/bench_<topic>.py`` module exposes ``run(quick: bool) -> list[Result]``.
``python -m bench [topic ...] [--quick]`` runs them and writes the figures to
``bench/results/<topic>.json`` and the one speed table, in ``docs/speed.md``
(``python -m bench --table`` rewrites it from the results alone).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now (for servers the benches start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def settle_disk(directory: Path, budget: float = 120.0) -> float:
    """Wait (at most ``budget`` seconds) until creating files in ``directory`` costs what it
    costs on a disk where nothing was mass-deleted lately; returns the seconds waited.

    ext4 without a journal (the benchmark machine's) skips, on every new inode, each inode
    freed in the last minute or so in the directory's block group: right after an earlier
    topic deleted its 10,000 files, a new file costs 0.2-1 ms of system time instead of
    ~20 us (docs/log.md#speed), which would measure that topic's cleanup, not this one.
    Probes with 1,000 empty files (kept until the directory is removed: deleting them would
    add to what is being waited out) every 10 s, after a sync.
    """
    waited = 0.0
    for attempt in range(1000):
        probe = directory / f".settle-{attempt}"
        probe.mkdir(parents=True)
        before = os.times().system
        for i in range(1000):
            os.close(os.open(probe / str(i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        if (os.times().system - before) / 1000 < 100e-6 or waited >= budget:
            return waited
        os.sync()
        time.sleep(10.0)
        waited += 10.0
    return waited


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
