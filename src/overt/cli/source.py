"""``overt source``: snapshot a source tree (a canonical SHA-256 manifest) and log it.

``overt source snapshot DIR [--rev REV] [--allow-dirty] [--out FILE]`` writes the snapshot
(:mod:`overt.formats.source_snapshot`) to FILE or stdout; with ``--out`` it prints the
source digest. ``--publish --log LOG --key KEY`` also logs it, signed by the publisher
key, and writes the bundle to ``FILE.overt``. A refused tree logs nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from overt.cli._util import UsageError

COMMANDS = {"source": "source snapshots: a git revision or directory named by its file digests"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("source", help=COMMANDS["source"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True
    p = cmds.add_parser(
        "snapshot",
        help="the snapshot of a git revision (HEAD by default) or a plain directory",
        description="Write the canonical manifest (mode, SHA-256, path of every file) of DIR's"
        " committed revision, or of a plain directory's files; see docs/source-review.md.",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="a git repository or a directory")
    p.add_argument("--rev", help="the git revision (default HEAD)")
    p.add_argument(
        "--allow-dirty",
        action="store_true",
        help="snapshot HEAD even with uncommitted changes (they are not in it)",
    )
    p.add_argument(
        "--out", type=Path, metavar="FILE", help="write the snapshot here (default stdout)"
    )
    p.add_argument("--publish", action="store_true", help="log it (needs --out, --log, --key)")
    p.add_argument("--log", metavar="URL_OR_DIR", help="with --publish: the transparency log")
    p.add_argument("--key", type=Path, help="with --publish: the publisher's private key")
    p.add_argument("--token", help="log bearer token (default $OVERT_LOG_TOKEN)")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for a witnessed checkpoint"
    )
    p.set_defaults(func=_snapshot)

    p = cmds.add_parser(
        "evidence",
        help="add reviews and rebuild summaries to a release bundle, proven against one checkpoint",
        description="Write RELEASE_BUNDLE with the logged statements of the given review and"
        " rebuild bundles among its attestations, every entry proven again against the log's"
        " current checkpoint: what a gate with a source requirement checks offline.",
    )
    p.add_argument("bundle", type=Path, metavar="RELEASE_BUNDLE", help="the release's .overt")
    p.add_argument("--add", nargs="+", required=True, metavar="BUNDLE", help="review/VSA bundles")
    p.add_argument("--log", required=True, metavar="URL_OR_DIR", help="the transparency log")
    p.add_argument("--token", help="log bearer token (default $OVERT_LOG_TOKEN)")
    p.add_argument("--out", type=Path, help="the new bundle (default: RELEASE_BUNDLE, replaced)")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for a witnessed checkpoint"
    )
    p.add_argument(
        "--unsafe-local-witness", type=Path, action="append", default=[], metavar="SKEY",
        help="demos and tests only: cosign the checkpoint with this local witness key",
    )  # fmt: skip
    p.set_defaults(func=_evidence)


def _snapshot(args: argparse.Namespace) -> int:
    if args.publish and (args.out is None or args.log is None or args.key is None):
        raise UsageError("source snapshot --publish needs --out, --log and --key")
    from overt.formats.source_snapshot import format_snapshot
    from overt.source.snapshot import snapshot_tree

    snapshot = snapshot_tree(args.dir, args.rev, allow_dirty=args.allow_dirty)
    text = format_snapshot(snapshot)
    if args.out is None:
        sys.stdout.buffer.write(text)
        return 0
    if args.publish:
        from overt.source.publishing import publish_statement

        bundle_path = args.out.with_name(args.out.name + ".overt")
        _write(args.out, text)
        from overt.formats.source_snapshot import snapshot_predicate

        index = publish_statement(
            args.log,
            args.key,
            "source",
            snapshot.digest,
            snapshot_predicate(snapshot),
            bundle_path,
            token=args.token,
            timeout=args.timeout,
        )
        print(f"logged source snapshot as entry {index}; bundle written to {bundle_path}")
    else:
        _write(args.out, text)
    tree = f", git tree {snapshot.git_tree}" if snapshot.git_tree else ""
    print(f"source sha256:{snapshot.digest} ({len(snapshot.files)} files{tree}) -> {args.out}")
    return 0


def _evidence(args: argparse.Namespace) -> int:
    from overt.cli._util import read_input
    from overt.cli.publish import _local_witnesses
    from overt.publish.bundle import parse_bundle
    from overt.publish.publisher import open_log_writer, write_bundle
    from overt.source.publishing import gather_evidence

    release = parse_bundle(read_input(str(args.bundle)))
    evidence = [parse_bundle(read_input(p)) for p in args.add]
    with open_log_writer(args.log, args.token, args.timeout) as log:
        bundle = gather_evidence(
            log, release, evidence, _local_witnesses(args.unsafe_local_witness)
        )
    out = args.out or args.bundle
    write_bundle(out, bundle)
    print(f"{len(bundle.attestations)} attestations proven at tree size {_size(bundle)} -> {out}")
    return 0


def _size(bundle: object) -> int:
    from overt.formats.checkpoint import parse_checkpoint
    from overt.formats.note import parse_note

    note: bytes = bundle.proof.checkpoint  # type: ignore[attr-defined]
    return parse_checkpoint(parse_note(note).text).size


def _write(path: Path, data: bytes) -> None:
    from overt.source.publishing import write_atomic

    write_atomic(path, data)
