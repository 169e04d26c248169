"""``overt portal serve LOG_DIR``: the Transparency Center web portal (docs/portal.md).

A thin shell over :class:`overt.portal.Portal`: it reads the log directory
without its lock (beside a running ``overt log serve``) and serves the pages on
``--listen`` under the same connection limits as every overt server.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from overt._asgi import add_limit_arguments, limits_from_args
from overt.cli._util import check_listen, listen_address

COMMANDS = {"portal": "the Transparency Center web portal over a log directory"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("portal", help=COMMANDS["portal"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True
    p = cmds.add_parser("serve", help="serve the portal's pages over HTTP")
    p.add_argument("log_dir", type=Path, metavar="LOG_DIR", help="the log directory to show")
    p.add_argument(
        "--listen",
        type=listen_address,
        default="127.0.0.1:8090",
        metavar="HOST:PORT",
        help="address to listen on",
    )
    p.add_argument("--monitor-events", type=Path, metavar="FILE", help="the monitor's JSONL output")
    p.add_argument("--telemetry-policy", type=Path, metavar="FILE", help="the telemetry policy")
    p.add_argument("--disclosure-url", metavar="URL", help="the disclosure service's intake")
    p.add_argument(
        "--client-policy",
        type=Path,
        metavar="FILE",
        help="an update gate's client policy: show whether each release and rule bundle meets it",
    )
    p.add_argument(
        "--artifacts",
        type=Path,
        metavar="DIR",
        help="published files, found by sha256: rule bundles' text, findings and diffs",
    )
    p.add_argument(
        "--access-log", type=Path, metavar="DIR", help="a telemetry collector's access log"
    )
    p.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help="the portal's own folder: its entry index (SQLite) and partner accounts",
    )
    add_limit_arguments(p)
    p.set_defaults(func=_serve, long_running=True)


def _serve(args: argparse.Namespace) -> int:
    from overt._asgi import run
    from overt.errors import ConfigError
    from overt.portal.app import Portal, PortalConfig

    host, port = args.listen
    limits = limits_from_args(args)
    check_listen(host, port)
    portal = Portal(
        PortalConfig(
            args.log_dir,
            monitor_events=args.monitor_events,
            telemetry_policy=args.telemetry_policy,
            disclosure_url=args.disclosure_url,
            client_policy=args.client_policy,
            artifacts=args.artifacts,
            access_log=args.access_log,
            state=args.state,
        )
    )
    portal.snapshot()  # a log that cannot be read fails here, in one line, not per page

    def ready() -> None:
        print(f"overt portal: serving {args.log_dir} on http://{host}:{port}/", flush=True)

    try:
        run(portal, host, port, ready, limits)
    except SystemExit as err:
        if err.code:
            raise ConfigError(f"cannot serve on {host}:{port} (exit {err.code})") from err
    return 0
