"""in-toto Statement v1 with overt's predicates, SLSA and CycloneDX entries, versions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overt.errors import FormatError
from overt.formats import statement as stmt_mod
from overt.formats.statement import (
    CYCLONEDX,
    KEY_SET,
    RELEASE,
    RULE_AUDIT,
    RULE_BUNDLE,
    SLSA_PROVENANCE,
    STATEMENT_TYPE,
    UPDATE,
    KeySet,
    Release,
    RuleAudit,
    RuleBundle,
    Update,
    format_statement,
    make_statement,
    parse_predicate,
    parse_statement,
    version_key,
)

DIGEST = "a" * 64


def test_exported_names() -> None:
    assert set(stmt_mod.__all__) == {
        "CYCLONEDX", "KEY_SET", "KINDS", "MAX_STATEMENT_SIZE", "RELEASE", "RULE_AUDIT", "RULE_BUNDLE",
        "SLSA_PROVENANCE", "STATEMENT_TYPE", "UPDATE", "KeySet", "Predicate", "Release",
        "RuleAudit", "RuleBundle", "Statement", "Subject", "Update", "format_statement", "make_statement",
        "parse_predicate", "parse_statement", "statement_from_json", "version_key",
    }  # fmt: skip


def test_predicate_type_uris_are_the_documented_ones() -> None:
    assert STATEMENT_TYPE == "https://in-toto.io/Statement/v1"
    assert (RELEASE, UPDATE, RULE_BUNDLE, KEY_SET) == (
        "https://overt.dev/release/v1",
        "https://overt.dev/update/v1",
        "https://overt.dev/rule-bundle/v1",
        "https://overt.dev/key-set/v1",
    )
    assert stmt_mod.__doc__ is not None
    for uri in (RELEASE, UPDATE, RULE_BUNDLE, KEY_SET, SLSA_PROVENANCE, CYCLONEDX):
        assert uri in stmt_mod.__doc__


@pytest.mark.parametrize(
    "predicate",
    [
        Release("agent", "1.2.3", "stable", "windows-x86_64"),
        Update("agent", "1.2.4", "beta", "1.2.0"),
        Update("agent", "1.2.4", "beta", None),
        RuleBundle("agent", "stable", "yara-x", "2024.5.1", 1200),
        KeySet(1, ("key-a", "key-b"), (), 1, None),
        KeySet(2, ("key-c",), ("key-a",), 2, "b" * 64),
        RuleAudit("no-espionage", "pass"),
        RuleAudit("no-espionage", "fail"),
    ],
)
def test_overt_predicates_round_trip(predicate: Any) -> None:
    s = make_statement("artifact.bin", DIGEST, predicate)
    data = format_statement(s)
    back = parse_statement(data)
    assert back == s
    assert parse_predicate(back) == predicate
    assert format_statement(back) == data
    assert back.subjects[0].sha256 == DIGEST
    assert back.kind is not None


def test_canonical_form_is_exact() -> None:
    s = make_statement("a", DIGEST, Release("p", "1", "c", "x"))
    assert format_statement(s) == (
        b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"channel":"c","platform":"x",'
        b'"product":"p","version":"1"},"predicateType":"https://overt.dev/release/v1",'
        b'"subject":[{"digest":{"sha256":"' + DIGEST.encode() + b'"},"name":"a"}]}'
    )


def _slsa() -> dict[str, Any]:
    # Shape of the SLSA v1 example (slsa.dev/spec/v1.0/provenance), trimmed.
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "pkg.tgz", "digest": {"sha256": DIGEST, "sha512": "b" * 128}}],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/tags/v1", "path": "r.yml"}},
                "resolvedDependencies": [{"uri": "git+https://github.com/o/r@refs/tags/v1"}],
            },
            "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
        },
    }


def test_slsa_provenance_is_accepted_as_opaque_and_round_trips_unknown_fields() -> None:
    obj = _slsa()
    obj["futureTopLevel"] = {"x": [1, 2, {"y": None}]}
    obj["subject"][0]["annotations"] = {"k": "v"}
    data = json.dumps(obj, indent=2).encode()
    s = parse_statement(data)
    assert s.predicate_type == SLSA_PROVENANCE
    assert parse_predicate(s) is None
    assert s.kind is None
    assert s.json == obj
    canonical = format_statement(s)
    assert json.loads(canonical) == obj  # nothing dropped, nothing added
    assert parse_statement(canonical) == s


@pytest.mark.parametrize("ptype", [CYCLONEDX, CYCLONEDX + "/v1.5", CYCLONEDX + "/v1.10"])
def test_cyclonedx_predicates_are_accepted(ptype: str) -> None:
    s = make_statement(
        "sbom.json", DIGEST, (ptype, {"bomFormat": "CycloneDX", "specVersion": "1.5"})
    )
    assert parse_statement(format_statement(s)).predicate["bomFormat"] == "CycloneDX"


def test_unknown_members_of_an_overt_predicate_round_trip() -> None:
    obj = json.loads(format_statement(make_statement("a", DIGEST, Update("p", "2", "c", None))))
    obj["predicate"]["release_notes"] = "https://example.com/notes"
    s = parse_statement(json.dumps(obj).encode())
    assert parse_predicate(s) == Update("p", "2", "c", None)
    assert (
        json.loads(format_statement(s))["predicate"]["release_notes"] == "https://example.com/notes"
    )


def _mutations() -> list[tuple[str, Any]]:
    def set_(path: list[Any], value: Any) -> Any:
        def go(o: dict[str, Any]) -> None:
            for p in path[:-1]:
                o = o[p]
            if value is KeyError:
                del o[path[-1]]
            else:
                o[path[-1]] = value

        return go

    return [
        ("_type", set_(["_type"], "https://in-toto.io/Statement/v0.1")),
        ("_type", set_(["_type"], KeyError)),
        ("subject", set_(["subject"], [])),
        ("subject", set_(["subject"], {"name": "a"})),
        ("name", set_(["subject", 0, "name"], "")),
        ("digest", set_(["subject", 0, "digest"], {})),
        ("hex", set_(["subject", 0, "digest", "sha256"], "A" * 64)),
        ("64", set_(["subject", 0, "digest", "sha256"], "a" * 63)),
        ("predicateType", set_(["predicateType"], "https://example.com/unknown/v1")),
        ("predicateType", set_(["predicateType"], 7)),
        ("predicate", set_(["predicate"], [])),
        ("product", set_(["predicate", "product"], "")),
        ("product", set_(["predicate", "product"], KeyError)),
        ("version", set_(["predicate", "version"], "01.2")),
        ("version", set_(["predicate", "version"], "1.2.3.4.5")),
        ("min_previous_version", set_(["predicate", "min_previous_version"], KeyError)),
        ("min_previous_version", set_(["predicate", "min_previous_version"], " 1")),
    ]


@pytest.mark.parametrize(("reason", "mutate"), _mutations())
def test_malformed_statements_are_refused(reason: str, mutate: Any) -> None:
    obj = json.loads(format_statement(make_statement("a", DIGEST, Update("p", "2", "c", "1"))))
    mutate(obj)
    with pytest.raises(FormatError, match=reason):
        parse_statement(json.dumps(obj).encode())


@pytest.mark.parametrize(
    ("predicate", "reason"),
    [
        (
            {"sequence": 0, "keys": ["a"], "revoked": [], "threshold": 1, "previous": None},
            "sequence",
        ),
        ({"sequence": 1, "keys": [], "revoked": [], "threshold": 1, "previous": None}, "no keys"),
        (
            {"sequence": 1, "keys": ["a", "a"], "revoked": [], "threshold": 1, "previous": None},
            "twice",
        ),
        (
            {"sequence": 2, "keys": ["a"], "revoked": ["a"], "threshold": 1, "previous": "b" * 64},
            "both",
        ),
        (
            {"sequence": 2, "keys": ["a"], "revoked": [], "threshold": 1, "previous": None},
            "previous",
        ),
        (
            {"sequence": 1, "keys": ["a"], "revoked": [], "threshold": 1, "previous": "b" * 64},
            "previous",
        ),
        (
            {"sequence": 2, "keys": ["a"], "revoked": [], "threshold": 1, "previous": "B" * 64},
            "previous",
        ),
        (
            {"sequence": 1, "keys": ["a"], "revoked": [], "threshold": 0, "previous": None},
            "threshold",
        ),
        (
            {"sequence": 1, "keys": ["a"], "revoked": [], "threshold": True, "previous": None},
            "threshold",
        ),
        ({"sequence": 1, "keys": ["a"], "revoked": [], "threshold": 1}, "previous"),
        ({"sequence": 1, "keys": "a", "revoked": [], "threshold": 1, "previous": None}, "keys"),
    ],
)
def test_malformed_key_sets_are_refused(predicate: dict[str, Any], reason: str) -> None:
    with pytest.raises(FormatError, match=reason):
        make_statement("keys", DIGEST, (KEY_SET, predicate))


def test_rule_audit_result_is_pass_or_fail() -> None:
    for bad in ("PASS", "ok", "", None):
        with pytest.raises(FormatError, match="result"):
            make_statement("r", DIGEST, (RULE_AUDIT, {"audit": "a", "result": bad}))


def test_rule_count_must_be_a_non_negative_integer() -> None:
    for bad in (-1, 1.5, "3", None, False):
        body = {
            "product": "p",
            "channel": "c",
            "engine": "yara-x",
            "version": "1",
            "rule_count": bad,
        }
        with pytest.raises(FormatError, match="rule_count"):
            make_statement("r", DIGEST, (RULE_BUNDLE, body))


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"{}", b'{"_type":"x","_type":"y"}', b"\xff", b'{"a":Infinity}'],
)
def test_garbage_is_a_format_error(data: bytes) -> None:
    with pytest.raises(FormatError):
        parse_statement(data)


def test_every_truncation_is_refused() -> None:
    data = format_statement(make_statement("a", DIGEST, Update("p", "2", "c", "1")))
    for n in range(len(data)):
        with pytest.raises(FormatError):
            parse_statement(data[:n])


@pytest.mark.parametrize(
    "ordered",
    [
        ["0", "0.1", "0.9", "0.10", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
         "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1",
         "1.2", "1.10", "2.0.0.1", "10"],
    ],
)  # fmt: skip
def test_version_order_follows_semver_precedence(ordered: list[str]) -> None:
    keys = [version_key(v) for v in ordered]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_trailing_zero_components_are_equal() -> None:
    assert version_key("1.2") == version_key("1.2.0") == version_key("1.2.0.0")


@pytest.mark.parametrize(
    "bad",
    ["", "v1", "1.", ".1", "01", "1.02", "1..2", "1.2.3.4.5", "1-", "1-01", "1 ", "+1", "1-a..b"],
)
def test_bad_versions_are_refused(bad: str) -> None:
    with pytest.raises(FormatError):
        version_key(bad)


@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
    st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
)
def test_version_order_is_numeric_order(a: list[int], b: list[int]) -> None:
    va, vb = ".".join(map(str, a)), ".".join(map(str, b))
    pad = lambda x: x + [0] * (4 - len(x))  # noqa: E731
    assert (version_key(va) < version_key(vb)) == (pad(a) < pad(b))


def _update_json() -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(
        format_statement(make_statement("a", DIGEST, Update("p", "2", "c", "1")))
    )
    return obj


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["predicate", "version"], "9.9.9\n"),
        (["predicate", "min_previous_version"], "1.0\n"),
        (["subject", 0, "digest", "sha256"], "a" * 63 + "\n"),
        (["subject", 0, "digest", "sha512"], "ab\n"),
        (["predicateType"], "https://cyclonedx.org/bom/v1.5\n"),
        (["predicateType"], "https://cyclonedx.org/bom\n"),
    ],
)
def test_trailing_newline_is_refused_in_every_checked_field(
    path: list[str | int], value: str
) -> None:
    obj = _update_json()
    target: Any = obj
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    with pytest.raises(FormatError):
        parse_statement(json.dumps(obj).encode())


def test_trailing_newline_is_refused_in_versions_and_key_set_links() -> None:
    with pytest.raises(FormatError):
        version_key("9.9.9\n")
    body = {"sequence": 2, "keys": ["a"], "revoked": [], "threshold": 1, "previous": "b" * 63}
    body["previous"] = "b" * 63 + "\n"
    with pytest.raises(FormatError, match="previous"):
        make_statement("keys", DIGEST, (KEY_SET, body))
