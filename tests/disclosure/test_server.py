"""The service over HTTP: API and form, tracking, roles, CSRF, escaping, limits, well-known files."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from overt.disclosure.bounty import DEFAULT_TABLE, format_table
from overt.disclosure.securitytxt import parse_security_txt
from overt.disclosure.server import DisclosureApp, RateLimit, ServiceConfig
from overt.disclosure.service import MAX_SUBMISSION
from overt.disclosure.timeline import parse_receipt, verify_commitment
from overt.formats.note import parse_vkey
from overt.log.log import read_vkey

from .conftest import Rig

REPORT = {
    "title": "RCE in the updater",
    "description": "Unsigned manifests are accepted.",
    "researcher": "alice",
    "class": "rce-update-channel",
    "cvss": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
}


class Site:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def submit(self, **changes: Any) -> dict[str, Any]:
        r = self.http.post("/api/reports", json={**REPORT, **changes})
        assert r.status_code == 201, r.text
        doc: dict[str, Any] = r.json()
        return doc

    def login(self, user: str, password: str) -> tuple[str, str]:
        """(cookie header, csrf token)."""
        r = self.http.post("/login", data={"username": user, "password": password})
        assert r.status_code == 303, r.text
        session = re.search(r"overt_session=([^;]+)", r.headers["set-cookie"])
        assert session is not None
        assert (
            "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
        )
        cookie = f"overt_session={session.group(1)}"
        me = self.http.get("/api/session", headers={"cookie": cookie}).json()
        return cookie, me["csrf"]


@pytest.fixture
def site(rig: Rig, asgi_server: Callable[[Any], Any]) -> Iterator[Site]:
    config = ServiceConfig(
        secure_cookies=False,
        intake_limit=RateLimit(per_minute=600, burst=100),
        login_limit=RateLimit(per_minute=600, burst=100),
    )
    s = Site(asgi_server(DisclosureApp(rig.desk, config)).url)
    yield s
    s.http.close()


def test_the_whole_life_of_a_report_through_the_json_api(rig: Rig, site: Site) -> None:
    intake = site.submit()
    rid, token = intake["report_id"], intake["token"]
    # The receipt and proof prove the intake time with the log's key alone.
    receipt = parse_receipt(json.dumps(intake["receipt"]).encode())
    verify_commitment(receipt, intake["proof"].encode(), parse_vkey(read_vkey(rig.log.directory)))
    cookie, csrf = site.login("tom", "triager password 1")
    staff = {"cookie": cookie, "x-csrf-token": csrf}
    steps = [
        ("acknowledged", None),
        ("triaged", "valid"),
        ("fix_in_progress", None),
        ("fixed", None),
    ]
    for to, verdict in steps:
        r = site.http.post(
            f"/api/reports/{rid}/transition", json={"to": to, "verdict": verdict}, headers=staff
        )
        assert r.status_code == 200, r.text
    r = site.http.post(
        "/api/track/messages",
        json={"text": "any news?"},
        headers={"authorization": f"Bearer {token}"},
    )
    assert r.status_code == 204
    status = site.http.get("/api/track", headers={"authorization": f"Bearer {token}"}).json()
    assert status["state"] == "fixed" and status["verdict"] == "valid"
    assert [t["state"] for t in status["timeline"]] == ["received", *[s for s, _ in steps]]
    assert status["messages"][0]["text"] == "any news?"
    view = site.http.get(f"/api/reports/{rid}", headers=staff).json()
    assert view["description"] == REPORT["description"] and view["score"] == 9.8
    assert [x["report_id"] for x in site.http.get("/api/triage", headers=staff).json()] == [rid]
    # A step out of order is a conflict.
    r = site.http.post(f"/api/reports/{rid}/transition", json={"to": "acknowledged"}, headers=staff)
    assert r.status_code == 409


def test_the_whole_life_of_a_report_through_the_html_forms(rig: Rig, site: Site) -> None:
    page = site.http.get("/")
    csrf = re.search(r"name='csrf' value='([^']+)'", page.text)
    assert csrf is not None and "overt_form=" in page.headers["set-cookie"]
    form_cookie = f"overt_form={csrf.group(1)}"
    r = site.http.post(
        "/report",
        data={**{k: v for k, v in REPORT.items()}, "csrf": csrf.group(1)},
        headers={"cookie": form_cookie},
    )
    assert r.status_code == 201, r.text
    token = re.search(r"tracking token.*?<pre>([^<]+)</pre>", r.text, re.S)
    assert token is not None
    rid = re.search(r"Report <b>(R-[0-9a-f]+)</b>", r.text)
    assert rid is not None
    cookie, staff_csrf = site.login("tom", "triager password 1")
    assert rid.group(1) in site.http.get("/triage", headers={"cookie": cookie}).text
    r = site.http.post(
        f"/triage/{rid.group(1)}/transition",
        data={"to": "acknowledged", "verdict": "", "csrf": staff_csrf},
        headers={"cookie": cookie},
    )
    assert r.status_code == 303
    r = site.http.post("/track", data={"token": token.group(1)})
    assert r.status_code == 200 and "acknowledged" in r.text


def test_a_researcher_cannot_read_another_researchers_report(site: Site) -> None:
    a, b = site.submit(title="A report"), site.submit(title="B report")
    mine = site.http.get("/api/track", headers={"authorization": f"Bearer {a['token']}"})
    assert mine.json()["report_id"] == a["report_id"] and "B report" not in mine.text
    # A tracking token is no staff session, and a guessed token opens nothing.
    r = site.http.get(
        f"/api/reports/{b['report_id']}", headers={"authorization": f"Bearer {a['token']}"}
    )
    assert r.status_code == 401
    r = site.http.get("/api/track", headers={"authorization": "Bearer " + "A" * 43})
    assert r.status_code == 404
    assert site.http.get("/api/track").status_code == 401


def test_a_triager_cannot_change_the_bounty_table(site: Site) -> None:
    cookie, csrf = site.login("tom", "triager password 1")
    table = format_table(DEFAULT_TABLE).replace("100000", "1")
    r = site.http.put(
        "/api/bounty",
        content=table,
        headers={"cookie": cookie, "x-csrf-token": csrf, "content-type": "application/json"},
    )
    assert r.status_code == 403
    r = site.http.post(
        "/admin/bounty", data={"table": table, "csrf": csrf}, headers={"cookie": cookie}
    )
    assert r.status_code == 403
    admin_cookie, admin_csrf = site.login("ada", "correct horse battery")
    r = site.http.put(
        "/api/bounty",
        content=table,
        headers={
            "cookie": admin_cookie,
            "x-csrf-token": admin_csrf,
            "content-type": "application/json",
        },
    )
    assert r.status_code == 200 and '"critical": 1,' in r.text


def test_csrf_is_refused(site: Site) -> None:
    rid = site.submit()["report_id"]
    cookie, _csrf = site.login("tom", "triager password 1")
    for data, headers in [
        ({"to": "acknowledged"}, {"cookie": cookie}),
        ({"to": "acknowledged", "csrf": "forged"}, {"cookie": cookie}),
    ]:
        r = site.http.post(f"/triage/{rid}/transition", data=data, headers=headers)
        assert r.status_code == 403, r.text
    r = site.http.post(
        f"/api/reports/{rid}/transition", json={"to": "acknowledged"}, headers={"cookie": cookie}
    )
    assert r.status_code == 403
    # The anonymous form without its cookie (a cross-site post) is refused too.
    r = site.http.post("/report", data={**REPORT, "csrf": "x" * 32})
    assert r.status_code == 403


def test_html_and_script_in_a_report_are_rendered_harmless(site: Site) -> None:
    evil = "<script>alert(1)</script><img src=x onerror=alert(2)>'\""
    rid = site.submit(title=evil, description=evil, product=evil)["report_id"]
    cookie, _ = site.login("tom", "triager password 1")
    for page in (f"/triage/{rid}", "/triage"):
        r = site.http.get(page, headers={"cookie": cookie})
        assert r.status_code == 200
        assert "<script>" not in r.text and "<img" not in r.text
        assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "&lt;script&gt;" in site.http.get(f"/triage/{rid}", headers={"cookie": cookie}).text


def test_oversized_and_malformed_submissions_are_refused_with_413_and_400(site: Site) -> None:
    r = site.http.post(
        "/api/reports",
        content=b"{" + b" " * MAX_SUBMISSION + b"}",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    r = site.http.post("/api/reports", json={**REPORT, "description": "x" * (64 * 1024 + 1)})
    assert r.status_code == 413
    for bad in (
        b"{",
        b"[]",
        json.dumps({**REPORT, "x": 1}).encode(),
        json.dumps({**REPORT, "cvss": "CVSS:3.1/AV:N"}).encode(),
    ):
        r = site.http.post(
            "/api/reports", content=bad, headers={"content-type": "application/json"}
        )
        assert r.status_code == 400, (bad, r.text)
    r = site.http.post("/api/reports", content=b"title=x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert site.http.get("/api/reports").status_code == 405


def test_intake_and_login_are_rate_limited(rig: Rig, asgi_server: Callable[[Any], Any]) -> None:
    config = ServiceConfig(
        secure_cookies=False,
        intake_limit=RateLimit(per_minute=1, burst=2),
        login_limit=RateLimit(per_minute=1, burst=2),
    )
    url = asgi_server(DisclosureApp(rig.desk, config)).url
    with httpx.Client(base_url=url, timeout=30) as http:
        codes = [http.post("/api/reports", json=REPORT).status_code for _ in range(3)]
        assert codes == [201, 201, 429]
        codes = [
            http.post("/login", data={"username": "tom", "password": "guess " * 3}).status_code
            for _ in range(3)
        ]
        assert codes == [401, 401, 429]


def test_security_txt_psirt_key_and_csaf_directory_are_served(rig: Rig, site: Site) -> None:
    doc = parse_security_txt(site.http.get("/.well-known/security.txt").text)
    assert doc.encryption == ("https://psirt.example.com/.well-known/psirt-key",)
    assert doc.canonical and doc.policy and doc.contact
    key = site.http.get("/.well-known/psirt-key").text
    assert key.startswith("hpke DHKEM(X25519,HKDF-SHA256)")
    meta = site.http.get("/.well-known/csaf/provider-metadata.json")
    assert meta.status_code == 200 and meta.json()["role"] == "csaf_publisher"
    assert site.http.get("/.well-known/csaf/white/index.txt").text == ""
    assert site.http.get("/.well-known/csaf/white/2026/none.json").status_code == 404
    assert site.http.get("/stats").json()["reports"] == {}


def test_overdue_reports_are_alerted_in_the_server_log(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    late = rig.desk.submit(rig.submission()).report_id
    rig.clock.advance(6)
    app = DisclosureApp(rig.desk, ServiceConfig(secure_cookies=False))
    with caplog.at_level("WARNING", logger="overt.disclosure"):
        found = app.check_overdue()
    assert [o.report_id for o in found] == [late]
    assert f"overdue: report {late}: acknowledge" in caplog.text


def test_attachments_go_through_the_api_and_only_staff_see_them(site: Site) -> None:
    import base64

    poc = b"#!/bin/sh\necho pwned\n"
    intake = site.submit(attachments=[{"name": "poc.sh", "data": base64.b64encode(poc).decode()}])
    cookie, _ = site.login("tom", "triager password 1")
    view = site.http.get(f"/api/reports/{intake['report_id']}", headers={"cookie": cookie}).json()
    assert view["attachments"] == [{"name": "poc.sh", "size": len(poc)}]


def test_a_triager_cannot_pay_and_a_closed_session_is_refused(site: Site) -> None:
    rid = site.submit()["report_id"]
    cookie, csrf = site.login("tom", "triager password 1")
    r = site.http.post(f"/triage/{rid}/pay", data={"csrf": csrf}, headers={"cookie": cookie})
    assert r.status_code == 403
    r = site.http.post("/logout", data={"csrf": csrf}, headers={"cookie": cookie})
    assert r.status_code == 303 and "Max-Age=0" in r.headers["set-cookie"]
    assert site.http.get("/api/triage", headers={"cookie": cookie}).status_code == 401


def test_malformed_forms_are_refused_with_400(site: Site) -> None:
    cookie, csrf = site.login("tom", "triager password 1")
    rid = site.submit()["report_id"]
    for body in (
        f"to=acknowledged&to=fixed&csrf={csrf}".encode(),  # a repeated field
        b"to=\xff&csrf=" + csrf.encode(),  # not UTF-8
        f"to=nowhere&csrf={csrf}".encode(),  # not a state
    ):
        r = site.http.post(
            f"/triage/{rid}/transition",
            content=body,
            headers={"cookie": cookie, "content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 400, (body, r.text)


def test_random_input_never_causes_a_500(site: Site) -> None:
    import random

    rng = random.Random(12)
    cookie, csrf = site.login("tom", "triager password 1")
    rid = site.submit()["report_id"]
    targets = [
        ("POST", "/api/reports", "application/json"),
        ("POST", "/report", "application/x-www-form-urlencoded"),
        ("POST", "/track", "application/x-www-form-urlencoded"),
        ("POST", "/api/track/messages", "application/json"),
        ("POST", f"/api/reports/{rid}/transition", "application/json"),
        ("POST", f"/triage/{rid}/transition", "application/x-www-form-urlencoded"),
        ("PUT", "/api/bounty", "application/json"),
        ("POST", "/login", "application/x-www-form-urlencoded"),
    ]
    samples = [
        b"",
        b"{}",
        b"null",
        b'{"to": null}',
        b'{"text": 1}',
        b"a=b&a=c",
        b"%ff%fe=1",
        b"to=" + b"x" * 5000,
        json.dumps({**REPORT, "attachments": [{"name": 1, "data": "x"}]}).encode(),
        json.dumps({**REPORT, "researcher": "\u202e"}).encode(),
        b'{"title": "\\ud800"}',
    ]
    samples += [rng.randbytes(rng.randint(1, 300)) for _ in range(20)]
    headers = {"cookie": cookie, "x-csrf-token": csrf, "authorization": "Bearer x"}
    for method, path, ctype in targets:
        for body in samples:
            r = site.http.request(
                method, path, content=body, headers={**headers, "content-type": ctype}
            )
            assert r.status_code < 500, (path, body, r.status_code, r.text)


def test_odd_paths_and_methods_get_4xx(site: Site) -> None:
    cookie, _ = site.login("tom", "triager password 1")
    for method, path in [
        ("GET", "/api/reports/R-%00"),
        ("GET", "/api/reports/" + "x" * 2000),
        ("GET", "/.well-known/csaf/../../etc/passwd"),
        ("GET", "/osv/%2e%2e/site.json"),
        ("GET", "/triage/a/b/c/d"),
        ("DELETE", "/api/bounty"),
        ("PATCH", "/"),
        ("GET", "/triage/R-nope"),
        ("POST", "/triage/R-nope/nothing"),
    ]:
        r = site.http.request(method, path, headers={"cookie": cookie})
        assert 400 <= r.status_code < 500, (method, path, r.status_code)
