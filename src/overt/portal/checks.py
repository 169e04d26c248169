"""The portal's server-side verification of an entry, step by step (no I/O).

Each step is one check a visitor can repeat: the same steps run again in the
visitor's browser (``static/verify.js``) from the same raw bytes, so the page
can say which checks ran where. A step never raises: a failure is a red row
that names the reason, the typed error's message.

Steps for entry ``i`` with its tlog-proof (c2sp.org/tlog-proof) and the
level-0 tile that holds it (c2sp.org/tlog-tiles):

1. ``leaf hash``: SHA-256(0x00 || entry) (RFC 6962).
2. ``tile``: the tile's hash at ``i mod 256`` is that leaf hash.
3. ``log signature``: the proof's checkpoint is signed by the log key.
4. ``cosignature <witness>``: one per witness of the policy (c2sp.org/tlog-cosignature).
5. ``witness quorum``: the policy's quorum cosigned (overt.formats.policy).
6. ``inclusion``: the proof leads from the leaf hash to the checkpoint's root.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from overt.errors import FormatError, OvertError
from overt.formats import merkle, tiles
from overt.formats.checkpoint import open_checkpoint, parse_checkpoint
from overt.formats.cosignature import cosignature_timestamp
from overt.formats.note import Verifier, parse_note
from overt.formats.policy import Policy, open_trusted_checkpoint
from overt.formats.proof import parse_proof

__all__ = [
    "Cosigner",
    "Step",
    "WitnessRow",
    "browser_quorum",
    "checkpoint_steps",
    "cosigners",
    "entry_steps",
    "witness_rows",
]


@dataclass(frozen=True)
class Step:
    """One verification step and its outcome (``detail`` says what was seen or wrong)."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class WitnessRow:
    """A policy witness's cosignature on a checkpoint: verified, its time and age."""

    name: str
    vkey: str
    ok: bool
    timestamp: int | None
    age: float | None
    detail: str


class Cosigner(Protocol):
    """A policy's witness or mirror: what the portal shows and checks of it."""

    @property
    def name(self) -> str: ...
    @property
    def vkey(self) -> str: ...
    @property
    def verifier(self) -> Verifier: ...


def cosigners(policy: Policy | None) -> list[Cosigner]:
    """Every cosigner a policy names, in order: its witnesses, then its mirrors
    (c2sp.org/tlog-mirror: a mirror cosigns too, and a quorum may name it)."""
    if policy is None:
        return []
    return [*policy.witnesses, *getattr(policy, "mirrors", ())]


def browser_quorum(policy: Policy | None) -> dict[str, Any] | None:
    """The policy's quorum as ``static/verify.js`` evaluates it: ``{"top": name, "groups":
    [{"name", "k", "members"}]}`` (every group, any nesting); None without a policy."""
    if policy is None or policy.quorum is None:
        return None
    groups = [{"name": g.name, "k": g.threshold, "members": list(g.members)} for g in policy.groups]
    return {"top": policy.quorum, "groups": groups}


def witness_rows(note: bytes, policy: Policy | None, now: float) -> list[WitnessRow]:
    """One row per cosigner of ``policy``: whether ``note`` carries its valid cosignature."""
    named = cosigners(policy)
    try:
        parsed = parse_note(note)
    except FormatError as err:
        return [WitnessRow(w.name, w.vkey, False, None, None, str(err)) for w in named]
    rows = []
    for w in named:
        v = w.verifier
        sig = next(
            (s for s in parsed.signatures if s.name == v.name and s.key_id == v.key_id), None
        )
        if sig is None:
            rows.append(WitnessRow(w.name, w.vkey, False, None, None, "no cosignature"))
            continue
        try:
            v.verify(parsed.text, sig.signature)
            stamp = cosignature_timestamp(sig.signature)
        except OvertError as err:
            rows.append(WitnessRow(w.name, w.vkey, False, None, None, str(err)))
            continue
        rows.append(WitnessRow(w.name, w.vkey, True, stamp, max(0.0, now - stamp), "verified"))
    return rows


def checkpoint_steps(
    note: bytes, log_verifier: Verifier, policy: Policy | None, now: float
) -> list[Step]:
    """Steps 3 to 5 for a checkpoint alone (the log page checks the published one)."""
    steps: list[Step] = []
    try:
        cp = open_checkpoint(note, log_verifier).checkpoint
        steps.append(Step("log signature", True, f"{log_verifier.name}, tree size {cp.size}"))
    except OvertError as err:
        steps.append(Step("log signature", False, str(err)))
    for row in witness_rows(note, policy, now):
        steps.append(Step(f"cosignature {row.name}", row.ok, row.detail))
    if policy is not None:
        try:
            open_trusted_checkpoint(note, log_verifier, policy)
            steps.append(Step("witness quorum", True, "the policy's quorum cosigned"))
        except OvertError as err:
            steps.append(Step("witness quorum", False, str(err)))
    return steps


def entry_steps(
    entry: bytes,
    proof: bytes,
    tile: bytes,
    log_verifier: Verifier,
    policy: Policy | None,
    now: float,
) -> list[Step]:
    """Every step of the module docstring for ``entry``, in order."""
    steps: list[Step] = []
    leaf = merkle.leaf_hash(entry)
    steps.append(Step("leaf hash", True, leaf.hex()))
    try:
        parsed = parse_proof(proof)
    except FormatError as err:
        return [*steps, Step("tlog-proof", False, str(err))]
    offset = parsed.index % tiles.TILE_WIDTH
    try:
        hashes = tiles.read_tile_hashes(tile, len(tile) // merkle.HASH_SIZE)
        ok = offset < len(hashes) and hashes[offset] == leaf
        detail = f"hash {offset} of the level-0 tile" + ("" if ok else " differs from the leaf")
    except FormatError as err:
        ok, detail = False, str(err)
    steps.append(Step("tile", ok, detail))
    steps += checkpoint_steps(parsed.checkpoint, log_verifier, policy, now)
    try:
        # Its root, whatever the signatures said: the inclusion step is reported on its own.
        cp = parse_checkpoint(parse_note(parsed.checkpoint).text)
    except FormatError as err:
        return [*steps, Step("inclusion", False, str(err))]
    try:
        merkle.verify_inclusion(leaf, parsed.index, cp.size, parsed.hashes, cp.root_hash)
        steps.append(Step("inclusion", True, f"index {parsed.index} in tree size {cp.size}"))
    except OvertError as err:
        steps.append(Step("inclusion", False, str(err)))
    return steps
