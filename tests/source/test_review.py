"""Reviews bound to file digests: recording, verifying, coverage across versions, diffs.

Each test is named after the lie or mistake it stops.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overt.cli import main as cli_main
from overt.errors import FormatError
from overt.formats.note import parse_vkey
from overt.formats.source_review import ReviewedFile, ReviewFinding, ReviewPredicate
from overt.formats.source_snapshot import FileEntry, Snapshot, format_snapshot
from overt.log.log import Log
from overt.source.review import (
    InvalidReviewError,
    ReviewError,
    coverage,
    diff_snapshots,
    make_review,
    verify_review,
)

A, B, C = "aa" * 32, "bb" * 32, "cc" * 32


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli_main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def world(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A log, two logged reviewers, and two snapshots: v2 changes b.py and adds c.py."""
    Log.create(tmp_path / "log", "review.example/log").close()
    for who in ("alice", "bob"):
        code, _, err = run(
            capsys, "review", "keygen", tmp_path / who, "--name", f"{who}.example/review",
            "--log", tmp_path / "log",
        )  # fmt: skip
        assert code == 0, err
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    (src / "b.py").write_text("b = 1\n")
    assert run(capsys, "source", "snapshot", src, "--out", tmp_path / "v1")[0] == 0
    (src / "b.py").write_text("b = 2\n")
    (src / "c.py").write_text("c = 3\n")
    assert run(capsys, "source", "snapshot", src, "--out", tmp_path / "v2")[0] == 0
    (tmp_path / "vkey").write_text(_log_vkey(tmp_path / "log"))
    capsys.readouterr()
    return tmp_path


def _log_vkey(log: Path) -> str:
    with Log.open(log) as opened:
        vkey: str = opened.vkey
        return vkey


def _size(log: Path) -> int:
    with Log.open(log) as opened:
        return opened.size


def _record(
    capsys: pytest.CaptureFixture[str], w: Path, who: str, snap: str, *extra: object
) -> tuple[int, str, str]:
    return run(
        capsys, "review", "record", w / snap, "--key", w / who, "--verdict", "pass",
        "--thoroughness", "high", "--log", w / "log", "--out", w / f"{who}-{snap}.overt", *extra,
    )  # fmt: skip


def _coverage(capsys: pytest.CaptureFixture[str], w: Path, snap: str, *extra: object) -> dict:  # type: ignore[type-arg]
    reviews = sorted(str(p) for p in w.glob("*.overt"))
    code, out, err = run(
        capsys, "review", "coverage", w / snap, "--reviews", *reviews, "--vkey", w / "vkey",
        "--json", *extra,
    )  # fmt: skip
    assert code == 0, err
    doc: dict = json.loads(out)  # type: ignore[type-arg]
    return doc


def test_two_reviewers_cover_every_file(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _size(world / "log")
    assert _record(capsys, world, "alice", "v1", "--files", "*.py")[0] == 0
    assert _record(capsys, world, "bob", "v1", "--files", "*.py")[0] == 0
    assert _size(world / "log") == before + 2  # the reviewer key sets were logged already
    doc = _coverage(capsys, world, "v1", "--min-reviewers", "2")
    assert doc["files"] == doc["files_reviewed"] == 2 and doc["file_share"] == 100.0
    assert len(doc["reviewers"]) == 2


def test_one_reviewer_twice_is_not_two_independent_reviewers(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _record(capsys, world, "alice", "v1", "--files", "a.py")
    run(capsys, "review", "record", world / "v1", "--key", world / "alice", "--verdict", "pass",
        "--thoroughness", "low", "--log", world / "log", "--out", world / "again.overt",
        "--files", "*.py")  # fmt: skip
    doc = _coverage(capsys, world, "v1", "--min-reviewers", "2")
    assert doc["files_reviewed"] == 0 and len(doc["reviewers"]) == 1


def test_changed_file_loses_its_reviews_and_unchanged_file_keeps_them(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _record(capsys, world, "alice", "v1", "--files", "*.py")
    doc = _coverage(capsys, world, "v2")
    assert doc["files"] == 3 and doc["files_reviewed"] == 1  # a.py, by digest
    assert doc["changed_since_reviewed"] == ["b.py"]
    assert doc["unreviewed"] == ["c.py"]
    code, out, _ = run(capsys, "review", "diff", world / "v1", world / "v2")
    assert code == 0 and out.splitlines() == ["A c.py", "M b.py"]


def test_coverage_under_the_required_share_fails(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _record(capsys, world, "alice", "v1", "--files", "a.py")
    code, out, err = run(
        capsys, "review", "coverage", world / "v2", "--reviews", world / "alice-v1.overt",
        "--vkey", world / "vkey", "--require", "50",
    )  # fmt: skip
    assert code == 1 and "under the required 50%" in err and "unreviewed: c.py" in out


def test_line_ranges_count_lines_not_files(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record(capsys, world, "alice", "v1", "--files", "a.py", "--lines", "a.py:1-5")
    doc = _coverage(capsys, world, "v1", "--source", world / "src-v1")
    assert doc["files_reviewed"] == 0 and doc["lines"] == 11 and doc["lines_reviewed"] == 5


@pytest.fixture(autouse=True)
def _v1_tree(request: pytest.FixtureRequest) -> None:
    if "world" not in request.fixturenames:
        return
    w: Path = request.getfixturevalue("world")
    (w / "src-v1").mkdir()
    (w / "src-v1" / "a.py").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    (w / "src-v1" / "b.py").write_text("b = 1\n")


def test_open_finding_stays_open_until_the_file_changes(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _record(
        capsys, world, "alice", "v1", "--files", "*.py", "--finding", "high:b.py:1:hard-coded b"
    )
    assert code == 0, err
    assert [f["path"] for f in _coverage(capsys, world, "v1")["open_findings"]] == ["b.py"]
    assert _coverage(capsys, world, "v2")["open_findings"] == []


@pytest.mark.parametrize(
    "extra",
    [
        ["--files", "nothing/*"],
        ["--files", "a.py", "--lines", "b.py:1-2"],
        ["--files", "a.py", "--finding", "low:b.py:1:not read"],
        ["--files", "a.py", "--lines", "a.py:1-5", "a.py:5-6"],
    ],
    ids=["no-such-file", "lines-outside", "finding-outside", "overlap"],
)
def test_review_of_files_not_in_the_snapshot_is_refused_and_logs_nothing(
    extra: list[str], world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _size(world / "log")
    code, _, err = _record(capsys, world, "alice", "v1", *extra)
    assert code == 1 and err.count("\n") == 1, err
    assert _size(world / "log") == before


def test_reviewer_key_not_logged_is_refused_and_logs_nothing(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Log.create(world / "other", "other.example/log").close()
    code, _, err = run(
        capsys, "review", "record", world / "v1", "--key", world / "alice", "--verdict", "pass",
        "--thoroughness", "high", "--log", world / "other", "--files", "*.py",
    )  # fmt: skip
    assert code == 1 and "not logged" in err and err.count("\n") == 1
    assert _size(world / "other") == 0
    # A publisher key (no reviewer chain) is no reviewer key either.
    (world / "pub").mkdir()
    run(capsys, "publisher", "keygen", world / "pub" / "k", "--name", "pub.example")
    (world / "pub" / "k.chain").unlink()
    code, _, err = run(
        capsys, "review", "record", world / "v1", "--key", world / "pub" / "k", "--verdict",
        "pass", "--thoroughness", "high", "--log", world / "log", "--files", "*.py",
    )  # fmt: skip
    assert code == 1 and "not a logged reviewer key" in err


def test_bad_arguments_are_usage_errors(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _record(capsys, world, "alice", "v1", "--files", "a.py", "--lines", "a.py:0-2")[0] == 2
    assert (
        _record(capsys, world, "alice", "v1", "--files", "a.py", "--finding", "x:a.py:1:t")[0] == 2
    )


# --- verification -----------------------------------------------------------------------------


def test_tampered_review_is_refused(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _record(capsys, world, "alice", "v1", "--files", "a.py")
    data = (world / "alice-v1.overt").read_bytes()
    verifier = parse_vkey((world / "vkey").read_text())
    review = verify_review(data, verifier)
    assert review.reviewer_name == "alice.example/review"
    payload: str = json.loads(data)["envelope"]["payload"]
    flipped = ("B" if payload[0] == "A" else "A") + payload[1:]  # another statement
    no_keyset = json.loads(data)
    no_keyset["keysets"] = []
    for bad in (
        data.replace(payload.encode(), flipped.encode()),
        data[:-10],
        json.dumps(no_keyset).encode(),
    ):
        with pytest.raises(InvalidReviewError):
            verify_review(bad, verifier)
    other = parse_vkey(_log_vkey_of_new_log(world))
    with pytest.raises(InvalidReviewError):
        verify_review(data, other)


def _log_vkey_of_new_log(w: Path) -> str:
    Log.create(w / "elsewhere", "review.example/log").close()
    return _log_vkey(w / "elsewhere")


# --- the pure core ----------------------------------------------------------------------------


def _snap(*files: tuple[str, str]) -> Snapshot:
    return Snapshot.of(FileEntry("100644", d, p) for p, d in files)


def test_review_predicate_round_trips_and_refuses_findings_on_unread_files() -> None:
    p = ReviewPredicate(
        "r+1+x", "concerns", "medium", (ReviewedFile("a", A, ((1, 2), (4, 9))),),
        (ReviewFinding("high", "a", A, 3, "bug"),),
    )  # fmt: skip
    assert ReviewPredicate.from_json(json.loads(json.dumps(p.to_json()))) == p
    with pytest.raises(FormatError):
        ReviewPredicate(
            "r", "pass", "low", (ReviewedFile("a", A),), (ReviewFinding("low", "b", B, 1, "x"),)
        )
    bad = p.to_json()
    for mutate in (
        lambda d: d.update(verdict="ok"),
        lambda d: d["files"][0].update(lines=[[2, 1]]),
        lambda d: d["files"][0].update(lines=[[1, 5], [3, 9]]),
        lambda d: d["files"][0].update(path="../a"),
        lambda d: d["files"][0].update(sha256=A.upper()),
        lambda d: d.update(extra=1),
        lambda d: d["findings"][0].update(line=True),
    ):
        doc = json.loads(json.dumps(bad))
        mutate(doc)
        with pytest.raises(FormatError):
            ReviewPredicate.from_json(doc)


def test_make_review_refuses_a_pattern_that_matches_nothing() -> None:
    with pytest.raises(ReviewError):
        make_review(_snap(("a", A)), "r", ["b*"], "pass", "low")


def test_diff_leaves_out_what_was_already_reviewed_elsewhere() -> None:
    old = _snap(("a", A), ("b", B))
    new = _snap(("a", A), ("b", C), ("moved", B))
    d = diff_snapshots(old, new)
    assert (d.added, d.changed, d.removed) == (("moved",), ("b",), ())
    assert diff_snapshots(old, new, reviewed={B}).to_read() == ("b",)


def test_zero_required_reviewers_is_not_a_pass() -> None:
    with pytest.raises(ReviewError):
        coverage(_snap(("a", A)), [], 0)


def test_snapshot_text_for_docs_round_trip() -> None:
    assert format_snapshot(_snap(("a", A))).startswith(b"overt-source-snapshot/v1\n\n")
