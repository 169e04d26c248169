"""The child side of :mod:`overt.rules._sandbox`: parse, analyse and compile untrusted rules.

Started as ``python -I -c ...`` by the sandbox, never imported by the caller's
process for its work. It limits itself first (``RLIMIT_AS``, no core files),
then answers requests until its stdin closes. Wire format, both directions:
an 8-byte big-endian length, then that many bytes of JSON.

Requests::

    {"op": "static", "cpu_seconds": s, "files": [[path, text], ...],
     "depth": n, "condition_tokens": n, "analyse": bool,
     "dynamic": {"canaries": null | [canary, ...]},          # optional
     "words": null | path}       # the word set on disk (overt.rules.classify.word_file)
    {"op": "dynamic", "cpu_seconds": s, "files": [[path, text], ...],
     "canaries": null | [canary, ...], "samples": [[path, rule, base64], ...]}

Replies: ``{"files": [result, ...]}`` for ``static`` (one result per file, see
:func:`_static_file`), ``{"errors": {path: msg}, "hits": [[path, rule,
[canary]], ...], "proofs": [[path, rule], ...]}`` for ``dynamic``. With
``"dynamic"``, the static op also compiles and scans, batch by batch as it
parses (:class:`overt.rules.dynamic.Batches`), every file that parsed and has
no include, and adds ``errors``, ``hits`` and ``proofs`` to its reply: the
text is sent once, and no file's compiled rules outlive its batch. Before each request the CPU-time soft
limit (``RLIMIT_CPU``) is moved to the time used so far plus ``cpu_seconds``:
a request that spins is killed by ``SIGXCPU``.

stdout (fd 1) is pointed at /dev/null once the reply channel is set aside, so
that a native library printing to stdout cannot corrupt a reply.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import re
import resource
import sys
from typing import Any, BinaryIO

import overt.rules.canary as canary_mod
import overt.rules.classify as classify_mod
import overt.rules.dynamic as dynamic_mod
from overt.rules.construct import build_sample
from overt.rules.detectors import Severity, Signal, analyse_rule
from overt.rules.limits import Limits, measure
from overt.rules.parse import ParsedFile, Rule, RuleParseError, StringDef, parse_source

__all__ = ["EXIT_MEMORY", "EXIT_RECURSION", "main"]

#: Exit statuses that tell the parent why a worker gave up.
EXIT_MEMORY = 3
EXIT_RECURSION = 4


def encode_rule(r: Rule) -> dict[str, Any]:
    return {
        "name": r.name,
        "path": r.path,
        "line": r.line,
        "tags": list(r.tags),
        "metas": [[k, v] for k, v in r.metas],
        "strings": [
            [
                s.identifier,
                s.kind,
                s.data.decode("latin-1"),
                list(s.modifiers),
                s.line,
                s.regex_flags,
            ]
            for s in r.strings
        ],
        "condition": r.condition,
        "condition_line": r.condition_line,
        "private": r.private,
        "global": r.global_,
        "imports": list(r.imports),
        "parser": r.parser,
    }


def encode_parsed(pf: ParsedFile) -> dict[str, Any]:
    return {
        "rules": [encode_rule(r) for r in pf.rules],
        "includes": [[line, target] for line, target in pf.includes],
        "parser": pf.parser,
        "notes": list(pf.notes),
    }


def _encode_signal(s: Signal) -> list[Any]:
    return [s.detector, int(s.severity), s.part, s.line, s.evidence, s.reason, s.content]


def _static_file(path: str, text: str, limits: Limits, analyse: bool) -> dict[str, Any]:
    """``{"path", "error"}``, or ``{"path", "includes", "spans", "rules"}`` where
    ``includes`` are ``[line, target]``, ``spans`` their spans in the text, and
    ``rules`` holds ``[name, line, has_indicators, [signal, ...]]`` per rule
    (when ``analyse``; without it, ``parsed`` holds the whole parse instead:
    the caller then wants the rules themselves, and the audit does not)."""
    try:
        pf = parse_source(text, path, limits)
    except RuleParseError as err:
        return {"path": path, "error": err.detail}
    if len(text) >= _TRIM_AFTER:
        _trim()  # yaramod's trees, freed to malloc, before the analysis adds its own
    spans = [[inc.start, inc.end] for inc in measure(text).includes] if pf.includes else []
    out: dict[str, Any] = {
        "path": path,
        "includes": [[line, target] for line, target in pf.includes],
        "spans": spans,
        "rules": [],
    }
    if not analyse:
        out["parsed"] = encode_parsed(pf)
        return out
    names = [r.name for r in pf.rules]
    for rule in pf.rules:
        try:
            ctx, signals = analyse_rule(rule, names, pf.rules)
        except (RecursionError, MemoryError, ValueError, re.error) as err:
            # A hostile rule must not stop the audit of the others: it becomes
            # a finding of its own, and it fails the default policy.
            why = f"{type(err).__name__}: {str(err)[:80]}"
            sig = Signal(
                "unauditable",
                Severity.HIGH,
                "rule",
                rule.line,
                why,
                "the rule could not be analysed; a rule nobody can read cannot be cleared",
                content=False,
            )
            out["rules"].append([rule.name, rule.line, False, [_encode_signal(sig)]])
            continue
        out["rules"].append(
            [rule.name, rule.line, bool(ctx.indicators), [_encode_signal(s) for s in signals]]
        )
        if ctx.free_sets and any(sig.severity >= Severity.MEDIUM for sig in signals):
            built = build_sample(rule, ctx.free_sets)
            if built is not None:
                out.setdefault("samples", []).append(
                    [rule.name, base64.b64encode(built[0]).decode(), built[1]]
                )
        if not any(any(ch.isalpha() for c in cs for ch in c.text) for cs in ctx.cands.values()):
            # No pattern holds readable text (a base64- or hex-shape regex, code bytes):
            # firing on a marked canary but not on its twin is then chance, not keying.
            out.setdefault("contentless", []).append(rule.name)
    return out


_CANARIES: list[canary_mod.Canary] | None = None


def _canaries(spec: list[Any] | None) -> list[canary_mod.Canary]:
    global _CANARIES
    if spec is None:
        if _CANARIES is None:
            _CANARIES = canary_mod.canaries()
        return _CANARIES
    return [
        canary_mod.Canary(
            name=c["name"],
            kind=c["kind"],
            fmt=c["fmt"],
            data=base64.b64decode(c["data"]),
            why="",
            twin=c["twin"],
            externals=dict(c["externals"]),
        )
        for c in spec
    ]


def _handle(req: dict[str, Any]) -> dict[str, Any]:
    files = [(str(p), str(t)) for p, t in req["files"]]
    if req["op"] == "static":
        limits = Limits(depth=int(req["depth"]), condition_tokens=int(req["condition_tokens"]))
        if req.get("words") and not classify_mod._WORD_FILE:
            classify_mod.use_word_file(str(req["words"]))
        spec = req.get("dynamic")
        batches = (
            None
            if spec is None
            else dynamic_mod.Batches(_canaries(spec["canaries"]), after_batch=_trim)
        )
        results = []
        for path, text in files:
            res = _static_file(path, text, limits, bool(req["analyse"]))
            results.append(res)
            if batches is not None and "error" not in res and not res["includes"]:
                samples = [(path, r, base64.b64decode(b)) for r, b, _ in res.get("samples", [])]
                batches.add(path, text, samples)
            if len(text) >= _TRIM_AFTER:
                _trim()
        if batches is None:
            return {"files": results}
        return {"files": results, **_dynamic_reply(batches)}
    if req["op"] == "dynamic":
        batches = dynamic_mod.Batches(_canaries(req["canaries"]), after_batch=_trim)
        mine = {p for p, _t in files}
        by_path: dict[str, list[tuple[str, str, bytes]]] = {}
        for p, r, b in req.get("samples", []):
            if str(p) in mine:
                by_path.setdefault(str(p), []).append((str(p), str(r), base64.b64decode(str(b))))
        for path, text in files:
            batches.add(path, text, by_path.get(path, []))
        return _dynamic_reply(batches)
    raise ValueError(f"unknown op {req['op']!r}")


#: After a file this large, freed memory is handed back to the system (yaramod's
#: parse of a 1 MB file peaks at ~40 MB, most of it free once the file is done).
_TRIM_AFTER = 64 * 1024
_LIBC: list[Any] = []


def _trim() -> None:
    """Return the C heap's free pages to the system (glibc ``malloc_trim``): the
    native parsers and compiler free their memory to malloc, which otherwise keeps
    it, and the audit's peak is the sum of the workers' resident sets."""
    if not _LIBC:
        try:
            _LIBC.append(ctypes.CDLL("libc.so.6").malloc_trim)
        except (OSError, AttributeError):
            _LIBC.append(None)  # not glibc: nothing to trim
    if _LIBC[0] is not None:
        _LIBC[0](0)


def _dynamic_reply(batches: dynamic_mod.Batches) -> dict[str, Any]:
    errors, hits, proofs = batches.finish()
    _trim()
    return {
        "errors": errors,
        "hits": [[p, r, sorted(names)] for (p, r), names in hits.items()],
        "proofs": [[p, r] for p, r in sorted(proofs)],
    }


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = fh.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def main() -> None:
    memory = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    reply = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    requests = sys.stdin.buffer
    while True:
        head = _read_exact(requests, 8)
        if len(head) < 8:
            return
        body = _read_exact(requests, int.from_bytes(head, "big"))
        req = json.loads(body)
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = used.ru_utime + used.ru_stime
        _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = int(spent + float(req["cpu_seconds"])) + 1
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        try:
            data = json.dumps(_handle(req), separators=(",", ":")).encode("utf-8")
        except MemoryError:
            os._exit(EXIT_MEMORY)  # the parent names the cause; the next call gets a new worker
        except RecursionError:
            os._exit(EXIT_RECURSION)
        reply.write(len(data).to_bytes(8, "big") + data)
        reply.flush()


# -- decoding, in the caller: a worker's reply is checked like any untrusted input ------


def _s(v: object) -> str:
    if not isinstance(v, str):
        raise ValueError("not a string")
    return v


def _i(v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError("not an integer")
    return v


def _b(v: object) -> bool:
    if not isinstance(v, bool):
        raise ValueError("not a boolean")
    return v


def _list(v: object) -> list[Any]:
    if not isinstance(v, list):
        raise ValueError("not a list")
    return v


def _meta(v: object) -> str | int | bool:
    if isinstance(v, (str, int)):  # bool is an int
        return v
    raise ValueError("not a meta value")


def decode_rule(d: dict[str, Any]) -> Rule:
    strings = []
    for s in _list(d["strings"]):
        ident, kind, data, mods, line, flags = _list(s)
        strings.append(
            StringDef(
                _s(ident),
                _s(kind),
                _s(data).encode("latin-1"),
                tuple(_s(m) for m in _list(mods)),
                _i(line),
                _s(flags),
            )
        )
    return Rule(
        name=_s(d["name"]),
        path=_s(d["path"]),
        line=_i(d["line"]),
        tags=tuple(_s(t) for t in _list(d["tags"])),
        metas=tuple((_s(k), _meta(v)) for k, v in map(_list, _list(d["metas"]))),
        strings=tuple(strings),
        condition=_s(d["condition"]),
        condition_line=_i(d["condition_line"]),
        private=_b(d["private"]),
        global_=_b(d["global"]),
        imports=tuple(_s(m) for m in _list(d["imports"])),
        parser=_s(d["parser"]),
    )


def decode_parsed(path: str, d: dict[str, Any]) -> ParsedFile:
    return ParsedFile(
        path,
        tuple(decode_rule(r) for r in _list(d["rules"])),
        tuple((_i(line), _s(t)) for line, t in map(_list, _list(d["includes"]))),
        _s(d["parser"]),
        tuple(_s(n) for n in _list(d["notes"])),
    )


def decode_signal(v: object) -> Signal:
    detector, severity, part, line, evidence, reason, content = _list(v)
    return Signal(
        _s(detector),
        Severity(_i(severity)),
        _s(part),
        _i(line),
        _s(evidence),
        _s(reason),
        _b(content),
    )


def encode_canary(c: canary_mod.Canary) -> dict[str, Any]:
    return {
        "name": c.name,
        "kind": c.kind,
        "fmt": c.fmt,
        "data": base64.b64encode(c.data).decode("ascii"),
        "twin": c.twin,
        "externals": c.externals,
    }
