"""The real control kernel and worker waits compile to PTX for sm_90 with no GPU."""
from __future__ import annotations

import pytest

from cuda_stub import TARGET_CC, nvvm_missing_reason, stand_in_device

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (numba's own numba.cuda is not enough)")
cuda = pytest.importorskip("numba.cuda")


@pytest.fixture(scope="module")
def kernels():
    reason = nvvm_missing_reason()
    if reason:
        pytest.skip(reason)
    with stand_in_device():
        from gbpfd.device import kernels_cuda
        yield kernels_cuda


def _arrays_sig():
    from numba import types
    i64 = types.int64
    return i64[:], i64[:], i64[:, :, :, :], types.uint8[:], i64[:], i64[:, :, :, :], i64[:, :]


def _ptx(fn, sig):
    with stand_in_device():
        ptx, _ = cuda.compile_ptx(fn, sig, cc=TARGET_CC)
    return ptx


#: orderings at system scope: each waits for outstanding PCIe traffic, so only the host-facing code may have one
SYS_SCOPE = ("ld.acquire.sys", "st.release.sys", "membar.sys", "fence.sc.sys", "fence.acq_rel.sys")


def test_control_kernel_compiles_with_acquire_loads_and_device_clocks(kernels):
    ptx = _ptx(kernels.control_kernel.py_func, _arrays_sig())
    assert f".target sm_{TARGET_CC[0]}{TARGET_CC[1]}" in ptx
    # device-memory words at GPU scope, the host area (rings, snapshot, ready) at system scope
    for needle in ("ld.acquire.gpu.b64", "st.release.gpu.b64", "ld.acquire.sys.b64", "st.release.sys.b64",
                   "%globaltimer", "%smid", "vote.sync.ballot"):
        assert needle in ptx, needle
    # the policy VM's registers and frames are in shared memory, and nothing is in local memory
    assert ".shared" in ptx and "st.shared" in ptx and "ld.local" not in ptx and "st.local" not in ptx


def test_worker_waits_compile(kernels):
    from numba import types
    i64 = types.int64

    def worker(ctl, flat, tenant, out):
        how = kernels.cta_enter(ctl, flat, tenant, False)
        kernels.warp_gate_wait(ctl, flat, tenant)
        out[0] = kernels.dma_take_wait(ctl, flat, tenant, 4096)
        kernels.cta_exit(ctl, tenant, how)

    ptx = _ptx(worker, (i64[:], i64[:], i64, types.boolean[:]))
    assert "nanosleep" in ptx
    assert "atom" in ptx
    assert [s for s in SYS_SCOPE if s in ptx] == []  # a worker's waits touch device memory only


def test_admit_wrappers_and_paced_copy_compile(kernels):
    from numba import types

    from gbpfd.check.kernel_catalog import gate_wrapper, persistent_wrapper
    from gbpfd.device import admit_kernels
    i64, f32 = types.int64, types.float32

    gated, sig = gate_wrapper()                   # the wrappers gbpfd check's compile stage reports on
    ptx = _ptx(gated.py_func, sig)
    assert "ld.acquire.gpu.b64" in ptx and "bar.sync" in ptx
    assert [s for s in SYS_SCOPE if s in ptx] == []
    workers, sig = persistent_wrapper()
    ptx = _ptx(workers.py_func, sig)
    assert "%smid" in ptx
    def loop(x, gate):
        for i in range(x.shape[0]):
            admit_kernels.warp_gate(gate)
            x[i] += 1

    ptx = _ptx(admit_kernels.gate_kernel(loop, ["x", "gate"]).py_func, (i64[:], i64[:], i64, f32[:]))
    assert "activemask" in ptx or "bar.warp.sync" in ptx
    ptx = _ptx(admit_kernels.paced_copy_kernel.py_func, (i64[:], i64[:], i64, i64[:], i64[:], i64))
    assert "nanosleep" in ptx


def test_the_demo_kernels_compile_inside_their_wrappers(kernels):
    from numba import types

    from gbpfd.demo import gpu_kernels
    from gbpfd.device import admit_kernels
    i64 = types.int64
    workers = admit_kernels.persistent_kernel(gpu_kernels.be_block, ["marks", "block_ns"])
    assert "%globaltimer" in _ptx(workers.py_func, (i64[:], i64[:], i64, i64[:], i64, i64, i64[:], i64))
    gated = admit_kernels.gate_kernel(gpu_kernels.lc_cta, ["marks", "cta_ns"])
    assert "%globaltimer" in _ptx(gated.py_func, (i64[:], i64[:], i64, i64[:], i64))


def test_counter_add_in_the_control_ctas_interpreter_is_one_atomic_add(kernels):
    """tick (warp 1) and cta_admit (warp 0) run at once: the interpreter's
    counter_add must be an atomic on the counter's word, not a byte-wise
    read-modify-write."""
    from numba import types

    from gbpfd.device.build import for_cuda
    execute = for_cuda().execute
    i64, u64, u8 = types.int64, types.uint64, types.uint8

    def run(code, regs, frames, flat8, desc, out):
        out[0] = execute(code, 4, regs, frames, flat8, flat8, desc, desc, desc, desc, desc, desc, 0, 64, u64(0), out)

    ptx = _ptx(run, (i64[:, :], u64[:], u64[:, :], u8[:], i64[:], i64[:]))
    adds = [line for line in ptx.splitlines() if "atom" in line and ".add" in line]
    assert adds and all(".u64" in line for line in adds), adds


def test_a_lanes_copy_issues_a_batch_of_loads_before_its_first_store(kernels):
    """lane_copy over PCIe: a batch's loads are independent and all issued
    before the batch's stores, so a batch costs one round trip, not one per word."""
    import re

    from numba import types

    from gbpfd.device.prims_cuda import lane_copy
    from gbpfd.device.state import COPY_BATCH
    i64 = types.int64

    def copy(dst, src, n):
        lane_copy(dst, 0, src, 0, n, cuda.threadIdx.x, 32)

    ptx = _ptx(copy, (i64[:], i64[:], i64))
    # the arrays' words, through generic or global addresses (not the parameter loads)
    body = [line.strip() for line in ptx.splitlines() if re.match(r"\s*(ld|st)(\.global)?\.u64\s", line)]
    first_store = next(i for i, line in enumerate(body) if line.startswith("st"))
    assert first_store >= COPY_BATCH, body[:first_store + 1]
    assert "ld.local" not in ptx and "st.local" not in ptx   # the batch stays in registers
