"""Every example in README.md and docs/*.md runs, so the documentation cannot drift from the code.

Fenced blocks are run by language:

- ```python: the blocks of one file run in order in one namespace, in a temporary directory;
- ```sh, ```bash: the blocks of one file run in order in one bash script (``set -euo pipefail``)
  in a temporary directory, with this venv's ``overt`` first on the PATH;
- ```console: the ``$ `` lines run the same way; a command whose shown output starts with
  ``overt:`` (an error line) must fail, every other command must succeed.

Anything else (```text, ```json, ...) is only read. A page that starts a server shows how:
``overt ... serve ... &`` in the background, wait for it, stop it with ``kill``; every
``127.0.0.1:PORT`` of a page is replaced by a free port, and whatever a page leaves running
is killed when it ends. Each page is bounded in time.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
SHELL = ("sh", "bash", "console")
TIMEOUT = 240  # seconds per page

_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_ADDRESS = re.compile(r"127\.0\.0\.1:([0-9]{2,5})")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text("utf-8")
    return [
        Block(page, text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
        for m in _FENCE.finditer(text)
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_free_ports(code: str, ports: dict[str, int]) -> str:
    def sub(m: re.Match[str]) -> str:
        return f"127.0.0.1:{ports.setdefault(m.group(1), _free_port())}"

    return _ADDRESS.sub(sub, code)


def _console_script(block: Block) -> str:
    """The ``$ `` commands of a console block; a command shown failing must fail."""
    out: list[str] = []
    lines = block.code.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        command = lines[i][2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        i += 1
        shown = lines[i] if i < len(lines) else ""
        if shown.startswith("overt: "):
            out.append(f"if {command}; then echo 'expected to fail: {command}' >&2; exit 1; fi")
        else:
            out.append(command)
    return "\n".join(out) + "\n"


def _pages_with(langs: tuple[str, ...]) -> list[Path]:
    return [page for page in PAGES if any(b.lang in langs for b in blocks(page))]


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_pages_were_found() -> None:
    assert ROOT / "README.md" in PAGES
    assert _pages_with(("python",)) and _pages_with(SHELL)


def test_the_speed_table_is_the_one_make_bench_writes() -> None:
    # One table of figures (docs/speed.md), generated from bench/results/*.json: a figure
    # edited by hand, or results committed without the table, fail here.
    code = "from bench.__main__ import render_table; print(render_table())"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    page = (ROOT / "docs" / "speed.md").read_text("utf-8")
    assert f"-->\n{run.stdout}<!-- bench:table end -->" in page, (
        "docs/speed.md's table is not what bench/results/*.json give: run `python -m bench --table`"
    )


def test_the_readme_links_every_page() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    unlinked = [
        p.name for p in PAGES if p.parent.name == "docs" and f"(docs/{p.name})" not in readme
    ]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attribute in parts[i:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(dotted)


def test_every_api_the_docs_name_exists() -> None:
    # Prose names APIs too (`overt.log.Log.create`): each must resolve, as the examples do.
    missing = []
    for page in PAGES:
        for m in re.finditer(r"`(overt(?:\.[A-Za-z_][A-Za-z0-9_]*)+)", page.read_text("utf-8")):
            try:
                _resolve(m.group(1))
            except (ImportError, AttributeError) as err:
                missing.append(f"{_id(page)}: {m.group(1)} ({err})")
    assert not missing, missing


def test_every_block_says_what_it_is() -> None:
    # A bare ``` fence would silently not run: mark what is not meant to run as ```text.
    bare = [b.where() for page in PAGES for b in blocks(page) if not b.lang]
    assert not bare, f"fenced blocks without a language: {bare}"


@pytest.mark.timeout(TIMEOUT + 30)
@pytest.mark.parametrize("page", _pages_with(("python",)), ids=_id)
def test_python_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    namespace: dict[str, object] = {"__name__": "__docs__"}
    ports: dict[str, int] = {}
    try:
        for block in blocks(page):
            if block.lang != "python":
                continue
            code = compile(_with_free_ports(block.code, ports), block.where(), "exec")
            try:
                exec(code, namespace)
            except Exception as err:
                raise AssertionError(f"the example at {block.where()} fails: {err!r}") from err
    finally:  # a server a failed example started is not left running
        for value in namespace.values():
            if isinstance(value, subprocess.Popen) and value.poll() is None:
                value.kill()
                value.wait()


@pytest.mark.timeout(TIMEOUT + 30)
@pytest.mark.parametrize("page", _pages_with(SHELL), ids=_id)
def test_shell_examples_run(page: Path, tmp_path: Path) -> None:
    ports: dict[str, int] = {}
    script = ["set -euo pipefail"]
    for block in blocks(page):
        if block.lang not in SHELL:
            continue
        code = _console_script(block) if block.lang == "console" else block.code
        script += [f"echo '### {block.where()}' >&2", _with_free_ports(code, ports)]
    if "curl " in "\n".join(script) and shutil.which("curl") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {_id(page)} uses curl, which is not installed")
        pytest.skip(f"{_id(page)} uses curl, which is not installed")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    log = tmp_path / "examples.log"  # a file, not a pipe: a server left running cannot hold it
    with log.open("w") as out:
        run = subprocess.Popen(
            ["bash", "-c", "\n".join(script)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: what it leaves behind is killed
        )
        try:
            returncode = run.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            returncode = -1
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    output = log.read_text(errors="replace")
    assert returncode != -1, f"{_id(page)}: examples still running after {TIMEOUT} s\n{output}"
    failed = [line for line in output.splitlines() if line.startswith("### ")]
    assert returncode == 0, (
        f"the example at {failed[-1][4:] if failed else _id(page)} fails "
        f"(exit {returncode}):\n{output[-4000:]}"
    )
