"""docs/results.md comes from the committed records: GPU runs against the
targets, simulated runs apart and never counted, quick runs left out."""
from __future__ import annotations

import copy
import json

from gbpfd.bench import results_doc, suite

GPU = "NVIDIA H100 80GB HBM3"


def _as_gpu_record(record: dict) -> dict:
    gpu = copy.deepcopy(record)
    gpu.update(backend="cuda", simulated=False, date="2026-12-01T10:00:00+00:00")
    gpu["machine"].update(gpu=GPU, sms=132, driver="580.1", cuda_driver_api="13.0")
    for case in gpu["cases"].values():
        if case["backend"] == "sim":
            case.update(backend="cuda", simulated=False, label="GPU figure")
    gpu["cases"]["good"]["figures"]["latency_p50"]["value"] = 12.0
    gpu["cases"]["good"]["targets"]["latency_p50"]["met"] = False
    return gpu


def _write(results, record) -> None:
    path = suite.write_record(record, results)
    path.write_text(json.dumps(record))


def test_the_page_sets_gpu_runs_against_targets_and_keeps_simulated_ones_apart(tiny_bench, tmp_path):
    results = tmp_path / "results"
    sim = suite.run_suite(["good"], backend="sim", quick=False, progress=False)
    _write(results, sim)
    _write(results, _as_gpu_record(sim))
    quick = suite.run_suite(["good"], backend="sim", quick=True, progress=False)
    quick["date"] = "2026-12-02T10:00:00+00:00"
    _write(results, quick)
    page = results_doc.render(results, tmp_path / "docs")

    gpu_part, sim_part = page.split("## Simulated runs (not GPU figures)")
    assert f"### {GPU}" in gpu_part and "No GPU record yet" not in gpu_part
    assert "| good | `latency_p50` | 12 | ns | 100 | < 10 ns (a test) | **not met** |" in gpu_part
    assert "| good | `latency_p50` | 2 | ns | 100 | < 10 ns (a test) |" not in gpu_part
    assert "| good [sim] | `latency_p50` | 2 | ns | 100 | < 10 ns (a test) | simulated: not counted |" in sim_part
    assert "SIMULATED" in sim_part
    assert "-quick" not in page, "quick runs are smoke runs, not figures to keep"
    assert page.count("-sim-bench.json`") == 2 and page.count("-nvidia-h100-80gb-hbm3-bench.json`") == 2


def test_without_a_gpu_record_the_page_says_so(tiny_bench, tmp_path):
    results = tmp_path / "results"
    _write(results, suite.run_suite(["good"], backend="sim", quick=False, progress=False))
    page = results_doc.render(results, tmp_path / "docs")
    assert "No GPU record yet" in page
    assert "| XSched (level 3) | preemption latency, p99 | 32 us | `reaction.reaction_p99` | no GPU record yet |" in page


def test_the_committed_page_is_what_the_committed_records_give():
    assert results_doc.PAGE.read_text() == results_doc.render(), \
        "docs/results.md is stale: run python -m gbpfd.bench.results_doc"


def test_an_older_records_tracker_number_gives_way_to_the_cases_words(tmp_path):
    from gbpfd.bench.suite import discover
    reaction = discover(suite.REPO / "bench")["reaction"]
    target = next(t for t in reaction.targets if t.figure == "reaction_p50")
    old = {"text": target.text, "source": "issue 3", "op": target.op, "bound": target.bound}
    assert results_doc._target_text("reaction", "reaction_p50", old) == f"{target.text} ({target.source})"
    moved = dict(old, bound=target.bound * 2)
    assert results_doc._target_text("reaction", "reaction_p50", moved) == f"{target.text} (issue 3)"
