"""Bounded waits for the GPU cases: a hang becomes an error, never a stuck
10-minute call.  (``cuda.synchronize()`` would wait for the resident control
kernel forever, so GPU work is waited for through an event on its stream.)"""
from __future__ import annotations

import time

KERNEL_TIMEOUT_S = 120.0
SETTLE_TIMEOUT_S = 10.0


def wait_event(event, what: str = "the GPU work", timeout_s: float = KERNEL_TIMEOUT_S) -> None:
    """Wait until the GPU has passed ``event`` (a recorded CUDA event)."""
    deadline = time.monotonic() + timeout_s
    while not event.query():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {timeout_s} s")
        time.sleep(0.0005)


def finish(cuda, stream, timeout_s: float = KERNEL_TIMEOUT_S) -> None:
    """Wait for the work queued on ``stream`` so far."""
    done = cuda.event(timing=False)
    done.record(stream)
    wait_event(done, timeout_s=timeout_s)


def settle(plane, ticks: int = 2) -> None:
    """Wait until the control CTA has run ``ticks`` more tick periods."""
    first = plane.health().ticks
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while plane.health().ticks < first + ticks:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the control CTA ran no {ticks} ticks within {SETTLE_TIMEOUT_S} s")
        time.sleep(0.0005)
