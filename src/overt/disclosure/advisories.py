"""Security advisories from a fixed report: CSAF 2.0 (security_advisory profile) and OSV JSON.

Both documents are generated from the report and the triager's :class:`AdvisoryDetails`,
validated against their official JSON schemas shipped in ``schemas/`` (origin and licences in
``schemas/README.md``; nothing is fetched from the network), and served in the CSAF 2.0
directory layout (CSAF 2.0 section 7.1.16 and following) so existing aggregators can read
them::

    /.well-known/csaf/provider-metadata.json     role csaf_publisher, one directory distribution
    /.well-known/csaf/white/index.txt            one line per document: 2026/ovt-2026-0001.json
    /.well-known/csaf/white/changes.csv          "2026/ovt-2026-0001.json","2026-11-25T09:00:00Z"
    /.well-known/csaf/white/2026/ovt-2026-0001.json          the CSAF document
    /.well-known/csaf/white/2026/ovt-2026-0001.json.sha256   its SHA-256 (sha256sum format)
    /osv/x_OVT-2026-0001.json                    the OSV document (id x_OVT-2026-0001)

The role is ``csaf_publisher``, not ``csaf_provider``: a provider must also serve OpenPGP
signatures, which overt does not make. What overt adds instead is the transparency log: each
advisory is logged as a publication (an in-toto statement over the CSAF document's digest,
with the OSV document's digest in its predicate, in a DSSE envelope signed by the
programme's publisher key: :func:`overt.publish.publisher.make_entry`).

CVSS v4.0 scores go into OSV only: the CSAF 2.0 schema knows CVSS v2 and v3 alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from overt.disclosure.errors import SubmissionError
from overt.disclosure.scoring import score
from overt.errors import FormatError
from overt.formats.statement import DISCLOSURE_ADVISORY as PREDICATE_TYPE

if TYPE_CHECKING:
    from overt.disclosure.service import ReportView

__all__ = [
    "OSV_SCHEMA_VERSION",
    "PREDICATE_TYPE",
    "AdvisoryDetails",
    "Publisher",
    "changes_csv",
    "csaf_path",
    "index_txt",
    "make_csaf",
    "make_osv",
    "osv_id",
    "provider_metadata",
    "sha256_line",
    "validate",
]

OSV_SCHEMA_VERSION = "1.7.5"

_ID = re.compile(r"[A-Z][A-Z0-9]{1,15}-[0-9]{4}-[0-9]{4,10}")
_VERSION = re.compile(r"[0-9A-Za-z.+_~-]{1,64}")
_CVE = re.compile(r"CVE-[0-9]{4}-[0-9]{4,}")
_CVSS_URLS = {
    "https://www.first.org/cvss/cvss-v2.0.json": "cvss-v2.0.json",
    "https://www.first.org/cvss/cvss-v3.0.json": "cvss-v3.0.json",
    "https://www.first.org/cvss/cvss-v3.1.json": "cvss-v3.1.json",
}


@dataclass(frozen=True)
class Publisher:
    """Who issues the advisories (CSAF document.publisher) and where they are served."""

    name: str
    namespace: str  # https URL of the publisher, e.g. https://example.com
    base_url: str  # where /.well-known/csaf/ is served, e.g. https://psirt.example.com


@dataclass(frozen=True)
class AdvisoryDetails:
    """What the triager adds to a fixed report to make its advisory.

    ``advisory_id`` is like ``OVT-2026-0001``; ``fixed`` is the first fixed version;
    ``ecosystem``/``package`` name the package for OSV (an OSV ecosystem, e.g. ``PyPI``).
    """

    advisory_id: str
    vendor: str
    product: str
    fixed: str
    ecosystem: str
    package: str
    summary: str
    cve: str | None = None

    def __post_init__(self) -> None:
        if not _ID.fullmatch(self.advisory_id):
            raise SubmissionError("advisory_id", "not like OVT-2026-0001", self.advisory_id)
        if not _VERSION.fullmatch(self.fixed):
            raise SubmissionError("fixed", "not a version string", self.fixed)
        if self.cve is not None and not _CVE.fullmatch(self.cve):
            raise SubmissionError("cve", "not CVE-YYYY-NNNN", self.cve)
        for name in ("vendor", "product", "ecosystem", "package", "summary"):
            value = getattr(self, name)
            if not value or len(value) > 1000:
                raise SubmissionError(name, "empty or longer than 1000 characters")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def csaf_path(advisory_id: str, at: datetime) -> str:
    """The document's path in the TLP:WHITE directory (CSAF 2.0 5.1 file name rule)."""
    name = re.sub(r"[^+\-a-z0-9]+", "_", advisory_id.lower())
    return f"{at.year}/{name}.json"


def make_csaf(
    publisher: Publisher, details: AdvisoryDetails, report: ReportView, at: datetime
) -> dict[str, Any]:
    """The CSAF 2.0 ``csaf_security_advisory`` document (validate it with :func:`validate`)."""
    fixed_id, affected_id = "CSAFPID-0001", "CSAFPID-0002"
    url = f"{publisher.base_url}/.well-known/csaf/white/{csaf_path(details.advisory_id, at)}"
    vulnerability: dict[str, Any] = {
        "title": report.title,
        "notes": [{"category": "description", "text": details.summary, "title": "Description"}],
        "product_status": {"fixed": [fixed_id], "known_affected": [affected_id]},
        "remediations": [
            {
                "category": "vendor_fix",
                "details": f"Update {details.product} to {details.fixed} or later.",
                "product_ids": [affected_id],
            }
        ],
        "acknowledgments": [{"names": [report.researcher], "summary": "reported the issue"}],
    }
    if details.cve:
        vulnerability["cve"] = details.cve
    if report.cvss is not None and report.cvss.startswith("CVSS:3.1/"):
        scored = score(report.cvss)
        vulnerability["scores"] = [
            {
                "cvss_v3": {
                    "version": "3.1",
                    "vectorString": scored.vector,
                    "baseScore": scored.base,
                    "baseSeverity": scored.severity.value.upper(),
                },
                "products": [affected_id],
            }
        ]
    return {
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "2.0",
            "distribution": {"tlp": {"label": "WHITE", "url": "https://www.first.org/tlp/"}},
            "notes": [{"category": "summary", "text": details.summary, "title": "Summary"}],
            "publisher": {
                "category": "vendor",
                "name": publisher.name,
                "namespace": publisher.namespace,
            },
            "references": [{"category": "self", "summary": "This advisory", "url": url}],
            "title": f"{details.advisory_id}: {report.title}",
            "tracking": {
                "current_release_date": _iso(at),
                "id": details.advisory_id,
                "initial_release_date": _iso(at),
                "revision_history": [
                    {"date": _iso(at), "number": "1", "summary": "Initial release."}
                ],
                "status": "final",
                "version": "1",
            },
        },
        "product_tree": {
            "branches": [
                {
                    "category": "vendor",
                    "name": details.vendor,
                    "branches": [
                        {
                            "category": "product_name",
                            "name": details.product,
                            "branches": [
                                {
                                    "category": "product_version",
                                    "name": details.fixed,
                                    "product": {
                                        "name": f"{details.product} {details.fixed}",
                                        "product_id": fixed_id,
                                    },
                                },
                                {
                                    "category": "product_version_range",
                                    "name": f"vers:generic/<{details.fixed}",
                                    "product": {
                                        "name": f"{details.product} < {details.fixed}",
                                        "product_id": affected_id,
                                    },
                                },
                            ],
                        }
                    ],
                }
            ]
        },
        "vulnerabilities": [vulnerability],
    }


def osv_id(advisory_id: str) -> str:
    """The OSV id: ``x_`` and the advisory id (the schema's prefix for a home database
    that is not on OSV's list of registered ones)."""
    return f"x_{advisory_id}"


def make_osv(
    publisher: Publisher, details: AdvisoryDetails, report: ReportView, at: datetime
) -> dict[str, Any]:
    """The OSV document (validate it with :func:`validate`)."""
    doc: dict[str, Any] = {
        "schema_version": OSV_SCHEMA_VERSION,
        "id": osv_id(details.advisory_id),
        "modified": _iso(at),
        "published": _iso(at),
        "summary": report.title[:120],
        "details": details.summary,
        "affected": [
            {
                "package": {"ecosystem": details.ecosystem, "name": details.package},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": details.fixed}],
                    }
                ],
            }
        ],
        "references": [
            {
                "type": "ADVISORY",
                "url": f"{publisher.base_url}/.well-known/csaf/white/"
                + csaf_path(details.advisory_id, at),
            }
        ],
        "credits": [{"name": report.researcher, "type": "FINDER"}],
    }
    if details.cve:
        doc["aliases"] = [details.cve]
    if report.cvss is not None:
        kind = "CVSS_V3" if report.cvss.startswith("CVSS:3.1/") else "CVSS_V4"
        doc["severity"] = [{"type": kind, "score": report.cvss}]
    return doc


def provider_metadata(publisher: Publisher, last_updated: datetime) -> dict[str, Any]:
    """``provider-metadata.json`` for the directory distribution (role csaf_publisher)."""
    base = f"{publisher.base_url}/.well-known/csaf"
    return {
        "canonical_url": f"{base}/provider-metadata.json",
        "distributions": [{"directory_url": f"{base}/white/"}],
        "last_updated": _iso(last_updated),
        "list_on_CSAF_aggregators": True,
        "metadata_version": "2.0",
        "mirror_on_CSAF_aggregators": True,
        "publisher": {
            "category": "vendor",
            "name": publisher.name,
            "namespace": publisher.namespace,
        },
        "role": "csaf_publisher",
    }


def index_txt(paths: list[str]) -> str:
    """``index.txt``: every document's path, one a line."""
    return "".join(p + "\n" for p in paths)


def changes_csv(entries: list[tuple[str, datetime]]) -> str:
    """``changes.csv``: ``"path","time"`` lines, the most recent change first."""
    ordered = sorted(entries, key=lambda e: e[1], reverse=True)
    return "".join(f'"{p}","{_iso(at)}"\n' for p, at in ordered)


def sha256_line(data: bytes, path: str) -> str:
    """The ``.sha256`` file of a document (``sha256sum`` format)."""
    return f"{hashlib.sha256(data).hexdigest()}  {path.rsplit('/', 1)[-1]}\n"


@cache
def _schema(name: str) -> Any:
    text = resources.files("overt.disclosure").joinpath("schemas", name).read_text("utf-8")
    return json.loads(text)


@cache
def _validator(kind: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    name = {
        "csaf": "csaf_json_schema.json",
        "osv": "osv_schema.json",
        "provider": "provider_json_schema.json",
    }[kind]
    pairs = []
    for url, file in _CVSS_URLS.items():
        # The FIRST schemas name older drafts; referencing needs to know which.
        pairs.append((url, Resource.from_contents(_schema(file), default_specification=DRAFT7)))
    csaf = _schema("csaf_json_schema.json")
    pairs.append((csaf["$id"], Resource.from_contents(csaf)))
    registry: Any = Registry().with_resources(pairs)
    return Draft202012Validator(_schema(name), registry=registry)


def validate(kind: str, doc: dict[str, Any]) -> bytes:
    """``doc`` as the JSON bytes to serve, once it validates against its official schema.

    ``kind`` is ``csaf``, ``osv`` or ``provider`` (provider-metadata.json).

    Raises:
        FormatError: the document breaks the schema (the first error's path and message).
    """
    errors = sorted(_validator(kind).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise FormatError(f"{kind} document", f"{where}: {first.message}"[:300])
    return json.dumps(doc, indent=2, ensure_ascii=False).encode() + b"\n"
