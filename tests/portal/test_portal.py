"""The portal's pages: readable with curl, searchable, and inert against hostile content."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from tests.portal.conftest import HOSTILE, PortalLog, make_portal_log

from overt.portal.app import Portal, PortalConfig


def _get(portal: Portal, path: str, method: str = "GET") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=portal)
        async with httpx.AsyncClient(transport=transport, base_url="http://portal") as client:
            return await client.request(method, path)

    return asyncio.run(go())


@pytest.fixture
def portal(portal_log: PortalLog) -> Portal:
    return Portal(PortalConfig(portal_log.dir, disclosure_url="http://127.0.0.1:9/"))


PAGES = ["/", "/entries", "/rules", "/releases", "/telemetry", "/disclosure", "/entries/1"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_html_with_a_strict_csp(portal: Portal, path: str) -> None:
    r = _get(portal, path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    # no inline script or style anywhere: only the portal's own module
    assert re.findall(r"<script[^>]*>", r.text) in (
        [],
        ['<script type="module" src="/static/portal.js">'],
    )
    assert " style=" not in r.text and " on" not in re.sub(
        r">[^<]*<", "><", r.text
    ).lower().replace(" one", "")


def test_log_page_shows_checkpoint_and_each_witness_cosignature(portal: Portal) -> None:
    text = _get(portal, "/").text
    assert "example.com/portal" in text and '<dd id="tree-size">6</dd>' in text
    for region in ("asia", "europe", "americas"):
        assert re.search(rf"<td>{region}</td><td class=\"ok\">valid</td>", text), region


def test_a_missing_cosignature_is_shown_on_the_log_page(portal_log: PortalLog) -> None:
    portal_log.cosign(("asia",))
    text = _get(Portal(PortalConfig(portal_log.dir)), "/").text
    assert '<td>europe</td><td class="bad">no cosignature</td>' in text


def test_entries_are_searchable_by_kind_product_version_and_digest(portal: Portal) -> None:
    import hashlib

    assert "agent-1.2.0.msi" in _get(portal, "/entries?kind=release").text
    assert "agent-1.2.0.msi" not in _get(portal, "/entries?kind=rule-bundle").text
    assert "1 matching" in _get(portal, "/entries?product=agent&version=1.2.0").text
    digest = hashlib.sha256(b"agent 1.2.0").hexdigest()
    hit = _get(portal, f"/entries?digest={digest}").text
    assert '<a href="/entries/1">1</a>' in hit and "1 matching" in hit
    assert "0 matching" in _get(portal, "/entries?digest=" + "0" * 64).text
    assert '<a href="/entries/2">' in _get(portal, "/entries?q=rules-7").text


def test_entry_page_shows_statement_steps_downloads_and_related(portal: Portal) -> None:
    text = _get(portal, "/entries/2").text
    assert "https://overt.dev/rule-bundle/v1" in text
    for step in (
        "leaf hash",
        "tile",
        "log signature",
        "cosignature asia",
        "witness quorum",
        "inclusion",
    ):
        assert f'<tr data-step="{step}"><th scope="row">{step}</th><td class="ok">pass' in text
    assert '<a href="/entries/3">3</a>' in text  # its audit
    proof = _get(portal, "/entries/2/proof")
    assert proof.content.startswith(b"c2sp.org/tlog-proof@v1\nindex 2\n")
    assert "attachment" in proof.headers["content-disposition"]
    assert _get(portal, "/entries/5/entry").content == HOSTILE.encode()
    assert len(_get(portal, "/entries/2/tile").content) == 6 * 32


def test_rule_bundle_page_shows_the_failed_audit(portal: Portal) -> None:
    text = _get(portal, "/rules").text
    assert "rules-7.yar" in text and 'class="bad">collection-audit: fail</a>' in text


def test_release_page_counts_evidence(portal: Portal) -> None:
    assert "agent-1.2.0.msi" in _get(portal, "/releases").text


@pytest.mark.parametrize("path", ["/", "/entries", "/entries/4", "/entries/5", "/releases"])
def test_hostile_entry_fields_are_rendered_as_text(portal: Portal, path: str) -> None:
    text = _get(portal, path).text
    assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;" in text or "&lt;img" in text or path == "/"


def test_hostile_telemetry_policy_text_is_rendered_as_text(
    portal_log: PortalLog, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text('{"note": "</pre><script>alert(1)</script>"}')
    text = _get(Portal(PortalConfig(portal_log.dir, telemetry_policy=policy)), "/telemetry").text
    assert "<script>alert" not in text and "&lt;/pre&gt;&lt;script&gt;" in text


def test_a_javascript_disclosure_url_is_refused(portal_log: PortalLog) -> None:
    from overt.errors import ConfigError

    with pytest.raises(ConfigError, match="not http"):
        Portal(PortalConfig(portal_log.dir, disclosure_url="javascript:alert(1)"))


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/entries/6", 404),
        ("/entries/01", 404),
        ("/nope", 404),
        ("/static/../app.py", 404),
        ("/entries/99999999999999999999", 404),
    ],
)
def test_bad_paths_are_client_errors_never_500(portal: Portal, path: str, status: int) -> None:
    assert _get(portal, path).status_code == status


def test_the_portal_is_read_only(portal: Portal) -> None:
    r = _get(portal, "/entries", method="POST")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


def test_an_unreadable_log_is_503_not_500(portal: Portal, portal_log: PortalLog) -> None:
    (portal_log.dir / "tiles" / "checkpoint").write_bytes(b"garbage")
    portal.config = PortalConfig(portal_log.dir, refresh=0.0)
    assert _get(portal, "/").status_code == 503


def test_new_entries_appear_after_a_refresh(portal_log: PortalLog) -> None:
    from overt.log.log import Log

    portal = Portal(PortalConfig(portal_log.dir, refresh=0.0))
    assert "0 matching" in _get(portal, "/entries?q=late").text
    with Log.open(portal_log.dir) as log:
        log.add_many([b"a late entry\n"])
    portal_log.cosign()
    assert "1 matching" in _get(portal, "/entries?q=late").text


def test_disclosure_statistics_come_from_the_logged_commitments(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from overt.disclosure.timeline import commitment_entry
    from overt.disclosure.workflow import State

    salt, t0 = b"s" * 32, datetime(2026, 11, 1, tzinfo=UTC)
    extra = [
        commitment_entry("example.com/psirt", salt, "R-1", State.RECEIVED, t0),
        commitment_entry(
            "example.com/psirt", salt, "R-1", State.ACKNOWLEDGED, t0 + timedelta(days=2)
        ),
    ]
    made = make_portal_log(tmp_path, extra)
    text = _get(Portal(PortalConfig(made.dir)), "/disclosure").text
    assert "1 report(s) received" in text
    assert "<tr><td>acknowledged</td><td>1</td><td>2.0</td></tr>" in text


def test_a_query_with_too_many_fields_is_400_not_500(portal: Portal) -> None:
    assert _get(portal, "/entries?" + "&".join(f"f{i}=1" for i in range(20))).status_code == 400


def _client_policy(made: PortalLog, path: Path) -> Path:
    policy = {
        "version": 1,
        "logs": [made.vkey],
        "witness_policy": (made.dir / "witnesses.policy").read_text(),
        "publisher": made.publisher,
        "pins": [{"product": "agent", "channels": ["stable"]}],
        "max_checkpoint_age": 86400,
        "rule_bundles": {
            "auditors": [made.publisher],
            "audits": ["collection-audit"],
            "min_auditors": 1,
        },
    }
    path.write_text(json.dumps(policy))
    return path


def test_the_gate_verdict_of_a_client_policy_is_shown(
    portal_log: PortalLog, tmp_path: Path
) -> None:
    config = PortalConfig(portal_log.dir, client_policy=_client_policy(portal_log, tmp_path / "p"))
    portal = Portal(config)
    releases = _get(portal, "/releases").text
    assert re.search(r'agent-1\.2\.0\.msi.*?<td class="ok">met</td>', releases, re.DOTALL)
    # The hostile release is refused by the pin check, its product name still inert text.
    assert re.search(r'<td class="bad">pin: product &#39;&lt;script&gt;[^<]*not pinned', releases)
    rules = _get(portal, "/rules").text
    assert '<td class="bad">audit: audit &#39;collection-audit&#39; signed off by 0' in rules


def test_a_statement_bundle_built_from_the_log_passes_the_gate(
    portal_log: PortalLog, tmp_path: Path
) -> None:
    import hashlib

    from overt.gate.policy import load_client_policy
    from overt.gate.verify import GateState, verify_publication

    portal = Portal(PortalConfig(portal_log.dir))
    r = _get(portal, "/entries/1/bundle")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    policy = load_client_policy(_client_policy(portal_log, tmp_path / "p"))
    admitted = verify_publication(
        hashlib.sha256(b"agent 1.2.0").digest(), r.content, policy, GateState(), time.time()
    )
    assert admitted
    assert _get(portal, "/entries/0/bundle").status_code == 404  # a text entry has none


RULES_8 = b"""rule emotet_loader {
    strings:
        $api = "VirtualAllocEx"
    condition:
        $api
}
"""
# A planted collection rule, with markup in its comment that must stay text.
RULES_9 = (
    RULES_8
    + b"""
// </pre><script>alert("rule")</script>
rule collect_us_banner {
    strings:
        $banner = "TOP SECRET//NOFORN" wide ascii nocase
    condition:
        $banner
}
"""
)


def test_a_rule_bundle_page_shows_findings_diff_and_inert_rule_text(tmp_path: Path) -> None:
    import hashlib

    from overt.formats.statement import RuleBundle
    from overt.publish.keys import generate_publisher_key
    from overt.publish.publisher import Publication, make_entry

    _, signer = generate_publisher_key("vendor.example/rules")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    extra = []
    for version, text in (("8", RULES_8), ("9", RULES_9)):
        (artifacts / f"rules-{version}.yar").write_bytes(text)
        bundle = RuleBundle("agent", "stable", "yara", version, text.count(b"rule "))
        digest = hashlib.sha256(text).hexdigest()
        extra.append(make_entry(signer, Publication(f"rules-{version}.yar", digest, bundle)))
    made = make_portal_log(tmp_path, extra)
    portal = Portal(PortalConfig(made.dir, artifacts=artifacts))
    assert '<a href="/rules/7">rules-9.yar</a>' in _get(portal, "/rules").text
    text = _get(portal, "/rules/7").text
    assert "collect_us_banner" in text and "NOFORN" in text  # the finding
    assert re.search(r"<li>\+ collect_us_banner \(rules-9\.yar:\d+\)</li>", text), text
    assert "side by side" in text
    assert "<script>alert" not in text and "&lt;/pre&gt;&lt;script&gt;alert" in text
    assert "not in this portal's artifacts folder" in _get(portal, "/rules/2").text
    assert _get(portal, "/rules/1").status_code == 404  # a release, not a rule bundle
    # A file changed after indexing is not passed off as the logged artifact.
    (artifacts / "rules-8.yar").write_bytes(b"rule other { condition: false }")
    assert "not in this portal's artifacts folder" in _get(portal, "/rules/6").text


def test_telemetry_access_statistics_flag_a_read_without_a_reason(
    portal_log: PortalLog, tmp_path: Path
) -> None:
    from overt.log.log import Log

    reads = [
        {"kind": "read", "customer": "acme", "actor": "a@vendor.example", "reason": HOSTILE},
        {"kind": "read", "customer": "acme", "actor": "b@vendor.example", "reason": ""},
    ]
    with Log.create(tmp_path / "access", "example.com/access") as log:
        log.add_many([json.dumps(r).encode() for r in reads])
    portal = Portal(PortalConfig(portal_log.dir, access_log=tmp_path / "access"))
    text = _get(portal, "/telemetry").text
    assert '<tr><td>acme</td><td>2</td><td class="bad">1</td><td>0</td></tr>' in text
    assert "<script>alert" not in text and "&lt;script&gt;alert" in text


def test_the_rules_page_charts_findings_over_time_from_the_logged_audits(tmp_path: Path) -> None:
    import hashlib

    from overt.formats.statement import RuleBundle
    from overt.publish.keys import generate_publisher_key
    from overt.publish.publisher import Publication, make_entry
    from overt.rules import audit_bundle_bytes
    from overt.rules.attest import make_attestation

    _, signer = generate_publisher_key("vendor.example/rules")
    extra = []
    for version, text in (("8", RULES_8), ("9", RULES_9)):
        digest = hashlib.sha256(text).hexdigest()
        bundle = RuleBundle("agent", "stable", "yara", version, text.count(b"rule "))
        extra.append(make_entry(signer, Publication(f"rules-{version}.yar", digest, bundle)))
        report = audit_bundle_bytes(f"rules-{version}.yar", text, dynamic=False)
        extra.append(make_attestation(f"rules-{version}.yar", text, report, signer).envelope)
    made = make_portal_log(tmp_path, extra)
    text = _get(Portal(PortalConfig(made.dir)), "/rules").text
    rows = re.findall(
        r"<tr><td>agent (\d+)</td><td>(\d+)</td><td class=\"(\w+)\">(\d+)</td></tr>", text
    )
    assert [(v, cls) for v, _, cls, _ in rows] == [("8", "ok"), ("9", "bad")], text
    assert int(rows[1][3]) >= 1 and text.count('<rect class="all"') == 2


def test_the_telemetry_policy_history_is_shown_as_diffs(tmp_path: Path) -> None:
    import hashlib

    from overt.formats.statement import Release
    from overt.publish.keys import generate_publisher_key
    from overt.publish.publisher import Publication, make_entry

    _, signer = generate_publisher_key("vendor.example/telemetry")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    extra = []
    for version, retention in (("1", 30), ("2", 90)):
        doc = json.dumps({"version": int(version), "retention_days": retention, "note": HOSTILE})
        (artifacts / f"policy-{version}.json").write_text(doc)
        digest = hashlib.sha256(doc.encode()).hexdigest()
        release = Release("overt-telemetry-policy", version, "acme", "any")
        extra.append(make_entry(signer, Publication("policy.json", digest, release)))
    made = make_portal_log(tmp_path, extra)
    text = _get(Portal(PortalConfig(made.dir, artifacts=artifacts)), "/telemetry").text
    assert '<span class="del">-  &#34;retention_days&#34;: 30,</span>' in text, text
    assert '<span class="add">+  &#34;retention_days&#34;: 90,</span>' in text
    assert "the first logged" in text and "<script>alert" not in text


def test_known_vulnerabilities_of_a_release_come_from_its_logged_sbom_scan(
    tmp_path: Path,
) -> None:
    import hashlib

    from overt.formats.statement import Release
    from overt.publish.keys import generate_publisher_key
    from overt.publish.publisher import Publication, make_entry
    from overt.sbom.verdict import (
        SBOM_PREDICATE,
        SCAN_PREDICATE,
        ScanVerdict,
        VulnerableComponent,
        sbom_digest,
    )

    _, signer = generate_publisher_key("vendor.example/releases")
    artifact = hashlib.sha256(b"agent 2.0.0").hexdigest()
    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}
    vulnerable = (VulnerableComponent("openssl", "3.0.1", "high", ("CVE-2022-0778",)),)
    verdict = ScanVerdict("ab" * 32, "2026-11-01T00:00:00Z", 3, "2026-11-26T00:00:00Z", "high",
                          vulnerable)  # fmt: skip
    release = Release("agent", "2.0.0", "stable", "windows")
    extra = [
        make_entry(signer, Publication("agent-2.0.0.msi", artifact, release)),
        make_entry(signer, Publication("agent-2.0.0.msi", artifact, (SBOM_PREDICATE, sbom))),
        make_entry(
            signer, Publication("sbom.json", sbom_digest(sbom), (SCAN_PREDICATE, verdict.to_json()))
        ),
    ]
    made = make_portal_log(tmp_path, extra)
    text = _get(Portal(PortalConfig(made.dir)), "/releases").text
    assert re.search(r'<td class="bad">high \(<a href="/entries/8">scan</a>\): openssl 3\.0\.1 '
                     r"high \(CVE-2022-0778\)</td>", text), text  # fmt: skip
    assert "<td>no SBOM logged</td>" in text  # agent 1.2.0 has none


def test_growth_covers_the_monitors_history_and_survives_a_restart(
    portal_log: PortalLog, tmp_path: Path
) -> None:
    events = tmp_path / "monitor.jsonl"
    lines = [
        {"event": "checkpoint", "origin": "example.com/portal", "size": n, "time": 1.75e9 + n}
        for n in (1, 3, 5)
    ]
    lines.append({"event": "checkpoint", "origin": "another.example/log", "size": 9, "time": 1.0})
    events.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"partial": ')
    state = tmp_path / "state"
    text = _get(Portal(PortalConfig(portal_log.dir, monitor_events=events, state=state)), "/").text
    assert "now 6 entries (4 samples)" in text, text  # the monitor's 1, 3, 5 and the portal's 6
    again = Portal(PortalConfig(portal_log.dir, state=state))
    assert "now 6 entries (4 samples)" in _get(again, "/").text
    assert len(again.index) == 6  # read back from the index file, not from the log again


def test_an_index_file_of_another_log_is_rebuilt(portal_log: PortalLog, tmp_path: Path) -> None:
    state = tmp_path / "state"
    _get(Portal(PortalConfig(portal_log.dir, state=state)), "/")
    other = make_portal_log(tmp_path / "other", [b"only in the other log\n"])
    portal = Portal(PortalConfig(other.dir, state=state))
    assert len(portal.index) == 0
    assert "1 matching" in _get(portal, "/entries?q=only+in+the+other").text
    assert len(portal.index) == 7  # the other log's entries only, not 6 more of the first


def test_without_state_the_partners_area_is_a_404_page_not_a_form(portal: Portal) -> None:
    for path in ("/partners", "/login"):
        r = _get(portal, path)
        assert r.status_code == 404 and "no partners&#39; area" in r.text
    assert _get(portal, "/login", method="POST").status_code == 404
