"""The partners' area of the portal over HTTP: login, hand out a statement, accept it signed.

Routes (HTML forms that work without script; ``static/sign.js`` adds signing in the
browser with a key the partner imports, which never leaves the page)::

    GET  /login                      the login form (sets a pre-session cookie for its token)
    POST /login                      name, password, csrf -> session cookie, 303 /partners
    POST /logout                     csrf -> cookie cleared, 303 /
    GET  /partners                   what the account's role may do
    POST /partners/statement         csrf and the form of the role -> the statement to sign
    GET  /partners/statements/<h>    a statement handed out (its sha256 <h>) as a file
    POST /partners/submit            csrf, envelope -> verified, logged, "logged as entry N"

Statuses: 303 after login and logout; 401 not logged in (the login form); 403 a form
token that does not match (CSRF) or a role that may not do this; 429 ten failed logins
for one name or from one address within 15 minutes; 400 a malformed form
or an envelope that is refused (the reason, one line); 413 a body over 256 KiB; 503
no ``--log`` to log to, or the log refused. Passwords are checked and envelopes
logged in worker threads: the pages of the portal keep answering meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from overt._asgi import BodyTooLargeError, Receive, Scope, Send, peer_key, read_body
from overt.errors import ConfigError, FormatError, OvertError, VerificationError
from overt.portal.accounts import (
    SESSION_SECONDS,
    AccountStore,
    PartnerAccount,
    PartnerRole,
    Session,
    SessionKeys,
    check_token,
)
from overt.portal.partners import FILES, accept_envelope, audit_statement, pretty, review_statement

if TYPE_CHECKING:
    from overt.portal.app import Portal

__all__ = ["PartnersArea"]


_SESSION = "overt_portal"
_LOGIN = "overt_login"
_MAX_BODY = 256 * 1024
_MAX_HANDED = 256  # statements handed out and kept for download
_MAX_FAILURES, _FAILURE_WINDOW = 10, 15 * 60.0  # failed logins per name or address, seconds
_FINDING = re.compile(r"(low|medium|high|critical):(.+?):([1-9][0-9]{0,9}):(.+)")
Reply = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]
_HTML = b"text/html; charset=utf-8"


class _RefusedError(Exception):
    """An answer other than 200 (the status, one line for the page)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PartnersArea:
    """The partners' area of ``portal``: accounts and session keys in ``portal.config.state``.

    Raises (on construction):
        ConfigError: no state folder, or its session key cannot be made or read.
    """

    def __init__(self, portal: Portal) -> None:
        state = portal.config.state
        if state is None:
            raise ConfigError("the partners' area needs the portal's --state folder")
        self.portal = portal
        self.accounts = AccountStore(state)
        self.keys = SessionKeys(state, portal.config.clock)
        self.secure = portal.config.secure_cookies
        # (account name, sha256) -> statement: each served to the partner it was handed to.
        self._handed: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._failures: dict[tuple[str, str], list[float]] = {}

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, headers: list[tuple[bytes, bytes]]
    ) -> Reply:
        path, method = scope["path"], scope["method"]
        cookies = _cookies(scope)
        try:
            if method == "GET" and path == "/login":
                return self._login_page(cookies.get(_SESSION))
            if method == "POST" and path == "/login":
                form = await _form(scope, receive)
                _token(self.keys.login_token(cookies.get(_LOGIN, "")), form)
                name, password = form.get("name", ""), form.get("password", "")
                client = peer_key(scope.get("client"))  # an IPv6 /64 is one client
                keys = (("name", name[:64]), ("client", client))
                self._throttle(*keys)
                # Counted as failed from now until it succeeds: guesses sent at once must not
                # all pass the throttle while their scrypt hashes are queued.
                attempt = self._failed(*keys)
                try:
                    account = await asyncio.to_thread(self.accounts.login, name, password)
                except VerificationError as err:
                    raise _LoginError(str(err)) from err
                self._forgive(attempt, *keys)
                cookie, _ = self.keys.issue(account)
                return 303, b"", b"text/plain", [
                    (b"location", b"/partners"),
                    self._cookie(_SESSION, cookie, SESSION_SECONDS),
                    self._cookie(_LOGIN, "", 0),
                ]  # fmt: skip
            session = self._session(cookies)
            self.portal.snapshot()  # the index as of the published log
            if method == "POST" and path == "/logout":
                form = await _form(scope, receive)
                _token(session.csrf, form)
                return 303, b"", b"text/plain", [
                    (b"location", b"/"), self._cookie(_SESSION, "", 0)
                ]  # fmt: skip
            if method == "GET" and path == "/partners":
                return self._page("partners.html", session)
            if method == "GET" and path.startswith("/partners/statements/"):
                return self._download(session, path.rsplit("/", 1)[1])
            if method == "POST" and path == "/partners/statement":
                form = await _form(scope, receive)
                _token(session.csrf, form)
                return self._hand_out(session, form)
            if method == "POST" and path == "/partners/submit":
                form = await _form(scope, receive)
                _token(session.csrf, form)
                return await self._submit(session, form)
            raise _RefusedError(405, "method not allowed here")
        except _RefusedError as err:
            return self._error(err.status, err.message)
        except _LoginError as err:
            return self._login_page(None, str(err), 401)
        except VerificationError as err:  # an envelope refused: its reason
            return self._error(400, str(err))
        except BodyTooLargeError:
            return self._error(413, f"the form is larger than {_MAX_BODY} bytes")
        except FormatError as err:
            return self._error(400, str(err))

    # -- sessions ----------------------------------------------------------------

    def _throttle(self, *keys: tuple[str, str]) -> None:
        """Raises _RefusedError (429) once a name or a client address has failed to log in
        ``_MAX_FAILURES`` times within ``_FAILURE_WINDOW`` seconds (password guessing)."""
        now = self.portal.config.clock()
        for key in keys:
            recent = [t for t in self._failures.get(key, []) if now - t < _FAILURE_WINDOW]
            self._failures[key] = recent
            if len(recent) >= _MAX_FAILURES:
                raise _RefusedError(
                    429, f"too many failed logins for this {key[0]}: try again in 15 minutes"
                )

    def _failed(self, *keys: tuple[str, str]) -> float:
        """Counts a login attempt as failed for each of ``keys``; returns its time."""
        now = self.portal.config.clock()
        if len(self._failures) > 100_000:  # bounded memory under a flood of names
            self._failures.clear()
        for key in keys:
            self._failures.setdefault(key, []).append(now)
        return now

    def _forgive(self, attempt: float, *keys: tuple[str, str]) -> None:
        """Takes back :meth:`_failed`'s count of an attempt that succeeded."""
        for key in keys:
            recent = self._failures.get(key)
            if recent is not None and attempt in recent:
                recent.remove(attempt)

    def _session(self, cookies: dict[str, str]) -> Session:
        cookie = cookies.get(_SESSION)
        if not cookie:
            raise _LoginError("not logged in")
        try:
            return self.keys.open(cookie, self.accounts)
        except VerificationError as err:
            raise _LoginError(str(err)) from err

    def _cookie(self, name: str, value: str, max_age: int) -> tuple[bytes, bytes]:
        attrs = f"; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
        if self.secure:
            attrs += "; Secure"
        return b"set-cookie", f"{name}={value}{attrs}".encode()

    # -- pages -------------------------------------------------------------------

    def _render(self, template: str, status: int = 200, **values: Any) -> Reply:
        html = self.portal._render(template, **values).encode("utf-8")
        return status, html, _HTML, [(b"cache-control", b"no-store")]

    def _error(self, status: int, message: str) -> Reply:
        return self._render("partner_error.html", status, code=status, message=message)

    def _login_page(self, current: str | None, message: str = "", status: int = 200) -> Reply:
        nonce = secrets.token_urlsafe(16)
        status, body, ctype, headers = self._render(
            "login.html", status, csrf=self.keys.login_token(nonce), message=message
        )
        return status, body, ctype, [*headers, self._cookie(_LOGIN, nonce, 3600)]

    def _page(self, template: str, session: Session, status: int = 200, **values: Any) -> Reply:
        return self._render(
            template,
            status,
            account=session.account,
            csrf=session.csrf,
            choices=self._choices(session.account),
            **values,
        )

    def _choices(self, account: PartnerAccount) -> list[tuple[str, str]]:
        """What the role may sign about: (digest, label) of logged subjects whose file the
        portal has (``--artifacts``): source snapshots for reviewers, rule bundles for auditors."""
        if account.role not in FILES:
            return []
        _, subject_type = FILES[account.role]
        kind = "rule-bundle" if account.role is PartnerRole.AUDITOR else "source-snapshot"
        out = []
        for row in self.portal.index.search(kind=kind, limit=200):
            if row.predicate_type == subject_type and self.portal.artifact(row.digest) is not None:
                label = f"{row.subject} {row.product} {row.version}".strip()
                out.append((row.digest, f"{label} (entry {row.index}, {row.digest[:12]})"))
        return out

    def _hand_out(self, session: Session, form: dict[str, str]) -> Reply:
        account = session.account
        if account.role not in FILES or account.vkey is None:
            raise _RefusedError(403, f"a {account.role.value} signs nothing here")
        digest = form.get("subject", "")
        if digest not in {d for d, _ in self._choices(account)}:
            raise _RefusedError(400, "choose a logged subject this portal has the file of")
        data = self.portal.artifact(digest)
        if data is None:
            raise _RefusedError(400, "the subject's file is gone from the artifacts folder")
        try:
            if account.role is PartnerRole.REVIEWER:
                from overt.formats.source_snapshot import parse_snapshot

                statement = review_statement(
                    parse_snapshot(data),
                    account.vkey,
                    form.get("files", "").split(),
                    form.get("verdict", ""),
                    form.get("thoroughness", ""),
                    _findings(form.get("findings", "")),
                )
                command = "overt portal sign review.statement.json --key reviewer.key"
            else:
                name = self.portal.index.search(kind="rule-bundle", digest=digest, limit=1)[0]
                audit = form.get("audit", "") or "no-espionage"
                statement = audit_statement(name.subject, data, audit)
                command = "overt portal sign audit.statement.json --key auditor.key"
        except OvertError as err:
            raise _RefusedError(400, str(err)) from err
        handle = hashlib.sha256(statement).hexdigest()
        self._handed[(account.name, handle)] = statement
        while len(self._handed) > _MAX_HANDED:
            self._handed.popitem(last=False)
        return self._page(
            "statement.html",
            session,
            statement=statement.decode("utf-8"),
            readable=pretty(statement),
            handle=handle,
            command=f"{command} > envelope.json",
        )

    def _download(self, session: Session, handle: str) -> Reply:
        statement = self._handed.get((session.account.name, handle))
        if statement is None or session.account.role not in FILES:
            raise _RefusedError(404, "no such statement (statements are kept for a while only)")
        disposition = b'attachment; filename="statement-%s.json"' % handle[:12].encode()
        return 200, statement, b"application/json", [(b"content-disposition", disposition)]

    async def _submit(self, session: Session, form: dict[str, str]) -> Reply:
        portal = self.portal
        if portal.config.log is None:
            raise _RefusedError(503, "this portal logs nothing: it was started without --log")
        snap = portal.snapshot()
        keysets = [
            snap.view.entry(r.index)
            for r in reversed(portal.index.search(kind="key-set", limit=10000))
        ]

        def known(predicate_type: str, digest: str) -> bool:
            rows = portal.index.search(digest=digest, limit=100)
            return any(r.predicate_type == predicate_type for r in rows)

        accepted = accept_envelope(
            form.get("envelope", "").strip().encode("utf-8"), session.account, keysets, known
        )
        try:
            index = await asyncio.to_thread(portal.log_entry, accepted.entry)
        except OvertError as err:
            raise _RefusedError(503, f"not logged: {err}") from err
        return self._page(
            "submitted.html", session, index=index, kind=accepted.statement.predicate_type
        )


class _LoginError(Exception):
    """Not logged in (no session, an expired or forged one, a wrong password): the login form."""


def _token(expected: str, form: dict[str, str]) -> None:
    """Raises _RefusedError (403) unless the form carries the ``expected`` CSRF token."""
    try:
        check_token(expected, form.get("csrf"))
    except VerificationError as err:
        raise _RefusedError(403, str(err)) from err


async def _form(scope: Scope, receive: Receive) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, each field once.

    Raises:
        BodyTooLargeError: over 256 KiB; _RefusedError: not a form, or a field given twice.
    """
    ctype = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip()
    if ctype != b"application/x-www-form-urlencoded":
        raise _RefusedError(400, "send the form as application/x-www-form-urlencoded")
    body = await read_body(scope, receive, _MAX_BODY)
    if body is None:
        raise _RefusedError(400, "the client went away")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError) as err:
        raise _RefusedError(400, f"malformed form: {err}") from err
    if any(len(v) != 1 for v in fields.values()):
        raise _RefusedError(400, "a form field given twice")
    return {k: v[0] for k, v in fields.items()}


def _cookies(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, eq, val = part.strip().partition("=")
                if eq and key not in found:
                    found[key] = val
    return found


def _findings(text: str) -> list[tuple[str, str, int, str]]:
    """One SEVERITY:FILE:LINE:TEXT a line (``overt review record --finding``'s form).

    Raises:
        _RefusedError: a line of another form.
    """
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _FINDING.fullmatch(line.strip())
        if m is None:
            raise _RefusedError(400, f"finding {line[:60]!r}: want SEVERITY:FILE:LINE:TEXT")
        out.append((m.group(1), m.group(2), int(m.group(3)), m.group(4)))
    return out
