"""The demo's kernels (device code only; the driver is gbpfd.demo.gpu_workload)."""
from numba import cuda

from gbpfd.device.prims_cuda import globaltimer


@cuda.jit(device=True)
def busy(ns):
    end = globaltimer() + ns
    while globaltimer() < end:
        cuda.nanosleep(200)


def be_block(block, marks, block_ns):
    """One best-effort logical block: marks[block] counts its runs."""
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(marks, block, 1)
        busy(block_ns)


def lc_cta(marks, cta_ns):
    """One latency-critical CTA: marks[blockIdx] counts its runs."""
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(marks, cuda.blockIdx.x, 1)
        busy(cta_ns)
