"""gbpfd check's runner: stages in their own process groups, bounded, one
JSON line each, a budget that stops starting stages, an exit that says
whether everything that ran passed."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from gbpfd.check import runner
from gbpfd.check.stage import Stage

FIXTURES = str(Path(__file__).resolve().parent)


def stage(name: str, target: str, timeout_s: float = 30, forms=("cuda", "sim")) -> Stage:
    return Stage(name, f"the {name} stage", timeout_s, f"stage_fixtures:{target}", forms)


def check(tmp_path, stages, budget_s: float = 120):
    out = tmp_path / "out"
    outcomes = runner.run_check(stages, "sim", out, budget_s, echo=io.StringIO(), env={"PYTHONPATH": FIXTURES})
    lines = [json.loads(line) for line in (out / runner.RECORD).read_text().splitlines()]
    return outcomes, lines, out


def test_a_stage_that_passes_records_its_figures_notes_and_output(tmp_path):
    outcomes, lines, out = check(tmp_path, [stage("ok", "ok")])
    (line,) = lines
    assert (line["stage"], line["status"], line["reason"], line["backend"]) == ("ok", "pass", None, "sim")
    assert line["figures"] == {"answer": {"value": 42, "unit": "units", "samples": 3}}
    assert line["notes"] == ["all well"]
    assert "measuring" in line["output_tail"]
    assert (out / "ok.txt").read_text() == "x"
    assert runner.passed(outcomes)


def test_a_hanging_stage_is_killed_at_its_bound_with_its_group_and_the_next_stage_runs(tmp_path):
    started = time.monotonic()
    outcomes, lines, _ = check(tmp_path, [stage("hang", "hang", timeout_s=3), stage("ok", "ok")])
    took = time.monotonic() - started
    assert [line["status"] for line in lines] == ["timeout", "pass"]
    assert lines[0]["reason"] == "killed after its bound of 3 s"
    assert lines[0]["output_tail"][-1] == "about to hang"
    # SIGTERM is ignored: the SIGKILL after the grace ends it, and the grandchild holding the pipe too
    assert took < 3 + 2 * runner.KILL_GRACE_S + 10
    assert not runner.passed(outcomes)


def test_a_crashing_stage_is_a_failure_naming_the_signal(tmp_path):
    outcomes, lines, _ = check(tmp_path, [stage("crash", "crash"), stage("ok", "ok")])
    assert [line["status"] for line in lines] == ["fail", "pass"]
    assert lines[0]["reason"] == "the stage's process was killed by SIGSEGV before it reported"
    assert "about to crash" in lines[0]["output_tail"]
    assert any("Fatal Python error" in line for line in lines[0]["output_tail"])   # faulthandler's dump


def test_a_failing_stage_says_why_and_a_skipping_one_does_not_fail_the_check(tmp_path):
    outcomes, lines, _ = check(tmp_path, [stage("fail", "fail"), stage("skip", "skip")])
    assert [(line["status"], line["reason"]) for line in lines] == [
        ("fail", "AssertionError: the device counted 2 admissions, expected 1"),
        ("skip", "needs a GPU: none here")]
    assert any("Traceback" in line for line in lines[0]["output_tail"])
    assert not runner.passed(outcomes)
    assert runner.passed(outcomes[1:])


def test_a_stage_without_a_form_for_the_backend_is_skipped_without_running(tmp_path):
    _, lines, _ = check(tmp_path, [stage("gpu", "crash", forms=("cuda",))])
    assert [(line["status"], line["reason"], line["output_tail"]) for line in lines] == [
        ("skip", "no sim form: this stage needs a GPU", [])]


def test_a_budget_too_small_for_the_last_stage_stops_starting_stages_and_says_so(tmp_path):
    outcomes, lines, _ = check(tmp_path, [stage("ok", "ok", timeout_s=5), stage("big", "ok", timeout_s=500),
                                          stage("after", "ok", timeout_s=1)], budget_s=60)
    assert [line["status"] for line in lines] == ["pass", "skip", "skip"]
    assert lines[1]["reason"].startswith("not started: ") and "of the 60 s budget left, and stage big may take " \
        "500 s" in lines[1]["reason"]
    assert lines[2]["reason"] == lines[1]["reason"]
    assert runner.passed(outcomes)


def test_the_table_lists_every_stage_with_its_status():
    outcomes = [runner.Outcome("env", "t", "sim", "pass", None, 1.25, 60),
                runner.Outcome("plane", "t", "sim", "timeout", "killed after its bound of 5 s", 5.0, 5)]
    assert runner.table(outcomes).splitlines() == [
        "stage  status   seconds  reason",
        "env    pass         1.2",
        "plane  timeout      5.0  killed after its bound of 5 s"]


def test_files_problem_counts_what_a_gpu_machine_would_not_send_back(tmp_path):
    for i in range(runner.MAX_FILES):
        (tmp_path / f"f{i}").write_text("")
    assert runner.files_problem(tmp_path) is None
    (tmp_path / "one-too-many").write_text("")
    assert runner.files_problem(tmp_path) == f"{tmp_path} holds 9 files; at most 8 come back from a GPU machine"


@pytest.mark.parametrize("field, value, message", [
    ("target", "no_colon", "Stage x: target must be 'module:function', got 'no_colon'"),
    ("timeout_s", 0, "Stage x: timeout_s must be positive, got 0"),
])
def test_a_stage_definition_is_checked(field, value, message):
    kwargs = {"name": "x", "title": "t", "timeout_s": 1, "target": "m:f", field: value}
    with pytest.raises(ValueError, match=f"^{message}$".replace("(", r"\(").replace(")", r"\)")):
        Stage(**kwargs)
