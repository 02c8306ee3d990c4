"""Event ring: the sustained drain rate with zero loss, and the rate at
which loss starts (counted, never silent).

The producer runs the device's ``event_push`` (the shared source of
``gbpfd.device.ringbuf``) at an offered rate: on a GPU, one device thread
of ``gpu_kernels.event_producer`` pushing into the pinned, mapped host
area as the control CTA does, paced by ``%globaltimer``; elsewhere a CPU
thread running the same source compiled with ``numba.njit``, paced by the
monotonic clock inside the compiled loop so it holds no GIL (a host
figure: it shows what the host's drain keeps up with, not the PCIe path).
The host's ``EventRing.drain`` runs every ``poll_ms`` on another thread.
The asked rate doubles until the producer counts drops, then bisects
between the last rate without drops and the first with them.  The figures
are the rates the producer achieved (events offered per second), which
fall short of the asked ones where one producer cannot push that fast.

    python bench/bench_event_ring.py [--backend auto|cuda|sim] [--quick] [--set event_ring.seconds=S]
"""
from __future__ import annotations

import ctypes
import sys
import threading
import time

import numba
import numpy as np

from gbpfd.bridge import layout
from gbpfd.bridge.ring import EventRing, init_rings
from gbpfd.device import prims_cpu, ringbuf
from gbpfd.specialize import specialize

NAME = "event_ring"
TITLE = "event-ring drain rate with zero loss, and where loss starts"
BACKENDS = ("host", "cuda")
PARAMS = {"seconds": (1.0, 0.1), "poll_ms": (1.0, 1.0)}
TARGETS = ()
#: offered rates double from the first until drops start (or the last), then REFINE bisection
#: steps between the last lossless rate and the first lossy one narrow the limit down
RATES = tuple(10_000 * 2 ** k for k in range(12))
REFINE = 3
TRACE = layout.KIND.trace

_clock_gettime = ctypes.CDLL(None).clock_gettime
_clock_gettime.argtypes = (ctypes.c_int, ctypes.c_void_p)
_clock_gettime.restype = ctypes.c_int
MONOTONIC = time.CLOCK_MONOTONIC
_usleep = ctypes.CDLL(None).usleep
_usleep.argtypes = (ctypes.c_uint,)
_usleep.restype = ctypes.c_int
#: the producer sleeps this long when no event is due: a GPU producer takes no host CPU, so
#: this one leaves the host's cores to the consumer (and pushes in bursts of rate x sleep)
IDLE_SLEEP_US = 20


def monotonic_ns(timespec):
    """The monotonic clock, readable inside compiled code (``timespec``: two int64 words)."""
    _clock_gettime(MONOTONIC, timespec.ctypes.data)
    return timespec[0] * 1_000_000_000 + timespec[1]


def produce(host, rate_per_s, duration_ns, timespec):
    """Push trace events evenly at ``rate_per_s`` for ``duration_ns``; how many were offered."""
    start = monotonic_ns(timespec)
    offered = 0
    while True:
        now = monotonic_ns(timespec)
        if now - start >= duration_ns:
            return offered
        due = np.int64((now - start) * 1e-9 * rate_per_s)
        if offered == due:
            _usleep(IDLE_SLEEP_US)
        while offered < due:
            event_push(host, TRACE, now, -1, -1, -1, offered, 0, 0)
            offered += 1


DEVICE = specialize((*ringbuf.DEVICE_FUNCTIONS, monotonic_ns, produce), prims_cpu.PRIMS,
                            numba.njit(nogil=True))


def consume(ring: EventRing, poll_s: float, producer_done: threading.Event, drained: list[int]) -> None:
    """Drain every ``poll_s`` until the producer is done, then once more."""
    next_poll = time.perf_counter()
    while not producer_done.is_set():
        drained[0] += len(ring.drain())
        next_poll += poll_s
        delay = next_poll - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            next_poll = time.perf_counter()  # behind: no catch-up burst of polls
    drained[0] += len(ring.drain())


class CpuProducer:
    def host_area(self) -> np.ndarray:
        return np.zeros(layout.HOST_WORDS, np.int64)

    def produce(self, host, rate: int, duration_ns: int) -> int:
        return DEVICE.produce(host, rate, duration_ns, np.zeros(2, np.int64))


class GpuProducer:
    """One GPU thread pushing into mapped host memory (``gpu_kernels.event_producer``)."""

    def __init__(self):
        from numba import cuda

        import gpu_kernels
        from gbpfd.plane.backend_cuda import non_blocking_stream
        self.cuda, self.gk = cuda, gpu_kernels
        cuda.current_context()
        self.stream = non_blocking_stream(cuda)
        self.out = cuda.device_array(1, np.int64, stream=self.stream)

    def host_area(self) -> np.ndarray:
        host = self.cuda.mapped_array(layout.HOST_WORDS, np.int64)
        host[:] = 0
        return host

    def produce(self, host, rate: int, duration_ns: int) -> int:
        from gbpfd.bench.gpu_sync import finish
        self.gk.event_producer[1, 32, self.stream](host, rate, duration_ns, self.out)
        finish(self.cuda, self.stream)
        return int(self.out.copy_to_host(stream=self.stream)[0])


def run_rate(producer, rate: int, seconds: float, poll_s: float) -> dict:
    host = producer.host_area()
    init_rings(host)
    ring = EventRing(host)
    producer_done, drained, offered = threading.Event(), [0], [0]

    def producer_thread():
        try:
            offered[0] = producer.produce(host, rate, int(seconds * 1e9))
        finally:
            producer_done.set()

    threads = [threading.Thread(target=producer_thread), threading.Thread(target=consume,
                                                                   args=(ring, poll_s, producer_done, drained))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"asked_per_s": rate, "offered": offered[0], "achieved_per_s": offered[0] / seconds,
            "drained": drained[0], "dropped": ring.dropped, "drained_per_s": drained[0] / elapsed}


def _search(run, producer, seconds: float, poll_s: float) -> list[dict]:
    """Double the asked rate until drops start, then bisect between the last two."""
    rows = []
    for rate in RATES:
        run.step(f"asking for {rate:,} events/s")
        rows.append(run_rate(producer, rate, seconds, poll_s))
        if rows[-1]["dropped"]:
            break
    if rows[-1]["dropped"] and len(rows) > 1:
        good, bad = rows[-2]["asked_per_s"], rows[-1]["asked_per_s"]
        for _ in range(REFINE):
            run.step(f"bisecting between {good:,} and {bad:,} events/s")
            rows.append(run_rate(producer, round((good * bad) ** 0.5), seconds, poll_s))
            good, bad = (good, rows[-1]["asked_per_s"]) if rows[-1]["dropped"] else (rows[-1]["asked_per_s"], bad)
    return rows


def measure(run) -> None:
    poll_s = run.params["poll_ms"] / 1e3
    producer = GpuProducer() if run.backend == "cuda" else CpuProducer()
    run.step("compiling the producer")
    run_rate(producer, RATES[0], 0.01, poll_s)
    rows = _search(run, producer, run.params["seconds"], poll_s)
    # with no drop every offered event was drained, so the ring kept up with the offered rate
    lossless = [r for r in rows if not r["dropped"]]
    lossy = [r for r in rows if r["dropped"]]
    run.figure("sustained_events_per_s", max((r["achieved_per_s"] for r in lossless), default=0), "event/s",
               sum(r["drained"] for r in lossless))
    run.figure("loss_starts_events_per_s", min((r["achieved_per_s"] for r in lossy), default=None), "event/s",
               sum(r["offered"] for r in lossy))
    run.check("event_slots", layout.EVENT_SLOTS)
    run.check("rates", rows)
    run.check("drops_counted_equal_offered_minus_drained",
              all(r["offered"] - r["drained"] == r["dropped"] for r in rows))
    if not lossy:
        most = max(r["achieved_per_s"] for r in rows)
        run.note(f"no loss at any rate tried (asked up to {RATES[-1]:,} events/s, offered at most {most:,.0f}): "
                 "the limit is above what was offered")


if __name__ == "__main__":
    from gbpfd.bench.suite import script_main
    sys.exit(script_main(__file__))
