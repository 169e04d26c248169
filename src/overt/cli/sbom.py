"""``overt sbom``: CycloneDX 1.6 SBOMs of a Python project or environment; OSV checks offline.

``create DIR_OR_ENV`` writes the SBOM (validated against the schema cyclonedx-python-lib
ships); with ``--publish`` it is logged, signed by the publisher key, as a statement about
the release artifact (``--artifact``). ``check SBOM --osv FOLDER_OR_ZIP`` lists each
vulnerable component with its advisory IDs and exits 1 when there is any; with ``--key``
and ``--log`` it also signs the verdict with a scanner's logged key and logs it
(:mod:`overt.sbom.verdict`), so that an endpoint's gate can demand it offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from overt.cli._util import UsageError, read_input

if TYPE_CHECKING:
    from overt.sbom.osv import Vulnerable

COMMANDS = {"sbom": "CycloneDX SBOMs of a Python project or environment; offline OSV checks"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("sbom", help=COMMANDS["sbom"], description=__doc__)
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True
    p = cmds.add_parser("create", help="the SBOM of a project (pyproject.toml) or an environment")
    p.add_argument(
        "target", type=Path, metavar="DIR_OR_ENV", help="project dir, venv or site-packages"
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="write it here (default stdout)")
    p.add_argument("--publish", action="store_true", help="log it (needs --artifact, --log, --key)")
    p.add_argument("--artifact", type=Path, help="with --publish: the release it describes")
    p.add_argument("--log", metavar="URL_OR_DIR", help="with --publish: the transparency log")
    p.add_argument("--key", type=Path, help="with --publish: the publisher's private key")
    p.add_argument("--token", help="log bearer token (default $OVERT_LOG_TOKEN)")
    p.set_defaults(func=_create)

    p = cmds.add_parser("check", help="components with known vulnerabilities (exit 1 if any)")
    p.add_argument("sbom", metavar="SBOM", help="a CycloneDX JSON SBOM (or - for stdin)")
    p.add_argument("--osv", required=True, type=Path, metavar="FOLDER_OR_ZIP", help="OSV export")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.add_argument("--key", type=Path, help="sign and log the verdict with this scanner key")
    p.add_argument("--log", metavar="URL_OR_DIR", help="with --key: the transparency log")
    p.add_argument("--out", type=Path, help="with --key: verdict bundle (default SBOM.scan-KEYID)")
    p.add_argument("--token", help="log bearer token (default $OVERT_LOG_TOKEN)")
    p.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for a witnessed checkpoint"
    )
    p.set_defaults(func=_check)


def _create(args: argparse.Namespace) -> int:
    if args.publish and (args.artifact is None or args.log is None or args.key is None):
        raise UsageError("sbom create --publish needs --artifact, --log and --key")
    from overt.sbom.generate import make_sbom

    data = make_sbom(args.target)
    if args.publish:
        from overt.source.publishing import publish_statement

        artifact = read_input(str(args.artifact))
        bom = json.loads(data)
        out = args.out or args.artifact.with_name(args.artifact.name + ".cdx.json")
        index = publish_statement(
            args.log,
            args.key,
            args.artifact.name,
            hashlib.sha256(artifact).hexdigest(),
            ("https://cyclonedx.org/bom/v1.6", bom),
            out.with_name(out.name + ".overt"),
            token=args.token,
        )
        print(f"logged the SBOM of {args.artifact.name} as entry {index}")
        args.out = out
    if args.out is None:
        sys.stdout.buffer.write(data)
        return 0
    from overt.source.publishing import write_atomic

    write_atomic(args.out, data)
    print(f"SBOM ({len(json.loads(data).get('components', []))} components) -> {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from overt.sbom.errors import SbomError
    from overt.sbom.osv import load_osv, vulnerable_components

    if (args.key is None) != (args.log is None):
        raise UsageError("sbom check: --key and --log go together")
    if args.key is not None and args.sbom == "-":
        raise UsageError("sbom check --key needs the SBOM as a file (its name is the subject)")
    sbom = read_input(args.sbom)
    if args.key is None:
        found = vulnerable_components(sbom, load_osv(args.osv))
    else:
        found = _log_verdict(args, sbom)
    if args.json:
        doc = [
            {
                "name": v.name,
                "version": v.version,
                "severity": v.severity,
                "advisories": list(v.advisories),
            }
            for v in found
        ]
        print(json.dumps(doc, indent=2))
    else:
        for v in found:
            print(f"{v.name} {v.version} ({v.severity}): {', '.join(v.advisories)}")
    if found:
        raise SbomError(f"{len(found)} vulnerable component(s) in {args.sbom}")
    if not args.json:
        print("no known vulnerability")
    return 0


def _log_verdict(args: argparse.Namespace, sbom: bytes) -> list[Vulnerable]:
    """Match, then sign and log the verdict with the scanner key; the vulnerable components."""
    import time

    from overt.publish.keys import load_publisher_signer
    from overt.publish.publisher import Publication, write_bundle
    from overt.sbom.errors import SbomError
    from overt.sbom.osv import load_osv_export, vulnerable_components
    from overt.sbom.verdict import SCAN_PREDICATE, ScanVerdict, VulnerableComponent, sbom_digest
    from overt.source.publishing import publish_with_logged_key

    export = load_osv_export(args.osv)
    if export.date is None:
        raise SbomError(
            f"the OSV export {args.osv} has no dated advisory: its date (what a gate's"
            " max_osv_age checks) is unknown"
        )
    found = vulnerable_components(sbom, export.advisories)
    signer = load_publisher_signer(args.key)  # before logging: a bad key logs nothing
    ranks = ("none", "low", "medium", "high", "critical")
    worst = max((ranks.index(v.severity) for v in found), default=0)
    verdict = ScanVerdict(
        export.sha256,
        export.date,
        len(export.advisories),
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        ranks[worst],
        tuple(VulnerableComponent(v.name, v.version, v.severity, v.advisories) for v in found),
    )
    name = Path(args.sbom).name
    item = Publication(name, sbom_digest(json.loads(sbom)), (SCAN_PREDICATE, verdict.to_json()))
    bundle = publish_with_logged_key(
        args.log, args.key, item, "scanner", token=args.token, timeout=args.timeout
    )
    out = args.out or Path(f"{args.sbom}.scan-{signer.keyid[:8]}")
    write_bundle(out, bundle)
    print(
        f"scan of {name}: max severity {verdict.max_severity} (OSV export of {export.date});"
        f" verdict logged as entry {bundle.proof.index}, bundle written to {out}",
        file=sys.stderr if args.json else sys.stdout,
    )
    return found
