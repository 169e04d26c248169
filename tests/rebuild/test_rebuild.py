"""Reproducible rebuilds: a clean build matches or is a logged, explained mismatch.

Each test is named after the lie or mistake it stops.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from overt.cli import main as cli_main
from overt.formats.dsse import parse_envelope
from overt.formats.source_snapshot import parse_snapshot
from overt.formats.statement import parse_statement
from overt.formats.vsa import Vsa
from overt.log.log import Log
from overt.publish.bundle import parse_bundle
from overt.rebuild.build import clean_build
from overt.rebuild.compare import first_difference
from overt.rebuild.errors import BuildError
from overt.source.snapshot import snapshot_tree

ROOT = Path(__file__).resolve().parents[2]

# A small deterministic build: a zip of src/ with SOURCE_DATE_EPOCH as every member's time.
BUILD = """
import os, sys, time, zipfile
epoch = int(os.environ["SOURCE_DATE_EPOCH"])
when = time.gmtime(max(epoch, 315532800))[:6]
os.makedirs("dist", exist_ok=True)
with zipfile.ZipFile("dist/app.zip", "w") as z:
    for name in sorted(os.listdir("src")):
        info = zipfile.ZipInfo("app/" + name, when)
        z.writestr(info, open("src/" + name, "rb").read())
    if "--stamp" in sys.argv:
        z.writestr(zipfile.ZipInfo("app/BUILD_INFO", when), "built at %f" % time.time())
"""


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = cli_main.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _size(log: Path) -> int:
    with Log.open(log) as opened:
        size: int = opened.size
        return size


@pytest.fixture
def release(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A project, its snapshot, its released zip (built once, published), two rebuilders."""
    w = tmp_path
    Log.create(w / "log", "rebuild.example/log").close()
    assert run(capsys, "publisher", "keygen", w / "vendor", "--name", "vendor.example")[0] == 0
    for who in ("r1", "r2"):
        assert (
            run(
                capsys, "review", "keygen", w / who, "--name", f"{who}.example", "--log", w / "log"
            )[0]
            == 0
        )
    p = w / "project"
    (p / "src").mkdir(parents=True)
    (p / "src" / "main.py").write_text("print('hello')\n")
    (p / "build.py").write_text(BUILD)
    assert run(capsys, "source", "snapshot", p, "--out", w / "snap")[0] == 0
    built = clean_build(
        parse_snapshot((w / "snap").read_bytes()), p, f"{sys.executable} build.py", "dist/*.zip"
    )
    (w / "app.zip").write_bytes(built.data)
    code, _, err = run(
        capsys, "publish", w / "app.zip", "--log", w / "log", "--key", w / "vendor", "--kind",
        "release", "--product", "app", "--version", "1.0.0",
    )  # fmt: skip
    assert code == 0, err
    return w


def _rebuild(
    capsys: pytest.CaptureFixture[str],
    w: Path,
    *extra: object,
    build: str = "build.py",
    key: str = "r1",
) -> tuple[int, str, str]:
    return run(
        capsys, "rebuild", w / "app.zip.overt", "--snapshot", w / "snap", "--source",
        w / "project", "--build", f"{sys.executable} {build}", "--output", "dist/*.zip",
        "--key", w / key, "--log", w / "log", *extra,
    )  # fmt: skip


def _vsa(path: Path) -> Vsa:
    statement = parse_statement(parse_envelope(parse_bundle(path.read_bytes()).entry).payload)
    return Vsa.from_json(statement.predicate)


def test_two_independent_rebuilds_match_and_log_passed_summaries(
    release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for who in ("r1", "r2"):
        code, out, err = _rebuild(capsys, release, "--out", release / f"{who}.vsa", key=who)
        assert code == 0, err
        assert "matches" in out
        vsa = _vsa(release / f"{who}.vsa")
        assert (
            vsa.passed
            and vsa.source_snapshot == parse_snapshot((release / "snap").read_bytes()).digest
        )


def test_embedded_timestamp_is_a_logged_mismatch_naming_the_member(
    release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (release / "project" / "stamp.py").write_text(BUILD.replace('"--stamp" in sys.argv', "True"))
    assert run(capsys, "source", "snapshot", release / "project", "--out", release / "snap")[0] == 0
    before = _size(release / "log")
    code, _, err = _rebuild(capsys, release, "--out", release / "bad.vsa", build="stamp.py")
    assert code == 1 and err.count("\n") == 1
    assert "app/BUILD_INFO" in err and "only in the rebuilt" in err, err
    assert _size(release / "log") == before + 1  # the FAILED summary is logged
    vsa = _vsa(release / "bad.vsa")
    assert not vsa.passed and vsa.difference is not None and "app/BUILD_INFO" in vsa.difference


@pytest.mark.parametrize(
    "case",
    ["fails", "hangs", "no-output", "outside", "absolute", "symlink-out", "source-changed",
     "other-artifact", "key-not-logged"],
)  # fmt: skip
def test_bad_rebuild_is_one_line_and_logs_nothing(
    case: str, release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = release
    project = w / "project"
    extra: list[object] = []
    build = "build.py"
    key = "r1"
    if case == "fails":
        (project / "fail.py").write_text("raise SystemExit('compiler exploded')\n")
        build = "fail.py"
    elif case == "hangs":
        (project / "hang.py").write_text("import time\ntime.sleep(60)\n")
        build, extra = "hang.py", ["--build-timeout", "1"]
    elif case == "no-output":
        (project / "nothing.py").write_text("pass\n")
        build = "nothing.py"
    elif case == "symlink-out":
        (project / "link.py").write_text(
            "import os\nos.makedirs('dist')\nos.symlink('/etc/hostname', 'dist/app.zip')\n"
        )
        build = "link.py"
    elif case == "source-changed":
        (project / "src" / "main.py").write_text("print('backdoor')\n")
    elif case == "other-artifact":
        (w / "other.zip").write_bytes(b"PK other")
        extra = ["--artifact", w / "other.zip"]
    elif case == "key-not-logged":
        Log.create(w / "log2", "other.example/log").close()
        run(capsys, "review", "keygen", w / "r3", "--name", "r3.example", "--log", w / "log2")
        key = "r3"
    if case in ("fails", "hangs", "no-output", "symlink-out"):
        run(capsys, "source", "snapshot", project, "--out", w / "snap")
    before = _size(w / "log")
    if case in ("outside", "absolute"):
        output = "../app.zip" if case == "outside" else "/etc/hostname"
        code, _, err = run(
            capsys, "rebuild", w / "app.zip.overt", "--snapshot", w / "snap", "--source", project,
            "--build", "true", "--output", output, "--key", w / key, "--log", w / "log",
        )  # fmt: skip
    else:
        started = time.monotonic()
        code, _, err = _rebuild(capsys, w, *extra, build=build, key=key)
        assert time.monotonic() - started < 30
    assert code == 1 and err.count("\n") == 1 and err.startswith("overt: "), err
    assert _size(w / "log") == before


# --- the comparison -------------------------------------------------------------------------


def _zip(members: dict[str, bytes], when: tuple[int, ...] = (2020, 1, 1, 0, 0, 0)) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, when), data)  # type: ignore[arg-type]
    return buf.getvalue()


def test_first_difference_names_the_member_and_the_bytes() -> None:
    a = _zip({"pkg/a.py": b"x = 1\n", "pkg/b.py": b"y = 1\n"})
    assert first_difference(a, a) is None
    b = _zip({"pkg/a.py": b"x = 1\n", "pkg/b.py": b"y = 2\n"})
    line = first_difference(a, b)
    assert line is not None and "pkg/b.py" in line and "byte 4" in line
    c = _zip({"pkg/a.py": b"x = 1\n", "pkg/b.py": b"y = 1\n"}, (2021, 1, 1, 0, 0, 0))
    line = first_difference(a, c)
    assert line is not None and "metadata" in line and "pkg/a.py" in line
    assert "byte 0" in (first_difference(b"abc", b"xbc") or "")


def test_tar_members_are_compared_too(tmp_path: Path) -> None:
    import tarfile

    def tar(data: bytes, mtime: int) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as t:
            info = tarfile.TarInfo("proj-1.0/setup.py")
            info.size, info.mtime = len(data), mtime
            t.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    line = first_difference(tar(b"a", 1), tar(b"a", 2))
    assert line is not None and "proj-1.0/setup.py" in line and "mtime" in line


def test_output_outside_the_build_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    snap = snapshot_tree(tmp_path)
    with pytest.raises(BuildError, match="outside"):
        clean_build(snap, tmp_path, "ln -s / out", "out/etc/hostname")


# --- the real case: overt's own wheel ----------------------------------------------------------


@pytest.mark.timeout(600)
def test_overts_own_wheel_rebuilds_bit_for_bit_on_other_paths_and_clocks(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    snap = snapshot_tree(ROOT, "HEAD")  # the committed tree, whatever the checkout holds
    src = tmp_path / "src"
    src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", snap.git_commit or "HEAD"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    command = f"{sys.executable} -m pip wheel --no-deps --quiet -w dist ."
    try:
        first = clean_build(snap, src, command, "dist/*.whl", timeout=300)
    except BuildError as err:
        if "Could not find a version" in str(err) or "NewConnectionError" in str(err):
            pytest.skip(f"no package index to fetch the build backend from: {err}")
        raise
    time.sleep(2.1)  # another clock: zip times have a 2 s resolution
    second = clean_build(snap, src, command, "dist/*.whl", timeout=300)  # another temp path
    assert first.name == second.name and first.name.startswith("dist/overt-")
    assert first.data == second.data, first_difference(first.data, second.data)
    with zipfile.ZipFile(io.BytesIO(first.data)) as z:
        assert "overt/source/snapshot.py" in z.namelist()


def test_the_clean_copy_carries_source_date_epoch_not_the_checkout_clock(tmp_path: Path) -> None:
    # A build that archives file times (a plain tar) is reproducible from the clean copy.
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    snap = snapshot_tree(src)
    command = f"{sys.executable} -c \"import tarfile; t = tarfile.open('out.tar', 'w'); t.add('a.txt'); t.close()\""
    first = clean_build(snap, src, command, "out.tar")
    (src / "a.txt").touch()  # another clock on the checkout
    time.sleep(1.1)
    second = clean_build(snap, src, command, "out.tar")
    assert first.data == second.data
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(first.data)) as t:
        assert t.getmember("a.txt").mtime == 315532800


def test_snapshot_with_a_file_below_a_symlink_cannot_make_a_rebuild_write_outside(
    tmp_path: Path,
) -> None:
    import hashlib

    from overt.errors import FormatError

    outside = tmp_path / "outside"
    outside.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    os.symlink(str(outside), src / "a")
    (outside / "b").write_text("planted\n")  # what the source directory shows through the link
    link = hashlib.sha256(str(outside).encode()).hexdigest()
    body = hashlib.sha256(b"planted\n").hexdigest()
    text = f"overt-source-snapshot/v1\n\n120000 {link} a\n100644 {body} a/b\n".encode()
    with pytest.raises(FormatError, match="below"):
        parse_snapshot(text)


#: six 1.16.0's sdist as PyPI serves it (https://pypi.org/project/six/1.16.0/#files).
SIX_SDIST = ROOT / "tests" / "data" / "sdist" / "six-1.16.0.tar.gz"
SIX_SHA256 = "1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926"


@pytest.mark.timeout(600)
def test_a_real_pypi_sdist_rebuilds_bit_for_bit(tmp_path: Path) -> None:
    import hashlib
    import tarfile

    data = SIX_SDIST.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SIX_SHA256
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        t.extractall(tmp_path, filter="data")
    src = tmp_path / "six-1.16.0"
    snap = snapshot_tree(src)
    command = f"{sys.executable} -m pip wheel --no-deps --quiet -w dist ."
    try:
        first = clean_build(snap, src, command, "dist/*.whl", timeout=300)
    except BuildError as err:
        if "Could not find a version" in str(err) or "NewConnectionError" in str(err):
            pytest.skip(f"no package index to fetch the build backend from: {err}")
        raise
    time.sleep(2.1)  # another clock; and another temporary path
    second = clean_build(snap, src, command, "dist/*.whl", timeout=300)
    assert first.name == "dist/six-1.16.0-py2.py3-none-any.whl"
    assert first.data == second.data, first_difference(first.data, second.data)
