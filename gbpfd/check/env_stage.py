"""Stage ``env``: what this machine is and whether its CUDA toolchain can
serve the plane: package versions, NVVM and the PTX ISA it emits against
what the driver (or, with no GPU, ptxas) accepts, an injected profiler or
sanitizer; on a GPU also the device, driver, clocks, NVML and MPS."""
from __future__ import annotations

import re
import subprocess
from importlib import metadata

from gbpfd import cuda_toolchain as T
from gbpfd import ptx as P
from gbpfd.check.stage import StageContext

PACKAGES = ("numpy", "numba", "numba-cuda", "cupy-cuda13x", "cupy-cuda12x", "cuda-bindings", "cuda-core",
            "cuda-python", "nvidia-ml-py", "pyelftools", "pytest", "pytest-timeout", "hypothesis", "matplotlib")


def _versions(ctx: StageContext) -> None:
    for name in PACKAGES:
        try:
            ctx.figure(f"version.{name}", metadata.version(name), "version")
        except metadata.PackageNotFoundError:
            ctx.figure(f"version.{name}", None, "absent")


def _ptxas_cuda_version() -> tuple[int, int]:
    done = subprocess.run([P.ptxas(), "--version"], capture_output=True, text=True, timeout=30)
    found = re.search(r"release (\d+)\.(\d+)", done.stdout)
    if not found:
        raise RuntimeError(f"cannot read ptxas's release from: {done.stdout.strip()[-200:]}")
    return int(found[1]), int(found[2])


def _driver_cuda_version() -> tuple[int, int]:
    from numba.cuda.cudadrv.driver import driver
    return tuple(driver.get_version())


def _toolchain(ctx: StageContext) -> None:
    overridden = T.force_eager_loading()
    if overridden:
        ctx.note(f"forced eager module loading over {', '.join(overridden)}")
    injected = T.injected_tool()
    if injected:
        raise RuntimeError(f"a profiler or sanitizer is injected ({injected}): it serialises kernels, and the "
                           "plane's resident control kernel would deadlock beside it; run the check without it")
    path = T.nvvm_path()
    ctx.figure("nvvm", path, "path")
    emitted = P.emitted_ptx_version(gpu=ctx.gpu)
    ctx.figure("ptx_emitted", "%d.%d" % emitted, "PTX ISA")
    judge, cuda_version = ("driver", _driver_cuda_version()) if ctx.gpu else ("ptxas", _ptxas_cuda_version())
    ctx.figure(f"{judge}_cuda", "%d.%d" % cuda_version, "CUDA")
    ctx.figure("ptx_accepted", "%d.%d" % T.ptx_accepted_by(cuda_version), "PTX ISA")
    mismatch = T.ptx_mismatch(emitted, cuda_version, path)
    if mismatch:
        raise RuntimeError(mismatch)


def _gpu(ctx: StageContext) -> None:
    from gbpfd.bench.machine import gpu_facts
    for key, value in gpu_facts().items():
        ctx.figure(key, value, "")
    ctx.figure("mps_daemon", T.mps_running(), "present")
    try:
        import pynvml
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        for name, clock in (("sm_clock", pynvml.NVML_CLOCK_SM), ("mem_clock", pynvml.NVML_CLOCK_MEM)):
            ctx.figure(name, pynvml.nvmlDeviceGetClockInfo(handle, clock), "MHz")
            ctx.figure(f"{name}_max", pynvml.nvmlDeviceGetMaxClockInfo(handle, clock), "MHz")
        pynvml.nvmlShutdown()
        ctx.figure("nvml", True, "readable")
    except Exception as err:  # NVML absent or refusing: a fact to record, not a failure of the check
        ctx.figure("nvml", False, "readable")
        ctx.note(f"NVML: {err}")


def run(ctx: StageContext) -> None:
    _versions(ctx)
    _toolchain(ctx)
    if ctx.gpu:
        _gpu(ctx)
