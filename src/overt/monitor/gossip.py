"""Gossip with witnesses: does the log show its witnesses the tree it shows this monitor?

A witness (c2sp.org/tlog-witness, :mod:`overt.witness`) serves, for monitors, the latest
checkpoint it cosigned for each log it witnesses::

    GET <witness>/logs                          origins, one per line (text/plain)
    GET <witness>/checkpoint/<origin, %-encoded>   the log's signed note with the witness's
                                                cosignature line; 404 for an unknown log

A split view (the log showing one tree to its witnesses and another to this monitor) shows up
as two log-signed checkpoints that cannot both be honest. :func:`compare_views` decides, given
the checkpoint this monitor keeps and one a witness cosigned (both already log-verified)::

    same size          roots must be equal, else EquivocationError (self-contained evidence)
    witness behind     its tree must be a prefix of the kept one (proof from the log's tiles),
                       else ForkError
    witness ahead      the kept tree must be a prefix of the witness's, if the log serves the
                       tiles of that tree; a log publishes after its witnesses cosign, so a
                       witness briefly ahead (and tiles not yet served) is normal: "ahead"

The comparison does no I/O itself: the tiles are behind the ``prove(old, new)`` callback, the
HTTP behind :class:`WitnessSource`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import httpx

from overt._http import fetch
from overt.errors import LogError, NotFoundError, UnknownKeyError
from overt.formats.checkpoint import SignedCheckpoint, open_checkpoint
from overt.formats.note import Verifier
from overt.formats.policy import Policy
from overt.monitor.verify import check_same_tree, verify_successor

__all__ = [
    "AHEAD",
    "AHEAD_UNPROVEN",
    "BEHIND",
    "SAME",
    "HTTPWitness",
    "Prove",
    "Witness",
    "WitnessSource",
    "compare_views",
    "open_witnessed",
    "witnesses_from",
]

SAME = "same"
BEHIND = "behind"
AHEAD = "ahead"
AHEAD_UNPROVEN = "ahead-unproven"

_MAX_REPLY = 1 << 20

Prove = Callable[[int, int], tuple[list[bytes], bytes]]
"""``prove(old, new)``: the consistency proof from ``old`` to ``new`` and the root of the first
``old`` entries, both from the log's tiles of the tree of size ``new`` (``0 < old < new``).

Raises NotFoundError when the log does not serve the tiles of that tree."""


class WitnessSource(Protocol):
    """A witness's read endpoints for monitors."""

    url: str

    def logs(self) -> list[str]:
        """The origins the witness cosigns. Raises LogError."""
        ...

    def checkpoint(self, origin: str) -> bytes | None:
        """The latest note it cosigned for ``origin``; None if it does not know the log.

        Raises:
            LogError: the witness could not be asked, or answered something other than
                200 or 404.
        """
        ...


class HTTPWitness:
    """A witness over HTTP(S), with keep-alive."""

    def __init__(self, url: str, client: httpx.Client | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._own = client is None
        self.client = client or httpx.Client(timeout=timeout, headers={"user-agent": "overt"})

    def _get(self, path: str) -> bytes | None:
        # Read under the cap (and a deadline): a hostile witness cannot stream forever.
        response = fetch(self.client, "GET", f"{self.url}/{path}", _MAX_REPLY, LogError)
        if response.status == 404:
            return None
        if response.status != 200:
            raise LogError(f"GET {self.url}/{path}: HTTP {response.status}")
        return response.content

    def logs(self) -> list[str]:
        data = self._get("logs")
        if data is None:
            raise LogError(f"GET {self.url}/logs: 404")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise LogError(f"GET {self.url}/logs: not UTF-8") from err
        return [line for line in text.split("\n") if line]

    def checkpoint(self, origin: str) -> bytes | None:
        return self._get(f"checkpoint/{quote(origin, safe='')}")

    def close(self) -> None:
        if self._own:
            self.client.close()


@dataclass(frozen=True)
class Witness:
    """A witness to ask: its read endpoints, and its cosignature key if the policy names it.

    ``name`` is the policy's name for it, or its URL when it came from ``--witness``.
    """

    name: str
    source: WitnessSource
    verifier: Verifier | None = None


def witnesses_from(
    policy: Policy | None,
    urls: Sequence[str] = (),
    connect: Callable[[str], WitnessSource] = HTTPWitness,
) -> list[Witness]:
    """The witnesses to gossip with: the policy's witnesses that have a URL, then ``urls``.

    A URL given both ways is asked once, with the policy's key.
    """
    out: list[Witness] = []
    seen: set[str] = set()
    for w in policy.witnesses if policy is not None else ():
        if w.url is not None and w.url.rstrip("/") not in seen:
            seen.add(w.url.rstrip("/"))
            out.append(Witness(w.name, connect(w.url), w.verifier))
    for url in urls:
        if url.rstrip("/") not in seen:
            seen.add(url.rstrip("/"))
            out.append(Witness(url, connect(url)))
    return out


def open_witnessed(note: bytes, log_verifier: Verifier, witness: Witness) -> SignedCheckpoint:
    """Verifies a witness's note: the log's signature, and the witness's own if its key is known.

    Raises:
        FormatError: a malformed note.
        InvalidSignatureError: the log's or the witness's signature is bad (a forged
            cosignature included).
        UnknownKeyError: the log did not sign it, or the witness's key is known and its
            cosignature is missing.
        OriginError: the note is of another log.
    """
    cosigners = [] if witness.verifier is None else [witness.verifier]
    signed = open_checkpoint(note, log_verifier, log_verifier.name, cosigners=cosigners)
    if witness.verifier is not None and not signed.cosignatures():
        raise UnknownKeyError(
            f"witness {witness.name} served a checkpoint without its own cosignature"
        )
    return signed


def _proof(prove: Prove, old: int, new: int) -> tuple[list[bytes], bytes | None]:
    return prove(old, new) if 0 < old < new else ([], None)


def compare_views(kept: SignedCheckpoint, witnessed: SignedCheckpoint, prove: Prove) -> str:
    """How a witness's checkpoint relates to the kept one: SAME, BEHIND, AHEAD or AHEAD_UNPROVEN.

    Raises:
        EquivocationError: same size, different roots.
        ForkError: the smaller tree is not a prefix of the larger one (per the log's tiles).
        OriginError: the checkpoints are of different logs.
        TilesMismatchError: the log's tiles contradict one of the checkpoints.
        FormatError, VerificationError, LogError: the tiles could not be read or are malformed.
    """
    k, w = kept.checkpoint.size, witnessed.checkpoint.size
    if k == w:
        check_same_tree(kept, witnessed)
        return SAME
    if w < k:
        verify_successor(witnessed, kept, *_proof(prove, w, k))
        return BEHIND
    try:
        proof, prefix = _proof(prove, k, w)
    except NotFoundError:
        return AHEAD_UNPROVEN
    verify_successor(kept, witnessed, proof, prefix)
    return AHEAD
