"""Running the audit: rule files through the worker processes, replies checked.

The parsers, the static detectors and yara-x run in worker processes
(:mod:`overt.rules._sandbox`, :mod:`overt.rules._worker`): a file that is too
deep (:mod:`overt.rules.limits`), or that crashes or hangs a worker, comes
back as a failure for that file alone, and the audit goes on.

:func:`run_static` sends every file once: the worker parses it, runs the
detectors on each rule (:func:`overt.rules.detectors.analyse_rule`), builds
the constructed samples, and -- for the dynamic check -- compiles and scans
it with its batch (:class:`overt.rules.dynamic.Batches`) unless it has
includes. Files with includes are compiled afterwards with the includes
inlined from the bundle (:func:`run_dynamic`). Replies are JSON, type-checked
here like any untrusted input: a worker a hostile file took over can lie
about that bundle, not run code here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import overt.rules._sandbox as _sandbox
import overt.rules._worker as _wire
import overt.rules.classify as classify
from overt.rules.canary import Canary
from overt.rules.limits import DEFAULT_LIMITS, Limits
from overt.rules.parse import ParsedFile
from overt.rules.signals import Signal

__all__ = ["Dynamic", "StaticResult", "run_dynamic", "run_static", "static_results"]


@dataclass
class StaticResult:
    """What a worker found in one file (see :mod:`overt.rules._worker`)."""

    path: str
    #: the whole parse, only when run without analysis (``diff`` reads the rules)
    pf: ParsedFile | None
    #: why no parser accepted the file (or a worker failed on it); "" when one did
    error: str = ""
    includes: tuple[tuple[int, str], ...] = ()
    spans: list[tuple[int, int]] = field(default_factory=list)
    rules: list[tuple[str, int, bool, list[Signal]]] = field(default_factory=list)
    #: rules none of whose patterns holds readable text
    contentless: frozenset[str] = frozenset()
    #: rule -> (constructed benign sample, base64; what it holds)
    samples: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class Dynamic:
    """What yara-x did with the files: compile errors, canary hits, proven samples,
    and the files no worker could compile or scan."""

    errors: dict[str, str] = field(default_factory=dict)
    hits: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    proofs: set[tuple[str, str]] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)

    def add_reply(self, reply: Mapping[str, Any]) -> None:
        """Merge one worker reply (a malformed one adds nothing)."""
        try:
            proven = [
                (_wire._s(p), _wire._s(r))
                for p, r in map(_wire._list, _wire._list(reply.get("proofs", [])))
            ]
            errs = reply["errors"]
            if not isinstance(errs, dict):
                raise ValueError("errors")
            got = {_wire._s(k): _wire._s(v) for k, v in errs.items()}
            found = [
                (_wire._s(p), _wire._s(r), [_wire._s(c) for c in _wire._list(names)])
                for p, r, names in map(_wire._list, _wire._list(reply["hits"]))
            ]
        except (KeyError, TypeError, ValueError):
            return
        self.proofs.update(proven)
        self.errors.update(got)
        for p, r, names in found:
            self.hits.setdefault((p, r), set()).update(names)


def _decode_static(item: object) -> StaticResult:
    if not isinstance(item, dict):
        raise ValueError("not an object")
    path = item["path"]
    if not isinstance(path, str):
        raise ValueError("path is not a string")
    if "error" in item:
        err = item["error"]
        return StaticResult(path, None, (err if isinstance(err, str) else "") or "unreadable")
    pf = _wire.decode_parsed(path, item["parsed"]) if "parsed" in item else None
    includes = tuple((_wire._i(ln), _wire._s(t)) for ln, t in map(_wire._list, item["includes"]))
    spans = [(_wire._i(a), _wire._i(b)) for a, b in map(_wire._list, _wire._list(item["spans"]))]
    rules = [
        (
            _wire._s(name),
            _wire._i(line),
            _wire._b(ind),
            [_wire.decode_signal(s) for s in _wire._list(sigs)],
        )
        for name, line, ind, sigs in map(_wire._list, _wire._list(item["rules"]))
    ]
    contentless = frozenset(_wire._s(n) for n in _wire._list(item.get("contentless", [])))
    samples = {
        _wire._s(r): (_wire._s(b), _wire._s(d))
        for r, b, d in map(_wire._list, _wire._list(item.get("samples", [])))
    }
    return StaticResult(path, pf, "", includes, spans, rules, contentless, samples)


def _chunks(texts: Mapping[str, str]) -> int:
    # Below this much text one worker call costs less than splitting. Above it, eight
    # calls per worker: the last call to finish runs alone, so it must be short (with
    # two per worker the corpora ended on ~3 s of one worker alone; a call costs no
    # measurable CPU more).
    big = sum(len(t) for t in texts.values()) >= 512 * 1024
    return _sandbox.WORKERS * 8 if big else 1


def _canary_spec(corpus: Sequence[Canary] | None) -> list[dict[str, Any]] | None:
    return None if corpus is None else [_wire.encode_canary(c) for c in corpus]


def run_static(
    texts: Mapping[str, str],
    *,
    analyse: bool = True,
    dynamic: bool = False,
    corpus: Sequence[Canary] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[dict[str, StaticResult], Dynamic]:
    """Parse (and analyse) every file in the worker processes: ``({path: result},
    dynamic)``. With ``dynamic``, the files without includes are also compiled
    and scanned over ``corpus`` (None: :func:`overt.rules.canary.canaries`).

    A file that crashes, hangs or exhausts a worker gets the reason as
    ``error``, like a file no parser accepts. ``pf`` is set only without
    ``analyse``.
    """
    request: dict[str, Any] = {
        "op": "static",
        "depth": limits.depth,
        "condition_tokens": limits.condition_tokens,
        "analyse": analyse,
    }
    if dynamic:
        request["dynamic"] = {"canaries": _canary_spec(corpus)}
    if analyse and texts:
        words = classify.word_file()  # built once per machine, read by every worker
        request["words"] = None if words is None else str(words)
    outcome = _sandbox.run(request, list(texts.items()), chunks=_chunks(texts), limits=limits)
    out: dict[str, StaticResult] = {}
    dyn = Dynamic()
    for reply in outcome.replies:
        items = reply.get("files")
        for item in items if isinstance(items, list) else []:
            try:
                res = _decode_static(item)
            except (KeyError, TypeError, ValueError):
                continue  # the file is then reported as missing from the reply
            if res.path in texts:
                out[res.path] = res
        if dynamic:
            dyn.add_reply(reply)
    for path, why in outcome.failed.items():
        out[path] = StaticResult(path, None, why)
    for path in texts:
        if path not in out:
            out[path] = StaticResult(path, None, "the parser worker did not report on the file")
    return out, dyn


def static_results(
    texts: Mapping[str, str], *, analyse: bool = True, limits: Limits = DEFAULT_LIMITS
) -> dict[str, StaticResult]:
    """Parse (and analyse) every file in the worker processes: ``{path: result}``
    (:func:`run_static` without the dynamic check)."""
    return run_static(texts, analyse=analyse, limits=limits)[0]


def run_dynamic(
    files: Sequence[tuple[str, str]],
    samples: Sequence[tuple[str, str, str]],
    *,
    corpus: Sequence[Canary] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Dynamic:
    """Compile ``(path, text)`` pairs (includes already inlined) and scan them over
    ``corpus`` and the constructed ``samples`` (``(path, rule, base64)``)."""
    request = {"op": "dynamic", "canaries": _canary_spec(corpus), "samples": list(samples)}
    big = sum(len(t) for _p, t in files) >= 512 * 1024
    outcome = _sandbox.run(request, files, chunks=_sandbox.WORKERS if big else 1, limits=limits)
    dyn = Dynamic(failed=dict(outcome.failed))
    for reply in outcome.replies:
        dyn.add_reply(reply)
    return dyn
