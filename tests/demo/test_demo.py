"""``gbpfd demo`` on the simulated device: the report's keys, and that the
figures show the plane working (weighted shares, paced copy, a live swap
that loses and doubles nothing), labelled as simulated."""
from __future__ import annotations

import functools
import json

import pytest

from gbpfd.demo import DemoConfig, format_report, run_demo
from gbpfd.demo.report import class_shares, percentiles_us

SECONDS = 0.2
TOP_KEYS = {"backend", "simulated", "tenants", "copy", "swap", "reaction"}
LC_KEYS = {"name", "class", "weight", "admitted", "cta_share", "p50_us", "p99_us"}
BE_KEYS = {"name", "class", "weight", "admitted", "cta_share"}


@functools.cache
def report() -> dict:
    return run_demo(DemoConfig(backend="sim", seconds=SECONDS))


def within(value: float, target: float, fraction: float = 0.10) -> bool:
    return abs(value - target) <= fraction * target


def tenants_by_class(r: dict, klass: str) -> list[dict]:
    return [t for t in r["tenants"] if t["class"] == klass]


def test_report_has_the_documented_keys():
    r = report()
    assert TOP_KEYS <= set(r)
    assert [t["name"] for t in r["tenants"]] == ["infer", "train", "batch"]
    for t in tenants_by_class(r, "latency-critical"):
        assert LC_KEYS <= set(t)
    for t in tenants_by_class(r, "best-effort"):
        assert BE_KEYS <= set(t)
    assert {"target_bytes_per_s", "achieved_bytes_per_s"} <= set(r["copy"])
    assert {"lost", "doubled"} <= set(r["swap"])
    assert {"p50_us", "p99_us"} <= set(r["reaction"])


def test_report_is_one_json_object():
    r = report()
    assert json.loads(json.dumps(r)) == r


def test_report_is_labelled_simulated():
    r = report()
    assert r["backend"] == "sim" and r["simulated"] is True


def test_best_effort_shares_follow_the_weights():
    r = report()
    best_effort = tenants_by_class(r, "best-effort")
    weights = sum(t["weight"] for t in best_effort)
    for t in best_effort:
        assert t["admitted"] > 0
        assert within(t["cta_share"], t["weight"] / weights), t


def test_the_latency_critical_tenant_runs_and_is_timed():
    (lc,) = tenants_by_class(report(), "latency-critical")
    assert lc["admitted"] > 0 and lc["cta_share"] == 1.0
    assert 0 < lc["p50_us"] <= lc["p99_us"]


def test_paced_copy_runs_at_the_quota_rate():
    c = report()["copy"]
    assert c["target_bytes_per_s"] == 1048576 * 1e9 / 100_000  # demo.toml: 1 MiB per 100 us epoch
    assert within(c["achieved_bytes_per_s"], c["target_bytes_per_s"])


def test_the_live_swap_loses_and_doubles_nothing():
    swap = report()["swap"]
    assert swap["lost"] == 0 and swap["doubled"] == 0


def test_reaction_times_are_reported():
    reaction = report()["reaction"]
    assert 0 < reaction["p50_us"] <= reaction["p99_us"]


def test_format_report_labels_the_figures_simulated():
    text = format_report(report())
    first = text.splitlines()[0]
    assert first == ("gbpfd demo: backend sim (SIMULATED: modelled device, not GPU figures): "
                     "asked for the simulated device")
    assert "all figures above are SIMULATED" in text
    for name in ("infer", "train", "batch"):
        assert any(line.startswith(name) for line in text.splitlines())
    assert "admissions lost 0, doubled 0" in text


def test_format_report_of_a_gpu_run_has_no_simulated_label():
    r = dict(report(), simulated=False, backend="cuda", backend_reason="a CUDA GPU is present")
    text = format_report(r)
    assert "SIMULATED" not in text
    assert text.splitlines()[0] == "gbpfd demo: backend cuda: a CUDA GPU is present"


def test_progress_is_reported_up_to_done():
    seen = []
    run_demo(DemoConfig(backend="sim", seconds=0.02), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 1


@pytest.mark.parametrize("seconds", [0, -1, 3601, True, "1"])
def test_demo_config_refuses_bad_seconds(seconds):
    with pytest.raises(ValueError, match=rf"^DemoConfig\.seconds must be in \(0, 3600\], got {seconds!r}$"):
        DemoConfig(seconds=seconds)


def test_percentiles_us():
    assert percentiles_us([]) == (None, None)
    assert percentiles_us([1000] * 10) == (1.0, 1.0)


def test_class_shares():
    tenants = [{"name": "a", "class": "best-effort", "weight": 3, "admitted": 30},
               {"name": "b", "class": "best-effort", "weight": 1, "admitted": 10},
               {"name": "c", "class": "latency-critical", "weight": 1, "admitted": 0}]
    class_shares(tenants)
    assert [t["cta_share"] for t in tenants] == [0.75, 0.25, 0.0]
    assert [t.get("target_share") for t in tenants] == [0.75, 0.25, None]
