"""The monitor against real overt servers on 127.0.0.1: a log, witnesses, a webhook receiver.

Everything here is the real thing over real HTTP (uvicorn in a thread on a pre-bound
socket); the only dishonest party is a forked copy of the log built with the log's own key
(what a compromised log operator could do) and shown to a real witness.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from overt.cli import main as cli_main
from overt.formats.note import Ed25519Signer, parse_skey, parse_vkey
from overt.log.client import HTTPSource, LogClient
from overt.log.log import Log
from overt.log.server import LogApp
from overt.log.witnessing import Witnessing
from overt.monitor import EventSink, Monitor, MonitorState
from overt.witness.client import WitnessClient
from overt.witness.config import init_witness, load_witness, trust_log
from overt.witness.server import WitnessApp

from .sim import LogSimulator, Receive, Scope, Send, lines, serve

ORIGIN = "live.example/log"
REGIONS = ("asia", "europe", "americas")


@pytest.fixture(autouse=True)
def monitor_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """``overt monitor`` is wired into main by the lead; until then, add it for these tests."""
    if "monitor" not in cli_main._GROUPS:
        monkeypatch.setattr(cli_main, "_GROUPS", (*cli_main._GROUPS, "monitor"))


def overt(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code = cli_main.main(list(argv))
    return code, lines(capsys.readouterr().out)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[tuple[Log, str]]:
    real = Log.create(tmp_path / "log", ORIGIN)
    with serve(LogApp(real), lifespan="on") as url:
        yield real, url
    real.close()


def witness_app(directory: Path, name: str, log_vkey: str) -> tuple[WitnessApp, str]:
    vkey = init_witness(directory, name)
    trust_log(directory, log_vkey)
    config = load_witness(directory)
    return WitnessApp(config.open_state(), config.logs, config.signer), vkey


# --- the CLI against a real log -----------------------------------------------------------


def test_monitor_once_against_a_real_log(
    log: tuple[Log, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real, url = log
    with LogClient(url, real.token) as client:
        for i in range(300):
            client.sequence(b"live entry %d" % i)
        client.add(b"the last one")
    state = tmp_path / "state"
    code, events = overt(
        capsys, "monitor", url, "--vkey", real.vkey, "--state", str(state), "--once"
    )
    assert code == 0
    assert [e["level"] for e in events] == ["info"] * len(events)
    assert events[0]["event"] == "checkpoint" and events[0]["size"] == 301
    assert [(e["start"], e["end"]) for e in events if e["event"] == "entries"] == [(0, 301)]
    # A second run resumes: nothing new to check, still no alert.
    code, events = overt(
        capsys, "monitor", url, "--vkey", real.vkey, "--state", str(state), "--once"
    )
    assert code == 0 and not [e for e in events if e["event"] == "entries"]


def test_monitor_once_exits_1_on_a_check_alert(
    log: tuple[Log, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real, url = log
    with LogClient(url, real.token) as client:
        client.add(b'{"payload": "not DSSE"}')
    code, events = overt(
        capsys, "monitor", url, "--vkey", real.vkey, "--once", "--check", "dsse-envelope"
    )
    assert code == 1
    [alert] = [e for e in events if e["level"] == "alert"]
    assert (alert["event"], alert["check"], alert["index"]) == ("check", "dsse-envelope", 0)


def test_monitor_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli_main.main(["monitor", "http://127.0.0.1:9", "--vkey", "x", "--interval", "0"])
    assert caught.value.code == 2
    code = cli_main.main(
        ["monitor", "http://127.0.0.1:9", "--vkey", "a+00000000+AAAA", "--check", "nope"]
    )
    assert code == 1
    assert "overt:" in capsys.readouterr().err


def test_monitor_keeps_up_with_a_log_being_written(log: tuple[Log, str], tmp_path: Path) -> None:
    real, url = log
    written = [0]
    until = time.monotonic() + 1.5

    def writer(n: int) -> None:
        with LogClient(url, real.token) as client:
            i = 0
            while time.monotonic() < until:
                client.sequence(b"writer %d entry %d" % (n, i))
                i += 1
                written[0] += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    sink = EventSink(open(tmp_path / "events.jsonl", "w"))  # noqa: SIM115 - closed below
    with (
        HTTPSource(url) as source,
        Monitor(source, parse_vkey(real.vkey), MonitorState(tmp_path / "state"), sink) as monitor,
    ):
        try:
            polls = 0
            while any(t.is_alive() for t in threads):
                monitor.poll()  # following while the log grows under it
                polls += 1
            for t in threads:
                t.join()
            deadline = time.monotonic() + 10
            while real.size < written[0]:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            result = monitor.poll()
        finally:
            for t in threads:
                t.join()
            sink.stream.close()
    assert polls > 1
    assert result.checked == result.size == written[0] > 0
    assert sink.alerts == 0


# --- a real log, three real witnesses, a 2-of-3 policy -------------------------------------


@dataclass
class World:
    log: Log
    url: str
    policy: Path
    witness_urls: dict[str, str]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    real = Log.create(tmp_path / "log", ORIGIN)
    lines_ = [f"log {real.vkey}"]
    apps = {}
    for region in REGIONS:
        apps[region], vkey = witness_app(tmp_path / region, f"{region}.example/w", real.vkey)
        lines_.append(f"witness {region} {vkey} URL-{region}")
    with (
        serve(apps["asia"], "on") as a,
        serve(apps["europe"], "on") as e,
        serve(apps["americas"], "on") as am,
    ):
        urls = {"asia": a, "europe": e, "americas": am}
        text = "\n".join(lines_) + f"\ngroup regions 2 {' '.join(REGIONS)}\nquorum regions\n"
        for region, u in urls.items():
            text = text.replace(f"URL-{region}", u)
        real.set_policy(text.encode())
        assert real.policy is not None
        (tmp_path / "policy").write_text(text)
        witnessing = Witnessing(real, real.policy, timeout=2.0)
        with serve(LogApp(real, witnessing=witnessing), "on") as url:
            yield World(real, url, tmp_path / "policy", urls)
        witnessing.close()
    real.close()


def test_monitor_with_policy_gossips_with_every_witness(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with LogClient(world.url, world.log.token) as client:
        for i in range(5):
            client.add(b"witnessed %d" % i)
    code, events = overt(
        capsys,
        "monitor",
        world.url,
        "--vkey",
        world.log.vkey,
        "--policy",
        str(world.policy),
        "--max-age",
        "60",
        "--once",
    )
    assert code == 0, events
    gossip = {e["witness"]: e["relation"] for e in events if e["event"] == "witness"}
    assert set(gossip) == set(REGIONS)
    # The published checkpoint is the witnessed one: at least two witnesses saw exactly it.
    assert list(gossip.values()).count("same") >= 2
    assert set(gossip.values()) <= {"same", "behind", "ahead-unproven", "ahead"}


# --- a split view shown to a real witness ---------------------------------------------------


def test_split_view_shown_to_a_real_witness_is_caught(
    log: tuple[Log, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real, url = log
    with LogClient(url, real.token) as client:
        for i in range(20):
            client.sequence(b"honest %d" % i)
        client.add(b"honest 20")
    # The operator, holding the log key, shows a witness another tree of the same size.
    signer = parse_skey((tmp_path / "log" / "log.skey").read_text().strip())
    assert isinstance(signer, Ed25519Signer)
    fork = LogSimulator(ORIGIN, signer)
    fork.add_many(21, prefix=b"forked")
    app, _ = witness_app(tmp_path / "witness", "fooled.example/w", real.vkey)
    state = tmp_path / "state"
    with serve(app, "on") as witness_url:
        with WitnessClient(witness_url) as witness:
            witness.add_checkpoint(0, [], fork.checkpoint())
        argv = ["monitor", url, "--vkey", real.vkey, "--state", str(state)]
        code, events = overt(capsys, *argv, "--witness", witness_url, "--once")
    assert code == 1
    [alert] = [e for e in events if e["level"] == "alert"]
    assert alert["event"] == "equivocation"
    assert alert["sources"] == [f"log {url}", f"witness {witness_url}"]
    [ev] = MonitorState(state).evidence()
    ev.verify(parse_vkey(real.vkey))  # convincing with the log key alone
    assert ev.notes[0] == real.checkpoint()
    # From now on, this state refuses: even without the witness, even with an honest log.
    code, events = overt(capsys, *argv, "--once")
    assert code == 1
    assert [e["event"] for e in events] == ["evidence-on-file"]


# --- the webhook ----------------------------------------------------------------------------


class Receiver:
    """A webhook endpoint that records what it is sent (a real HTTP server, via ``serve``)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_alerts_are_posted_to_the_webhook_and_a_dead_webhook_is_not_fatal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = LogSimulator()
    sim.add(b"x" * 100, b"small")
    receiver = Receiver()
    with serve(sim) as log_url, serve(receiver) as hook:
        argv = ["monitor", log_url, "--vkey", sim.vkey, "--once", "--check", "size-limit=50"]
        code, events = overt(capsys, *argv, "--webhook", hook + "/alerts")
        assert code == 1
        [posted] = receiver.bodies
        alert = json.loads(posted)
        assert alert == next(e for e in events if e["level"] == "alert")
        assert (alert["event"], alert["check"], alert["index"]) == ("check", "size-limit", 0)
        # A webhook nobody answers: the alert still reaches stdout and the exit code.
        code, events = overt(capsys, *argv, "--webhook", "http://127.0.0.1:9/")
        assert code == 1
        assert [e["event"] for e in events if e["level"] == "alert"] == ["check"]
