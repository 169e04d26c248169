"""in-toto Statement v1 and overt's publication predicates.

Spec: https://github.com/in-toto/attestation/blob/v1.0/spec/v1/statement.md. A
statement binds a predicate (a typed claim) to one or more subjects (artifacts
named by digest)::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": NAME, "digest": {"sha256": HEX64}}, ...],
     "predicateType": URI,
     "predicate": {...}}

overt's predicate types (each a JSON object; the URIs are identifiers, the
``/v1`` suffix is the version and a breaking change gets ``/v2``):

========================================  =====================================================
``https://overt.dev/release/v1``          ``product``, ``version``, ``channel``, ``platform``
``https://overt.dev/update/v1``           ``product``, ``version``, ``channel``,
                                          ``min_previous_version`` (string or null)
``https://overt.dev/rule-bundle/v1``      ``product``, ``channel``, ``engine``, ``version``,
                                          ``rule_count`` (integer >= 0)
``https://overt.dev/key-set/v1``          ``sequence`` (integer >= 1), ``keys`` (publisher
                                          public keys), ``revoked`` (keys never valid again),
                                          ``threshold`` (integer >= 1),
                                          ``previous`` (sha256 hex of the previous key-set
                                          entry, or null for sequence 1)
``https://overt.dev/rule-audit/v1``       ``audit`` (the audit's name), ``result`` (``pass`` or
                                          ``fail``): an auditor's sign-off on a rule bundle
========================================  =====================================================

SLSA provenance v1 (``https://slsa.dev/provenance/v1``), CycloneDX
(``https://cyclonedx.org/bom`` and ``https://cyclonedx.org/bom/v1.N``) and security
advisory (``https://overt.dev/disclosure-advisory/v1``, :mod:`overt.disclosure.advisories`)
statements are accepted as publications too; their predicates are kept as opaque JSON. Source
snapshots and reviews (``https://overt.dev/source-snapshot/v1``, ``.../source-review/v1``,
:mod:`overt.formats.source_snapshot`) are too, checked by their own modules, and so are
SBOM scan verdicts (``https://overt.dev/sbom-scan/v1``, :mod:`overt.sbom.verdict`).

Example::

    >>> s = make_statement("agent-1.2.3.msi", "ab" * 32,
    ...                    Update("agent", "1.2.3", "stable", "1.0.0"))
    >>> parse_statement(format_statement(s)) == s
    True

Parsing is strict about what overt relies on (``_type``, a non-empty subject
list with lowercase-hex digests, a string ``predicateType``, an object
``predicate``) and keeps everything else: a parsed statement holds the decoded
JSON object in :attr:`Statement.json`, and unknown members round-trip
unchanged. :func:`format_statement` serializes canonically (sorted members, no
whitespace); it is only used on statements overt creates, since a signed
payload is always kept as the bytes that were signed.

Versions (``version`` fields) compare with :func:`version_key`: one to four
dot-separated decimal numbers without leading zeros, then an optional SemVer
pre-release (``-rc.1``), which sorts before the release it precedes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from overt.errors import FormatError
from overt.formats.strict import dump_json_canonical, json_int, json_str, load_json

__all__ = [
    "CYCLONEDX",
    "KEY_SET",
    "KINDS",
    "MAX_STATEMENT_SIZE",
    "RELEASE",
    "RULE_AUDIT",
    "RULE_BUNDLE",
    "SLSA_PROVENANCE",
    "STATEMENT_TYPE",
    "UPDATE",
    "KeySet",
    "Predicate",
    "Release",
    "RuleAudit",
    "RuleBundle",
    "Statement",
    "Subject",
    "Update",
    "format_statement",
    "make_statement",
    "parse_predicate",
    "parse_statement",
    "statement_from_json",
    "version_key",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
RELEASE = "https://overt.dev/release/v1"
UPDATE = "https://overt.dev/update/v1"
RULE_BUNDLE = "https://overt.dev/rule-bundle/v1"
KEY_SET = "https://overt.dev/key-set/v1"
RULE_AUDIT = "https://overt.dev/rule-audit/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
#: A security advisory (CSAF subject; overt.disclosure.advisories), kept as opaque JSON.
DISCLOSURE_ADVISORY = "https://overt.dev/disclosure-advisory/v1"
CYCLONEDX = "https://cyclonedx.org/bom"
#: Source snapshots and reviews (overt.formats.source_snapshot, overt.formats.source_review),
#: checked by their own modules and kept as opaque JSON here.
_SOURCE = (
    "https://overt.dev/source-snapshot/v1",
    "https://overt.dev/source-review/v1",
    "https://slsa.dev/verification_summary/v1",  # rebuilds (overt.formats.vsa)
    "https://overt.dev/sbom-scan/v1",  # vulnerability scans of an SBOM (overt.sbom.verdict)
)

#: CLI kind names and the predicate types they stand for.
KINDS: Mapping[str, str] = {
    "release": RELEASE,
    "update": UPDATE,
    "rule-bundle": RULE_BUNDLE,
    "key-set": KEY_SET,
    "rule-audit": RULE_AUDIT,
}

MAX_STATEMENT_SIZE = 4 << 20

# Always used with fullmatch: ``$`` would also match before a final newline ("9.9.9\n").
_HEX = re.compile(r"[0-9a-f]+")
_CYCLONEDX = re.compile(r"https://cyclonedx\.org/bom(/v1\.(0|[1-9][0-9]*))?")
_NUM = r"(0|[1-9][0-9]*)"
_IDENT = r"(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_VERSION = re.compile(rf"{_NUM}(\.{_NUM}){{0,3}}(-{_IDENT}(\.{_IDENT})*)?")
_MAX_FIELD = 256
#: A key text in a key set: an ML-DSA-44 vkey is about 1,800 characters (keytypes' cap).
_MAX_KEY_TEXT = 1 << 13


def _fail(reason: str, data: object = "") -> FormatError:
    return FormatError("in-toto statement", reason, data if isinstance(data, str) else repr(data))


@dataclass(frozen=True)
class Subject:
    """An artifact named by digest. ``digest`` maps algorithm names to lowercase hex."""

    name: str
    digest: Mapping[str, str]

    @property
    def sha256(self) -> str | None:
        return self.digest.get("sha256")


@dataclass(frozen=True)
class Statement:
    """A parsed or created statement; :attr:`json` is the whole object, unknown members kept."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any]
    json: Mapping[str, Any] = field(repr=False)

    @property
    def kind(self) -> str | None:
        """``release``/``update``/``rule-bundle``/``key-set``/``rule-audit``, else None."""
        for kind, uri in KINDS.items():
            if uri == self.predicate_type:
                return kind
        return None


def version_key(text: str) -> tuple[Any, ...]:
    """A sort key for a version string (see the module docstring for the grammar).

    ``1.2`` equals ``1.2.0``; ``1.2.0-rc.1`` sorts before ``1.2.0``.

    Raises:
        FormatError: not a version in overt's grammar.
    """
    if len(text) > _MAX_FIELD or not _VERSION.fullmatch(text):
        raise FormatError("version", "not N[.N[.N[.N]]][-pre.release]", text)
    core, _, pre = text.partition("-")
    nums = [int(n) for n in core.split(".")]
    nums += [0] * (4 - len(nums))
    if not pre:
        return (*nums, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (*nums, 0, ids)


def _str(obj: Mapping[str, Any], key: str, *, nullable: bool = False) -> Any:
    value = obj.get(key)
    if value is None and nullable:
        if key not in obj:
            raise _fail(f"predicate member {key!r} missing")
        return None
    return json_str(value, "in-toto statement", f"predicate member {key!r}", max_len=_MAX_FIELD)


def _int(obj: Mapping[str, Any], key: str, minimum: int) -> int:
    return json_int(obj.get(key), "in-toto statement", f"predicate member {key!r}", minimum)


def _version(obj: Mapping[str, Any], key: str, *, nullable: bool = False) -> Any:
    value = _str(obj, key, nullable=nullable)
    if value is not None:
        try:
            version_key(value)
        except FormatError as err:
            raise _fail(f"predicate member {key!r} is not a version", value) from err
    return value


@dataclass(frozen=True)
class Release:
    """``https://overt.dev/release/v1``: a product build."""

    product: str
    version: str
    channel: str
    platform: str

    predicate_type = RELEASE

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "version": self.version,
            "channel": self.channel,
            "platform": self.platform,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Release:
        return cls(_str(obj, "product"), _version(obj, "version"), _str(obj, "channel"),
                   _str(obj, "platform"))  # fmt: skip


@dataclass(frozen=True)
class Update:
    """``https://overt.dev/update/v1``: an update, installable only from ``min_previous_version`` on."""

    product: str
    version: str
    channel: str
    min_previous_version: str | None = None

    predicate_type = UPDATE

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "version": self.version,
            "channel": self.channel,
            "min_previous_version": self.min_previous_version,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Update:
        return cls(_str(obj, "product"), _version(obj, "version"), _str(obj, "channel"),
                   _version(obj, "min_previous_version", nullable=True))  # fmt: skip


@dataclass(frozen=True)
class RuleBundle:
    """``https://overt.dev/rule-bundle/v1``: a detection-rule bundle for a product's engine."""

    product: str
    channel: str
    engine: str
    version: str
    rule_count: int

    predicate_type = RULE_BUNDLE

    def to_json(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "channel": self.channel,
            "engine": self.engine,
            "version": self.version,
            "rule_count": self.rule_count,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RuleBundle:
        return cls(_str(obj, "product"), _str(obj, "channel"), _str(obj, "engine"),
                   _version(obj, "version"), _int(obj, "rule_count", 0))  # fmt: skip


@dataclass(frozen=True)
class KeySet:
    """``https://overt.dev/key-set/v1``: the publisher's keys from ``sequence`` on.

    Signed by ``threshold`` keys of the *previous* key set (the pinned first key
    for sequence 1). ``previous`` chains it to the previous key-set entry.
    ``require`` (optional, omitted when empty): key algorithms (``ed25519``,
    ``ml-dsa-44``) of which every publication, and the next key set, must carry a
    signature by one of these keys: a hybrid set during a post-quantum migration.
    """

    sequence: int
    keys: tuple[str, ...]
    revoked: tuple[str, ...] = ()
    threshold: int = 1
    previous: str | None = None
    require: tuple[str, ...] = ()

    predicate_type = KEY_SET

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "sequence": self.sequence,
            "keys": list(self.keys),
            "revoked": list(self.revoked),
            "threshold": self.threshold,
            "previous": self.previous,
        }
        if self.require:
            obj["require"] = list(self.require)
        return obj

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> KeySet:
        lists = []
        for key in ("keys", "revoked"):
            value = obj.get(key)
            if not isinstance(value, list) or not all(
                isinstance(k, str) and k and len(k) <= _MAX_KEY_TEXT for k in value
            ):
                raise _fail(f"predicate member {key!r} is not a list of strings", value)
            if len(set(value)) != len(value):
                raise _fail(f"predicate member {key!r} lists a key twice", value)
            lists.append(tuple(value))
        keys, revoked = lists
        if not keys:
            raise _fail("a key set with no keys")
        if set(keys) & set(revoked):
            raise _fail("a key set both lists and revokes a key")
        previous = obj.get("previous")
        if previous is not None and (
            not isinstance(previous, str) or len(previous) != 64 or not _HEX.fullmatch(previous)
        ):
            raise _fail("predicate member 'previous' is not sha256 hex or null", previous)
        if "previous" not in obj:
            raise _fail("predicate member 'previous' missing")
        threshold = _int(obj, "threshold", 1)
        sequence = _int(obj, "sequence", 1)
        if (sequence == 1) != (previous is None):
            raise _fail("'previous' must be null exactly for sequence 1", previous)
        require: tuple[str, ...] = ()
        if "require" in obj:
            value = obj["require"]
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(a, str) and a and len(a) <= 32 for a in value)
                or len(set(value)) != len(value)
            ):
                raise _fail("predicate member 'require' is not a non-empty list of names", value)
            require = tuple(value)
        return cls(sequence, keys, revoked, threshold, previous, require)


@dataclass(frozen=True)
class RuleAudit:
    """``https://overt.dev/rule-audit/v1``: an auditor's result for one audit of a rule bundle."""

    audit: str
    result: str  # "pass" or "fail"

    predicate_type = RULE_AUDIT

    def to_json(self) -> dict[str, Any]:
        return {"audit": self.audit, "result": self.result}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RuleAudit:
        result = _str(obj, "result")
        if result not in ("pass", "fail"):
            raise _fail("predicate member 'result' is not pass or fail", result)
        return cls(_str(obj, "audit"), result)


Predicate = Release | Update | RuleBundle | KeySet | RuleAudit

_TYPED: Mapping[
    str, type[Release] | type[Update] | type[RuleBundle] | type[KeySet] | type[RuleAudit]
] = {
    RELEASE: Release,
    UPDATE: Update,
    RULE_BUNDLE: RuleBundle,
    KEY_SET: KeySet,
    RULE_AUDIT: RuleAudit,
}


def parse_predicate(statement: Statement) -> Predicate | None:
    """The typed overt predicate of ``statement``, or None for SLSA/CycloneDX ones.

    Raises:
        FormatError: an overt predicate type whose required members are wrong.
    """
    cls = _TYPED.get(statement.predicate_type)
    return None if cls is None else cls.from_json(statement.predicate)


def _subject(obj: object) -> Subject:
    if not isinstance(obj, dict):
        raise _fail("a subject is not an object", obj)
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise _fail("a subject has no name", obj)
    digest = obj.get("digest")
    if not isinstance(digest, dict) or not digest:
        raise _fail("a subject has no digest", obj)
    for alg, value in digest.items():
        if not isinstance(value, str) or not _HEX.fullmatch(value):
            raise _fail(f"subject digest {alg!r} is not lowercase hex", value)
    sha256 = digest.get("sha256")
    if sha256 is not None and len(sha256) != 64:
        raise _fail("subject sha256 digest is not 64 hex digits", sha256)
    return Subject(name, dict(digest))


def statement_from_json(obj: object) -> Statement:
    """Build a :class:`Statement` from decoded JSON, checking what overt relies on.

    Raises:
        FormatError: wrong ``_type``, no subjects, a bad digest, an unsupported
            ``predicateType`` or a non-object predicate, or an overt predicate
            missing a required member.
    """
    if not isinstance(obj, dict):
        raise _fail("not a JSON object", obj)
    if obj.get("_type") != STATEMENT_TYPE:
        raise _fail(f"_type is not {STATEMENT_TYPE}", obj.get("_type"))
    subjects = obj.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise _fail("subject is not a non-empty list", subjects)
    ptype = obj.get("predicateType")
    if not isinstance(ptype, str):
        raise _fail("predicateType is not a string", ptype)
    if (
        ptype not in _TYPED
        and ptype not in (SLSA_PROVENANCE, DISCLOSURE_ADVISORY, *_SOURCE)
        and not _CYCLONEDX.fullmatch(ptype)
    ):
        raise _fail("unsupported predicateType", ptype)
    predicate = obj.get("predicate")
    if not isinstance(predicate, dict):
        raise _fail("predicate is not an object", predicate)
    stmt = Statement(tuple(_subject(s) for s in subjects), ptype, predicate, obj)
    parse_predicate(stmt)  # required members of overt's own predicates
    return stmt


def parse_statement(data: bytes) -> Statement:
    """Parse an in-toto Statement v1 (the payload of a publication's envelope).

    Raises:
        FormatError: see :func:`statement_from_json`; also bad UTF-8/JSON,
            duplicate members, or more than :data:`MAX_STATEMENT_SIZE` bytes.
    """
    return statement_from_json(load_json(data, "in-toto statement", MAX_STATEMENT_SIZE))


def format_statement(statement: Statement) -> bytes:
    """Serialize ``statement.json`` canonically (sorted members, compact)."""
    return dump_json_canonical(statement.json)


def make_statement(
    name: str,
    sha256: str,
    predicate: Predicate | tuple[str, Mapping[str, Any]],
    extra_subjects: Sequence[Subject] = (),
) -> Statement:
    """Create a statement about the artifact ``name`` with digest ``sha256`` (hex).

    ``predicate`` is a typed overt predicate or a ``(predicateType, object)``
    pair (SLSA provenance, CycloneDX).

    Raises:
        FormatError: the result would not parse back (bad digest, bad predicate).
    """
    if isinstance(predicate, tuple):
        ptype, body = predicate[0], dict(predicate[1])
    else:
        ptype, body = predicate.predicate_type, predicate.to_json()
    subjects = [{"name": name, "digest": {"sha256": sha256}}]
    subjects += [{"name": s.name, "digest": dict(s.digest)} for s in extra_subjects]
    obj = {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": ptype, "predicate": body}
    return statement_from_json(obj)
