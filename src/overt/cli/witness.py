"""``overt witness``: create a witness, choose the logs it witnesses, serve it."""

from __future__ import annotations

import argparse
from pathlib import Path

from overt._asgi import add_limit_arguments, limits_from_args
from overt.cli._util import add_key_type_argument, check_listen, listen_address, vkey_text
from overt.errors import ConfigError

#: Top-level commands this module registers, with their one-line help.
COMMANDS = {
    "witness": "run a transparency-log witness (c2sp tlog-witness)",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("witness", help=COMMANDS["witness"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True

    p = cmds.add_parser("init", help="create a witness identity; prints its verifier key")
    p.add_argument("dir", type=Path, help="the witness directory to create")
    p.add_argument("--name", required=True, help="witness (and key) name, e.g. asia.example/w")
    add_key_type_argument(p, "witness")
    p.set_defaults(func=_init)

    p = cmds.add_parser("trust", help="witness a log (by origin): add its verifier key")
    p.add_argument("dir", type=Path, help="the witness directory")
    p.add_argument("log_vkey", metavar="LOG_VKEY", help="the log's verifier key, inline or a file")
    p.set_defaults(func=_trust)

    p = cmds.add_parser("vkey", help="print the witness's verifier key")
    p.add_argument("dir", type=Path, help="the witness directory")
    p.set_defaults(func=_vkey)

    p = cmds.add_parser("serve", help="serve POST /add-checkpoint and the read endpoints")
    p.add_argument("dir", type=Path, help="the witness directory")
    p.add_argument(
        "--listen",
        type=listen_address,
        default="127.0.0.1:8090",
        metavar="HOST:PORT",
        help="address to listen on",
    )
    p.add_argument(
        "--db",
        metavar="URL",
        help="keep the state in this database (sqlite:///PATH or postgresql://...;"
        " migrated on start) instead of DIR/state.db",
    )
    add_limit_arguments(p)
    p.set_defaults(func=_serve, long_running=True)


def _init(args: argparse.Namespace) -> int:
    from overt.witness.config import init_witness

    print(init_witness(args.dir, args.name, args.key_type))
    return 0


def _trust(args: argparse.Namespace) -> int:
    from overt.witness.config import trust_log

    verifier, added = trust_log(args.dir, vkey_text(args.log_vkey))
    state = "now witnessing" if added else "already witnessing"
    print(f"{state} {verifier.name} ({verifier.vkey})")
    return 0


def _vkey(args: argparse.Namespace) -> int:
    from overt.witness.config import load_witness

    print(load_witness(args.dir).vkey)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from overt.witness.config import LogsWatcher, load_witness
    from overt.witness.server import WitnessApp, serve

    host, port = args.listen
    limits = limits_from_args(args)
    check_listen(host, port)
    watcher = LogsWatcher(args.dir)  # before loading: a change in between is not missed
    config = load_witness(args.dir)
    if args.db is not None:
        from overt.witness.state import open_state

        store = open_state(args.db)
    else:
        store = config.open_state()
    with store as state:
        app = WitnessApp(state, config.logs, config.signer, reload=watcher)

        def ready() -> None:
            origins = ", ".join(sorted(config.logs)) or "no logs yet (see `overt witness trust`)"
            print(f"overt witness {config.name}: serving on http://{host}:{port}", flush=True)
            print(f"verifier key: {config.vkey}", flush=True)
            print(f"witnessing: {origins}", flush=True)

        try:
            serve(app, host, port, ready=ready, limits=limits)
        except SystemExit as err:  # the HTTP server gave up during start-up
            if err.code:
                raise ConfigError(f"cannot serve on {host}:{port} (exit {err.code})") from err
    return 0
