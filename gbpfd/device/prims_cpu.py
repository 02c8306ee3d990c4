"""Memory-ordering primitives for the simulated device (``numba.njit``).

The simulator runs the control CTA and every worker one step at a time on
one thread, so plain loads and stores already have the ordering the GPU
primitives provide; the functions exist so that the shared device source
reads the same on every target.
"""
import numba

from gbpfd.vm import interp

_jit = numba.njit(inline="always", nogil=True)


@_jit
def load_acquire(a, i):
    return a[i]


@_jit
def store_release(a, i, v):
    a[i] = v


@_jit
def atomic_add(a, i, v):
    old = a[i]
    a[i] = old + v
    return old


@_jit
def atomic_cas(a, i, expected, new):
    old = a[i]
    if old == expected:
        a[i] = new
    return old


@_jit
def atomic_max(a, i, v):
    old = a[i]
    if v > old:
        a[i] = v
    return old


@_jit
def fence():
    return None


@_jit
def lane_copy(dst, dst_at, src, src_at, n, lane, lanes):
    for i in range(lane, n, lanes):
        dst[dst_at + i] = src[src_at + i]


@_jit
def lane_broadcast(v):
    """The warp's lane 0 is its only lane here."""
    return v


@_jit
def warp_sync():
    return None


# one thread runs everything here: the scopes the GPU distinguishes are the same plain access
PRIMS = {"load_acquire": load_acquire, "store_release": store_release, "load_acquire_sys": load_acquire,
         "store_release_sys": store_release, "atomic_add": atomic_add, "atomic_cas": atomic_cas,
         "atomic_max": atomic_max, "fence": fence,
         "fence_sys": fence, "atomic_add_le64": interp.atomic_add_le64, "lane_broadcast": lane_broadcast,
         "warp_sync": warp_sync, "lane_copy": lane_copy}
