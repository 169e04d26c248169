# ruff: noqa: RUF001  -- multilingual canary text on purpose
"""The canary corpus: documents that no malware detection rule should match.

Every rule is scanned against these files (``dynamic``). A *marked* canary
carries classification markings of many governments, code names and sensitive
subjects; its *clean twin* has the same format and structure with ordinary
business text. A rule that fires on a marked canary but not on its twin is
keyed to the markings or the content, whatever its source looks like. A rule
that fires on both matches ordinary documents. Real executables from this
machine are the control: a rule that fires on them too matches almost anything.

The canaries are built here, deterministically, from fixed text; nothing is
read from the network. Why each exists:

=============================  =================================================================
canary                         why
=============================  =================================================================
memo-marked.txt / clean.txt    plain UTF-8 text: the simplest ``"TOP SECRET"`` string rule
memo-marked-utf16.txt          UTF-16LE text: rules using ``wide`` or hex with zero bytes
memo-marked-cp1251.txt         legacy Cyrillic code page: Russian markings in hex or ``\\xNN``
memo-marked.pdf / clean.pdf    uncompressed PDF content stream, Info dictionary and XMP metadata
memo-marked.docx / clean.docx  OOXML stored uncompressed (see below): document.xml, core.xml
memo-marked.doc / clean.doc    OLE compound file (CFB v3) with a WordDocument stream, UTF-16LE
memo-marked.rtf / clean.rtf    RTF with ``\\par`` lines and ``\\uN`` escapes for non-Latin text
memo-marked.eml / clean.eml    e-mail with a marked subject, an 8-bit body, a base64 body part
                               (rules using the ``base64`` modifier) and the .docx as attachment
/bin/ls, /bin/sh ...           real executables: the control for rules that match anything
=============================  =================================================================

OOXML is a ZIP; Word deflates its parts, which hides the text from any byte
pattern. The canaries store their parts uncompressed so that a rule keyed to
document text is caught (a deflated copy could only catch rules keyed to part
names, which the static ``document-only`` detector already covers).

Scan-time external variables (``filename``, ``filepath``, ``extension``,
``filetype``, ``owner``) are set per canary as an endpoint would set them, so
that rules selecting by file name or owner are exercised too.
"""

from __future__ import annotations

import base64
import io
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CLEAN_LINES",
    "EXECUTABLES",
    "MARKED_LINES",
    "Canary",
    "build_cfb",
    "canaries",
]

MARKED_LINES: tuple[str, ...] = (
    "TOP SECRET//SI//NOFORN",
    "(TS//SI//NF) Ministry of Defence briefing: missile procurement, operation STELLAR WIND",
    "CLASSIFIED BY: J. Doe, Director  DERIVED FROM: MULTIPLE SOURCES  DECLASSIFY ON: 20501231",
    "SECRET//REL TO USA, FVEY",
    "(U//FOUO) Embassy cable on sanctions negotiation",
    "NATO SECRET / COSMIC TOP SECRET / NATO RESTRICTED",
    "RESTREINT UE/EU RESTRICTED",
    "OFFICIAL-SENSITIVE  UK EYES ONLY",
    "VS-NUR FÜR DEN DIENSTGEBRAUCH  VS-VERTRAULICH  STRENG GEHEIM",
    "TRÈS SECRET DÉFENSE  DIFFUSION RESTREINTE",
    "СОВЕРШЕННО СЕКРЕТНО  ДЛЯ СЛУЖЕБНОГО ПОЛЬЗОВАНИЯ  ОСОБОЙ ВАЖНОСТИ",
    "ЦІЛКОМ ТАЄМНО",
    "ŚCIŚLE TAJNE  ALTO SECRETO  SEGRETISSIMO  STG. GEHEIM",
    "绝密  机密  極秘  取扱注意  1급비밀  대외비",
    "סודי ביותר  سري للغاية",
    "Code words: TRAILBLAZER GUMFISH NIGHTSTAND PINWALE BLACKPEARL",
    "Nuclear enrichment intelligence summary for the President and the Cabinet",
)

CLEAN_LINES: tuple[str, ...] = (
    "Quarterly newsletter of the garden furniture association",
    "Dear members, please find the agenda of our spring meeting below.",
    "1. Welcome and approval of last year's minutes",
    "2. New catalogue of teak benches and parasols",
    "3. Opening hours of the exhibition hall during the holidays",
    "Viele Grüße, Bonnes salutations, С уважением, 此致敬礼",
    "Kind regards, the board",
)

_RUSSIAN_LINES = tuple(
    line for line in MARKED_LINES if any("\u0400" <= ch <= "\u04ff" for ch in line)
)

#: Executables from the machine used as the "matches anything" control.
EXECUTABLES: tuple[str, ...] = ("/bin/ls", "/bin/sh", "/usr/bin/env")
_MAX_EXECUTABLE = 4 * 1024 * 1024


@dataclass(frozen=True)
class Canary:
    """One file of the canary corpus.

    ``kind`` is ``marked``, ``clean`` or ``executable``; ``twin`` names the
    clean counterpart of a marked canary; ``externals`` are the scan-time
    values of YARA's external variables.
    """

    name: str
    kind: str
    fmt: str
    data: bytes
    why: str
    twin: str = ""
    externals: dict[str, str] = field(default_factory=dict)


# -- formats -------------------------------------------------------------------------


def _pdf(lines: tuple[str, ...], title: str) -> bytes:
    """A minimal PDF 1.4 with uncompressed text, an Info dictionary and XMP."""

    def lit(text: str) -> str:
        ascii_text = text.encode("ascii", "replace").decode("ascii")
        return "(" + ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"

    content = (
        "BT /F1 10 Tf 50 780 Td 12 TL\n" + "".join(f"{lit(line)} '\n" for line in lines) + "ET\n"
    )
    xmp = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>'
        + title
        + "</dc:title><dc:description>"
        + " | ".join(lines)
        + '</dc:description></rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
    ).encode("utf-8")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R /Metadata 6 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content.encode("ascii") + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n" % len(xmp)
        + xmp
        + b"\nendstream",
        b"<< /Title " + lit(title).encode("ascii") + b" /Producer (overt canary) >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for no, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % no + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R /Info 7 0 R >>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, xref)
    )
    return out.getvalue()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _docx(lines: tuple[str, ...], title: str) -> bytes:
    """An OOXML WordprocessingML package, parts stored uncompressed."""
    ns = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    body = "".join(f"<w:p><w:r><w:t>{_xml_escape(line)}</w:t></w:r></w:p>" for line in lines)
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.wordprocessingml.document.main+xml"/>'
            '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-'
            'package.core-properties+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="word/document.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/'
            'relationships/metadata/core-properties" Target="docProps/core.xml"/></Relationships>'
        ),
        "word/document.xml": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {ns}><w:body>{body}'
            "</w:body></w:document>"
        ),
        "docProps/core.xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/'
            'core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f"<dc:title>{_xml_escape(title)}</dc:title><cp:keywords>{_xml_escape(lines[0])}</cp:keywords>"
            "</cp:coreProperties>"
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, text in parts.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            zf.writestr(info, text.encode("utf-8"))
    return out.getvalue()


_ENDOFCHAIN = 0xFFFFFFFE
_FREESECT = 0xFFFFFFFF
_FATSECT = 0xFFFFFFFD
_NOSTREAM = 0xFFFFFFFF
_SECTOR = 512


def _dir_entry(name: str, kind: int, child: int, right: int, start: int, size: int) -> bytes:
    raw = name.encode("utf-16-le") + b"\x00\x00"
    return (
        raw.ljust(64, b"\x00")
        + struct.pack("<HBB", len(raw) if name else 0, kind, 1)
        + struct.pack("<III", _NOSTREAM, right, child)
        + b"\x00" * 16  # CLSID
        + struct.pack("<I", 0)  # state bits
        + b"\x00" * 16  # creation and modification times
        + struct.pack("<IQ", start, size)
    )


def build_cfb(streams: dict[str, bytes]) -> bytes:
    """A minimal OLE compound file (MS-CFB, version 3, 512-byte sectors).

    Layout: sector 0 is the FAT, sector 1 the directory, then each stream
    (padded to at least 4096 bytes, the mini-stream cutoff, so no mini FAT is
    needed). Holds at most three streams (one directory sector).

    Raises:
        ValueError: more than three streams, or too much data for one FAT sector.
    """
    if not 1 <= len(streams) <= 3:
        raise ValueError("build_cfb holds one to three streams")
    names = list(streams)
    datas = [streams[n].ljust(4096, b"\x00") for n in names]
    datas = [d + b"\x00" * (-len(d) % _SECTOR) for d in datas]
    fat = [_FATSECT, _ENDOFCHAIN]
    starts = []
    for d in datas:
        count = len(d) // _SECTOR
        start = len(fat)
        starts.append(start)
        fat.extend(range(start + 1, start + count))
        fat.append(_ENDOFCHAIN)
    if len(fat) > _SECTOR // 4:
        raise ValueError("build_cfb: streams too large for one FAT sector")
    fat += [_FREESECT] * (_SECTOR // 4 - len(fat))
    entries = [_dir_entry("Root Entry", 5, 1, _NOSTREAM, _ENDOFCHAIN, 0)]
    for i, name in enumerate(names):
        right = i + 2 if i + 1 < len(names) else _NOSTREAM
        entries.append(_dir_entry(name, 2, _NOSTREAM, right, starts[i], len(streams[name])))
    while len(entries) < 4:
        entries.append(
            b"\x00" * 64
            + struct.pack("<HBB", 0, 0, 0)
            + struct.pack("<III", _NOSTREAM, _NOSTREAM, _NOSTREAM)
            + b"\x00" * 48
        )
    header = (
        bytes.fromhex("D0CF11E0A1B11AE1")
        + b"\x00" * 16
        + struct.pack("<HHHHH", 0x003E, 3, 0xFFFE, 9, 6)
        + b"\x00" * 6
        + struct.pack(
            "<IIII", 0, 1, 1, 0
        )  # dir sectors (v3: 0), FAT sectors, first dir sector, txn
        + struct.pack("<IIIII", 4096, _ENDOFCHAIN, 0, _ENDOFCHAIN, 0)
        + struct.pack("<I", 0)  # DIFAT[0]: the FAT is sector 0
        + struct.pack("<I", _FREESECT) * 108
    )
    assert len(header) == _SECTOR
    return header + struct.pack(f"<{len(fat)}I", *fat) + b"".join(entries) + b"".join(datas)


def _doc(lines: tuple[str, ...]) -> bytes:
    text = "\r".join(lines) + "\r"
    # Word 97-2003 keeps text either as CP1252 bytes or as UTF-16LE in the
    # WordDocument stream; both forms are present so that either kind of rule fires.
    word = (
        b"\xec\xa5"
        + b"\x00" * 30
        + text.encode("cp1252", "replace")
        + b"\x00" * 16
        + text.encode("utf-16-le")
    )
    return build_cfb({"WordDocument": word, "1Table": b"\x00" * 64})


def _rtf_escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in "\\{}":
            out.append("\\" + ch)
        elif ord(ch) < 128:
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\u{code if code < 32768 else code - 65536}?")
    return "".join(out)


def _rtf(lines: tuple[str, ...]) -> bytes:
    body = "".join(f"{_rtf_escape(line)}\\par\n" for line in lines)
    return (
        "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Arial;}}\\f0\\fs20\n" + body + "}\n"
    ).encode("ascii")


def _eml(lines: tuple[str, ...], subject: str, attachment: bytes, attachment_name: str) -> bytes:
    text = "\r\n".join(lines) + "\r\n"
    b64_body = base64.encodebytes(text.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
    b64_att = base64.encodebytes(attachment).decode("ascii").replace("\n", "\r\n")
    msg = (
        "From: Analyst <analyst@example.org>\r\n"
        "To: Desk <desk@example.org>\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 01 Jan 2024 09:00:00 +0000\r\n"
        "Message-ID: <canary@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="canary-boundary"\r\n\r\n'
        "--canary-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{text}\r\n"
        "--canary-boundary\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{b64_body}\r\n"
        "--canary-boundary\r\nContent-Type: application/vnd.openxmlformats-officedocument."
        f'wordprocessingml.document; name="{attachment_name}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{b64_att}\r\n"
        "--canary-boundary--\r\n"
    )
    return msg.encode("utf-8")


# -- corpus --------------------------------------------------------------------------------


def _ext(name: str, ftype: str, marked: bool) -> dict[str, str]:
    base = ("TS_SI_NOFORN_briefing" if marked else "newsletter") + name[name.rfind(".") :]
    return {
        "filename": base,
        "filepath": "C:\\Users\\analyst\\Documents\\",
        "extension": name[name.rfind(".") :],
        "filetype": ftype,
        "owner": "CORP\\analyst",
    }


def canaries(executables: bool = True) -> list[Canary]:
    """The canary corpus (deterministic; executables read from this machine)."""
    marked_title = "TOP SECRET//NOFORN - " + MARKED_LINES[1]
    clean_title = CLEAN_LINES[0]
    docx_marked = _docx(MARKED_LINES, marked_title)
    docx_clean = _docx(CLEAN_LINES, clean_title)
    pairs: list[tuple[str, str, bytes, bytes, str]] = [
        (
            "txt",
            "TXT",
            "\n".join(MARKED_LINES).encode("utf-8"),
            "\n".join(CLEAN_LINES).encode("utf-8"),
            "plain UTF-8 text: the simplest string rule",
        ),
        (
            "pdf",
            "PDF",
            _pdf(MARKED_LINES, marked_title),
            _pdf(CLEAN_LINES, clean_title),
            "PDF with an uncompressed content stream, Info dictionary and XMP metadata",
        ),
        ("docx", "DOCX", docx_marked, docx_clean, "OOXML document, parts stored uncompressed"),
        (
            "doc",
            "DOC",
            _doc(MARKED_LINES),
            _doc(CLEAN_LINES),
            "OLE compound file with a WordDocument stream (CP1252 and UTF-16LE text)",
        ),
        (
            "rtf",
            "RTF",
            _rtf(MARKED_LINES),
            _rtf(CLEAN_LINES),
            "RTF with \\par lines and \\u escapes",
        ),
        (
            "eml",
            "EML",
            _eml(MARKED_LINES, marked_title, docx_marked, "briefing.docx"),
            _eml(CLEAN_LINES, clean_title, docx_clean, "newsletter.docx"),
            "e-mail: marked subject, 8-bit and base64 bodies, .docx attachment",
        ),
    ]
    out: list[Canary] = []
    for ext, ftype, marked, clean, why in pairs:
        clean_name = f"memo-clean.{ext}"
        out.append(
            Canary(
                f"memo-marked.{ext}",
                "marked",
                ext,
                marked,
                why,
                clean_name,
                _ext(f"x.{ext}", ftype, True),
            )
        )
        out.append(
            Canary(
                clean_name,
                "clean",
                ext,
                clean,
                why + " (clean twin)",
                "",
                _ext(f"x.{ext}", ftype, False),
            )
        )
    out.append(
        Canary(
            "memo-marked-utf16.txt",
            "marked",
            "txt",
            "\n".join(MARKED_LINES).encode("utf-16-le"),
            "UTF-16LE text: rules using wide or hex with zero bytes",
            "memo-clean.txt",
            _ext("x.txt", "TXT", True),
        )
    )
    out.append(
        Canary(
            "memo-marked-cp1251.txt",
            "marked",
            "txt",
            "\n".join(_RUSSIAN_LINES).encode("cp1251"),
            "legacy Cyrillic code page (cp1251): Russian markings in hex",
            "memo-clean.txt",
            _ext("x.txt", "TXT", True),
        )
    )
    if executables:
        for path in EXECUTABLES:
            p = Path(path)
            if p.is_file():
                data = p.read_bytes()[:_MAX_EXECUTABLE]
                out.append(
                    Canary(
                        path,
                        "executable",
                        "elf",
                        data,
                        "real executable from this machine: the match-anything control",
                        "",
                        {
                            "filename": p.name,
                            "filepath": str(p.parent) + "/",
                            "extension": "",
                            "filetype": "ELF",
                            "owner": "root",
                        },
                    )
                )
    return out
