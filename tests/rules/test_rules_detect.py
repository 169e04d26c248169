"""Static detectors: the team's positive cases, close negatives, every encoding."""

from __future__ import annotations

import base64
import random
from pathlib import Path

import pytest

from overt.rules import Severity, audit_sources
from overt.rules import _lexicon as lex
from overt.rules.audit import audit_paths

FIXTURES = Path(__file__).parent / "fixtures"

# fixture file -> the detector that must report it at high or above (statically).
POSITIVE = {
    "markings_plain.yar": "marking",
    "markings_wide_nocase.yar": "marking",
    "markings_hex.yar": "marking",
    "markings_hex_wide.yar": "marking",
    "markings_xor_hand.yar": "marking",
    "markings_xor_modifier.yar": "marking",
    "markings_base64.yar": "marking",
    "markings_regex.yar": "marking",
    "markings_split.yar": "marking",
    "markings_russian_utf8.yar": "marking",
    "markings_russian_cp1251_hex.yar": "marking",
    "markings_cjk.yar": "marking",
    "markings_escaped.yar": "marking",
    "marking_in_condition.yar": "marking",
    "codenames.yar": "codename-list",
    "document_content.yar": "document-content",
    "single_out_owner.yar": "singling-out",
    "single_out_path.yar": "singling-out",
    "single_out_docname.yar": "singling-out",
    "single_out_identity_external.yar": "singling-out",
    "collect_meta.yar": "collect-meta",
}


def _audit_file(path: Path, dynamic: bool = False):  # type: ignore[no-untyped-def]
    return audit_sources({path.name: path.read_bytes()}, dynamic=dynamic)


def test_every_positive_fixture_is_listed() -> None:
    listed = set(POSITIVE) | {"document_only.yar", "innocent_looking.yar"}
    assert {p.name for p in (FIXTURES / "positive").glob("*.yar")} == listed


@pytest.mark.parametrize("name,detector", sorted(POSITIVE.items()))
def test_positive_fixture_is_found_statically(name: str, detector: str) -> None:
    report = _audit_file(FIXTURES / "positive" / name)
    hits = [f for f in report.findings if f.detector == detector and f.severity >= Severity.HIGH]
    assert hits, [(f.detector, str(f.severity), f.evidence) for f in report.findings]
    assert all(f.path == name and f.line >= 1 and f.rule for f in hits)


def test_document_only_rule_is_medium() -> None:
    report = _audit_file(FIXTURES / "positive" / "document_only.yar")
    assert [(f.detector, f.severity) for f in report.findings] == [
        ("document-only", Severity.MEDIUM)
    ]


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "negative").glob("*.yar")), ids=lambda p: p.name
)
def test_close_negative_has_nothing_above_low(path: Path) -> None:
    report = _audit_file(path, dynamic=True)
    assert report.rules == 1
    assert not [f for f in report.findings if f.severity >= Severity.MEDIUM], report.findings


def test_service_account_owner_is_low_and_explained() -> None:
    report = _audit_file(FIXTURES / "negative" / "service_owner.yar")
    [f] = report.findings
    assert (f.detector, f.severity) == ("singling-out", Severity.LOW)
    assert "service account" in f.reason


# -- every distinctive marking, in every encoding --------------------------------------


def _hex(data: bytes) -> str:
    return "{ " + " ".join(f"{b:02X}" for b in data) + " }"


def _escaped(data: bytes) -> str:
    return '"' + "".join(f"\\x{b:02x}" for b in data) + '"'


def _encodings(phrase: str) -> dict[str, str]:
    utf8 = phrase.encode("utf-8")
    out = {
        "plain": '"' + phrase + '"',
        "wide": '"' + phrase + '" wide',
        "nocase-lower": '"' + phrase.lower() + '" nocase',
        "escaped": _escaped(utf8),
        "hex-utf8": _hex(utf8),
        "hex-utf16le": _hex(phrase.encode("utf-16-le")),
        "regex": "/"
        + phrase.replace("/", "\\/").replace(".", "\\.").replace("(", "\\(").replace(")", "\\)")
        + "/",
        "xor-modifier": '"' + phrase + '" xor(1-255)',
        "base64-modifier": '"' + phrase + '" base64',
    }
    if phrase.isascii() and len(phrase) >= 5:
        out["hex-xor-0x37"] = _hex(bytes(b ^ 0x37 for b in utf8))
        out["base64-in-source"] = '"' + base64.b64encode(utf8).decode() + '"'
    return out


CASES = [
    (phrase, enc, src)
    for phrase, _gov, _cs in lex.DISTINCTIVE_MARKINGS
    for enc, src in _encodings(phrase).items()
    if not (enc == "nocase-lower" and phrase.lower().upper() != phrase.upper())
]


def test_every_distinctive_marking_in_every_encoding_is_found() -> None:
    missed = []
    sources = {}
    for i, (_phrase, _enc, src) in enumerate(CASES):
        sources[f"m{i}.yar"] = f"rule m{i} {{ strings: $a = {src} condition: $a }}".encode()
    report = audit_sources(sources, dynamic=False)
    found = {
        f.path for f in report.findings if f.detector == "marking" and f.severity >= Severity.HIGH
    }
    for i, (phrase, enc, _src) in enumerate(CASES):
        if f"m{i}.yar" not in found:
            missed.append((phrase, enc))
    assert report.rules == len(CASES)
    assert not missed, missed


def test_ambiguous_word_alone_is_medium_but_inside_a_sentence_is_nothing() -> None:
    alone = audit_sources(
        {"a.yar": b'rule a { strings: $a = "CONFIDENTIAL" condition: $a }'}, dynamic=False
    )
    assert [(f.detector, f.severity) for f in alone.findings] == [
        ("marking-ambiguous", Severity.MEDIUM)
    ]
    inside = audit_sources(
        {
            "b.yar": b'rule b { strings: $a = "client_secret" $b = "Secret key not found" condition: any of them }'
        },
        dynamic=False,
    )
    assert inside.findings == []


# -- bad input: clear error for the file, the rest still audited ---------------------------

GOOD = b'rule good { strings: $a = "NOFORN" condition: $a }'


@pytest.mark.parametrize(
    "name,data,detector",
    [
        ("unparseable.yar", (FIXTURES / "bad" / "unparseable.yar").read_bytes(), "unauditable"),
        ("empty.yar", b"", "empty-file"),
        ("comments_only.yar", b"// nothing here\n/* at all */\n", "empty-file"),
        ("junk.yar", random.Random(5).randbytes(4096), "unauditable"),
        (
            "junk_no_nul.yar",
            bytes(random.Random(7).randrange(1, 256) for _ in range(4096)),
            "unauditable",
        ),
        ("huge.yar", b"rule huge { condition: true }\n" + b"// padding\n" * 800_000, "unauditable"),
        (
            "missing_include.yar",
            (FIXTURES / "bad" / "missing_include.yar").read_bytes(),
            "include-unresolved",
        ),
    ],
)
def test_bad_file_is_reported_and_the_rest_is_audited(
    name: str, data: bytes, detector: str
) -> None:
    report = audit_sources({name: data, "good.yar": GOOD}, dynamic=False)
    bad = [f for f in report.findings if f.path == name and f.detector == detector]
    assert len(bad) == 1 and bad[0].evidence and bad[0].reason
    assert any(f.path == "good.yar" and f.detector == "marking" for f in report.findings)


def test_unresolved_include_still_audits_the_rest_of_that_file() -> None:
    data = (FIXTURES / "bad" / "missing_include.yar").read_bytes()
    report = audit_sources({"x/missing_include.yar": data}, dynamic=True)
    detectors = {f.detector for f in report.findings}
    assert {"include-unresolved", "marking", "canary-marked"} <= detectors


def test_include_is_resolved_relative_to_the_including_file() -> None:
    sources = {
        "top/main.yar": b'include "lib/names.yar"\nrule uses_lib { condition: lib_rule }\n',
        "top/lib/names.yar": b'rule lib_rule { strings: $a = "UK EYES ONLY" condition: $a }\n',
    }
    report = audit_sources(sources, dynamic=True)
    assert not [
        f
        for f in report.findings
        if f.detector in ("include-unresolved", "compile-error", "unauditable")
    ]
    assert any(
        f.rule == "lib_rule" and f.path == "top/lib/names.yar" and f.detector == "marking"
        for f in report.findings
    )
    # the including rule fires on the canaries through the included one
    assert any(f.rule == "uses_lib" and f.detector == "canary-marked" for f in report.findings)


def test_external_variables_are_audited_and_compiled(tmp_path: Path) -> None:
    rule = b'rule ext { condition: filename == "TS_SI_NOFORN_briefing.docx" and owner == "CORP\\\\analyst" }'
    (tmp_path / "ext.yar").write_bytes(rule)
    report = audit_paths([tmp_path])
    detectors = {f.detector for f in report.findings}
    assert "compile-error" not in detectors
    assert {"marking", "singling-out", "canary-marked"} <= detectors


# -- weighing and hostile rules -------------------------------------------------------------


def test_marking_in_a_rule_with_malicious_indicators_is_lowered_not_dropped() -> None:
    rule = b'rule lure { strings: $a = "TOP SECRET" $b = "powershell -enc" condition: all of them }'
    report = audit_sources({"l.yar": rule}, dynamic=False)
    [f] = report.findings
    assert (f.detector, f.severity) == ("marking", Severity.MEDIUM)
    assert "lowered" in f.reason and "malicious indicators" in f.reason


def test_two_independent_signals_are_critical() -> None:
    rule = b'rule both { meta: upload = "yes" strings: $a = "NOFORN" condition: $a }'
    report = audit_sources({"b.yar": rule}, dynamic=False)
    assert {(f.detector, f.severity) for f in report.findings} == {
        ("marking", Severity.CRITICAL),
        ("collect-meta", Severity.CRITICAL),
    }


def test_hostile_patterns_do_not_stop_the_audit() -> None:
    nested = "{ " + "( 41 | " * 400 + "42" + " )" * 400 + " }"
    alts = "/" + "".join("([Aa]|[Bb]|[Cc]|[Dd])" for _ in range(40)) + "/"
    sources = {
        "nested.yar": f"rule nested {{ strings: $a = {nested} condition: $a }}".encode(),
        "alts.yar": f"rule alts {{ strings: $a = {alts} condition: $a }}".encode(),
        "good.yar": GOOD,
    }
    report = audit_sources(sources, dynamic=False)
    assert any(f.path == "good.yar" and f.detector == "marking" for f in report.findings)
    # every file was audited or reported, none was silently dropped
    assert (
        report.rules + sum(f.detector == "unauditable" and f.rule == "" for f in report.findings)
        == 3
    )


def test_audit_paths_follows_includes_inside_the_audited_tree(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "rules").mkdir()
    (tmp_path / "lib" / "common.yar").write_bytes(
        b'rule common { strings: $a = "NATO SECRET" condition: $a }'
    )
    (tmp_path / "rules" / "main.yar").write_bytes(
        b'include "../lib/common.yar"\nrule main { condition: common }'
    )
    # the tree is what the user names: here the folder holding both
    report = audit_paths([tmp_path], dynamic=False)
    assert (report.files, report.rules) == (2, 2)
    assert any(f.path == "lib/common.yar" and f.detector == "marking" for f in report.findings)
    assert not [f for f in report.findings if f.detector == "include-unresolved"]
    # a sibling folder is outside the tree of rules/: a finding, not read
    report = audit_paths([tmp_path / "rules"], dynamic=False)
    assert (report.files, report.rules) == (1, 1)
    assert [(f.detector, f.evidence) for f in report.findings] == [
        ("outside-tree", "../lib/common.yar")
    ]
