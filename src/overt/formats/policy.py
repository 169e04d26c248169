"""Transparency log trust policies (c2sp.org/tlog-policy) and checkpoint verification under one.

Spec: https://github.com/C2SP/C2SP/blob/main/tlog-policy.md. A policy names the
logs a client accepts, the witnesses it knows and the quorum of witness
cosignatures (c2sp.org/tlog-cosignature) a checkpoint needs. Grammar, one item
per line, items separated by runs of spaces and tabs::

    log <vkey> [<url>]                    ; a log; the vkey's name is its origin
    witness <name> <vkey> [<url>]         ; a cosigner; vkey of type 0x04 or 0x06
    group <name> (all | any | <k>) <name>...   ; k of the n members (1 <= k <= n)
    quorum <name>                         ; exactly one; a witness, a group, or none
    # comment                             ; blank and comment lines are ignored

overt extends the grammar with data availability (c2sp.org/tlog-mirror; the
spec has no mirror syntax, so other tlog-policy readers refuse these lines)::

    mirror <name> <vkey> [<url>] [min-index=<N>]  ; a mirror: a cosigner (0x04, 0x06) whose
                                          ; cosignature also says it durably holds entries
                                          ; [N, size) and serves them as tlog-tiles under
                                          ; <url>/<hex sha256(origin)>; N defaults to 0
    mirror-quorum <name>                  ; at most one; a mirror, or a group of mirrors only

Mirrors share the namespace with witnesses and groups. A mirror is also a
cosigner, so the witness quorum may name it; the mirror quorum counts only
mirrors, and a mirror never counts for entries below its minimum index (the
spec's pruning section): :func:`mirrors_holding` and :func:`require_mirrors`
decide it for a range of entries.

Names share one namespace, are defined before they are referenced (so groups
cannot be circular), appear at most once per group, and are opaque octets;
``none`` is predefined and is not a group member. Two log or witness lines with
the same underlying public key are refused. Example (a 2-of-3 quorum)::

    log example.com/log+0d4f2b3e+AZ4f...
    witness asia    asia.example/w+5a1c9e02+BFx0...
    witness europe  europe.example/w+c3b1d7aa+BG2k...
    witness americas americas.example/w+8e02f4d1+BHq7...
    group regions 2 asia europe americas
    quorum regions
    mirror asia-m asia.example/m+17ab03c9+BKr1... https://asia.example/mirror
    mirror europe-m europe.example/m+2e4f6a80+BMn5... https://europe.example/mirror
    group holders 2 asia-m europe-m
    mirror-quorum holders

:func:`verify_checkpoint` accepts a signed checkpoint only if one of the
policy's logs signed it (the log key's name must equal the origin line) and
the verified cosignatures satisfy the quorum; a forged cosignature by a known
witness refuses the whole note. Cosignature timestamps give freshness: with
``max_age``, the quorum must be met by cosignatures no older than ``max_age``
seconds, else :class:`~overt.errors.StaleError` (a frozen log). A policy with
no log key, or no quorum line, is a :class:`~overt.errors.PolicyError`, never a
pass. ``quorum none`` is honoured as the spec says (log signature only), but
then no freshness can be proven and ``max_age`` fails.

:func:`format_policy` writes a canonical form (logs, witnesses, groups, quorum,
single spaces, threshold spelled as parsed); ``parse_policy(format_policy(p))
== p``. The parser accepts a missing final newline: a policy is configuration,
not signed bytes.

Versioning: the spec has no version line; this module follows C2SP main as of
commit 5ba5ee83. An incompatible policy format would be a new module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from overt.errors import FormatError, PolicyError, StaleError, UnknownKeyError
from overt.formats.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from overt.formats.cosignature import cosignature_timestamp
from overt.formats.keytypes import KeyVerifier, Purpose
from overt.formats.note import Verifier, parse_vkey
from overt.formats.strict import parse_decimal

__all__ = [
    "FUTURE_SKEW",
    "MAX_POLICY_SIZE",
    "NONE",
    "Group",
    "MirrorQuorumError",
    "Policy",
    "PolicyLog",
    "PolicyMirror",
    "PolicyWitness",
    "VerifiedCheckpoint",
    "format_policy",
    "mirror_prefix",
    "mirrors_holding",
    "open_trusted_checkpoint",
    "parse_policy",
    "require_mirrors",
    "verify_checkpoint",
]

NONE = "none"
"""The predefined quorum name that requires no cosignature."""

MAX_POLICY_SIZE = 1 << 16
"""Largest policy file accepted, in bytes."""

FUTURE_SKEW = 300
"""Seconds a cosignature timestamp may lie in the caller's future and still count."""

_MAX_ITEMS = 256  # per kind; the spec asks for at least 32
_BAD_OCTETS = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
_WS = re.compile(r"[ \t]+")


def _fail(reason: str, line: str = "") -> FormatError:
    return FormatError("tlog-policy", reason, line.encode("utf-8", "surrogateescape"))


def _raw_key(verifier: Verifier) -> bytes:
    if isinstance(verifier, KeyVerifier):
        return verifier.public_bytes
    raise PolicyError(f"unsupported key type for {verifier.name}")  # pragma: no cover


def _may_sign(verifier: Verifier, purpose: Purpose) -> bool:
    """Whether the key's type may sign for ``purpose`` (overt.formats.keytypes decides)."""
    return isinstance(verifier, KeyVerifier) and verifier.key_type.may_sign(purpose)


@dataclass(frozen=True)
class PolicyLog:
    """A ``log`` line: a log key (type 0x01 Ed25519 or 0x06 ML-DSA-44) named after the origin."""

    vkey: str
    url: str | None = None
    verifier: Verifier = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        verifier = parse_vkey(self.vkey)
        if not _may_sign(verifier, Purpose.CHECKPOINT):
            raise _fail("a log key's type does not sign checkpoints (0x01, 0x06 do)", self.vkey)
        object.__setattr__(self, "verifier", verifier)

    @property
    def origin(self) -> str:
        return self.verifier.name


@dataclass(frozen=True)
class PolicyWitness:
    """A ``witness`` line: a policy-local name and a cosigner key (type 0x04 or 0x06)."""

    name: str
    vkey: str
    url: str | None = None
    verifier: Verifier = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        verifier = parse_vkey(self.vkey)
        if not _may_sign(verifier, Purpose.COSIGNATURE):
            raise _fail("a witness key is not a cosignature (type 0x04, 0x06) vkey", self.vkey)
        object.__setattr__(self, "verifier", verifier)


@dataclass(frozen=True)
class PolicyMirror:
    """A ``mirror`` line (overt's extension): a tlog-mirror's cosigner key (type 0x04 or
    0x06), its monitoring prefix, and the minimum index from which it holds the log."""

    name: str
    vkey: str
    url: str | None = None
    min_index: int = 0
    verifier: Verifier = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        verifier = parse_vkey(self.vkey)
        if not _may_sign(verifier, Purpose.COSIGNATURE):
            raise _fail("a mirror key is not a cosignature (type 0x04, 0x06) vkey", self.vkey)
        if self.min_index < 0:
            raise _fail("a mirror's minimum index is negative", str(self.min_index))
        object.__setattr__(self, "verifier", verifier)


def mirror_prefix(url: str, origin: str) -> str:
    """Where a mirror serves ``origin``'s log: ``<url>/<hex sha256(origin)>`` (tlog-mirror)."""
    return f"{url.rstrip('/')}/{hashlib.sha256(origin.encode()).hexdigest()}"


@dataclass(frozen=True)
class Group:
    """A ``group`` line: witnessed when ``threshold`` of ``members`` are."""

    name: str
    spec: str  # "all", "any" or the decimal k, as written
    members: tuple[str, ...]

    @property
    def threshold(self) -> int:
        if self.spec == "all":
            return len(self.members)
        if self.spec == "any":
            return 1
        return int(self.spec)


@dataclass(frozen=True)
class Policy:
    """A parsed policy. Build one with :func:`parse_policy` (which checks every rule)."""

    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[Group, ...]
    quorum: str | None
    mirrors: tuple[PolicyMirror, ...] = ()
    mirror_quorum: str | None = None

    def witness(self, name: str) -> PolicyWitness | None:
        for w in self.witnesses:
            if w.name == name:
                return w
        return None

    def mirror(self, name: str) -> PolicyMirror | None:
        for m in self.mirrors:
            if m.name == name:
                return m
        return None

    def cosigners(self) -> tuple[Verifier, ...]:
        """The keys of every witness and mirror: whose cosignatures a checkpoint may carry."""
        return (*(w.verifier for w in self.witnesses), *(m.verifier for m in self.mirrors))

    def quorum_met(self, witnessed: Iterable[str]) -> bool:
        """Whether the cosigners (witnesses or mirrors) named in ``witnessed`` satisfy the quorum.

        Raises:
            PolicyError: the policy has no quorum.
        """
        if self.quorum is None:
            raise PolicyError("the policy has no quorum line")
        return self._met(self.quorum, witnessed)

    def mirror_quorum_met(self, holding: Iterable[str]) -> bool:
        """Whether the mirrors named in ``holding`` satisfy the mirror quorum (True without one)."""
        if self.mirror_quorum is None:
            return True
        return self._met(self.mirror_quorum, holding)

    def _met(self, top: str, named: Iterable[str]) -> bool:
        have = set(named)
        groups = {g.name: g for g in self.groups}
        memo: dict[str, bool] = {}

        def met(name: str) -> bool:
            if name == NONE:
                return True
            if name not in memo:
                group = groups.get(name)
                if group is None:
                    memo[name] = name in have
                else:
                    memo[name] = sum(met(m) for m in group.members) >= group.threshold
            return memo[name]

        return met(top)


def _threshold_ok(spec: str, members: int) -> bool:
    """Whether ``spec`` is a canonical decimal k with 1 <= k <= ``members``."""
    try:
        return parse_decimal(spec, "group threshold", members) >= 1
    except FormatError:
        return False


def _check_name(name: str, defined: set[str], line: str) -> None:
    if name == NONE:
        raise _fail("'none' is predefined", line)
    if name in defined:
        raise _fail(f"name {name!r} defined twice", line)


def parse_policy(data: bytes) -> Policy:
    """Parse a tlog-policy file.

    Raises:
        FormatError: a forbidden control octet, an unknown keyword, a wrong number
            of items, a malformed or wrong-type vkey, a duplicate key or name, a
            reference to an undefined name, a bad threshold, or over the size limits.
        PolicyError: no quorum line (an empty policy is never a pass).
    """
    if len(data) > MAX_POLICY_SIZE:
        raise FormatError("tlog-policy", f"larger than {MAX_POLICY_SIZE} bytes", data[:60])
    bad = _BAD_OCTETS.search(data)
    if bad:
        raise FormatError("tlog-policy", "forbidden control octet", data[bad.start() :][:20])
    text = data.decode("utf-8", "surrogateescape")  # high-bit octets stay opaque
    logs: list[PolicyLog] = []
    witnesses: list[PolicyWitness] = []
    groups: list[Group] = []
    quorum: str | None = None
    mirrors: list[PolicyMirror] = []
    mirror_quorum: str | None = None
    names: set[str] = set()
    keys: set[bytes] = set()
    for line in text.split("\n"):
        items = [i for i in _WS.split(line) if i]
        if not items or items[0].startswith("#"):
            continue
        keyword, args = items[0], items[1:]
        try:
            if keyword == "log":
                if len(args) not in (1, 2):
                    raise _fail("log takes a vkey and an optional URL", line)
                log = PolicyLog(args[0], args[1] if len(args) == 2 else None)
                key = b"log" + _raw_key(log.verifier)
                if key in keys:
                    raise _fail("duplicate log key", line)
                keys.add(key)
                logs.append(log)
            elif keyword == "witness":
                if len(args) not in (2, 3):
                    raise _fail("witness takes a name, a vkey and an optional URL", line)
                _check_name(args[0], names, line)
                w = PolicyWitness(args[0], args[1], args[2] if len(args) == 3 else None)
                key = b"witness" + _raw_key(w.verifier)
                if key in keys:
                    raise _fail("duplicate witness key", line)
                keys.add(key)
                names.add(w.name)
                witnesses.append(w)
            elif keyword == "group":
                if len(args) < 3:
                    raise _fail("group takes a name, a threshold and at least one member", line)
                name, spec, members = args[0], args[1], tuple(args[2:])
                _check_name(name, names, line)
                for m in members:
                    if m == NONE or m not in names:
                        raise _fail(f"group member {m!r} is not defined above", line)
                if len(set(members)) != len(members):
                    raise _fail("a group lists a member twice", line)
                if spec not in ("all", "any") and not _threshold_ok(spec, len(members)):
                    raise _fail("threshold is not all, any or k with 1 <= k <= n", line)
                names.add(name)
                groups.append(Group(name, spec, members))
            elif keyword == "quorum":
                if len(args) != 1:
                    raise _fail("quorum takes one name", line)
                if quorum is not None:
                    raise _fail("more than one quorum line", line)
                if args[0] != NONE and args[0] not in names:
                    raise _fail(f"quorum {args[0]!r} is not defined above", line)
                quorum = args[0]
            elif keyword == "mirror":
                m = _mirror_line(args, names, line)
                key = b"witness" + _raw_key(m.verifier)  # one cosigner key, one role
                if key in keys:
                    raise _fail("duplicate witness or mirror key", line)
                keys.add(key)
                names.add(m.name)
                mirrors.append(m)
            elif keyword == "mirror-quorum":
                if len(args) != 1:
                    raise _fail("mirror-quorum takes one name", line)
                if mirror_quorum is not None:
                    raise _fail("more than one mirror-quorum line", line)
                if args[0] not in names:
                    raise _fail(f"mirror-quorum {args[0]!r} is not defined above", line)
                leaves = _leaves(args[0], groups)
                only = {m.name for m in mirrors}
                if not leaves <= only:
                    raise _fail(
                        f"mirror-quorum {args[0]!r} counts {sorted(leaves - only)}, which are"
                        " not mirrors (a witness holds no data)",
                        line,
                    )
                mirror_quorum = args[0]
            else:
                raise _fail(f"unknown keyword {keyword!r}", line)
        except FormatError as err:
            if err.what == "tlog-policy":
                raise
            raise _fail(f"{err.what}: {err.reason}", line) from err
        if max(len(logs), len(witnesses), len(groups), len(mirrors)) > _MAX_ITEMS:
            raise _fail(f"more than {_MAX_ITEMS} logs, witnesses, mirrors or groups")
    if quorum is None:
        raise PolicyError("tlog-policy has no quorum line (an empty policy is never a pass)")
    return Policy(
        tuple(logs), tuple(witnesses), tuple(groups), quorum, tuple(mirrors), mirror_quorum
    )


_MIN_INDEX = "min-index="


def _mirror_line(args: list[str], names: set[str], line: str) -> PolicyMirror:
    """``mirror <name> <vkey> [<url>] [min-index=<N>]``: the arguments after the keyword."""
    min_index = 0
    if len(args) in (3, 4) and args[-1].startswith(_MIN_INDEX):
        min_index = parse_decimal(args[-1][len(_MIN_INDEX) :], "mirror min-index")
        args = args[:-1]
    if len(args) not in (2, 3) or any(a.startswith(_MIN_INDEX) for a in args):
        raise _fail(
            "mirror takes a name, a vkey, an optional URL and an optional min-index=N", line
        )
    _check_name(args[0], names, line)
    return PolicyMirror(args[0], args[1], args[2] if len(args) == 3 else None, min_index)


def _leaves(name: str, groups: Sequence[Group]) -> set[str]:
    """The witnesses and mirrors that ``name`` (a cosigner or a group) counts, transitively."""
    by_name = {g.name: g for g in groups}
    group = by_name.get(name)
    if group is None:
        return {name}
    return set().union(*(_leaves(m, groups) for m in group.members))


def format_policy(policy: Policy) -> bytes:
    """Write ``policy`` canonically (see the module docstring).

    Raises:
        PolicyError: the policy has no quorum.
    """
    if policy.quorum is None:
        raise PolicyError("a policy without a quorum line cannot be written")
    lines = [" ".join(["log", log.vkey, *([log.url] if log.url else [])]) for log in policy.logs]
    lines += [
        " ".join(["witness", w.name, w.vkey, *([w.url] if w.url else [])]) for w in policy.witnesses
    ]
    lines += [" ".join(_mirror_items(m)) for m in policy.mirrors]
    lines += [" ".join(["group", g.name, g.spec, *g.members]) for g in policy.groups]
    lines.append(f"quorum {policy.quorum}")
    if policy.mirror_quorum is not None:
        lines.append(f"mirror-quorum {policy.mirror_quorum}")
    return "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")


def _mirror_items(m: PolicyMirror) -> list[str]:
    items = ["mirror", m.name, m.vkey, *([m.url] if m.url else [])]
    return items + ([f"{_MIN_INDEX}{m.min_index}"] if m.min_index else [])


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint that satisfied a policy.

    ``cosigned`` maps each witness or mirror (policy name) whose cosignature
    verified to its timestamp. ``quorum_time`` is the newest time T such that cosignatures made
    at or after T meet the quorum (None for ``quorum none``): the checkpoint was
    the witnesses' latest view at least as late as T.
    """

    checkpoint: Checkpoint
    signed: SignedCheckpoint
    log: PolicyLog
    cosigned: Mapping[str, int]
    quorum_time: int | None

    @property
    def raw(self) -> bytes:
        return self.signed.raw


def _quorum_time(policy: Policy, stamps: Mapping[str, int]) -> int | None:
    for t in sorted(set(stamps.values()), reverse=True):
        if policy.quorum_met(n for n, ts in stamps.items() if ts >= t):
            return t
    return None


def verify_checkpoint(
    note: bytes,
    policy: Policy,
    now: float | None = None,
    max_age: float | None = None,
    *,
    origin: str | None = None,
    extra_logs: Sequence[PolicyLog] = (),
) -> VerifiedCheckpoint:
    """Verify a signed checkpoint against ``policy`` (and freshness, with ``max_age``).

    ``extra_logs`` are log keys known from elsewhere (the spec allows a policy
    without log lines when the application knows its logs). ``origin``, if
    given, is required of the checkpoint. Cosignatures timestamped more than
    :data:`FUTURE_SKEW` seconds after ``now`` do not count.

    Raises:
        PolicyError: no quorum, no log key at all, ``max_age`` without ``now``, or
            the verified cosignatures do not meet the quorum.
        FormatError: a malformed note or checkpoint.
        UnknownKeyError: no policy log is named after the checkpoint's origin, or
            none of them signed it.
        InvalidSignatureError: the log's or a known witness's signature is bad.
        OriginError: the origin is not ``origin``.
        StaleError: the quorum is met, but not by cosignatures younger than ``max_age``.
    """
    if policy.quorum is None:
        raise PolicyError("the policy has no quorum line")
    logs = (*policy.logs, *extra_logs)
    if not logs:
        raise PolicyError("the policy names no log key")
    if max_age is not None and now is None:
        raise PolicyError("max_age needs the current time")
    # The origin is the note's first line; open_checkpoint below parses and checks it all.
    cp_origin = note.split(b"\n", 1)[0].decode("utf-8", "replace")
    candidates = [log for log in logs if log.origin == cp_origin]
    if not candidates:
        raise UnknownKeyError(f"no log key for origin {cp_origin!r} in the policy")
    cosigners = list(policy.cosigners())
    signed: SignedCheckpoint | None = None
    used = candidates[0]
    error: UnknownKeyError | None = None
    for log in candidates:
        try:
            signed = open_checkpoint(note, log.verifier, origin, cosigners=cosigners)
        except UnknownKeyError as err:  # another key of this origin may have signed
            error = err
            continue
        used = log
        break
    if signed is None:
        raise error or UnknownKeyError(f"checkpoint not signed by a log key for {cp_origin!r}")
    by_key = {(w.verifier.name, w.verifier.key_id): w.name for w in policy.witnesses}
    by_key.update({(m.verifier.name, m.verifier.key_id): m.name for m in policy.mirrors})
    stamps: dict[str, int] = {}
    for _verifier, sig in signed.cosignatures():
        name = by_key[(sig.name, sig.key_id)]
        stamps[name] = cosignature_timestamp(sig.signature)
    counted = stamps
    if now is not None:
        counted = {n: ts for n, ts in stamps.items() if ts <= now + FUTURE_SKEW}
    if not policy.quorum_met(counted):
        raise PolicyError(
            f"witness quorum {policy.quorum!r} not met: cosigned by {sorted(counted) or 'none'}"
        )
    qtime = _quorum_time(policy, counted)
    if max_age is not None and now is not None:
        if qtime is None:
            raise StaleError("quorum none: no cosignature timestamp can prove freshness")
        if now - qtime > max_age:
            raise StaleError(
                f"checkpoint {cp_origin} size {signed.checkpoint.size}: witness quorum last"
                f" cosigned {now - qtime:.0f} s ago, more than the allowed {max_age:g} s"
            )
    return VerifiedCheckpoint(signed.checkpoint, signed, used, stamps, qtime)


class MirrorQuorumError(PolicyError):
    """The mirrors proven to hold entries ``[first, end)`` do not meet the mirror quorum.

    ``holding`` names the mirrors that did count.
    """

    def __init__(self, message: str, first: int, end: int, holding: Sequence[str]) -> None:
        super().__init__(message)
        self.first = first
        self.end = end
        self.holding = tuple(holding)


def mirrors_holding(
    policy: Policy,
    sizes: Mapping[str, int],
    first: int,
    end: int,
    floors: Mapping[str, int] | None = None,
) -> tuple[str, ...]:
    """The policy's mirrors that hold every entry of ``[first, end)``.

    ``sizes`` maps a cosigner's policy name to the size of a checkpoint it
    cosigned, one already proven to be this log's tree (the verified one, or
    one consistent with it): a mirror's cosignature says it durably holds
    entries ``[min_index, size)``. A mirror counts only if ``min_index <=
    first`` and ``end <= size``; witnesses and unknown names never count.
    ``floors`` are minimum indexes learnt elsewhere (what a mirror serves as
    its own): the higher of the policy's and these applies.
    """
    floors = floors or {}
    return tuple(
        m.name
        for m in policy.mirrors
        if m.name in sizes
        and max(m.min_index, floors.get(m.name, 0)) <= first
        and end <= sizes[m.name]
    )


def require_mirrors(
    policy: Policy,
    sizes: Mapping[str, int],
    first: int,
    end: int,
    floors: Mapping[str, int] | None = None,
) -> tuple[str, ...]:
    """Demand the mirror quorum for entries ``[first, end)``; return the mirrors that count.

    A policy without a ``mirror-quorum`` line demands nothing. An empty range
    (``first >= end``) needs no data and is always held.

    Raises:
        MirrorQuorumError: the mirrors holding the range do not meet the quorum.
    """
    holding = mirrors_holding(policy, sizes, first, end, floors) if first < end else ()
    if first >= end or policy.mirror_quorum_met(holding):
        return holding
    raise MirrorQuorumError(
        f"mirror quorum {policy.mirror_quorum!r} not met for entries [{first}, {end}):"
        f" held by {', '.join(holding) or 'no mirror'}",
        first,
        end,
        holding,
    )


def open_trusted_checkpoint(
    note: bytes,
    log_key: Verifier | None,
    policy: Policy | None = None,
    *,
    now: float | None = None,
    max_age: float | None = None,
    origin: str | None = None,
    cosigners: Sequence[Verifier] = (),
) -> SignedCheckpoint:
    """The one checkpoint trust decision: the log key, or the log key and a witness quorum.

    Every verifying client (the proof and log verifiers, the log client, the
    monitor) opens a checkpoint through here, so they cannot disagree:

    - Without ``policy``: ``log_key`` must have signed it (``cosigners`` are
      witness keys whose signatures, when present, must verify). A ``max_age``
      is refused: only witness cosignatures can prove that a checkpoint is
      recent, and silently skipping the freshness check would hide a freeze.
    - With ``policy``: :func:`verify_checkpoint` (its logs, plus ``log_key`` as a
      log key; the quorum; no older than ``max_age`` at ``now``); and when
      ``log_key`` is given, it is the key that signed (another key of the same
      origin in the policy is not enough).

    Raises:
        PolicyError: no log key and no policy; ``max_age`` without a policy; see
            :func:`verify_checkpoint` for the rest (quorum, freshness).
        FormatError, InvalidSignatureError, UnknownKeyError, OriginError: see
            :func:`overt.formats.checkpoint.open_checkpoint`.
    """
    if policy is None:
        if log_key is None:
            raise PolicyError("no log key: give the log's key, or a policy with a log line")
        if max_age is not None:
            raise PolicyError("freshness (max age) needs a witness policy")
        return open_checkpoint(note, log_key, origin, cosigners=cosigners)
    extra = (
        [PolicyLog(log_key.vkey)]
        if isinstance(log_key, KeyVerifier) and _may_sign(log_key, Purpose.CHECKPOINT)
        else []
    )
    verified = verify_checkpoint(note, policy, now, max_age, origin=origin, extra_logs=extra)
    used = verified.log.verifier
    if log_key is not None and (used.name, used.key_id) != (log_key.name, log_key.key_id):
        open_checkpoint(note, log_key, origin)  # raises unless log_key signed it too
    return verified.signed
