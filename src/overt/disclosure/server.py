"""The disclosure service over HTTP: intake form and JSON API, tracking, triage, advisories.

Routes (all answers carry ``X-Content-Type-Options: nosniff``; HTML pages also a
Content-Security-Policy that allows no script at all)::

    GET  /                                  intake form (HTML)
    POST /report                            the form's submission -> tracking token + receipt
    POST /api/reports                       JSON submission (service.parse_submission) -> 201
                                            {"report_id", "token", "receipt", "proof"}
    GET  /api/track                         Authorization: Bearer <tracking token> -> status JSON
    POST /api/track/messages                Bearer token; {"text": "..."} -> 204
    GET  /track, POST /track                the same for people (token in a form field)
    POST /track/message                     a researcher's message (token in a form field)
    GET  /stats                             public counts per state (JSON)
    GET  /.well-known/security.txt          RFC 9116
    GET  /.well-known/psirt-key             the HPKE public key (overt.disclosure.crypto)
    GET  /.well-known/csaf/...  /osv/...    advisories (overt.disclosure.advisories)
    GET  /login, POST /login, POST /logout  triager and admin sessions
    GET  /triage                            the triage list (HTML)
    GET  /triage/<id>                       one report (HTML; the read is recorded)
    POST /triage/<id>/<action>              action: transition, message, score, exploited, pay
    POST /admin/bounty                      a new bounty table (admins only)
    GET  /api/session                       the logged-in account and its CSRF token (JSON)
    GET  /api/triage, GET /api/reports/<id>, GET /api/overdue      staff JSON
    POST /api/reports/<id>/transition       staff JSON {"to": state, "verdict": ...}
    GET  /api/bounty, PUT /api/bounty       the bounty table (PUT: admins only)

Sessions: ``POST /login`` sets ``overt_session`` (HttpOnly, SameSite=Strict, Secure unless
the server runs with ``secure_cookies=False`` for plain-HTTP testing). Every state-changing
staff request must carry the session's CSRF token: the ``csrf`` form field, or the
``X-CSRF-Token`` header for JSON. The anonymous intake form uses a double-submit cookie.
Intake and login are rate-limited per client address (token buckets in memory). Every
``alert_interval`` seconds the server logs a warning for each missed deadline still open.

Status codes: 400 malformed, 401 not logged in / bad token / wrong password, 403 role or
CSRF, 404 no such report (a token that opens nothing gets 404 too), 405 wrong method, 409
workflow step not allowed, 413 too large (refused on Content-Length before reading), 415
wrong content type, 429 rate-limited, 503 the database or the log failed. Input never
causes a 500.

The app is bare ASGI on :mod:`overt._asgi`, like the log and witness servers: its pages are
a handful of small forms, escaped with :func:`html.escape`, so a framework (Starlette,
Jinja2) would add dependencies without removing much code. Blocking work (database, log
fsyncs, argon2) runs in threads; concurrent intakes share log appends (timeline.Batcher).
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from overt._asgi import CLOSE, BodyTooLargeError, Receive, Scope, Send, error, read_body, reply
from overt.disclosure.bounty import VulnClass, format_table, parse_table
from overt.disclosure.errors import (
    AuthenticationError,
    CSRFError,
    RateLimitedError,
    SubmissionError,
)
from overt.disclosure.securitytxt import SecurityTxt, format_security_txt
from overt.disclosure.service import (
    MAX_SUBMISSION,
    Account,
    Desk,
    Intake,
    Role,
    Submission,
    Tracking,
    check_submission,
    parse_submission,
)
from overt.disclosure.timeline import format_receipt, format_time
from overt.disclosure.workflow import Overdue, State, Verdict, deadlines
from overt.errors import FormatError, NotFoundError, OvertError

__all__ = ["DisclosureApp", "RateLimit", "ServiceConfig"]

log = logging.getLogger("overt.disclosure")

_HTML = b"text/html; charset=utf-8"
_JSON = b"application/json"
_MAX_FORM = 256 * 1024
_SESSION_COOKIE = "overt_session"
_FORM_COOKIE = "overt_form"
_CSP = b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"


@dataclass(frozen=True)
class RateLimit:
    """At most ``burst`` at once, refilled at ``per_minute``; per client address."""

    per_minute: float
    burst: int


@dataclass(frozen=True)
class ServiceConfig:
    """What the server says about itself (security.txt) and how strict it is."""

    base_url: str = "https://psirt.example.com"
    contact: tuple[str, ...] = ("https://psirt.example.com/",)
    policy: str = "https://psirt.example.com/policy"
    secure_cookies: bool = True
    #: Seconds between checks for missed deadlines (each one logged as a warning).
    alert_interval: float = 3600.0
    intake_limit: RateLimit = RateLimit(per_minute=10, burst=20)
    login_limit: RateLimit = RateLimit(per_minute=5, burst=10)


class _Buckets:
    """Token buckets per (kind, client); bounded in memory."""

    def __init__(self) -> None:
        self._state: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, kind: str, client: str, limit: RateLimit) -> None:
        now = time.monotonic()
        tokens, last = self._state.get((kind, client), (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - last) * limit.per_minute / 60)
        if tokens < 1:
            raise RateLimitedError(kind, client, (1 - tokens) * 60 / limit.per_minute)
        if len(self._state) > 100_000:  # a flood of addresses must not grow this forever
            self._state.clear()
        self._state[(kind, client)] = (tokens - 1, now)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str) -> bytes:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title></head><body><h1>{_e(title)}</h1>{body}</body></html>"
    ).encode()


def _headers(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _cookies(scope: Scope) -> dict[str, str]:
    raw = _headers(scope, b"cookie")
    out: dict[str, str] = {}
    if raw is None:
        return out
    for part in raw.decode("latin-1").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in out:
            out[name] = value
    return out


def _form(body: bytes) -> dict[str, str]:
    """A urlencoded form, strictly: UTF-8, no repeated field, at most 32 fields."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            max_num_fields=32,
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError) as err:
        raise SubmissionError("form", f"not a urlencoded form: {err}") from err
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise SubmissionError("form", f"field {name!r} repeated")
        form[name] = value
    return form


def _field(form: dict[str, str], name: str) -> str:
    if name not in form:
        raise SubmissionError(name, "missing")
    return form[name]


class _ReplyNowError(Exception):
    """Raised by a handler to answer at once (redirects)."""

    def __init__(self, status: int, body: bytes, ctype: bytes, headers: list[tuple[bytes, bytes]]):
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers


class DisclosureApp:
    """ASGI application serving one :class:`~overt.disclosure.service.Desk`."""

    def __init__(self, desk: Desk, config: ServiceConfig | None = None) -> None:
        self.desk = desk
        self.config = config or ServiceConfig()
        self._buckets = _Buckets()
        # Intakes wait in threads for their shared log append (timeline.Batcher): the
        # default pool (a handful of threads on a small machine) would cap each batch.
        self._intake_pool = ThreadPoolExecutor(64, thread_name_prefix="overt-intake")
        self._alerts: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._alerts = asyncio.create_task(self._alert_loop())
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self._alerts is not None:
                        self._alerts.cancel()
                    self._intake_pool.shutdown(wait=True)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        base = [(b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store")]
        try:
            status, body, ctype, headers = await self._route(scope, receive)
        except _ReplyNowError as r:
            status, body, ctype, headers = r.status, r.body, r.ctype, r.headers
        except BodyTooLargeError as err:
            await error(send, 413, str(err), [*base, CLOSE])
            return
        except OvertError as err:
            status = getattr(err, "status", None) or _status(err)
            extra = []
            if isinstance(err, RateLimitedError):
                extra.append((b"retry-after", b"%d" % max(1, int(err.retry_after + 0.999))))
            if isinstance(err, AuthenticationError):
                extra.append((b"www-authenticate", b"Bearer"))
            if status >= 500:
                log.error("%s %s failed: %s", scope["method"], scope["path"], err)
            await error(send, status, str(err), [*base, *extra])
            return
        except Exception:
            log.exception("bug: %s %r failed", scope["method"], scope["path"])
            await error(send, 500, "internal error (logged)", [*base, CLOSE])
            return
        if ctype == _HTML:
            base.append((b"content-security-policy", _CSP))
        await reply(send, status, body, ctype, [*base, *headers])

    # -- routing ------------------------------------------------------------

    async def _route(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        path: str = scope["path"]
        method: str = scope["method"]
        parts = path.strip("/").split("/")
        get = method in ("GET", "HEAD")

        async def body(limit: int, ctype: str) -> bytes:
            given = (_headers(scope, b"content-type") or b"").split(b";")[0].strip().lower()
            if given != ctype.encode():
                raise _ReplyNowError(
                    415, f"expected Content-Type {ctype}\n".encode(), b"text/plain", []
                )
            data = await read_body(scope, receive, limit)
            if data is None:
                raise _ReplyNowError(400, b"request body incomplete\n", b"text/plain", [])
            return data

        async def form(limit: int = _MAX_FORM) -> dict[str, str]:
            return _form(await body(limit, "application/x-www-form-urlencoded"))

        def need(*methods: str) -> None:
            if method not in methods:
                allow = ", ".join(methods).encode()
                raise _ReplyNowError(
                    405, b"method not allowed\n", b"text/plain", [(b"allow", allow)]
                )

        # Public.
        if path == "/":
            need("GET", "HEAD")
            return self._intake_form()
        if path == "/report":
            need("POST")
            return await self._form_report(scope, await form(MAX_SUBMISSION))
        if path == "/api/reports":
            need("POST")
            return await self._api_report(scope, await body(MAX_SUBMISSION, "application/json"))
        if path == "/api/track":
            need("GET", "HEAD")
            tracking = await self._run(self.desk.track, _bearer(scope))
            return 200, _json(_tracking_json(tracking)), _JSON, []
        if path == "/api/track/messages":
            need("POST")
            doc = _json_body(await body(64 * 1024, "application/json"), ("text",))
            await self._run(self.desk.researcher_message, _bearer(scope), doc["text"])
            return 204, b"", b"text/plain", []
        if path == "/track":
            need("GET", "HEAD", "POST")
            if get:
                return 200, _page("Track a report", _TRACK_FORM), _HTML, []
            token = _field(await form(), "token")
            return await self._track_page(token)
        if path == "/track/message":
            need("POST")
            f = await form()
            await self._run(self.desk.researcher_message, _field(f, "token"), _field(f, "text"))
            return await self._track_page(f["token"])
        if path == "/stats":
            need("GET", "HEAD")
            counts = await self._run(self.desk.store.counts)
            return 200, _json({"program": self.desk.program, "reports": counts}), _JSON, []
        if path == "/.well-known/security.txt":
            need("GET", "HEAD")
            return 200, self._security_txt().encode(), b"text/plain; charset=utf-8", []
        if path == "/.well-known/psirt-key":
            need("GET", "HEAD")
            return 200, self.desk.key.published().encode(), b"text/plain; charset=utf-8", []
        if path.startswith(("/.well-known/csaf/", "/osv/")):
            need("GET", "HEAD")
            files = await self._run(self.desk.advisory_files)
            data = files.get(path.lstrip("/"))
            if data is None:
                raise NotFoundError(f"no such file: {path[:100]}")
            ctype = b"application/json" if path.endswith(".json") else b"text/plain; charset=utf-8"
            return 200, data, ctype, []

        # Sessions.
        if path == "/login":
            need("GET", "HEAD", "POST")
            if get:
                return 200, _page("Log in", _LOGIN_FORM), _HTML, []
            return await self._login(scope, await form())
        if path == "/logout":
            need("POST")
            account, csrf = await self._session(scope)
            _check_csrf(csrf, (await form()).get("csrf"))
            await self._run(self.desk.close_session, _cookies(scope).get(_SESSION_COOKIE, ""))
            return 303, b"", b"text/plain", [(b"location", b"/login"), self._cookie("")]

        # Staff pages.
        if parts[0] == "triage":
            account, csrf = await self._session(scope)
            if len(parts) == 1:
                need("GET", "HEAD")
                return await self._triage_page(account, csrf)
            report_id = parts[1]
            if len(parts) == 2:
                need("GET", "HEAD")
                return await self._report_page(account, csrf, report_id)
            if len(parts) == 3:
                need("POST")
                f = await form()
                _check_csrf(csrf, f.get("csrf"))
                await self._action(account, report_id, parts[2], f)
                where = f"/triage/{report_id}".encode()
                return 303, b"", b"text/plain", [(b"location", where)]
        if path == "/admin/bounty":
            need("POST")
            account, csrf = await self._session(scope)
            f = await form()
            _check_csrf(csrf, f.get("csrf"))
            table = parse_table(_field(f, "table"))
            await self._run(self.desk.set_bounty_table, account, table)
            return 303, b"", b"text/plain", [(b"location", b"/triage")]

        # Staff JSON.
        if path == "/api/session":
            need("GET", "HEAD")
            account, csrf = await self._session(scope)
            doc = {"username": account.username, "role": account.role.value, "csrf": csrf}
            return 200, _json(doc), _JSON, []
        if path == "/api/triage":
            need("GET", "HEAD")
            account, _ = await self._session(scope)
            rows = await self._run(self.desk.triage_list, account, None)
            return 200, _json([_summary_json(r) for r in rows]), _JSON, []
        if path == "/api/overdue":
            need("GET", "HEAD")
            account, _ = await self._session(scope)
            found = await self._run(self.desk.overdue, account)
            late = [
                {
                    "report_id": o.report_id,
                    "kind": o.kind,
                    "due": format_time(o.due),
                    "late_seconds": int(o.late_by.total_seconds()),
                    "rule": o.reason,
                }
                for o in found
            ]
            return 200, _json(late), _JSON, []
        if path == "/api/bounty":
            need("GET", "HEAD", "PUT")
            account, csrf = await self._session(scope)
            if not get:
                _check_csrf(csrf, _header_text(scope, b"x-csrf-token"))
                table = parse_table(await body(64 * 1024, "application/json"))
                await self._run(self.desk.set_bounty_table, account, table)
            table_now = await self._run(self.desk.bounty_table)
            return 200, format_table(table_now).encode(), _JSON, []
        if parts[:2] == ["api", "reports"] and len(parts) in (3, 4):
            account, csrf = await self._session(scope)
            report_id = parts[2]
            if len(parts) == 3:
                need("GET", "HEAD")
                view = await self._run(self.desk.view, account, report_id)
                return 200, _json(_view_json(view)), _JSON, []
            if parts[3] == "transition":
                need("POST")
                _check_csrf(csrf, _header_text(scope, b"x-csrf-token"))
                doc = _json_body(await body(4096, "application/json"), ("to",), ("verdict",))
                to, verdict = _state(doc["to"]), _verdict(doc.get("verdict"))
                proof = await self._run(self.desk.transition, account, report_id, to, verdict)
                return 200, _json({"state": to.value, "proof": proof.decode()}), _JSON, []
        raise NotFoundError(f"no such page: {path[:100]}")

    # -- alerts --------------------------------------------------------------

    def check_overdue(self) -> list[Overdue]:
        """Log one warning per missed, still open deadline; returns them."""
        found = self.desk.overdue()
        for o in found:
            log.warning(
                "overdue: report %s: %s was due %s (%s)",
                o.report_id,
                o.kind,
                format_time(o.due),
                o.reason,
            )
        return found

    async def _alert_loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.check_overdue)
            except OvertError as err:  # a database hiccup must not end the alerts
                log.error("cannot check deadlines: %s", err)
            await asyncio.sleep(self.config.alert_interval)

    # -- helpers -------------------------------------------------------------

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def _submit(self, sub: Submission) -> Intake:
        loop = asyncio.get_running_loop()
        intake: Intake = await loop.run_in_executor(self._intake_pool, self.desk.submit, sub)
        return intake

    def _client(self, scope: Scope) -> str:
        client = scope.get("client")
        return str(client[0]) if client else "?"

    def _cookie(self, value: str, name: str = _SESSION_COOKIE) -> tuple[bytes, bytes]:
        attrs = "; Path=/; HttpOnly; SameSite=Strict"
        if self.config.secure_cookies:
            attrs += "; Secure"
        if not value:
            attrs += "; Max-Age=0"
        return b"set-cookie", f"{name}={value}{attrs}".encode()

    async def _session(self, scope: Scope) -> tuple[Account, str]:
        session_id = _cookies(scope).get(_SESSION_COOKIE)
        if not session_id:
            raise AuthenticationError("not logged in")
        result: tuple[Account, str] = await self._run(self.desk.session, session_id)
        return result

    def _security_txt(self) -> str:
        base = self.config.base_url
        return format_security_txt(
            SecurityTxt(
                contact=self.config.contact,
                expires=(datetime.now(UTC) + timedelta(days=180)).replace(microsecond=0),
                encryption=(f"{base}/.well-known/psirt-key",),
                policy=(self.config.policy,),
                canonical=(f"{base}/.well-known/security.txt",),
            )
        )

    def _intake_form(self) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        token = secrets.token_urlsafe(24)
        classes = "".join(
            f"<option value='{_e(c.value)}'>{_e(c.value)}</option>" for c in VulnClass
        )
        body = (
            "<p>Reports are encrypted at rest; you get a private tracking token and a receipt"
            " that proves, with the transparency log, when your report arrived.</p>"
            "<form method='post' action='/report'>"
            f"<input type='hidden' name='csrf' value='{_e(token)}'>"
            "<p><label>Title <input name='title' required maxlength='200'></label></p>"
            "<p><label>Your handle <input name='researcher' required maxlength='100'></label></p>"
            "<p><label>Contact <input name='contact' maxlength='200'></label></p>"
            "<p><label>Product <input name='product' maxlength='100'></label></p>"
            f"<p><label>Class <select name='class'>{classes}</select></label></p>"
            "<p><label>CVSS vector <input name='cvss' maxlength='256'></label></p>"
            "<p><label>Description <textarea name='description' required></textarea></label></p>"
            "<p><button>Send</button></p></form>"
        )
        return (
            200,
            _page("Report a vulnerability", body),
            _HTML,
            [self._cookie(token, _FORM_COOKIE)],
        )

    async def _form_report(
        self, scope: Scope, f: dict[str, str]
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        _check_csrf(_cookies(scope).get(_FORM_COOKIE, ""), f.get("csrf"))
        self._buckets.take("report submissions", self._client(scope), self.config.intake_limit)
        try:
            vuln_class = VulnClass(_field(f, "class"))
        except ValueError as err:
            raise SubmissionError("class", "unknown vulnerability class") from err
        sub = check_submission(
            Submission(
                title=_field(f, "title"),
                description=_field(f, "description"),
                researcher=_field(f, "researcher"),
                vuln_class=vuln_class,
                contact=f.get("contact", ""),
                product=f.get("product", ""),
                cvss=f.get("cvss") or None,
            )
        )
        intake = await self._submit(sub)
        body = (
            f"<p>Report <b>{_e(intake.report_id)}</b> received.</p>"
            "<p>Your tracking token (keep it secret: it is the only way to follow this report):"
            f"</p><pre>{_e(intake.token)}</pre>"
            "<p>Your receipt (keep it: with the log's proof below it proves when the report"
            f" arrived):</p><pre>{_e(format_receipt(intake.receipt).decode())}</pre>"
            f"<p>Proof:</p><pre>{_e(intake.proof.decode())}</pre>"
        )
        return 201, _page("Report received", body), _HTML, []

    async def _api_report(
        self, scope: Scope, data: bytes
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        self._buckets.take("report submissions", self._client(scope), self.config.intake_limit)
        sub = parse_submission(data)
        intake = await self._submit(sub)
        doc = {
            "report_id": intake.report_id,
            "token": intake.token,
            "receipt": json.loads(format_receipt(intake.receipt)),
            "proof": intake.proof.decode(),
        }
        return 201, _json(doc), _JSON, []

    async def _track_page(self, token: str) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        t: Tracking = await self._run(self.desk.track, token)
        events = "".join(
            f"<li>{_e(format_time(e.at))}: {_e(e.state)}{' (' + _e(e.verdict) + ')' if e.verdict else ''}</li>"
            for e, _proof in t.events
        )
        messages = "".join(
            f"<li><b>{_e(who)}</b> {_e(format_time(at))}<pre>{_e(text)}</pre></li>"
            for who, at, text in t.messages
        )
        body = (
            f"<p>Report {_e(t.report_id)}: <b>{_e(t.title)}</b></p>"
            f"<p>State: {_e(t.state)}; disclosure due {_e(format_time(t.deadlines.disclose))}</p>"
            f"<ul>{events}</ul><h2>Messages</h2><ul>{messages}</ul>"
            "<form method='post' action='/track/message'>"
            f"<input type='hidden' name='token' value='{_e(token)}'>"
            "<textarea name='text' required></textarea><button>Send</button></form>"
        )
        return 200, _page("Your report", body), _HTML, []

    async def _login(
        self, scope: Scope, f: dict[str, str]
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        self._buckets.take("login attempts", self._client(scope), self.config.login_limit)
        account = await self._run(self.desk.login, _field(f, "username"), _field(f, "password"))
        session_id, _csrf = await self._run(self.desk.open_session, account)
        return 303, b"", b"text/plain", [(b"location", b"/triage"), self._cookie(session_id)]

    async def _triage_page(
        self, account: Account, csrf: str
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        rows = await self._run(self.desk.triage_list, account, None)
        lines = "".join(
            f"<tr><td><a href='/triage/{_e(r.id)}'>{_e(r.id)}</a></td><td>{_e(r.state)}</td>"
            f"<td>{_e(r.verdict or '')}</td><td>{_e(r.vuln_class)}</td><td>{_e(r.severity or '')}</td>"
            f"<td>{_e(r.researcher)}</td><td>{_e(format_time(datetime.fromtimestamp(r.received_at, UTC)))}</td></tr>"
            for r in rows
        )
        admin = ""
        if account.role is Role.ADMIN:
            table = await self._run(self.desk.bounty_table)
            admin = (
                "<h2>Bounty table</h2><form method='post' action='/admin/bounty'>"
                f"<input type='hidden' name='csrf' value='{_e(csrf)}'>"
                f"<textarea name='table' rows='20' cols='60'>{_e(format_table(table))}</textarea>"
                "<button>Save</button></form>"
            )
        body = (
            f"<p>{_e(account.username)} ({_e(account.role)})</p>"
            "<table><tr><th>report</th><th>state</th><th>verdict</th><th>class</th>"
            f"<th>severity</th><th>researcher</th><th>received</th></tr>{lines}</table>{admin}"
        )
        return 200, _page("Triage", body), _HTML, []

    async def _report_page(
        self, account: Account, csrf: str, report_id: str
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        v = await self._run(self.desk.view, account, report_id)
        due = deadlines(v.case)
        events = "".join(
            f"<li>{_e(format_time(e.at))} {_e(e.state)} {_e(e.verdict or '')} by {_e(e.actor)}</li>"
            for e in v.case.events
        )
        messages = "".join(
            f"<li><b>{_e(who)}</b> {_e(format_time(at))}<pre>{_e(text)}</pre></li>"
            for who, at, text in v.messages
        )
        hidden = f"<input type='hidden' name='csrf' value='{_e(csrf)}'>"
        states = "".join(f"<option>{_e(s.value)}</option>" for s in State)
        verdicts = "<option value=''></option>" + "".join(
            f"<option>{_e(x.value)}</option>" for x in Verdict
        )
        files = "".join(f"<li>{_e(a.name)} ({len(a.data)} bytes)</li>" for a in v.attachments)
        body = (
            f"<p><b>{_e(v.title)}</b> by {_e(v.researcher)} ({_e(v.contact)}), "
            f"{_e(v.vuln_class)}, product {_e(v.product)}</p>"
            f"<p>CVSS {_e(v.cvss or '-')} {_e(v.score if v.score is not None else '')} "
            f"{_e(v.severity or '')}</p><pre>{_e(v.description)}</pre><ul>{files}</ul>"
            f"<p>Acknowledge by {_e(format_time(due.acknowledge))}; disclose by "
            f"{_e(format_time(due.disclose))} ({_e(due.disclose_reason)})</p><ul>{events}</ul>"
            f"<form method='post' action='/triage/{_e(report_id)}/transition'>{hidden}"
            f"<select name='to'>{states}</select><select name='verdict'>{verdicts}</select>"
            "<button>Move</button></form>"
            f"<form method='post' action='/triage/{_e(report_id)}/score'>{hidden}"
            "<input name='cvss' maxlength='256'><button>Score</button></form>"
            f"<form method='post' action='/triage/{_e(report_id)}/exploited'>{hidden}"
            "<button>Exploited in the wild</button></form>"
            f"<h2>Messages</h2><ul>{messages}</ul>"
            f"<form method='post' action='/triage/{_e(report_id)}/message'>{hidden}"
            "<textarea name='text' required></textarea><button>Send</button></form>"
        )
        return 200, _page(f"Report {report_id}", body), _HTML, []

    async def _action(
        self, account: Account, report_id: str, action: str, f: dict[str, str]
    ) -> None:
        if action == "transition":
            to, verdict = _state(_field(f, "to")), _verdict(f.get("verdict") or None)
            await self._run(self.desk.transition, account, report_id, to, verdict)
        elif action == "message":
            await self._run(self.desk.message, account, report_id, _field(f, "text"))
        elif action == "score":
            await self._run(self.desk.set_cvss, account, report_id, _field(f, "cvss"))
        elif action == "exploited":
            await self._run(self.desk.flag_exploited, account, report_id)
        elif action == "pay":
            await self._run(self.desk.pay, account, report_id)
        else:
            raise NotFoundError(f"no such action: {action[:40]}")


_TRACK_FORM = (
    "<form method='post' action='/track'><label>Tracking token "
    "<input name='token' required maxlength='100'></label><button>Show</button></form>"
)
_LOGIN_FORM = (
    "<form method='post' action='/login'><p><label>User <input name='username' required></label>"
    "</p><p><label>Password <input name='password' type='password' required></label></p>"
    "<button>Log in</button></form>"
)


def _status(err: OvertError) -> int:
    if isinstance(err, NotFoundError):
        return 404
    if isinstance(err, FormatError):
        return 400
    return 503


def _check_csrf(expected: str, given: str | None) -> None:
    if not expected or given is None or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CSRFError()


def _header_text(scope: Scope, name: bytes) -> str | None:
    value = _headers(scope, name)
    return None if value is None else value.decode("latin-1")


def _bearer(scope: Scope) -> str:
    value = _header_text(scope, b"authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("send the tracking token as Authorization: Bearer <token>")
    return token


def _json(doc: object) -> bytes:
    return json.dumps(doc, indent=1).encode() + b"\n"


def _json_body(
    data: bytes, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    from overt.formats.strict import json_members, load_json

    try:
        doc: dict[str, Any] = json_members(
            load_json(data, "request", 64 * 1024), "request", required, optional
        )
    except FormatError as err:
        raise SubmissionError(err.what, err.reason) from err
    for key, value in doc.items():
        if not isinstance(value, str) and (key in required or value is not None):
            raise SubmissionError(key, "not a string")
    return doc


def _state(text: str) -> State:
    try:
        return State(text)
    except ValueError as err:
        raise SubmissionError("to", f"not one of {[s.value for s in State]}", text[:40]) from err


def _verdict(text: str | None) -> Verdict | None:
    if text is None:
        return None
    try:
        return Verdict(text)
    except ValueError as err:
        raise SubmissionError(
            "verdict", f"not one of {[v.value for v in Verdict]}", text[:40]
        ) from err


def _summary_json(r: Any) -> dict[str, Any]:
    return {
        "report_id": r.id,
        "researcher": r.researcher,
        "class": r.vuln_class,
        "state": r.state,
        "verdict": r.verdict,
        "severity": r.severity,
        "cvss_score": r.cvss_score,
        "received_at": format_time(datetime.fromtimestamp(r.received_at, UTC)),
    }


def _tracking_json(t: Tracking) -> dict[str, Any]:
    return {
        "report_id": t.report_id,
        "title": t.title,
        "state": t.state.value,
        "verdict": t.verdict.value if t.verdict else None,
        "severity": t.severity,
        "acknowledge_by": format_time(t.deadlines.acknowledge),
        "disclose_by": format_time(t.deadlines.disclose),
        "timeline": [
            {
                "state": e.state.value,
                "verdict": e.verdict.value if e.verdict else None,
                "at": format_time(e.at),
                "proof": proof.decode(),
            }
            for e, proof in t.events
        ],
        "messages": [
            {"author": who, "at": format_time(at), "text": text} for who, at, text in t.messages
        ],
    }


def _view_json(v: Any) -> dict[str, Any]:
    return {
        "report_id": v.report_id,
        "researcher": v.researcher,
        "class": v.vuln_class.value,
        "title": v.title,
        "description": v.description,
        "contact": v.contact,
        "product": v.product,
        "cvss": v.cvss,
        "score": v.score,
        "severity": v.severity,
        "state": v.case.state.value,
        "verdict": v.case.verdict.value if v.case.verdict else None,
        "timeline": [
            {"state": e.state.value, "actor": e.actor, "at": format_time(e.at)}
            for e in v.case.events
        ],
        "attachments": [{"name": a.name, "size": len(a.data)} for a in v.attachments],
        "messages": [
            {"author": who, "at": format_time(at), "text": text} for who, at, text in v.messages
        ],
    }
