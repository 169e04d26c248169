"""Sample screening: no document leaves as a "suspicious sample", whatever its name says.

:func:`classify` looks at the *content* only (a file name is never consulted) and returns
what the bytes are; :func:`screen_sample` applies a policy's sample rules to that. Kinds:

- documents, refused in every mode: ``pdf`` (``%PDF-`` in the first KiB), ``ooxml`` and
  ``odf`` (a zip holding ``[Content_Types].xml`` with ``word/``, ``xl/``, ``ppt/`` parts, or
  an OpenDocument ``mimetype``), ``ole`` (an OLE2 compound file: Word, Excel, PowerPoint,
  Outlook ``.msg``; all of them, since telling an MSI installer from a document needs a
  parser of the compound file directory and a refusal errs on the customer's side),
  ``rtf``, ``email`` (RFC 5322 headers or an mbox ``From`` line), ``text`` (plain text in
  a natural language: mostly printable, and common function words of several languages make
  up a large share of its words, which code and logs do not);
- ``marked``: anything carrying a classification or handling marking, found by the rule
  auditor's own detector (:func:`overt.rules.detectors.find_markings`) in the printable
  places a fast literal scan (yara-x) nominates, in UTF-8 or UTF-16LE;
- ``archive``: a zip, tar, gzip, bzip2 or xz container; every member is classified in turn,
  nested up to :data:`MAX_DEPTH`, with at most :data:`MAX_MEMBERS` members and
  :data:`MAX_EXPANDED` bytes expanded in all (a zip bomb stops at the limit, whatever sizes
  its headers claim); ``opaque-archive``: 7z, RAR or CAB, which the standard library cannot
  open and which are therefore never uploaded;
- ``executable`` (PE, ELF, Mach-O, Java class, DEX), ``script`` (``#!``), ``data`` (the rest).

A sample is refused if it or anything inside it is a document or marked, if an archive is
beyond the limits, if its kind is listed in ``samples.never``, if it is larger than
``samples.max_bytes``, or if the mode does not allow it (``never``; ``ask`` without consent;
``executables-only`` for anything that is not an executable or an archive of executables).
"""

from __future__ import annotations

import bz2
import io
import lzma
import re
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from overt.telemetry.errors import SampleRefusedError
from overt.telemetry.policy import SampleRules

__all__ = [
    "DOCUMENT_KINDS",
    "MAX_DEPTH",
    "MAX_EXPANDED",
    "MAX_MEMBERS",
    "SampleFinding",
    "classify",
    "screen_sample",
]

DOCUMENT_KINDS = frozenset({"pdf", "ooxml", "odf", "ole", "rtf", "email", "text"})
MAX_DEPTH = 4
MAX_MEMBERS = 1000
MAX_EXPANDED = 64 << 20


@dataclass(frozen=True)
class SampleFinding:
    """What one part of a sample is: ``path`` is ``""`` for the sample itself, else the
    member path inside archives (``inner.zip!docs/a.pdf``); ``detail`` says why."""

    path: str
    kind: str
    detail: str = ""


class _Budget:
    def __init__(self) -> None:
        self.expanded = 0
        self.members = 0

    def spend(self, size: int, path: str) -> None:
        self.expanded += size
        self.members += 1
        if self.expanded > MAX_EXPANDED:
            raise SampleRefusedError(
                "samples.archives", "archive", f"expands beyond {MAX_EXPANDED} bytes", path
            )
        if self.members > MAX_MEMBERS:
            raise SampleRefusedError(
                "samples.archives", "archive", f"more than {MAX_MEMBERS} members", path
            )


_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_EXEC_MAGIC = (
    (b"MZ", "PE"),
    (b"\x7fELF", "ELF"),
    (b"\xfe\xed\xfa\xce", "Mach-O"),
    (b"\xfe\xed\xfa\xcf", "Mach-O"),
    (b"\xce\xfa\xed\xfe", "Mach-O"),
    (b"\xcf\xfa\xed\xfe", "Mach-O"),
    (b"\xca\xfe\xba\xbe", "Mach-O universal or Java class"),
    (b"dex\n", "DEX"),
)
_OPAQUE = ((b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!\x1a\x07", "RAR"), (b"MSCF", "CAB"))
_MAIL_HEADER = re.compile(
    rb"^(?:From|To|Cc|Subject|Date|Received|Return-Path|Message-ID|MIME-Version|"
    rb"Delivered-To|Reply-To|X-Mailer|Content-Type):[ \t]",
    re.MULTILINE | re.IGNORECASE,
)
_MBOX = re.compile(rb"From \S+ +\S")
_WORDS = re.compile(r"[^\W\d_]{1,24}")
_TAGS = re.compile(r"<[^<>]{0,2000}>")
# Function words of English, German, French, Spanish, Italian, Portuguese, Dutch and
# Russian: in prose a third or more of all words, in code and logs a few per cent.
_FUNCTION_WORDS = frozenset(
    [
        "the",
        "and",
        "of",
        "to",
        "a",
        "in",
        "is",
        "that",
        "it",
        "for",
        "on",
        "with",
        "as",
        "was",
        "be",
        "are",
        "this",
        "by",
        "not",
        "or",
        "have",
        "from",
        "at",
        "der",
        "die",
        "das",
        "und",
        "ist",
        "nicht",
        "ein",
        "eine",
        "zu",
        "den",
        "von",
        "mit",
        "sich",
        "des",
        "auf",
        "für",
        "im",
        "dem",
        "le",
        "la",
        "les",
        "et",
        "est",
        "un",
        "une",
        "des",
        "du",
        "que",
        "pour",
        "dans",
        "qui",
        "pas",
        "sur",
        "au",
        "el",
        "los",
        "las",
        "y",
        "en",
        "que",
        "por",
        "con",
        "para",
        "una",
        "del",
        "se",
        "es",
        "lo",
        "il",
        "di",
        "che",
        "non",
        "per",
        "una",
        "sono",
        "della",
        "o",
        "os",
        "e",
        "do",
        "da",
        "em",
        "um",
        "para",
        "com",
        "não",
        "uma",
        "de",
        "het",
        "een",
        "en",
        "van",
        "is",
        "dat",
        "op",
        "te",
        "zijn",
        "met",
        "voor",
        "niet",
        "и",
        "в",
        "не",
        "на",
        "что",
        "\u0441",
        "по",
        "это",
        "как",
        "\u0430",
        "но",
        "к",
        "из",
        "то",
    ]
)


def _as_utf8(data: bytes) -> bytes:
    """UTF-16 text (a BOM, or every other byte zero, as Windows writes it) re-encoded as
    UTF-8, so that a document saved as UTF-16 is read as the text it is; else ``data``."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        codec = "utf-16"
    elif len(data) >= 64 and data[1:64:2].count(0) >= 30 and data[0:64:2].count(0) <= 2:
        codec = "utf-16-le"
    elif len(data) >= 64 and data[0:64:2].count(0) >= 30 and data[1:64:2].count(0) <= 2:
        codec = "utf-16-be"
    else:
        return data
    return data[: len(data) & ~1].decode(codec, "replace").encode("utf-8")


def _sniff_text(head: bytes) -> str | None:
    """``text`` or ``email`` for natural-language text or mail, else None."""
    if _MBOX.match(head) or (
        _MAIL_HEADER.match(head)
        and len({h.lower() for h in _MAIL_HEADER.findall(head[:8192])}) >= 2
    ):
        return "email"
    sample = _as_utf8(head[:65536])
    if not sample or sample.count(0) or sum(c < 9 or 13 < c < 32 for c in sample[:4096]) > 8:
        return None
    text = sample.decode("utf-8", "replace").lower()
    if "<" in text:  # HTML or XML prose (a saved page, an HTML mail): the words, not the tags
        text = _TAGS.sub(" ", text)
    words = _WORDS.findall(text)
    if len(words) < 20:
        return None
    common = sum(w in _FUNCTION_WORDS for w in words)
    if common / len(words) >= 0.2:
        return "text"
    return None


@cache
def _marking_prefilter() -> Any:
    """A yara-x rule that finds every place a marking of the rule auditor's lexicon could
    start (any case, ASCII or UTF-16LE, plus US portion-marking syntax).

    It only nominates windows: whether a window holds a marking is decided by the auditor's
    detector itself (:func:`overt.rules.detectors.find_markings`), so there is one detector.
    The phrases are the auditor's (:func:`overt.rules.detectors.marking_phrases`, never
    copied): a marking added there is screened here too. yara-x's literal matcher scans at about
    1 GB/s where ``re`` manages 15 MB/s on a many-way alternation.
    """
    import yara_x

    from overt.rules.detectors import marking_phrases

    lines = []
    for i, phrase in enumerate(marking_phrases()):
        head = phrase[:16]
        if head.isascii():
            escaped = head.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'$a{i} = "{escaped}" nocase ascii wide')
        else:
            for j, form in enumerate({head, head.lower(), head.upper(), head.title()}):
                hexed = " ".join(f"{b:02x}" for b in form.encode("utf-8"))
                lines.append(f"$u{i}_{j} = {{ {hexed} }}")
    for j, portion in enumerate(("(TS//", "(S//", "(C//", "(U//", "(R//", "(CUI//", "S//NF")):
        lines.append(f'$p{j} = "{portion}" ascii wide')
    source = "rule marking_candidates {\n strings:\n  " + "\n  ".join(lines)
    return yara_x.compile(source + "\n condition: any of them\n}\n")


_WINDOW = 160
_MAX_WINDOWS = 4096


def _markings(data: bytes, path: str) -> str | None:
    import yara_x

    from overt.rules.detectors import find_markings

    results = yara_x.Scanner(_marking_prefilter()).scan(data)
    starts = sorted(
        (m.offset, m.length)
        for rule in results.matching_rules
        for pattern in rule.patterns
        for m in pattern.matches
    )
    if len(starts) > _MAX_WINDOWS:
        raise SampleRefusedError(
            "samples.markings", "marked", f"more than {_MAX_WINDOWS} candidate markings", path
        )
    done = -1
    for offset, length in starts:
        if offset < done:
            continue  # inside a window already read
        lo, hi = max(0, offset - _WINDOW), min(len(data), offset + length + _WINDOW)
        done = hi - _WINDOW
        window = data[lo:hi]
        wide = length > 1 and data[offset + 1] == 0
        text = (
            window[(offset - lo) % 2 :].decode("utf-16-le", "replace")
            if wide
            else window.decode("utf-8", "replace")
        )
        for marking, government, distinctive in find_markings(text):
            if distinctive:
                return f"{marking} ({government})"
    return None


def _kind_of(data: bytes) -> tuple[str, str]:
    if len(data) > 262 and data[257:262] == b"ustar":
        return "tar", ""  # before the PDF check: a tar's first member starts at byte 512
    if b"%PDF-" in data[:1024]:
        return "pdf", "PDF header"
    if data.startswith(_OLE):
        return "ole", "OLE2 compound file"
    if data.startswith(b"{\\rtf"):
        return "rtf", "RTF header"
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return "zip", ""
    if data.startswith(b"\x1f\x8b"):
        return "gzip", ""
    if data.startswith(b"BZh"):
        return "bzip2", ""
    if data.startswith(b"\xfd7zXZ\x00"):
        return "xz", ""
    for magic, name in _OPAQUE:
        if data.startswith(magic):
            return "opaque-archive", name
    for magic, name in _EXEC_MAGIC:
        if data.startswith(magic):
            return "executable", name
    if data.startswith(b"#!"):
        return "script", "interpreter line"
    sniffed = _sniff_text(data[:65536])
    if sniffed:
        return sniffed, "natural-language text" if sniffed == "text" else "mail headers"
    return "data", ""


def _decompress(data: bytes, kind: str, path: str, budget: _Budget) -> bytes:
    room = MAX_EXPANDED - budget.expanded + 1
    try:
        if kind == "gzip":
            d = zlib.decompressobj(wbits=31)
            out = d.decompress(data, room)
        elif kind == "bzip2":
            out = bz2.BZ2Decompressor().decompress(data, room)
        else:
            out = lzma.LZMADecompressor().decompress(data, room)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as err:
        raise SampleRefusedError(
            "samples.archives", "archive", f"{kind} stream does not expand: {err}", path
        ) from err
    budget.spend(len(out), path)
    return out


def _members(data: bytes, kind: str, path: str, budget: _Budget) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    try:
        if kind == "zip":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    room = MAX_EXPANDED - budget.expanded + 1
                    with zf.open(info) as member:
                        body = member.read(room)  # bounded: the header's size is not trusted
                    budget.spend(len(body), f"{path}!{info.filename}")
                    out.append((info.filename, body))
        else:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
                for ti in tf:
                    if not ti.isfile():
                        continue
                    budget.spend(ti.size, f"{path}!{ti.name}")
                    extracted = tf.extractfile(ti)
                    out.append((ti.name, extracted.read() if extracted else b""))
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        OSError,
        EOFError,
        ValueError,
        RuntimeError,  # an encrypted member: it cannot be inspected, so it cannot leave
        NotImplementedError,  # a compression method zipfile does not know
        zlib.error,
    ) as err:
        raise SampleRefusedError(
            "samples.archives", "archive", f"{kind} archive does not open: {err}", path
        ) from err
    return out


def _ooxml_or_odf(members: list[tuple[str, bytes]]) -> tuple[str, str] | None:
    names = {name for name, _ in members}
    if "[Content_Types].xml" in names and any(
        n.startswith(("word/", "xl/", "ppt/", "visio/")) for n in names
    ):
        return "ooxml", "Office Open XML package"
    for name, body in members:
        if name == "mimetype" and body.startswith(b"application/vnd.oasis.opendocument"):
            return "odf", "OpenDocument package"
    return None


def _walk(data: bytes, path: str, depth: int, budget: _Budget, out: list[SampleFinding]) -> None:
    kind, detail = _kind_of(data)
    if kind in ("zip", "tar", "gzip", "bzip2", "xz"):
        if depth >= MAX_DEPTH:
            raise SampleRefusedError(
                "samples.archives", "archive", f"nested deeper than {MAX_DEPTH}", path
            )
        if kind in ("gzip", "bzip2", "xz"):
            out.append(SampleFinding(path, "archive", kind))
            _walk(_decompress(data, kind, path, budget), f"{path}!{kind}", depth + 1, budget, out)
            return
        members = _members(data, kind, path, budget)
        package = _ooxml_or_odf(members) if kind == "zip" else None
        if package:
            out.append(SampleFinding(path, *package))
            return
        out.append(SampleFinding(path, "archive", kind))
        for name, body in members:
            _walk(body, f"{path}!{name}" if path else f"!{name}", depth + 1, budget, out)
        return
    out.append(SampleFinding(path, kind, detail))
    if kind not in DOCUMENT_KINDS:
        marking = _markings(data, path)
        if marking:
            out.append(SampleFinding(path, "marked", marking))


def classify(data: bytes) -> tuple[SampleFinding, ...]:
    """What the sample and everything inside it is, by content (module docstring).

    Raises:
        SampleRefusedError: an archive beyond the limits (rule ``samples.archives``).
    """
    out: list[SampleFinding] = []
    _walk(data, "", 0, _Budget(), out)
    return tuple(out)


def screen_sample(
    data: bytes, rules: SampleRules, consent: bool = False
) -> tuple[SampleFinding, ...]:
    """The findings of a sample that may be uploaded under ``rules``; else a refusal.

    ``consent`` is the user's answer in ``ask`` mode.

    Raises:
        SampleRefusedError: naming the rule (module docstring) and where the content is.
    """
    if rules.mode == "never":
        raise SampleRefusedError("samples.mode", "any", "this policy uploads no samples")
    if rules.mode == "ask" and not consent:
        raise SampleRefusedError("samples.mode", "any", "the user did not agree to this upload")
    if len(data) > rules.max_bytes:
        raise SampleRefusedError(
            "samples.max_bytes", "any", f"{len(data)} bytes, more than {rules.max_bytes}"
        )
    findings = classify(data)
    for f in findings:
        if f.kind in DOCUMENT_KINDS:
            raise SampleRefusedError("samples.documents", f.kind, f.detail, f.path)
        if f.kind == "marked":
            raise SampleRefusedError("samples.markings", "marked", f.detail, f.path)
        if f.kind == "opaque-archive":
            raise SampleRefusedError(
                "samples.archives", f.kind, f"{f.detail} cannot be inspected", f.path
            )
        if f.kind in rules.never:
            raise SampleRefusedError("samples.never", f.kind, f.detail, f.path)
    if rules.mode == "executables-only":
        other = [f for f in findings if f.kind not in ("executable", "archive")]
        if other or not any(f.kind == "executable" for f in findings):
            what = other[0] if other else findings[0]
            raise SampleRefusedError(
                "samples.mode", what.kind, "executables-only uploads executables only", what.path
            )
    return findings
