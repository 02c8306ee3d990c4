"""Paced-copy accuracy: the rate a paced copy achieves against the rate its
tenant's quota sets, for several quotas.

The demo's copy tenant gets ``dma_bytes_per_epoch`` of each value in
``EPOCH_BYTES`` in turn (``Plane.set_quotas``); the baseline ``dma_tick``
adds one epoch's bytes to its tokens every DMA period (banking at most two
epochs), so the target is ``dma_bytes_per_epoch / dma period``.  For each
quota, once the tokens have banked in full, one copy of ``epochs`` epochs'
worth of bytes is timed from its launch to its last byte (on a GPU:
``gbpfd.paced_copy`` between CUDA events on its stream; on the simulated
device: ``SimDevice.copy`` in virtual time, SIMULATED).  The two banked
epochs move at once and the rest one per DMA period from the first refill,
up to a period after the start, so a copy of ``epochs`` epochs runs
between ``epochs / (epochs - 2)`` and ``epochs / (epochs - 3)`` times its
target: long copies measure the pacing, short ones the bank.

On a GPU the copy runs on ``ctas`` CTAs (``gbpfd.paced_copy``'s default),
each waiting for its own chunk's tokens; one that waits past the plane's
wait bound copies its chunk anyway (a bypass, counted in ``bypassed_*``),
which lifts the rate above the target.  The simulated device's copy is one
chunk after another, so it has no such contention.

    python bench/bench_paced_copy.py [--backend auto|cuda|sim] [--quick] [--set paced_copy.epochs=N]
"""
from __future__ import annotations

import sys
import time

import numpy as np

from gbpfd.bench.case import Target
from gbpfd.plane.options import PlaneOptions

NAME = "paced_copy"
TITLE = "paced copy: achieved rate against the quota's rate, for several quotas"
BACKENDS = ("cuda", "sim")
PARAMS = {"epochs": (1_000, 50), "chunk_kib": (64, 64), "ctas": (32, 32)}
TARGETS = (
    Target("copy_rate_error_max", "<=", 0.10, "within 10% of the quota's rate", "the DMA-pacing accuracy requirement"),
)
#: the demo's copy tenant (quotas/demo.toml: 1 MiB per epoch)
COPY_TENANT = "batch"
#: the quotas tried, bytes per DMA epoch (100 us by default: about 2.6 to 21 GB/s)
EPOCH_BYTES = (256 << 10, 512 << 10, 1 << 20, 2 << 20)
#: DMA periods waited after each publish, so the copy starts with the new quota's full bank
BANK_PERIODS = 3
OPTIONS = PlaneOptions(telemetry_period_s=None)
SIM_LIMIT_NS = 10_000_000    # sim: virtual time a copy may take beyond its target duration


def measure(run) -> None:
    (_measure_cuda if run.backend == "cuda" else _measure_sim)(run)


def label(per_epoch: int) -> str:
    return f"{per_epoch >> 10}kib"


def _check_sizes(p: dict) -> int:
    chunk = p["chunk_kib"] << 10
    if not 8 <= chunk <= min(EPOCH_BYTES) or chunk % 8:
        raise ValueError(f"bench paced_copy: chunk_kib must give a chunk of 8-byte words no larger than one epoch "
                         f"of the smallest quota ({min(EPOCH_BYTES) >> 10} KiB), got {p['chunk_kib']}")
    for key in ("epochs", "ctas"):
        if p[key] < 1:
            raise ValueError(f"bench paced_copy: {key} must be at least 1, got {p[key]}")
    return chunk


def _report(run, rows: list[dict]) -> None:
    """``rows``: per quota, its bytes per epoch, the target and achieved rates
    (bytes/s) and the bytes the device counted through tokens and bypasses."""
    ratios = {}
    for r in rows:
        name = label(r["per_epoch"])
        ratio = r["achieved"] / r["target"]
        ratios[f"{r['per_epoch'] >> 10} KiB/epoch"] = ratio
        run.figure(f"copy_rate_ratio_{name}", ratio, "achieved/target", 1)
        run.check(f"target_gbps_{name}", round(r["target"] / 1e9, 3))
        run.check(f"achieved_gbps_{name}", round(r["achieved"] / 1e9, 3))
        run.check(f"paced_bytes_{name}", r["paced_bytes"])
        run.check(f"bypassed_{name}", r["bypassed"])
    run.figure("copy_rate_error_max", max(abs(v - 1) for v in ratios.values()), "fraction", len(ratios))
    tolerance = TARGETS[0].bound  # the target is a band around the quota's rate, not the rate itself
    run.bar_chart("copy_rate_ratio", ratios, "achieved/target", band=(1 - tolerance, 1 + tolerance))


# ------------------------------------------------------------ simulated device
def _measure_sim(run) -> None:
    from gbpfd.plane.plane import Plane
    p = run.params
    chunk = _check_sizes(p)
    rows = []
    with Plane("sim", options=OPTIONS) as plane:
        d = plane.device
        run.check("device", plane._backend.describe())
        tenant = plane.quotas.index(COPY_TENANT)
        period = plane.options.periods.dma_ns
        for per in EPOCH_BYTES:
            run.step(f"{per >> 10} KiB per epoch")
            plane.set_quotas(plane.quotas.with_fields(COPY_TENANT, dma_bytes_per_epoch=per))
            d.run_until(d.now + BANK_PERIODS * period)
            before = plane.counters()[COPY_TENANT]
            copy = d.copy(tenant, per * p["epochs"], chunk=chunk)
            d.run_while(lambda: copy.done_ns is None, p["epochs"] * period + SIM_LIMIT_NS)
            if copy.done_ns is None:
                raise RuntimeError(f"bench paced_copy: the simulated copy at {per} bytes per epoch moved "
                                   f"{copy.moved} of {copy.nbytes} bytes in its time")
            d.run_until(max(copy.done_ns, d.now) + 2 * plane.options.periods.tick_ns)  # the counters mirrored
            after = plane.counters()[COPY_TENANT]
            rows.append({"per_epoch": per, "target": per * 1e9 / period,
                         "achieved": copy.nbytes * 1e9 / (copy.done_ns - copy.started_ns),
                         "paced_bytes": after["dma_bytes"] - before["dma_bytes"], "bypassed": copy.bypassed_chunks})
    _report(run, rows)
    run.note("the simulated copy moves one chunk after another: no CTAs contend for the byte tokens")


# ------------------------------------------------------------------------ GPU
def _timed_copy(cuda, plane, stream, dst, src, chunk: int, ctas: int) -> float:
    """ns from the copy's launch to its end, on the GPU's clock (CUDA events on its stream)."""
    from gbpfd.admission import paced_copy
    from gbpfd.bench.gpu_sync import finish
    start, end = cuda.event(timing=True), cuda.event(timing=True)
    start.record(stream)
    paced_copy(plane, dst, src, tenant=COPY_TENANT, chunk_bytes=chunk, ctas=ctas, stream=stream)
    end.record(stream)
    finish(cuda, stream)
    return cuda.event_elapsed_time(start, end) * 1e6


def _measure_cuda(run) -> None:
    from numba import cuda

    from gbpfd.bench.gpu_sync import settle
    from gbpfd.plane.plane import Plane
    p = run.params
    chunk = _check_sizes(p)
    stream = cuda.stream()
    words = max(EPOCH_BYTES) * p["epochs"] // 8
    # made before the plane starts; the plane loads paced_copy's kernel before its control kernel
    src, dst = cuda.device_array(words, np.int64, stream=stream), cuda.device_array(words, np.int64, stream=stream)
    rows = []
    with cuda.defer_cleanup(), Plane(backend="cuda", options=OPTIONS) as plane:
        run.check("device", plane._backend.describe())
        period = plane.options.periods.dma_ns
        for per in EPOCH_BYTES:
            run.step(f"{per >> 10} KiB per epoch")
            plane.set_quotas(plane.quotas.with_fields(COPY_TENANT, dma_bytes_per_epoch=per))
            time.sleep(BANK_PERIODS * period * 1e-9)
            settle(plane)
            before, bypassed = plane.counters()[COPY_TENANT], plane.health().bypassed
            n = per * p["epochs"] // 8
            elapsed = _timed_copy(cuda, plane, stream, dst[:n], src[:n], chunk, p["ctas"])
            settle(plane)  # the counters mirrored
            after = plane.counters()[COPY_TENANT]
            rows.append({"per_epoch": per, "target": per * 1e9 / period, "achieved": n * 8e9 / elapsed,
                         "paced_bytes": after["dma_bytes"] - before["dma_bytes"],
                         "bypassed": plane.health().bypassed - bypassed})
    _report(run, rows)
    run.note(f"{p['ctas']} CTAs copy chunks of {p['chunk_kib']} KiB; bypassed_* counts the plane's bypasses "
             "during each copy (the copy is its only user), paced_bytes_* the bytes moved through byte tokens")


if __name__ == "__main__":
    from gbpfd.bench.suite import script_main
    sys.exit(script_main(__file__))
