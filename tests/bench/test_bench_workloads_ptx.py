"""The overhead and isolation cases' FMA workload compiles to PTX for sm_90
with no GPU: plainly, inside the gate-mode wrapper and as a persistent-mode
body, with its work intact."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def workloads(bench_gpu_module):
    return bench_gpu_module("gpu_workloads")


def _assert_work_kept(text: str, chains: int) -> None:
    # every chain's multiply-add survives (the result feeds a store the compiler cannot drop)
    assert text.count("fma.rn.f32") >= chains
    assert "st.global." in text


def test_the_plain_kernel_does_its_fma_work(workloads, ptx):
    from numba import types
    _assert_work_kept(ptx(workloads.fma_grid, (types.float32[:], types.int64)), workloads.CHAINS)


def test_the_work_compiles_inside_the_gate_and_persistent_wrappers(workloads, ptx):
    from numba import types

    from gbpfd.device import admit_kernels
    i64, f32 = types.int64, types.float32
    gated = admit_kernels.gate_kernel(workloads.fma_grid.py_func, ["sink", "iters"])
    text = ptx(gated, (i64[:], i64[:], i64, f32[:], i64))
    _assert_work_kept(text, workloads.CHAINS)
    assert "ld.acquire.gpu.b64" in text and "bar.sync" in text  # cta_enter's request poll, the CTA's barrier
    workers = admit_kernels.persistent_kernel(workloads.fma_logical, ["sink", "iters"])
    text = ptx(workers, (i64[:], i64[:], i64, i64[:], i64, i64, f32[:], i64))
    _assert_work_kept(text, workloads.CHAINS)
    assert "%smid" in text
