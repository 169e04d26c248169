"""``overt rules audit|diff``: audit YARA rules for collection and targeting.

    overt rules audit PATH... [--format text|json|sarif] [--fail-on LEVEL] [--static-only]
    overt rules diff OLD NEW [--format text|json] [--fail-on LEVEL] [--static-only]

Exit status: 0 clean, 1 when a finding reaches ``--fail-on`` (default
``high``), when no rule was found, or on a failure (one line on stderr), 2 on
a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from overt.errors import ConfigError

__all__ = ["register"]

# overt.rules.detectors.Severity, spelled out so that `overt --help` does not import the
# rule engines (tests/cli/test_cli.py checks the two agree).
LEVELS = ("info", "low", "medium", "high", "critical")
#: overt.rules.attest.DEFAULT_AUDIT (checked by the same test).
DEFAULT_AUDIT = "no-espionage"


#: Top-level commands this module registers, with their one-line help.
COMMANDS = {
    "rules": "audit detection rules for collection and targeting",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("rules", help=COMMANDS["rules"])
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    cmds.required = True

    a = cmds.add_parser("audit", help="audit .yar/.yara files or folders")
    a.__class__ = _with_detector_list(type(a))
    a.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="rule files, folders (recursive), or one archive (.tar, .tar.gz, .zip)",
    )
    a.add_argument(
        "--format", choices=("text", "json", "sarif"), default="text", help="report format"
    )
    a.add_argument("--fail-on", choices=LEVELS, default="high", help="exit 1 at this severity")
    a.add_argument("--static-only", action="store_true", help="skip the canary scan")
    a.set_defaults(func=_audit)

    d = cmds.add_parser("diff", help="show and audit what changed between two bundles")
    d.add_argument("old", metavar="OLD", help="folder, rule file or archive")
    d.add_argument("new", metavar="NEW", help="folder, rule file or archive")
    d.add_argument("--format", choices=("text", "json"), default="text", help="report format")
    d.add_argument("--fail-on", choices=LEVELS, default="high", help="exit 1 at this severity")
    d.add_argument("--static-only", action="store_true", help="skip the canary scan")
    d.set_defaults(func=_diff)

    t = cmds.add_parser("attest", help="audit a rule bundle and log a signed verdict")
    t.add_argument(
        "bundle", metavar="BUNDLE", help="the rule bundle as published (.yar, .tar.gz, .zip)"
    )
    t.add_argument("--key", required=True, type=Path, help="the auditor's private key file")
    t.add_argument("--log", required=True, metavar="URL_OR_DIR", help="the transparency log")
    t.add_argument("--token", help="log write token (default: $OVERT_LOG_TOKEN)")
    t.add_argument("--audit", default=DEFAULT_AUDIT, help="audit name")
    t.add_argument(
        "--fail-on", choices=LEVELS, default="high", help="a FAIL verdict at this severity"
    )
    t.add_argument("--static-only", action="store_true", help="skip the canary scan")
    t.add_argument("--out", type=Path, help="write the envelope here (default BUNDLE.audit.json)")
    t.set_defaults(func=_attest)


def _with_detector_list(base: type[argparse.ArgumentParser]) -> type[argparse.ArgumentParser]:
    """The audit parser lists the detectors of the registry in its ``--help``
    (read only then, so that ``overt --help`` does not import the rule engines)."""

    class _AuditParser(base):  # type: ignore[valid-type,misc]
        def format_help(self) -> str:
            from overt.rules.detectors import DETECTORS

            base_fmt: type[argparse.HelpFormatter] = getattr(self, "formatter_class")  # noqa: B009

            class _Raw(base_fmt):  # type: ignore[valid-type,misc]
                def _fill_text(self, text: str, width: int, indent: str) -> str:
                    return "".join(indent + ln for ln in text.splitlines(keepends=True))

            self.formatter_class = _Raw
            width = max(len(n) for n in DETECTORS)
            self.epilog = "detectors (Finding.detector):\n" + "\n".join(
                f"  {name:<{width}}  {d.help}" for name, d in DETECTORS.items()
            )
            return str(super().format_help())

    return _AuditParser


def _audit(args: argparse.Namespace) -> int:
    from overt.rules.audit import audit_paths
    from overt.rules.detectors import Severity
    from overt.rules.report import format_json, format_sarif, format_text

    report = audit_paths(args.paths, dynamic=not args.static_only)
    out = {"text": format_text, "json": format_json, "sarif": format_sarif}[args.format](report)
    sys.stdout.write(out)
    if report.rules == 0:  # a typo or an empty bundle must not pass CI as clean
        raise ConfigError(f"no rules found in {report.name} ({report.files} files)")
    return 1 if report.fails(Severity.parse(args.fail_on)) else 0


def _diff(args: argparse.Namespace) -> int:
    from overt.rules.detectors import Severity
    from overt.rules.diff import diff_paths, format_diff
    from overt.rules.report import format_json, format_text

    d = diff_paths(args.old, args.new, dynamic=not args.static_only)  # ConfigError: one line
    assert d.report is not None
    if args.format == "json":
        doc = {
            "changes": [
                {
                    "kind": c.kind,
                    "rule": c.name,
                    "path": c.path,
                    "line": c.line,
                    "details": list(c.details),
                }
                for c in d.changes
            ],
            "audit": json.loads(format_json(d.report)),
        }
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(format_diff(d))
        sys.stdout.write(format_text(d.report))
    return 1 if d.report.fails(Severity.parse(args.fail_on)) else 0


def _attest(args: argparse.Namespace) -> int:
    from overt.log.fs import atomic_write
    from overt.publish.keys import load_publisher_signer
    from overt.publish.publisher import open_log_writer
    from overt.rules.attest import attest_bundle
    from overt.rules.bundle import read_bundle_file
    from overt.rules.detectors import Severity

    data = read_bundle_file(args.bundle)  # bounded: never a 1 GiB file whole
    signer = load_publisher_signer(args.key)
    name = Path(args.bundle).name
    att = attest_bundle(
        name, data, signer, args.audit, Severity.parse(args.fail_on), dynamic=not args.static_only
    )
    with open_log_writer(args.log, args.token) as log:
        (index,) = log.add_many([att.envelope])
    out = args.out or Path(f"{args.bundle}.audit.json")
    atomic_write(out, att.envelope)
    verdict = "pass" if att.passed else "FAIL"
    counts = ", ".join(f"{n} {k}" for k, n in att.report.counts().items() if n)
    print(f"{verdict}: {args.audit} for {name} sha256 {att.sha256} ({counts or 'no findings'})")
    print(f"logged at index {index}; envelope in {out} (give it to `overt publish --attest`)")
    return 0 if att.passed else 1
