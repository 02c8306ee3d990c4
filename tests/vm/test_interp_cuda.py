"""The interpreter source compiles as a CUDA device function (PTX only: no GPU needed)."""
from __future__ import annotations

import pytest

from gbpfd.vm import interp

from cuda_stub import TARGET_CC, nvvm_missing_reason, stand_in_device

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (numba's own numba.cuda is not enough)")
cuda = pytest.importorskip("numba.cuda")


def _kernel():
    device_execute = cuda.jit(device=True)(interp.execute)

    def kernel(code, ninsns, regs, frames, flat, local, base, size, perm, map_rid, map_value_size,
               map_entries, nmaps, fuel, now_ns, out, status_out):
        status_out[0] = device_execute(code, ninsns, regs, frames, flat, local, base, size, perm, map_rid,
                                       map_value_size, map_entries, nmaps, fuel, now_ns, out)
    return kernel


def test_execute_compiles_to_ptx():
    from numba import types

    reason = nvvm_missing_reason()
    if reason:
        pytest.skip(reason)
    i64, u64 = types.int64, types.uint64
    sig = (i64[:, :], i64, u64[:], u64[:, :], types.uint8[:], types.uint8[:], i64[:], i64[:], i64[:], i64[:], i64[:],
           i64[:], i64, i64, u64, i64[:], i64[:])
    with stand_in_device():
        ptx, _ = cuda.compile_ptx(_kernel(), sig, cc=TARGET_CC)
    assert ".entry" in ptx
    assert f".target sm_{TARGET_CC[0]}{TARGET_CC[1]}" in ptx
