"""``overt log``: create, append to, serve, prove from and verify a transparency log.

Bulk input for ``overt log add`` (no argument per file):

- ``--stdin0``: NUL-separated file paths on stdin (``find DIR -type f -print0``).
- ``--records``: the entries themselves on stdin, each a 4-byte big-endian
  length followed by that many bytes (1..65535); the stream must end exactly
  after a record.

Indices are printed one per line, in input order, once the entries are durable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from overt._asgi import add_limit_arguments, limits_from_args
from overt._secrets import require_private
from overt.cli._util import (
    Progress,
    UsageError,
    add_key_type_argument,
    check_listen,
    listen_address,
    load_policy,
    load_vkey,
    read_input,
)
from overt.errors import ConfigError, FormatError

if TYPE_CHECKING:
    from overt.formats.note import Verifier
    from overt.formats.policy import Policy
    from overt.log.log import Log

#: Entries (and bytes) handed to one ``Log.add_many`` call by a bulk add: large enough
#: for the library's pipelining (hashing beside fsyncs), bounded so memory stays bounded
#: (64 Ki entries of up to 64 KiB each would otherwise be 4 GiB).
BULK_CHUNK = 65536
BULK_BYTES = 64 << 20


#: Top-level commands this module registers, with their one-line help.
COMMANDS = {
    "log": "run and check a transparency log",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("log", help=COMMANDS["log"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True
    dir_help = "the log directory"

    p = cmds.add_parser("init", help="create a log (new key pair); prints its verifier key")
    p.add_argument("dir", type=Path, help="the log directory to create")
    p.add_argument("--origin", required=True, help="checkpoint origin, e.g. example.com/overt")
    add_key_type_argument(p, "log")
    p.add_argument(
        "--tiles",
        metavar="URL",
        help="keep tiles and the published checkpoint at file:///PATH or"
        " s3://BUCKET/PREFIX?endpoint=URL (else DIR/tiles; kept in DIR/log.json)",
    )
    p.add_argument(
        "--db",
        metavar="URL",
        help="keep the dedup index in sqlite:///PATH or postgresql://... (one schema per log;"
        " migrated on start; else DIR/index.db)",
    )
    p.add_argument(
        "--shared",
        action="store_true",
        help="several `overt log serve` front ends (copies of DIR) share the log: sequence and"
        " checkpoint in the --db postgresql:// database, tiles at --tiles (docs/operators.md)",
    )
    p.set_defaults(func=_init)

    p = cmds.add_parser("vkey", help="print the log's verifier key")
    p.add_argument("dir", type=Path, help=dir_help)
    p.set_defaults(func=_vkey)

    p = cmds.add_parser("token", help="print the bearer token for POST /add")
    p.add_argument("dir", type=Path, help=dir_help)
    p.set_defaults(func=_token)

    p = cmds.add_parser(
        "add",
        help="append files as entries; prints their indices",
        description="Append entries durably and print their indices, one per line. Entries come"
        " from FILE arguments (- for stdin), from NUL-separated paths on stdin (--stdin0),"
        " or from length-prefixed records on stdin (--records: 4-byte big-endian length,"
        " then the entry).",
    )
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument("files", nargs="*", metavar="FILE", help="files to append (- for stdin)")
    bulk = p.add_mutually_exclusive_group()
    bulk.add_argument(
        "--stdin0",
        action="store_true",
        help="read NUL-separated file paths from stdin (find ... -print0)",
    )
    bulk.add_argument(
        "--records",
        action="store_true",
        help="read entries from stdin, each a 4-byte big-endian length then the bytes",
    )
    p.set_defaults(func=_add)

    p = cmds.add_parser("serve", help="serve the log over HTTP (tlog-tiles + POST /add)")
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument(
        "--listen",
        type=listen_address,
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="address to listen on",
    )
    p.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="URL",
        help="keep this tlog-mirror up to the log (checkpoint, then entries; repeatable); one"
        " the log's witness policy names at this URL has its cosignature added to the"
        " published checkpoint",
    )
    add_limit_arguments(p)
    p.set_defaults(func=_serve, long_running=True)

    p = cmds.add_parser(
        "proof",
        help="print an entry's tlog-proof against the published checkpoint"
        " (read-only: works beside `overt log serve`)",
    )
    p.add_argument(
        "source",
        metavar="DIR_OR_URL",
        help="the log directory (read without its lock), or a log server's URL"
        " (the proof is built from its published tiles)",
    )
    p.add_argument("index", type=_index, help="the entry's index")
    p.add_argument(
        "--subtree",
        action="store_true",
        help="prove it against its witnessed 256-entry range instead (a short proof that never"
        " changes; needs ML-DSA-44 witnesses)",
    )
    p.set_defaults(func=_proof)

    p = cmds.add_parser("witnesses", help="set the log's witnesses and quorum (a tlog-policy file)")
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument(
        "policy", metavar="POLICY", help="tlog-policy with witness lines (with URLs) and a quorum"
    )
    p.set_defaults(func=_witnesses)

    p = cmds.add_parser("verify", help="check a whole log as a client (URL or directory)")
    p.add_argument("source", metavar="URL_OR_DIR", help="the log's URL or directory")
    p.add_argument("--vkey", help="log verifier key, inline or a file (or a log line in --policy)")
    p.add_argument("--policy", help="tlog-policy: require the witness quorum it names")
    p.add_argument(
        "--max-age", type=float, metavar="SECONDS", help="require cosignatures this recent"
    )
    p.add_argument("--progress", action="store_true", help="show progress even when not a terminal")
    p.add_argument(
        "--mirror", action="append", default=[], metavar="URL_OR_DIR",
        help="a tlog-mirror's monitoring prefix to read from where the log fails (besides the"
        " policy's mirror URLs); repeatable",
    )  # fmt: skip
    p.set_defaults(func=_verify)


def _index(text: str) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise argparse.ArgumentTypeError(f"not an index: {text!r}")
    return int(text)


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port). Raises ConfigError (for callers outside argparse)."""
    try:
        return listen_address(listen)
    except argparse.ArgumentTypeError as err:
        raise ConfigError(str(err)) from err


def _init(args: argparse.Namespace) -> int:
    from overt.log.log import Log

    if args.shared:
        from overt.log.shared import SharedLog

        if args.tiles is None or args.db is None:
            raise ConfigError("--shared needs --db postgresql://... and --tiles URL")
        with SharedLog.create(
            args.dir, args.origin, tiles=args.tiles, index=args.db, key_type=args.key_type
        ) as shared:
            print(shared.vkey)
        return 0
    with Log.create(
        args.dir, args.origin, tiles=args.tiles, index=args.db, key_type=args.key_type
    ) as log:
        print(log.vkey)
    return 0


def _vkey(args: argparse.Namespace) -> int:
    from overt.log._files import read_vkey

    print(read_vkey(args.dir))
    return 0


def _token(args: argparse.Namespace) -> int:
    from overt.log._files import read_token

    print(read_token(args.dir))
    return 0


def _entries_from_files(names: Iterable[str]) -> Iterator[bytes]:
    for name in names:
        yield read_input(name)


def _paths0(stream: BinaryIO) -> Iterator[str]:
    """NUL-separated paths from ``stream`` (a trailing NUL is optional)."""
    rest = b""
    while chunk := stream.read(1 << 20):
        parts = (rest + chunk).split(b"\0")
        rest = parts.pop()
        for raw in parts:
            if raw:
                yield _decode_path(raw)
    if rest:
        yield _decode_path(rest)


def _decode_path(raw: bytes) -> str:
    # surrogateescape: any byte string the filesystem accepts names a file.
    return raw.decode(sys.getfilesystemencoding(), "surrogateescape")


def read_records(stream: BinaryIO) -> Iterator[bytes]:
    """Entries framed as a 4-byte big-endian length then that many bytes.

    Raises:
        FormatError: a stream that ends inside a record, or a length above 65535
            (the offset of the record is named).
    """
    from overt.formats.tiles import MAX_ENTRY_SIZE

    offset = 0
    buf = b""
    pos = 0
    while True:
        if len(buf) - pos < 4:
            more = stream.read(1 << 20)
            if not more:
                if pos < len(buf):
                    raise FormatError("records", f"stream ends inside a length at byte {offset}")
                return
            buf = buf[pos:] + more
            pos = 0
            continue
        n = int.from_bytes(buf[pos : pos + 4], "big")
        if n > MAX_ENTRY_SIZE:
            raise FormatError(
                "records", f"record at byte {offset} is {n} bytes, over {MAX_ENTRY_SIZE}"
            )
        while len(buf) - pos < 4 + n:
            more = stream.read(max(1 << 20, n))
            if not more:
                raise FormatError(
                    "records", f"stream ends inside the record of {n} bytes at byte {offset}"
                )
            buf = buf[pos:] + more
            pos = 0
        yield buf[pos + 4 : pos + 4 + n]
        pos += 4 + n
        offset += 4 + n


def _add(args: argparse.Namespace) -> int:
    from overt.log.log import Log

    if args.stdin0 or args.records:
        if args.files:
            raise UsageError("overt log add: give FILE arguments or --stdin0/--records, not both")
        source = (
            read_records(sys.stdin.buffer)
            if args.records
            else _entries_from_files(_paths0(sys.stdin.buffer))
        )
    elif args.files:
        source = _entries_from_files(args.files)
    else:
        raise UsageError(
            "overt log add: nothing to add: give FILE arguments, --stdin0 or --records"
        )
    # Append in chunks so a bulk add of any size stays in bounded memory. A bad
    # entry fails its whole chunk before anything of it is written.
    with Log.open(args.dir) as log:
        batch: list[bytes] = []
        size = 0
        for entry in source:
            batch.append(entry)
            size += len(entry)
            if len(batch) == BULK_CHUNK or size >= BULK_BYTES:
                _flush(log, batch)
                size = 0
        _flush(log, batch)
        _witness(log)
    return 0


def _witness(log: Log) -> None:
    """With a witness policy, get what was added cosigned and published now."""
    result = log.witness()  # its own warning is silenced by main: this says it once
    if result is not None and not result.published and log.published_size < log.size:
        assert log.policy is not None
        missing = [w.name for w in log.policy.witnesses if w.name not in result.cosigned_by]
        print(
            f"overt: warning: witness quorum not met (cosigned by: "
            f"{', '.join(result.cosigned_by) or 'none'}; no cosignature from: "
            f"{', '.join(missing) or 'none'}); published checkpoint stays at size"
            f" {log.published_size} (entries are durable; `overt log serve` retries)",
            file=sys.stderr,
        )


def _flush(log: Log, batch: list[bytes]) -> None:
    if batch:
        sys.stdout.write("".join([f"{i}\n" for i in log.add_many(batch)]))
        sys.stdout.flush()
        batch.clear()


def _serve(args: argparse.Namespace) -> int:
    from overt.log.server import serve
    from overt.log.shared import open_log

    host, port = args.listen
    limits = limits_from_args(args)
    check_listen(host, port)
    if (args.dir / "log.json").is_file():  # else Log.open says it is no log
        # The same refusal as `overt witness serve`: secrets only the owner can read.
        require_private(args.dir / "log.skey", "log key")
        require_private(args.dir / "token", "log token")
    with open_log(args.dir) as log:

        def ready() -> None:
            print(f"overt log {log.origin}: serving {args.dir} on http://{host}:{port}", flush=True)
            print(f"verifier key: {log.vkey}", flush=True)

        stop_feeding = None
        if args.mirror and getattr(log, "holds_lease", None) is not None:
            raise ConfigError(
                "--mirror is not supported on a shared log: feed each mirror with"
                " `overt mirror push MIRROR_URL --log FRONT_END_URL --follow`"
            )
        if args.mirror:
            from overt.mirror.client import feed_mirrors

            # Mirrors the log's policy names (by URL) get their cosignatures checked and
            # added to the published checkpoint, for offline endpoints (overt.log.mirroring).
            policy = getattr(log, "policy", None)
            keys = {
                m.url.rstrip("/"): m.verifier
                for m in (policy.mirrors if policy is not None else ())
                if m.url
            }
            adder = getattr(log, "add_cosignatures", None)
            stop_feeding = feed_mirrors(
                args.dir,
                args.mirror,
                keys={u: keys[u.rstrip("/")] for u in args.mirror if u.rstrip("/") in keys},
                cosigned=None if adder is None else lambda note, key: adder(note, [key]),
            )
        try:
            serve(log, host, port, ready=ready, limits=limits)
        except SystemExit as err:  # the HTTP server gave up during start-up
            if err.code:
                raise ConfigError(f"cannot serve on {host}:{port} (exit {err.code})") from err
        finally:
            if stop_feeding is not None:
                stop_feeding()
    return 0


def _proof(args: argparse.Namespace) -> int:
    from overt.log.log import LogView

    # Read-only: the published checkpoint and tiles, no lock, so it works beside a server.
    source: str = args.source
    if args.subtree:
        from overt.log.subtrees import SubtreeStore, fetch_subtree_note, subtree_proof

        if source.startswith(("http://", "https://")):
            from overt.log.client import HTTPSource

            with HTTPSource(source) as http:
                note = fetch_subtree_note(http.client, source, args.index)
                proof = subtree_proof(note, LogView(http).subtree_reader(), args.index)
        else:
            view = LogView.open(source)
            proof = subtree_proof(SubtreeStore(source), view.subtree_reader(), args.index)
    elif not source.startswith(("http://", "https://")):
        proof = LogView.open(source).proof(args.index)
    else:
        from overt.errors import NotFoundError
        from overt.log.client import HTTPSource

        with HTTPSource(source) as http:
            view = LogView(http)
            try:
                proof = view.proof(args.index)
            except NotFoundError as err:
                if args.index < view.published_size:
                    raise
                raise NotFoundError(
                    f"index {args.index} is beyond the published checkpoint of {source}"
                    f" (size {view.published_size}): not in the log, or not yet covered by"
                    " a witnessed checkpoint; retry later"
                ) from err
    sys.stdout.buffer.write(proof)
    return 0


def _witnesses(args: argparse.Namespace) -> int:
    from overt.log.log import Log
    from overt.log.shared import is_shared, set_policy

    if is_shared(args.dir):  # this front end's copy: install it in every front end's
        policy = set_policy(args.dir, read_input(args.policy))
    else:
        with Log.open(args.dir) as log:
            log.set_policy(read_input(args.policy))
            assert log.policy is not None
            policy = log.policy
    names = ", ".join(w.name for w in policy.witnesses)
    print(f"witnesses: {names}; quorum {policy.quorum} (takes effect at the next serve)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from overt.log.client import open_source, verify_log

    verifier = load_vkey(args.vkey) if args.vkey else None
    policy = load_policy(args.policy)
    if args.mirror or (policy is not None and policy.mirrors):
        return _verify_mirrored(args, verifier, policy)
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


def _verify_mirrored(
    args: argparse.Namespace, verifier: Verifier | None, policy: Policy | None
) -> int:
    """``overt log verify`` with mirrors: read where the log fails, demand the mirror quorum."""
    from overt.log.client import open_source
    from overt.monitor.mirrors import mirrors_from, verify_mirrored_log

    if verifier is None:
        logs = policy.logs if policy is not None else ()
        if len(logs) != 1:
            raise ConfigError("give --vkey (or a policy with exactly one log line)")
        verifier = logs[0].verifier
    source = open_source(args.source)
    mirrors = mirrors_from(policy, verifier.name, args.mirror)
    try:
        result = verify_mirrored_log(
            source,
            mirrors,
            verifier,
            policy,
            args.max_age,
            extra=_witnessed_copies(policy, verifier.name),
            progress=Progress("verifying", force=args.progress),
        )
    finally:
        source.close()
        for m in mirrors:
            m.source.close()
    if result.origin_problem is not None:
        print(f"overt: warning: the log is unreachable ({result.origin_problem});"
              " verified from its mirrors", file=sys.stderr)  # fmt: skip
    cp = result.log.checkpoint.checkpoint
    print(f"ok: {cp.origin} size {cp.size} root {cp.root_hash.hex()} ({cp.size} entries checked)")
    for v in result.views:
        held = f"holds [{v.min_index}, {v.holds})" if v.holds else f"no: {v.problem}"
        print(f"mirror {v.mirror.name}: {held}")
    if policy is not None and policy.mirror_quorum is not None:
        print(f"mirror quorum {policy.mirror_quorum} met by {', '.join(result.holding)}")
    return 0


def _witnessed_copies(policy: Policy | None, origin: str) -> list[bytes]:
    """The policy's witnesses' latest cosigned checkpoints of ``origin`` (those that answer)."""
    from overt.monitor.gossip import HTTPWitness, witnesses_from
    from overt.monitor.mirrors import witness_copies

    witnesses = witnesses_from(policy)
    try:
        return witness_copies(witnesses, origin)
    finally:
        for w in witnesses:
            if isinstance(w.source, HTTPWitness):
                w.source.close()
