"""The demo's workload on a GPU (GPU-only; marked gpu in the tests).

Best-effort tenants run persistent-worker kernels of ``be_block_us``
blocks, each in its own thread and stream, until the time is up; the
latency-critical tenant launches a gate-mode kernel every
``lc_period_us``; the copy tenant runs paced copies; the baseline's other
form is loaded half-way.  Every logical block and CTA marks itself, so the
device's admitted/bypassed counters can be checked against what ran.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from gbpfd.demo.report import class_shares, percentiles_us
from gbpfd.demo.sim_workload import SWAPPED_HOOKS
from gbpfd.policies.catalog import baseline_programs

BE_BLOCKS_PER_LAUNCH = 4096
THREADS = 128
GPU_WAIT_MARGIN_S = 60.0   # past the demo's length, a launch still not done has hung


class GpuKernels:
    """The demo's admitted kernels, compiled and loaded for its argument
    types, and every device buffer and stream the workload uses: all made
    before the plane starts (see ``AdmittedKernel.preload``), since loading
    a module, and perhaps allocating, while the control kernel is resident
    can wait for it forever."""

    def __init__(self, plane, cfg):
        from numba import cuda

        from gbpfd.admission import admit
        from gbpfd.demo import gpu_kernels
        from gbpfd.plane.backend_cuda import non_blocking_stream
        marks = cuda.device_array(1, np.int64)
        self.be = {t.name: admit(plane, tenant=t.name, mode="persistent")(gpu_kernels.be_block)
                   for t in plane.quotas.tenants if not t.latency_critical}
        for kernel in self.be.values():
            kernel.preload(marks, cfg.be_block_us * 1000)
        self.lc = admit(plane, tenant=cfg.lc_tenant, mode="gate")(gpu_kernels.lc_cta)
        self.lc.preload(marks, cfg.lc_cta_us * 1000)
        self.be_marks = {name: cuda.device_array(BE_BLOCKS_PER_LAUNCH, np.int64) for name in self.be}
        self.lc_marks = cuda.device_array(cfg.lc_ctas, np.int64)
        words = cfg.copy_bytes // 8
        self.copy_src, self.copy_dst = cuda.device_array(words, np.int64), cuda.device_array(words, np.int64)
        self.streams = {name: non_blocking_stream(cuda) for name in (*self.be, "copy", "lc")}


def run_on_gpu(plane, cfg, kernels: GpuKernels, progress=None) -> dict:
    from gbpfd.admission import paced_copy
    from gbpfd.bridge.layout import HEADER
    from gbpfd.plane.backend_cuda import wait_for_stream

    qs = plane.quotas
    end = time.monotonic() + cfg.seconds
    bound_s = cfg.seconds + GPU_WAIT_MARGIN_S
    marks: list = []
    lock = threading.Lock()

    def be_loop(name: str) -> None:
        kernel, m, stream = kernels.be[name], kernels.be_marks[name], kernels.streams[name]
        zeros = np.zeros(BE_BLOCKS_PER_LAUNCH, np.int64)
        while time.monotonic() < end:
            m.copy_to_device(zeros, stream=stream)
            kernel[BE_BLOCKS_PER_LAUNCH, THREADS, stream](m, cfg.be_block_us * 1000)
            with lock:
                marks.append(m.copy_to_host(stream=stream))
            wait_for_stream(stream, bound_s, f"tenant {name}'s launch")

    def copy_loop() -> None:
        stream, src, dst = kernels.streams["copy"], kernels.copy_src, kernels.copy_dst
        while time.monotonic() < end:
            paced_copy(plane, dst, src, tenant=cfg.copy_tenant, chunk_bytes=cfg.copy_chunk, stream=stream)
            wait_for_stream(stream, bound_s, "a paced copy")
            copied[0] += cfg.copy_bytes

    copied = [0]
    copy_start = time.monotonic()
    threads = [threading.Thread(target=be_loop, args=(t.name,), daemon=True)
               for t in qs.tenants if not t.latency_critical]
    threads.append(threading.Thread(target=copy_loop, daemon=True))
    for th in threads:
        th.start()

    lc, m, lc_stream = kernels.lc, kernels.lc_marks, kernels.streams["lc"]
    lc_zeros = np.zeros(cfg.lc_ctas, np.int64)
    lc_latency, swapped, start = [], [], time.monotonic()
    while time.monotonic() < end:
        m.copy_to_device(lc_zeros, stream=lc_stream)
        t0 = time.perf_counter_ns()
        lc[cfg.lc_ctas, THREADS, lc_stream](m, cfg.lc_cta_us * 1000)
        wait_for_stream(lc_stream, bound_s, "a latency-critical launch")
        lc_latency.append(time.perf_counter_ns() - t0)
        with lock:
            marks.append(m.copy_to_host(stream=lc_stream))
        if not swapped and time.monotonic() - start >= cfg.seconds / 2:
            swapped = [plane.load(p, h) for h, p in baseline_programs(cfg.swap_to).items() if h in SWAPPED_HOOKS]
        if progress:
            progress(min((time.monotonic() - start) / cfg.seconds, 1.0))
        time.sleep(cfg.lc_period_us * 1e-6)
    for th in threads:
        th.join()
    copy_elapsed = time.monotonic() - copy_start

    counters = plane.counters()
    tenants = []
    for t in qs.tenants:
        row = {"name": t.name, "class": t.klass, "weight": t.weight, "admitted": counters[t.name]["admitted"]}
        if t.latency_critical:
            row["p50_us"], row["p99_us"] = percentiles_us(lc_latency)
            row["kernels"] = len(lc_latency)
        tenants.append(row)
    class_shares(tenants)
    ran = sum(int(m.sum()) for m in marks)
    entered = sum(c["admitted"] + c["bypassed"] for c in counters.values())
    doubled = sum(int((m > 1).sum()) for m in marks)
    waits = [e.args["wait_ns"] for e in plane.events() if e.kind == "decision"]
    p50, p99 = percentiles_us(waits)
    copy_tenant = qs.tenants[qs.index(cfg.copy_tenant)]
    return {
        "backend": plane.backend_name,
        "backend_reason": plane.backend_reason,
        "simulated": False,
        "device": plane._backend.describe(),
        "seconds": cfg.seconds,
        "tenants": tenants,
        "copy": {"tenant": cfg.copy_tenant, "bytes": copied[0],
                 "target_bytes_per_s": copy_tenant.dma_bytes_per_epoch * 1e9 / plane.options.periods.dma_ns,
                 "achieved_bytes_per_s": copied[0] / copy_elapsed},
        "swap": {"lost": max(0, ran - entered), "doubled": max(0, entered - ran) + doubled,
                 "at_s": round(cfg.seconds / 2, 6), "program": ", ".join(f"{p.name} -> {p.hook}" for p in swapped)},
        # sampled decisions: post -> decision on the device clock (the requester's view adds one L2 trip)
        "reaction": {"p50_us": p50, "p99_us": p99, "samples": len(waits)},
        "plane": {"ticks": int(plane.arrays.host[HEADER.ticks]),
                  "loop_period_ns": int(plane.arrays.host[HEADER.loop_period_ns]),
                  "bypassed": int(plane.arrays.host[HEADER.bypassed]),
                  "faults": sum(c["faults"] for c in counters.values())},
    }



