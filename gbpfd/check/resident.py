"""Stage ``resident``: every host call the plane makes while its control
kernel is resident, timed beside a spinner kernel that ends by itself.

A call that waits for the resident kernel (an implicit context
synchronisation) returns only once the spinner has ended; beside the real
control kernel, which never ends, it would hang.  So each call runs in a
worker thread of its own, beside a spinner with at least ``MIN_LEFT_S`` of
life left, and is judged against that life: still running when the spinner
has ended, or taking ``HANG_FRACTION`` of the life it had left, means it
would hang.  A call still running ``GRACE_S`` after the spinner's end hangs
for real: the driver may be wedged, so no further call is made.

Calls run safe-first; the module load and the device free, the two known
to synchronise on some drivers, come last, the free alone outside
``cuda.defer_cleanup`` (inside it numba would only queue the free).
"""
from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass

import numpy as np

from gbpfd.check.stage import StageContext, StageSkip

SPINNER_LIFE_S = 3.0
MIN_LEFT_S = 2.0
HANG_FRACTION = 0.9
GRACE_S = 1.0
#: how long one call may wait for its own GPU work (a copy, a launch)
WORK_BOUND_S = SPINNER_LIFE_S + GRACE_S
NAP_NS = 100_000         # the spinner's clock feed interval: fine enough, light on PCIe
ALLOC_WORDS = 1 << 20    # 8 MiB per allocation: a real allocation, not a sub-allocation
START_BOUND_S = SPINNER_LIFE_S + 5.0   # a spinner queued behind the last one starts within its life


@dataclass(frozen=True)
class Timing:
    """One host call beside a resident spinner: ``seconds`` None when it had
    not returned ``GRACE_S`` after the spinner ended; ``error`` when it raised."""
    name: str
    seconds: float | None
    left_s: float
    error: str | None = None

    @property
    def would_hang(self) -> bool:
        return self.seconds is None or self.seconds >= HANG_FRACTION * self.left_s


def timed_call(fn, bound_s: float, bind=lambda: None) -> tuple[float | None, str | None]:
    """Run ``fn`` in a worker thread that first runs ``bind`` (a new thread
    has no CUDA context) and wait for it at most ``bound_s``; its seconds
    (None when it was still running) and its error, if it raised."""
    bound, box = threading.Event(), {}

    def work():
        bind()
        bound.set()
        started = time.perf_counter()
        try:
            fn()
        except Exception as err:  # the call's own failure is a result, recorded by name
            box["error"] = f"{type(err).__name__}: {err}"
        box["seconds"] = time.perf_counter() - started

    worker = threading.Thread(target=work, daemon=True)  # daemon: a hung call must not hold the process
    worker.start()
    if not bound.wait(bound_s):
        return None, "binding the CUDA context did not finish"
    worker.join(bound_s)
    return box.get("seconds"), box.get("error")


def measure(calls, spinner, bind=lambda: None, on_timing=lambda timing: None, min_left_s: float = MIN_LEFT_S,
            grace_s: float = GRACE_S) -> tuple[list[Timing], list[str]]:
    """Each ``(name, fn)`` of ``calls`` timed beside ``spinner`` (``ensure``
    one with ``min_left_s`` of life, ``left_s`` of it) and handed to
    ``on_timing`` at once (a stage killed at its bound still shows it); the
    timings and the names not run because an earlier call hung for real."""
    timings = []
    for i, (name, fn) in enumerate(calls):
        spinner.ensure(min_left_s)
        left = spinner.left_s()
        seconds, error = timed_call(fn, left + grace_s, bind)
        timings.append(Timing(name, seconds, left, error))
        on_timing(timings[-1])
        if seconds is None:
            return timings, [n for n, _ in calls[i + 1:]]
    return timings, []


#: calls that wait for the GPU to drain by design and that the plane never
#: makes while its control kernel is resident (it defers frees with
#: cuda.defer_cleanup): measured and reported, not a failure
WAITS_BY_DESIGN = ("device_free",)


def verdict(timings: list[Timing], not_run: list[str]) -> str | None:
    """Why the stage fails (every call that would hang, failed or was not
    run, by name, but for ``WAITS_BY_DESIGN``), or None when every call passed."""
    parts = []
    hang = [t.name for t in timings if t.would_hang and t.name not in WAITS_BY_DESIGN]
    if hang:
        parts.append(f"would hang beside the real plane: {', '.join(hang)}")
    parts += [f"{t.name} failed: {t.error}" for t in timings if t.error and not t.would_hang]
    if not_run:
        parts.append(f"not run after a call hung: {', '.join(not_run)}")
    return "; ".join(parts) or None


def record(ctx: StageContext, t: Timing) -> None:
    ctx.figure(f"{t.name}_ms", None if t.seconds is None else round(t.seconds * 1e3, 3), "ms")
    if t.error:
        ctx.note(f"{t.name}: {t.error}")


def report(ctx: StageContext, timings: list[Timing], not_run: list[str]) -> None:
    """The summary once every call has run (or the first real hang stopped them)."""
    ctx.figure("would_hang", [t.name for t in timings if t.would_hang], "calls")
    for name in not_run:
        ctx.note(f"{name}: not run (an earlier call still had not returned {GRACE_S} s after its spinner ended)")


class Lifetime:
    """The host's view of the spinner now resident: ``launch`` (by a
    subclass) starts one and sets ``ends_at`` (``time.monotonic()``)."""
    life_s = SPINNER_LIFE_S
    ends_at = 0.0
    launched = 0

    def left_s(self) -> float:
        return self.ends_at - time.monotonic()

    def ensure(self, min_left_s: float) -> None:
        """A spinner with at least ``min_left_s`` to live is resident."""
        if self.left_s() < min_left_s:
            self.launch()
            self.launched += 1

    def launch(self) -> None:
        raise NotImplementedError


class Spinner(Lifetime):
    """Self-ending spinner kernels on one non-blocking stream, launched one
    at a time, each writing its device clock into mapped host memory."""

    def __init__(self, cuda, slots: int, nap_ns: int = NAP_NS):
        from gbpfd.check import gpu_clock as G
        from gbpfd.plane.backend_cuda import non_blocking_stream
        self.cuda, self.G = cuda, G
        self.kernel = G.ready(G.spinner)   # compiled and loaded before any launch
        self.stream = non_blocking_stream(cuda)
        self.stamps = cuda.mapped_array(slots * G.SLOT_WORDS, np.int64)
        self.stamps[:] = 0
        self.slot, self.nap_ns = -1, nap_ns

    def word(self, which: int) -> int:
        return int(self.stamps[self.slot * self.G.SLOT_WORDS + which])

    def launch(self) -> None:
        if self.slot + 1 >= self.stamps.shape[0] // self.G.SLOT_WORDS:
            raise RuntimeError(f"resident: all {self.slot + 1} spinner slots are used")
        self.slot += 1
        self.kernel[1, 32, self.stream](int(self.life_s * 1e9), self.nap_ns, self.stamps, self.slot)
        deadline = time.monotonic() + START_BOUND_S
        while self.word(self.G.START) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"resident: the spinner did not start within {START_BOUND_S} s")
            time.sleep(0.0002)
        # seen from the host a few us after its start: its end is at most that much earlier
        self.ends_at = time.monotonic() + self.life_s

    def finish(self) -> None:
        from gbpfd.plane.backend_cuda import wait_for_stream
        wait_for_stream(self.stream, max(self.left_s(), 0.0) + GRACE_S, "resident: the spinner")


class Kit:
    """What the calls use, made before any spinner is resident."""

    def __init__(self, cuda):
        from gbpfd.check import gpu_clock as G
        from gbpfd.plane.backend_cuda import non_blocking_stream
        from cuda.bindings import driver
        self.host = cuda.pinned_array(ALLOC_WORDS, np.int64)
        self.dev = cuda.device_array(ALLOC_WORDS, np.int64)
        self.victim = [cuda.device_array(ALLOC_WORDS, np.int64)]   # the one array device_free frees
        self.kept = []   # what the calls make lives to the end: only the victim is freed beside a spinner
        self.word = cuda.device_array(1, np.int64)
        self.stamp = G.ready(G.stamp)
        self.stream = non_blocking_stream(cuda)
        err, _least, greatest = driver.cuCtxGetStreamPriorityRange()
        _ok(err, "cuCtxGetStreamPriorityRange")
        self.urgent = non_blocking_stream(cuda, priority=greatest)
        ptx, _ = cuda.compile_ptx_for_current_device(G.stamp.py_func, G.SIGS["stamp"])
        self.fresh_ptx = ptx   # NVVM ran here; the call times only the driver's load
        self.cupy, self.cupy_missing = _cupy()


def _ok(err, what: str) -> None:
    from cuda.bindings import driver
    if err != driver.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"{what} failed: {err}")


def _cupy():
    try:
        import cupy
        cupy.cuda.Device(0).use()   # its runtime set up here, not inside the timed call
    except Exception as err:  # ImportError, or a CuPy without a usable CUDA runtime
        return None, f"{type(err).__name__}: {err}"
    return cupy, None


def load_module(ptx: str) -> None:
    """The driver's load (JIT included) of a module never loaded before."""
    from cuda.bindings import driver
    entry = re.search(r"\.entry\s+([\w$]+)", ptx)[1]
    err, module = driver.cuModuleLoadData(ptx.encode() + b"\0")
    _ok(err, "cuModuleLoadData")
    err, _ = driver.cuModuleGetFunction(module, entry.encode())
    _ok(err, "cuModuleGetFunction")


def _launch_and_wait(cuda, kit: Kit, stream) -> None:
    from gbpfd.bench.gpu_sync import finish
    kit.stamp[1, 32, stream](kit.word)
    finish(cuda, stream, WORK_BOUND_S)


def _copy_and_wait(cuda, kit: Kit, to_device: bool) -> None:
    from gbpfd.bench.gpu_sync import finish
    if to_device:
        kit.dev.copy_to_device(kit.host, stream=kit.stream)
    else:
        kit.dev.copy_to_host(kit.host, stream=kit.stream)
    finish(cuda, kit.stream, WORK_BOUND_S)


def calls(cuda, kit: Kit) -> list:
    """The plane's host calls, safe first; all but ``device_free``."""
    from gbpfd.plane.backend_cuda import non_blocking_stream
    keep = kit.kept.append
    found = [
        ("stream_create", lambda: keep(non_blocking_stream(cuda))),
        ("pinned_alloc", lambda: keep(cuda.pinned_array(ALLOC_WORDS, np.int64))),
        ("mapped_alloc", lambda: keep(cuda.mapped_array(ALLOC_WORDS, np.int64))),
        ("device_alloc", lambda: keep(cuda.device_array(ALLOC_WORDS, np.int64))),
        ("copy_h2d", lambda: _copy_and_wait(cuda, kit, True)),
        ("copy_d2h", lambda: _copy_and_wait(cuda, kit, False)),
        ("launch_non_blocking", lambda: _launch_and_wait(cuda, kit, kit.stream)),
        ("launch_high_priority", lambda: _launch_and_wait(cuda, kit, kit.urgent)),
        ("launch_default_stream", lambda: _launch_and_wait(cuda, kit, cuda.legacy_default_stream())),
    ]
    if kit.cupy is not None:
        found.append(("cupy_alloc", lambda: keep(kit.cupy.empty(ALLOC_WORDS * 8, dtype=kit.cupy.uint8))))
    found.append(("module_load", lambda: load_module(kit.fresh_ptx)))
    return found


def device_free(cuda, kit: Kit):
    """Drop the last reference to the victim array and flush numba's queue
    of pending frees: the victim's cuMemFree (and the destruction of the
    events the earlier calls waited on)."""
    def go():
        kit.victim.clear()
        cuda.current_context().deallocations.clear()
    return go


def time_calls(ctx: StageContext, todo: list, free: tuple, spinner, bind=lambda: None,
               deferred=contextlib.nullcontext) -> tuple[list[Timing], list[str]]:
    """``todo`` timed with frees ``deferred``, then ``free`` (name, fn) alone
    outside it, unless an earlier call hung for real (then the driver is
    touched no more).  Each timing is recorded as it lands."""
    def timed(calls_):
        return measure(calls_, spinner, bind, lambda t: record(ctx, t))

    with deferred():
        timings, not_run = timed(todo)
    if timings[-1].seconds is None:
        return timings, not_run + [free[0]]
    more, not_run = timed([free])
    return timings + more, not_run


def run(ctx: StageContext) -> None:
    if not ctx.gpu:
        raise StageSkip("needs a GPU: the simulated device has no driver calls to time beside a resident kernel")
    from gbpfd.cuda_toolchain import prepare
    prepare()   # eager module loading, before the driver starts
    from numba import cuda
    cuda.current_context()
    kit = Kit(cuda)
    if kit.cupy_missing:
        ctx.note(f"cupy_alloc: not timed, CuPy is unusable here ({kit.cupy_missing})")
    todo = calls(cuda, kit)
    spinner = Spinner(cuda, slots=len(todo) + 2)
    ctx.figure("spinner_life_s", SPINNER_LIFE_S, "s")
    timings, not_run = time_calls(ctx, todo, ("device_free", device_free(cuda, kit)), spinner,
                                  cuda.current_context, cuda.defer_cleanup)
    report(ctx, timings, not_run)
    ctx.figure("spinners", spinner.launched, "launches")
    if timings[-1].seconds is not None:
        spinner.finish()
    why = verdict(timings, not_run)
    if why:
        raise RuntimeError(why)
