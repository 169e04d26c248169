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
    p.add_argument(
        "--log",
        metavar="URL_OR_DIR",
        help="where partners' signed reviews and audits are logged (with --state)",
    )
    p.add_argument("--token", help="bearer token of --log's server (default $OVERT_LOG_TOKEN)")
    add_limit_arguments(p)
    p.set_defaults(func=_serve, long_running=True)

    p = cmds.add_parser("user", help="partner accounts of the portal's partners' area")
    users = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    users.required = True
    a = users.add_parser("add", help="create or replace an account (the password on stdin)")
    a.add_argument("name", metavar="NAME", help="1-64 of [a-z0-9._-]")
    a.add_argument("--role", required=True, choices=("reviewer", "auditor", "admin"))
    a.add_argument(
        "--vkey",
        help="a reviewer's or auditor's own publisher key (inline or a file), its key set logged",
    )
    a.add_argument("--state", required=True, type=Path, metavar="DIR", help="the portal's --state")
    a.set_defaults(func=_user_add)

    p = cmds.add_parser("sign", help="sign a statement the partners' area handed out, offline")
    p.add_argument("statement", metavar="STATEMENT", help="the statement file (- for stdin)")
    p.add_argument("--key", required=True, type=Path, help="your private key file")
    p.add_argument("--out", type=Path, help="the envelope file (default: stdout)")
    p.set_defaults(func=_sign)


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
            log=args.log,
            log_token=args.token,
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


def _user_add(args: argparse.Namespace) -> int:
    import sys

    from overt.cli._util import vkey_text
    from overt.portal.accounts import AccountStore, PartnerRole

    password = sys.stdin.readline().rstrip("\n")
    vkey = vkey_text(args.vkey) if args.vkey else None
    args.state.mkdir(mode=0o700, parents=True, exist_ok=True)
    account = AccountStore(args.state).add(args.name, PartnerRole(args.role), password, vkey)
    print(f"account {account.name} ({account.role.value}) in {args.state / 'accounts.json'}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    import sys

    from overt.cli._util import read_input
    from overt.log.fs import atomic_write
    from overt.portal.partners import sign_statement
    from overt.publish.keys import load_publisher_signer

    envelope = sign_statement(read_input(args.statement), load_publisher_signer(args.key))
    if args.out is None:
        sys.stdout.write(envelope.decode() + "\n")
    else:
        atomic_write(args.out, envelope)
    return 0
