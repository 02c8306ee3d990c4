"""The GPU kernels of the reaction, interp and event_ring cases compile to
PTX for sm_90 with no GPU, and a case runs alone as a script on the
simulated device."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def gpu_kernels(bench_gpu_module):
    return bench_gpu_module("gpu_kernels")


def test_clock_probe_reads_both_clocks(gpu_kernels, ptx):
    from numba import types
    i64 = types.int64
    text = ptx(gpu_kernels.clock_probe, (i64, i64, i64[:], i64[:]))
    assert "%globaltimer" in text and "%clock64" in text


def test_ping_pong_uses_acquire_release_and_records_the_sm(gpu_kernels, ptx):
    from numba import types
    i64 = types.int64
    text = ptx(gpu_kernels.ping_pong, (i64[:], i64, i64, i64[:], i64[:], i64[:], i64[:]))
    # a device-memory word between two SMs, ordered at GPU scope as the plane's request path is
    for needle in ("ld.acquire.gpu.b64", "st.release.gpu.b64", "%smid", "%clock64"):
        assert needle in text, needle


def test_requester_posts_polls_and_leaves(gpu_kernels, ptx):
    from numba import types
    i64 = types.int64
    text = ptx(gpu_kernels.requester, (i64[:], i64, i64[:], i64, i64, i64[:, :], i64[:]))
    for needle in ("ld.acquire.gpu.b64", "st.release.gpu.b64", "atom", "membar.gl"):
        assert needle in text, needle


def test_interp_rate_runs_the_interpreter(gpu_kernels, ptx):
    from numba import types
    i64, u64 = types.int64, types.uint64
    u8 = types.uint8
    sig = (i64[:, :], i64, u64[:], u64[:, :], u8[:], u8[:], i64[:], i64[:], i64[:], i64[:], i64[:], i64[:], i64,
           i64, i64, i64, i64[:], i64[:])
    text = ptx(gpu_kernels.interp_rate, sig)
    assert "%globaltimer" in text


def test_event_producer_pushes_with_release_stores_and_a_time_bound(gpu_kernels, ptx):
    from numba import types
    i64 = types.int64
    text = ptx(gpu_kernels.event_producer, (i64[:], i64, i64, i64[:]))
    for needle in ("%globaltimer", "ld.acquire.sys.b64", "st.release.sys.b64"):
        assert needle in text, needle


def test_a_case_script_runs_alone_and_writes_a_simulated_record(tmp_path):
    done = subprocess.run([sys.executable, str(BENCH / "bench_reaction.py"), "--backend", "sim", "--quick",
                           "--set", "reaction.requests=200", "--out", str(tmp_path), "--no-plots", "--json",
                           "--no-progress"], cwd=BENCH.parent, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    written = sorted((tmp_path / "sim").glob("*.json"))
    assert len(written) == 1 and json.loads(written[0].read_text()) == printed
    case = printed["cases"]["reaction"]
    assert list(printed["cases"]) == ["reaction"] and printed["simulated"] is True
    assert case["status"] == "ok" and case["simulated"] and "SIMULATED" in case["label"]
    assert set(case["figures"]) == {"reaction_p50", "reaction_p99", "loop_period"}
    assert case["figures"]["reaction_p50"]["samples"] == 200
    assert case["checks"]["requests_admitted"] == 200
