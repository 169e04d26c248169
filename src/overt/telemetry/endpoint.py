"""The endpoint side in one object: filter, seal, record in the ledger; then send.

:class:`Endpoint` turns a batch of events (or one file sample) into a sealed payload for
the region collector. The payload plaintext is the canonical JSON::

    {"customer": "acme", "events": [{...}, ...], "kind": "events", "policy": 3}
    {"customer": "acme", "kind": "sample", "policy": 3, "sample": "<base64>", "sha256": "<hex>"}

Events are batched because one HPKE seal costs about 0.2 ms: per payload, not per event,
so a 500-event batch costs 0.4 us of sealing per event. The ledger entry of a payload is
made durable before the payload is handed back for sending: nothing leaves unrecorded.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from overt.formats.strict import dump_json_canonical
from overt.telemetry.filter import EventFilter
from overt.telemetry.ledger import EgressLedger, EgressRecord
from overt.telemetry.policy import TelemetryPolicy
from overt.telemetry.samples import screen_sample
from overt.telemetry.sealing import seal_payload

__all__ = ["Endpoint", "Outgoing"]


@dataclass(frozen=True)
class Outgoing:
    """A sealed payload ready to send, and its ledger record and index."""

    sealed: bytes
    record: EgressRecord
    index: int


class Endpoint:
    """Enforces ``policy`` for one customer endpoint (``salt`` keys the ``hash`` transform)."""

    def __init__(
        self,
        policy: TelemetryPolicy,
        salt: bytes,
        collector_key: X25519PublicKey,
        ledger: EgressLedger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self.filter = EventFilter(policy, salt)
        self.key = collector_key
        self.ledger = ledger
        self.clock = clock

    def events(self, events: Iterable[Mapping[str, object]]) -> Outgoing:
        """One payload of ``events``, filtered, sealed and recorded.

        Raises:
            EventRefusedError: an event the policy refuses (nothing is sent or recorded).
            LogError: the ledger could not record it (nothing may be sent).
        """
        out = [self.filter.apply(e) for e in events]
        names = sorted({f"{e['type']}.{k}" for e in out for k in e if k != "type"})
        plain: dict[str, object] = {
            "customer": self.policy.customer,
            "events": out,
            "kind": "events",
        }
        return self._send(plain, "events", tuple(names), len(out))

    def sample(self, data: bytes, consent: bool = False) -> Outgoing:
        """One file sample, screened, sealed and recorded.

        Raises:
            SampleRefusedError: the policy refuses it (nothing is sent or recorded).
        """
        screen_sample(data, self.policy.samples, consent)
        plain: dict[str, object] = {
            "customer": self.policy.customer,
            "kind": "sample",
            "sample": base64.b64encode(data).decode(),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        return self._send(plain, "sample", ("sample",), 1)

    def _send(
        self, plain: dict[str, object], kind: str, fields: tuple[str, ...], n: int
    ) -> Outgoing:
        policy = self.policy
        plain["policy"] = policy.version
        sealed = seal_payload(self.key, policy.region, policy.customer, dump_json_canonical(plain))
        record = EgressRecord(
            hashlib.sha256(sealed).hexdigest(),
            len(sealed),
            policy.collector,
            policy.region,
            policy.customer,
            fields,
            n,
            policy.version,
            int(self.clock()),
            kind,
        )
        (index,) = self.ledger.record([record])
        return Outgoing(sealed, record, index)
