"""The isolation case on the simulated device at a tiny size: the latency
reference is one wave, each scenario really ran what it names, and the
model shows what a GPU shows: LC CTAs that land beside BE CTAs run slower,
stream priorities beat no plane, the admission-only plane does not keep LC
CTAs off BE's SMs, and the draining plane does, after its first launch."""
from __future__ import annotations

from gbpfd.sim.model import sim_gpu
from test_bench_overhead import run_sim

BODIES = ("", "_mem")


def test_the_scenarios_run_what_they_name():
    entry = run_sim("isolation", sim_lc_kernels=8, sim_be_ctas=2640, sim_be_alone_ms=2)
    f, checks, p = entry["figures"], entry["checks"], entry["params"]
    gpu = sim_gpu()
    alone_us = gpu.launch_ns / 1000 + p["sim_lc_cta_us"]
    assert f["lc_p99_alone_us"]["value"] == alone_us and f["lc_p50_alone_us"]["value"] == alone_us
    beside = checks["lc_ctas_beside_another_tenant"]
    assert checks["lc_ctas_per_scenario"] == p["sim_lc_kernels"] * p["lc_ctas"]
    assert beside["alone"] == beside["plane_alone"] == 0            # an idle GPU: every LC CTA on an SM of its own
    for b in BODIES:
        # without priorities an LC kernel waits behind the BE kernel's queued CTAs; with them it goes first
        assert f[f"lc_p99_noplane{b}_us"]["value"] > alone_us + p["sim_be_cta_us"], b
        assert f[f"lc_p99_ratio_priority{b}"]["value"] < f[f"lc_p99_ratio_noplane{b}"]["value"], b
        # the plane admits LC CTAs into free slots spread over BE's SMs: they share them and run slower
        assert 0 < beside[f"plane{b}"] <= checks["lc_ctas_per_scenario"], b
        assert f[f"lc_p99_ratio_plane{b}"]["value"] > 1, b
        # draining: only the first LC kernel, launched before any SM was drained, lands beside BE CTAs
        assert beside[f"plane_drain{b}"] <= p["lc_ctas"] < beside[f"plane{b}"], b
        assert f[f"lc_p50_plane_drain{b}_us"]["value"] < f[f"lc_p50_plane{b}_us"]["value"], b
        assert f[f"drains_plane_drain{b}"]["value"] > 0 and f[f"drains_plane{b}"]["value"] == 0, b
        assert f[f"be_workers_left_drained_plane_drain{b}"]["value"] >= f[f"drains_plane_drain{b}"]["value"], b
        assert 0 < f[f"drain_wait_mean_plane_drain{b}_us"]["value"] <= f[f"drain_wait_max_plane_drain{b}_us"]["value"]
        # a static mask: no LC CTA beside a BE one, no drain, the BE workers that landed outside it left
        assert beside[f"plane_mask{b}"] == 0 and f[f"drains_plane_mask{b}"]["value"] == 0, b
        assert f[f"be_workers_left_drained_plane_mask{b}"]["value"] > 0, b
        for s in ("noplane", "priority", "plane", "plane_drain", "plane_mask"):
            assert f[f"be_throughput_ratio_{s}{b}"]["samples"] > 0, (s, b)
            assert f[f"lc_p50_{s}{b}_us"]["value"] <= f[f"lc_p99_{s}{b}_us"]["value"], (s, b)
        for s in ("plane", "plane_drain", "plane_mask"):
            lc_runs = 2 if (s, b) == ("plane", "") else 1  # the first plane also ran the LC-alone scenario
            assert checks[f"{s}{b}_infer"]["admitted"] == lc_runs * p["sim_lc_kernels"] * p["lc_ctas"], (s, b)
            assert checks[f"{s}{b}_train"]["admitted"] > 0, (s, b)
            assert checks[f"{s}{b}_infer"]["bypassed"] == checks[f"{s}{b}_train"]["bypassed"] == 0, (s, b)
    # the memory-bound BE body alone is held to the HBM bandwidth
    block_bytes = p["sim_memory_demand"] * gpu.hbm_bytes_per_s * p["sim_be_cta_us"] * 1e-6 / (
        gpu.num_sms * gpu.slots_per_sm)
    assert f["be_alone_mem_blocks_per_s"]["value"] <= 1.01 * gpu.hbm_bytes_per_s / block_bytes
    assert set(entry["cdfs"]) == {"lc_alone", "lc_plane_alone", *(f"lc_{s}{b}" for b in BODIES
                                                                 for s in ("noplane", "priority", "plane",
                                                                           "plane_drain", "plane_mask"))}
