"""The isolation case on the simulated device at a tiny size: the latency
reference is one wave, and each scenario really ran what it names."""
from __future__ import annotations

from gbpfd.sim.model import sim_gpu
from test_bench_overhead import run_sim


def test_the_scenarios_run_what_they_name():
    entry = run_sim("isolation", sim_lc_kernels=8, sim_be_ctas=2640, sim_be_alone_ms=2)
    f, checks, p = entry["figures"], entry["checks"], entry["params"]
    alone_us = sim_gpu().launch_ns / 1000 + p["sim_lc_cta_us"]
    assert f["lc_p99_alone_us"]["value"] == alone_us and f["lc_p50_alone_us"]["value"] == alone_us
    # without priorities an LC kernel waits behind the BE kernel's queued CTAs; with them, for one BE CTA at most
    assert f["lc_p99_noplane_us"]["value"] > alone_us + p["sim_be_cta_us"]
    assert f["lc_p99_priority_us"]["value"] <= alone_us + p["sim_be_cta_us"]
    for s in ("noplane", "priority", "plane"):
        assert f[f"be_throughput_ratio_{s}"]["samples"] > 0, s
    assert checks["plane_infer"]["admitted"] == 2 * 8 * p["lc_ctas"]  # plane_alone and plane: every LC CTA
    assert checks["plane_train"]["admitted"] > 0
    assert checks["plane_infer"]["bypassed"] == checks["plane_train"]["bypassed"] == 0
    assert set(entry["cdfs"]) == {"lc_alone", "lc_noplane", "lc_priority", "lc_plane", "lc_plane_alone"}
