"""``overt monitor``: follow a log, prove it append-only, gossip with witnesses, check entries.

    overt monitor URL [--vkey VKEY] [--policy FILE] [--state DIR] [--witness URL]...
                  [--mirror URL]... [--audit-tiles N]
                  [--once] [--interval SECONDS] [--check NAME[=ARG]]... [--webhook URL]

Events and alerts go to stdout as JSON lines (:mod:`overt.monitor.events`). With ``--once``
the monitor polls once and exits 0 if it raised no alert, 1 if it did (or failed). Without
it, the monitor polls every ``--interval`` seconds until interrupted, and stops with exit 1
once it holds evidence that the log is inconsistent.

The log's key is ``--vkey``, or else the policy's ``log`` line (the one whose
URL is the monitored URL, or the only one).

Mirrors (c2sp.org/tlog-mirror: the policy's ``mirror`` lines with URLs, and ``--mirror``)
are read where the log fails, compared with it like witnesses, held to the policy's
``mirror-quorum``, and ``--audit-tiles`` old entry bundles a poll are re-read from the log
and a mirror to catch a log that deleted or rewrote entries its mirrors hold
(:mod:`overt.monitor.follow`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from overt.cli._util import UsageError, load_policy, load_vkey
from overt.errors import ConfigError

if TYPE_CHECKING:
    from overt.formats.note import Verifier
    from overt.formats.policy import Policy


#: Top-level commands this module registers, with their one-line help.
COMMANDS = {"monitor": "follow a log: consistency, witnesses, checks on every entry"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "monitor",
        help=COMMANDS["monitor"],
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("url", metavar="URL", help="the log's URL (or a log directory)")
    p.add_argument(
        "--vkey",
        help="log verifier key, inline or a file (default: the policy's log line)",
    )
    p.add_argument("--policy", type=Path, metavar="FILE", help="c2sp tlog-policy file")
    p.add_argument("--state", type=Path, metavar="DIR", help="state directory (else in memory)")
    p.add_argument(
        "--db",
        metavar="URL",
        help="keep the state in this database instead (sqlite:///PATH or postgresql://...;"
        " migrated on start; one row per log key)",
    )
    p.add_argument(
        "--witness",
        action="append",
        default=[],
        metavar="URL",
        help="a witness to compare with (besides the policy's witness URLs); repeatable",
    )
    p.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="URL",
        help="a tlog-mirror's monitoring prefix (besides the policy's mirror URLs); repeatable",
    )
    p.add_argument(
        "--audit-tiles",
        type=int,
        default=4,
        metavar="N",
        help="with mirrors: old entry bundles re-read from the log and a mirror each poll",
    )
    p.add_argument("--once", action="store_true", help="poll once; exit 1 if anything alerted")
    p.add_argument(
        "--interval", type=_seconds, default=10.0, metavar="SECONDS", help="time between polls"
    )
    p.add_argument(
        "--max-age",
        type=_seconds,
        metavar="SECONDS",
        help="with --policy: the witness quorum must have cosigned within this many seconds",
    )
    p.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="NAME[=ARG]",
        help="entry check to run; repeatable (default: every registered check; see"
        " overt.monitor.checks)",
    )
    p.add_argument(
        "--check-timeout",
        type=_seconds,
        default=600.0,
        metavar="SECONDS",
        help="a check running longer on one entry is a check-failed alert; the monitor moves on",
    )
    p.add_argument("--webhook", metavar="URL", help="also POST every alert's JSON here")
    p.set_defaults(func=_monitor, long_running=True)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from err
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _log_key(vkey: str | None, policy: Policy | None, url: str) -> Verifier:
    """``--vkey``, or the policy's log line for ``url`` (or its only log line).

    Raises:
        ConfigError: neither is given, or the policy names several logs and none at ``url``.
    """
    if vkey is not None:
        return load_vkey(vkey)
    logs = policy.logs if policy is not None else ()
    if not logs:
        raise ConfigError("no log key: give --vkey, or a --policy with a log line")
    at_url = [lg for lg in logs if lg.url and lg.url.rstrip("/") == url.rstrip("/")]
    if len(at_url) == 1:
        return at_url[0].verifier
    if len(logs) == 1:
        return logs[0].verifier
    raise ConfigError(f"the policy names {len(logs)} logs and none with URL {url}: give --vkey")


def _monitor(args: argparse.Namespace) -> int:
    from overt.log.client import open_source
    from overt.monitor.checks import default_checks, make_check
    from overt.monitor.events import EventSink
    from overt.monitor.follow import Monitor
    from overt.monitor.gossip import HTTPWitness, witnesses_from
    from overt.monitor.mirrors import mirrors_from
    from overt.monitor.state import MonitorState

    policy = load_policy(str(args.policy) if args.policy is not None else None)
    verifier = _log_key(args.vkey, policy, args.url)
    if args.max_age is not None and policy is None:
        raise ConfigError("--max-age needs --policy (freshness comes from witness cosignatures)")
    checks = [make_check(c) for c in args.check] if args.check else default_checks()
    if args.db is not None:
        if args.state is not None:
            raise UsageError("give --state or --db, not both")
        from overt.monitor.state import DatabaseStore, log_id

        state = MonitorState(None, store=DatabaseStore(args.db, log_id(verifier)))
    else:
        state = MonitorState(args.state)
    sink = EventSink(sys.stdout, args.webhook)
    source = open_source(args.url)
    witnesses = witnesses_from(policy, args.witness)
    mirrors = mirrors_from(policy, verifier.name, args.mirror)
    try:
        with Monitor(
            source,
            verifier,
            state,
            sink,
            policy=policy,
            max_age=args.max_age,
            witnesses=witnesses,
            checks=checks,
            check_timeout=args.check_timeout,
            name=f"log {args.url}",
            mirrors=mirrors,
            audit_tiles=args.audit_tiles,
        ) as monitor:
            if args.once:
                monitor.poll()
                return 1 if sink.alerts else 0
            monitor.run(args.interval)
            return 1 if sink.alerts else 0
    finally:
        for w in witnesses:
            if isinstance(w.source, HTTPWitness):
                w.source.close()
        for m in mirrors:
            m.source.close()
        source.close()
        sink.close()
