"""Make the CUDA toolchain this process will use safe for a resident control
kernel, and say plainly when it cannot be.

``prepare()`` runs before numba-cuda compiles anything or CUDA starts:

* it forces eager module loading (a lazy load at a kernel's first launch
  can synchronise the context, which would wait for the control kernel
  forever; an inherited ``CUDA_MODULE_LOADING=LAZY`` must not win);
* it lets numba-cuda 0.22-0.30 register its array overloads under numpy
  2.5, which removed ``np.row_stack`` (numba-cuda overloads it unguarded,
  so every first compile raised ``AttributeError``);
* it points numba-cuda at ``/usr/local/cuda`` when neither ``CUDA_HOME`` nor
  ``CUDA_PATH`` is set and that toolkit exists (GPU images ship NVVM there,
  not as a wheel).

``toolchain_problem()`` then names what still stands in the way: no NVVM,
an NVVM whose PTX is newer than the driver accepts, or a profiler or
sanitizer injected into the process (they serialise kernels and so
deadlock beside the control kernel).
"""
from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

DEFAULT_TOOLKIT = Path("/usr/local/cuda")
EAGER = {"CUDA_MODULE_LOADING": "EAGER", "CUDA_MODULE_DATA_LOADING": "EAGER"}

#: the newest PTX ISA each CUDA release's driver JIT accepts, (major, minor) of
#: CUDA -> (major, minor) of PTX: NVIDIA's PTX ISA release notes ("PTX ISA
#: version" table, PTX ISA 9.0 document, 2025); 13.x after 13.0 follows the
#: brief's note that NVVM 13.5 emits 9.5 (guess for the releases between).
PTX_FOR_CUDA = {
    (12, 0): (8, 0), (12, 1): (8, 1), (12, 2): (8, 2), (12, 3): (8, 3), (12, 4): (8, 4),
    (12, 5): (8, 5), (12, 6): (8, 5), (12, 8): (8, 7), (12, 9): (8, 8), (13, 0): (9, 0),
}

#: environment variables by which Nsight Compute, Nsight Systems and
#: compute-sanitizer attach to a CUDA process
INJECTION_VARIABLES = ("CUDA_INJECTION64_PATH", "NV_COMPUTE_SANITIZER_PATH")
#: set (to 1) by ``gbpfd check`` with a fresh NUMBA_CACHE_DIR, so that its
#: stages, each a process of its own, compile the control kernel once
KERNEL_CACHE_ENV = "GBPFD_KERNEL_CACHE"
MPS_PIPE = "/tmp/nvidia-mps"   # nvidia-cuda-mps-control's default pipe folder


class ToolchainError(RuntimeError):
    """The CUDA toolchain cannot serve the plane; the message names the fix."""


def force_eager_loading() -> list[str]:
    """Set eager module loading; returns the settings it overrode (``NAME=value``)."""
    overridden = [f"{k}={os.environ[k]}" for k, v in EAGER.items() if os.environ.get(k, v) != v]
    os.environ.update(EAGER)
    return overridden


def locate_toolkit() -> str | None:
    """Set ``CUDA_HOME`` to the default toolkit when nothing names one; the
    path set, or None when it left the environment alone."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or not DEFAULT_TOOLKIT.is_dir():
        return None
    os.environ["CUDA_HOME"] = str(DEFAULT_TOOLKIT)
    return str(DEFAULT_TOOLKIT)


@cache
def register_numba_cuda_overloads() -> None:
    """Import numba-cuda's numpy array overloads once with ``np.row_stack``
    present (as an alias of ``np.vstack``, which it is in numpy < 2.5), then
    leave numpy as it was.  Without numba-cuda this does nothing."""
    import numpy as np
    missing = not hasattr(np, "row_stack")
    if missing:
        np.row_stack = np.vstack
    try:
        import numba.cuda.np.arrayobj  # noqa: F401  (registration is the import's side effect)
    except ImportError:
        pass  # numba's legacy numba.cuda or none: nothing registers row_stack
    finally:
        if missing:
            del np.row_stack


def prepare() -> None:
    """Everything above, before the first compile or driver call."""
    force_eager_loading()
    locate_toolkit()
    register_numba_cuda_overloads()


def cache_if_asked(kernel) -> None:
    """Let numba-cuda cache ``kernel`` on disk when ``KERNEL_CACHE_ENV`` asks.
    Only for a cache folder made fresh for one run: numba keys a CUDA
    kernel's cache on its own file, not on the device functions it calls
    from other files, so a long-lived cache could outlive their sources."""
    if os.environ.get(KERNEL_CACHE_ENV) == "1" and os.environ.get("NUMBA_CACHE_DIR"):
        kernel.enable_caching()


def mps_running() -> bool:
    """Whether the CUDA MPS control daemon's pipe folder exists (kernels of
    several processes run concurrently only under MPS)."""
    return os.path.isdir(os.environ.get("CUDA_MPS_PIPE_DIRECTORY", MPS_PIPE))


def injected_tool() -> str | None:
    """``NAME=value`` of a profiler or sanitizer injection, or None."""
    for name in INJECTION_VARIABLES:
        if os.environ.get(name):
            return f"{name}={os.environ[name]}"
    preload = os.environ.get("LD_PRELOAD", "")
    if "sanitizer" in preload or "Nsight" in preload or "nsys" in preload:
        return f"LD_PRELOAD={preload}"
    return None


def ptx_version(ptx: str) -> tuple[int, int]:
    """The ``.version`` a PTX text declares."""
    found = re.search(r"^\s*\.version\s+(\d+)\.(\d+)", ptx, re.M)
    if not found:
        raise ToolchainError("the PTX has no .version directive")
    return int(found[1]), int(found[2])


def ptx_accepted_by(cuda_version: tuple[int, int]) -> tuple[int, int]:
    """The newest PTX ISA a driver of ``cuda_version`` (from cuDriverGetVersion) accepts."""
    if cuda_version in PTX_FOR_CUDA:
        return PTX_FOR_CUDA[cuda_version]
    major, minor = cuda_version
    if major >= 13:
        return major - 4, minor
    older = [v for v in PTX_FOR_CUDA if v <= cuda_version]
    return PTX_FOR_CUDA[max(older)] if older else (7, 0)


def ptx_mismatch(emitted: tuple[int, int], cuda_version: tuple[int, int], nvvm_path: str) -> str | None:
    """Why the driver would refuse NVVM's PTX, with the fix; None when it accepts it."""
    accepted = ptx_accepted_by(cuda_version)
    if emitted <= accepted:
        return None
    return (f"NVVM at {nvvm_path} emits PTX ISA {emitted[0]}.{emitted[1]}, but the driver (CUDA "
            f"{cuda_version[0]}.{cuda_version[1]}) accepts at most {accepted[0]}.{accepted[1]}: use the toolkit's "
            f"NVVM that matches the driver (CUDA_HOME={DEFAULT_TOOLKIT}, and no newer nvidia-nvvm wheel) or pin "
            f"the NVVM wheel to CUDA {cuda_version[0]}.{cuda_version[1]}")


def nvvm_path() -> str:
    """The libnvvm numba-cuda loads; ``ToolchainError`` naming the fix when none is found."""
    prepare()
    try:
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
        from cuda.pathfinder import load_nvidia_dynamic_lib
        return str(load_nvidia_dynamic_lib("nvvm").abs_path)
    except Exception as err:  # NvvmSupportError, DynamicLibNotFoundError, ImportError: same advice
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ToolchainError(f"libnvvm was not found ({first}): install the CUDA toolkit's NVVM and set "
                             f"CUDA_HOME to the toolkit (e.g. CUDA_HOME={DEFAULT_TOOLKIT}), or install the "
                             "nvidia-nvvm wheel matching the driver's CUDA version") from None

