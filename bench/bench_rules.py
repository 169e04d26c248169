"""Rule audit speed on the real corpora (``python -m bench rules``).

Figures, all wall-clock seconds on this machine (the note adds CPU seconds and the
load average, since the machine may be shared) (the audit uses every core: worker
processes for the static audit, yara-x compiler threads for the dynamic one):

- ``audit both corpora (static + dynamic)``: ``overt rules audit`` on every rule of
  ``../shared/corpora/yara/{reversinglabs,signature-base}``; target <= 10 s (issue 9).
- ``audit ... peak memory``: the largest resident set of the caller plus that of the
  largest worker process times the number of workers; target <= 300 MB.
- ``high findings per 10,000 rules``: on these corpora of legitimate rules; target <= 1.
- ``audit both corpora (static only)``: the same without the canary scan.
- ``cccs-yara yara_validator``: the CCCS YARA validator (PyPI ``cccs-yara``, an existing
  YARA quality tool: metadata standard and compile checks) on the same files in the same
  run, one file at a time in a subprocess so that a file it refuses does not stop it. It
  tries to clone MITRE ATT&CK data from the network at import; it is pointed at an empty
  directory instead (``MITRE_STIX_DATA_PATH``), which only disables its ATT&CK lookups.

``--quick`` audits the reversinglabs corpus only and skips the comparison.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import Result
from overt.rules import audit_paths
from overt.rules._sandbox import close as close_workers

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora" / "yara"
TARGET_S = 10.0  # issue 9: <= 10 s and <= 300 MB for ~13,000 rules, static + dynamic
TARGET_MB = 300.0

_VALIDATOR_DRIVER = r"""
import sys, pathlib
from yara_validator.validator import run_yara_validator
ok = refused = rules = 0
for root in sys.argv[1:]:
    for path in sorted(pathlib.Path(root).rglob("*")):
        if path.suffix not in (".yar", ".yara"):
            continue
        try:
            proc = run_yara_validator(path, False, True, None, None, None)
            rules += len(getattr(proc, "yara_rules", []) or [])
            ok += 1
        except Exception:
            refused += 1
print(ok, refused, rules)
"""


def _cpu() -> float:
    """CPU seconds of this process (all threads) and of its finished children."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


_LAST: dict[str, float] = {}


def _ours(roots: list[Path], dynamic: bool) -> tuple[float, str]:
    start, cpu = time.perf_counter(), _cpu()
    report = audit_paths(roots, dynamic=dynamic)
    close_workers()  # the audit's worker processes: reaped, so that their CPU time counts
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    from overt.rules import Severity
    from overt.rules._sandbox import WORKERS

    # ru_maxrss is in KiB on Linux; children: the largest reaped worker.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kid = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    _LAST["mb"] = own + kid * WORKERS
    _LAST["high_per_10k"] = (
        sum(f.severity >= Severity.HIGH for f in report.findings) * 10_000 / max(report.rules, 1)
    )
    counts = report.counts()
    worst = ", ".join(f"{k}={v}" for k, v in counts.items() if v) or "no findings"
    return elapsed, (
        f"{report.files} files, {report.rules} rules; {worst}; {cpu:.1f} CPU-s, load "
        f"{os.getloadavg()[0]:.1f}"
    )


def _cccs(roots: list[Path]) -> Result:
    if importlib.util.find_spec("yara_validator") is None:
        return Result(
            "cccs-yara yara_validator (same corpus)",
            0.0,
            "s",
            note="not installed (pip install cccs-yara)",
        )
    with tempfile.TemporaryDirectory() as empty:
        env = dict(os.environ, MITRE_STIX_DATA_PATH=empty)
        start, cpu = time.perf_counter(), _cpu()
        proc = subprocess.run(
            [sys.executable, "-c", _VALIDATOR_DRIVER, *map(str, roots)],
            capture_output=True,
            text=True,
            env=env,
            timeout=1800,
            check=False,
        )
        elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    fields = proc.stdout.split()
    if proc.returncode != 0 or len(fields) != 3:
        return Result(
            "cccs-yara yara_validator (same corpus)",
            elapsed,
            "s",
            note=f"failed: {proc.stderr.strip().splitlines()[-1:] or proc.returncode}",
        )
    ok, refused, rules = fields
    return Result(
        "cccs-yara yara_validator (same corpus)",
        elapsed,
        "s",
        note=f"{ok} files validated, {refused} refused by it, {rules} rules; {cpu:.1f} CPU-s; "
        "metadata checks only, no collection/targeting analysis",
    )


def run(quick: bool) -> list[Result]:
    names = ["reversinglabs"] if quick else ["reversinglabs", "signature-base"]
    roots = [CORPORA / n for n in names]
    label = "reversinglabs" if quick else "both corpora"
    results = []
    full, note = _ours(roots, dynamic=True)
    results.append(
        Result(
            f"audit {label} (static + dynamic)",
            full,
            "s",
            f"<= {TARGET_S:g} s",
            full <= TARGET_S,
            note,
        )
    )
    mb, rate = _LAST["mb"], _LAST["high_per_10k"]
    results.append(
        Result(f"audit {label} peak memory", mb, "MB", f"<= {TARGET_MB:g} MB", mb <= TARGET_MB)
    )
    results.append(
        Result(f"high findings per 10,000 rules ({label})", rate, "", "<= 1", rate <= 1.0)
    )
    static, note = _ours(roots, dynamic=False)
    results.append(Result(f"audit {label} (static only)", static, "s", note=note))
    if not quick:
        results.append(_cccs(roots))
    return results
