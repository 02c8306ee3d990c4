"""The shared device source compiled per target (see ``gbpfd.specialize``)."""
from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from gbpfd.resources import shared_file
from gbpfd.specialize import specialize

_PACKAGE = Path(__file__).resolve().parent.parent


def source_digest() -> str:
    """A digest of everything the compiled device code depends on: its
    Python sources and the layout files they fold into constants."""
    h = hashlib.sha256()
    files = sorted(_PACKAGE.glob("device/*.py")) + sorted(_PACKAGE.glob("vm/*.py")) + sorted(
        _PACKAGE.glob("bridge/layout.py")) + sorted(_PACKAGE.glob("isa/*.py")) + [
        shared_file("isa", "opcodes.toml"), shared_file("isa", "abi.toml"), shared_file("host_bridge", "layout.toml")]
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def device_functions():
    from gbpfd.device import control, gates, ringbuf, snapshot
    return ringbuf.DEVICE_FUNCTIONS + snapshot.DEVICE_FUNCTIONS + gates.DEVICE_FUNCTIONS + control.DEVICE_FUNCTIONS


@cache
def for_cpu():
    """The simulated device's build: ``numba.njit``, plain memory."""
    import numba

    from gbpfd.device import prims_cpu
    from gbpfd.vm import fast
    jit = numba.njit(nogil=True, error_model="numpy", cache=True)
    tag = "_" + source_digest()
    # the interpreter as the fast VM compiles it (no reference counting: it allocates nothing)
    execute = specialize([fast.interp.execute], prims_cpu.PRIMS, numba.njit(cache=True, **fast.JIT_OPTIONS),
                         tag=tag + fast.options_tag(fast.JIT_OPTIONS)).execute
    return specialize(device_functions(), prims_cpu.PRIMS, jit, extra={"execute": execute}, tag=tag)


@cache
def for_cuda():
    """The GPU build: device functions with acquire/release PTX primitives."""
    from numba import cuda

    from gbpfd.device import prims_cuda
    from gbpfd.vm import interp
    jit = cuda.jit(device=True)
    execute = specialize([interp.execute], prims_cuda.PRIMS, jit).execute
    built = specialize(device_functions(), prims_cuda.PRIMS, jit, extra={"execute": execute})
    built.execute = execute  # the interpreter the control CTA runs, for the PTX checks
    return built


@cache
def for_cudasim():
    """The Numba CUDA simulator's build (NUMBA_ENABLE_CUDASIM=1 processes only)."""
    from numba import cuda

    from gbpfd.device import prims_cudasim
    from gbpfd.vm import interp
    jit = cuda.jit(device=True)
    execute = specialize([interp.execute], prims_cudasim.PRIMS, jit).execute
    return specialize(device_functions(), prims_cudasim.PRIMS, jit, extra={"execute": execute})
