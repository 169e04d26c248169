"""Build a source snapshot in a clean copy with a fixed environment.

:func:`clean_build` checks every file of the snapshot in the source directory (by
SHA-256: a tree that is not the snapshot is refused before anything runs), copies
exactly those files into a fresh temporary directory (whose path differs on every
run: builds must not depend on it), and runs the build command there with:

- ``SOURCE_DATE_EPOCH`` from the snapshot (the commit time; 315532800, 1980-01-01,
  the earliest a zip can hold, for a snapshot without one), ``TZ=UTC``,
  ``LC_ALL=C.UTF-8``, ``PYTHONHASHSEED=0``, ``umask 022``, ``HOME`` an empty
  directory of its own;
- ``PATH`` and the network settings a build may need (``PIP_*``, proxies) passed
  through, nothing else of the caller's environment;
- every copied file and directory timestamped ``SOURCE_DATE_EPOCH``;
- a timeout, after which the build's whole process group is killed.

The output is named relative to the build directory (a glob matching one file is
allowed, e.g. ``dist/*.whl``) and must stay inside it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from overt.formats.source_snapshot import Snapshot
from overt.rebuild.errors import BuildError, BuildTimeoutError, SourceMismatchError

__all__ = ["BuiltOutput", "build_env", "clean_build", "copy_snapshot"]

#: 1980-01-01T00:00:00Z: the earliest time a zip member can carry.
DEFAULT_EPOCH = 315532800
_PASS = ("PATH", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


@dataclass(frozen=True)
class BuiltOutput:
    """The output of a clean build: its bytes, digest and name (relative to the build)."""

    name: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def build_env(snapshot: Snapshot, home: Path) -> dict[str, str]:
    """The fixed environment of a build (see the module notes)."""
    env = {k: v for k, v in os.environ.items() if k in _PASS or k.startswith("PIP_")}
    env.update(
        SOURCE_DATE_EPOCH=str(
            snapshot.source_date_epoch if snapshot.source_date_epoch is not None else DEFAULT_EPOCH
        ),
        TZ="UTC",
        LC_ALL="C.UTF-8",
        PYTHONHASHSEED="0",
        HOME=str(home),
    )
    return env


def copy_snapshot(snapshot: Snapshot, source: Path, dest: Path) -> None:
    """Copy the snapshot's files from ``source`` to ``dest``, checking each one's digest.

    Raises:
        SourceMismatchError: a file missing from ``source`` or not the snapshot's bytes.
    """
    for f in snapshot.files:
        src = source / f.path
        out = dest / f.path
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if f.mode == "120000":
                target = os.readlink(src)
                data = os.fsencode(target)
            else:
                fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    data = b"".join(iter(lambda: os.read(fd, 1 << 20), b""))  # noqa: B023
                finally:
                    os.close(fd)
        except OSError as err:
            raise SourceMismatchError(str(source), f.path, err.strerror or "unreadable") from err
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise SourceMismatchError(str(source), f.path, "its SHA-256 is not the snapshot's")
        if f.mode == "120000":
            os.symlink(target, out)
        else:
            out.write_bytes(data)
            out.chmod(0o755 if f.mode == "100755" else 0o644)


def _set_times(root: Path, epoch: int) -> None:
    """Every copied file and directory gets the time ``epoch``: a build that archives file
    times (tar, zip without SOURCE_DATE_EPOCH support) then does not see the copy's clock."""
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def clean_build(
    snapshot: Snapshot,
    source: Path,
    command: str,
    output: str,
    timeout: float = 3600.0,
) -> BuiltOutput:
    """Build ``snapshot`` (from the files in ``source``) with ``command``; return ``output``.

    Raises:
        SourceMismatchError: ``source`` is not the snapshot; BuildError: the build
            failed, wrote no output (or several for a glob), or ``output`` leaves the
            build directory; BuildTimeoutError: it ran longer than ``timeout`` seconds.
    """
    if os.path.isabs(output) or ".." in Path(output).parts:
        raise BuildError(f"the output {output} is outside the build directory")
    with tempfile.TemporaryDirectory(prefix="overt-rebuild-") as tmp:
        root = Path(tmp) / "src"
        home = Path(tmp) / "home"
        root.mkdir()
        home.mkdir()
        copy_snapshot(snapshot, source, root)
        _set_times(root, int(build_env(snapshot, home)["SOURCE_DATE_EPOCH"]))
        log = Path(tmp) / "build.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command],
                cwd=root,
                env=build_env(snapshot, home),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                umask=0o022,
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise BuildTimeoutError(command, timeout) from None
            finally:
                if proc.poll() is None:  # pragma: no cover - interrupted
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if code != 0:
            tail = log.read_bytes()[-4000:].decode("utf-8", "replace").strip().splitlines()
            last = tail[-1] if tail else "(no output)"
            raise BuildError(f"the build failed with exit status {code}: {last}")
        found = sorted(glob.glob(output, root_dir=root))
        if len(found) != 1:
            what = "no file" if not found else f"{len(found)} files"
            raise BuildError(f"the build wrote {what} matching {output}")
        path = root / found[0]
        real = path.resolve()
        if not real.is_relative_to(root.resolve()) or not real.is_file():
            raise BuildError(f"the output {found[0]} is outside the build directory")
        data = real.read_bytes()
        shutil.rmtree(root, ignore_errors=True)
        return BuiltOutput(found[0], data)
