"""Compile device code to PTX and assemble it with ``ptxas``, with or without
a GPU, and read what ``ptxas -v`` says each kernel costs.

numba-cuda 0.30 compiles a ``cuda.jit(device=True)`` function through
``dispatcher.compile_device``, which asks the driver for the current
device's compute capability even when ``compile_ptx`` was given ``cc``, and
asks NVRTC which architectures exist.  A machine with NVVM but no GPU and
no NVRTC (the development machines, CI) gets a stand-in for the length of
one compile: it supplies the device, pins the architecture through
numba-cuda's own FORCE_CUDA_CC setting and answers the NVRTC look-up; NVVM
does the real work.  On a GPU the stand-in is not used.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from gbpfd.cuda_toolchain import prepare, ptx_version

TARGET_CC = (9, 0)  # H100 / H200


@contextmanager
def stand_in_device(cc: tuple[int, int] = TARGET_CC):
    prepare()
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
    prepare()
    try:
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
    except Exception as err:  # NvvmSupportError, or a loader error for a broken install
        return f"NVVM is not available: {err}"
    return None


def compile_ptx(fn, sig, *, gpu: bool = False, cc: tuple[int, int] = TARGET_CC) -> str:
    """PTX for ``fn`` (a plain function or a dispatcher) with argument types ``sig``."""
    from numba import cuda
    with nullcontext() if gpu else stand_in_device(cc):
        ptx, _ = cuda.compile_ptx(getattr(fn, "py_func", fn), sig, cc=cc)
    return ptx


def emitted_ptx_version(*, gpu: bool = False) -> tuple[int, int]:
    """The PTX ISA version the NVVM found emits (one trivial kernel)."""
    from numba import types

    def one(x):
        x[0] = 1

    return ptx_version(compile_ptx(one, (types.int64[:],), gpu=gpu))


@dataclass(frozen=True)
class KernelCost:
    """What ``ptxas -v`` reports for one entry, in bytes where not a count."""
    entry: str
    registers: int
    stack_frame: int
    spill_stores: int
    spill_loads: int
    shared: int
    constant: int

    def as_dict(self) -> dict:
        return asdict(self)


_ENTRY = re.compile(r"Compiling entry function '([^']+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_CMEM = re.compile(r"(\d+) bytes cmem\[0\]")


def parse_ptxas_verbose(text: str) -> list[KernelCost]:
    """One KernelCost per entry in ``ptxas -v`` output."""
    costs = []
    parts = _ENTRY.split(text)
    for entry, body in zip(parts[1::2], parts[2::2]):
        frame, used = _FRAME.search(body), _USED.search(body)
        if not (frame and used):
            continue
        smem, cmem = _SMEM.search(body), _CMEM.search(body)
        costs.append(KernelCost(entry, int(used[1]), int(frame[1]), int(frame[2]), int(frame[3]),
                                int(smem[1]) if smem else 0, int(cmem[1]) if cmem else 0))
    return costs


def ptxas() -> str | None:
    """The ptxas on PATH or in the toolkit, or None."""
    from gbpfd.cuda_toolchain import DEFAULT_TOOLKIT
    found = shutil.which("ptxas")
    if found:
        return found
    candidate = DEFAULT_TOOLKIT / "bin" / "ptxas"
    return str(candidate) if candidate.exists() else None


def assemble(ptx: str, cc: tuple[int, int] = TARGET_CC, timeout_s: float = 300.0) -> tuple[list[KernelCost], float]:
    """Run ``ptxas -v`` on ``ptx``; the cost of each entry and the seconds it took."""
    tool = ptxas()
    if tool is None:
        raise FileNotFoundError("ptxas was not found on PATH or under the CUDA toolkit")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "k.ptx")
        src.write_text(ptx)
        started = time.perf_counter()
        done = subprocess.run([tool, "-v", f"-arch=sm_{cc[0]}{cc[1]}", str(src), "-o", str(Path(tmp, "k.cubin"))],
                              capture_output=True, text=True, timeout=timeout_s)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"ptxas failed: {(done.stderr or done.stdout).strip()[-400:]}")
    return parse_ptxas_verbose(done.stdout + done.stderr), seconds
