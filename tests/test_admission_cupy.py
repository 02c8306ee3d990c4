"""gbpfd.admit_raw: CUDA C kernels under admission control.

The wrapper's checks and argument handling run anywhere, with stand-ins for
the plane's device arrays and for a CuPy RawKernel (nothing here imports
CuPy).  The last tests launch gated RawKernels on a real plane and need a
GPU and CuPy (marked ``gpu``).  As in tests/plane/test_plane_gpu.py, their
modules are compiled and loaded and their arrays made before the plane
starts, nothing is freed while it runs, and every wait is bounded.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
import tomllib
from types import SimpleNamespace

import numpy as np
import pytest

import gbpfd
from gbpfd import admission_cupy
from gbpfd.bench.gpu_sync import settle
from gbpfd.bench.policies import NO_TOKENS_TICK_ASM as NO_TOKENS_TICK
from gbpfd.admission import AdmitError
from gbpfd.admission_cupy import GATE_PARAMS, AdmittedRawKernel, ModeNotImplementedError, admit_raw
from gbpfd.device import state as S
from gbpfd.quotas.load import UnknownTenantError, load_quotas
from gbpfd.resources import shared_file

# A kernel loaded lazily may need a context synchronisation, which would wait for
# the resident control kernel forever; CUDA reads this when it initialises.
os.environ.setdefault("CUDA_MODULE_LOADING", "EAGER")

CTL_AT, FLAT_AT = 0x7F00_0000_1000, 0x7F00_0020_0000

MARK_SOURCE = r"""
#include "gbpfd_admit.cuh"

extern "C" __global__ void mark(GBPFD_GATE_PARAMS, long long *marks, long long base) {
    GBPFD_CTA_ENTER();
    if (threadIdx.x == 0) atomicAdd((unsigned long long *)&marks[base + blockIdx.x], 1ULL);
    GBPFD_CTA_EXIT();
}

extern "C" __global__ void __launch_bounds__(256) rounds(GBPFD_GATE_PARAMS, long long *marks, int count) {
    GBPFD_CTA_ENTER_WITH_WARP_GATE();
    for (int r = 0; r < count; ++r) {
        if (threadIdx.x % 32 == 0) atomicAdd((unsigned long long *)&marks[blockIdx.x], 1ULL);
        GBPFD_WARP_GATE();
    }
    GBPFD_CTA_EXIT();
}
"""


class DeviceArray:
    """Stands in for a plane array on the device: only its address is read."""

    def __init__(self, address: int):
        self.__cuda_array_interface__ = {"data": (address, False), "shape": (1,), "typestr": "<i8", "version": 3}


class Plane:
    """Stands in for a running GPU plane; records announcements in ``log``."""

    def __init__(self, log: list):
        self.simulated, self.running = False, True
        self.quotas = load_quotas(shared_file("quotas", "demo.toml"))
        self.device = {"ctl": DeviceArray(CTL_AT), "flat": DeviceArray(FLAT_AT)}
        self.log = log

    def announce_launch(self, tenant: int, ctas: int) -> None:
        self.log.append(("announce", tenant, ctas))

    def report_when_done(self, tenant: int, stream) -> None:
        self.log.append(("report when done", tenant, stream))


class RawKernel:
    """Stands in for cupy.RawKernel: a name, a source, and launches in ``log``."""

    def __init__(self, log: list, name: str = "mark", code: str | None = MARK_SOURCE):
        self.name, self.code, self.log = name, code, log

    def __call__(self, grid, block, args, **launch):
        self.log.append(("launch", grid, block, args, launch))


@pytest.fixture
def log(monkeypatch):
    """The fake plane's record; CuPy's current stream stands in as a name (CuPy may not be installed)."""
    monkeypatch.setattr(admission_cupy, "current_stream", lambda: "cupy's current stream")
    return []


def gated(log, tenant="train", **kernel):
    return admit_raw(Plane(log), tenant)(RawKernel(log, **kernel))


# ------------------------------------------------------- the launch
def test_the_gate_arguments_go_in_front_and_the_launch_is_announced_first(log):
    marks = object()
    gated(log)((4, 2), (64,), (marks, np.int64(7)), shared_mem=128)
    train = load_quotas(shared_file("quotas", "demo.toml")).index("train")
    assert [entry[0] for entry in log] == ["announce", "launch", "report when done"]
    assert log[0] == ("announce", train, 8)   # with its CTAs: the grid's product
    assert log[2] == ("report when done", train, "cupy's current stream")
    _, grid, block, args, launch = log[1]
    assert (grid, block, launch) == ((4, 2), (64,), {"shared_mem": 128})
    assert args[3:] == (marks, 7)
    assert [type(a) for a in args[:3]] == [np.uint64, np.uint64, np.int64]   # 8 bytes each, as the C params
    assert [int(a) for a in args[:3]] == [CTL_AT, FLAT_AT, train]


def test_an_int_grid_and_block_become_the_tuples_cupy_takes(log):
    gated(log, tenant="batch")(12, np.int32(256), [])
    _, grid, block, args, _ = log[1]  # the launch, between its announcement and its report
    assert (grid, block) == ((12,), (256,))
    assert int(args[2]) == load_quotas(shared_file("quotas", "demo.toml")).index("batch")


def test_a_launch_on_a_plane_that_is_not_running_is_refused(log):
    kernel = gated(log)
    kernel.plane.running = False
    with pytest.raises(AdmitError, match=r"^mark: the plane is not running; launch inside its with block"):
        kernel(1, 32, ())
    assert log == []


def test_preload_compiles_a_lazy_raw_kernel_and_takes_a_module_function_as_loaded(log):
    lazy = type("RawKernel", (RawKernel,), {"compile": lambda self: self.log.append(("compile",))})
    admit_raw(Plane(log), "train")(lazy(log)).preload()
    admit_raw(Plane(log), "train")(RawKernel(log)).preload()   # no compile(): loaded with its RawModule
    assert log == [("compile",)]


def test_gbpfd_admit_hands_a_cupy_kernel_to_admit_raw(log):
    cupy_like = type("RawKernel", (RawKernel,), {"__module__": "cupy._core.raw"})
    wrapped = gbpfd.admit(Plane(log), tenant="train")(cupy_like(log))
    assert isinstance(wrapped, AdmittedRawKernel)
    wrapped(1, 32, ())
    assert [entry[0] for entry in log] == ["announce", "launch", "report when done"]


def test_gbpfd_exports_admit_raw():
    assert gbpfd.admit_raw is admit_raw
    assert "admit_raw" in gbpfd.__all__


# ------------------------------------------ refused before the device
def test_an_unknown_tenant_is_refused_when_wrapping_and_the_known_ones_are_named(log):
    with pytest.raises(UnknownTenantError, match=r"no tenant 'inference'; the tenants are infer, train, batch"):
        gated(log, tenant="inference")
    assert log == []


@pytest.mark.parametrize("grid, block", [(0, 64), ((4, 0), 64), (4, ()), (4, (1, 1, 1, 1)), (1.5, 64),
                                         (True, 64), (4, "64"), (-2, 64)])
def test_a_bad_launch_shape_is_refused_and_nothing_is_announced(log, grid, block):
    kernel = gated(log)
    with pytest.raises(AdmitError, match=r"mark: (grid|block) must be a positive int or a tuple of 1 to 3"):
        kernel(grid, block, ())
    assert log == []


def test_args_must_be_a_tuple_of_the_kernels_own_arguments(log):
    with pytest.raises(AdmitError, match=rf"mark: args must be a tuple of the kernel's own arguments \(after "
                                         rf"{GATE_PARAMS}\); got ndarray"):
        gated(log)(4, 64, np.zeros(3))
    assert log == []


def test_a_simulated_plane_is_refused_without_touching_a_device(log):
    plane = gbpfd.Plane(backend="sim", quotas=shared_file("quotas", "demo.toml"))
    kernel = admit_raw(plane, "train")(RawKernel(log))
    with pytest.raises(AdmitError, match=r"mark: admitted kernels run on the GPU backend; this plane is on the "
                                         r"simulated device"):
        kernel(4, 64, ())
    assert log == []


def test_persistent_mode_is_not_implemented_and_says_what_to_use(log):
    with pytest.raises(ModeNotImplementedError, match=r"mode='persistent' is not implemented for CUDA C kernels; "
                                                      r"use mode='gate', or gbpfd.admit\(\.\.\., mode='persistent'\)"):
        admit_raw(Plane(log), "train", mode="persistent")(RawKernel(log))
    assert issubclass(ModeNotImplementedError, NotImplementedError) and issubclass(ModeNotImplementedError,
                                                                                  AdmitError)


def test_an_unknown_mode_is_refused_with_the_modes(log):
    with pytest.raises(AdmitError, match=r"admit_raw: mode must be one of gate, persistent; got 'fast'"):
        admit_raw(Plane(log), "train", mode="fast")(RawKernel(log))


def test_a_kernel_that_cannot_be_launched_is_refused(log):
    with pytest.raises(AdmitError, match=r"admit_raw: expected a CuPy RawKernel .* got str"):
        admit_raw(Plane(log), "train")("mark")


@pytest.mark.parametrize("source, first", [
    ('extern "C" __global__ void mark(long long *marks, long long base) {}', "long"),
    ('extern "C" __global__ void mark() {}', "no parameter"),
    ('extern "C" __global__ void mark(GBPFD_GATE_PARAMS) {}\n'
     'extern "C" __global__ void __launch_bounds__(128) mark2(int n) {}', None),
    ('__global__ void helper(int n) {}\nextern "C" __global__ void\nmark(\n  float *x) {}', "float"),
])
def test_a_source_that_defines_the_kernel_without_the_gate_params_is_refused(log, source, first):
    if first is None:
        gated(log, code=source)            # another kernel's parameters are not this one's business
        return
    with pytest.raises(AdmitError, match=rf"mark: a kernel under admit_raw takes {GATE_PARAMS} \(from "
                                         rf"gbpfd_admit.cuh\) as its first parameters, which the plane fills; "
                                         rf"its parameter list starts with '{first}'"):
        gated(log, code=source)


@pytest.mark.parametrize("code", [None, "/* built elsewhere */", MARK_SOURCE])
def test_a_kernel_without_a_readable_definition_or_with_the_gate_params_is_taken(log, code):
    gated(log, name="rounds", code=code)(1, 32, ())
    assert [entry[0] for entry in log] == ["announce", "launch", "report when done"]


# ----------------------------------------------------- compile options
def test_compile_options_name_the_header_folder_and_change_with_the_headers(tmp_path, monkeypatch):
    folder = admission_cupy.include_dir()
    assert (folder / "gbpfd_admit.cuh").is_file() and (folder / "gbpfd_layout.h").is_file()
    include, digest = admission_cupy.compile_options()
    assert include == f"-I{folder}" and digest.startswith("-DGBPFD_HEADERS_DIGEST=0x")
    for name in ("gbpfd_admit.cuh", "gbpfd_layout.h"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    monkeypatch.setattr(admission_cupy, "include_dir", lambda: tmp_path)
    assert admission_cupy.compile_options()[1] == digest
    layout = tmp_path / "gbpfd_layout.h"
    layout.write_text(re.sub(r"(#define GBPFD_NSLOTS +)64", r"\g<1>32", layout.read_text()))
    assert hashlib.sha256(layout.read_bytes()).digest() != hashlib.sha256((folder / "gbpfd_layout.h").read_bytes())
    assert admission_cupy.compile_options()[1] != digest   # CuPy's cache then compiles the kernel afresh


# ------------------------------------------------------------ on a GPU
TENANT = "train"
THREADS = 64
WAIT_S = 120.0


def _finish(stream, timeout_s: float = WAIT_S) -> None:
    """Wait for the work queued on ``stream`` (never a device-wide synchronise)."""
    done = stream.record()
    deadline = time.monotonic() + timeout_s
    while not done.done:
        if time.monotonic() > deadline:
            pytest.fail(f"the GPU work did not finish within {timeout_s} s")
        time.sleep(0.0005)


def _device_words(plane, tenant: str = TENANT) -> SimpleNamespace:
    """The tenant's counters (from flat, checked against the host's mirror) and ctl words."""
    settle(plane)
    t = plane.quotas.index(tenant)
    flat, ctl = plane.device["flat"].copy_to_host(), plane.device["ctl"].copy_to_host()
    at = S.COUNTERS_WORD + t * S.COUNTER_RECORD_WORDS
    counters = {name: int(flat[at + i]) for name, i in S.COUNTER._asdict().items()}
    assert {k: v for k, v in plane.counters()[tenant].items() if k != "latency_histogram"} == counters
    at = S.TENANT_BASE + t * S.TENANT_STRIDE
    words = {name: int(ctl[at + i]) for name, i in S.TENANT._asdict().items()}
    return SimpleNamespace(counters=counters, words=words, total_running=int(ctl[S.PLANE.total_running]))


@pytest.fixture
def gpu_kernels():
    """The module compiled and loaded, and one launch made, before any plane
    starts: on spare plane words, whose wait bound of 0 lets every CTA bypass."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (the 'cuda' extra)")
    module = cupy.RawModule(code=MARK_SOURCE, options=admission_cupy.compile_options())
    kernels = {name: module.get_function(name) for name in ("mark", "rounds")}
    spare = (cupy.zeros(S.CTL_WORDS, cupy.int64), cupy.zeros(S.FLAT_WORDS, cupy.int64), np.int64(0))
    scratch = cupy.zeros(THREADS, cupy.int64)
    stream = cupy.cuda.Stream()
    with stream:
        kernels["mark"]((1,), (THREADS,), (*spare, scratch, np.int64(0)))
        kernels["rounds"]((1,), (THREADS,), (*spare, scratch, np.int32(1)))
    _finish(stream)
    return SimpleNamespace(cupy=cupy, stream=stream, spare=spare, **kernels)


@pytest.mark.gpu
def test_a_gated_raw_kernel_is_admitted_by_token_then_by_request_and_counted(gpu_kernels):
    from gbpfd.isa.asm import assemble
    cupy, stream, ctas = gpu_kernels.cupy, gpu_kernels.stream, 64
    marks = cupy.zeros(2 * ctas, cupy.int64)
    _finish(stream)
    plane = gbpfd.Plane(backend="cuda", quotas=shared_file("quotas", "demo.toml"))
    kernel = admit_raw(plane, TENANT)(gpu_kernels.mark)
    with plane:
        settle(plane)
        start = plane.plane_stats()
        with stream:
            kernel((ctas,), (THREADS,), (marks, np.int64(0)))       # the baseline tick left tokens
        _finish(stream)
        plane.load(assemble(NO_TOKENS_TICK, "<test>"), "tick")
        settle(plane)
        by_token = plane.plane_stats()
        with stream:
            kernel(ctas, THREADS, (marks, np.int64(ctas)))           # no tokens: every CTA asks cta_admit
        _finish(stream)
        after = _device_words(plane)
        by_request = plane.plane_stats()
    assert (cupy.asnumpy(marks) == 1).all()
    assert by_token["fast_grants"] - start["fast_grants"] == ctas
    assert by_token["requests"] == start["requests"]
    assert by_request["requests"] - by_token["requests"] == ctas
    assert by_request["decisions"] - by_token["decisions"] == ctas
    assert (after.counters["admitted"], after.counters["bypassed"], after.counters["deferred"]) == (2 * ctas, 0, 0)
    assert (after.words["running"], after.words["queued"], after.total_running) == (0, 0, 0)


def _quotas(train_warp_cap: int | None):
    """The demo quotas, with train's warp cap lowered when one is given."""
    with open(shared_file("quotas", "demo.toml"), "rb") as fh:
        data = tomllib.load(fh)
    if train_warp_cap is not None:
        data["tenants"][TENANT]["warp_cap"] = train_warp_cap
    return load_quotas(data)


@pytest.mark.gpu
@pytest.mark.parametrize("warp_cap", [None, 2], ids=["no cap", "two warps"])
def test_a_warp_gated_raw_kernel_waits_at_the_cap_and_gives_back_every_warp_slot(gpu_kernels, warp_cap):
    cupy, stream, ctas, warps, count = gpu_kernels.cupy, gpu_kernels.stream, 128, 8, 50
    marks = cupy.zeros(ctas, cupy.int64)
    _finish(stream)
    plane = gbpfd.Plane(backend="cuda", quotas=_quotas(warp_cap))
    kernel = admit_raw(plane, TENANT)(gpu_kernels.rounds)
    with plane:
        before = _device_words(plane)
        with stream:
            kernel(ctas, warps * 32, (marks, np.int32(count)))
        _finish(stream)
        after = _device_words(plane)
    ran = {k: after.counters[k] - before.counters[k] for k in ("admitted", "bypassed", "throttled_ns")}
    assert (cupy.asnumpy(marks) == count * warps).all()              # every warp ran every round
    if warp_cap is None:   # 1024 warps under a cap of 65535: no warp ever waits
        assert (ran["admitted"] + ran["bypassed"], ran["throttled_ns"]) == (ctas, 0)
    else:                  # a warp past its bound bypasses, and is counted as a bypass too
        assert ran["throttled_ns"] > 0 and ran["admitted"] + ran["bypassed"] >= ctas
    assert (after.words["warps_active"], after.words["warps_waiting"]) == (0, 0)
    assert (after.words["running"], after.words["queued"], after.total_running) == (0, 0, 0)
