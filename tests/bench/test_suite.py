"""gbpfd bench: every case runs at its quick size on the simulated device in
one process, the record holds what it says, the plots are drawn, and the
runner keeps going past a broken case."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gbpfd.bench import suite
from gbpfd.bench.case import Case, Target
from gbpfd.cli import main as cli

@pytest.fixture(scope="module")
def quick_record():
    return suite.run_suite([], backend="sim", quick=True, progress=False)


def test_every_shipped_case_runs_quick_on_the_simulated_device(quick_record):
    assert quick_record["simulated"] and quick_record["backend"] == "sim"
    assert set(quick_record["cases"]) == set(suite.discover())
    for name, case in quick_record["cases"].items():
        assert case["status"] in ("ok", "skipped"), (name, case.get("error"), case.get("traceback"))
        if case["status"] == "skipped":
            continue
        assert case["figures"], f"{name} reported no figure"
        assert case["simulated"] == (case["backend"] == "sim")
        for fname, f in case["figures"].items():
            assert set(f) == {"value", "unit", "samples"} and f["unit"], (name, fname)
        for fname, t in case["targets"].items():
            assert t["met"] is None if fname not in case["figures"] else isinstance(t["met"], bool), (name, fname)
    json.dumps(quick_record)  # a record is plain JSON


def test_a_record_names_where_and_from_what_it_was_made(quick_record):
    assert {"date", "commit", "tree_modified", "machine", "command", "backend_reason", "seconds"} <= set(quick_record)
    m = quick_record["machine"]
    assert m["gpu"] is None and m["host_cores"] >= 1 and "numba" in m["versions"]


def test_plots_are_drawn_for_cdfs_and_bars(quick_record, tmp_path):
    from gbpfd.bench.plots import draw_plots
    paths = draw_plots(quick_record, tmp_path / "run")
    assert any(p.name.endswith("reaction-cdf.png") for p in paths)
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p


def test_a_broken_case_is_recorded_and_the_others_still_run(tiny_bench):
    record = suite.run_suite([], backend="sim", quick=True, progress=False)
    cases = record["cases"]
    assert cases["broken"]["status"] == "error"
    assert cases["broken"]["error"] == "RuntimeError: the measurement broke"
    assert cases["good"]["status"] == "ok" and cases["good"]["params"] == {"n": 3}
    assert cases["good"]["targets"]["latency_p50"]["met"] is True
    assert cases["gpu_only"]["status"] == "skipped"
    assert cases["gpu_only"]["reason"] == "no sim form (it measures cuda)"


def test_the_cli_writes_the_record_apart_for_simulated_runs_and_fails_on_a_broken_case(tiny_bench, tmp_path,
                                                                                        capsys):
    assert cli(["bench", "good", "--backend", "sim", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    err = capsys.readouterr().err
    written = list((tmp_path / "sim").glob("*-sim-bench-quick.json"))
    assert len(written) == 1 and f"record: {written[0]}" in err
    assert {p.name.split("-bench-quick-")[1] for p in (tmp_path / "sim").glob("*.png")} == {"good-cdf.png",
                                                                                            "good-ratio.png"}
    assert cli(["bench", "good", "broken", "--backend", "sim", "--no-plots", "--out", str(tmp_path),
                "--no-progress"]) == 1
    assert "ERROR: RuntimeError: the measurement broke" in capsys.readouterr().out


def test_the_progress_bar_names_each_step(tiny_bench, capsys):
    suite.run_suite(["good"], backend="sim", quick=True)
    err = capsys.readouterr().err
    assert "good: measuring" in err and "[########################] 1/1" in err


@pytest.mark.parametrize("argv, message", [
    (["nosuch"], "no bench case 'nosuch'; the cases are broken, good, gpu_only"),
    (["good", "--set", "good.m=3"], "--set good.m: case good has no parameter 'm' (it has n)"),
    (["good", "--set", "good"], "--set 'good': expected CASE.PARAM=VALUE"),
    (["good", "--set", "other.n=3"], "--set 'other.n=3': no case 'other' (cases: broken, good, gpu_only)"),
    (["good", "--set", "good.n=abc"], "--set good.n=abc: n is an integer (default 100)"),
    (["good", "--set", "good.x=1.5"], "--set good.x: case good has no parameter 'x' (it has n)"),
    (["good", "--set", "good.n=2.5"], "--set good.n=2.5: n is an integer (default 100)"),
])
def test_bad_arguments_are_refused_before_anything_runs(tiny_bench, tmp_path, capsys, argv, message):
    assert cli(["bench", *argv, "--backend", "sim", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"gbpfd bench: {message}"
    assert not (tmp_path / "sim").exists()


def test_asking_for_the_gpu_without_one_is_refused(tiny_bench, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("gbpfd.plane.gpu_probe.gpu_missing_reason", lambda: "no CUDA driver or device was found")
    assert cli(["bench", "good", "--backend", "cuda", "--out", str(tmp_path)]) == 1
    assert "backend='cuda' needs a CUDA GPU: no CUDA driver or device was found" in capsys.readouterr().err


def test_list_names_every_case_with_its_sizes(tiny_bench, capsys):
    assert cli(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "good         [sim/cuda] a case that measures" in out and "n=100 (quick 3)" in out


def test_a_case_module_missing_declarations_is_refused(tiny_bench):
    (tiny_bench / "bench_bad.py").write_text("NAME = 'bad'\n")
    with pytest.raises(ValueError, match=r"bench_bad.py: a bench case must define TITLE, BACKENDS, PARAMS, "
                                         r"TARGETS, measure"):
        suite.discover()


def test_a_target_compares_as_declared():
    t = Target("x", "<=", 1.0, "<= 1", "a test")
    assert (t.met(1.0), t.met(1.01), t.met(None)) == (True, False, None)
    with pytest.raises(ValueError, match=r"Target x: op must be one of <, <=, >, >=, got '=='"):
        Target("x", "==", 1.0, "", "")


def test_a_case_runs_on_the_host_where_it_has_no_form_for_the_backend():
    import types
    module = types.SimpleNamespace(NAME="h", TITLE="t", BACKENDS=("host", "cuda"), PARAMS={}, TARGETS=(),
                                   measure=None, __name__="h")
    case = Case.from_module(module)
    assert (case.backend_for("cuda"), case.backend_for("sim")) == ("cuda", "host")


def test_docs_benchmarks_lists_every_shipped_case_with_its_title():
    page = (suite.REPO / "docs" / "benchmarks.md").read_text()
    for case in suite.discover(suite.REPO / "bench").values():
        assert f"| `{case.name}` | {case.title} |" in page, case.name


def test_a_case_past_its_time_limit_ends_the_run_and_the_record_says_which(tmp_path):
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "bench_first.py").write_text(
        'NAME, TITLE, BACKENDS, PARAMS, TARGETS = "first", "done", ("sim",), {}, ()\n'
        'def measure(run):\n    run.figure("x", 1, "ns", 1)\n')
    (folder / "bench_stuck.py").write_text(
        'NAME, TITLE, BACKENDS, PARAMS, TARGETS, ORDER = "stuck", "hangs", ("sim",), {}, (), 90\n'
        'import time\ndef measure(run):\n    time.sleep(60)\n')
    done = subprocess.run([sys.executable, "-m", "gbpfd", "bench", "--backend", "sim", "--no-plots", "--no-progress",
                           "--case-timeout", "1", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "GBPFD_BENCH_DIR": str(folder)})
    assert done.returncode != 0 and "Timeout" in done.stderr and "bench_stuck.py\", line 4 in measure" in done.stderr
    record = json.loads(next((tmp_path / "out" / "sim").glob("*.json")).read_text())
    assert list(record["cases"]) == ["first", "stuck"]
    assert record["cases"]["first"]["status"] == "ok" and record["cases"]["stuck"]["status"] == "running"


def test_without_matplotlib_the_record_is_still_written_and_the_reason_given(tiny_bench, tmp_path, capsys,
                                                                             monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it then raises ImportError
    assert cli(["bench", "good", "--backend", "sim", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "plots: none drawn: the plots need matplotlib: pip install 'gbpfd[bench]' (or pass --no-plots)" in err
    assert len(list((tmp_path / "sim").glob("*.json"))) == 1 and not list((tmp_path / "sim").glob("*.png"))


def test_without_out_the_record_goes_to_the_users_folder_not_the_checkouts(tiny_bench, tmp_path, capsys,
                                                                          monkeypatch):
    committed = suite.REPO / "bench" / "results" / "sim"
    before = sorted(committed.iterdir())
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(suite.REPO)
    assert cli(["bench", "good", "--backend", "sim", "--quick", "--no-plots", "--no-progress"]) == 0
    written = list((tmp_path / "data" / "gbpfd" / "bench" / "sim").glob("*.json"))
    assert len(written) == 1 and f"record: {written[0]}" in capsys.readouterr().err
    assert sorted(committed.iterdir()) == before


def test_the_users_folder_follows_the_home_directory_without_xdg(monkeypatch, tmp_path):
    from gbpfd.bench.options import default_results_dir
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_results_dir() == tmp_path / ".local" / "share" / "gbpfd" / "bench"


def test_targets_cite_their_requirement_in_words_not_a_tracker_number():
    import re
    page = (suite.REPO / "docs" / "benchmarks.md").read_text()
    for case in suite.discover(suite.REPO / "bench").values():
        for t in case.targets:
            assert not re.search(r"\bissue \d", t.source) and "requirement" in t.source, (case.name, t.source)
    assert not re.search(r"\(issue \d", page)
