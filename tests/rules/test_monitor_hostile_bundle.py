"""A hostile rule bundle in the log must not stop the monitor, once or on every restart.

The monitor runs in a child process (the script below): on code that parsed
the 30,000-deep bundle in-process, the child segfaulted on every poll and the
state never moved past the entry; this test process is never the one that crashes.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from overt.monitor.alert import Alert
from overt.monitor.checks import CheckFailure, run_checks

TESTS = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import hashlib, io, json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from monitor.sim import LogSimulator
from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, format_envelope, sign_envelope
from overt.formats.statement import RuleBundle, format_statement, make_statement
from overt.monitor.checks import make_check
from overt.monitor.events import EventSink
from overt.monitor.follow import Monitor
from overt.monitor.state import MonitorState
from overt.publish.keys import generate_publisher_key

store, state_dir = Path(sys.argv[2]), Path(sys.argv[3])
_, signer = generate_publisher_key("vendor.example")

def publication(name, data):
    st = make_statement(name, hashlib.sha256(data).hexdigest(),
                        RuleBundle("agent", "stable", "yara-x", "1.0.0", 1))
    env = sign_envelope(PAYLOAD_TYPE_IN_TOTO, format_statement(st), [(signer.keyid, signer)])
    return format_envelope(env)

class Hang:
    name = "hang"
    def check(self, index, entry):
        if index == 2:
            time.sleep(30)
        return []

# The audit's worker processes start once per process (an interpreter, yaramod, yara-x):
# started here, so that the 1 s check budget below times the audit, not their start on a
# loaded machine.
from overt.rules import audit_sources
audit_sources({"warm.yar": b"rule warm { condition: true }"})

log = LogSimulator()
log.add(b"first", publication("deep.tar.gz", (store / "deep.tar.gz").read_bytes()), b"last")
runs = []
for restart in range(2):
    out = io.StringIO()
    checks = [make_check(f"rule-audit={store}:high"), Hang()]
    with Monitor(log, log.verifier, MonitorState(state_dir), EventSink(out),
                 checks=checks, check_timeout=1.0) as m:
        checked = m.poll().entries
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    runs.append({"checked": checked, "alerts": [e for e in events if e["level"] == "alert"]})
print(json.dumps(runs))
"""


def _deep_bundle() -> bytes:
    n = 30000
    files = {
        "rules/deep.yar": ("rule deep { condition: " + "(" * n + "true" + ")" * n + " }").encode(),
        "rules/ok.yar": b'rule ok { strings: $a = "NOFORN" condition: $a }',
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_monitor_alerts_on_a_30000_deep_bundle_and_moves_on(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "deep.tar.gz").write_bytes(_deep_bundle())
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(TESTS), str(store), str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    first, restart = json.loads(proc.stdout)
    assert first["checked"] == 3
    audit = [a for a in first["alerts"] if a["event"] == "check" and a["check"] == "rule-audit"]
    # the unauditable file and the marking in the other file, both naming entry 1
    assert {a["index"] for a in audit} == {1}
    text = "\n".join(a["message"] for a in audit)
    assert "deep.tar.gz:rules/deep.yar" in text and "nested 30000 deep" in text, text
    assert "rules/ok.yar" in text
    hung = [a for a in first["alerts"] if a["event"] == "check-failed"]
    assert [(a["check"], a["index"]) for a in hung] == [("hang", 2)]
    assert "timed out" in hung[0]["message"]
    # progress was saved: a restart does not check (or crash on) the entry again
    assert restart["checked"] == 0 and restart["alerts"] == []


class _Raises:
    name = "raises"

    def check(self, index: int, entry: bytes) -> list[Alert]:
        raise RuntimeError(f"bug on {index}")


class _Slow:
    name = "slow"

    def check(self, index: int, entry: bytes) -> list[Alert]:
        if entry == b"hang":
            time.sleep(5)
        return [Alert(self.name, index, "seen")]


def test_run_checks_turns_raise_and_time_out_into_failures_and_goes_on() -> None:
    batch = [(0, b"a"), (1, b"hang"), (2, b"b")]
    start = time.monotonic()
    out = run_checks([_Raises(), _Slow()], batch, timeout=0.5)
    assert time.monotonic() - start < 4
    assert out == [
        CheckFailure("raises", 0, "raised RuntimeError('bug on 0')"),
        Alert("slow", 0, "seen"),
        CheckFailure("raises", 1, "raised RuntimeError('bug on 1')"),
        CheckFailure("slow", 1, "timed out after 0.5 s"),
        CheckFailure("raises", 2, "raised RuntimeError('bug on 2')"),
        Alert("slow", 2, "seen"),
    ]
    assert run_checks([_Raises()], batch[:1], timeout=None) == [
        CheckFailure("raises", 0, "raised RuntimeError('bug on 0')")
    ]
