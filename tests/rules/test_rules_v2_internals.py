"""Auditor v2 internals that the speed and memory work rests on (issue 9): batched
compilation, the minimal requirement sets, the marking prefilter, the word set, and
the plug-in layout of the detectors. Each is checked against the plain answer."""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import overt.rules._lexicon as lex
import overt.rules.classify as classify_mod
import overt.rules.detectors as detectors_pkg
import overt.rules.dynamic as dynamic
import overt.rules.parse as parse_mod
from overt.rules import audit_sources
from overt.rules.canary import canaries
from overt.rules.classify import WordSet, common_words
from overt.rules.dynamic import Batches, compile_files, scan
from overt.rules.markings import could_hold_marking, find_markings
from overt.rules.parse import _parse_plyara
from overt.rules.requirements import Atom, _minimal

MARKED = 'rule m {{ strings: $a = "{}" condition: $a }}'


# -- batches ------------------------------------------------------------------------


def test_batches_give_the_hits_of_one_compile_of_everything() -> None:
    files = [(f"f{i}.yar", MARKED.format(w)) for i, w in enumerate(["TOP SECRET", "x", "NOFORN"])]
    files.append(("bad.yar", "rule broken { condition: $nope }"))
    corpus = canaries()
    whole = compile_files(files, threads=1)
    expected = scan(whole, corpus)
    batches = Batches(corpus, batch_bytes=1)  # every file its own batch
    for path, text in files:
        batches.add(path, text)
    errors, hits, _proofs = batches.finish()
    assert hits == expected and hits  # the marked canaries fire, batch by batch
    assert set(errors) == {"bad.yar"} == set(whole.errors)


def _many_rules(words: list[str], tail: str = "") -> str:
    rules = [
        f'rule r{i} {{ meta: pad = "{"x" * 200}" strings: $a = "{w}" condition: $a }}'
        for i, w in enumerate(words)
    ]
    return 'import "pe"\n' + "\n".join(rules) + "\n" + tail


def test_a_large_file_compiled_in_runs_gives_what_one_compile_gives() -> None:
    # A file larger than a batch is compiled a run of rules at a time (peid.yar, 2.7 MB,
    # held ~110 MB of compiled rules at once); hits, proofs and errors must be those of
    # the whole file: a run that does not compile (a rule naming one of an earlier run,
    # a rule name twice) sends the file whole, and a global rule keeps it whole.
    words = ["TOP SECRET", "x", "NOFORN", "y"] * 5
    sample = [("big.yar", "r2", b"..NOFORN..")]
    cases = {
        "plain": _many_rules(words),
        "refers back": _many_rules(words, "rule late { condition: r0 and pe.is_pe }"),
        "twice": _many_rules(words, 'rule r3 { strings: $a = "z" condition: $a }'),
        "global": _many_rules(words, "global rule g { condition: filesize > 0 }"),
        "broken": _many_rules(words, "rule broken { condition: $nope }"),
    }
    corpus = canaries()
    for case, text in cases.items():
        got = []
        for size in (1500, 10**9):  # runs of a few rules, and the whole file
            batches = Batches(corpus, batch_bytes=size)
            batches.add("big.yar", text, sample)
            got.append(batches.finish())
        assert got[0] == got[1], case
    assert dynamic.rule_runs(cases["plain"], 1500) is not None
    assert dynamic.rule_runs(cases["global"], 1500) is None
    assert dynamic.rule_runs(cases["twice"], 1500) is None
    assert got[1][1] or got[1][0]


def test_a_file_that_does_not_compile_loses_no_other_file_of_its_batch() -> None:
    batches = Batches(canaries())
    batches.add("bad.yar", "rule broken { condition: $nope }")
    batches.add("good.yar", MARKED.format("TOP SECRET"))
    errors, hits, _ = batches.finish()
    assert set(errors) == {"bad.yar"}
    assert any(path == "good.yar" for path, _rule in hits)


def test_audit_with_includes_and_without_compiles_both() -> None:
    # the workers compile the plain file as they parse it; the one with an include is
    # compiled afterwards with the include inlined, and its canary hits land on the
    # file that defines the rule
    sources = {
        "main.yar": b'include "inc.yar"\nrule uses { condition: marked }\n',
        "inc.yar": MARKED.format("TOP SECRET").replace("rule m", "rule marked").encode(),
        "plain.yar": MARKED.format("NOFORN").encode(),
    }
    report = audit_sources(sources, dynamic=True)
    canary = {(f.path, f.rule) for f in report.findings if f.detector == "canary-marked"}
    assert ("inc.yar", "marked") in canary and ("plain.yar", "m") in canary
    assert not [f for f in report.findings if f.detector in ("compile-error", "unauditable")]


# -- minimal sets -------------------------------------------------------------------

_ATOMS = [Atom("string", f"$s{i}") for i in range(6)] + [Atom("magic", "uint16(0) == 0x5a4d")]


def _naive(sets: list[frozenset[Atom]]) -> set[frozenset[Atom]]:
    uniq = set(sets)
    return {s for s in uniq if not any(o < s for o in uniq)}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.frozensets(st.sampled_from(_ATOMS), max_size=5), max_size=40))
def test_minimal_sets_are_exactly_those_with_no_subset(sets: list[frozenset[Atom]]) -> None:
    got, complete = _minimal(sets)
    assert complete
    assert len(got) == len(set(got))
    assert set(got) == _naive(sets)
    assert [len(s) for s in got] == sorted(len(s) for s in got)


# -- the marking prefilter ------------------------------------------------------------

_PHRASES = [*(p for p, _gov, _cs in lex.DISTINCTIVE_MARKINGS[:60]), "SECRET", "S//NF", "X"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(_PHRASES),
                st.text(max_size=30),
                st.builds(
                    lambda a, p, b: a + p + b,
                    st.text(max_size=5),
                    st.sampled_from(_PHRASES),
                    st.text(max_size=5),
                ),
            ),
            st.booleans(),
        ),
        max_size=8,
    )
)
def test_the_prefilter_never_hides_a_marking(texts: list[tuple[str, bool]]) -> None:
    if any(find_markings(t, nocase) for t, nocase in texts):
        assert could_hold_marking(texts)


def test_the_prefilter_clears_ordinary_texts() -> None:
    assert not could_hold_marking([("VirtualAllocEx", False), ("kernel32.dll", True)])
    assert could_hold_marking([("x", False), ("top secret", True)])


# -- the word set --------------------------------------------------------------------


def test_the_word_set_knows_words_of_several_scripts_and_not_noise() -> None:
    words = common_words()
    assert len(words) > 300_000
    for w in ("the", "bonjour", "ngân", "город"):
        assert w in words
    for w in ("xqzzt", "getprocaddress", ""):
        assert w not in words
    assert 42 not in words
    assert "alpha" in WordSet(["alpha", "beta"]) and "gamma" not in WordSet(["alpha"])
    # the same bytes inside CPython (UCS-1 f3 77, UCS-2 77f3): str hashes collide
    assert "石" not in WordSet(["ów"]) and "ów" in WordSet(["ów"])


def test_the_word_set_on_disk_is_read_back_and_a_damaged_one_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = classify_mod.word_file()
    assert path is not None and path.parent == tmp_path / "overt"
    built = common_words()
    try:
        classify_mod.use_word_file(str(path))
        assert classify_mod.common_words()._digests == built._digests
        damaged = bytearray(path.read_bytes())
        damaged[100] ^= 1
        path.write_bytes(bytes(damaged))
        classify_mod.use_word_file(str(path))  # the checksum fails: built from wordfreq again
        assert classify_mod.common_words()._digests == built._digests
        assert classify_mod.word_file() == path and classify_mod._read(path) is not None
    finally:
        classify_mod._WORD_FILE.clear()
        classify_mod.common_words.cache_clear()


# -- plyara, one parser per worker ---------------------------------------------------------


def test_a_reused_plyara_parser_counts_lines_from_one_again() -> None:
    text = 'rule a { condition: filename == "x" }\n\nrule b { condition: true }\n'
    first = [(r.name, r.line) for r in _parse_plyara(text, "x.yar")]
    with contextlib.suppress(Exception):  # whatever plyara raises, the next parse starts clean
        _parse_plyara("rule { broken", "y.yar")
    assert [(r.name, r.line) for r in _parse_plyara(text, "x.yar")] == first == [("a", 1), ("b", 3)]


# -- plug-ins -------------------------------------------------------------------------


def test_every_detector_module_is_a_plug_in_of_the_registry() -> None:
    names = [m.name for m in pkgutil.iter_modules(detectors_pkg.__path__)]
    assert len(names) >= 8
    registered = set(detectors_pkg.DETECTORS)
    for name in names:
        module = importlib.import_module(f"overt.rules.detectors.{name}")
        kinds = module.DETECTORS
        assert kinds and {d.name for d in kinds} <= registered, name
        for d in kinds:
            assert detectors_pkg.DETECTORS[d.name] is d and d.help
    static = {d.name for d in detectors_pkg.DETECTORS.values() if d.detect is not None}
    assert static == {
        "marking",
        "codename-list",
        "document-content",
        "document-only",
        "singling-out",
        "collect-meta",
        "collection-strings",
    }


# -- large files, parsed a run of rules at a time ----------------------------------------


def _big_file(extra: str = "") -> str:
    rules = [
        f'rule r{i} {{\n  meta:\n    n = {i}\n  strings:\n    $a = "text {i}" wide\n'
        f"    $h = {{ 4D 5A [2-4] {i % 256:02X} }}\n  condition:\n    pe.is_pe and ($a or $h)\n}}\n"
        for i in range(2500)
    ]
    return 'import "pe"\n\n' + "".join(rules[:1200]) + extra + "".join(rules[1200:])


def test_a_large_file_parses_in_runs_exactly_as_whole() -> None:
    text = _big_file()
    assert len(text) > 2 * parse_mod._SEGMENT_BYTES
    whole = parse_mod._parse_yaramod_text(text, "big.yar")
    runs = parse_mod._parse_yaramod_segments(text, "big.yar")
    assert runs == whole and len(runs) == 2500
    assert parse_mod.parse_source(text, "big.yar").rules == tuple(whole)


@pytest.mark.parametrize(
    "extra",
    [
        "rule late { condition: r3 }\n",  # names a rule of an earlier run
        "/*\n" + "rule in_comment { condition: true }\n" * 4000 + "*/\n",  # a cut inside a comment
    ],
    ids=["cross-reference", "comment"],
)
def test_a_large_file_that_runs_cannot_hold_is_parsed_whole(extra: str) -> None:
    text = _big_file(extra)
    with pytest.raises(Exception):  # noqa: B017 -- yaramod's own error types
        parse_mod._parse_yaramod_segments(text, "big.yar")
    assert parse_mod.parse_source(text, "big.yar").rules == tuple(
        parse_mod._parse_yaramod_text(text, "big.yar")
    )


def test_hex_strings_without_alternatives_split_as_the_tree_parse_does() -> None:
    # hex_sequences reads a body with no "(", "|" or ")" in C (the common case); it must
    # give what the general parse gives: runs split at wildcards, jumps and odd tokens.
    import overt.rules.decode as decode

    def by_tree(body: str) -> tuple[tuple[bytes, ...], ...]:
        out = []
        for flat in decode._hex_expand(decode._hex_parse(body)):
            runs: list[bytes] = []
            cur = b""
            for part in flat:
                if part is None:
                    runs += [cur] if cur else []
                    cur = b""
                else:
                    assert isinstance(part, bytes)
                    cur += part
            runs += [cur] if cur else []
            if runs:
                out.append(tuple(runs))
        return tuple(out)

    bodies = ["4D 5A", "4D5A90", "4D ?? 5A", "~4D 5A", "4? 5A", "ABC D", "[2-4] 00 11 [1]"]
    bodies += ["", "  ", "4D [-] 00", "0 0 11", "4D\n5A\t?A 00", "??", "4D,5A [1,2] 00"]
    for body in bodies:
        assert decode.hex_sequences.__wrapped__(body) == by_tree(body), body


def test_identity_externals_are_words() -> None:
    # dynamic.external_names finds them with \b in front, which is the look-behind for a
    # word character only when every name starts with one.
    import re

    import overt.rules._lexicon as lex
    from overt.rules.dynamic import external_names

    assert all(re.fullmatch(r"\w+", n) for n in lex.IDENTITY_EXTERNALS)
    text = 'hostname == "x" and pe.host == 1 and $host and xhost == 2 and user contains "a"'
    assert external_names([text]) == {"hostname", "user"}
