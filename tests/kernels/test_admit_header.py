"""kernels/gbpfd_admit.cuh: it compiles for sm_90 with nvcc and ptxas (and
with NVRTC, as CuPy compiles it, where NVRTC can be loaded), and its steps
and bounded waits do what the Numba device code does, word for word.

No GPU is needed.  The header's host build (plain memory, a clock the test
supplies) is compiled with the host C++ compiler and run, one thread, beside
the Python source of gates.py and of kernels_cuda.py's waits on copies of
the same words, with the same clock and the same stand-in for the control
CTA (called at every clock read).  What cannot run here, the CTA- and
warp-level wrappers and the PTX primitives, is checked in the compiled PTX.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import types
from pathlib import Path

import numpy as np
import pytest

from gbpfd.specialize import specialize
from gbpfd.device import gates, prims_cpu
from gbpfd.device import state as S

KERNELS = Path(__file__).resolve().parents[2] / "kernels"
ARCH = "sm_90"  # H100 / H200
FLAT_WORDS = S.COUNTERS_WORD + S.MAX_TENANTS * S.COUNTER_RECORD_WORDS  # the part of flat the gates touch
BOUND_NS = 3_000
DEFER_BOUND_NS = 3 * BOUND_NS

KERNEL_SOURCE = r"""
#include "gbpfd_admit.cuh"

extern "C" __global__ void mark(GBPFD_GATE_PARAMS, long long *marks, long long base) {
    GBPFD_CTA_ENTER();
    if (threadIdx.x == 0) atomicAdd((unsigned long long *)&marks[base + blockIdx.x], 1ULL);
    GBPFD_CTA_EXIT();
}

extern "C" __global__ void rounds(GBPFD_GATE_PARAMS, float *x, int n, int count) {
    GBPFD_CTA_ENTER_WITH_WARP_GATE();
    for (int r = 0; r < count; ++r) {
        const int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i < n) x[i] += 1.0f;
        GBPFD_WARP_GATE();
    }
    GBPFD_CTA_EXIT();
}

extern "C" __global__ void paced(GBPFD_GATE_PARAMS, long long *dst, const long long *src, long long n) {
    if (threadIdx.x == 0) {
        gbpfd_dma_announce(gbpfd_ctl, gbpfd_tenant, n * 8);
        gbpfd_dma_take_wait(gbpfd_ctl, gbpfd_flat, gbpfd_tenant, n * 8);
    }
    __syncthreads();
    for (long long i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
}
"""

UNGATED_WARP_GATE = r"""
#include "gbpfd_admit.cuh"
extern "C" __global__ void k(GBPFD_GATE_PARAMS, int n) {
    GBPFD_CTA_ENTER();
    for (int r = 0; r < n; ++r) GBPFD_WARP_GATE();
    GBPFD_CTA_EXIT();
}
"""

#: the SM the host build's waits say they run on (both sides)
HOST_SM = 7
SHIM = r"""
#include "gbpfd_admit.cuh"
#define HOST_SM """ + str(HOST_SM) + r"""

typedef long long ll;
typedef void (*actor_fn)(ll now);
static ll clock_ns;
static actor_fn actor;

extern "C" void clock_set(ll now, actor_fn a) { clock_ns = now; actor = a; }
extern "C" ll clock_get(void) { return clock_ns; }
extern "C" ll gbpfd_host_globaltimer(void) { ++clock_ns; if (actor) actor(clock_ns); return clock_ns; }
extern "C" void gbpfd_host_nanosleep(ll ns) { clock_ns += ns; }
extern "C" ll gbpfd_host_smid(void) { return HOST_SM; }

extern "C" {
ll try_token(ll *c, ll t, ll now) { return gbpfd_try_token(c, t, now); }
ll post_request(ll *c, ll t, ll sm, ll now) { return gbpfd_post_request(c, t, sm, now); }
ll poll_request(ll *c, ll s) { return gbpfd_poll_request(c, s); }
ll abandon_request(ll *c, ll s) { return gbpfd_abandon_request(c, s); }
ll bypass(ll *c, ll *f, ll t) { return gbpfd_bypass(c, f, t); }
ll cta_exit(ll *c, ll t, ll how) { gbpfd_cta_exit(c, t, how); return 0; }
ll take_token(ll *c, ll t) { return gbpfd_take_token(c, t); }
ll count_block(ll *f, ll t, ll how) { gbpfd_count_block(f, t, how); return 0; }
ll dma_take(ll *c, ll *f, ll t, ll n) { return gbpfd_dma_take(c, f, t, n); }
ll dma_announce(ll *c, ll t, ll n) { gbpfd_dma_announce(c, t, n); return 0; }
ll warp_enter(ll *c, ll t) { return gbpfd_warp_enter(c, t); }
ll warp_leave(ll *c, ll t) { gbpfd_warp_leave(c, t); return 0; }
ll warp_throttled(ll *c, ll *f, ll t, ll w, ll d) { gbpfd_warp_throttled(c, f, t, w, d); return 0; }
ll cta_enter(ll *c, ll *f, ll t, ll persistent) { return gbpfd_cta_enter(c, f, t, persistent != 0); }
ll warp_gate_wait(ll *c, ll *f, ll t) { gbpfd_warp_gate_wait(c, f, t); return 0; }
ll dma_take_wait(ll *c, ll *f, ll t, ll n) { return gbpfd_dma_take_wait(c, f, t, n); }
}
"""
#: shim step: its parameters ("c", "f": the ctl and flat arrays, "t": a tenant,
#: "n": a value) and the ranges the "n" values are drawn from
STEPS = {
    "try_token": ("ctn", [(0, 10**12)]), "post_request": ("ctnn", [(0, 192), (0, 10**12)]),
    "poll_request": ("cn", [(0, S.NSLOTS)]), "abandon_request": ("cn", [(0, S.NSLOTS)]), "bypass": ("cft", []),
    "cta_exit": ("ctn", [(0, 4)]), "count_block": ("ftn", [(0, 4)]), "take_token": ("ct", []), "dma_take": ("cftn", [(0, 12)]), "dma_announce": ("ctn", [(-12, 12)]),
    "warp_enter": ("ct", []), "warp_leave": ("ct", []), "warp_throttled": ("cftnn", [(0, 1000), (-1, 2)]),
}
WAITS = {"cta_enter": "cftn", "warp_gate_wait": "cft", "dma_take_wait": "cftn"}
ACTOR = ctypes.CFUNCTYPE(None, ctypes.c_longlong)


# ------------------------------------------------------------ compilers
def find_nvcc() -> str | None:
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(var)
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return str(Path(root) / "bin" / "nvcc")
    for root in sorted(Path("/usr/local").glob("cuda*"), reverse=True):
        if (root / "bin" / "nvcc").is_file():
            return str(root / "bin" / "nvcc")
    return shutil.which("nvcc")


def find_cxx() -> str | None:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


@pytest.fixture(scope="module")
def nvcc():
    found = find_nvcc()
    if not found:
        pytest.skip("nvcc not found (looked in $CUDA_HOME, $CUDA_PATH, /usr/local/cuda*/bin and PATH)")
    return found


def compile_ptx(nvcc: str, source: str, tmp: Path) -> subprocess.CompletedProcess:
    (tmp / "k.cu").write_text(source)
    return subprocess.run([nvcc, f"-arch={ARCH}", "-ptx", "--Werror", "all-warnings", f"-I{KERNELS}", "k.cu",
                           "-o", "k.ptx"], cwd=tmp, capture_output=True, text=True)


@pytest.fixture(scope="module")
def nvrtc():
    try:
        from cuda.bindings import nvrtc
        nvrtc.nvrtcVersion()
    except Exception as err:  # no cuda-bindings, or no libnvrtc for it to load
        pytest.skip(f"NVRTC (what CuPy compiles RawModules with) is not available: {str(err).splitlines()[0]}")
    return nvrtc


def nvrtc_ptx(nvrtc, source: str, options: list[str]) -> tuple[bool, str, str]:
    """Compile with NVRTC: whether it succeeded, the log, and the PTX."""
    _, prog = nvrtc.nvrtcCreateProgram(source.encode(), b"k.cu", 0, [], [])
    try:
        (result,) = nvrtc.nvrtcCompileProgram(prog, len(options), [o.encode() for o in options])
        _, size = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        ptx = b""
        if result == nvrtc.nvrtcResult.NVRTC_SUCCESS:
            _, size = nvrtc.nvrtcGetPTXSize(prog)
            ptx = b" " * size
            nvrtc.nvrtcGetPTX(prog, ptx)
        ok = result == nvrtc.nvrtcResult.NVRTC_SUCCESS
        return ok, log.rstrip(b"\0").decode(errors="replace"), ptx.rstrip(b"\0").decode()
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


@pytest.fixture(scope="module")
def host_build(tmp_path_factory):
    cxx = find_cxx()
    if not cxx:
        pytest.skip("no host C++ compiler found ($CXX, c++, g++ or clang++)")
    tmp = tmp_path_factory.mktemp("admit_host")
    (tmp / "shim.cpp").write_text(SHIM)
    done = subprocess.run([cxx, "-std=c++14", "-O1", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                           f"-I{KERNELS}", "shim.cpp", "-o", "shim.so"], cwd=tmp, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lib = ctypes.CDLL(str(tmp / "shim.so"))
    for name in (*STEPS, *WAITS, "clock_get"):
        getattr(lib, name).restype = ctypes.c_longlong
    return lib


# ------------------------------------------------------ the Python side
class Clock:
    """%globaltimer as the tests see it: one ns per read, plus what sleeps
    add; every read lets the stand-in control CTA act first."""

    def __init__(self, now: int, actor):
        self.now, self.actor = now, actor

    def read(self) -> int:
        self.now += 1
        self.actor(self.now)
        return self.now

    def sleep(self, ns: int) -> None:
        self.now += int(ns)


def python_steps():
    prims = {name: fn.py_func for name, fn in prims_cpu.PRIMS.items()}
    return specialize(gates.DEVICE_FUNCTIONS, prims, lambda fn: fn)


def python_waits(clock: Clock):
    """kernels_cuda's waits, run as Python with the clock and the Python steps."""
    kernels_cuda = pytest.importorskip("gbpfd.device.kernels_cuda", reason="numba-cuda is not installed")
    g = python_steps()
    atomic_add = prims_cpu.PRIMS["atomic_add"].py_func
    table = dict(vars(kernels_cuda), **vars(g), _cta_exit=g.cta_exit, globaltimer=clock.read, smid=lambda: HOST_SM,
                 cuda=types.SimpleNamespace(nanosleep=clock.sleep, atomic=types.SimpleNamespace(add=atomic_add)))
    return {name: types.FunctionType(getattr(kernels_cuda, name).py_func.__code__, table, name) for name in WAITS}


def _c_args(kinds: str, ctl, flat, values):
    ptr = ctypes.POINTER(ctypes.c_longlong)
    out, rest = [], iter(values)
    for kind in kinds:
        if kind == "c":
            out.append(ctl.ctypes.data_as(ptr))
        elif kind == "f":
            out.append(flat.ctypes.data_as(ptr))
        else:
            out.append(ctypes.c_longlong(int(next(rest))))
    return out


def _py_args(kinds: str, ctl, flat, values):
    rest = iter(values)
    return [ctl if k == "c" else flat if k == "f" else int(next(rest)) for k in kinds]


# --------------------------------------------------------------- states
def random_state(rng):
    ctl = np.zeros(S.CTL_WORDS, np.int64)
    flat = rng.integers(0, 100, FLAT_WORDS).astype(np.int64)
    ctl[S.PLANE.total_running] = rng.integers(0, 6)
    ctl[S.PLANE.global_cta_cap] = rng.integers(0, 6)
    ctl[S.PLANE.wait_bound_ns] = BOUND_NS
    ctl[S.PLANE.defer_bound_ns] = DEFER_BOUND_NS
    tenants = slice(S.TENANT_BASE, S.SLOT_BASE)
    ctl[tenants] = rng.integers(-2, 12, S.SLOT_BASE - S.TENANT_BASE)
    for s in range(S.NSLOTS):
        w = S.SLOT_BASE + s * S.SLOT_STRIDE
        ctl[w + S.SLOT.state] = rng.choice([S.FREE, S.FREE, S.CLAIMED, S.POSTED, S.SERVING, S.DECIDED,
                                            S.ABANDONED])
        ctl[w + S.SLOT.tenant] = rng.integers(0, S.MAX_TENANTS)
        ctl[w + S.SLOT.decision] = rng.integers(S.DEFER, S.ADMIT + 1)
    return ctl, flat


def _values(step: str, rng) -> list[int]:
    """Values for the non-array parameters: the tenant, then the step's own."""
    kinds, ranges = STEPS[step]
    tenant = [int(rng.integers(0, S.MAX_TENANTS))] if "t" in kinds else []
    return tenant + [int(rng.integers(lo, hi)) for lo, hi in ranges]


# ---------------------------------------------------------------- tests
def test_the_header_includes_no_system_header():
    for name in ("gbpfd_admit.cuh", "gbpfd_layout.h"):
        assert "#include <" not in (KERNELS / name).read_text(), f"{name}: NVRTC has no system headers"


#: GPU scope throughout: the words a gate touches are device memory shared with the control CTA
PRIMITIVES = ("ld.acquire.gpu.b64", "st.release.gpu.b64", "%globaltimer", "nanosleep.u32", "atom.global.cas.b64",
              "atom.global.add.u64", "membar.gl", "bar.sync", "bar.warp.sync", "%laneid")
SYS_SCOPE = ("ld.acquire.sys", "st.release.sys", "membar.sys", "fence.sc.sys")


def test_a_gated_kernel_compiles_with_nvcc_and_assembles_with_ptxas(nvcc, tmp_path):
    done = compile_ptx(nvcc, KERNEL_SOURCE, tmp_path)
    assert done.returncode == 0, done.stderr
    ptx = (tmp_path / "k.ptx").read_text()
    assert f".target {ARCH}" in ptx
    for kernel in ("mark", "rounds", "paced"):
        assert f".entry {kernel}(" in ptx, kernel
    for needle in PRIMITIVES:
        assert needle in ptx, needle
    assert [s for s in SYS_SCOPE if s in ptx] == []
    ptxas = Path(nvcc).with_name("ptxas")
    done = subprocess.run([str(ptxas), f"-arch={ARCH}", "k.ptx", "-o", "k.cubin"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_gated_kernel_compiles_with_nvrtc_and_the_wrappers_options(nvrtc):
    from gbpfd.admission_cupy import compile_options
    ok, log, ptx = nvrtc_ptx(nvrtc, KERNEL_SOURCE, ["-arch=compute_90", *compile_options()])
    assert ok, log
    for needle in PRIMITIVES:
        assert needle in ptx, needle
    assert [s for s in SYS_SCOPE if s in ptx] == []


def test_a_warp_gate_without_a_warp_gated_entry_does_not_compile(nvcc, tmp_path):
    done = compile_ptx(nvcc, UNGATED_WARP_GATE, tmp_path)
    assert done.returncode != 0
    assert "GBPFD_WARP_GATE() needs GBPFD_CTA_ENTER_WITH_WARP_GATE()" in done.stderr


@pytest.mark.parametrize("step", sorted(STEPS))
def test_each_c_step_changes_the_words_as_gates_py_does(host_build, step):
    rng = np.random.default_rng(sum(map(ord, step)))
    py = getattr(python_steps(), step)
    kinds = STEPS[step][0]
    for _ in range(200):
        ctl, flat = random_state(rng)
        values = _values(step, rng)
        c_ctl, c_flat = ctl.copy(), flat.copy()
        expected = py(*_py_args(kinds, ctl, flat, values))
        got = getattr(host_build, step)(*_c_args(kinds, c_ctl, c_flat, values))
        assert got == int(expected or 0), (step, values)
        assert np.array_equal(c_ctl, ctl), (step, values, np.flatnonzero(c_ctl != ctl))
        assert np.array_equal(c_flat, flat), (step, values)


def test_abandoning_a_slot_being_decided_marks_it_abandoned_at_once_as_gates_py_does(host_build):
    ctl, flat = random_state(np.random.default_rng(7))
    ctl[S.SLOT_BASE + 9 * S.SLOT_STRIDE + S.SLOT.state] = S.SERVING
    c_ctl = ctl.copy()
    assert python_steps().abandon_request(ctl, 9) == -1          # one step: no polling for the decision
    assert host_build.abandon_request(*_c_args("cn", c_ctl, flat, [9])) == -1
    assert ctl[S.SLOT_BASE + 9 * S.SLOT_STRIDE + S.SLOT.state] == S.ABANDONED
    assert np.array_equal(c_ctl, ctl)


# Stand-ins for the control CTA, acting on the words of the run they are given.
def silent(ctl, now):
    """No control CTA: every request waits out its bound."""


def decide_after(ticks: int, decisions):
    """Decide each posted request ``ticks`` ns after it was posted, with the
    next of ``decisions`` (the last one repeats)."""
    made = []

    def act(ctl, now):
        for s in range(S.NSLOTS):
            w = S.SLOT_BASE + s * S.SLOT_STRIDE
            if ctl[w + S.SLOT.state] == S.POSTED and now >= ctl[w + S.SLOT.post_ns] + ticks:
                ctl[w + S.SLOT.decision] = decisions[min(len(made), len(decisions) - 1)]
                ctl[w + S.SLOT.state] = S.DECIDED
                made.append(s)
    return act


def set_word_at(when: int, word: int, value: int):
    """Once, at ``when`` ns: set one ctl word (tokens, a warp cap...)."""
    done = []

    def act(ctl, now):
        if now >= when and not done:
            ctl[word] = value
            done.append(now)
    return act


T = 3
START_NS = 1_000_000
BACKOFF_MAX_NS = 4096


def tenant(field: str) -> int:
    return S.TENANT_BASE + T * S.TENANT_STRIDE + getattr(S.TENANT, field)


def state(*, cap_reached=False, slots_taken=False, **words):
    ctl = np.zeros(S.CTL_WORDS, np.int64)
    ctl[S.PLANE.wait_bound_ns] = BOUND_NS
    ctl[S.PLANE.defer_bound_ns] = DEFER_BOUND_NS
    ctl[S.PLANE.global_cta_cap] = 1_000
    ctl[S.PLANE.total_running] = 1_000 if cap_reached else 0
    if slots_taken:
        ctl[S.SLOT_BASE + S.SLOT.state:S.SLOT_BASE + S.NSLOTS * S.SLOT_STRIDE:S.SLOT_STRIDE] = S.CLAIMED
    for name, value in words.items():
        ctl[tenant(name)] = value
    return ctl, np.zeros(FLAT_WORDS, np.int64)


#: name: (wait, its values after the tenant, (ctl, flat), a new stand-in, result, bypassed)
SCENARIOS = {
    "token at once": ("cta_enter", [0], state(tokens=2), lambda: silent, S.ENTER_TOKEN, 0),
    "global cap reached, no control CTA": ("cta_enter", [0], state(tokens=2, cap_reached=True), lambda: silent,
                                           S.ENTER_BYPASS, 1),
    "request admitted": ("cta_enter", [0], state(), lambda: decide_after(40, [S.ADMIT]), S.ENTER_POLICY, 0),
    "deferred twice, asked again, admitted": ("cta_enter", [0], state(),
                                              lambda: decide_after(40, [S.DEFER, S.DEFER, S.ADMIT]),
                                              S.ENTER_POLICY, 0),
    # each answer renews the wait bound: deferrals end only at the defer bound
    "deferred past the defer bound": ("cta_enter", [0], state(), lambda: decide_after(40, [S.DEFER]),
                                      S.ENTER_BYPASS, 1),
    "persistent worker deferred": ("cta_enter", [1], state(), lambda: decide_after(40, [S.DEFER]),
                                   S.ENTER_DENIED, 0),
    # decided by the clock read that finds the bound passed: the withdrawal fails and the admission stands
    "decided as the bound passes": ("cta_enter", [0], state(), lambda: decide_after(BOUND_NS, [S.ADMIT]),
                                    S.ENTER_POLICY, 0),
    "no control CTA": ("cta_enter", [0], state(), lambda: silent, S.ENTER_BYPASS, 1),
    "every slot taken, then a token": ("cta_enter", [0], state(slots_taken=True),
                                       lambda: set_word_at(START_NS + 500, tenant("tokens"), 1), S.ENTER_TOKEN, 0),
    "every slot taken": ("cta_enter", [0], state(slots_taken=True), lambda: silent, S.ENTER_BYPASS, 1),
    "warp under its cap": ("warp_gate_wait", [], state(warps_active=2, warp_cap=4), lambda: silent, None, 0),
    "warp over its cap until the cap rises": ("warp_gate_wait", [], state(warps_active=5, warp_cap=4),
                                              lambda: set_word_at(START_NS + 700, tenant("warp_cap"), 8), None, 0),
    "warp over its cap": ("warp_gate_wait", [], state(warps_active=5, warp_cap=4), lambda: silent, None, 1),
    "bytes at once": ("dma_take_wait", [4096], state(dma_tokens=8192, dma_pending=4096), lambda: silent, True, 0),
    "bytes after a refill": ("dma_take_wait", [4096], state(dma_tokens=100, dma_pending=4096),
                             lambda: set_word_at(START_NS + 900, tenant("dma_tokens"), 5000), True, 0),
    "too few bytes": ("dma_take_wait", [4096], state(dma_tokens=100, dma_pending=4096), lambda: silent, False, 1),
}


def _run_python(wait, values, ctl, flat, act):
    clock = Clock(START_NS, lambda now: act(ctl, now))
    return python_waits(clock)[wait](ctl, flat, T, *values), clock.now


def _run_c(lib, wait, values, ctl, flat, act):
    callback = ACTOR(lambda now: act(ctl, now))  # kept alive for the call
    lib.clock_set(ctypes.c_longlong(START_NS), callback)
    try:
        return getattr(lib, wait)(*_c_args(WAITS[wait], ctl, flat, [T, *values])), lib.clock_get()
    finally:
        lib.clock_set(ctypes.c_longlong(0), ACTOR())


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_c_wait_replays_the_numba_wait(host_build, name):
    wait, values, (ctl0, flat0), stand_in, result, bypassed = SCENARIOS[name]
    py_ctl, py_flat, c_ctl, c_flat = ctl0.copy(), flat0.copy(), ctl0.copy(), flat0.copy()
    py_got, py_end = _run_python(wait, values, py_ctl, py_flat, stand_in())
    c_got, c_end = _run_c(host_build, wait, values, c_ctl, c_flat, stand_in())
    assert py_got == result                              # the scenario reaches the outcome it is named for
    assert py_flat[S.COUNTERS_WORD + T * S.COUNTER_RECORD_WORDS + S.COUNTER.bypassed] == bypassed
    # bounded: the defer bound, then at most one unanswered wait and one backoff past it
    assert py_end - START_NS <= DEFER_BOUND_NS + BOUND_NS + BACKOFF_MAX_NS + S.NSLOTS
    assert (c_got, c_end) == (int(py_got or 0), py_end)  # the same result at the same clock reading...
    assert np.array_equal(c_ctl, py_ctl), np.flatnonzero(c_ctl != py_ctl)   # ...and the same words
    assert np.array_equal(c_flat, py_flat), np.flatnonzero(c_flat != py_flat)
