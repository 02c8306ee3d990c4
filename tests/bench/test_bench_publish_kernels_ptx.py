"""The publish case's requester kernel compiles to PTX for sm_90 with no GPU."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def publish_kernels(bench_gpu_module):
    return bench_gpu_module("gpu_publish_kernels")


def test_requester_posts_polls_reports_to_the_host_and_reads_its_stop_flag(publish_kernels, ptx):
    from numba import types
    i64 = types.int64
    sig = (i64[:], i64, i64, i64, i64, i64[:], i64[:, :], i64[:])
    text = ptx(publish_kernels.publish_requester, sig)
    # the gates at GPU scope; the stop flag and the decisions it reports are mapped host memory
    for needle in ("ld.acquire.gpu.b64", "membar.gl", "ld.acquire.sys.b64", "st.release.sys.b64", "%globaltimer",
                   "atom"):
        assert needle in text, needle
