"""Getting the log's checkpoints cosigned by its witnesses (c2sp.org/tlog-witness).

The log's witnesses and the quorum it must reach are a c2sp.org/tlog-policy
file in the log directory (``overt log witnesses DIR POLICY``); each witness
line needs a URL. After every integration the log's newest signed checkpoint
is sent to every witness at once, with a consistency proof from the size that
witness last cosigned (learned from its 409 reply when unknown, e.g. after a
restart). Cosignatures are checked, and once they meet the quorum the
checkpoint is published with them.

A quiet log's cosignatures are refreshed (the same checkpoint cosigned again
with new timestamps) every ``refresh`` seconds, so clients that demand a
maximum checkpoint age keep accepting it.

Witnesses whose key signs subtrees (ML-DSA-44) are then also asked, after each
published round, to cosign every range the published checkpoint completed
(``sign-subtree``; :mod:`overt.log.subtrees` stores the cosignatures beside the
tiles), so entries can be proved against one short, witnessed subtree
(``overt log proof --subtree``). A refusal there is logged and retried next round;
it never holds up publishing.

When witnesses are down or refuse, nothing stops: the log keeps accepting and
integrating entries, the published checkpoint stays at the last witnessed one,
a warning names the unreachable witnesses, and :attr:`Witnessing.status` (served
as ``/metrics``) shows integrated size, published size and each witness's state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from overt.errors import OvertError
from overt.formats import merkle
from overt.formats.keytypes import Purpose
from overt.formats.note import Note, Signature, format_note, parse_note
from overt.formats.policy import Policy, PolicyLog, PolicyWitness, verify_checkpoint
from overt.formats.subtree import subtree_consistency_proof, subtree_hash
from overt.formats.subtree_proof import SubtreeNote
from overt.formats.witness import parse_cosignature_lines
from overt.log.subtrees import RANGE_SIZE, SubtreeStore, completed_ranges
from overt.witness.client import WitnessClient
from overt.witness.errors import WitnessConflictError

__all__ = ["Round", "WitnessStatus", "WitnessedLog", "Witnessing"]

_logger = logging.getLogger("overt.log.witnessing")


class WitnessedLog(Protocol):
    """What witnessing needs of a log; :class:`overt.log.log.Log` has it.

    A protocol rather than an import: the log runs witnessing rounds
    (:meth:`overt.log.log.Log.witness`), so witnessing must not import the log.
    """

    @property
    def vkey(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def published_size(self) -> int: ...

    def latest_signed(self) -> tuple[bytes, int]: ...

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]: ...

    def publish_witnessed(self, note: bytes, size: int) -> None: ...


@dataclass
class WitnessStatus:
    """What the log knows of one witness."""

    name: str
    url: str
    size: int = 0  # the size this witness last cosigned, as far as the log knows
    up: bool = True
    error: str = ""
    last_ok: float = 0.0


@dataclass
class Round:
    """The outcome of one witnessing round."""

    size: int
    cosigned_by: list[str] = field(default_factory=list)
    published: bool = False
    seconds: float = 0.0


ClientFactory = Callable[[PolicyWitness], WitnessClient]

#: Ranges asked of one witness per round at most (a log that gains subtree witnesses
#: late catches up over several rounds instead of holding one up).
MAX_SUBTREES_PER_ROUND = 64

#: Seconds before a witness that refused a subtree (or could not be reached) is asked again:
#: rounds run after every integration, and a witness without sign-subtree answers 404 to all.
SUBTREE_RETRY = 30.0


def _signs_subtrees(witness: PolicyWitness) -> bool:
    key_type = getattr(witness.verifier, "key_type", None)
    return key_type is not None and key_type.may_sign(Purpose.SUBTREE)


class Witnessing:
    """Runs witnessing rounds for one log (one round at a time)."""

    def __init__(
        self,
        log: WitnessedLog,
        policy: Policy,
        timeout: float = 5.0,
        clients: ClientFactory | None = None,
        *,
        subtrees: SubtreeStore | None = None,
        range_size: int = RANGE_SIZE,
    ) -> None:
        """``subtrees`` is where subtree cosignatures go (default: ``DIR/subtrees`` of a log
        with a ``directory`` and a ``subtree_reader``; else none are asked for)."""
        missing = [w.name for w in policy.witnesses if not w.url]
        if missing:
            raise OvertError(f"witness policy: no URL for witness(es) {', '.join(missing)}")
        self.log = log
        self.policy = policy
        self._log_key = PolicyLog(log.vkey)
        factory = clients or (lambda w: WitnessClient(w.url or "", timeout=timeout))
        self._clients = {w.name: factory(w) for w in policy.witnesses}
        self.witnesses = {w.name: WitnessStatus(w.name, w.url or "") for w in policy.witnesses}
        self._pool = ThreadPoolExecutor(
            max(1, len(policy.witnesses)), thread_name_prefix="overt-witness"
        )
        self._lock = threading.Lock()
        self.rounds = 0
        self.last_round: Round | None = None
        self.last_published = 0.0
        directory = getattr(log, "directory", None)
        reader = getattr(log, "subtree_reader", None)
        if subtrees is None and directory is not None and reader is not None:
            subtrees = SubtreeStore(directory)
        self.subtrees = subtrees if reader is not None else None
        self.range_size = range_size
        # Per witness: the start of the first range it has not cosigned yet, as far as known.
        self._subtree_next = {w.name: 0 for w in policy.witnesses if _signs_subtrees(w)}
        self._subtree_retry_at: dict[str, float] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for client in self._clients.values():
            close = getattr(client, "close", None)
            if close is not None:
                close()

    def cosign_latest(self, refresh: bool = False) -> Round:
        """Ask every witness to cosign the log's newest checkpoint; publish it on quorum.

        With ``refresh``, a checkpoint that is already published is cosigned
        again (witnesses re-cosign their own size with a fresh timestamp), so
        clients that demand recent cosignatures keep accepting a quiet log.
        """
        with self._lock:
            started = time.perf_counter()
            note, size = self.log.latest_signed()
            result = Round(size)
            if not refresh and 0 < size <= self.log.published_size:
                return result
            answers = list(
                self._pool.map(lambda w: self._ask(w, note, size), self.policy.witnesses)
            )
            lines = [line for line in answers if line]
            result.cosigned_by = [
                w.name for w, line in zip(self.policy.witnesses, answers, strict=True) if line
            ]
            if lines and self.policy.quorum_met(result.cosigned_by):
                cosigned = note + b"".join(lines)
                # Never publish what a client with this policy would refuse.
                verify_checkpoint(cosigned, self.policy, extra_logs=[self._log_key])
                self.log.publish_witnessed(cosigned, size)
                result.published = True
                self.last_published = time.monotonic()
                self._cosign_subtrees(cosigned, size, result.cosigned_by)
            else:
                down = [n for n, w in self.witnesses.items() if not w.up]
                _logger.warning(
                    "witness quorum not met for size %d (cosigned by: %s; unreachable or refusing: %s);"
                    " published checkpoint stays at size %d",
                    size,
                    ", ".join(result.cosigned_by) or "none",
                    ", ".join(down) or "none",
                    self.log.published_size,
                )
            result.seconds = time.perf_counter() - started
            self.rounds += 1
            self.last_round = result
            return result

    def _ask(self, witness: PolicyWitness, note: bytes, size: int) -> bytes | None:
        state = self.witnesses[witness.name]
        client = self._clients[witness.name]
        old = min(state.size, size)
        for _ in range(3):  # the first 409 tells us the witness's size; retry once with it
            try:
                proof = self.log.consistency_proof(old, size) if 0 < old < size else []
                line = client.add_checkpoint(old, proof, note)
            except WitnessConflictError as err:
                if err.size > size:
                    state.up, state.error = (
                        False,
                        f"witness is at size {err.size}, ahead of the log ({size})",
                    )
                    _logger.error("witness %s: %s", witness.name, state.error)
                    return None
                old = err.size
                continue
            except OvertError as err:
                state.up, state.error = False, str(err)
                return None
            state.size, state.up, state.error, state.last_ok = size, True, "", time.time()
            return line
        state.up, state.error = False, "repeated size conflicts"
        return None

    def _cosign_subtrees(self, cosigned: bytes, size: int, cosigned_by: list[str]) -> None:
        """Ask each subtree witness that cosigned ``cosigned`` for the ranges it completed.

        Hashes and proofs are computed here, the witnesses are asked in parallel, and the
        verified cosignatures are stored one after the other (no lost update of a note).
        """
        if self.subtrees is None:
            return
        asked = [
            w
            for w in self.policy.witnesses
            if w.name in self._subtree_next
            and w.name in cosigned_by
            and self._subtree_retry_at.get(w.name, 0.0) <= time.monotonic()
        ]
        plans = {
            w.name: completed_ranges(size, self.range_size, self._subtree_next[w.name])[
                :MAX_SUBTREES_PER_ROUND
            ]
            for w in asked
        }
        needed = sorted({r for ranges in plans.values() for r in ranges})
        if not needed:
            return
        origin = self._log_key.verifier.name
        reader: merkle.SubtreeHash = self.log.subtree_reader(size)  # type: ignore[attr-defined]
        notes = {
            (start, end): (
                SubtreeNote(origin, start, end, subtree_hash(start, end, reader)),
                subtree_consistency_proof(start, end, size, reader),
            )
            for start, end in needed
        }
        answers = list(
            self._pool.map(lambda w: self._ask_subtrees(w, plans[w.name], notes, cosigned), asked)
        )
        for witness, signed in zip(asked, answers, strict=True):
            for note, signature in signed:
                if signature is not None:
                    self.subtrees.add(note, signature)
                self._subtree_next[witness.name] = note.end

    def _ask_subtrees(
        self,
        witness: PolicyWitness,
        ranges: list[tuple[int, int]],
        notes: dict[tuple[int, int], tuple[SubtreeNote, list[bytes]]],
        cosigned: bytes,
    ) -> list[tuple[SubtreeNote, Signature | None]]:
        """The verified subtree cosignatures of one witness, in order, up to its first refusal
        (None: the range already carries its cosignature, from an earlier run)."""
        assert self.subtrees is not None
        key = (witness.verifier.name, witness.verifier.key_id)
        client = self._clients[witness.name]
        out: list[tuple[SubtreeNote, Signature | None]] = []
        # tlog-witness: the reference checkpoint SHOULD only carry the witness's own signatures.
        full = parse_note(cosigned)
        own = tuple(s for s in full.signatures if (s.name, s.key_id) == key)
        if not own:  # unreachable: only witnesses that cosigned this checkpoint are asked
            return out
        reference = format_note(Note(text=full.text, signatures=own))
        for start, end in ranges:
            note, proof = notes[(start, end)]
            try:
                stored = self.subtrees.get(start, end)
                if stored is not None and any((s.name, s.key_id) == key for s in stored.signatures):
                    out.append((note, None))
                    continue
                lines = client.sign_subtree(start, end, note.subtree_hash, proof, reference)
                mine = [s for s in parse_cosignature_lines(lines) if (s.name, s.key_id) == key]
                if not mine:
                    raise OvertError(f"no subtree cosignature by {witness.name} in the reply")
                # Verify before storing: nothing unverified is kept.
                witness.verifier.verify_subtree(  # type: ignore[attr-defined]
                    note.origin, start, end, note.subtree_hash, mine[0].signature
                )
            except OvertError as err:
                _logger.warning(
                    "witness %s did not cosign subtree [%d, %d): %s (asking again in %.0f s)",
                    witness.name,
                    start,
                    end,
                    err,
                    SUBTREE_RETRY,
                )
                self._subtree_retry_at[witness.name] = time.monotonic() + SUBTREE_RETRY
                break
            out.append((note, Signature(*key, mine[0].signature)))
        return out

    def status(self) -> str:
        """Prometheus text exposition of the log's witnessing state."""
        lines = [
            "# HELP overt_log_integrated_size Entries integrated and signed by the log.",
            "# TYPE overt_log_integrated_size gauge",
            f"overt_log_integrated_size {self.log.size}",
            "# HELP overt_log_published_size Size of the published (witnessed) checkpoint.",
            "# TYPE overt_log_published_size gauge",
            f"overt_log_published_size {self.log.published_size}",
            "# HELP overt_witness_up Whether the witness cosigned in the last round.",
            "# TYPE overt_witness_up gauge",
        ]
        for name, state in self.witnesses.items():
            lines.append(f'overt_witness_up{{witness="{name}"}} {int(state.up)}')
        lines += ["# TYPE overt_witness_size gauge"]
        for name, state in self.witnesses.items():
            lines.append(f'overt_witness_size{{witness="{name}"}} {state.size}')
        return "\n".join(lines) + "\n"
