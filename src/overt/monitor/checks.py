"""Checks a monitor runs on every new log entry, as plug-ins registered by name.

A check is anything with a ``name`` and ``check(index, entry) -> list[Alert]`` (the
:class:`Check` protocol). It sees each entry once, in log order, after the entry has been
proven to be in the log's verified tree; it returns the alerts it has about that entry (an
empty list when all is well). Checks are registered by name with a factory that takes the
optional argument of ``--check NAME=ARG``::

    register_check("size-limit", SizeLimit.from_arg)
    make_check("size-limit=4096")      # -> SizeLimit(4096)

Built in:

``size-limit[=BYTES]``
    An entry larger than BYTES (default 32768) is an alert. overt's publications are DSSE
    envelopes of a few KiB; a much larger entry is worth a look even though the log accepts
    up to 65535 bytes.
``dsse-envelope``
    An entry that looks like JSON (its first non-blank byte is ``{`` or ``[``) must be a DSSE
    envelope (:mod:`overt.formats.dsse`), in the canonical form overt logs: a second spelling
    of one envelope is how a log or publisher would smuggle in a look-alike.

``rule-audit=STORE[:LEVEL]``
    Audits every logged rule bundle found (by SHA-256) in the folder STORE and alerts on
    findings at or above LEVEL (default medium), on logged bundles missing from the store,
    and on failed rule-audit attestations (:mod:`overt.rules.watch`).

``telemetry-access=CUSTOMER[:DAYS]``
    A customer's entries in a telemetry collector's access log: a read without a reason, or
    of data older than the declared retention, is an alert (:mod:`overt.telemetry.access`).

A check that raises, or runs longer than the runner's ``timeout`` on one entry, is a
:class:`CheckFailure` for that entry and check (the monitor turns it into a ``check-failed``
alert) and the run goes on with the next entry: one hostile entry must not stop every monitor
for good. Checks run on one thread in log order; a check that times out is abandoned, not
killed (Python cannot kill a thread): its thread finishes in the background and whatever it
returns is dropped. A check that calls native code on untrusted input must isolate it in a
process of its own, as ``rule-audit`` does (:mod:`overt.rules._sandbox`), since a crash of
native code would take the monitor down with it.

``source-evidence[=KINDS[:GRACE]]``
    A rebuild summary reporting a mismatch; a release that GRACE entries later still lacks
    reviews, a matching rebuild or an SBOM (KINDS: ``review,rebuild,sbom``)
    (:mod:`overt.source.monitor`).

Not a check here: a log that deletes or rewrites entries after its mirrors stored them
(``history-deleted``, ``history-rewritten``). A check sees each entry once, when it is
first proven; a later rewrite only shows when old bundles are read again, which the
monitor itself does with mirrors (:mod:`overt.monitor.follow`, ``--audit-tiles``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from overt.errors import ConfigError, FormatError
from overt.formats.dsse import format_envelope, parse_envelope
from overt.formats.strict import parse_decimal
from overt.monitor.alert import Alert

__all__ = [
    "DEFAULT_CHECK_TIMEOUT",
    "Alert",
    "Check",
    "CheckFactory",
    "CheckFailure",
    "DsseEnvelope",
    "SizeLimit",
    "available_checks",
    "default_checks",
    "make_check",
    "register_check",
    "run_checks",
]


class Check(Protocol):
    """A plug-in run on every new entry, in log order."""

    name: str

    def check(self, index: int, entry: bytes) -> list[Alert]:
        """The alerts about ``entry`` (at ``index``); an empty list when it passes."""
        ...


@dataclass(frozen=True)
class CheckFailure:
    """A check that raised or timed out on the entry at ``index`` (``why`` says which)."""

    check: str
    index: int
    why: str


#: Seconds one check may spend on one entry (a rule-audit of a large bundle takes tens).
DEFAULT_CHECK_TIMEOUT = 600.0


class _Run:
    """Runs ``todo[start:]`` on a daemon thread; the caller watches its progress.

    No lock on the hot path (a list append and two attribute writes per item, each atomic
    in CPython): the caller decides that item ``k`` ran out of time from a stale ``since``
    and keeps only the first ``k`` results, so a result that lands just after is dropped
    with its item reported as timed out, which it was.
    """

    def __init__(self, todo: Sequence[tuple[int, bytes, Check]], start: int) -> None:
        self.todo = todo
        self.start = start
        self.results: list[list[Alert] | CheckFailure] = []
        self.cancelled = False
        self.since = time.monotonic()  # when the current item started
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._main, name="overt-check", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        results, now = self.results, time.monotonic
        for index, entry, check in self.todo[self.start :]:
            res: list[Alert] | CheckFailure
            try:
                res = list(check.check(index, entry))
            except Exception as err:  # a plug-in's bug must not stop the monitor
                res = CheckFailure(check.name, index, f"raised {err!r}")
            if self.cancelled:
                return
            results.append(res)
            self.since = now()
        self.done.set()

    def wait(self, timeout: float) -> list[list[Alert] | CheckFailure]:
        """The results in order; shorter than ``todo[start:]`` when the next item ran out
        of time (it is then abandoned)."""
        while not self.done.wait(min(timeout, 0.25)):
            ran = len(self.results)
            if time.monotonic() - self.since > timeout:
                self.cancelled = True
                return self.results[:ran]
        return self.results


def run_checks(
    checks: Sequence[Check],
    batch: Sequence[tuple[int, bytes]],
    timeout: float | None = DEFAULT_CHECK_TIMEOUT,
) -> list[Alert | CheckFailure]:
    """Every check on every ``(index, entry)`` of ``batch``, in log order: the alerts, and a
    :class:`CheckFailure` for each check that raised or ran out of ``timeout`` seconds on one
    entry (None: no limit, run in the calling thread)."""
    todo = [(index, entry, check) for index, entry in batch for check in checks]
    results: list[list[Alert] | CheckFailure] = []
    if timeout is None:
        for index, entry, check in todo:
            try:
                results.append(list(check.check(index, entry)))
            except Exception as err:  # a plug-in's bug must not stop the monitor
                results.append(CheckFailure(check.name, index, f"raised {err!r}"))
    else:
        pos = 0
        while pos < len(todo):
            done = _Run(todo, pos).wait(timeout)
            results.extend(done)
            pos += len(done)
            if pos < len(todo):
                index, _entry, check = todo[pos]
                results.append(CheckFailure(check.name, index, f"timed out after {timeout:g} s"))
                pos += 1
    out: list[Alert | CheckFailure] = []
    for res in results:
        if isinstance(res, CheckFailure):
            out.append(res)
        else:
            out.extend(res)
    return out


CheckFactory = Callable[[str | None], Check]
"""Builds a check from the optional argument of ``--check NAME=ARG`` (None without ``=``).

Raises ConfigError for an argument it does not accept."""

_REGISTRY: dict[str, CheckFactory] = {}
_DEFAULTS: list[str] = []


def register_check(name: str, factory: CheckFactory, *, default: bool = False) -> None:
    """Makes ``factory`` available as ``--check name``; ``default`` adds it to the default set.

    Raises:
        ConfigError: the name is taken or not of the form ``[a-z0-9-]+``.
    """
    if not name or not all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in name):
        raise ConfigError(f"check name {name!r} is not lowercase letters, digits and '-'")
    if name in _REGISTRY:
        raise ConfigError(f"a check named {name!r} is already registered")
    _REGISTRY[name] = factory
    if default:
        _DEFAULTS.append(name)


def available_checks() -> list[str]:
    """The registered check names, sorted."""
    return sorted(_REGISTRY)


def make_check(spec: str) -> Check:
    """The check named by ``NAME`` or ``NAME=ARG``.

    Raises:
        ConfigError: no check by that name, or the check refuses the argument.
    """
    name, sep, arg = spec.partition("=")
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ConfigError(f"no check named {name!r} (available: {', '.join(available_checks())})")
    return factory(arg if sep else None)


def default_checks() -> list[Check]:
    """One instance of every check registered as a default."""
    return [make_check(name) for name in _DEFAULTS]


class SizeLimit:
    """Alerts on entries larger than ``limit`` bytes."""

    name = "size-limit"
    DEFAULT_LIMIT = 32768

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ConfigError(f"size-limit must be at least 1 byte, not {limit}")
        self.limit = limit

    @classmethod
    def from_arg(cls, arg: str | None) -> SizeLimit:
        if arg is None:
            return cls()
        try:
            return cls(parse_decimal(arg, "size-limit"))
        except FormatError as err:
            raise ConfigError(f"size-limit wants a number of bytes, not {arg!r}") from err

    def check(self, index: int, entry: bytes) -> list[Alert]:
        if len(entry) <= self.limit:
            return []
        return [
            Alert(self.name, index, f"entry {index} is {len(entry)} bytes, more than {self.limit}")
        ]


_JSON_START = frozenset(b"{[")
_JSON_BLANK = b" \t\r\n"


class DsseEnvelope:
    """Alerts on JSON-looking entries that are not canonical DSSE envelopes."""

    name = "dsse-envelope"

    @classmethod
    def from_arg(cls, arg: str | None) -> DsseEnvelope:
        if arg is not None:
            raise ConfigError("dsse-envelope takes no argument")
        return cls()

    def check(self, index: int, entry: bytes) -> list[Alert]:
        body = entry.lstrip(_JSON_BLANK)
        if not body or body[0] not in _JSON_START:
            return []  # not JSON: some other kind of entry, not this check's business
        try:
            envelope = parse_envelope(entry)
        except FormatError as err:
            return [
                Alert(self.name, index, f"entry {index} looks like JSON but is not DSSE: {err}")
            ]
        if format_envelope(envelope) != entry:
            return [
                Alert(
                    self.name,
                    index,
                    f"entry {index} is a DSSE envelope, but not in canonical form"
                    " (sorted members, no whitespace)",
                )
            ]
        return []


def _rule_audit(arg: str | None) -> Check:
    # Imported on use: the auditor loads YARA engines a monitor may never need.
    from overt.rules.watch import RuleAuditCheck

    return RuleAuditCheck.from_arg(arg)


register_check(SizeLimit.name, SizeLimit.from_arg, default=True)
register_check(DsseEnvelope.name, DsseEnvelope.from_arg, default=True)
register_check("rule-audit", _rule_audit)


def _telemetry_access(arg: str | None) -> Check:
    from overt.telemetry.access import TelemetryAccessCheck

    return TelemetryAccessCheck.from_arg(arg)


register_check("telemetry-access", _telemetry_access)


def _source_evidence(arg: str | None) -> Check:
    from overt.source.monitor import SourceEvidenceCheck

    return SourceEvidenceCheck.from_arg(arg)


register_check("source-evidence", _source_evidence)
