"""Device code of the overhead and isolation benches (``bench_overhead.py``,
``bench_isolation.py``): one block of fixed floating-point work.

Device code only, like ``bench/gpu_kernels.py``: the hosts are the benches.
The work is a fixed number of fused multiply-adds per thread, in
``CHAINS`` independent chains so that a few warps keep an SM's FMA units
busy; a fixed amount of work, not a fixed time, so that a CTA slowed by a
neighbour on its SM takes longer, as real work would.  The result is
stored only when it equals a value it cannot reach: the compiler must still
do every step, and the store costs nothing.

The same body runs three ways: ``fma_grid`` is a plain kernel (one block
per CTA) and, passed to ``gbpfd.admit(mode="gate")``, the gated one;
``fma_logical`` is its persistent-mode form (logical block first).
"""
from numba import cuda, float32

CHAINS = 4
#: the value no chain reaches (they converge towards STEP / (1 - SCALE) = 1.0)
UNREACHED = float32(-1.0)
SCALE = float32(0.9999)
STEP = float32(0.0001)


@cuda.jit(device=True)
def fma_block(block, iters, sink):
    """``iters`` rounds of CHAINS dependent FMAs in every thread of the CTA."""
    seed = float32((block * cuda.blockDim.x + cuda.threadIdx.x) % 1024) * float32(1e-4)
    x0 = seed
    x1 = seed + float32(0.25)
    x2 = seed + float32(0.5)
    x3 = seed + float32(0.75)
    for _ in range(iters):
        x0 = x0 * SCALE + STEP
        x1 = x1 * SCALE + STEP
        x2 = x2 * SCALE + STEP
        x3 = x3 * SCALE + STEP
    total = x0 + x1 + x2 + x3
    if total == UNREACHED:
        sink[0] = total


@cuda.jit
def fma_grid(sink, iters):
    """One block of work per CTA."""
    fma_block(cuda.blockIdx.x, iters, sink)


def fma_logical(block, sink, iters):
    """The persistent-mode body: one logical block of the same work."""
    fma_block(block, iters, sink)
