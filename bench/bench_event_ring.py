"""Sustained event-ring drain rate with zero loss: CPU producer (simulated device), not a GPU figure.

A producer thread runs the device's ``event_push`` (the shared source of
``gbpfd.device.ringbuf`` compiled with ``numba.njit`` for the CPU) at an
offered rate, paced by the monotonic clock inside the compiled loop so it
holds no GIL; another thread runs the host's ``EventRing.drain`` every
``--poll-ms``.  The offered rate doubles until the device counts drops,
then bisects between the last rate without drops and the first with them.
Prints a table and one JSON line.

    python bench/bench_event_ring.py [--seconds S] [--poll-ms P] [--json-out PATH]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import threading
import time

import numba
import numpy as np

from gbpfd.bridge import layout
from gbpfd.bridge.ring import EventRing, init_rings
from gbpfd.device import prims_cpu, ringbuf, targets

LABEL = "CPU producer (simulated device), not a GPU figure"
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


DEVICE = targets.specialize((*ringbuf.DEVICE_FUNCTIONS, monotonic_ns, produce), prims_cpu.PRIMS,
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


def run_rate(rate: int, seconds: float, poll_s: float) -> dict:
    host = np.zeros(layout.HOST_WORDS, np.int64)
    init_rings(host)
    ring = EventRing(host)
    producer_done, drained, offered = threading.Event(), [0], [0]

    def producer():
        offered[0] = DEVICE.produce(host, rate, int(seconds * 1e9), np.zeros(2, np.int64))
        producer_done.set()

    threads = [threading.Thread(target=producer), threading.Thread(target=consume,
                                                                   args=(ring, poll_s, producer_done, drained))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return {"offered_per_s": rate, "offered": offered[0], "drained": drained[0], "dropped": ring.dropped,
            "drained_per_s": drained[0] / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per offered rate")
    parser.add_argument("--poll-ms", type=float, default=1.0, help="host drain period, ms")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON record to PATH")
    opts = parser.parse_args()

    run_rate(RATES[0], 0.01, opts.poll_ms / 1e3)  # compile the producer and the ring primitives
    rows = []
    for rate in RATES:
        rows.append(run_rate(rate, opts.seconds, opts.poll_ms / 1e3))
        if rows[-1]["dropped"]:
            break
    if rows[-1]["dropped"] and len(rows) > 1:
        good, bad = rows[-2]["offered_per_s"], rows[-1]["offered_per_s"]
        for _ in range(REFINE):
            rows.append(run_rate(round((good * bad) ** 0.5), opts.seconds, opts.poll_ms / 1e3))
            good, bad = (good, rows[-1]["offered_per_s"]) if rows[-1]["dropped"] else (rows[-1]["offered_per_s"], bad)
    # with no drop every offered event was drained, so the ring kept up with the offered rate
    sustained = max((r["offered_per_s"] for r in rows if not r["dropped"]), default=0)

    print(f"{LABEL}; {layout.EVENT_SLOTS} slots, drain every {opts.poll_ms:g} ms, {opts.seconds:g} s per rate")
    print(f"{'offered/s':>12} {'drained/s':>12} {'offered':>10} {'drained':>10} {'dropped':>10}")
    for r in rows:
        print(f"{r['offered_per_s']:>12,} {r['drained_per_s']:>12,.0f} {r['offered']:>10} {r['drained']:>10} "
              f"{r['dropped']:>10}")
    print(f"sustained with zero loss: {sustained:,} events/s")
    record = {"bench": "event_ring", "simulated": True, "device": "cpu", "label": LABEL,
              "event_slots": layout.EVENT_SLOTS, "poll_ms": opts.poll_ms, "seconds_per_rate": opts.seconds,
              "sustained_events_per_s": sustained, "results": rows}
    print(json.dumps(record))
    if opts.json_out:
        with open(opts.json_out, "w") as fh:
            json.dump(record, fh)
            fh.write("\n")


if __name__ == "__main__":
    main()
