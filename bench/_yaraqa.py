"""yaraQA, the rule-quality peer of ``overt rules audit``, run on the rules bench's corpus.

yaraQA (https://github.com/Neo23x0/yaraQA, Florian Roth) reports YARA rules that are
syntactically correct but dysfunctional or slow: conditions that never match, modifiers that
contradict their string, short atoms, nocase on strings without letters, duplicates. It is
not on PyPI and is not ours: it is neither vendored nor an overt dependency. The bench finds
it in this order:

1. ``$YARAQA_DIR``: a checkout or extracted archive of the repository (``main/core.py``);
2. ``~/.cache/overt/yaraQA-<pin>`` (``$XDG_CACHE_HOME`` respected), filled on first use by
   cloning the repository at :data:`PIN` when the network allows;
3. else the row says "not run" and why, in one line.

It runs in a child process (``python -m bench._yaraqa DIR ROOT...``), so that its CPU time,
memory and global state (a package named ``main``, logging) stay apart from overt's figures.
The child does what ``yaraQA.py -d ROOT...`` does (the default options: every level, no
baseline, performance issues included) with two differences, both forced by its command
line, neither of which changes a check:

- ``read_files`` exits at the first file plyara cannot parse; the child counts such a file
  as refused and goes on, as the cccs-yara row does.
- ``YaraQA()`` always loads ``test/data/react-os-strings.txt.zip`` (ReactOS strings) to time
  every regex string against it with RE2 (issue PI1, the only use of its ``re2`` import);
  it has no option to skip that. When the archive is absent (it is missing from some
  snapshots: GitHub stores it as a large blob), the child replaces the timer with one that
  times nothing, so PI1 cannot be raised, and the row says so.

Its ``re2`` import is Facebook's pyre2 (``fb-re2``, built from git against libre2);
``google-re2`` from PyPI provides the same ``re2.compile(p).match(text, pos)`` that yaraQA
calls and ships wheels, so the ``bench`` extra installs that. ``yara-python``, also in its
requirements, is imported by none of its code and is not installed.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import Result

URL = "https://github.com/Neo23x0/yaraQA"
#: The commit measured (yaraQA 0.11.0, 2025-04-10); a clone is checked out at it.
PIN = "a3aa7a36859045e8de8a308a0c5f360b184ea470"
NAME = "yaraQA (same corpus)"
#: The sample data its regex timer loads (absent from some snapshots).
SAMPLE = Path("test") / "data" / "react-os-strings.txt.zip"
#: The child's one line of results on stdout starts with this.
MARK = "yaraqa-summary "
#: yaraQA's levels, named as its ``-l`` help names them (1=informational, 2=warning,
#: 3=critical); older versions wrote the names ("info", "warning", "error") instead.
LEVELS = {1: "info", 2: "warning", 3: "critical"}
_LEVEL_NAMES = {"info": 1, "informational": 1, "warning": 2, "error": 3, "critical": 3}
ROOT = Path(__file__).resolve().parent.parent


class NotRunError(Exception):
    """yaraQA could not be found or fetched; ``reason`` is the one line the row shows."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Summary:
    """What yaraQA found on a set of rule files, counted."""

    files: int
    refused: int  # files plyara could not parse (yaraQA itself would have stopped there)
    rules: int  # the rules yaraQA analysed
    unhashable: int  # rules left out: its rule hash raises on a string that is not ASCII
    flagged: int  # rules with at least one issue
    levels: dict[str, int]  # issues by level name (LEVELS)
    types: dict[str, int]  # issues by yaraQA's type: logic, performance, resources, style
    ids: dict[str, int]  # issues by yaraQA's check ID (CE1, PA2, ...)
    live_timing: bool  # whether its regex timer (PI1) ran
    peak_mb: float  # the child's peak resident memory

    @property
    def issues(self) -> int:
        return sum(self.levels.values())


def level_name(level: object) -> str:
    """The name of a yaraQA issue level, given as a number (today) or a name (older versions).

    Raises:
        ValueError: a level yaraQA does not define.
    """
    if isinstance(level, int) and not isinstance(level, bool) and level in LEVELS:
        return LEVELS[level]
    if isinstance(level, str) and level.lower() in _LEVEL_NAMES:
        return LEVELS[_LEVEL_NAMES[level.lower()]]
    raise ValueError(f"yaraQA issue level {level!r} is none of {sorted(LEVELS)}")


def count(
    issues: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, int], dict[str, int], dict[str, int], int]:
    """Issues (yaraQA's dicts, as in its JSON output) by level, type and ID, and rules flagged.

    Raises:
        ValueError: an issue without ``rule``, ``id``, ``level`` or ``type``, or an unknown level.
    """
    levels: Counter[str] = Counter({name: 0 for name in LEVELS.values()})
    types: Counter[str] = Counter()
    ids: Counter[str] = Counter()
    rules = set()
    for issue in issues:
        try:
            rule, check, level, kind = issue["rule"], issue["id"], issue["level"], issue["type"]
        except KeyError as e:
            raise ValueError(f"yaraQA issue without {e.args[0]!r}: {dict(issue)!r}") from e
        levels[level_name(level)] += 1
        types[str(kind)] += 1
        ids[str(check)] += 1
        rules.add(str(rule))
    return dict(levels), dict(types.most_common()), dict(ids.most_common()), len(rules)


def parse_summary(stdout: str) -> Summary:
    """The child's summary line (the last line starting with :data:`MARK`) read back.

    Raises:
        NotRunError: the child reported why it could not run yaraQA (``{"error": ...}``).
        ValueError: no summary line, or one that is not the expected JSON object.
    """
    lines = [line for line in stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        raise ValueError("yaraQA's driver printed no summary line")
    try:
        doc = json.loads(lines[-1].removeprefix(MARK))
    except json.JSONDecodeError as e:
        raise ValueError(f"yaraQA's driver printed a summary that is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError("yaraQA's driver printed a summary that is not a JSON object")
    if "error" in doc:
        raise NotRunError(str(doc["error"]))
    try:
        return Summary(
            files=int(doc["files"]),
            refused=int(doc["refused"]),
            rules=int(doc["rules"]),
            unhashable=int(doc.get("unhashable", 0)),
            flagged=int(doc["flagged"]),
            levels={str(k): int(v) for k, v in doc["levels"].items()},
            types={str(k): int(v) for k, v in doc["types"].items()},
            ids={str(k): int(v) for k, v in doc["ids"].items()},
            live_timing=bool(doc["live_timing"]),
            peak_mb=float(doc["peak_mb"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"yaraQA's driver printed a summary without a valid {e}") from e


def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "overt" / f"yaraQA-{PIN[:12]}"


def _is_yaraqa(path: Path) -> bool:
    return (path / "main" / "core.py").is_file()


def locate(
    environ: Mapping[str, str] | None = None, cache: Path | None = None, url: str = URL
) -> Path:
    """The directory of yaraQA's code: ``$YARAQA_DIR``, else the cache, else a fresh clone.

    Raises:
        NotRunError: ``$YARAQA_DIR`` is not a yaraQA tree, or the clone failed (no network,
            no git, or the pinned commit is gone).
    """
    environ = os.environ if environ is None else environ
    if given := environ.get("YARAQA_DIR"):
        path = Path(given)
        if not _is_yaraqa(path):
            raise NotRunError(f"$YARAQA_DIR={given} holds no yaraQA (main/core.py)")
        return path
    cache = _cache() if cache is None else cache
    if _is_yaraqa(cache):
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".yaraQA-", dir=cache.parent))
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    try:
        steps = (
            (f"cloning {url}", ["git", "clone", "--quiet", "--no-checkout", url, str(tmp)]),
            (f"checking out {PIN[:12]}", ["git", "-C", str(tmp), "checkout", "--quiet", PIN]),
        )
        for step, cmd in steps:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=env, timeout=300, check=False
            )
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
                raise NotRunError(f"$YARAQA_DIR unset and {step} failed: {last}")
        tmp.rename(cache)  # only a complete checkout at the pin is ever found in the cache
    except FileNotFoundError as e:
        raise NotRunError("$YARAQA_DIR unset and git is not installed to clone yaraQA") from e
    except subprocess.TimeoutExpired as e:
        raise NotRunError(f"$YARAQA_DIR unset and cloning {url} took over 300 s") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cache


def version(path: Path) -> str:
    """yaraQA's ``__version__`` as its script states it ("?" if it states none)."""
    try:
        text = (path / "yaraQA.py").read_text("utf-8", errors="replace")
    except OSError:
        return "?"
    found = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    return found[1] if found else "?"


def files(roots: Iterable[Path]) -> list[Path]:
    """The files ``yaraQA.py -d ROOT...`` reads: names containing ``.yar``, every subfolder."""
    found = []
    for root in roots:
        for folder, _, names in os.walk(root):
            found += [Path(folder) / n for n in names if ".yar" in n]
    return sorted(found)


def _drive(yaraqa: Path, roots: list[Path]) -> dict[str, Any]:
    """Run yaraQA on ``roots`` in this process (the child) and count what it found."""
    import logging

    sys.path.insert(0, str(yaraqa))
    logging.basicConfig(level=logging.WARNING)  # its progress lines are INFO
    try:
        import plyara  # type: ignore[import-untyped,unused-ignore]
        from main import core  # type: ignore[import-not-found]
    except ImportError as e:
        hint = " (the bench extra installs google-re2 for it)" if e.name == "re2" else ""
        return {"error": f"yaraQA cannot be imported: {e}{hint}"}
    live = (yaraqa / SAMPLE).is_file()
    if not live:

        class NoLiveTiming:
            """Stands in for its PerformanceTimer when the sample data is absent: times nothing."""

            threshold = float("inf")

            def test_regex_performance(self, regex: str, iterations: int = 5) -> float:
                return 0.0

        core.PerformanceTimer = NoLiveTiming
    rule_sets, refused = [], 0
    paths = files(roots)
    for path in paths:
        # as core.read_files does, but a file it cannot read is counted, not fatal
        try:
            data = path.read_text("utf-8")
            if "rule" not in data:
                continue
            rule_sets.append(plyara.Plyara().parse_string(data))
        except Exception:  # plyara raises several kinds; yaraQA's read_files catches them all too
            refused += 1
    # Its rule hash encodes the strings as ASCII and raises on any other character (a
    # typographic apostrophe in a Yara-Rules string ended the whole run): such a rule is
    # counted and left out, as a file plyara refuses is.
    unhashable = 0
    for rule_set in rule_sets:
        kept = []
        for rule in rule_set:
            try:
                core.calculate_rule_hash(rule)
            except UnicodeEncodeError:
                unhashable += 1
            else:
                kept.append(rule)
        rule_set[:] = kept
    issues = core.YaraQA().analyze_rules(rule_sets)
    levels, types, ids, flagged = count(issues)
    return {
        "files": len(paths),
        "refused": refused,
        "unhashable": unhashable,
        "rules": sum(len(s) for s in rule_sets),
        "flagged": flagged,
        "levels": levels,
        "types": types,
        "ids": ids,
        "live_timing": live,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def note(summary: Summary, where: str, cpu: float) -> str:
    """The row's note: what yaraQA read and found, its CPU time and memory, how it ran."""
    levels = ", ".join(
        f"{k}={v}" for k, v in sorted(summary.levels.items(), key=lambda kv: -_LEVEL_NAMES[kv[0]])
    )
    types = ", ".join(f"{k} {v}" for k, v in summary.types.items())
    top = ", ".join(f"{k} {v}" for k, v in list(summary.ids.items())[:4])
    timing = "" if summary.live_timing else f"; regex timing (PI1) off: {SAMPLE} absent"
    left = (
        f" ({summary.unhashable} rules left out (its rule hash takes ASCII strings only))"
        if summary.unhashable
        else ""
    )
    return (
        f"{summary.files} files ({summary.refused} refused by plyara), {summary.rules} rules"
        f"{left}; "
        f"{summary.issues} issues on {summary.flagged} rules: {levels} ({types}; most: {top}); "
        f"{cpu:.1f} CPU-s, peak {summary.peak_mb:.0f} MB, load {os.getloadavg()[0]:.1f}; "
        f"{where}{timing}; rule quality only, no collection/targeting analysis"
    )


def run(roots: list[Path], environ: Mapping[str, str] | None = None, name: str = NAME) -> Result:
    """yaraQA on ``roots`` in a child process: the bench row ``name`` (wall seconds; the rest
    in the note).

    ``environ`` (default ``os.environ``) is where ``$YARAQA_DIR`` is looked up.
    """
    environ = os.environ if environ is None else environ
    try:
        yaraqa = locate(environ)
    except NotRunError as e:
        return Result(name, 0.0, "s", note=f"not run: {e.reason}")
    where = (
        f"yaraQA {version(yaraqa)} from $YARAQA_DIR={yaraqa}"
        if environ.get("YARAQA_DIR")
        else f"yaraQA {version(yaraqa)} at {PIN[:12]}"
    )
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(
        [sys.executable, "-m", "bench._yaraqa", str(yaraqa), *map(str, roots)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
        check=False,
    )
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu
    try:
        summary = parse_summary(proc.stdout)
    except NotRunError as e:
        return Result(name, 0.0, "s", note=f"not run: {e.reason}")
    except ValueError as e:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return Result(name, elapsed, "s", note=f"failed: {e}; {tail[0]}")
    return Result(name, elapsed, "s", note=note(summary, where, cpu))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m bench._yaraqa YARAQA_DIR ROOT...")
    print(MARK + json.dumps(_drive(Path(sys.argv[1]), [Path(a) for a in sys.argv[2:]])))
