"""Worker processes for the native rule parsers: a crash or hang there is a finding, not ours.

yaramod and yara-x are C++ and Rust libraries fed with untrusted text; a rule
file can crash them (a condition nested 30,000 deep overflows yaramod's stack)
or keep them busy. :func:`run` hands the files to persistent worker processes
(:mod:`overt.rules._worker`, started as ``python -I``), each limited in address
space (``RLIMIT_AS``), CPU time (``RLIMIT_CPU``) and, from here, wall-clock
time. When a worker dies, times out or answers nonsense, it is replaced and
its files are split in halves and retried until the one file that does it is
alone: that file gets the failure as its result (the auditor reports it as
``unauditable``); every other file is still processed.

Replies are JSON, decoded and type-checked by the caller: a worker that a
hostile file took over can lie about that bundle, not run code here.

The pool lives as long as the process (the monitor audits bundle after bundle)
and is shared by threads one call at a time; at most :data:`WORKERS` workers.

Memory: a file of :data:`HEAVY_BYTES` or more is a call of its own, and at most
one such call runs at a time while the other workers take the small files. The
audit's peak is the sum of the workers' resident sets, and yaramod's parse and
yara-x's compile of a 1 MB rule file each take ~40 MB: two of them at once were
most of it. A worker left larger than :data:`RECYCLE_BYTES` by a call is stopped, and a
new one started when needed: what a large file leaves in a heap counts in every later call.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from overt.rules.limits import DEFAULT_LIMITS, Limits

# The worker's exit statuses (overt.rules._worker), spelled here so that the caller does
# not import the parsers.
EXIT_MEMORY = 3
EXIT_RECURSION = 4

__all__ = ["RECYCLE_BYTES", "WORKERS", "Outcome", "close", "run"]

#: Worker processes at most (the machine's cores, up to 2).
WORKERS = min(2, len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else 1
#: A file this large is sent alone, and never while another worker holds one.
HEAVY_BYTES = 256 * 1024
#: A worker larger than this after a call is stopped rather than kept: what a large
#: file left in its heap (Python's arenas, the native parsers' pages) would otherwise
#: count in every later call (workers grew from 62 to ~130 MB over the corpora and
#: Yara-Rules). A new one starts in ~0.1 CPU-s; the corpora and Yara-Rules together take
#: ~7 (a peak of 279-282 MB; 279-293 with a bound of 96 MB, 317 with none).
RECYCLE_BYTES = 88 * 1024**2
#: A reply larger than this is a misbehaving worker.
_MAX_REPLY = 1024**3
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from overt.rules._worker import main; main()"
)


class _WorkerFailedError(Exception):
    """A worker died, timed out or broke the protocol."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Outcome:
    """The replies of the worker calls, and the files no worker could process."""

    replies: list[dict[str, Any]]
    failed: dict[str, str]  # path -> why (crash, time-out, ...)


class _Worker:
    def __init__(self, memory: int) -> None:
        self.memory = memory
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, _ROOT, str(memory)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd="/",
            close_fds=True,
            # Nothing of the caller's environment (a log token in $OVERT_LOG_TOKEN) is
            # handed to a process that parses hostile input.
            env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"},
        )
        self.buf = bytearray()

    def send(self, payload: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(len(payload).to_bytes(8, "big") + payload)
            self.proc.stdin.flush()
        except OSError as err:
            raise _WorkerFailedError(self.why_dead() or f"worker unreachable: {err}") from err

    def fileno(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def pump(self) -> bytes | None:
        """Read what is available; the reply once it is complete."""
        chunk = os.read(self.fileno(), 1 << 20)
        if not chunk:
            raise _WorkerFailedError(self.why_dead() or "worker closed its output")
        self.buf += chunk
        if len(self.buf) < 8:
            return None
        size = int.from_bytes(self.buf[:8], "big")
        if size > _MAX_REPLY:
            raise _WorkerFailedError(f"worker reply of {size} bytes")
        if len(self.buf) < 8 + size:
            return None
        body = bytes(self.buf[8 : 8 + size])
        del self.buf[: 8 + size]
        return body

    def why_dead(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return ""
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            what = {
                "SIGSEGV": "crashed (SIGSEGV)",
                "SIGXCPU": "ran out of CPU time (SIGXCPU)",
                "SIGKILL": "was killed (SIGKILL, out of memory?)",
                "SIGABRT": "aborted (SIGABRT, out of memory?)",
            }.get(name, f"died of {name}")
            return f"the parser worker {what}"
        if code == EXIT_MEMORY:
            return "the parser worker ran out of memory (RLIMIT_AS)"
        if code == EXIT_RECURSION:
            return "the parser worker recursed too deep"
        return f"the parser worker exited with status {code}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for fh in (self.proc.stdin, self.proc.stdout):
            if fh is not None:
                with contextlib.suppress(OSError):
                    fh.close()


class _Pool:
    def __init__(self) -> None:
        self.idle: list[_Worker] = []
        self.pid = os.getpid()
        self.lock = threading.Lock()

    def take(self, memory: int) -> _Worker:
        if self.pid != os.getpid():  # a forked child: the workers belong to the parent
            self.idle, self.pid = [], os.getpid()
        while self.idle:
            w = self.idle.pop()
            if w.memory == memory and w.proc.poll() is None:
                return w
            w.kill()
        return _Worker(memory)

    def close(self) -> None:
        for w in self.idle:
            w.kill()
        self.idle = []


_POOL = _Pool()
atexit.register(_POOL.close)


def close() -> None:
    """Stops the idle workers (they are started again on the next :func:`run`); their
    CPU time then shows in ``RUSAGE_CHILDREN``, as ``make bench`` counts it."""
    with _POOL.lock:
        _POOL.close()


@dataclass
class _Job:
    files: list[tuple[str, str]]
    worker: _Worker | None = None
    deadline: float = 0.0
    budget: float = 0.0
    heavy: bool = False


def _budget(files: Sequence[tuple[str, str]], limits: Limits) -> float:
    size = sum(len(t) for _p, t in files)
    return limits.seconds + limits.seconds_per_mib * size / 1024**2


def run(
    request: dict[str, Any],
    files: Sequence[tuple[str, str]],
    *,
    chunks: int = 1,
    limits: Limits = DEFAULT_LIMITS,
) -> Outcome:
    """Send ``request`` plus a share of ``files`` (``(path, text)``) to the workers.

    ``files`` are split into ``chunks`` calls, run on up to :data:`WORKERS`
    workers at once; with more than one chunk, each file of :data:`HEAVY_BYTES`
    or more is a call of its own, and only one of those runs at a time. Never
    raises for what a worker does.
    """
    todo = _jobs(files, chunks)
    out = Outcome([], {})
    running: list[_Job] = []
    with _POOL.lock:
        try:
            while todo or running:
                while len(running) < WORKERS:
                    job = _next(todo, running)
                    if job is None:
                        break
                    _start(job, request, limits)
                    if job.worker is None:
                        _failed(job, "the parser worker could not start", todo, out)
                    else:
                        running.append(job)
                _wait(running, todo, out)
        finally:
            for job in running:
                if job.worker is not None:
                    job.worker.kill()
    return out


def _jobs(files: Sequence[tuple[str, str]], chunks: int) -> list[_Job]:
    """The calls for ``files``: the heavy files first, one each (largest first), then
    the others in ``chunks`` calls, big and small files mixed in each."""
    ordered = sorted(files, key=lambda f: -len(f[1]))
    n = max(1, min(chunks, len(ordered)))
    if n == 1:
        return [_Job(ordered)] if ordered else []
    heavy = [_Job([f], heavy=True) for f in ordered if len(f[1]) >= HEAVY_BYTES]
    light = ordered[len(heavy) :]
    n = max(1, min(chunks, len(light)))
    return heavy + [_Job(light[i::n]) for i in range(n) if light[i::n]]


def _next(todo: list[_Job], running: list[_Job]) -> _Job | None:
    """The next call to start: the first one in ``todo``, but never a second heavy one."""
    busy = any(j.heavy for j in running)
    for i, job in enumerate(todo):
        if not (job.heavy and busy):
            return todo.pop(i)
    return None


def _start(job: _Job, request: dict[str, Any], limits: Limits) -> None:
    budget = _budget(job.files, limits)
    payload = json.dumps(
        {**request, "cpu_seconds": budget, "files": job.files}, separators=(",", ":")
    ).encode("utf-8", "surrogatepass")
    for _attempt in range(2):  # an idle worker may have died since its last call
        try:
            worker = _POOL.take(limits.memory_bytes)
        except OSError:
            return
        try:
            worker.send(payload)
        except _WorkerFailedError:
            worker.kill()
            continue
        job.worker, job.deadline, job.budget = worker, time.monotonic() + budget, budget
        return


def _resident(pid: int) -> int:
    """Resident bytes of a process (0 where /proc cannot tell)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _failed(job: _Job, why: str, todo: list[_Job], out: Outcome) -> None:
    if len(job.files) > 1:
        half = len(job.files) // 2
        todo[:0] = [_Job(job.files[:half]), _Job(job.files[half:])]
    else:
        out.failed[job.files[0][0]] = why


def _wait(running: list[_Job], todo: list[_Job], out: Outcome) -> None:
    if not running:
        return
    now = time.monotonic()
    timeout = max(0.0, min(j.deadline for j in running) - now)
    by_fd = {j.worker.fileno(): j for j in running if j.worker is not None}
    ready, _, _ = select.select(list(by_fd), [], [], timeout)
    for fd in ready:
        job = by_fd[fd]
        assert job.worker is not None
        try:
            body = job.worker.pump()
            if body is None:
                continue
            reply = json.loads(body)
            if not isinstance(reply, dict):
                raise _WorkerFailedError("the parser worker sent a malformed reply")
        except (_WorkerFailedError, ValueError, RecursionError, OSError) as err:
            why = (
                err.reason
                if isinstance(err, _WorkerFailedError)
                else "the parser worker broke protocol"
            )
            job.worker.kill()
            running.remove(job)
            _failed(job, why, todo, out)
            continue
        running.remove(job)
        if _resident(job.worker.proc.pid) > RECYCLE_BYTES:
            job.worker.kill()
        else:
            _POOL.idle.append(job.worker)
        out.replies.append(reply)
    now = time.monotonic()
    for job in [j for j in running if j.deadline <= now]:
        assert job.worker is not None
        job.worker.kill()
        running.remove(job)
        _failed(job, f"the parser worker timed out ({job.budget:.0f} s)", todo, out)
