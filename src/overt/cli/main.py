"""Entry point of the ``overt`` command.

Each command group lives in its own module under ``overt.cli`` and exposes
``register(subparsers)``; this module only wires them together and maps errors
to exit codes: 0 success, 1 a failure (one line on stderr), 2 a usage error.
``--verbose`` shows the traceback of a failure.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from overt.errors import OvertError

# Command-group modules, in the order ``overt --help`` lists them.
_GROUPS = ("log", "proof", "witness", "monitor", "publish", "rules")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own contract: usage errors exit 2 with one line on stderr.
        self.exit(2, f"overt: usage: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="overt",
        description="overt: prove what security software ships: transparency log, witnesses,"
        " monitors, update gate, rule audits.",
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on failure")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _GROUPS:
        module = importlib.import_module(f"overt.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except OvertError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"overt: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("overt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
