"""Sample screening by content: a document never leaves as a sample, whatever its name."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

import pytest

from overt.telemetry.errors import SampleRefusedError
from overt.telemetry.policy import SampleRules
from overt.telemetry.samples import MAX_DEPTH, classify, screen_sample

PE = b"MZ\x90\x00" + bytes(60) + b"PE\x00\x00" + bytes(400) + b"This program cannot be run"
ELF = b"\x7fELF\x02\x01\x01" + bytes(300)
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
PROSE = (
    b"Dear colleagues, the results of the review are in the attached file and we would like"
    b" to discuss them with you at the meeting on Monday. It is important that the team has"
    b" read the notes before the call, and that any questions are sent to me by Friday.\n"
) * 4
EMAIL = b"From: alice@acme.example\nTo: bob@acme.example\nSubject: plans\n\nsee attached\n"
MARKED_LOG = b"id=4471 host=fileserver3 label=TOP SECRET//NOFORN path=/srv/x.bin\n"
RULES = SampleRules("executables-only", 1 << 20, frozenset({"script"}))


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
    return out.getvalue()


def _refusal(data: bytes, rules: SampleRules = RULES) -> SampleRefusedError:
    with pytest.raises(SampleRefusedError) as caught:
        screen_sample(data, rules)
    return caught.value


def test_an_executable_is_uploaded() -> None:
    assert [f.kind for f in screen_sample(PE, RULES)] == ["executable"]


def test_an_archive_of_executables_is_uploaded() -> None:
    assert screen_sample(_zip({"a.exe": PE, "b": ELF}), RULES)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (PDF, "pdf"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "ole"),
        (b"{\\rtf1\\ansi hello}", "rtf"),
        (EMAIL, "email"),
        (b"From alice@acme.example Thu Nov 26 10:00:00 2026\n" + EMAIL, "email"),
        (PROSE, "text"),
        (_zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}), "ooxml"),
        (_zip({"mimetype": b"application/vnd.oasis.opendocument.text"}), "odf"),
    ],
)
def test_a_document_renamed_exe_is_refused_by_content(data: bytes, kind: str) -> None:
    # No name is ever given to the screen: "report.exe" is only bytes here.
    refusal = _refusal(data, SampleRules("all"))
    assert (refusal.rule, refusal.kind) == ("samples.documents", kind)


def test_code_is_not_mistaken_for_prose() -> None:
    code = b"def f(x):\n    return [i * 2 for i in range(x) if i % 3]\n" * 20
    assert classify(code)[0].kind == "data"


def test_an_archive_holding_a_marked_document_is_refused() -> None:
    inner = _zip({"export/labels.log": MARKED_LOG})
    refusal = _refusal(_zip({"tool.exe": PE, "inner.zip": inner}), SampleRules("all"))
    assert refusal.rule == "samples.markings"
    assert refusal.path == "!inner.zip!export/labels.log"


def test_an_executable_carrying_a_marking_is_refused() -> None:
    refusal = _refusal(PE + b"\x00\x00" + MARKED_LOG)
    assert refusal.rule == "samples.markings" and "TOP SECRET" in refusal.detail


def test_a_pdf_hidden_in_a_tar_gz_is_refused() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        info = tarfile.TarInfo("docs/invoice.exe")
        info.size = len(PDF)
        tf.addfile(info, io.BytesIO(PDF))
    refusal = _refusal(gzip.compress(out.getvalue()), SampleRules("all"))
    assert (refusal.kind, refusal.path) == ("pdf", "!gzip!docs/invoice.exe")


def test_a_zip_bomb_stops_at_the_expansion_limit() -> None:
    bomb = _zip({"zeros.bin": bytes(80 << 20)})
    assert len(bomb) < 200_000
    refusal = _refusal(bomb, SampleRules("all"))
    assert refusal.rule == "samples.archives" and "expands beyond" in refusal.detail


def test_deep_nesting_is_bounded() -> None:
    data = PE
    for _ in range(MAX_DEPTH + 1):
        data = _zip({"inner.zip": data})
    refusal = _refusal(data, SampleRules("all"))
    assert refusal.rule == "samples.archives" and "nested" in refusal.detail


def test_an_opaque_archive_is_never_uploaded() -> None:
    assert _refusal(b"7z\xbc\xaf\x27\x1c" + bytes(100), SampleRules("all")).kind == "opaque-archive"


def test_modes_and_limits() -> None:
    assert _refusal(PE, SampleRules("never")).rule == "samples.mode"
    assert _refusal(PE, SampleRules("ask")).rule == "samples.mode"
    assert screen_sample(PE, SampleRules("ask"), consent=True)
    assert _refusal(PE, SampleRules("all", max_bytes=10)).rule == "samples.max_bytes"
    assert _refusal(b"#!/bin/sh\nrm -rf /\n").rule == "samples.never"
    assert _refusal(bytes(range(256)) * 4).kind == "data"  # executables-only
    assert screen_sample(bytes(range(256)) * 4, SampleRules("all"))


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_letter_saved_as_utf16_is_still_text(codec: str) -> None:
    refusal = _refusal(PROSE.decode().encode(codec), SampleRules("all"))
    assert (refusal.rule, refusal.kind) == ("samples.documents", "text")


def test_an_encrypted_zip_member_cannot_be_inspected_so_it_is_refused() -> None:
    data = bytearray(_zip({"a.exe": PE}))
    data[6] |= 1  # general-purpose flag bit 0: encrypted (local header)
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 1  # and in the central directory
    refusal = _refusal(bytes(data), SampleRules("all"))
    assert refusal.rule == "samples.archives" and "does not open" in refusal.detail


def test_a_saved_web_page_of_prose_is_text() -> None:
    paragraphs = PROSE.decode().split(". ")
    html = "<!DOCTYPE html><html><head><title>Q3</title></head><body>" + "".join(
        f'<p class="body-text" style="margin:0 0 1em 0">{p}.</p>' for p in paragraphs
    )
    refusal = _refusal((html + "</body></html>").encode(), SampleRules("all"))
    assert refusal.kind == "text"
