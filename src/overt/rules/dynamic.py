"""Dynamic check: compile every rule with yara-x and scan the canary corpus.

Static analysis reads what a rule says; this module observes what it does.
Each rule file is compiled in a namespace of its own (so that equal rule names
in different files do not clash), with YARA's common external variables
defined, and the compiled rules are run over :func:`overt.rules.canary.canaries`
with the external variables set per canary as an endpoint would set them.

Compilation is the slow part (a few seconds for thousands of rules) and compiled
rules are large (~240 MB for 7,000 rules in one set). :class:`Batches` compiles
files in batches of about :data:`BATCH_BYTES` of rule text -- one yara-x Compiler
for many files, one namespace per file (a file that fails to compile is
rolled back by yara-x and recorded; the others of its batch are kept) --
scans the canaries and the constructed samples with one Scanner per batch,
and frees the compiled rules before the next batch: memory stays that of
one batch whatever the bundle's size. The auditor runs this module inside its
worker processes (:mod:`overt.rules._sandbox`) as they parse, so that a crash
or hang of yara-x on a hostile file takes down a worker, not the caller.
yara-x never opens a file: includes are disabled (the auditor inlines them
from the bundle itself).

yara-x: https://virustotal.github.io/yara-x/docs/api/python/
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import overt.rules._lexicon as lex
from overt.rules.canary import Canary
from overt.rules.markings import trie_regex

__all__ = [
    "BATCH_BYTES",
    "COMPILE_THREADS",
    "Batches",
    "Compiled",
    "compile_files",
    "external_names",
    "prove",
    "rule_runs",
    "scan",
]

COMPILE_THREADS = 2
#: Rule text compiled into one rule set before it is scanned and freed. Larger
#: batches compile a little faster (shared atoms) and take more memory: 512 KiB
#: of text is ~20 MB of compiled rules, and both workers may hold one at once (128 KiB:
#: the same CPU as 256 KiB, and ~10 MB off the audit's peak on the corpora and Yara-Rules).
BATCH_BYTES = 128 * 1024
_SCAN_TIMEOUT_S = 10


@dataclass
class Compiled:
    """Compiled rule sets, the namespace of each file, and per-file errors."""

    rules: list[Any] = field(default_factory=list)  # yara_x.Rules
    namespaces: dict[str, str] = field(default_factory=dict)  # namespace -> file path
    errors: dict[str, str] = field(default_factory=dict)  # file path -> first error line
    externals: tuple[str, ...] = ()


def _compile_chunk(
    chunk: list[tuple[str, str, str]],
    externals: tuple[str, ...],
    out: Compiled,
    lock: threading.Lock,
) -> None:
    import yara_x

    compiler = yara_x.Compiler()
    compiler.enable_includes(False)  # an include must never read the auditor's disk
    for name in externals:
        compiler.define_global(name, "")
    errors: dict[str, str] = {}
    for ns, path, text in chunk:
        compiler.new_namespace(ns)
        try:
            compiler.add_source(text, origin=path)
        except yara_x.CompileError as err:
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            errors[path] = lines[0] if lines else "does not compile"
    rules = compiler.build()
    with lock:
        out.rules.append(rules)
        out.errors.update(errors)


def compile_files(
    files: Iterable[tuple[str, str]], externals: Iterable[str] = (), threads: int = COMPILE_THREADS
) -> Compiled:
    """Compile ``(path, text)`` pairs in ``threads`` compilers; a file that fails
    is recorded, not fatal.

    ``text`` must already have its includes inlined or blanked (the caller
    resolves them against the bundle, not against the working directory).
    """
    ext = tuple(sorted({"filename", "filepath", "extension", "filetype", "owner", *externals}))
    out = Compiled(externals=ext)
    items = []
    for i, (path, text) in enumerate(files):
        ns = f"f{i}"
        out.namespaces[ns] = path
        items.append((ns, path, text))
    n = max(1, threads)
    chunks = [items[i::n] for i in range(n)]
    lock = threading.Lock()
    workers = [
        threading.Thread(target=_compile_chunk, args=(c, ext, out, lock)) for c in chunks if c
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return out


def scan(compiled: Compiled, corpus: Iterable[Canary]) -> dict[tuple[str, str], set[str]]:
    """Which canaries each rule matches: ``{(file path, rule name): {canary names}}``.

    A canary that makes a scan time out is skipped for that rule set.
    """
    import yara_x

    hits: dict[tuple[str, str], set[str]] = {}
    corpus = list(corpus)
    for rules in compiled.rules:
        scanner = yara_x.Scanner(rules)
        scanner.set_timeout(_SCAN_TIMEOUT_S)
        for canary in corpus:
            for name in compiled.externals:
                scanner.set_global(name, canary.externals.get(name, ""))
            try:
                result = scanner.scan(canary.data)
            except (yara_x.ScanError, yara_x.TimeoutError):
                continue
            for rule in result.matching_rules:
                path = compiled.namespaces.get(rule.namespace, rule.namespace)
                hits.setdefault((path, rule.identifier), set()).add(canary.name)
    return hits


def prove(compiled: Compiled, samples: Iterable[tuple[str, str, bytes]]) -> set[tuple[str, str]]:
    """Which constructed samples (:mod:`overt.rules.construct`) make their own
    rule fire: ``{(file path, rule name)}`` of the ``(path, rule, sample)`` given."""
    import yara_x

    wanted: dict[bytes, set[tuple[str, str]]] = {}
    for path, rule_name, data in samples:
        wanted.setdefault(data, set()).add((path, rule_name))
    proven: set[tuple[str, str]] = set()
    if not wanted:
        return proven
    for rules in compiled.rules:
        scanner = yara_x.Scanner(rules)
        scanner.set_timeout(_SCAN_TIMEOUT_S)
        for name in compiled.externals:
            scanner.set_global(name, "")
        for data, keys in wanted.items():
            try:
                result = scanner.scan(data)
            except (yara_x.ScanError, yara_x.TimeoutError):
                continue
            for match in result.matching_rules:
                ns = match.namespace
                key = (compiled.namespaces.get(ns, ns), match.identifier)
                if key in keys:
                    proven.add(key)
    return proven


# The names are words: ``\b`` is the look-behind for a word character, and the other
# characters that make a name a field or a string reference are checked per match (a
# look-behind in front of the alternation would be tried at every position of the text).
_EXTERNAL_RE = re.compile(
    r"\b("
    + trie_regex(lex.IDENTITY_EXTERNALS)
    + r")\s*(?:==|!=|contains|icontains|matches|startswith|endswith|iequals|istartswith|iendswith)"
)


def external_names(texts: Iterable[str]) -> set[str]:
    """Identity-like external variables the texts use (defined for yara-x, set to
    the empty string, so that a rule reading ``hostname`` compiles)."""
    found: set[str] = set()
    for text in texts:
        found.update(
            m.group(1)
            for m in _EXTERNAL_RE.finditer(text)
            if not m.start() or text[m.start() - 1] not in ".$#@!"
        )
    return found


# Where a line starts a rule (as overt.rules.parse cuts a large file for yaramod), any
# rule name written after "rule", and a global rule's declaration.
_RULE_START = re.compile(r"^\s*(?:(?:private|global)\s+)*rule\s+[A-Za-z_]", re.M)
_RULE_NAME = re.compile(r"\brule\s+([A-Za-z_][A-Za-z0-9_]*)")
_GLOBAL_RULE = re.compile(r"\bglobal\s+(?:private\s+)?rule\b")
_IMPORT = re.compile(r'^[ \t]*import[ \t]+"[^"\n]*"', re.M)


def rule_runs(text: str, size: int) -> list[str] | None:
    """``text`` cut where a line starts a rule into runs of about ``size`` characters,
    each after the first with the file's imports in front; None when the file must be
    compiled whole: it is one run, holds a global rule (which constrains every rule of
    its namespace), or names a rule twice (yara-x refuses that file whole, and two runs
    would each compile). A run that does not compile (a rule naming one of an earlier
    run, a cut inside a comment) is the caller's sign to compile the file whole.
    """
    if len(text) <= size or _GLOBAL_RULE.search(text):
        return None
    names = _RULE_NAME.findall(text)
    if len(set(names)) != len(names):
        return None
    starts = [m.start() for m in _RULE_START.finditer(text)]
    if len(starts) < 2:
        return None
    header = " ".join(m.group(0).strip() for m in _IMPORT.finditer(text, 0, starts[0]))
    cuts = [0]
    for pos in starts[1:]:
        if pos - cuts[-1] >= size:
            cuts.append(pos)
    if len(cuts) == 1:
        return None
    cuts.append(len(text))
    return [text[a:b] if a == 0 else header + "\n" + text[a:b] for a, b in itertools.pairwise(cuts)]


class Batches:
    """Compile files batch by batch, scan each batch, keep only the results.

    ``add`` files (with the constructed samples of their rules) as they come;
    ``finish`` compiles what is left and returns ``(errors, hits, proofs)`` as
    :func:`compile_files`, :func:`scan` and :func:`prove` give them.
    """

    def __init__(
        self,
        corpus: Iterable[Canary],
        batch_bytes: int = BATCH_BYTES,
        after_batch: Callable[[], None] | None = None,
    ) -> None:
        self.corpus = list(corpus)
        self.after_batch = after_batch
        self.batch_bytes = batch_bytes
        self.pending: list[tuple[str, str]] = []
        self.samples: list[tuple[str, str, bytes]] = []
        self.size = 0
        self.errors: dict[str, str] = {}
        self.hits: dict[tuple[str, str], set[str]] = {}
        self.proofs: set[tuple[str, str]] = set()

    def add(self, path: str, text: str, samples: Iterable[tuple[str, str, bytes]] = ()) -> None:
        runs = rule_runs(text, self.batch_bytes)
        if runs is not None and self._add_runs(path, text, runs, list(samples)):
            return
        self.pending.append((path, text))
        self.samples.extend(samples)
        self.size += len(text)
        if self.size >= self.batch_bytes:
            self.flush()

    def _add_runs(
        self, path: str, text: str, runs: list[str], samples: list[tuple[str, str, bytes]]
    ) -> bool:
        """Compile and scan a large file a run of rules at a time (yara-x held ~110 MB
        at once for peid.yar, 2.7 MB of hex strings, whole); False, with nothing kept,
        when a run does not compile: the file is then compiled whole, as written, so
        that its error and its (absent) hits are those of the file."""
        self.flush()
        externals = external_names([text])
        hits: dict[tuple[str, str], set[str]] = {}
        proofs: set[tuple[str, str]] = set()
        for run in runs:
            compiled = compile_files([(path, run)], externals, threads=1)
            if compiled.errors:
                return False
            for key, names in scan(compiled, self.corpus).items():
                hits.setdefault(key, set()).update(names)
            proofs |= prove(compiled, samples)
            del compiled
            if self.after_batch is not None:
                self.after_batch()
        for key, names in hits.items():
            self.hits.setdefault(key, set()).update(names)
        self.proofs |= proofs
        return True

    def flush(self) -> None:
        if not self.pending:
            return
        compiled = compile_files(
            self.pending, external_names(t for _p, t in self.pending), threads=1
        )
        for key, names in scan(compiled, self.corpus).items():
            self.hits.setdefault(key, set()).update(names)
        self.proofs |= prove(compiled, self.samples)
        self.errors.update(compiled.errors)
        self.pending, self.samples, self.size = [], [], 0
        del compiled  # the batch's rules are freed before the next batch is compiled
        if self.after_batch is not None:
            self.after_batch()

    def finish(
        self,
    ) -> tuple[dict[str, str], dict[tuple[str, str], set[str]], set[tuple[str, str]]]:
        self.flush()
        return self.errors, self.hits, self.proofs
