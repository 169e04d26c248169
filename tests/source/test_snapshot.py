"""Source snapshots: the canonical manifest, git and plain directories, and what is refused.

Each test is named after the lie or mistake it stops.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from overt.cli import main as cli_main
from overt.errors import FormatError
from overt.formats.source_snapshot import (
    FileEntry,
    Snapshot,
    format_snapshot,
    parse_snapshot,
)
from overt.log.log import Log
from overt.source.errors import DirtyTreeError, NotARepositoryError, RevisionError, SourceError
from overt.source.snapshot import snapshot_tree

_ENV = {
    "GIT_AUTHOR_NAME": "a",
    "GIT_AUTHOR_EMAIL": "a@example.com",
    "GIT_COMMITTER_NAME": "a",
    "GIT_COMMITTER_EMAIL": "a@example.com",
    "GIT_AUTHOR_DATE": "1700000000 +0000",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        check=True,
        env={**os.environ, **_ENV},
    )
    return out.stdout.decode().strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q")
    (r / "README").write_bytes(b"hi\n")
    (r / "src").mkdir()
    (r / "src" / "run.sh").write_bytes(b"#!/bin/sh\necho run\n")
    (r / "src" / "run.sh").chmod(0o755)
    (r / "src" / "caf\u00e9.py").write_text("x = 1\n")
    os.symlink("README", r / "link")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "first")
    return r


def _recompute(repo: Path, rev: str = "HEAD") -> list[tuple[str, str, str]]:
    """The manifest, recomputed independently with git's own plumbing."""
    rows = []
    for line in git(repo, "ls-tree", "-r", "--full-tree", "-z", rev).split("\0"):
        if not line:
            continue
        meta, path = line.split("\t", 1)
        mode, _, oid = meta.split()
        blob = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "blob", oid], capture_output=True, check=True
        ).stdout
        rows.append((mode, hashlib.sha256(blob).hexdigest(), path))
    return sorted(rows, key=lambda r: r[2].encode())


# --- the format ---------------------------------------------------------------------------


def _sample() -> Snapshot:
    return Snapshot.of(
        [
            FileEntry(
                "100644", "98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4", "b"
            ),
            FileEntry("100755", "ab" * 32, "a/x.sh"),
            FileEntry("120000", "cd" * 32, "a-link"),
        ],
        git_commit="1" * 40,
        git_tree="2" * 40,
        source_date_epoch=1700000000,
    )


def test_snapshot_round_trips_exactly() -> None:
    text = format_snapshot(_sample())
    assert parse_snapshot(text) == _sample()
    assert format_snapshot(parse_snapshot(text)) == text
    plain = Snapshot.of(_sample().files)
    assert parse_snapshot(format_snapshot(plain)) == plain


def test_the_digest_is_the_sha256_of_the_text_anyone_can_recompute() -> None:
    assert _sample().digest == hashlib.sha256(format_snapshot(_sample())).hexdigest()
    text = format_snapshot(_sample()).decode()
    assert text.splitlines()[5:] == [
        "120000 " + "cd" * 32 + " a-link",  # '-' (0x2d) sorts before '/' (0x2f)
        "100755 " + "ab" * 32 + " a/x.sh",
        "100644 98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4 b",
    ]


def test_every_truncation_of_a_snapshot_is_refused() -> None:
    text = format_snapshot(_sample())
    for n in range(len(text)):
        try:
            parsed = parse_snapshot(text[:n])
        except FormatError:
            continue
        # A cut exactly after a manifest line is a smaller, still canonical snapshot.
        assert text[:n].endswith(b"\n") and parsed.digest != _sample().digest


@pytest.mark.parametrize(
    "bad",
    [
        b"overt-source-snapshot/v2\n\n",
        b"overt-source-snapshot/v1\n",
        b"overt-source-snapshot/v1\n\n100644 " + b"ab" * 32 + b" a",  # no final LF
        b"overt-source-snapshot/v1\r\n\r\n",
        b"overt-source-snapshot/v1\ngit-tree " + b"1" * 40 + b"\n\n",
        b"overt-source-snapshot/v1\nsource-date-epoch 01\n\n",
        b"overt-source-snapshot/v1\nsource-date-epoch -1\n\n",
        b"overt-source-snapshot/v1\nsource-date-epoch 1\ngit-commit "
        + b"1" * 40
        + b"\ngit-tree "
        + b"2" * 40
        + b"\n\n",
        b"overt-source-snapshot/v1\n\n100644 " + b"AB" * 32 + b" a\n",
        b"overt-source-snapshot/v1\n\n100664 " + b"ab" * 32 + b" a\n",
        b"overt-source-snapshot/v1\n\n100644  " + b"ab" * 32 + b" a\n",
        b"overt-source-snapshot/v1\n\n100644 " + b"ab" * 32 + b" b\n100644 " + b"ab" * 32 + b" a\n",
        b"overt-source-snapshot/v1\n\n100644 " + b"ab" * 32 + b" a\n100644 " + b"ab" * 32 + b" a\n",
        b"overt-source-snapshot/v1\n\n100644 " + b"ab" * 32 + b" ./a\n",
        b"overt-source-snapshot/v1\n\n100644 " + b"ab" * 32 + b" a/../../etc/passwd\n",
        b"overt-source-snapshot/v1\n\n100644 " + b"ab" * 32 + b" /etc/passwd\n",
        b"overt-source-snapshot/v1\n\n100644 " + b"ab" * 32 + b" a//b\n",
        b"overt-source-snapshot/v1\n\n100644 " + b"ab" * 32 + b" a\tb\n",
        b"overt-source-snapshot/v1\n\n100644 " + b"ab" * 32 + b" \xff\n",
        b"overt-source-snapshot/v1\n\n\n",
        # A symlink "a" and a file "a/b": a rebuild would write through the link.
        b"overt-source-snapshot/v1\n\n120000 "
        + b"ab" * 32
        + b" a\n100644 "
        + b"ab" * 32
        + b" a/b\n",
        b"overt-source-snapshot/v1\n\n100644 "
        + b"ab" * 32
        + b" a\n100644 "
        + b"ab" * 32
        + b" a-b\n100644 "
        + b"ab" * 32
        + b" a/b/c\n",
    ],
)
def test_non_canonical_snapshot_is_refused(bad: bytes) -> None:
    with pytest.raises(FormatError):
        parse_snapshot(bad)


# --- git ----------------------------------------------------------------------------------


def test_git_snapshot_matches_git_tree_and_an_independent_recomputation(repo: Path) -> None:
    snap = snapshot_tree(repo)
    assert snap.git_tree == git(repo, "rev-parse", "HEAD^{tree}")
    assert snap.git_commit == git(repo, "rev-parse", "HEAD")
    assert snap.source_date_epoch == 1700000000
    assert [(f.mode, f.sha256, f.path) for f in snap.files] == _recompute(repo)
    assert snap.by_path()["link"].sha256 == hashlib.sha256(b"README").hexdigest()


def test_modified_working_file_is_not_taken_for_the_committed_blob(repo: Path) -> None:
    committed = snapshot_tree(repo)
    (repo / "README").write_bytes(b"tampered\n")
    (repo / "src" / "run.sh").unlink()
    assert snapshot_tree(repo, allow_dirty=True) == committed
    assert snapshot_tree(repo, "HEAD") == committed  # a named revision: the tree is not checked


def test_old_revision_is_read_from_git_objects(repo: Path) -> None:
    first = snapshot_tree(repo)
    (repo / "README").write_bytes(b"second\n")
    git(repo, "commit", "-qam", "second")
    assert snapshot_tree(repo, "HEAD~1") == first
    assert snapshot_tree(repo).by_path()["README"].sha256 == hashlib.sha256(b"second\n").hexdigest()


def test_dirty_tree_is_refused_without_allow_dirty(repo: Path) -> None:
    (repo / "untracked.py").write_text("new\n")
    with pytest.raises(DirtyTreeError, match=r"untracked\.py"):
        snapshot_tree(repo)


def test_revision_that_does_not_exist_is_refused(repo: Path) -> None:
    for rev in ("nope", "--output=/tmp/x", "HEAD~5"):
        with pytest.raises(RevisionError):
            snapshot_tree(repo, rev)


def test_submodule_is_refused_not_silently_dropped(repo: Path, tmp_path: Path) -> None:
    sub = git(repo, "rev-parse", "HEAD")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{sub},vendored")
    git(repo, "commit", "-qm", "submodule")
    with pytest.raises(SourceError, match="submodule"):
        snapshot_tree(repo, "HEAD")


# --- plain directories ----------------------------------------------------------------------


def test_plain_directory_lists_files_modes_and_symlinks(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "x" / "y").mkdir(parents=True)
    (d / "x" / "y" / "f").write_bytes(b"f")
    (d / "run").write_bytes(b"r")
    (d / "run").chmod(0o755)
    (d / "empty").mkdir()
    os.symlink("/etc/passwd", d / "l")  # recorded as a link, never followed
    snap = snapshot_tree(d)
    assert snap.git_tree is None and snap.source_date_epoch is None
    assert [(f.mode, f.path) for f in snap.files] == [
        ("120000", "l"),
        ("100755", "run"),
        ("100644", "x/y/f"),
    ]
    assert snap.by_path()["l"].sha256 == hashlib.sha256(b"/etc/passwd").hexdigest()


def test_plain_directory_and_git_checkout_of_it_agree_on_files(repo: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "HEAD"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(plain)], input=archive, check=True)
    assert snapshot_tree(plain).files == snapshot_tree(repo).files


def test_non_utf8_file_name_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / os.fsdecode(b"bad\xff")).write_bytes(b"x")
    with pytest.raises(SourceError, match="cannot be in a manifest"):
        snapshot_tree(d)


def test_fifo_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    os.mkfifo(d / "pipe")
    with pytest.raises(SourceError, match="pipe"):
        snapshot_tree(d)


def test_revision_for_a_plain_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotARepositoryError):
        snapshot_tree(tmp_path, "HEAD")


# --- the command ----------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli_main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", ["not-a-repo", "bad-rev", "dirty", "missing-dir"], ids=lambda c: c)
def test_bad_source_is_one_line_and_logs_nothing(
    case: str, repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Log.create(tmp_path / "log", "source.example/log").close()
    assert run(capsys, "publisher", "keygen", tmp_path / "k", "--name", "src.example")[0] == 0
    plain = tmp_path / "plain"
    plain.mkdir()
    (repo / "dirt").write_text("x")
    args = {
        "not-a-repo": [plain, "--rev", "HEAD"],
        "bad-rev": [repo, "--rev", "v9.9"],
        "dirty": [repo],
        "missing-dir": [tmp_path / "absent"],
    }[case]
    code, _, err = run(
        capsys,
        "source",
        "snapshot",
        *args,
        "--out",
        tmp_path / "snap",
        "--publish",
        "--log",
        tmp_path / "log",
        "--key",
        tmp_path / "k",
    )
    assert code == 1 and err.count("\n") == 1 and err.startswith("overt: "), err
    assert not (tmp_path / "snap").exists()
    log = Log.open(tmp_path / "log")
    try:
        assert log.size == 0
    finally:
        log.close()


def test_snapshot_publish_logs_the_source_digest(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from overt.formats.dsse import parse_envelope
    from overt.formats.statement import parse_statement
    from overt.publish.bundle import parse_bundle

    Log.create(tmp_path / "log", "source.example/log").close()
    run(capsys, "publisher", "keygen", tmp_path / "k", "--name", "src.example")
    code, out, err = run(
        capsys, "source", "snapshot", repo, "--out", tmp_path / "snap", "--publish",
        "--log", tmp_path / "log", "--key", tmp_path / "k",
    )  # fmt: skip
    assert code == 0, err
    snap = parse_snapshot((tmp_path / "snap").read_bytes())
    assert f"source sha256:{snap.digest}" in out
    bundle = parse_bundle((tmp_path / "snap.overt").read_bytes())
    statement = parse_statement(parse_envelope(bundle.entry).payload)
    assert statement.subjects[0].sha256 == snap.digest
    assert statement.predicate["git_tree"] == snap.git_tree


def test_publish_without_out_is_a_usage_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "source", "snapshot", repo, "--publish")[0] == 2
