"""Parsing, decoding and the canary corpus."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overt.rules import Severity, audit_sources
from overt.rules.canary import CLEAN_LINES, MARKED_LINES, build_cfb, canaries
from overt.rules.decode import bytes_to_texts, candidates, hex_sequences, regex_texts
from overt.rules.parse import (
    RuleParseError,
    StringDef,
    _parse_plyara,
    _parse_yaramod,
    blank_includes,
    decode_source,
    find_includes,
    parse_source,
    tokenize_condition,
    unescape_yara,
)

FIXTURES = Path(__file__).parent / "fixtures"
ALL_FIXTURES = sorted((FIXTURES / "positive").glob("*.yar")) + sorted(
    (FIXTURES / "negative").glob("*.yar")
)


# -- parse ---------------------------------------------------------------------------------


def test_unescape_yara() -> None:
    assert unescape_yara(r"a\x41\n\t\\\"é") == b'aA\n\t\\"' + "é".encode()
    assert unescape_yara("\\q\\x4") == b"\\q\\x4"  # unknown and truncated escapes kept


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_yaramod_and_plyara_agree(path: Path) -> None:
    text = path.read_text("utf-8")
    if "hostname ==" in text or "owner ==" in text or "filename" in text or "filepath" in text:
        pytest.skip("yaramod cannot declare external variables; plyara alone reads this file")
    a = _parse_yaramod(text, path.name)
    b = _parse_plyara(text, path.name)
    assert [(r.name, r.line, r.tags, r.metas) for r in a] == [
        (r.name, r.line, r.tags, r.metas) for r in b
    ]
    for ra, rb in zip(a, b, strict=True):
        sa = [(s.identifier, s.kind, s.line, sorted(s.modifiers)) for s in ra.strings]
        sb = [(s.identifier, s.kind, s.line, sorted(s.modifiers)) for s in rb.strings]
        assert sa == sb
        assert [s.data.replace(b" ", b"") for s in ra.strings] == [
            s.data.replace(b" ", b"") for s in rb.strings
        ]


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_string_source_round_trips(path: Path) -> None:
    pf = parse_source(path.read_text("utf-8"), path.name)
    for rule in pf.rules:
        if not rule.strings:
            continue
        body = " ".join(f"{s.identifier} = {s.source}" for s in rule.strings)
        again = parse_source(f"rule r {{ strings: {body} condition: true }}", "x.yar").rules[0]
        assert [(s.kind, s.data, s.modifiers, s.regex_flags) for s in again.strings] == [
            (s.kind, s.data, s.modifiers, s.regex_flags) for s in rule.strings
        ]


def test_externals_fall_back_to_plyara_with_exact_lines() -> None:
    text = '\n\nrule ext {\n  strings:\n    $a = "x"\n  condition:\n    $a and filepath contains "\\\\Users\\\\"\n}\n'
    pf = parse_source(text, "e.yar")
    assert pf.parser == "plyara" and "filepath" in pf.notes[0]
    [rule] = pf.rules
    assert (rule.line, rule.strings[0].line, rule.condition_line) == (3, 5, 6)


def test_includes_are_listed_and_blanked_in_place() -> None:
    text = 'include "a.yar"\ninclude "sub/b.yar"\nrule r { condition: true }\n'
    assert find_includes(text) == [(1, "a.yar"), (2, "sub/b.yar")]
    blanked = blank_includes(text)
    assert len(blanked) == len(text) and blanked.count("\n") == text.count("\n")
    assert parse_source(text, "x.yar").rules[0].line == 3


@pytest.mark.parametrize(
    "data,reason",
    [(b"\x00rule", "binary"), (b"x" * (8 * 1024 * 1024 + 1), "too large")],
)
def test_decode_source_refuses(data: bytes, reason: str) -> None:
    with pytest.raises(RuleParseError, match=reason):
        decode_source("f.yar", data)


def test_latin1_source_is_read() -> None:
    assert decode_source("f.yar", "rule é".encode("latin-1")) == "rule é"


def test_tokenize_condition() -> None:
    toks = tokenize_condition('filename matches /a\\/b/i and #a > 2 and "x\\"y" == owner // c\n')
    kinds = [(t.kind, t.text) for t in toks]
    assert (
        ("regex", "/a\\/b/i") in kinds and ("strref", "#a") in kinds and ("ident", "owner") in kinds
    )
    assert [t.value for t in toks if t.kind == "str"] == [b'x"y']
    assert all(t.text != "c" for t in toks)  # comment dropped


@given(st.text(min_size=0, max_size=60))
@settings(max_examples=200, deadline=None)
def test_tokenize_never_fails(text: str) -> None:
    tokenize_condition(text)


# -- decode --------------------------------------------------------------------------------


def test_hex_sequences_alternatives_and_gaps() -> None:
    assert hex_sequences("41 42 ( 43 | 44 45 ) ?? 46 [2-4] 4? 47") == (
        (b"ABC", b"F", b"G"),
        (b"ABDE", b"F", b"G"),
    )
    assert hex_sequences("~41 42") == ((b"B",),)


def test_hex_expansion_is_capped() -> None:
    body = " ".join("( 41 | 42 | 43 | 44 )" for _ in range(12))
    assert len(hex_sequences(body)) <= 64


def test_regex_texts() -> None:
    assert sorted(regex_texts(r"(TOP|COSMIC TOP)\sSECRET")) == ["COSMIC TOP SECRET", "TOP SECRET"]
    assert regex_texts(r"[Nn]oforn") == ["Noforn", "noforn"]
    assert regex_texts(r"ab.{0,5}cd") == ["ab cd"]
    assert regex_texts(r"(unbalanced") != []  # falls back to literal runs


def test_bytes_to_texts_encodings() -> None:
    assert ("ТАЄМНО", "cp1251") in bytes_to_texts("ТАЄМНО".encode("cp1251"))
    assert bytes_to_texts("NOFORN".encode("utf-16-le"))[0] == ("NOFORN", "utf-16le")
    assert bytes_to_texts("绝密".encode("gb18030"))[0:1] != [] and any(
        t == "绝密" for t, _ in bytes_to_texts("绝密".encode("gb18030"))
    )


def test_candidates_label_how_text_was_decoded() -> None:
    s = StringDef("$a", "text", b"VE9QIFNFQ1JFVA==", (), 1)
    assert any(c.text == "TOP SECRET" and c.how == "base64-in-source" for c in candidates(s))
    w = StringDef("$w", "text", b"abc", ("wide", "nocase"), 1)
    [c] = candidates(w)
    assert (c.how, c.nocase) == ("text+wide", True)


@given(st.binary(min_size=0, max_size=64))
@settings(max_examples=200, deadline=None)
def test_random_hex_never_crashes_and_gaps_split(data: bytes) -> None:
    body = " ".join(f"{b:02X}" for b in data)
    seqs = hex_sequences(body)
    assert seqs == (((data,),) if data else ())
    candidates(StringDef("$h", "hex", body.encode(), (), 1))


# -- canaries ------------------------------------------------------------------------------


def test_every_marked_canary_has_a_clean_twin_and_a_reason() -> None:
    corpus = canaries()
    names = {c.name for c in corpus}
    assert {c.fmt for c in corpus} >= {"txt", "pdf", "docx", "doc", "rtf", "eml", "elf"}
    for c in corpus:
        assert c.why and c.data
        if c.kind == "marked":
            assert c.twin in names
    assert any(c.kind == "executable" for c in corpus)
    assert [c.data for c in canaries()] == [c.data for c in corpus]  # deterministic


def _cfb_streams(data: bytes) -> dict[str, bytes]:
    """A tiny independent CFB reader (MS-CFB 2.2, 2.6): enough to check build_cfb."""
    assert data[:8] == bytes.fromhex("D0CF11E0A1B11AE1")
    (shift,) = struct.unpack_from("<H", data, 30)
    size = 1 << shift
    n_fat, first_dir = struct.unpack_from("<II", data, 44)
    difat = struct.unpack_from("<109I", data, 76)[:n_fat]

    def sector(i: int) -> bytes:
        return data[size + i * size : size + (i + 1) * size]

    fat: list[int] = []
    for s in difat:
        fat.extend(struct.unpack(f"<{size // 4}I", sector(s)))

    def chain(start: int) -> bytes:
        out, cur = b"", start
        while cur < 0xFFFFFFFA:
            out += sector(cur)
            cur = fat[cur]
        return out

    dir_bytes = chain(first_dir)
    streams = {}
    for off in range(0, len(dir_bytes), 128):
        e = dir_bytes[off : off + 128]
        name_len, kind = struct.unpack_from("<HB", e, 64)
        if kind == 2:
            name = e[: name_len - 2].decode("utf-16-le")
            start, length = struct.unpack_from("<IQ", e, 116)
            streams[name] = chain(start)[:length]
    return streams


def test_cfb_canary_reads_back() -> None:
    streams = {"WordDocument": b"hello" * 1000, "1Table": b"t"}
    assert _cfb_streams(build_cfb(streams)) == streams
    doc = next(c for c in canaries(False) if c.name == "memo-marked.doc")
    word = _cfb_streams(doc.data)["WordDocument"]
    assert MARKED_LINES[0].encode("utf-16-le") in word
    with pytest.raises(ValueError):
        build_cfb({})


def test_ooxml_and_pdf_canaries_are_well_formed() -> None:
    docx = next(c for c in canaries(False) if c.name == "memo-clean.docx")
    with zipfile.ZipFile(io.BytesIO(docx.data)) as zf:
        assert zf.testzip() is None
        assert CLEAN_LINES[0] in zf.read("word/document.xml").decode()
    pdf = next(c for c in canaries(False) if c.name == "memo-marked.pdf")
    startxref = int(pdf.data.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf.data[startxref:].startswith(b"xref\n")
    for line in pdf.data[startxref:].split(b"\n")[3:10]:
        off = int(line[:10])
        assert pdf.data[off:].split(b" ", 1)[0].isdigit()  # each xref entry points at "N 0 obj"


# -- dynamic -------------------------------------------------------------------------------


def test_rule_invisible_to_static_analysis_is_caught_on_the_canaries() -> None:
    data = (FIXTURES / "positive" / "innocent_looking.yar").read_bytes()
    static = audit_sources({"i.yar": data}, dynamic=False)
    assert static.findings == []
    dyn = audit_sources({"i.yar": data})
    [f] = dyn.findings
    assert (f.detector, f.severity) == ("canary-marked", Severity.HIGH)


def test_rule_matching_every_document_fires_on_clean_twins() -> None:
    rule = b'rule any_rtf { strings: $a = "{\\\\rtf1" condition: $a at 0 }'
    report = audit_sources({"r.yar": rule})
    assert {(f.detector, f.severity) for f in report.findings} >= {
        ("canary-document", Severity.MEDIUM)
    }


def test_rule_matching_anything_is_low() -> None:
    report = audit_sources({"t.yar": b"rule everything { condition: filesize > 0 }"})
    assert [(f.detector, f.severity) for f in report.findings] == [("canary-any", Severity.LOW)]


def test_rule_that_does_not_compile_is_still_audited_statically() -> None:
    # yaramod and plyara accept the unknown module function; yara-x does not.
    rule = b'import "pe"\nrule r { strings: $a = "NOFORN" condition: $a and pe.no_such_function() }'
    report = audit_sources({"c.yar": rule})
    detectors = {f.detector for f in report.findings}
    assert "marking" in detectors
    assert "compile-error" in detectors or "unauditable" in detectors
