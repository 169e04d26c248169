"""The partners' area: login with roles, statements handed out, signed envelopes accepted back.

A reviewer and an auditor, each with a key whose key set 1 is logged, log in, get the
exact statement to sign, sign it where the key is (here: the library's signer, as
``overt portal sign`` does) and upload the envelope; the portal verifies it against the
logged key and logs it. The attacks: a forged or expired session, a form without its
CSRF token, a login form posted from another site, an envelope signed by another key or
a key that is not logged, a partner filing what another role files, hostile text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from tests.portal.conftest import HOSTILE, PASSWORD, RULES_10, Partners, make_partners

from overt.formats.source_snapshot import FileEntry, Snapshot
from overt.portal.accounts import AccountStore, PartnerRole, hash_password, verify_password
from overt.portal.app import Portal, PortalConfig
from overt.portal.partners import audit_statement, sign_statement
from overt.publish.keys import generate_publisher_key


@pytest.fixture(scope="module")
def _made(tmp_path_factory: pytest.TempPathFactory) -> Partners:
    return make_partners(tmp_path_factory.mktemp("partners"))


@pytest.fixture
def partners(_made: Partners, tmp_path: Path) -> Partners:
    """A copy of the module's partners' log, state and artifacts for this test alone
    (made once: four scrypt hashes and a signed log per test would cost seconds)."""
    base = _made.state.parent
    shutil.copytree(base, tmp_path / "copy", symlinks=True)

    def moved(path: Path) -> Path:
        return tmp_path / "copy" / path.relative_to(base)

    log = dataclasses.replace(_made.log, dir=moved(_made.log.dir))
    return dataclasses.replace(
        _made, log=log, state=moved(_made.state), artifacts=moved(_made.artifacts)
    )


class Browser:
    """An httpx client on the ASGI app that keeps cookies, as a browser does."""

    def __init__(self, portal: Portal) -> None:
        self.portal = portal
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.portal)
            async with httpx.AsyncClient(transport=transport, base_url="http://portal") as c:
                headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
                return await c.request(method, path, data=form, headers=headers)

        r = asyncio.run(go())
        for value in r.headers.get_list("set-cookie"):
            name, _, rest = value.partition("=")
            cookie = rest.split(";", 1)[0]
            if cookie:
                self.cookies[name] = cookie
            else:
                self.cookies.pop(name, None)
        return r

    def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        page = self.request("GET", "/login")
        return self.request(
            "POST", "/login", {"name": name, "password": password, "csrf": _csrf(page.text)}
        )


def _csrf(text: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', text)
    assert m, text
    return html.unescape(m.group(1))


def _statement(text: str) -> bytes:
    m = re.search(r'<textarea id="statement"[^>]*>(.*?)</textarea>', text, re.DOTALL)
    assert m, text
    return html.unescape(m.group(1)).encode()


def _hand_out(browser: Browser, **form: str) -> tuple[bytes, str]:
    page = browser.request("GET", "/partners")
    assert page.status_code == 200, page.text
    csrf = _csrf(page.text)
    subject = re.search(
        r'<select id="subject" name="subject"><option value="([0-9a-f]{64})"', page.text
    )
    assert subject, page.text
    r = browser.request(
        "POST", "/partners/statement", {"csrf": csrf, "subject": subject.group(1), **form}
    )
    assert r.status_code == 200, r.text
    return _statement(r.text), _csrf(r.text)


def test_a_reviewer_files_a_review_signed_offline_and_the_portal_logs_it(
    partners: Partners,
) -> None:
    portal = partners.portal()
    browser = Browser(portal)
    assert browser.login("alice").status_code == 303
    statement, csrf = _hand_out(
        browser, files="*.py", verdict="concerns", thoroughness="high",
        findings="medium:app.py:1:prints a greeting",
    )  # fmt: skip
    assert b'"reviewer":"' + partners.reviewer.key.vkey.encode() in statement
    assert partners.snapshot.digest.encode() in statement
    envelope = sign_statement(statement, partners.reviewer)
    before = portal.snapshot().checkpoint.size
    r = browser.request("POST", "/partners/submit", {"csrf": csrf, "envelope": envelope.decode()})
    assert r.status_code == 200, r.text
    assert f'<a href="/entries/{before}">entry {before}</a>' in r.text
    page = browser.request("GET", f"/entries/{before}").text
    assert "https://overt.dev/source-review/v1" in page and "prints a greeting" in page


def test_an_auditor_signs_a_rule_audit_and_the_portal_logs_it(partners: Partners) -> None:
    portal = partners.portal()
    browser = Browser(portal)
    browser.login("bob")
    statement, csrf = _hand_out(browser, audit="no-espionage")
    assert b'"result":"fail"' in statement and b'"high":3' in statement
    envelope = sign_statement(statement, partners.auditor)
    r = browser.request("POST", "/partners/submit", {"csrf": csrf, "envelope": envelope.decode()})
    assert r.status_code == 200 and "logged as" in r.text, r.text
    assert "no-espionage: fail" in browser.request("GET", "/rules").text


def test_a_wrong_password_is_refused_with_the_same_answer_as_an_unknown_name(
    partners: Partners,
) -> None:
    browser = Browser(partners.portal())
    wrong = browser.login("alice", "not the password!")
    unknown = browser.login("nobody", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "wrong name or password" in wrong.text and "wrong name or password" in unknown.text
    assert "overt_portal" not in browser.cookies
    assert browser.request("GET", "/partners").status_code == 401


def test_a_forged_session_cookie_is_refused(partners: Partners) -> None:
    browser = Browser(partners.portal())
    browser.login("alice")
    payload, mac = browser.cookies["overt_portal"].split(".")
    # An attacker rewrites the payload to an admin's name: the MAC no longer matches.
    import base64

    doc = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    doc.update(u="carol", r="admin")
    forged = base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
    browser.cookies["overt_portal"] = f"{forged}.{mac}"
    assert browser.request("GET", "/partners").status_code == 401


def test_an_expired_session_is_refused(partners: Partners) -> None:
    now = [time.time()]
    browser = Browser(partners.portal(clock=lambda: now[0]))
    browser.login("alice")
    assert browser.request("GET", "/partners").status_code == 200
    now[0] += 9 * 3600
    r = browser.request("GET", "/partners")
    assert r.status_code == 401 and "expired" in r.text


def test_a_removed_role_ends_the_session(partners: Partners) -> None:
    browser = Browser(partners.portal())
    browser.login("alice")
    AccountStore(partners.state).add("alice", PartnerRole.ADMIN, PASSWORD, None)
    assert browser.request("GET", "/partners").status_code == 401


def test_a_cross_site_form_without_the_csrf_token_is_refused(partners: Partners) -> None:
    browser = Browser(partners.portal())
    browser.login("alice")
    envelope = b"{}"
    r = browser.request("POST", "/partners/submit", {"envelope": envelope.decode()})
    assert r.status_code == 403
    r = browser.request("POST", "/partners/submit", {"csrf": "guess", "envelope": "{}"})
    assert r.status_code == 403
    assert browser.request("POST", "/logout", {"csrf": ""}).status_code == 403


def test_a_login_csrf_without_the_pre_session_cookie_is_refused(partners: Partners) -> None:
    victim = Browser(partners.portal())
    attacker = Browser(partners.portal())
    token = _csrf(attacker.request("GET", "/login").text)
    # The attacker's page posts its own login (and token) from the victim's browser.
    r = victim.request("POST", "/login", {"name": "mallory", "password": PASSWORD, "csrf": token})
    assert r.status_code == 403 and "overt_portal" not in victim.cookies


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("alice", "trusted key"),  # alice's account, mallory's signature
        ("mallory", "no logged key set"),  # mallory's own account: her key was never logged
    ],
)
def test_an_envelope_not_signed_by_a_logged_key_of_the_partner_is_refused(
    partners: Partners, name: str, reason: str
) -> None:
    browser = Browser(partners.portal())
    browser.login(name)
    statement, csrf = _hand_out(browser, files="*", verdict="pass", thoroughness="low")
    envelope = sign_statement(statement, partners.stranger)
    r = browser.request("POST", "/partners/submit", {"csrf": csrf, "envelope": envelope.decode()})
    assert r.status_code == 400 and reason in r.text


def test_an_auditor_cannot_file_a_review(partners: Partners) -> None:
    browser = Browser(partners.portal())
    browser.login("alice")
    statement, _ = _hand_out(browser, files="*", verdict="pass", thoroughness="low")
    auditor = Browser(browser.portal)
    auditor.login("bob")
    csrf = _csrf(auditor.request("GET", "/partners").text)
    envelope = sign_statement(statement, partners.auditor)
    r = auditor.request("POST", "/partners/submit", {"csrf": csrf, "envelope": envelope.decode()})
    assert r.status_code == 400 and "rule-audit" in r.text


def test_a_review_of_a_snapshot_the_log_does_not_hold_is_refused(partners: Partners) -> None:
    from overt.formats.statement import format_statement, make_statement
    from overt.source.review import make_review

    browser = Browser(partners.portal())
    browser.login("alice")
    csrf = _csrf(browser.request("GET", "/partners").text)
    other = Snapshot.of([FileEntry("100644", "ab" * 32, "x.py")])
    predicate = make_review(other, partners.reviewer.key.vkey, ["*"], "pass", "low")
    statement = make_statement(
        "source", other.digest, (predicate.predicate_type, predicate.to_json())
    )
    envelope = sign_statement(format_statement(statement), partners.reviewer)
    r = browser.request("POST", "/partners/submit", {"csrf": csrf, "envelope": envelope.decode()})
    assert r.status_code == 400 and "nothing logged" in r.text


def test_hostile_text_in_a_handed_out_statement_is_inert(partners: Partners) -> None:
    browser = Browser(partners.portal())
    browser.login("alice")
    r = browser.request("GET", "/partners")
    subject = re.search(r'<option value="([0-9a-f]{64})"', r.text)
    assert subject
    r = browser.request(
        "POST",
        "/partners/statement",
        {"csrf": _csrf(r.text), "subject": subject.group(1), "files": "*", "verdict": "fail",
         "thoroughness": "low", "findings": f"high:README:1:{HOSTILE}"},
    )  # fmt: skip
    assert r.status_code == 200
    assert "<script>alert" not in r.text and "&lt;script&gt;" in r.text
    # the bytes to sign are exact: the text comes back whole from the page's textarea
    assert json.loads(_statement(r.text))["predicate"]["findings"][0]["text"] == HOSTILE


def test_the_session_cookie_is_httponly_samesite_strict_and_secure(partners: Partners) -> None:
    portal = Portal(PortalConfig(partners.log.dir, state=partners.state))
    r = Browser(portal).login("alice")
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("overt_portal="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" in cookie


def test_without_a_log_to_write_to_an_accepted_envelope_is_503(partners: Partners) -> None:
    portal = Portal(PortalConfig(partners.log.dir, state=partners.state, artifacts=partners.artifacts, secure_cookies=False))  # fmt: skip
    browser = Browser(portal)
    browser.login("alice")
    statement, csrf = _hand_out(browser, files="*", verdict="pass", thoroughness="low")
    envelope = sign_statement(statement, partners.reviewer)
    r = browser.request("POST", "/partners/submit", {"csrf": csrf, "envelope": envelope.decode()})
    assert r.status_code == 503


def test_password_hashes_are_scrypt_salted_and_verify() -> None:
    one, two = hash_password(PASSWORD, n=1 << 10), hash_password(PASSWORD, n=1 << 10)
    assert one.startswith("scrypt$1024$8$1$") and one != two
    assert verify_password(one, PASSWORD) and not verify_password(one, PASSWORD + "x")


def test_accounts_are_checked_when_made(tmp_path: Path) -> None:
    from overt.errors import ConfigError

    store = AccountStore(tmp_path)
    with pytest.raises(ConfigError, match="12 to 1024"):
        store.add("short", PartnerRole.ADMIN, "short", None)
    with pytest.raises(ConfigError, match="own key"):
        store.add("rev", PartnerRole.REVIEWER, PASSWORD, None)
    with pytest.raises(ConfigError, match="account name"):
        store.add("<script>", PartnerRole.ADMIN, PASSWORD, None)
    store.add("carol", PartnerRole.ADMIN, PASSWORD, None)
    assert (tmp_path / "accounts.json").stat().st_mode & 0o077 == 0


def test_the_cli_adds_a_user_and_signs_a_statement_offline(
    partners: Partners, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    from overt.cli.main import main
    from overt.formats.dsse import parse_envelope
    from overt.publish.keys import write_key_files

    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["portal", "user", "add", "dave", "--role", "auditor", "--vkey",
                 partners.auditor.key.vkey, "--state", str(partners.state)]) == 0  # fmt: skip
    assert AccountStore(partners.state).login("dave", PASSWORD).role is PartnerRole.AUDITOR
    skey, signer = generate_publisher_key("erin.example/review")
    write_key_files(tmp_path / "erin.key", skey, signer)
    (tmp_path / "s.json").write_bytes(audit_statement("rules-10.yar", RULES_10, "no-espionage"))
    out = tmp_path / "s.dsse.json"
    assert main(["portal", "sign", str(tmp_path / "s.json"), "--key", str(tmp_path / "erin.key"),
                 "--out", str(out)]) == 0  # fmt: skip
    assert parse_envelope(out.read_bytes()).payload == (tmp_path / "s.json").read_bytes()


def test_password_guessing_is_throttled(partners: Partners) -> None:
    now = [time.time()]
    browser = Browser(partners.portal(clock=lambda: now[0]))
    for i in range(10):
        assert browser.login("alice", f"guess number {i:04d}").status_code == 401
    r = browser.login("alice")  # even the right password, for now
    assert r.status_code == 429 and "too many failed logins" in r.text
    now[0] += 16 * 60
    assert browser.login("alice").status_code == 303


def test_password_guesses_sent_at_once_are_throttled_too(partners: Partners) -> None:
    """An attacker who sends many guesses concurrently gets no more than the ten a client
    sending them one by one gets: a guess counts from the moment it is checked, not when
    its (slow) scrypt ends."""
    portal = partners.portal()
    token_of = {}
    for i in range(20):
        browser = Browser(portal)
        page = browser.request("GET", "/login")
        token_of[i] = (browser.cookies["overt_login"], _csrf(page.text))

    async def guess(i: int) -> int:
        transport = httpx.ASGITransport(app=portal)
        async with httpx.AsyncClient(transport=transport, base_url="http://portal") as c:
            nonce, csrf = token_of[i]
            form = {"name": "alice", "password": f"guess number {i:04d}", "csrf": csrf}
            r = await c.post("/login", data=form, headers={"cookie": f"overt_login={nonce}"})
            return r.status_code

    async def all_at_once() -> list[int]:
        return list(await asyncio.gather(*(guess(i) for i in range(20))))

    statuses = asyncio.run(all_at_once())
    assert statuses.count(401) == 10 and statuses.count(429) == 10, statuses
    assert Browser(portal).login("alice").status_code == 429


def test_password_guesses_from_one_ipv6_network_count_together(partners: Partners) -> None:
    """One IPv6 host is given a whole /64: guesses from its addresses count as one client's
    (each address would otherwise get ten guesses at every name)."""
    portal = partners.portal()

    def guess(i: int, name: str) -> int:
        async def go() -> int:
            client = (f"2001:db8:1:2::{i + 1:x}", 1234)
            transport = httpx.ASGITransport(app=portal, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://portal") as c:
                page = await c.get("/login")
                form = {"name": name, "password": f"guess number {i:04d}", "csrf": _csrf(page.text)}
                nonce = page.cookies["overt_login"]
                r = await c.post("/login", data=form, headers={"cookie": f"overt_login={nonce}"})
                return r.status_code

        return asyncio.run(go())

    # Each guess at another name from another address of the same /64.
    statuses = [guess(i, f"user{i}") for i in range(11)]
    assert statuses == [401] * 10 + [429], statuses


def test_a_statement_handed_to_one_partner_is_not_served_to_another(partners: Partners) -> None:
    """A statement handed out (with its findings, before they are signed and logged) is
    downloadable by the partner it was handed to only, not by another who learns its link."""
    portal = partners.portal()
    alice = Browser(portal)
    alice.login("alice")
    page = alice.request("GET", "/partners")
    subject = re.search(r'<option value="([0-9a-f]{64})"', page.text)
    assert subject
    r = alice.request(
        "POST",
        "/partners/statement",
        {"csrf": _csrf(page.text), "subject": subject.group(1), "files": "*",
         "verdict": "concerns", "thoroughness": "high",
         "findings": "high:app.py:1:an undisclosed weakness"},
    )  # fmt: skip
    link = re.search(r'href="(/partners/statements/[0-9a-f]{64})"', r.text)
    assert link, r.text
    assert alice.request("GET", link.group(1)).status_code == 200
    mallory = Browser(portal)
    mallory.login("mallory")
    stolen = mallory.request("GET", link.group(1))
    assert stolen.status_code == 404 and b"undisclosed" not in stolen.content
