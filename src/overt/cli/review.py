"""``overt review``: reviewer keys, signed reviews bound to file digests, coverage and diffs.

A thin shell over :mod:`overt.source.review`: ``keygen`` creates a reviewer key and logs
its key set 1 (reviewers are not publishers; their keys are logged like publisher keys),
``record`` signs and logs a review of a snapshot's files, ``coverage`` measures a
snapshot's coverage from review bundles, ``diff`` lists what a reviewer still has to read.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from overt.cli._util import UsageError, read_input

if TYPE_CHECKING:
    from overt.formats.source_snapshot import Snapshot
    from overt.source.review import Review

COMMANDS = {"review": "source reviews bound to file digests: keys, record, coverage, diff"}

_FINDING = re.compile(r"(low|medium|high|critical):(.+?):([1-9][0-9]{0,9}):(.+)", re.DOTALL)
_RANGE = re.compile(r"(.+):([1-9][0-9]{0,9})-([1-9][0-9]{0,9})")


def _log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", required=True, metavar="URL_OR_DIR", help="the transparency log")
    p.add_argument("--token", help="log bearer token (default $OVERT_LOG_TOKEN)")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for a witnessed checkpoint"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("review", help=COMMANDS["review"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True

    p = cmds.add_parser("keygen", help="create a reviewer key (KEY, KEY.pub, KEY.chain), logged")
    p.add_argument("key", type=Path, metavar="KEY", help="private key file to create")
    p.add_argument("--name", required=True, help="key name, e.g. alice.example/review")
    _log_args(p)
    p.set_defaults(func=_keygen)

    p = cmds.add_parser("record", help="sign and log a review of a snapshot's files")
    p.add_argument("snapshot", type=Path, metavar="SNAPSHOT", help="overt source snapshot file")
    p.add_argument("--key", required=True, type=Path, help="the reviewer's private key")
    p.add_argument(
        "--files", required=True, nargs="+", metavar="PATTERN", help="files read (fnmatch)"
    )
    p.add_argument(
        "--lines", nargs="+", default=[], metavar="FILE:START-END", help="only these lines"
    )
    p.add_argument("--verdict", required=True, choices=("pass", "concerns", "fail"))
    p.add_argument("--thoroughness", required=True, choices=("low", "medium", "high"))
    p.add_argument(
        "--finding",
        action="append",
        default=[],
        metavar="SEVERITY:FILE:LINE:TEXT",
        help="a finding (severity low, medium, high or critical); repeat for more",
    )
    p.add_argument("--out", type=Path, help="bundle path (default SNAPSHOT.review-KEYID.overt)")
    _log_args(p)
    p.set_defaults(func=_record)

    p = cmds.add_parser("coverage", help="a snapshot's files and lines reviewed, by file digest")
    p.add_argument(
        "snapshot",
        type=Path,
        metavar="RELEASE_OR_SNAPSHOT",
        help="a snapshot file, or a release bundle carrying one (publish --source)",
    )
    p.add_argument("--reviews", nargs="+", default=[], metavar="BUNDLE", help="review bundles")
    p.add_argument("--vkey", required=True, help="the log's verifier key, inline or a file")
    p.add_argument("--min-reviewers", type=int, default=1, metavar="K", help="reviewers per file")
    p.add_argument("--source", type=Path, metavar="DIR", help="the tree, to count lines")
    p.add_argument("--require", type=float, metavar="PERCENT", help="exit 1 below this file share")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=_coverage)

    p = cmds.add_parser("diff", help="what a reviewer of OLD still has to read in NEW")
    p.add_argument("old", type=Path, metavar="OLD", help="the reviewed snapshot file")
    p.add_argument("new", type=Path, metavar="NEW", help="the new snapshot file")
    p.add_argument("--reviews", nargs="+", default=[], metavar="BUNDLE", help="review bundles")
    p.add_argument("--vkey", help="with --reviews: the log's verifier key")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=_diff)


def _read_snapshot(path: Path) -> Snapshot:
    """A snapshot file, or the snapshot a release bundle carries (``publish --source``).

    Raises:
        FormatError: neither; a bundle whose snapshot is not the one its provenance names.
    """
    from overt.errors import FormatError
    from overt.formats.source_snapshot import parse_snapshot

    data = read_input(str(path))
    if not data.startswith(b"{"):
        return parse_snapshot(data)
    import hashlib

    from overt.formats.dsse import parse_envelope
    from overt.formats.slsa_provenance import PROVENANCE_PREDICATE, Provenance
    from overt.formats.statement import parse_statement
    from overt.publish.bundle import parse_bundle

    bundle = parse_bundle(data)
    if not bundle.source:
        raise FormatError("release bundle", f"{path} carries no source snapshot (publish --source)")
    named = set()
    for att in bundle.attestations:
        statement = parse_statement(parse_envelope(att.entry).payload)
        if statement.predicate_type == PROVENANCE_PREDICATE:
            named.add(Provenance.from_json(statement.predicate).source_sha256)
    if hashlib.sha256(bundle.source).hexdigest() not in named:
        raise FormatError(
            "release bundle", f"{path}: its snapshot is not the one its provenance names"
        )
    return parse_snapshot(bundle.source)


def _keygen(args: argparse.Namespace) -> int:
    from overt.errors import ConfigError
    from overt.publish.chain import append_chain, create_chain
    from overt.publish.keys import generate_publisher_key, write_key_files
    from overt.publish.keyset import KeyState, make_keyset_entry
    from overt.publish.publisher import open_log_writer

    chain = args.key.with_name(args.key.name + ".chain")
    for path in (args.key, chain):
        if path.exists():
            raise ConfigError(f"{path} exists: a reviewer key is created once")
    skey, signer = generate_publisher_key(args.name)
    entry = make_keyset_entry(KeyState.pinned(signer.key), [signer], [signer.key])
    with open_log_writer(args.log, args.token, args.timeout) as log:
        (index,) = log.add_many([entry])  # logged first: a key on disk is always a logged one
    write_key_files(args.key, skey, signer)
    create_chain(chain, signer.key)
    append_chain(chain, entry)
    print(signer.key.vkey)
    print(f"reviewer key {args.key} (0600), key set 1 logged as entry {index}, chain {chain}")
    return 0


def _parse_lines(specs: list[str]) -> list[tuple[str, int, int]]:
    out = []
    for spec in specs:
        m = _RANGE.fullmatch(spec)
        if not m:
            raise UsageError(f"--lines {spec!r}: want FILE:START-END")
        out.append((m.group(1), int(m.group(2)), int(m.group(3))))
    return out


def _parse_findings(specs: list[str]) -> list[tuple[str, str, int, str]]:
    out = []
    for spec in specs:
        m = _FINDING.fullmatch(spec)
        if not m:
            raise UsageError(f"--finding {spec!r}: want SEVERITY:FILE:LINE:TEXT")
        out.append((m.group(1), m.group(2), int(m.group(3)), m.group(4)))
    return out


def _record(args: argparse.Namespace) -> int:
    from overt.formats.source_review import REVIEW_PREDICATE
    from overt.publish.keys import load_publisher_signer
    from overt.publish.publisher import Publication, write_bundle
    from overt.source.publishing import publish_with_logged_key
    from overt.source.review import make_review

    lines = _parse_lines(args.lines)
    findings = _parse_findings(args.finding)
    snapshot = _read_snapshot(args.snapshot)
    signer = load_publisher_signer(args.key)
    predicate = make_review(
        snapshot,
        signer.key.vkey,
        args.files,
        args.verdict,
        args.thoroughness,
        lines,
        findings,
    )
    item = Publication("source", snapshot.digest, (REVIEW_PREDICATE, predicate.to_json()))
    bundle = publish_with_logged_key(
        args.log, args.key, item, "reviewer", token=args.token, timeout=args.timeout
    )
    out = args.out or args.snapshot.with_name(
        f"{args.snapshot.name}.review-{signer.keyid[:8]}.overt"
    )
    write_bundle(out, bundle)
    print(
        f"review of {len(predicate.files)} files of source {snapshot.digest[:16]}... logged as"
        f" entry {bundle.proof.index}; bundle written to {out}"
    )
    return 0


def _reviews(paths: list[str], vkey: str) -> list[Review]:
    from overt.cli._util import load_vkey
    from overt.source.review import verify_review

    if not paths:
        return []
    verifier = load_vkey(vkey)
    return [verify_review(read_input(p), verifier, p) for p in paths]


def _line_counts(snapshot: Snapshot, directory: Path) -> dict[str, int]:
    import hashlib

    from overt.source.errors import SourceError

    counts: dict[str, int] = {}
    for f in snapshot.files:
        if f.mode == "120000":
            counts[f.sha256] = 0
            continue
        try:
            data = (directory / f.path).read_bytes()
        except OSError as err:
            raise SourceError(f"cannot read {directory / f.path}: {err.strerror}", f.path) from err
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise SourceError(f"{directory}: {f.path} is not the file of the snapshot", f.path)
        counts[f.sha256] = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    return counts


def _coverage(args: argparse.Namespace) -> int:
    from overt.source.review import coverage

    snapshot = _read_snapshot(args.snapshot)
    counts = _line_counts(snapshot, args.source) if args.source else None
    if args.min_reviewers < 1:
        raise UsageError("--min-reviewers must be at least 1")
    result = coverage(snapshot, _reviews(args.reviews, args.vkey), args.min_reviewers, counts)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        k = args.min_reviewers
        print(f"source {result.snapshot}")
        print(
            f"files reviewed by >= {k}: {result.files_reviewed}/{result.files}"
            f" ({result.file_share:.1f}%)"
        )
        if result.line_share is not None:
            print(
                f"lines reviewed by >= {k}: {result.lines_reviewed}/{result.lines}"
                f" ({result.line_share:.1f}%)"
            )
        print(f"reviewers: {len(result.reviewers)}")
        for path in result.changed:
            print(f"changed since reviewed: {path}")
        for path in result.unreviewed:
            print(f"unreviewed: {path}")
        for reviewer, f in result.open_findings:
            print(f"open finding [{f.severity}] {f.path}:{f.line}: {f.text} (by {reviewer[:16]})")
    if args.require is not None and result.file_share < args.require:
        from overt.source.review import ReviewError

        raise ReviewError(
            f"coverage {result.file_share:.1f}% of files by >= {args.min_reviewers} reviewers"
            f" is under the required {args.require:g}%"
        )
    return 0


def _diff(args: argparse.Namespace) -> int:
    from overt.source.review import diff_snapshots

    if args.reviews and not args.vkey:
        raise UsageError("--reviews needs --vkey (the log's key)")
    reviewed = {
        f.sha256 for r in _reviews(args.reviews, args.vkey or "") for f in r.predicate.files
    }
    d = diff_snapshots(_read_snapshot(args.old), _read_snapshot(args.new), reviewed)
    if args.json:
        doc = {"added": d.added, "changed": d.changed, "removed": d.removed}
        print(json.dumps(doc, indent=2))
        return 0
    for tag, paths in (("A", d.added), ("M", d.changed), ("D", d.removed)):
        for path in paths:
            print(f"{tag} {path}")
    return 0
