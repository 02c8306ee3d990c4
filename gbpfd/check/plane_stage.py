"""Stage ``plane``: start (ready, SM id, reserved share), one admission by
token, one admission through ``cta_admit`` (a tick that leaves no tokens
makes the CTA ask), stop; every step under its own bound, so the record
says which step hung.  The same steps on the GPU (a one-CTA gate-mode
kernel) and on the simulated device (a one-block simulated launch)."""
from __future__ import annotations

import time

from gbpfd.bench.policies import NO_TOKENS_TICK_ASM, program
from gbpfd.check.stage import StageContext

TENANT = "train"
STEP_BOUND_S = 30.0
WORDS = ("fast_grants", "requests", "decisions")


class _SimLaunch:
    def __init__(self, plane):
        self.plane = plane

    def one_cta(self) -> None:
        d = self.plane.device
        done = []
        d.launch(self.plane.quotas.index(TENANT), blocks=1, block_ns=1_000, on_done=lambda run: done.append(run))
        if not d.run_while(lambda: not done, 10_000_000):
            raise TimeoutError("the simulated CTA did not finish within 10 ms of device time")

    def settle(self) -> None:
        d = self.plane.device
        d.run_until(d.now + 4 * self.plane.options.periods.tick_ns)


class _GpuLaunch:
    """A gate-mode kernel of one CTA, compiled and loaded before the plane starts."""

    def __init__(self, plane):
        import numpy as np
        from numba import cuda

        from gbpfd.admission import admit
        from gbpfd.check.sample_bodies import mark_cta
        from gbpfd.plane.backend_cuda import non_blocking_stream
        self.plane, self.cuda = plane, cuda
        self.marks = cuda.to_device(np.zeros(1, np.int64))
        self.stream = non_blocking_stream(cuda)
        self.kernel = admit(plane, tenant=TENANT)(mark_cta)
        self.kernel.preload(self.marks)

    def one_cta(self) -> None:
        from gbpfd.bench.gpu_sync import finish
        self.kernel[1, 64, self.stream](self.marks)
        finish(self.cuda, self.stream, timeout_s=STEP_BOUND_S)

    def settle(self) -> None:
        from gbpfd.bench.gpu_sync import settle
        settle(self.plane, ticks=4)


def _step(ctx: StageContext, name: str, fn):
    print(f"step {name}", flush=True)
    started = time.perf_counter()
    result = fn()
    ctx.figure(f"{name}_ms", round((time.perf_counter() - started) * 1e3, 3), "ms")
    return result


def _admit_and_count(ctx: StageContext, plane, launch, path: str) -> None:
    before = plane.plane_stats()
    _step(ctx, f"admit_by_{path}", launch.one_cta)
    launch.settle()
    after = plane.plane_stats()
    delta = {w: after[w] - before[w] for w in WORDS}
    ctx.figure(f"admit_by_{path}.deltas", delta, "count")
    want = {"token": {"fast_grants": 1, "requests": 0}, "request": {"requests": 1, "decisions": 1}}[path]
    wrong = {w: delta[w] for w, n in want.items() if delta[w] != n}
    if wrong:
        raise AssertionError(f"admission by {path}: expected {want}, the device counted {delta}")


def run(ctx: StageContext) -> None:
    from gbpfd.plane.plane import Plane
    plane = Plane(backend="cuda" if ctx.gpu else "sim")
    launch = _GpuLaunch(plane) if ctx.gpu else None
    _step(ctx, "start", plane.start)
    try:
        launch = launch or _SimLaunch(plane)
        health = plane.health()
        ctx.figure("ready", health.ready, "")
        ctx.figure("smid", health.smid, "SM")
        ctx.figure("reserved_share", health.reserved_share, "of the SMs")
        ctx.figure("simulated", health.simulated, "")
        launch.settle()   # the first ticks hand out the tokens
        _admit_and_count(ctx, plane, launch, "token")
        plane.load(program(NO_TOKENS_TICK_ASM), "tick")
        launch.settle()
        _admit_and_count(ctx, plane, launch, "request")
    finally:
        reason = _step(ctx, "stop", plane.stop)
    ctx.figure("stop_reason", reason, "")
    if reason != "stop command":
        raise AssertionError(f"the plane stopped with {reason!r}")
