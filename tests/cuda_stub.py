"""Compile device code without a GPU.

numba-cuda 0.30.4 compiles a ``cuda.jit(device=True)`` function through
``dispatcher.compile_device``, which asks the driver for the current
device's compute capability even when ``compile_ptx`` was given ``cc``, and
then asks NVRTC which architectures it supports and where it lives (while
only looking for libdevice).  This machine has NVVM and libdevice but no GPU
and no NVRTC, so for the duration of the compile the stand-in supplies the
device, pins the architecture through numba-cuda's own FORCE_CUDA_CC
setting, and answers the NVRTC path look-up; NVVM does the real work.
"""
from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace
from unittest import mock

TARGET_CC = (9, 0)  # H100 / H200


@contextmanager
def stand_in_device(cc: tuple[int, int] = TARGET_CC):
    from numba.cuda import config, cuda_paths, dispatcher

    device = SimpleNamespace(compute_capability=cc)
    no_nvrtc = cuda_paths._env_path_tuple("stand-in", None)
    cached = getattr(cuda_paths.get_cuda_paths, "_cached_result", None)
    try:
        with mock.patch.object(dispatcher, "get_current_device", lambda: device), \
                mock.patch.object(config, "FORCE_CUDA_CC", cc), \
                mock.patch.object(cuda_paths, "_get_nvrtc_path", lambda: no_nvrtc):
            yield
    finally:
        # get_cuda_paths caches its answer: keep the stand-in's out of it.
        if cached is None:
            vars(cuda_paths.get_cuda_paths).pop("_cached_result", None)
        else:
            cuda_paths.get_cuda_paths._cached_result = cached


def nvvm_missing_reason() -> str | None:
    """Why PTX cannot be made here (no NVVM library found), or None."""
    from numba.cuda.cudadrv import nvvm
    try:
        nvvm.NVVM()
    except Exception as err:  # NvvmSupportError, or a loader error for a broken install
        return f"NVVM is not available: {err}"
    return None
