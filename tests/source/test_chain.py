"""The whole chain: snapshot -> reviews -> release with provenance -> rebuilds -> gate.

The gate's source requirement is checked offline from the bundle; each refusal names the
first unmet requirement. Each test is named after the shortcut it stops.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from overt.cli import main as cli_main
from overt.log.log import Log

BUILD = """
import os, sys, time, zipfile
when = time.gmtime(int(os.environ["SOURCE_DATE_EPOCH"]))[:6]
os.makedirs("dist", exist_ok=True)
with zipfile.ZipFile("dist/app.zip", "w") as z:
    for name in sorted(os.listdir("src")):
        z.writestr(zipfile.ZipInfo("app/" + name, when), open("src/" + name, "rb").read())
    if "--stamp" in sys.argv:
        z.writestr(zipfile.ZipInfo("app/BUILD_INFO", when), str(time.time()))
"""


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli_main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return out


class Chain:
    def __init__(self, w: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.w, self.capsys = w, capsys
        Log.create(w / "log", "chain.example/log").close()
        lines = []
        for region in ("asia", "europe"):
            ok(capsys, "witness", "init", w / region, "--name", f"{region}.witness.example")
            vkey = ok(capsys, "witness", "vkey", w / region).strip()
            lines.append(f"witness {region} {vkey}")
        (w / "witnesses.policy").write_text(
            "\n".join([*lines, "group regions 2 asia europe", "quorum regions"]) + "\n"
        )
        ok(capsys, "publisher", "keygen", w / "vendor", "--name", "vendor.example")
        for who in ("alice", "bob", "r1", "r2"):
            ok(capsys, "review", "keygen", w / who, "--name", f"{who}.example", "--log", w / "log")
        p = w / "project"
        (p / "src").mkdir(parents=True)
        (p / "src" / "main.py").write_text("print('hello')\n")
        (p / "src" / "util.py").write_text("X = 1\n")
        (p / "build.py").write_text(BUILD)

    @property
    def witness_args(self) -> list[object]:
        w = self.w
        return ["--unsafe-local-witness", w / "asia" / "witness.skey",
                "--unsafe-local-witness", w / "europe" / "witness.skey"]  # fmt: skip

    def release(self, version: str, *, source: bool = True) -> Path:
        w, capsys = self.w, self.capsys
        ok(capsys, "source", "snapshot", w / "project", "--out", w / f"{version}.snap")
        from overt.formats.source_snapshot import parse_snapshot
        from overt.rebuild.build import clean_build

        snap = parse_snapshot((w / f"{version}.snap").read_bytes())
        built = clean_build(snap, w / "project", f"{sys.executable} build.py", "dist/*.zip")
        art = w / f"app-{version}.zip"
        art.write_bytes(built.data)
        extra: list[object] = ["--source", w / f"{version}.snap"] if source else []
        ok(capsys, "publish", art, "--log", w / "log", "--key", w / "vendor", "--kind", "release",
           "--product", "app", "--version", version, *extra, *self.witness_args)  # fmt: skip
        return art

    def review(self, who: str, version: str, *extra: object) -> Path:
        out = self.w / f"{who}-{version}.review"
        ok(self.capsys, "review", "record", self.w / f"{version}.snap", "--key", self.w / who,
           "--files", "*", "--verdict", "pass", "--thoroughness", "high", "--log", self.w / "log",
           "--out", out, *extra)  # fmt: skip
        return out

    def rebuild(self, who: str, version: str, build: str = "build.py") -> tuple[int, Path]:
        out = self.w / f"{who}-{version}.vsa"
        code, _, _ = run(self.capsys, "rebuild", self.w / f"app-{version}.zip.overt",
                         "--snapshot", self.w / f"{version}.snap", "--source", self.w / "project",
                         "--build", f"{sys.executable} {build}", "--output", "dist/*.zip",
                         "--key", self.w / who, "--log", self.w / "log", "--out", out)  # fmt: skip
        return code, out

    def policy(self, **source: object) -> Path:
        w = self.w
        req = {
            "reviewers": [(w / "alice.pub").read_text().strip(), (w / "bob.pub").read_text().strip()],
            "min_reviewers": 2, "min_coverage": 100, "max_open_severity": "high",
            "rebuilders": [(w / "r1.pub").read_text().strip(), (w / "r2.pub").read_text().strip()],
            "min_rebuilders": 2,
        }  # fmt: skip
        req.update(source)
        with Log.open(w / "log") as log:
            vkey = log.vkey
        policy = {
            "version": 1, "logs": [vkey], "witness_policy_file": "witnesses.policy",
            "publisher": (w / "vendor.pub").read_text().strip(),
            "pins": [{"product": "app", "channels": ["stable"]}], "max_checkpoint_age": 86400,
            "source": req,
        }  # fmt: skip
        (w / "policy.json").write_text(json.dumps(policy))
        return w / "policy.json"

    def evidence(self, version: str, *bundles: Path) -> Path:
        out = self.w / f"app-{version}.full.overt"
        ok(self.capsys, "source", "evidence", self.w / f"app-{version}.zip.overt", "--add",
           *bundles, "--log", self.w / "log", "--out", out, *self.witness_args)  # fmt: skip
        return out

    def verify(self, version: str, bundle: Path) -> tuple[int, str]:
        code, out, err = run(self.capsys, "verify", self.w / f"app-{version}.zip", "--bundle",
                             bundle, "--policy", self.policy_path)  # fmt: skip
        return code, out + err

    policy_path: Path


@pytest.fixture
def chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Chain:
    c = Chain(tmp_path, capsys)
    c.policy_path = c.policy()
    return c


def test_reviewed_and_reproduced_release_is_admitted(chain: Chain) -> None:
    chain.release("1.0.0")
    reviews = [chain.review("alice", "1.0.0"), chain.review("bob", "1.0.0")]
    rebuilds = [chain.rebuild(who, "1.0.0") for who in ("r1", "r2")]
    assert all(code == 0 for code, _ in rebuilds)
    full = chain.evidence("1.0.0", *reviews, *(p for _, p in rebuilds))
    code, text = chain.verify("1.0.0", full)
    assert code == 0, text


def test_release_without_the_evidence_is_refused_naming_what_is_missing(chain: Chain) -> None:
    chain.release("1.0.0")
    alice = chain.review("alice", "1.0.0")
    code, text = chain.verify("1.0.0", chain.evidence("1.0.0", alice))
    assert code == 1 and "source: reviewers:" in text and "1 of the 2" in text, text
    bob = chain.review("bob", "1.0.0")
    code, text = chain.verify("1.0.0", chain.evidence("1.0.0", alice, bob))
    assert code == 1 and "source: rebuild: reproduced by 0 of the 2" in text, text


def test_release_without_provenance_is_refused(chain: Chain) -> None:
    chain.release("1.0.0", source=False)
    code, text = chain.verify("1.0.0", chain.w / "app-1.0.0.zip.overt")
    assert code == 1 and "source: provenance:" in text, text


def test_changed_file_is_unreviewed_and_the_gate_refuses_with_the_reason(chain: Chain) -> None:
    chain.release("1.0.0")
    old = [chain.review("alice", "1.0.0"), chain.review("bob", "1.0.0")]
    (chain.w / "project" / "src" / "util.py").write_text("X = 2  # changed\n")
    chain.release("1.1.0")
    rebuilds = [chain.rebuild(who, "1.1.0")[1] for who in ("r1", "r2")]
    code, text = chain.verify("1.1.0", chain.evidence("1.1.0", *old, *rebuilds))
    assert code == 1 and "source: coverage:" in text and "src/util.py" in text, text


def test_open_high_finding_is_refused(chain: Chain) -> None:
    chain.release("1.0.0")
    reviews = [
        chain.review("alice", "1.0.0"),
        chain.review("bob", "1.0.0", "--finding", "high:src/util.py:1:hard-coded secret"),
    ]
    rebuilds = [chain.rebuild(who, "1.0.0")[1] for who in ("r1", "r2")]
    code, text = chain.verify("1.0.0", chain.evidence("1.0.0", *reviews, *rebuilds))
    assert code == 1 and "source: findings: open high finding at src/util.py:1" in text, text


def test_non_reproducible_build_is_a_mismatch_the_gate_refuses(chain: Chain) -> None:
    chain.release("1.0.0")
    reviews = [chain.review("alice", "1.0.0"), chain.review("bob", "1.0.0")]
    code, good = chain.rebuild("r1", "1.0.0")
    assert code == 0
    code, bad = chain.rebuild("r2", "1.0.0", build="build.py --stamp")  # embeds its clock
    assert code == 1
    code, text = chain.verify("1.0.0", chain.evidence("1.0.0", *reviews, good, bad))
    assert code == 1 and "source: rebuild:" in text and "mismatch" in text, text
    assert "app/BUILD_INFO" in text


def test_reviews_by_keys_the_policy_does_not_name_do_not_count(chain: Chain) -> None:
    chain.release("1.0.0")
    reviews = [chain.review("alice", "1.0.0"), chain.review("r1", "1.0.0")]  # r1: not a reviewer
    rebuilds = [chain.rebuild(who, "1.0.0")[1] for who in ("r1", "r2")]
    code, text = chain.verify("1.0.0", chain.evidence("1.0.0", *reviews, *rebuilds))
    assert code == 1 and "1 of the 2 required reviewers" in text, text


def test_evidence_naming_the_wrong_log_index_is_refused(
    chain: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    from overt.publish.bundle import format_bundle, parse_bundle

    chain.release("1.0.0")
    review = chain.review("alice", "1.0.0")
    bundle = parse_bundle(review.read_bytes())
    lying = dataclasses.replace(bundle, proof=dataclasses.replace(bundle.proof, index=0))
    review.write_bytes(format_bundle(lying))
    code, _, err = run(capsys, "source", "evidence", chain.w / "app-1.0.0.zip.overt", "--add",
                       review, "--log", chain.w / "log", *chain.witness_args)  # fmt: skip
    assert code == 1 and "entry 0 of the log is not the statement given for it" in err, err


def test_coverage_of_a_release_reads_the_snapshot_its_bundle_carries(
    chain: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    chain.release("1.0.0")
    review = chain.review("alice", "1.0.0")
    vkey = chain.w / "log.vkey"
    with Log.open(chain.w / "log") as log:
        vkey.write_text(log.vkey)
    code, out, err = run(capsys, "review", "coverage", chain.w / "app-1.0.0.zip.overt",
                         "--reviews", review, "--vkey", vkey, "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["file_share"] == 100.0
    chain.release("2.0.0", source=False)
    code, _, err = run(capsys, "review", "coverage", chain.w / "app-2.0.0.zip.overt",
                       "--reviews", review, "--vkey", vkey)  # fmt: skip
    assert code == 1 and "carries no source snapshot" in err
