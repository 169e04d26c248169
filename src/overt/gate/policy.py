"""The client policy of an update gate: what one endpoint trusts and accepts.

A JSON object, versioned by its ``version`` member (this is version 1; a
reader refuses any other)::

    {
      "version": 1,
      "logs": ["<log vkey>", ...],
      "witness_policy": "<c2sp.org/tlog-policy text>",      (or)
      "witness_policy_file": "witnesses.policy",           (relative to this file)
      "publisher": "<the publisher's pinned first key>",
      "pins": [{"product": "agent", "channels": ["stable", "beta"]}],
      "kinds": ["release", "update", "rule-bundle"],
      "max_checkpoint_age": 86400,
      "keyset_log": {"log": "<the publisher's key-set log vkey>", "max_age": 86400},
      "rule_bundles": {
        "auditors": ["<auditor vkey>", ...],
        "audits": ["no-espionage", "no-exfiltration"],
        "min_auditors": 2
      },
      "source": {"reviewers": [...], "min_reviewers": 2, "min_coverage": 90,
                 "max_open_severity": "high", "rebuilders": [...], "min_rebuilders": 2,
                 "sbom": {"scanners": [...], "min_scanners": 1, "max_severity": "high",
                          "max_osv_age": 604800}}
    }

- ``logs``: log keys (signed-note vkeys, Ed25519, named after the origin). The
  ``log`` lines of the witness policy count too; together at least one.
- ``witness_policy`` / ``witness_policy_file`` (exactly one): the witness
  quorum as a c2sp.org/tlog-policy (:mod:`overt.formats.policy`). An empty or
  unsatisfiable one is an error.
- ``publisher``: the publisher's first key; later keys are followed through
  logged key-set statements (:mod:`overt.publish.keyset`).
- ``pins``: the products and channels this endpoint installs (non-empty).
- ``kinds`` (optional, default all three): publication kinds it admits.
- ``max_checkpoint_age``: seconds; the witness quorum must have cosigned the
  checkpoint at most this long ago (0 < age).
- ``keyset_log`` (optional, recommended): the publisher's key sets live in their
  own witnessed log (``log``: its key); every bundle must then carry a
  checkpoint of that log cosigned by the witness quorum at most ``max_age``
  seconds ago and *all* its entries, and the publication must be signed by the
  last key set among them. After a revocation is logged and witnessed, no
  endpoint admits the revoked key's signatures once ``max_age`` has passed
  (docs/adr/0012-key-sets-in-their-own-witnessed-log.md).
- ``rule_bundles`` (optional; required to admit ``rule-bundle`` publications):
  each audit in ``audits`` must carry ``pass`` sign-offs
  (``https://overt.dev/rule-audit/v1`` attestations logged beside the bundle)
  from at least ``min_auditors`` distinct keys among ``auditors``.

- ``source`` (optional): releases and updates must carry the evidence that their
  source was reviewed and reproduced enough, and (``sbom``) that signed scans of their
  SBOM found no known vulnerability at or above a severity (:mod:`overt.gate.source`).

Unknown members are refused (a typo must not silently weaken a policy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overt.errors import ConfigError, FormatError, PolicyError
from overt.formats.policy import Policy, PolicyLog, parse_policy
from overt.formats.strict import json_int, json_members, json_str, load_json
from overt.gate.source import SourceRequirement, parse_source_requirement
from overt.publish.keys import PublisherKey, parse_publisher_key

__all__ = [
    "VERSION",
    "ClientPolicy",
    "KeySetLogRequirement",
    "RuleBundleRequirement",
    "load_client_policy",
    "parse_client_policy",
]

VERSION = 1
_MAX_SIZE = 1 << 20
_KINDS = ("release", "update", "rule-bundle")
_REQUIRED = {"version", "publisher", "pins", "max_checkpoint_age"}
_OPTIONAL = {
    "logs",
    "witness_policy",
    "witness_policy_file",
    "kinds",
    "rule_bundles",
    "source",
    "keyset_log",
}


@dataclass(frozen=True)
class RuleBundleRequirement:
    """Which audits a rule bundle needs, and from how many distinct auditors."""

    auditors: tuple[PublisherKey, ...]
    audits: tuple[str, ...]
    min_auditors: int


@dataclass(frozen=True)
class KeySetLogRequirement:
    """The publisher's key-set log and how recently its quorum must have cosigned it."""

    log: PolicyLog
    max_age: float


@dataclass(frozen=True)
class ClientPolicy:
    """A parsed client policy (see the module docstring)."""

    logs: tuple[PolicyLog, ...]
    witnesses: Policy
    publisher: PublisherKey
    pins: frozenset[tuple[str, str]]  # (product, channel)
    kinds: frozenset[str]
    max_checkpoint_age: float
    rule_bundles: RuleBundleRequirement | None = None
    source: SourceRequirement | None = None
    keyset_log: KeySetLogRequirement | None = None

    def all_logs(self) -> tuple[PolicyLog, ...]:
        return (*self.logs, *self.witnesses.logs)


def _fail(reason: str, value: object = "") -> FormatError:
    return FormatError("client policy", reason, repr(value)[:80] if value != "" else "")


def _strings(value: object, what: str, *, nonempty: bool = True) -> list[str]:
    if (
        not isinstance(value, list)
        or (nonempty and not value)
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise _fail(f"{what} is not a{' non-empty' if nonempty else ''} list of strings", value)
    if len(set(value)) != len(value):
        raise _fail(f"{what} lists an item twice", value)
    return value


def _positive_int(value: object, what: str) -> int:
    return json_int(value, "client policy", what, 1)


def _seconds(value: object, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value < 1e12:
        raise _fail(f"{what} is not a positive number of seconds", value)
    return float(value)


def _keyset_log(obj: object, logs: tuple[PolicyLog, ...]) -> KeySetLogRequirement:
    obj = json_members(obj, "client policy keyset_log", {"log", "max_age"})
    log = PolicyLog(json_str(obj["log"], "client policy", "keyset_log log"))
    if log.origin in {lg.origin for lg in logs}:
        # One origin, two roles: the main log's checkpoints would pass as the key-set log's.
        raise PolicyError(f"keyset_log {log.origin} is also a publication log of this policy")
    return KeySetLogRequirement(log, _seconds(obj["max_age"], "keyset_log max_age"))


def _rule_bundles(obj: object) -> RuleBundleRequirement:
    obj = json_members(obj, "client policy rule_bundles", {"auditors", "audits", "min_auditors"})
    auditors = tuple(parse_publisher_key(k) for k in _strings(obj["auditors"], "auditors"))
    if len({a.keyid for a in auditors}) != len(auditors):
        raise _fail("auditors lists one key twice")
    audits = tuple(_strings(obj["audits"], "audits"))
    k = _positive_int(obj["min_auditors"], "min_auditors")
    if k > len(auditors):
        raise PolicyError(f"min_auditors {k} exceeds the {len(auditors)} auditors: unsatisfiable")
    return RuleBundleRequirement(auditors, audits, k)


def parse_client_policy(
    data: bytes, read_file: Callable[[str], bytes] | None = None
) -> ClientPolicy:
    """Parse a client policy; ``read_file`` resolves ``witness_policy_file``.

    Raises:
        FormatError: not the documented JSON, an unknown member, a bad key, a
            malformed witness policy.
        PolicyError: an empty or unsatisfiable policy (no log key, no quorum,
            no pins, more auditors required than listed).
        ConfigError: an unsupported version, or ``witness_policy_file`` without
            a way to read it.
    """
    obj: Any = load_json(data, "client policy", _MAX_SIZE)
    if not isinstance(obj, dict):
        raise _fail("not a JSON object", obj)
    if type(obj.get("version")) is not int or obj["version"] != VERSION:  # not true, not 1.0
        raise ConfigError(f"client policy version {obj.get('version')!r} is not {VERSION}")
    keys = set(obj)
    if not keys >= _REQUIRED or not keys <= _REQUIRED | _OPTIONAL:
        raise _fail(
            f"members missing {sorted(_REQUIRED - keys)} or unknown {sorted(keys - _REQUIRED - _OPTIONAL)}"
        )
    if ("witness_policy" in obj) == ("witness_policy_file" in obj):
        raise PolicyError(
            "the client policy needs exactly one of witness_policy, witness_policy_file"
        )
    if "witness_policy" in obj:
        witness_text = json_str(
            obj["witness_policy"], "client policy", "witness_policy", nonempty=False
        ).encode("utf-8")
    else:
        name = json_str(obj["witness_policy_file"], "client policy", "witness_policy_file")
        if read_file is None:
            raise ConfigError("witness_policy_file given but no way to read it")
        witness_text = read_file(name)
    witnesses = parse_policy(witness_text)
    logs = tuple(PolicyLog(v) for v in _strings(obj.get("logs", []), "logs", nonempty=False))
    if not logs and not witnesses.logs:
        raise PolicyError("the client policy names no log key")
    publisher = parse_publisher_key(obj["publisher"]) if isinstance(obj["publisher"], str) else None
    if publisher is None:
        raise _fail("publisher is not a key", obj["publisher"])
    pins: set[tuple[str, str]] = set()
    if not isinstance(obj["pins"], list) or not obj["pins"]:
        raise PolicyError("the client policy pins no product (it would admit nothing)")
    for pin in obj["pins"]:
        pin = json_members(pin, "client policy pin", {"product", "channels"})
        product = json_str(pin["product"], "client policy", "a pin's product")
        pins.update((product, c) for c in _strings(pin["channels"], "channels"))
    kinds = _strings(obj.get("kinds", list(_KINDS)), "kinds")
    if not set(kinds) <= set(_KINDS):
        raise _fail(f"kinds must be among {list(_KINDS)}", kinds)
    age = _seconds(obj["max_checkpoint_age"], "max_checkpoint_age")
    rules = _rule_bundles(obj["rule_bundles"]) if "rule_bundles" in obj else None
    source = parse_source_requirement(obj["source"]) if "source" in obj else None
    keyset_log = (
        _keyset_log(obj["keyset_log"], (*logs, *witnesses.logs)) if "keyset_log" in obj else None
    )
    return ClientPolicy(
        logs,
        witnesses,
        publisher,
        frozenset(pins),
        frozenset(kinds),
        age,
        rules,
        source,
        keyset_log,
    )


def load_client_policy(path: Path | str) -> ClientPolicy:
    """Read and parse a client policy file (``witness_policy_file`` is relative to it).

    Raises:
        ConfigError: an unreadable file; see :func:`parse_client_policy` for the rest.
    """
    path = Path(path)

    def read(p: Path) -> bytes:
        try:
            return p.read_bytes()
        except OSError as err:
            raise ConfigError(f"cannot read {p}: {err.strerror}") from err

    return parse_client_policy(read(path), lambda name: read(path.parent / name))
