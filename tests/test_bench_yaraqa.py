"""How the rules bench runs yaraQA (``bench/_yaraqa.py``) and reads what it reports.

yaraQA itself is not needed: its output is recorded below, and a small simulated yaraQA tree
(the same ``main/core.py`` entry points, and a timer that fails without its sample data as the
real one does) stands in for it. The last test runs the real yaraQA when ``$YARAQA_DIR`` points
at a copy, and skips otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the bench package lives beside src/, not in it

from bench import _yaraqa  # noqa: E402

# Recorded: yaraQA 0.11.0 (a3aa7a3) on its own test/test-rule-pdb.yar and test-level1.yar
# (levels as numbers), and the example output in its README (older versions: level names).
RECORDED_0_11 = [
    {
        "rule": "Demo_Rule_1_Fullword_PDB",
        "id": "SM2",
        "issue": "The rule uses a PDB string with the modifier 'fullword' but it starts with two backslashes and thus the modifier could lead to a dysfunctional rule.",
        "element": {"name": "$s1", "value": "\\\\i386\\\\mimidrv.pdb", "type": "text"},
        "level": 2,
        "type": "logic",
        "recommendation": "Remove the 'fullword' modifier",
    },
    {
        "rule": "Demo_Rule_4_Condition_Never_Matches",
        "id": "CE1",
        "issue": "The rule uses a condition that will never match",
        "element": {"condition_segment": "2 of", "num_of_strings": 1},
        "level": 3,
        "type": "logic",
        "recommendation": "Fix the condition",
    },
    {
        "rule": "Demo_Rule_8_Noob_Rule",
        "id": "NO1",
        "issue": "The string uses 'ascii', 'wide' and 'nocase' modifier. Are you sure you know what you're doing.",
        "element": {"name": "$s1", "value": "Usage: %s --killprocess", "type": "text"},
        "level": 1,
        "type": "performance",
        "recommendation": "Limit the modifiers to what you actually find in the samples.",
    },
]
RECORDED_README = [
    {"rule": "Demo_Rule_1_Fullword_PDB", "id": "SM1", "level": "info", "type": "logic"},
    {"rule": "Demo_Rule_1_Fullword_PDB", "id": "SM2", "level": "warning", "type": "logic"},
    {"rule": "Demo_Rule_4_Condition_Never_Matches", "id": "CE1", "level": "error", "type": "logic"},
    {"rule": "Demo_Rule_5_Short_String", "id": "PA2", "level": "warning", "type": "performance"},
]


def test_issues_are_counted_by_level_type_and_id() -> None:
    levels, types, ids, flagged = _yaraqa.count(RECORDED_0_11)
    assert levels == {"info": 1, "warning": 1, "critical": 1}
    assert types == {"logic": 2, "performance": 1}
    assert ids == {"SM2": 1, "CE1": 1, "NO1": 1}
    assert flagged == 3


def test_older_yaraqa_level_names_count_as_the_same_levels() -> None:
    levels, _, ids, flagged = _yaraqa.count(RECORDED_README)
    assert levels == {"info": 1, "warning": 2, "critical": 1}
    assert ids["SM2"] == 1 and flagged == 3


@pytest.mark.parametrize("level", [0, 4, True, "severe", None, 2.0])
def test_a_level_yaraqa_does_not_define_is_refused(level: object) -> None:
    issue = dict(RECORDED_0_11[0], level=level)
    with pytest.raises(ValueError, match="level"):
        _yaraqa.count([issue])


def test_an_issue_without_a_level_is_refused() -> None:
    issue = {k: v for k, v in RECORDED_0_11[0].items() if k != "level"}
    with pytest.raises(ValueError, match="without 'level'"):
        _yaraqa.count([issue])


def test_the_summary_line_is_found_among_other_output() -> None:
    line = _yaraqa.MARK + (
        '{"files": 3, "refused": 1, "rules": 2, "flagged": 1, "levels": {"info": 0, '
        '"warning": 2, "critical": 0}, "types": {"logic": 2}, "ids": {"SM3": 2}, '
        '"live_timing": false, "peak_mb": 31.5}'
    )
    summary = _yaraqa.parse_summary(f"banner\n{line}\ntrailing noise\n")
    assert (summary.files, summary.refused, summary.rules, summary.issues) == (3, 1, 2, 2)
    assert not summary.live_timing
    note = _yaraqa.note(summary, "yaraQA 0.11.0 at a3aa7a368590", 1.25)
    assert "\n" not in note
    assert "3 files (1 refused by plyara), 2 rules; 2 issues on 1 rules" in note
    assert "critical=0, warning=2, info=0" in note and "1.2 CPU-s" in note
    assert "regex timing (PI1) off" in note


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "no mark here\n",
        _yaraqa.MARK + "{not json\n",
        _yaraqa.MARK + "[1, 2]\n",
        _yaraqa.MARK + '{"files": 1}\n',
    ],
)
def test_a_missing_or_broken_summary_is_a_clear_error(stdout: str) -> None:
    with pytest.raises(ValueError, match="summary"):
        _yaraqa.parse_summary(stdout)


def test_the_driver_reporting_it_cannot_run_is_not_run() -> None:
    with pytest.raises(_yaraqa.NotRunError, match="No module named 're2'"):
        _yaraqa.parse_summary(_yaraqa.MARK + '{"error": "No module named \'re2\'"}\n')


def _simulated_yaraqa(path: Path, *, sample: bool) -> Path:
    """A yaraQA tree with its entry points: one warning per rule; the timer needs the sample."""
    (path / "main").mkdir(parents=True)
    (path / "main" / "__init__.py").write_text("")
    (path / "main" / "core.py").write_text(
        textwrap.dedent(
            """
            import os

            class PerformanceTimer:
                # as yaraQA's: it opens the sample data at construction
                def __init__(self):
                    here = os.path.dirname(os.path.abspath(__file__))
                    open(os.path.join(here, "../test/data/react-os-strings.txt.zip"), "rb").close()
                    self.threshold = 1.0

            def calculate_rule_hash(rule):
                # as yaraQA's: the strings encoded as ASCII (anything else raises)
                return "".join(s["value"] for s in rule.get("strings", [])).encode("ascii")

            class YaraQA:
                def __init__(self):
                    self.performance_timer = PerformanceTimer()

                def analyze_rules(self, rule_sets):
                    return [
                        {"rule": r["rule_name"], "id": "SIM1", "level": 2, "type": "logic"}
                        for rules in rule_sets for r in rules
                    ]
            """
        )
    )
    (path / "yaraQA.py").write_text('__version__ = "0.0.sim"\n')
    if sample:
        (path / "test" / "data").mkdir(parents=True)
        (path / _yaraqa.SAMPLE).write_bytes(b"")
    return path


def _corpus(path: Path) -> Path:
    (path / "sub").mkdir(parents=True)
    (path / "good.yar").write_text("rule a { condition: true }\nrule b { condition: false }\n")
    (path / "sub" / "broken.yara").write_text("rule { condition: true }\n")  # plyara refuses it
    (path / "sub" / "latin1.yar").write_bytes(b"rule caf\xe9 { condition: true }\n")  # not UTF-8
    (path / "sub" / "empty.yar").write_text("// nothing here\n")  # skipped, as yaraQA does
    (path / "notes.txt").write_text("rule d { condition: true }\n")  # not a .yar name
    return path


def _drive(yaraqa: Path, corpus: Path) -> _yaraqa.Summary:
    proc = subprocess.run(
        [sys.executable, "-m", "bench._yaraqa", str(yaraqa), str(corpus)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return _yaraqa.parse_summary(proc.stdout)


def test_a_file_plyara_refuses_is_counted_and_the_rest_still_checked(tmp_path: Path) -> None:
    summary = _drive(_simulated_yaraqa(tmp_path / "yq", sample=True), _corpus(tmp_path / "rules"))
    assert (summary.files, summary.refused, summary.rules) == (4, 2, 2)
    assert summary.levels == {"info": 0, "warning": 2, "critical": 0}
    assert summary.ids == {"SIM1": 2} and summary.flagged == 2
    assert summary.live_timing


def test_a_rule_yaraqa_cannot_hash_is_counted_and_the_rest_still_checked(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "rules")
    (corpus / "quote.yar").write_text(
        'rule quote { strings: $a = "it\u2019s" condition: $a }\n', encoding="utf-8"
    )
    summary = _drive(_simulated_yaraqa(tmp_path / "yq", sample=True), corpus)
    assert (summary.files, summary.refused, summary.unhashable, summary.rules) == (5, 2, 1, 2)
    assert summary.issues == 2
    note = _yaraqa.note(summary, "sim", 0.1)
    assert "1 rules left out (its rule hash takes ASCII strings only)" in note


def test_without_the_sample_data_the_regex_timer_is_off_and_said_to_be(tmp_path: Path) -> None:
    summary = _drive(_simulated_yaraqa(tmp_path / "yq", sample=False), _corpus(tmp_path / "rules"))
    assert summary.rules == 2 and summary.issues == 2
    assert not summary.live_timing


def test_yaraqa_dir_without_yaraqa_is_not_run(tmp_path: Path) -> None:
    with pytest.raises(_yaraqa.NotRunError, match=r"YARAQA_DIR=.* holds no yaraQA"):
        _yaraqa.locate({"YARAQA_DIR": str(tmp_path)})
    row = _yaraqa.run([tmp_path], environ={"YARAQA_DIR": str(tmp_path)})
    assert row.note.startswith("not run: $YARAQA_DIR=") and "\n" not in row.note


def test_a_failed_clone_leaves_nothing_in_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "yaraQA"
    with pytest.raises(_yaraqa.NotRunError, match=r"cloning .* failed"):
        _yaraqa.locate({}, cache=cache, url=str(tmp_path / "no-such-repo"))
    assert not cache.exists() and not list(cache.parent.iterdir())


def test_a_clone_without_the_pinned_commit_is_not_cached(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _simulated_yaraqa(repo, sample=False)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t")
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "sim"]):
        subprocess.run(["git", "-C", str(repo), *cmd], env=env, check=True, capture_output=True)
    cache = tmp_path / "cache" / "yaraQA"
    with pytest.raises(_yaraqa.NotRunError, match="checking out a3aa7a368590 failed"):
        _yaraqa.locate({}, cache=cache, url=str(repo))
    assert not cache.exists()


def test_a_cached_copy_is_used_without_the_network(tmp_path: Path) -> None:
    cache = _simulated_yaraqa(tmp_path / "cache" / "yaraQA", sample=False)
    assert _yaraqa.locate({}, cache=cache, url="https://unreachable.invalid/yaraQA") == cache


@pytest.mark.skipif(not os.environ.get("YARAQA_DIR"), reason="$YARAQA_DIR: no copy of yaraQA")
def test_the_real_yaraqa_finds_its_own_demo_rules_faulty() -> None:
    yaraqa = _yaraqa.locate()
    summary = _drive(yaraqa, yaraqa / "test")
    assert summary.refused == 0 and summary.rules >= 20
    assert summary.ids.get("CE1", 0) >= 1  # Demo_Rule_4: "2 of" one string never matches
    assert summary.levels["critical"] >= 1


def test_a_yaraqa_whose_imports_are_missing_is_not_run(tmp_path: Path) -> None:
    yaraqa = _simulated_yaraqa(tmp_path / "yq", sample=False)
    core = yaraqa / "main" / "core.py"
    core.write_text("import no_such_module_yaraqa_needs\n" + core.read_text())
    row = _yaraqa.run([_corpus(tmp_path / "rules")], environ={"YARAQA_DIR": str(yaraqa)})
    assert row.note.startswith("not run: yaraQA cannot be imported: No module named")
    assert "\n" not in row.note
