"""``gbpfd.admit_raw``: put a CUDA C kernel (a CuPy ``RawKernel``, or one
from a ``RawModule``) under the plane's admission control, in gate mode.

The kernel includes ``kernels/gbpfd_admit.cuh``, takes ``GBPFD_GATE_PARAMS``
as its first parameters and brackets its body with ``GBPFD_CTA_ENTER()`` /
``GBPFD_CTA_EXIT()``.  The launch keeps CuPy's form,
``kernel(grid, block, args)``: the plane's ``ctl`` and ``flat`` pointers
and the tenant's index are put in front of ``args``.  Everything is checked
before anything reaches the device.  Persistent-worker mode is not
implemented for C kernels (use ``gbpfd.admit`` on a Numba kernel for it).

Nothing here imports CuPy at module level: the wrapper passes plain values
to the kernel object it was given, and asks CuPy only for the current
stream a launch went to (to report its completion).
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np

from gbpfd.admission import MODES, AdmitError, require_gpu_plane, require_running
from gbpfd.resources import shared_file

HEADER = "gbpfd_admit.cuh"
LAYOUT_HEADER = "gbpfd_layout.h"
GATE_PARAMS = "GBPFD_GATE_PARAMS"


class ModeNotImplementedError(AdmitError, NotImplementedError):
    """A mode ``gbpfd.admit`` has for Numba kernels but ``admit_raw`` has not."""


def include_dir() -> Path:
    """The folder that holds ``gbpfd_admit.cuh`` and ``gbpfd_layout.h``."""
    return shared_file("kernels", HEADER).parent


def compile_options() -> tuple[str, ...]:
    """Options for ``cupy.RawModule`` / ``cupy.RawKernel``: the include path,
    and the headers' digest as a define, because CuPy's kernel cache is keyed
    on the source and the options, not on included files: a kernel built
    against other word offsets is then never reused."""
    folder = include_dir()
    digest = hashlib.sha256(b"".join((folder / name).read_bytes() for name in (HEADER, LAYOUT_HEADER)))
    return (f"-I{folder}", f"-DGBPFD_HEADERS_DIGEST=0x{digest.hexdigest()[:12]}")


def admit_raw(plane, tenant: str, *, mode: str = "gate"):
    """Decorator-style, like ``gbpfd.admit``:
    ``gated = gbpfd.admit_raw(plane, tenant="infer")(module.get_function("scale"))``,
    then ``gated(grid, block, args)`` as with the RawKernel itself."""
    def wrap(kernel):
        return AdmittedRawKernel(plane, tenant, kernel, mode=mode)
    return wrap


class AdmittedRawKernel:
    def __init__(self, plane, tenant: str, kernel, *, mode: str = "gate"):
        if mode not in MODES:
            raise AdmitError(f"admit_raw: mode must be one of {', '.join(MODES)}; got {mode!r}")
        if mode != "gate":
            raise ModeNotImplementedError(
                f"admit_raw: mode={mode!r} is not implemented for CUDA C kernels; use mode='gate', or "
                f"gbpfd.admit(..., mode={mode!r}) on a Numba kernel")
        if not callable(kernel):
            raise AdmitError(f"admit_raw: expected a CuPy RawKernel (kernel(grid, block, args)), got "
                             f"{type(kernel).__name__}")
        self.plane, self.kernel, self.mode = plane, kernel, mode
        self.name = str(getattr(kernel, "name", None) or type(kernel).__name__)
        self.tenant_index = plane.quotas.index(tenant)  # names the known tenants when it is missing
        self.tenant = tenant
        check_signature(self.name, getattr(kernel, "code", None))

    def preload(self) -> None:
        """Compile and load the kernel before the plane starts (a module loaded
        while the control kernel is resident would wait for it forever; see
        ``AdmittedKernel.preload``).  A ``cupy.RawKernel`` compiles lazily, so
        this calls its ``compile()``; a function from a ``RawModule`` was loaded
        with its module by ``get_function`` and needs nothing."""
        require_gpu_plane(self.plane, f"{self.name}.preload")
        compile_ = getattr(self.kernel, "compile", None)
        if callable(compile_):
            compile_()

    def __call__(self, grid, block, args, **launch):
        """Launch as ``RawKernel.__call__`` does (``shared_mem=`` and other
        keywords pass through), with the gate's arguments in front of ``args``."""
        require_gpu_plane(self.plane, self.name)
        require_running(self.plane, self.name)
        grid, block = launch_dims(self.name, "grid", grid), launch_dims(self.name, "block", block)
        if not isinstance(args, (tuple, list)):
            raise AdmitError(f"{self.name}: args must be a tuple of the kernel's own arguments (after "
                             f"{GATE_PARAMS}); got {type(args).__name__}")
        d = self.plane.device
        gate = (device_pointer(d["ctl"]), device_pointer(d["flat"]), np.int64(self.tenant_index))
        self.plane.announce_launch(self.tenant_index, math.prod(grid))
        self.kernel(grid, block, gate + tuple(args), **launch)
        self.plane.report_when_done(self.tenant_index, launch.get("stream") or current_stream())


def current_stream():
    """CuPy's current stream, which a launch without ``stream=`` goes to (only a CuPy kernel gets here)."""
    import cupy
    return cupy.cuda.get_current_stream()


def launch_dims(name: str, what: str, value) -> tuple[int, ...]:
    """A positive int or a tuple of 1 to 3 positive ints, as a tuple (CuPy
    wants tuples, and would launch a zero extent as 1)."""
    dims = (value,) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if not (isinstance(dims, tuple) and 1 <= len(dims) <= 3 and all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in dims)):
        raise AdmitError(f"{name}: {what} must be a positive int or a tuple of 1 to 3 positive ints; "
                         f"got {value!r}")
    return tuple(int(n) for n in dims)


def device_pointer(array) -> np.uint64:
    """The device address of a plane array (Numba or CuPy: anything with
    ``__cuda_array_interface__``), as the 8-byte scalar a pointer parameter takes."""
    return np.uint64(array.__cuda_array_interface__["data"][0])


def check_signature(name: str, code) -> None:
    """Refuse a kernel whose source defines it without ``GBPFD_GATE_PARAMS``
    first: the prepended pointers would land in its own parameters.  A kernel
    loaded from a binary, or whose definition is not found in its source
    (a template, a macro), is taken as it is."""
    if not isinstance(code, str):
        return
    found = re.search(r"__global__[^;{}]*?\b" + re.escape(name) + r"\s*\(\s*([A-Za-z_]\w*)?", code)
    if found and found.group(1) != GATE_PARAMS:
        first = found.group(1) or "no parameter"
        raise AdmitError(f"{name}: a kernel under admit_raw takes {GATE_PARAMS} (from {HEADER}) as its first "
                         f"parameters, which the plane fills; its parameter list starts with {first!r}")
