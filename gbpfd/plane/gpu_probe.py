"""Is there a CUDA GPU this process can use?  Answered without side effects
beyond importing numba-cuda."""
from __future__ import annotations

import os
from functools import cache


def load_modules_eagerly() -> None:
    """Ask the driver (read when it starts) to load every module's code and
    data when the module is loaded: a lazy load at a kernel's first launch
    can synchronise the context, which would wait for the resident control
    kernel forever."""
    os.environ.setdefault("CUDA_MODULE_LOADING", "EAGER")
    os.environ.setdefault("CUDA_MODULE_DATA_LOADING", "EAGER")


@cache
def gpu_missing_reason() -> str | None:
    """Why the GPU backend cannot run here, or None when it can."""
    load_modules_eagerly()
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "NUMBA_ENABLE_CUDASIM=1 selects Numba's CUDA simulator, which cannot run a persistent kernel"
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
    return None
