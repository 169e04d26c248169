"""Static detectors: what in a rule points at collection or targeting -- one module each.

Each detector is a plug-in module of this package exposing ``DETECTORS``, a
tuple of :class:`~overt.rules.signals.Detector` (``name``, one line of
``help``, and ``detect(ctx) -> [Signal]`` for a static detector; kinds of
finding that a detector or the audit emits besides have no ``detect``).
:data:`DETECTORS` below is the one registry: :func:`analyse_rule` runs it,
SARIF describes every entry (:mod:`overt.rules.report`) and ``overt rules
audit --help`` lists it.

Detectors (``Finding.detector``) and their base severity:

====================  ========  =====================================================
detector              base      what it means
====================  ========  =====================================================
marking               high      a classification/handling marking (many governments)
marking-ambiguous     medium    a word that is a marking in a banner (``SECRET``)
codename-list         high      a list of code-name-like words, nothing else
document-content      high      document targeting + sensitive subjects, no indicator
document-only         medium    document targeting and no malicious indicator at all
singling-out          high      a condition that picks a user, machine, path or org
collect-meta          high      metadata asking for the matched file to be uploaded
collection-strings    high      every requirement set is human content only
lying-meta            high      ... and the name or meta claims malware
canary-*              varies    what the compiled rule fires on among the canaries
constructed-proof     varies    yara-x fires on a benign sample built from the rule
====================  ========  =====================================================

plus the file findings of the audit itself (``unauditable``, ``include-unresolved``,
``outside-tree``, ``compile-error``, ``empty-file``). Each detector looks at one rule
through its :class:`~overt.rules.context.RuleContext` (decoded strings, condition
tokens, requirement sets, malicious indicators); severities are weighed together by
:func:`~overt.rules.signals.escalate`.

A new detector is a module here with ``DETECTORS = (Detector(name, help, detect),)``
added to :data:`_PLUGINS`, or, from outside, one :func:`register_detector` call.
"""

from __future__ import annotations

from collections.abc import Iterable

# The plug-in protocol and what detectors read, importable from here as before the
# package was split (they live where they are defined, outside __all__ here).
from overt.rules.context import STANDARD_EXTERNALS as STANDARD_EXTERNALS
from overt.rules.context import RuleContext as RuleContext
from overt.rules.context import rule_context as rule_context
from overt.rules.detectors import (
    canary_hits,
    codename_list,
    collect_meta,
    collection_strings,
    constructed_proof,
    document_content,
    document_only,
    file_problems,
    marking,
    singling_out,
)
from overt.rules.markings import find_markings as find_markings
from overt.rules.markings import marking_phrases as marking_phrases
from overt.rules.parse import Rule
from overt.rules.signals import Detector as Detector
from overt.rules.signals import Severity as Severity
from overt.rules.signals import Signal as Signal
from overt.rules.signals import escalate as escalate

__all__ = ["DETECTORS", "analyse_rule", "register_detector"]

#: The plug-in modules, in report order.
_PLUGINS = (
    marking,
    codename_list,
    document_content,
    document_only,
    singling_out,
    collect_meta,
    collection_strings,
    canary_hits,
    constructed_proof,
    file_problems,
)

#: Every kind of finding, in report order. Add a detector with :func:`register_detector`.
DETECTORS: dict[str, Detector] = {}


def register_detector(detector: Detector) -> Detector:
    """Add ``detector`` to :data:`DETECTORS` (a name registered twice is an error).

    Raises:
        ValueError: the name is taken.
    """
    if detector.name in DETECTORS:
        raise ValueError(f"detector {detector.name!r} is already registered")
    DETECTORS[detector.name] = detector
    return detector


for _plugin in _PLUGINS:
    for _d in _plugin.DETECTORS:
        register_detector(_d)


def analyse_rule(
    rule: Rule, rule_names: Iterable[str] = (), file_rules: Iterable[Rule] = ()
) -> tuple[RuleContext, list[Signal]]:
    """Run every static detector on one rule (before escalation).

    A rule with malicious indicators that some requirement set does not need
    says so in its content findings ("matches with $m1 alone ...").
    """
    ctx = rule_context(rule, rule_names, file_rules)
    signals: list[Signal] = []
    for detector in DETECTORS.values():
        if detector.detect is not None:
            signals += detector.detect(ctx)
    if ctx.free_set and ctx.all_indicators:
        note = (
            f" (not lowered: the rule matches with {ctx.free_set}; "
            f"{ctx.all_indicators[0]} is not needed)"
        )
        signals = [s.but(note=note) if s.severity >= Severity.MEDIUM else s for s in signals]
    return ctx, signals
