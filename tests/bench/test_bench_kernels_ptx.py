"""The GPU bench's kernels compile to PTX for sm_90 with no GPU, and the
simulated-device bench runs at a tiny size and prints its JSON record."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cuda_stub import TARGET_CC, nvvm_missing_reason, stand_in_device

BENCH = Path(__file__).resolve().parents[2] / "bench"
FIGURES = {"reaction_p50", "reaction_p99", "loop_period", "quota_to_decision_p50", "quota_to_decision_max",
           "demo_share_error_max", "demo_copy_rate_ratio"}


@pytest.fixture(scope="module")
def gpu_kernels():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (numba's own numba.cuda is not enough)")
    reason = nvvm_missing_reason()
    if reason:
        pytest.skip(reason)
    spec = importlib.util.spec_from_file_location("gpu_kernels", BENCH / "gpu_kernels.py")
    module = importlib.util.module_from_spec(spec)
    with stand_in_device():
        spec.loader.exec_module(module)
    return module


def _ptx(kernel, sig) -> str:
    from numba import cuda
    with stand_in_device():
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=TARGET_CC)
    assert f".target sm_{TARGET_CC[0]}{TARGET_CC[1]}" in ptx
    return ptx


def test_clock_probe_reads_both_clocks(gpu_kernels):
    from numba import types
    i64 = types.int64
    ptx = _ptx(gpu_kernels.clock_probe, (i64, i64, i64[:], i64[:]))
    assert "%globaltimer" in ptx and "%clock64" in ptx


def test_ping_pong_uses_acquire_release_and_records_the_sm(gpu_kernels):
    from numba import types
    i64 = types.int64
    ptx = _ptx(gpu_kernels.ping_pong, (i64[:], i64, i64, i64[:], i64[:], i64[:], i64[:]))
    for needle in ("ld.acquire.sys.b64", "st.release.sys.b64", "%smid", "%clock64"):
        assert needle in ptx, needle


def test_requester_posts_polls_and_leaves(gpu_kernels):
    from numba import types
    i64 = types.int64
    ptx = _ptx(gpu_kernels.requester, (i64[:], i64, i64[:], i64, i64, i64[:, :], i64[:]))
    for needle in ("ld.acquire.sys.b64", "st.release.sys.b64", "atom", "membar.sys"):
        assert needle in ptx, needle


def test_interp_rate_runs_the_interpreter(gpu_kernels):
    from numba import types
    i64, u64 = types.int64, types.uint64
    sig = (i64[:, :], i64, u64[:], u64[:, :], types.uint8[:], i64[:], i64[:], i64[:], i64[:], i64[:], i64[:], i64,
           i64, i64, i64, i64[:], i64[:])
    ptx = _ptx(gpu_kernels.interp_rate, sig)
    assert "%globaltimer" in ptx


def test_sim_bench_prints_a_simulated_record(tmp_path):
    out = tmp_path / "record.json"
    done = subprocess.run([sys.executable, str(BENCH / "bench_plane_sim.py"), "--requests", "200", "--trials", "2",
                           "--demo-seconds", "0.005", "--json-out", str(out)],
                          cwd=BENCH.parent, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    assert printed == json.loads(out.read_text())
    assert printed["bench"] == "plane_sim" and printed["simulated"] is True
    assert "SIMULATED" in printed["label"] and "SIMULATED" in done.stdout
    assert set(printed["figures"]) == FIGURES
    for name, f in printed["figures"].items():
        assert set(f) == {"value", "unit", "samples"}, name
    assert printed["figures"]["reaction_p50"]["samples"] == 200
    assert printed["figures"]["quota_to_decision_p50"]["samples"] == 2
    assert printed["checks"]["requests_admitted"] == 200
    assert {"date", "commit", "device", "config"} <= set(printed)
