"""Is there a CUDA GPU this process can use, with a toolchain that can
serve the plane?  Answered without side effects beyond preparing the
toolchain (gbpfd.cuda_toolchain.prepare) and importing numba-cuda."""
from __future__ import annotations

import os
from functools import cache

from gbpfd import cuda_toolchain as T


def load_modules_eagerly() -> None:
    """Make the driver (read when it starts) load every module's code and
    data when the module is loaded: a lazy load at a kernel's first launch
    can synchronise the context, which would wait for the resident control
    kernel forever.  Overrides an inherited lazy setting."""
    T.force_eager_loading()


def _toolchain_reason(cuda) -> str | None:
    from gbpfd.ptx import emitted_ptx_version  # numba-cuda is imported only once a GPU is known
    try:
        path = T.nvvm_path()
        emitted = emitted_ptx_version(gpu=True)
    except T.ToolchainError as err:
        return str(err)
    return T.ptx_mismatch(emitted, tuple(cuda.cudadrv.driver.driver.get_version()), path)


@cache
def gpu_missing_reason() -> str | None:
    """Why the GPU backend cannot run here, or None when it can."""
    T.prepare()
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "NUMBA_ENABLE_CUDASIM=1 selects Numba's CUDA simulator, which cannot run a persistent kernel"
    injected = T.injected_tool()
    if injected:
        return (f"a profiler or sanitizer is injected ({injected}); it serialises kernels, so the resident control "
                "kernel would deadlock beside it: profile or sanitize standalone kernels, not the plane")
    try:
        from numba import cuda
    except ImportError as err:
        return f"numba-cuda is not installed ({err})"
    try:
        if not cuda.is_available():
            return "no CUDA driver or device was found"
        cuda.get_current_device()
    except Exception as err:  # the driver's own error, whatever its type
        return f"the CUDA driver refused: {err}"
    return _toolchain_reason(cuda)
