"""``overt log``: create, append to, serve, prove from and verify a transparency log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from overt.cli._util import Progress, load_policy, load_vkey, read_input
from overt.errors import ConfigError
from overt.log.client import open_source, verify_log
from overt.log.log import MAX_BATCH, Log, read_token, read_vkey


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("log", help="run and check a transparency log")
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True

    p = cmds.add_parser("init", help="create a log (new key pair); prints its verifier key")
    p.add_argument("dir", type=Path)
    p.add_argument("--origin", required=True, help="checkpoint origin, e.g. example.com/overt")
    p.set_defaults(func=_init)

    p = cmds.add_parser("vkey", help="print the log's verifier key")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=lambda a: print(read_vkey(a.dir)))

    p = cmds.add_parser("token", help="print the bearer token for POST /add")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=lambda a: print(read_token(a.dir)))

    p = cmds.add_parser("add", help="append files (or - for stdin) as entries; prints indices")
    p.add_argument("dir", type=Path)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=_add)

    p = cmds.add_parser("serve", help="serve the log over HTTP (tlog-tiles + POST /add)")
    p.add_argument("dir", type=Path)
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    p.set_defaults(func=_serve)

    p = cmds.add_parser("proof", help="print an entry's tlog-proof against the latest checkpoint")
    p.add_argument("dir", type=Path)
    p.add_argument("index", type=_index)
    p.set_defaults(func=_proof)

    p = cmds.add_parser("witnesses", help="set the log's witnesses and quorum (a tlog-policy file)")
    p.add_argument("dir", type=Path)
    p.add_argument(
        "policy", metavar="POLICY", help="tlog-policy with witness lines (with URLs) and a quorum"
    )
    p.set_defaults(func=_witnesses)

    p = cmds.add_parser("verify", help="check a whole log as a client (URL or directory)")
    p.add_argument("source", metavar="URL_OR_DIR")
    p.add_argument("--vkey", help="log verifier key, inline or a file (or a log line in --policy)")
    p.add_argument("--policy", help="tlog-policy: require the witness quorum it names")
    p.add_argument(
        "--max-age", type=float, metavar="SECONDS", help="require cosignatures this recent"
    )
    p.add_argument("--progress", action="store_true", help="show progress even when not a terminal")
    p.set_defaults(func=_verify)


def _index(text: str) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise argparse.ArgumentTypeError(f"not an index: {text!r}")
    return int(text)


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen wants HOST:PORT, got {listen!r}")
    return host, int(port)


def _init(args: argparse.Namespace) -> int:
    with Log.create(args.dir, args.origin) as log:
        print(log.vkey)
    return 0


def _add(args: argparse.Namespace) -> int:
    # Read and append in batches so a bulk add of many files stays in bounded memory.
    with Log.open(args.dir) as log:
        batch: list[bytes] = []
        for name in args.files:
            batch.append(read_input(name))
            if len(batch) == MAX_BATCH:
                _flush(log, batch)
        _flush(log, batch)
        _witness(log)
    return 0


def _witness(log: Log) -> None:
    """With a witness policy, get what was added cosigned and published now."""
    result = log.witness()
    if result is not None and not result.published and log.published_size < log.size:
        print(
            f"overt: warning: witness quorum not met; published checkpoint stays at size"
            f" {log.published_size} (entries are durable; `overt log serve` retries)",
            file=sys.stderr,
        )


def _flush(log: Log, batch: list[bytes]) -> None:
    if batch:
        sys.stdout.write("".join(f"{i}\n" for i in log.add_many(batch)))
        sys.stdout.flush()
        batch.clear()


def _serve(args: argparse.Namespace) -> int:
    from overt.log.server import serve

    host, port = parse_listen(args.listen)
    with Log.open(args.dir) as log:

        def ready() -> None:
            print(f"overt log {log.origin}: serving {args.dir} on http://{host}:{port}", flush=True)
            print(f"verifier key: {log.vkey}", flush=True)

        serve(log, host, port, ready=ready)
    return 0


def _proof(args: argparse.Namespace) -> int:
    with Log.open(args.dir) as log:
        sys.stdout.buffer.write(log.proof(args.index))
    return 0


def _witnesses(args: argparse.Namespace) -> int:
    with Log.open(args.dir) as log:
        log.set_policy(read_input(args.policy))
        assert log.policy is not None
        names = ", ".join(w.name for w in log.policy.witnesses)
    print(f"witnesses: {names}; quorum {log.policy.quorum} (takes effect at the next serve)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    verifier = load_vkey(args.vkey) if args.vkey else None
    policy = load_policy(args.policy)
    source = open_source(args.source)
    try:
        result = verify_log(
            source,
            verifier,
            progress=Progress("verifying", force=args.progress),
            policy=policy,
            max_age=args.max_age,
        )
    finally:
        source.close()
    cp = result.checkpoint.checkpoint
    rate = result.entries / result.seconds if result.seconds else 0.0
    print(
        f"ok: {cp.origin} size {cp.size} root {cp.root_hash.hex()} "
        f"({result.entries} entries checked, {rate:,.0f}/s)"
    )
    return 0
