"""The worker gates' retry loops read the words the control CTA changes
(warp caps, the running total and its cap) with acquire loads, as the CUDA
C header does with volatile ones: a plain load in a retry loop may be
served a stale cached word or hoisted out of the loop."""
from __future__ import annotations

import pytest

from cuda_stub import nvvm_missing_reason

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (numba's own numba.cuda is not enough)")
if nvvm_missing_reason():
    pytest.skip(nvvm_missing_reason(), allow_module_level=True)

from numba import types  # noqa: E402

from gbpfd.ptx import compile_ptx  # noqa: E402

SIG = (types.int64[:], types.int64[:], types.boolean[:])


def _ptx_of(step: str) -> str:
    from gbpfd.device import kernels_cuda as K
    fn = getattr(K, step)
    if step == "warp_enter":
        def kernel(ctl, flat, out):
            out[0] = fn(ctl, 0)
    else:
        def kernel(ctl, flat, out):
            out[0] = fn(ctl, 0, 0)
    return compile_ptx(kernel, SIG)


@pytest.mark.parametrize("step, acquires", [("warp_enter", 1), ("try_token", 2)])
def test_the_words_a_retry_loop_rereads_are_acquire_loads(step, acquires):
    assert _ptx_of(step).count("ld.acquire") == acquires
