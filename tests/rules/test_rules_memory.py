"""The audit's memory: two workers never hold a large rule file at once (issue 9).

yaramod's parse and yara-x's compile of a 1 MB rule file take ~40 MB each; the
audit's peak is the sum of the workers' resident sets, so the sandbox sends
each file of ``HEAVY_BYTES`` or more alone and starts one only when no other
worker holds one, while the other workers take the small files.
"""

from __future__ import annotations

import random

import pytest

from overt.rules import _sandbox
from overt.rules._sandbox import HEAVY_BYTES, _jobs, _next


def _corpus(heavy: int, light: int) -> list[tuple[str, str]]:
    big = [(f"big{i}.yar", "x" * (HEAVY_BYTES + i)) for i in range(heavy)]
    small = [(f"s{i}.yar", "x" * (100 + i)) for i in range(light)]
    return big + small


@pytest.mark.parametrize("seed", range(20))
def test_two_workers_never_hold_two_heavy_files_at_once(seed: int) -> None:
    # The run loop's schedule, with the calls finishing in a random order.
    rng = random.Random(seed)
    todo = _jobs(_corpus(heavy=5, light=40), chunks=4)
    running: list[_sandbox._Job] = []
    done: list[str] = []
    alongside = 0  # light calls started while a heavy one ran
    while todo or running:
        while len(running) < 2:
            job = _next(todo, running)
            if job is None:
                break
            assert not (job.heavy and any(j.heavy for j in running))
            alongside += not job.heavy and any(j.heavy for j in running)
            running.append(job)
        finished = running.pop(rng.randrange(len(running)))
        done.extend(p for p, _t in finished.files)
    assert sorted(done) == sorted(p for p, _t in _corpus(heavy=5, light=40))
    assert alongside >= 1  # the other worker kept busy with the small files


def test_heavy_files_are_sent_alone_and_first() -> None:
    jobs = _jobs(_corpus(heavy=3, light=10), chunks=4)
    assert [j.heavy for j in jobs] == [True, True, True, False, False, False, False]
    assert all(len(j.files) == 1 for j in jobs if j.heavy)
    assert [j.files[0][0] for j in jobs[:3]] == ["big2.yar", "big1.yar", "big0.yar"]


def test_one_chunk_is_one_call_whatever_the_sizes() -> None:
    jobs = _jobs(_corpus(heavy=2, light=3), chunks=1)
    assert len(jobs) == 1 and len(jobs[0].files) == 5


def test_heavy_files_through_the_workers_all_come_back() -> None:
    rule = 'rule r{i} {{ strings: $a = "needle{i}" condition: $a }}\n'
    files = [
        (f"big{i}.yar", rule.format(i=i) + "// " + "x" * HEAVY_BYTES + "\n") for i in range(3)
    ] + [(f"s{i}.yar", rule.format(i=i)) for i in range(6)]
    out = _sandbox.run(
        {"op": "static", "depth": 200, "condition_tokens": 10000, "analyse": False},
        files,
        chunks=4,
    )
    assert out.failed == {}
    got = sorted(f["path"] for reply in out.replies for f in reply["files"])
    assert got == sorted(p for p, _t in files)


def test_a_worker_grown_past_the_bound_is_replaced_and_nothing_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A worker whose heap a large file left big is stopped after its call (what it kept
    # counted in every later call): with a bound of 0 bytes every call gets a new
    # worker, none is kept idle, and every file still comes back.
    monkeypatch.setattr(_sandbox, "RECYCLE_BYTES", 0)
    _sandbox.close()
    files = [(f"s{i}.yar", f'rule r{i} {{ strings: $a = "n{i}" condition: $a }}') for i in range(6)]
    request = {"op": "static", "depth": 200, "condition_tokens": 10000, "analyse": False}
    for _round in range(2):
        out = _sandbox.run(request, files, chunks=3)
        assert out.failed == {}
        assert sorted(f["path"] for r in out.replies for f in r["files"]) == sorted(
            p for p, _t in files
        )
        assert _sandbox._POOL.idle == []


def test_plyara_keeps_its_tables_and_starts_each_file_fresh() -> None:
    from overt.rules import parse

    first = 'rule a {\n strings:\n  $a = "one"\n condition:\n  $a\n}\n'
    second = '\n\nrule b {\n strings:\n  $b = "two" wide\n condition:\n  $b\n}\n'
    broken = 'rule c {\n strings:\n  $c = "unterminated\n'
    got = parse._parse_plyara(first, "a.yar")
    tables = parse._plyara_instance[1]
    with pytest.raises(Exception):  # noqa: B017 -- plyara's own error types
        parse._parse_plyara(broken, "c.yar")
    again = parse._parse_plyara(second, "b.yar")
    assert parse._plyara_instance[1] is tables  # the LALR tables were built once
    assert [(r.name, r.line, r.strings[0].line) for r in got] == [("a", 1, 3)]
    assert [(r.name, r.line, r.strings[0].line) for r in again] == [("b", 3, 5)]
    assert again[0].strings[0].modifiers == ("wide",)
