"""Memory-ordering primitives for the Numba CUDA simulator.

The simulator cannot run inline PTX, so loads and stores are plain and the
atomics are the simulator's own; it runs one thread at a time, which makes
that exact.  Tests use this target to run the shared device source.
"""
import numpy as np
from numba import cuda

_device = cuda.jit(device=True)


@_device
def load_acquire(a, i):
    return a[i]


@_device
def store_release(a, i, v):
    a[i] = v


@_device
def atomic_add(a, i, v):
    return cuda.atomic.add(a, i, v)


@_device
def atomic_cas(a, i, expected, new):
    return cuda.atomic.cas(a, i, expected, new)


@_device
def atomic_max(a, i, v):
    return cuda.atomic.max(a, i, v)


@_device
def fence():
    cuda.threadfence_system()


@_device
def atomic_add_le64(flat8, at, value):
    """counter_add on the byte view: the simulator has no 64-bit atomic on it; it runs one thread at a time."""
    x = 0
    for k in range(7, -1, -1):
        x = (x << 8) | int(flat8[at + k])
    x = (x + int(value)) & 0xFFFFFFFFFFFFFFFF
    for k in range(8):
        flat8[at + k] = (x >> (8 * k)) & 0xFF


# The simulator has no warp shuffle or warp barrier: the kernels that run
# the warp-wide code here are one warp per block, so the block's barrier and
# a shared word stand in for them.
@_device
def lane_broadcast(v):
    box = cuda.shared.array(1, np.int64)
    cuda.syncthreads()
    if cuda.threadIdx.x == 0:
        box[0] = v
    cuda.syncthreads()
    out = box[0]
    cuda.syncthreads()   # every lane has it before the next broadcast overwrites it
    return out


@_device
def warp_sync():
    cuda.syncthreads()


@_device
def lane_copy(dst, dst_at, src, src_at, n, lane, lanes):
    for i in range(lane, n, lanes):
        dst[dst_at + i] = src[src_at + i]


# one thread at a time: the scopes the GPU distinguishes are the same plain access
PRIMS = {"load_acquire": load_acquire, "store_release": store_release, "load_acquire_sys": load_acquire,
         "store_release_sys": store_release, "atomic_add": atomic_add, "atomic_cas": atomic_cas,
         "atomic_max": atomic_max, "fence": fence,
         "fence_sys": fence, "atomic_add_le64": atomic_add_le64, "lane_broadcast": lane_broadcast,
         "warp_sync": warp_sync, "lane_copy": lane_copy}
