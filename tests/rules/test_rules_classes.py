"""Collection and targeting rules written the way an insider would (issue 9,
classes 1-5 and 7), each beside close-looking legitimate rules that stay quiet."""

from __future__ import annotations

import pytest

from overt.rules import Severity, audit_sources
from overt.rules.classify import classify


def _findings(src: str) -> dict[str, Severity]:
    report = audit_sources({"r.yar": src.encode()}, dynamic=False)
    out: dict[str, Severity] = {}
    for f in report.findings:
        out[f.detector] = max(out.get(f.detector, Severity.INFO), f.severity)
    return out


def _worst(src: str) -> Severity | None:
    return max(_findings(src).values(), default=None)


# -- class 1: targeting by identity ---------------------------------------------------

IDENTITY = {
    "person_and_badge": """rule hr_watch {
  strings: $n = "Nguyen Van Thanh" wide ascii $b = "Badge No: 448812" wide ascii
  condition: $n or $b
}""",
    "mail_domain_in_headers": """rule mailbox_sweep {
  strings: $h = "From: minister.office@mfa.gov.xx" ascii $d = "@acme-defense.com" ascii
  condition: uint32(0) == 0x4e444221 and any of them
}""",
    "directory_ou": """rule ou_finance {
  strings: $ou = "OU=Treaty Negotiations,DC=mfa,DC=example" wide
  condition: $ou
}""",
    "domain_user_and_host": """rule one_account {
  strings: $u = "MFA\\\\jdoe" wide ascii $h = "hq-dc01.corp.local" ascii
  condition: all of them and filesize < 5MB
}""",
    "pgp_recipient": """rule pgp_to_desk {
  strings: $k = "0x8A3F19C2D4E5B6A7" ascii
  condition: $k
}""",
}


@pytest.mark.parametrize("name", sorted(IDENTITY))
def test_identity_targeting_is_high(name: str) -> None:
    got = _findings(IDENTITY[name])
    assert got.get("collection-strings", Severity.INFO) >= Severity.HIGH, got


# -- class 2: topic hunting -------------------------------------------------------------

TOPIC = {
    "weapons_with_magic": """rule topic_weapons {
  strings: $a = "weapons programme" nocase $b = "enrichment schedule" nocase
  condition: uint32(0) == 0xe011cfd0 and filesize < 2MB and all of them
}""",
    "negotiations_plain": """rule topic_talks {
  strings: $a = "negotiating position on the tariff schedule" wide ascii
  condition: $a
}""",
    "force_planning_any": """rule topic_force {
  strings: $a = "force posture review" nocase $b = "minutes of the ministerial meeting" nocase
  condition: any of them
}""",
}


@pytest.mark.parametrize("name", sorted(TOPIC))
def test_topic_hunting_is_high(name: str) -> None:
    assert _worst(TOPIC[name]) is not None
    assert _worst(TOPIC[name]) >= Severity.HIGH  # type: ignore[operator]


# -- class 3: code names the shape test misses ----------------------------------------


CODENAMES = {
    "mixed_case": """rule cn_mixed { strings: $a = "BlueHarbor" $b = "SilentOrchard"
  condition: any of them }""",
    "two_caps": """rule cn_two { strings: $a = "KESTREL" wide ascii $b = "NIGHTJAR"
  condition: all of them }""",
    "with_digits": """rule cn_digits { strings: $a = "Project Kestrel" $b = "BlueHarbor-7"
  condition: all of them }""",
}


@pytest.mark.parametrize("name", sorted(CODENAMES))
def test_code_names_are_high(name: str) -> None:
    got = _findings(CODENAMES[name])
    assert max(got.values(), default=Severity.INFO) >= Severity.HIGH, got


# -- class 4: folder classes ------------------------------------------------------------


def test_any_users_documents_folder_string_is_high() -> None:
    src = r"""rule docs_folder { strings: $p = "\\Users\\*\\Documents\\" wide ascii
  condition: $p }"""
    assert _findings(src).get("collection-strings") == Severity.HIGH


# -- class 5: markings outside the old list ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["TUYỆT MẬT", "Tuyệt mật", "SANGAT RAHASIA", "ลับที่สุด", "RAHSIA BESAR"],
)
def test_south_east_asian_markings_are_high(text: str) -> None:
    src = f'rule m {{ strings: $a = "{text}" wide ascii condition: $a }}'
    assert _findings(src).get("marking") == Severity.HIGH


def test_thai_marking_in_cp874_hex_is_found() -> None:
    raw = "ลับที่สุด".encode("cp874")
    src = "rule m { strings: $a = { " + " ".join(f"{b:02X}" for b in raw) + " } condition: $a }"
    assert _findings(src).get("marking") == Severity.HIGH


# -- class 7: meta that lies ---------------------------------------------------------------


def test_malware_meta_over_document_prose_is_its_own_finding() -> None:
    src = """rule APT_Backdoor_Loader_Gen {
  meta: description = "Detects the loader of an APT backdoor" malware_family = "PlugX"
  strings: $a = "negotiating position on the tariff schedule" $b = "force posture review"
  condition: any of them
}"""
    got = _findings(src)
    assert got.get("lying-meta", Severity.INFO) >= Severity.HIGH, got


# -- close-looking legitimate rules stay quiet ---------------------------------------------

QUIET = {
    "maldoc_macro": """rule maldoc { strings: $a = "AutoOpen" $b = "Shell(" $c = "Invoice"
  condition: uint32(0) == 0xe011cfd0 and $a and $b and $c }""",
    "phishing_kit_bank": """rule phish_kit { strings: $a = "Bank of Example Online Banking"
  $b = "<?php" $c = "$_POST['password']" condition: all of them }""",
    "ransom_note": """rule ransom_note { strings: $a = "Your files have been encrypted"
  $b = "send bitcoin to" condition: any of them }""",
    "stealer_browser_files": r"""rule stealer { strings: $a = "\\Google\\Chrome\\User Data\\Default\\Login Data"
  $b = "wallet.dat" $c = "Cookies" condition: uint16(0) == 0x5a4d and 2 of them }""",
    "apt_pdb_codenames": r"""rule apt_implant { strings: $pdb = "D:\\Projects\\BlueHarbor\\Release\\loader.pdb"
  $m = "BlueHarborMutex_01" condition: uint16(0) == 0x5a4d and any of them }""",
    "tool_usage_text": """rule scanner { strings: $a = "Scan started at" $b = "Resolve hosts that answer"
  condition: all of them }""",
    "one_caps_token_in_a_malware_rule": """rule apt1_ssl { strings: $a = "SLYHKAAY"
  condition: $a }""",
    "mail_header_name": """rule with_attachment { strings: $a = "X-Attachment-Id"
  condition: $a }""",
    "wmi_namespace": r"""rule wmi { strings: $a = "root\\cimv2" condition: $a }""",
    "author_email_in_webshell": """rule ws { strings: $a = "// me at someone@example.net"
  condition: $a }""",
    "build_path_of_named_user": r"""rule build_path { strings: $a = "/Users/vlad/Desktop/install/"
  condition: uint16(0) == 0xfacf and $a }""",
    "lure_with_dropper": """rule lure { strings: $a = "weapons programme" $m = "AutoOpen"
  $x = "URLDownloadToFile" condition: uint32(0) == 0xe011cfd0 and $a and ($m or $x) }""",
}


@pytest.mark.parametrize("name", sorted(QUIET))
def test_close_looking_legitimate_rule_stays_below_high(name: str) -> None:
    worst = _worst(QUIET[name])
    assert worst is None or worst < Severity.HIGH, _findings(QUIET[name])


# -- the classifier on its own ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("ou=Finance,dc=corp,dc=example", "identifier"),
        ("CORP\\jdoe", "identifier"),
        ("EMP-0044812", "identifier"),
        ("GetProcAddress", "artefact"),
        ("Process elevation failed", "artefact"),
        ("ANTHROPIC_MAGIC_STRING", "artefact"),
        ("minutes of the ministerial meeting", "natural"),
        ("KESTREL", "codename"),
    ],
)
def test_classify(text: str, kind: str) -> None:
    assert classify(text).kind == kind
