"""The endpoint filter: every outgoing event is checked against the policy and reduced.

:class:`EventFilter` is pure (no I/O, no clock): an event (a JSON object with a ``type``
member and flat scalar fields) goes in, the event as the policy lets it leave comes out, or
:class:`~overt.telemetry.errors.EventRefusedError` names the rule that refuses it::

    >>> from overt.telemetry.filter import EventFilter
    >>> from overt.telemetry.policy import parse_policy
    >>> policy = parse_policy(b'{"format": "overt-telemetry-policy/v1", "customer": "acme",'
    ...     b' "version": 1, "region": "eu", "collectors": {"eu": "https://eu.example"},'
    ...     b' "retention_days": 30, "events": {"dns": {"fields": {'
    ...     b'"url": {"transform": "host"}, "pid": {"transform": "drop"}}}}}')
    >>> EventFilter(policy, salt=b"customer secret").apply(
    ...     {"type": "dns", "url": "https://intranet.acme.example/hr/salaries?id=7", "pid": 4})
    {'type': 'dns', 'url': 'intranet.acme.example'}

A field the policy does not name is refused, not dropped: a product that starts sending a
new field must get a new (logged) policy first. Transforms are in :mod:`overt.telemetry.policy`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from overt.errors import ConfigError
from overt.telemetry.errors import EventRefusedError
from overt.telemetry.policy import FieldRule, TelemetryPolicy

__all__ = ["EventFilter", "Scalar"]

Scalar = str | int | float | bool
_Transform = Callable[[Scalar], Scalar]
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_HOST = re.compile(r"[A-Za-z0-9.:\[\]_-]{1,255}")


class EventFilter:
    """Applies one policy's event rules; ``salt`` keys the ``hash`` transform.

    Raises (from the constructor):
        ConfigError: an empty salt while the policy hashes a field.
    """

    def __init__(self, policy: TelemetryPolicy, salt: bytes) -> None:
        self.policy = policy
        if not salt and any(
            r.transform == "hash" for fields in policy.events.values() for r in fields.values()
        ):
            raise ConfigError("the policy hashes fields: a non-empty customer salt is needed")
        self._salt = salt
        self._plans: dict[str, tuple[dict[str, _Transform | None], frozenset[str]]] = {}
        for event, fields in policy.events.items():
            plan = {name: self._compile(event, rule) for name, rule in fields.items()}
            required = frozenset(n for n, r in fields.items() if r.required)
            self._plans[event] = (plan, required)

    def apply(self, event: Mapping[str, object]) -> dict[str, Scalar]:
        """The event as it may leave (``type`` first, dropped fields gone).

        Raises:
            EventRefusedError: no or an unknown ``type``, a field the policy does not name,
                a required field missing, a value that is not a scalar of the right kind,
                not in an allow-list, not a URL for ``host`` or not a time for ``coarsen``.
        """
        kind = event.get("type")
        if not isinstance(kind, str):
            raise EventRefusedError("events", "unknown-event", f"no event type: {kind!r}"[:200])
        plan_required = self._plans.get(kind)
        if plan_required is None:
            raise EventRefusedError(
                "events", "unknown-event", f"event type {kind[:80]!r} is not in the policy"
            )
        plan, required = plan_required
        out: dict[str, Scalar] = {"type": kind}
        for name, value in event.items():
            if name == "type":
                continue
            if name not in plan:
                raise EventRefusedError(
                    f"events.{kind}.fields", "unknown-field", f"field {name[:80]!r} is not allowed"
                )
            transform = plan[name]
            if transform is None:
                continue
            if not isinstance(value, str | int | float) or (
                isinstance(value, float) and value != value
            ):
                raise EventRefusedError(
                    f"events.{kind}.fields.{name}", "type", f"not a scalar: {value!r}"[:200]
                )
            out[name] = transform(value)
        if required:
            missing = required.difference(event)
            if missing:
                first = min(missing)
                raise EventRefusedError(
                    f"events.{kind}.fields.{first}", "missing-field", "a required field is missing"
                )
        return out

    def _compile(self, event: str, rule: FieldRule) -> _Transform | None:
        where = f"events.{event}.fields.{rule.name}"
        t = rule.transform
        if t == "drop":
            return None
        if t == "keep":
            return _keep
        if t == "truncate":
            length = rule.length

            def truncate(value: Scalar) -> Scalar:
                if not isinstance(value, str):
                    raise EventRefusedError(where, "type", f"truncate needs text, got {value!r}")
                return value[:length]

            return truncate
        if t == "hash":
            salt = self._salt

            def keyed_hash(value: Scalar) -> Scalar:
                data = value.encode() if isinstance(value, str) else repr(value).encode()
                return hmac.new(salt, data, hashlib.sha256).hexdigest()

            return keyed_hash
        if t == "host":

            def host(value: Scalar) -> Scalar:
                if isinstance(value, str):
                    try:
                        name = urlsplit(value).hostname
                    except ValueError:
                        name = None
                    if name and _HOST.fullmatch(name):
                        return name
                raise EventRefusedError(where, "not-a-url", f"{value!r}"[:200])

            return host
        if t == "coarsen":
            step = rule.step

            def coarsen(value: Scalar) -> Scalar:
                if isinstance(value, bool):
                    raise EventRefusedError(where, "type", f"coarsen needs a number: {value!r}")
                if isinstance(value, int):
                    return value - value % step
                if isinstance(value, float):
                    return float(value - value % step)
                if _RFC3339.fullmatch(value):
                    when = datetime.fromisoformat(value).astimezone(UTC)
                    seconds = int(when.timestamp())
                    floored = datetime.fromtimestamp(seconds - seconds % step, UTC)
                    return floored.strftime("%Y-%m-%dT%H:%M:%SZ")
                raise EventRefusedError(where, "not-a-time", f"{value!r}"[:200])

            return coarsen
        if t == "allow":
            values = rule.values

            def allow(value: Scalar) -> Scalar:
                # bool is an int in Python: compare type and value so True is not 1.
                if any(type(v) is type(value) and v == value for v in values):
                    return value
                raise EventRefusedError(where, "not-allowed", f"{value!r} is not listed"[:200])

            return allow
        raise AssertionError(f"transform {t!r} passed the schema")  # pragma: no cover


def _keep(value: Scalar) -> Scalar:
    return value
