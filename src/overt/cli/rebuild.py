"""``overt rebuild``: rebuild a release from its source snapshot; sign and log the verdict.

A thin shell over :mod:`overt.rebuild`: check the source directory against the snapshot,
build a clean copy with a fixed environment (:func:`overt.rebuild.build.clean_build`),
compare the output with the released artifact, and log a SLSA Verification Summary
(:mod:`overt.formats.vsa`) signed by the rebuilder's logged key: PASSED or FAILED. A
mismatch exits 1 after logging, naming where the outputs first differ. A build that
cannot run (bad source, failure, timeout, no output) logs nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from overt.cli._util import read_input

COMMANDS = {"rebuild": "rebuild a release from its source snapshot; log a signed SLSA VSA"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rebuild", help=COMMANDS["rebuild"], description=__doc__)
    p.add_argument("bundle", type=Path, metavar="RELEASE_BUNDLE", help="the release's .overt")
    p.add_argument("--snapshot", required=True, type=Path, help="its source snapshot file")
    p.add_argument("--source", required=True, type=Path, metavar="DIR", help="the source tree")
    p.add_argument("--build", required=True, metavar="COMMAND", help="the build command (sh)")
    p.add_argument(
        "--output", required=True, metavar="PATH", help="the output, relative (glob: one file)"
    )
    p.add_argument(
        "--artifact",
        type=Path,
        help="the released file, to show differences (default: RELEASE_BUNDLE without .overt)",
    )
    p.add_argument("--key", required=True, type=Path, help="the rebuilder's logged private key")
    p.add_argument("--log", required=True, metavar="URL_OR_DIR", help="the transparency log")
    p.add_argument("--token", help="log bearer token (default $OVERT_LOG_TOKEN)")
    p.add_argument("--out", type=Path, help="VSA bundle (default RELEASE_BUNDLE.rebuild-KEYID)")
    p.add_argument("--build-timeout", type=float, default=3600.0, help="seconds")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for a witnessed checkpoint"
    )
    p.set_defaults(func=_rebuild)


def _rebuild(args: argparse.Namespace) -> int:
    from overt.errors import FormatError
    from overt.formats.dsse import parse_envelope
    from overt.formats.source_snapshot import parse_snapshot
    from overt.formats.statement import parse_statement
    from overt.formats.vsa import SOURCE_SNAPSHOT_URI, VSA_PREDICATE, Vsa
    from overt.publish.bundle import parse_bundle
    from overt.publish.keys import load_publisher_signer
    from overt.publish.publisher import Publication, write_bundle
    from overt.rebuild.build import clean_build
    from overt.rebuild.compare import first_difference
    from overt.rebuild.errors import RebuildError, RebuildMismatchError
    from overt.source.publishing import publish_with_logged_key

    release = parse_bundle(read_input(str(args.bundle)))
    statement = parse_statement(parse_envelope(release.entry).payload)
    subject = statement.subjects[0]
    if subject.sha256 is None:
        raise FormatError("release bundle", "its subject has no sha256 digest")
    artifact_path = args.artifact
    if artifact_path is None and args.bundle.name.endswith(".overt"):
        artifact_path = args.bundle.with_name(args.bundle.name.removesuffix(".overt"))
    artifact = None
    if artifact_path is not None and artifact_path.is_file():
        artifact = artifact_path.read_bytes()
        if hashlib.sha256(artifact).hexdigest() != subject.sha256:
            raise RebuildError(
                f"{args.bundle} is the bundle of another artifact than {artifact_path}"
            )
    snapshot = parse_snapshot(read_input(str(args.snapshot)))
    signer = load_publisher_signer(args.key)  # before the build: a bad key wastes no build
    built = clean_build(snapshot, args.source, args.build, args.output, args.build_timeout)
    passed = built.sha256 == subject.sha256
    difference = None
    if not passed:
        difference = (
            first_difference(artifact, built.data)
            if artifact is not None
            else f"sha256 {built.sha256} is not the released {subject.sha256}"
        )
    vsa = Vsa(
        f"https://overt.dev/rebuilder/{signer.key.name}",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        subject.name,
        (
            (SOURCE_SNAPSHOT_URI, snapshot.digest),
            ("overt:release-entry", hashlib.sha256(release.entry).hexdigest()),
        ),
        passed,
        built.sha256,
        difference,
    )
    item = Publication(subject.name, subject.sha256, (VSA_PREDICATE, vsa.to_json()))
    bundle = publish_with_logged_key(
        args.log, args.key, item, "rebuilder", token=args.token, timeout=args.timeout
    )
    out = args.out or args.bundle.with_name(f"{args.bundle.name}.rebuild-{signer.keyid[:8]}")
    write_bundle(out, bundle)
    verdict = "matches" if passed else "DOES NOT MATCH"
    print(
        f"rebuild of {subject.name} {verdict} (sha256 {built.sha256}); VSA logged as entry"
        f" {bundle.proof.index}, bundle written to {out}"
    )
    if difference is not None:
        if artifact is not None and artifact_path is not None:
            report = _diffoscope_report(artifact_path, built.data, built.name)
            if report:
                sys.stdout.write(report)
        raise RebuildMismatchError(subject.name, difference)
    return 0


def _diffoscope_report(released: Path, data: bytes, name: str) -> str | None:
    import tempfile

    from overt.rebuild.compare import diffoscope

    with tempfile.TemporaryDirectory(prefix="overt-diff-") as tmp:
        rebuilt = Path(tmp) / Path(name).name
        rebuilt.write_bytes(data)
        return diffoscope(released, rebuilt)
