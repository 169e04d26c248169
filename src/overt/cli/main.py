"""Entry point of the ``overt`` command.

Each command group lives in its own module under ``overt.cli`` and exposes
``register(subparsers)``; this module only wires them together and maps errors
to exit codes: 0 success, 1 a failure (one line on stderr), 2 a usage error.
``--verbose`` (before or after the command) shows the traceback of a failure.

Start-up stays fast (``overt --help`` in well under 0.1 s) because building the
parser imports nothing heavy: every command module imports what its handler
needs (SQLAlchemy, httpx, uvicorn, the rule engines) inside the handler.
``tests/cli/test_cli.py`` checks that ``overt --help`` loads none of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from overt import __version__
from overt.cli._util import UsageError
from overt.errors import OvertError

# Command-group modules, in the order ``overt --help`` lists them.
_GROUPS = (
    "log",
    "proof",
    "witness",
    "mirror",
    "monitor",
    "publish",
    "rules",
    "disclosure",
    "source",
    "review",
    "rebuild",
    "sbom",
    "telemetry",
    "collector",
    "portal",
    "db",
)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` for every option that has a real default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        default = action.default
        if (
            "%(default)" in help_text
            or default is None
            or default is False
            or default == []
            or default is argparse.SUPPRESS
            or not (action.option_strings or action.nargs in ("?", "*"))
        ):
            return action.help
        return f"{help_text} (default: %(default)s)".lstrip()


class _Parser(argparse.ArgumentParser):
    """Every (sub)parser: defaults shown in help, one-line usage errors, ``--verbose`` anywhere."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        # SUPPRESS: a subcommand's parser must not reset a --verbose given before it.
        self.add_argument(
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the traceback of a failure",
        )

    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's own contract: usage errors exit 2 with one line on stderr.
        self.exit(2, f"overt: usage: {self.prog}: {message}\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``overt`` parser. With ``argv``, only the command group it names is built in
    full (the others get a stub that lists them in ``overt --help``): building every
    subcommand's parser is most of the start-up time of a command that does little."""
    wanted = _command(argv) if argv is not None else None
    parser = _Parser(
        prog="overt",
        description="overt: prove what security software ships: transparency log, witnesses,"
        " monitors, update gate, rule audits.",
    )
    parser.add_argument("--version", action="version", version=f"overt {__version__}")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _GROUPS:
        module = importlib.import_module(f"overt.cli.{name}")
        commands: dict[str, str] = module.COMMANDS
        if argv is None or wanted in commands:
            module.register(sub)
        else:
            for command, help_text in commands.items():
                sub.add_parser(command, help=help_text, add_help=False)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command an argument list names (its first word that is not an option)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    if not getattr(args, "long_running", False):
        # A one-shot command reports a witnessing round that missed its quorum in its own
        # one line; the library's log line would say it twice. Servers keep their logs.
        import logging

        logging.getLogger("overt.log.witnessing").disabled = True
    try:
        result = args.func(args)
    except UsageError as err:  # an OvertError too: caught first, exit 2 like argparse
        print(f"overt: usage: {err}", file=sys.stderr)
        return 2
    except OvertError as err:
        if verbose:
            traceback.print_exc()
        print(f"overt: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("overt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as err:  # a bug, or a foreign error not yet wrapped: still one line
        if verbose:
            traceback.print_exc()
        print(
            f"overt: unexpected {type(err).__name__}: {err} (--verbose shows the traceback)",
            file=sys.stderr,
        )
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
