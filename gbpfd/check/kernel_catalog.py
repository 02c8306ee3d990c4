"""Every device kernel the plane launches, with the argument types of the
launch, so the compile stage can compile each one the way the plane will.

Each entry builds its kernel lazily: importing a device module pulls in
numba-cuda, which only the compile stage's process should pay for.
"""
from __future__ import annotations


def _plane_sig():
    """The types of the plane's own launch (all C-contiguous), so that on a
    GPU the compile stage fills the kernel cache the later stages read."""
    from numba import types
    i64 = types.int64
    return i64[::1], i64[::1], i64[:, :, :, ::1], types.uint8[::1], i64[::1], i64[:, :, :, ::1], i64[:, ::1]


def control():
    from gbpfd.device.kernels_cuda import control_kernel
    return control_kernel, _plane_sig()


def gate_wrapper():
    from numba import types

    from gbpfd.check.sample_bodies import scale
    from gbpfd.device import admit_kernels
    i64, f32 = types.int64, types.float32
    return admit_kernels.gate_kernel(scale, ["x", "factor"]), (i64[:], i64[:], i64, f32[:], f32)


def persistent_wrapper():
    from numba import types

    from gbpfd.check.sample_bodies import scale_block
    from gbpfd.device import admit_kernels
    i64, f32 = types.int64, types.float32
    return (admit_kernels.persistent_kernel(scale_block, ["x", "factor"]),
            (i64[:], i64[:], i64, i64[:], i64, i64, f32[:], f32))


def paced_copy():
    from numba import types

    from gbpfd.device.admit_kernels import paced_copy_kernel
    i64 = types.int64
    return paced_copy_kernel, (i64[:], i64[:], i64, i64[:], i64[:], i64)


def demo_best_effort():
    from numba import types

    from gbpfd.demo import gpu_kernels
    from gbpfd.device import admit_kernels
    i64 = types.int64
    return (admit_kernels.persistent_kernel(gpu_kernels.be_block, ["marks", "block_ns"]),
            (i64[:], i64[:], i64, i64[:], i64, i64, i64[:], i64))


def demo_latency_critical():
    from numba import types

    from gbpfd.demo import gpu_kernels
    from gbpfd.device import admit_kernels
    i64 = types.int64
    return admit_kernels.gate_kernel(gpu_kernels.lc_cta, ["marks", "cta_ns"]), (i64[:], i64[:], i64, i64[:], i64)


#: name -> builder, cheapest first so a slow compile of the control kernel
#: (the largest by far) comes last and the others are reported before it
KERNELS = {
    "paced_copy": paced_copy,
    "gate_wrapper": gate_wrapper,
    "persistent_wrapper": persistent_wrapper,
    "demo_best_effort": demo_best_effort,
    "demo_latency_critical": demo_latency_critical,
    "control_kernel": control,
}
