"""Reading bundles: includes and symlinks stay in the audited tree, reads are bounded,
no rules is an error, and every bundle form is accepted by audit, diff and attest alike."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from overt.cli.main import main
from overt.errors import ConfigError, FormatError
from overt.rules import audit_paths, format_json
from overt.rules import bundle as bundle_mod
from overt.rules.bundle import load_bundle, read_bundle, read_bundle_file
from overt.rules.diff import diff_paths

MARKED = b'rule marked { strings: $a = "NOFORN" condition: $a }\n'
SECRET = b"OVERT-LOG-TOKEN-0123456789abcdef"


def _tar(files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


# -- includes and symlinks ----------------------------------------------------------------


def test_include_of_system_files_and_a_token_is_a_finding_and_not_read(tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "token").write_bytes(SECRET)
    tree = tmp_path / "rules"
    tree.mkdir()
    (tree / "a.yar").write_bytes(
        b'include "/etc/passwd"\n'
        b'include "../../../../../proc/self/environ"\n'
        b'/* hidden */ include "../secret/token" rule a { condition: true }\n'
    )
    report = audit_paths([tree], dynamic=False)
    outside = sorted(f.evidence for f in report.findings if f.detector == "outside-tree")
    assert outside == ["../../../../../proc/self/environ", "../secret/token", "/etc/passwd"]
    assert (report.files, report.rules) == (1, 1)
    text = format_json(report)
    assert SECRET.decode() not in text and "root:" not in text


def test_symlink_out_of_the_tree_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "outside.yar").write_bytes(MARKED)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.yar").write_bytes(MARKED)
    tree = tmp_path / "rules"
    tree.mkdir()
    (tree / "ok.yar").write_bytes(b"rule ok { condition: true }")
    (tree / "link.yar").symlink_to(tmp_path / "outside.yar")
    (tree / "dirlink").symlink_to(tmp_path / "elsewhere")
    os.mkfifo(tree / "fifo.yar")  # a FIFO would block a naive read forever
    (tree / "loop").symlink_to(tree)  # a loop would recurse forever
    report = audit_paths([tree], dynamic=False)
    assert (report.files, report.rules) == (1, 1)
    assert not [f for f in report.findings if f.detector == "marking"]
    assert {f.path for f in report.findings if f.detector == "outside-tree"} == {
        "link.yar",
        "dirlink",
    }


def test_diff_reports_what_the_new_side_includes_out_of_its_tree(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "a.yar").write_bytes(b"rule a { condition: true }")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a.yar").write_bytes(
        b'include "../old/a.yar"\nrule a { condition: true }\nrule b { condition: true }'
    )
    d = diff_paths(tmp_path / "old", tmp_path / "new", dynamic=False)
    assert d.report is not None
    assert [(f.detector, f.evidence) for f in d.report.findings] == [
        ("outside-tree", "../old/a.yar")
    ]


def test_a_1_gib_rule_file_is_not_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.yar"
    with big.open("wb") as fh:
        fh.write(b'include "x.yar"\n')  # the include scan used to read the whole file
        fh.truncate(1024**3)
    (tmp_path / "x.yar").write_bytes(MARKED)
    small = tmp_path / "small"
    small.mkdir()
    (small / "x.yar").write_bytes(MARKED)
    # Peak memory after auditing a small tree, then after the 1 GiB one: reading the big
    # file whole would add a gibibyte; the auditor's own working set is not the point.
    code = (
        "import resource, sys\n"
        "from overt.rules import audit_paths\n"
        "audit_paths([sys.argv[2]], dynamic=False)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "r = audit_paths([sys.argv[1]], dynamic=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base,"
        " sorted((f.path, f.detector) for f in r.findings))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), str(small)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    grown_kib, findings = proc.stdout.split(" ", 1)
    assert int(grown_kib) < 256 * 1024, grown_kib
    assert "('big.yar', 'unauditable')" in findings and "('x.yar', 'marking')" in findings


def test_attest_reads_a_bundle_file_with_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle_mod, "MAX_ARCHIVE_BYTES", 1000)
    (tmp_path / "big.tar.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 5000)
    with pytest.raises(ConfigError, match="larger than 1000 bytes"):
        read_bundle_file(tmp_path / "big.tar.gz")
    (tmp_path / "empty.yar").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty"):
        read_bundle_file(tmp_path / "empty.yar")
    huge = tmp_path / "huge.yar"  # a 1 GiB rule text: refused after 8 MiB + 1 bytes
    with huge.open("wb") as fh:
        fh.truncate(1024**3)
    start = time.monotonic()
    with pytest.raises(ConfigError, match=f"larger than {8 * 1024 * 1024} bytes"):
        read_bundle_file(huge)
    assert time.monotonic() - start < 1


# -- no rules is an error ------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["empty", "no-rule-files", "mistyped", "comments-only"])
def test_audit_of_an_empty_or_mistyped_folder_fails(
    tmp_path: Path, layout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "rules"
    target.mkdir()
    if layout == "no-rule-files":
        (target / "README.txt").write_text("rules go here")
    elif layout == "mistyped":
        target = tmp_path / "rulez"
    elif layout == "comments-only":
        (target / "c.yar").write_text("// nothing yet\n")
    assert main(["rules", "audit", "--static-only", str(target)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("overt: "), err
    assert "no rules" in err or "no .yar" in err or "no such file" in err


# -- one loader, every form ------------------------------------------------------------------


FILES = {"a.yar": MARKED, "sub/b.yar": b"rule b { condition: true }\n", "notes.txt": b"x"}


def _forms(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "folder"
    for name, data in FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    out = {"folder": folder}
    for name, data in {
        "b.tar": _tar(FILES, "w"),
        "b.tar.gz": _tar(FILES),
        "b.zip": _zip(FILES),
        "b.bundle": _tar(FILES),  # recognised by its bytes, not its name
    }.items():
        (tmp_path / name).write_bytes(data)
        out[name] = tmp_path / name
    return out


def test_audit_diff_and_attest_accept_every_bundle_form(tmp_path: Path) -> None:
    forms = _forms(tmp_path)
    for label, path in forms.items():
        assert load_bundle(path).sources == {"a.yar": MARKED, "sub/b.yar": FILES["sub/b.yar"]}
        report = audit_paths([path], dynamic=False)
        assert (report.files, report.rules) == (2, 2), label
        assert [f.detector for f in report.findings] == ["marking"], label
        if label != "folder":  # an archive is audited as the bytes that were published
            assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
            assert read_bundle_file(path) == path.read_bytes()
    d = diff_paths(forms["folder"], forms["b.tar.gz"], dynamic=False)
    assert d.changes == []


def test_cli_audit_of_a_tar_gz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _forms(tmp_path)["b.tar.gz"]
    assert main(["rules", "audit", "--static-only", "--format", "json", str(path)]) == 1
    assert json.loads(capsys.readouterr().out)["rules"] == 2


@pytest.mark.parametrize(
    ("member", "why"),
    [("../evil.yar", "leaves the bundle"), ("/etc/evil.yar", "leaves the bundle")],
)
@pytest.mark.parametrize("pack", ["tar", "zip"])
def test_archive_member_leaving_the_bundle_is_refused(member: str, why: str, pack: str) -> None:
    data = _tar({member: MARKED}) if pack == "tar" else _zip({member: MARKED})
    with pytest.raises(FormatError, match=why):
        read_bundle("b", data)


def test_archive_links_are_refused() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("token.yar")
        info.type = tarfile.SYMTYPE
        info.linkname = "/var/lib/overt/token"
        tf.addfile(info)
    with pytest.raises(FormatError, match="is a link"):
        read_bundle("b.tar", buf.getvalue())
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zi = zipfile.ZipInfo("token.yar")
        zi.external_attr = 0o120777 << 16
        zf.writestr(zi, "/var/lib/overt/token")
    with pytest.raises(FormatError, match="is a link"):
        read_bundle("b.zip", zbuf.getvalue())


def test_archive_with_too_many_members_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_mod, "MAX_ARCHIVE_MEMBERS", 10)
    for data in (
        _tar({f"n{i}.txt": b"" for i in range(11)}),
        _zip({f"n{i}": b"" for i in range(11)}),
    ):
        with pytest.raises(FormatError, match="more than 10 archive members"):
            read_bundle("b", data)


# -- the monitor's store ----------------------------------------------------------------------


def _publication(name: str, data: bytes) -> bytes:
    from overt.formats.dsse import PAYLOAD_TYPE_IN_TOTO, format_envelope, sign_envelope
    from overt.formats.statement import RuleBundle, format_statement, make_statement
    from overt.publish.keys import generate_publisher_key

    _, signer = generate_publisher_key("vendor.example")
    st = make_statement(
        name,
        hashlib.sha256(data).hexdigest(),
        RuleBundle("agent", "stable", "yara-x", "1.0.0", 1),
    )
    env = sign_envelope(PAYLOAD_TYPE_IN_TOTO, format_statement(st), [(signer.keyid, signer)])
    return format_envelope(env)


def test_rule_audit_store_does_not_follow_symlinks_out_of_the_store(tmp_path: Path) -> None:
    from overt.monitor.checks import make_check

    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "outside.yar").write_bytes(MARKED)
    (store / "bundle.yar").symlink_to(tmp_path / "outside.yar")
    check = make_check(f"rule-audit={store}")
    (alert,) = check.check(7, _publication("bundle.yar", MARKED))
    assert "not in the audit store" in alert.message
    (store / "bundle.yar").unlink()
    (store / "bundle.yar").write_bytes(MARKED)
    alerts = check.check(7, _publication("bundle.yar", MARKED))
    assert any("NOFORN" in a.message for a in alerts)


def test_rule_audit_of_a_hostile_archive_is_an_alert(tmp_path: Path) -> None:
    from overt.monitor.checks import make_check

    store = tmp_path / "store"
    store.mkdir()
    data = _tar({"../../escape.yar": MARKED})
    (store / "b.tar.gz").write_bytes(data)
    (alert,) = make_check(f"rule-audit={store}").check(3, _publication("b.tar.gz", data))
    assert "cannot be audited" in alert.message and "leaves the bundle" in alert.message


def test_a_symlink_given_on_the_command_line_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.yar").write_bytes(b'include "b.yar"\n' + MARKED)
    (tmp_path / "real" / "b.yar").write_bytes(b"rule b { condition: true }")
    (tmp_path / "link.yar").symlink_to(tmp_path / "real" / "a.yar")
    (tmp_path / "dirlink").symlink_to(tmp_path / "real")
    for given in (tmp_path / "link.yar", tmp_path / "dirlink"):
        report = audit_paths([given], dynamic=False)
        assert (report.files, report.rules) == (2, 2), given
        assert not [f for f in report.findings if f.detector == "outside-tree"]


def test_a_tar_header_bomb_is_refused_while_decompressing(monkeypatch: pytest.MonkeyPatch) -> None:
    # tarfile reads a PAX header whole: 20 MB of zeros (20 KB compressed) in one header.
    monkeypatch.setattr(bundle_mod, "MAX_ARCHIVE_BYTES", 50_000)
    monkeypatch.setattr(bundle_mod, "_HEADER_SLACK", 100_000)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("a.yar")
        info.pax_headers = {"comment": "0" * 20_000_000}
        info.size = len(MARKED)
        tf.addfile(info, io.BytesIO(MARKED))
    assert len(buf.getvalue()) < 50_000
    with pytest.raises(FormatError, match="expands beyond 50000 bytes"):
        read_bundle("bomb.tar.gz", buf.getvalue())
