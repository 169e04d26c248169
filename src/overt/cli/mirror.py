"""``overt mirror``: create a mirror, choose the logs it mirrors, serve it, feed it."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from overt._asgi import add_limit_arguments, limits_from_args
from overt.cli._util import (
    UsageError,
    check_listen,
    listen_address,
    load_vkey,
    server_exit,
    vkey_text,
)
from overt.errors import ConfigError

#: Top-level commands this module registers, with their one-line help.
COMMANDS = {
    "mirror": "run a transparency-log mirror that keeps the log's data (c2sp tlog-mirror)",
}


def _min_index(text: str) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise argparse.ArgumentTypeError(f"want a whole number, got {text!r}")
    return int(text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("mirror", help=COMMANDS["mirror"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True

    p = cmds.add_parser("init", help="create a mirror identity; prints its verifier key")
    p.add_argument("dir", type=Path, help="the mirror directory to create")
    p.add_argument("--name", required=True, help="mirror (and key) name, e.g. eu.example/mirror")
    p.add_argument(
        "--key-type",
        default="ed25519",
        choices=("ed25519", "ml-dsa-44"),
        help="cosignature key: Ed25519 cosignature/v1, or ML-DSA-44 (also signs subtrees)",
    )
    p.add_argument(
        "--tiles",
        metavar="URL",
        help="keep the mirrored logs' tiles at file:///PATH or s3://BUCKET/PREFIX (default: DIR/tiles)",
    )
    p.add_argument(
        "--db",
        metavar="URL",
        help="keep the state in sqlite:///PATH or postgresql://... (default: DIR/state.db)",
    )
    p.set_defaults(func=_init)

    p = cmds.add_parser("trust", help="mirror a log (by origin): add its verifier key")
    p.add_argument("dir", type=Path, help="the mirror directory")
    p.add_argument("log_vkey", metavar="LOG_VKEY", help="the log's verifier key, inline or a file")
    p.set_defaults(func=_trust)

    p = cmds.add_parser("vkey", help="print the mirror's verifier key")
    p.add_argument("dir", type=Path, help="the mirror directory")
    p.set_defaults(func=_vkey)

    p = cmds.add_parser("status", help="print what the mirror holds of each log (JSON)")
    p.add_argument("dir", type=Path, help="the mirror directory")
    p.set_defaults(func=_status)

    p = cmds.add_parser(
        "prune", help="raise a log's minimum index: bundles below it are no longer served"
    )
    p.add_argument("dir", type=Path, help="the mirror directory (its server stopped)")
    p.add_argument("origin", help="the mirrored log's origin")
    p.add_argument("min_index", type=_min_index, metavar="MIN_INDEX", help="the new minimum index")
    p.set_defaults(func=_prune)

    p = cmds.add_parser("serve", help="serve add-checkpoint, add-entries and the mirrored tiles")
    p.add_argument("dir", type=Path, help="the mirror directory")
    p.add_argument(
        "--listen",
        type=listen_address,
        default="127.0.0.1:8095",
        metavar="HOST:PORT",
        help="address to listen on",
    )
    add_limit_arguments(p)
    p.set_defaults(func=_serve, long_running=True)

    p = cmds.add_parser(
        "push", help="bring a mirror up to a log's published checkpoint (checkpoint, then entries)"
    )
    p.add_argument("mirror_url", metavar="MIRROR_URL", help="the mirror's URL")
    p.add_argument("--log", required=True, metavar="DIR|URL", help="the log: its directory or URL")
    p.add_argument(
        "--log-key", metavar="VKEY", help="the log's verifier key (default: DIR/log.vkey)"
    )
    p.add_argument(
        "--mirror-key", metavar="VKEY", help="check the mirror's cosignature with this key"
    )
    p.add_argument(
        "--follow", action="store_true", help="keep pushing (retrying while the mirror is down)"
    )
    p.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="with --follow: how often"
    )
    p.set_defaults(func=_push)


def _init(args: argparse.Namespace) -> int:
    from overt.mirror.config import init_mirror

    print(init_mirror(args.dir, args.name, key_type=args.key_type, tiles=args.tiles, db=args.db))
    return 0


def _trust(args: argparse.Namespace) -> int:
    from overt.mirror.config import trust_log

    verifier, added = trust_log(args.dir, vkey_text(args.log_vkey))
    state = "now mirroring" if added else "already mirroring"
    print(f"{state} {verifier.name} ({verifier.vkey})")
    return 0


def _vkey(args: argparse.Namespace) -> int:
    from overt.mirror.config import load_mirror

    print(load_mirror(args.dir).vkey)
    return 0


def _status(args: argparse.Namespace) -> int:
    from overt.mirror.config import load_mirror
    from overt.mirror.store import origin_hash

    config = load_mirror(args.dir)
    with config.open_state() as state:
        records = state.records()
    out = {
        origin: {
            "hash": origin_hash(origin),
            "pending_size": r.pending_size,
            "next_entry": r.next_entry,
            "mirror_size": r.mirror_size,
            "min_index": r.min_index,
        }
        for origin, r in sorted(records.items())
    }
    print(json.dumps(out, indent=1))
    return 0


def _prune(args: argparse.Namespace) -> int:
    import os

    from overt.mirror.config import load_mirror, lock_mirror

    config = load_mirror(args.dir)
    fd = lock_mirror(args.dir)
    try:
        with config.open_state() as state:
            record = state.get(args.origin)
            if record is None:
                raise ConfigError(f"{args.dir} does not mirror {args.origin!r}")
            if args.min_index > record.mirror_size:
                raise ConfigError(
                    f"minimum index {args.min_index} is beyond the mirror checkpoint"
                    f" ({record.mirror_size})"
                )
            state.set_min_index(args.origin, args.min_index)
    finally:
        os.close(fd)
    print(f"{args.origin}: minimum index {args.min_index}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    from overt.mirror.config import load_mirror, lock_mirror
    from overt.mirror.server import MirrorApp, serve
    from overt.witness.config import LogsWatcher, read_logs

    host, port = args.listen
    limits = limits_from_args(args)
    check_listen(host, port)
    fd = lock_mirror(args.dir)
    try:
        watcher = LogsWatcher(args.dir)  # before loading: a change in between is not missed
        config = load_mirror(args.dir)
        with config.open_state() as state:
            app = MirrorApp(
                state,
                read_logs(args.dir),
                config.signer,
                config.tiles_for,
                reload=watcher,
            )

            def ready() -> None:
                origins = ", ".join(sorted(config.logs)) or "no logs yet (see `overt mirror trust`)"
                print(f"overt mirror {config.name}: serving on http://{host}:{port}", flush=True)
                print(f"verifier key: {config.vkey}", flush=True)
                print(f"mirroring: {origins}", flush=True)

            try:
                serve(app, host, port, ready=ready, limits=limits)
            except SystemExit as err:
                if err.code:
                    raise server_exit(err, host, port) from err
    finally:
        os.close(fd)
    return 0


def _push(args: argparse.Namespace) -> int:
    from overt.log.client import open_source
    from overt.mirror.client import MirrorClient, MirrorPusher, PushResult

    if args.log_key is None and args.log.startswith(("http://", "https://")):
        raise UsageError("a log given by URL needs --log-key (its verifier key)")
    log_key = load_vkey(args.log_key if args.log_key else str(Path(args.log) / "log.vkey"))
    mirror_key = load_vkey(args.mirror_key) if args.mirror_key else None
    pusher = MirrorPusher(
        open_source(args.log), log_key, MirrorClient(args.mirror_url), mirror_key=mirror_key
    )

    def report(result: PushResult) -> None:
        print(
            f"mirrored {log_key.name} up to size {result.size} ({result.sent} entries sent)",
            flush=True,
        )

    with pusher:
        if not args.follow:
            report(pusher.push())
            return 0
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops following
            pusher.follow(args.interval, on_push=report)
    return 0
