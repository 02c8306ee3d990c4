"""Stage ``calibrate``: the constants the simulated device needs to be an
honest model of this GPU, measured by small kernels, written as
``calibration.json`` (the format of gbpfd.sim.calibration) and recorded as figures.

Every measurement is bounded (each device spin by ``%globaltimer``, each
host wait by a deadline) and runs on its own: one that fails is recorded as
a note and the others still run.  Every kernel is compiled and loaded
before it is timed.

Durations shorter than a few ``%globaltimer`` steps (the cross-SM round
trip) are counted in SM cycles and converted with the cycles per ns the
same kernel measured over its own span.  The co-resident slowdowns come
from launches of ``1 + k`` CTAs per SM grouped by the SM each CTA reports,
so they hold wherever the scheduler actually put the CTAs; since every SM
is loaded at once, the memory-bound figure includes the whole GPU's
share of HBM bandwidth, not only the SM's.
"""
from __future__ import annotations

import datetime
import time

import numpy as np

from gbpfd.bench.stats import percentile
from gbpfd.check.stage import StageContext, StageSkip
from gbpfd.sim.calibration import write_calibration

FILE = "calibration.json"
COMMAND = "gbpfd check --backend cuda --only calibrate"

THREADS = 256
CO_RESIDENTS = (0, 1, 2, 3)
TARGET_CTA_NS = 2_000_000      # a CTA long against the timer's step and the launch
CTA_BOUND_NS = 2_000_000_000
HOST_BOUND_S = 10.0
MEMORY_WORDS = 1 << 28         # 1 GiB of float32: far beyond any L2
PROBE_WORK = 1 << 14
STREAM_CTAS_PER_SM = 1 + CO_RESIDENTS[-1]   # as the memory slowdown's fullest launch
FLOAT32_BYTES = 4
HOST_READ_STRIDE = 16          # words between two links of the read chain: one 128-byte line each
LAUNCH_FEED_S = 0.5            # the clock feed outlives the launches timed beside it many times over


# -- the analysis (no GPU needed) --------------------------------------------

def timer_resolution(ticks) -> int:
    """The smallest nonzero step between consecutive ``%globaltimer`` readings."""
    steps = [int(t) for t in ticks if t > 0]
    if not steps:
        raise ValueError("no %globaltimer step was seen")
    return min(steps)


def cycles_per_ns(span_ns: int, span_cycles: int) -> float:
    if span_ns <= 0 or span_cycles <= 0:
        raise ValueError(f"the kernel's span is empty ({span_ns} ns, {span_cycles} cycles)")
    return span_cycles / span_ns


def sm_groups(rec) -> dict[int, list[int]]:
    """CTA durations (ns) by SM, from interference records (one row per CTA:
    start, end, SM, finished), of the CTAs that finished."""
    from gbpfd.check.gpu_clock import REC_DONE, REC_END, REC_SM, REC_START
    groups: dict[int, list[int]] = {}
    for row in rec:
        if row[REC_DONE] == 1:
            groups.setdefault(int(row[REC_SM]), []).append(int(row[REC_END] - row[REC_START]))
    return groups


def slowdowns(launches) -> dict[int, float]:
    """For each count of co-resident CTAs k (an SM that ran k + 1 CTAs of one
    launch), the median CTA duration on such SMs over that of a CTA alone on
    its SM.  ``launches``: one ``sm_groups`` result per launch."""
    by_k: dict[int, list[int]] = {}
    for groups in launches:
        for durations in groups.values():
            by_k.setdefault(len(durations) - 1, []).extend(durations)
    if 0 not in by_k:
        raise ValueError("no SM ran a CTA alone: there is nothing to compare with")
    alone = float(np.median(by_k[0]))
    return {k: float(np.median(d)) / alone for k, d in sorted(by_k.items())}


def issue_law_error(constants: dict) -> dict:
    """How far the compute slowdowns are from the model's law: the largest
    relative gap between ``compute_slowdown_k`` and max(1, (k + 1) * issue),
    with issue taken from the fullest SM (as gbpfd.sim.model does); nothing
    without that SM's slowdown."""
    fullest = f"compute_slowdown_{CO_RESIDENTS[-1]}"
    if fullest not in constants:
        return {}
    issue = min(1.0, constants[fullest][0] / (CO_RESIDENTS[-1] + 1))
    measured = {k: constants[f"compute_slowdown_{k}"][0] for k in CO_RESIDENTS[1:]
                if f"compute_slowdown_{k}" in constants}
    gaps = [abs(slowdown - max(1.0, (k + 1) * issue)) / slowdown for k, slowdown in measured.items()]
    return {"compute_issue_law_error": (round(max(gaps), 3), "ratio")}


def read_bandwidth(rec, bytes_per_cta: int) -> float:
    """Bytes per second the CTAs of one launch read together: all their
    bytes over the launch's span (first start to last end), from
    interference records (start, end, SM, finished) in which every CTA finished."""
    from gbpfd.check.gpu_clock import REC_DONE, REC_END, REC_START
    rec = np.asarray(rec)
    if not len(rec) or (rec[:, REC_DONE] != 1).any():
        raise ValueError(f"{int((rec[:, REC_DONE] != 1).sum()) if len(rec) else 0} of {len(rec)} streaming CTAs "
                         "did not finish within their bound")
    span = int(rec[:, REC_END].max() - rec[:, REC_START].min())
    if span <= 0:
        raise ValueError(f"the streaming launch's span is {span} ns")
    return len(rec) * bytes_per_cta * 1e9 / span


def scaled_work(work: int, measured_ns: float, target_ns: float = TARGET_CTA_NS) -> int:
    """The work that takes about ``target_ns``, in whole chunks of the kernel."""
    from gbpfd.check.gpu_clock import CHUNK
    if measured_ns <= 0:
        raise ValueError(f"a CTA of {work} iterations took {measured_ns} ns")
    return max(CHUNK, int(work * target_ns / measured_ns) // CHUNK * CHUNK)


def placement_summary(smids, sms: int) -> dict[str, tuple[float, str]]:
    """How a fresh launch spreads: the share of distinct SMs among its first
    ``sms`` CTAs (1: one CTA per SM before any SM gets a second), and the
    most CTAs any SM got."""
    first = list(smids[:sms])
    return {"placement_distinct_share": (len(set(first)) / sms, "ratio"),
            "placement_most_per_sm": (int(np.bincount(np.asarray(smids, np.int64)).max()), "CTAs")}


def spread(samples, name: str, unit: str, scale: float = 1.0) -> dict[str, tuple[float, str]]:
    """p50 and p99 of ``samples`` (times ``scale``) as two constants."""
    if not len(samples):
        raise ValueError(f"{name}: no samples")
    return {f"{name}_p50": (round(percentile(samples, 50) * scale, 3), unit),
            f"{name}_p99": (round(percentile(samples, 99) * scale, 3), unit)}


# -- the measurements (GPU only) ----------------------------------------------

class Device:
    """What the measurements share: numba-cuda, one non-blocking stream, the
    SM count, the stage's context, and each kernel once compiled and loaded."""

    def __init__(self, cuda, ctx: StageContext):
        from gbpfd.check import gpu_clock
        from gbpfd.plane.backend_cuda import non_blocking_stream
        self.cuda, self.ctx, self.G = cuda, ctx, gpu_clock
        self.stream = non_blocking_stream(cuda)
        device = cuda.get_current_device()
        self.sms, self.uuid = device.MULTIPROCESSOR_COUNT, device.uuid
        self._kernels, self._buffer = {}, None

    def kernel(self, name: str):
        if name not in self._kernels:
            self._kernels[name] = self.G.ready(getattr(self.G, name))
        return self._kernels[name]

    def bench_kernel(self, name: str):
        """A kernel of bench/gpu_kernels.py (shared with ``gbpfd bench``)."""
        if name not in self._kernels:
            self._kernels[name] = self.G.ready(getattr(bench_kernels(), name), self.G.BENCH_SIGS[name])
        return self._kernels[name]

    def filled(self, shape, value: int = 0):
        return self.cuda.to_device(np.full(shape, value, np.int64))

    def finish(self, what: str) -> None:
        from gbpfd.bench.gpu_sync import wait_event
        done = self.cuda.event(timing=False)
        done.record(self.stream)
        wait_event(done, what, HOST_BOUND_S)

    def buffer(self):
        """The memory-bound body's 1 GiB, made once."""
        if self._buffer is None:
            self._buffer = self.cuda.device_array(MEMORY_WORDS, np.float32)
        return self._buffer


def bench_kernels():
    import sys

    from gbpfd.bench.suite import bench_dir
    where = str(bench_dir())
    if where not in sys.path:
        sys.path.insert(0, where)   # as gbpfd bench imports it, so both share one compiled module
    import gpu_kernels
    return gpu_kernels


def _host_wait(ready, what: str) -> None:
    """Spin (no sleep: these waits are microseconds) until ``ready()``, at most HOST_BOUND_S."""
    deadline = time.perf_counter() + HOST_BOUND_S
    while not ready():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what} did not happen within {HOST_BOUND_S} s")


def measure_timer(dev: Device) -> dict:
    gk, probe = bench_kernels(), dev.bench_kernel("clock_probe")
    ticks, span = dev.filled(512), dev.filled(3)
    probe[1, 32, dev.stream](20_000_000, 20_000_000, ticks, span)
    dev.finish("clock_probe")
    steps, span = ticks.copy_to_host(), span.copy_to_host()
    cpn = cycles_per_ns(span[gk.SPAN_NS], span[gk.SPAN_CYCLES])
    return {"globaltimer_resolution_ns": (timer_resolution(steps), "ns"),
            "globaltimer_step_p50_ns": (percentile(steps[steps > 0], 50), "ns"),
            "sm_clock_spinning_mhz": (round(cpn * 1e3, 1), "MHz")}


def measure_cross_sm(dev: Device, rounds: int = 2000, tries: int = 3) -> dict:
    gk, pong = bench_kernels(), dev.bench_kernel("ping_pong")
    for _ in range(tries):
        rtt_cycles, where, span = dev.filled(rounds, -1), dev.filled(2, -1), dev.filled(3)
        pong[2, 32, dev.stream](dev.filled(1), 10_000_000, 1_000_000_000, rtt_cycles, dev.filled(rounds, -1), where,
                                span)
        dev.finish("ping_pong")
        landed = where.copy_to_host()
        if landed[0] != landed[1]:
            break
    else:
        raise RuntimeError(f"both ping-pong CTAs ran on SM {landed[0]} in {tries} launches")
    cycles, span = rtt_cycles.copy_to_host(), span.copy_to_host()
    cpn = cycles_per_ns(span[gk.SPAN_NS], span[gk.SPAN_CYCLES])
    return spread(cycles[cycles >= 0], "cross_sm_round_trip_ns", "ns", 1 / cpn)


def measure_atomic(dev: Device, n: int = 200_000) -> dict:
    chain, word, out = dev.kernel("atomic_chain"), dev.filled(2), dev.filled(2)
    for _ in range(2):   # the first run raises the SM clock and brings the word into L2
        chain[1, 32, dev.stream](word, n, 1_000_000_000, out)
        dev.finish("atomic_chain")
    ns, done = out.copy_to_host()
    return {"global_atomic_ns": (round(ns / done, 2), "ns")}


def measure_mapped(dev: Device, rounds: int = 500) -> dict:
    """Host write of a mapped word -> device sees it -> device echoes -> host
    sees the echo, timed on the host; one way is taken as half of that."""
    G, cuda = dev.G, dev.cuda
    echo, flag, ack = dev.kernel("mapped_echo"), cuda.mapped_array(1, np.int64), cuda.mapped_array(2, np.int64)
    flag[:], ack[:] = 0, 0
    echo[1, 32, dev.stream](flag, ack, rounds, 5_000_000_000)
    _host_wait(lambda: ack[G.ACK_ARMED] == 1, "the echo kernel's start")
    trips = []
    for i in range(1, rounds + 1):
        started = time.perf_counter_ns()
        flag[0] = i
        _host_wait(lambda i=i: ack[G.ACK_ROUND] == i, f"the device's echo of round {i}")
        trips.append(time.perf_counter_ns() - started)
    dev.finish("mapped_echo")
    return {**spread(trips, "mapped_round_trip_ns", "ns"), **spread(trips, "mapped_host_to_device_ns", "ns", 0.5)}


def read_chain(words: int, stride: int) -> np.ndarray:
    """A chain for ``host_read_chain``: word i * stride holds (i + 1) * stride,
    the last link back to 0, so each load is of a line not read before in
    the pass."""
    chain = np.zeros(words * stride, np.int64)
    chain[np.arange(words) * stride] = (np.arange(1, words + 1) % words) * stride
    return chain


def measure_host_read(dev: Device, words: int = 2048) -> dict:
    """A device load of mapped host memory, one after another (a PCIe round
    trip each): what the control CTA's snapshot copy waits for per batch."""
    cuda = dev.cuda
    host = cuda.mapped_array(words * HOST_READ_STRIDE, np.int64)
    host[:] = read_chain(words, HOST_READ_STRIDE)
    out = cuda.mapped_array(2, np.int64)
    dev.kernel("host_read_chain")[1, 32, dev.stream](host, words, out)
    dev.finish("host_read_chain")
    if out[1] != 0:
        raise RuntimeError(f"the read chain ended at word {out[1]}, not back at 0")
    return {"host_read_ns": (round(out[0] / words, 1), "ns")}


def measure_launch(dev: Device, rounds: int = 200) -> dict:
    """Launch latency two ways: host launch -> the CTA's first clock reading,
    against the device clock a resident spinner fed to the host just before
    (late by that feed's age, a few us at most, so an overestimate); and
    launch -> completion seen by the host through an event on a
    non-blocking stream."""
    from gbpfd.check.resident import Spinner
    cuda, stamp, G = dev.cuda, dev.kernel("stamp"), dev.G
    out, done = cuda.mapped_array(1, np.int64), cuda.event(timing=False)
    feed = Spinner(cuda, slots=1, nap_ns=0)
    feed.life_s = LAUNCH_FEED_S
    feed.ensure(LAUNCH_FEED_S)
    to_start, trips = [], []
    for _ in range(rounds):
        out[0] = 0
        device_now = feed.word(G.BEAT)
        started = time.perf_counter_ns()
        stamp[1, 32, dev.stream](out)
        done.record(dev.stream)
        _host_wait(done.query, "the stamp kernel")
        trips.append(time.perf_counter_ns() - started)
        if out[0] == 0:
            raise RuntimeError("the stamp kernel completed without writing its clock")
        to_start.append(int(out[0]) - device_now)
    if feed.left_s() <= 0:
        raise RuntimeError(f"the clock feed ended before the {rounds} launches did")
    feed.finish()
    return {**spread(to_start, "launch_to_start_us", "us", 1e-3), **spread(trips, "launch_round_trip_us", "us", 1e-3)}


def measure_placement(dev: Device) -> dict:
    where = dev.filled(2 * dev.sms, -1)
    dev.kernel("placement")[2 * dev.sms, 32, dev.stream](200_000, where)
    dev.finish("placement")
    smids = where.copy_to_host()
    dev.ctx.figure("placement_first", smids.tolist(), "SM of each CTA, in block order")
    dev.ctx.figure("placement_per_sm", np.bincount(smids, minlength=dev.sms).tolist(), "CTAs on each SM")
    return placement_summary(smids, dev.sms)


def _interference_records(dev: Device, kind: int, blocks: int, work: int):
    rec = dev.filled((blocks, dev.G.REC_COLUMNS), -1)
    dev.kernel("interference")[blocks, THREADS, dev.stream](kind, work, CTA_BOUND_NS, dev.buffer(), rec)
    dev.finish("interference")
    return rec.copy_to_host()


def _interference(dev: Device, kind: int, blocks: int, work: int) -> dict[int, list[int]]:
    return sm_groups(_interference_records(dev, kind, blocks, work))


def _scaled_work(dev: Device, kind: int) -> int:
    """The work per CTA that takes about TARGET_CTA_NS alone on its SM, from one probe launch."""
    probe = _interference(dev, kind, dev.sms, PROBE_WORK)
    return scaled_work(PROBE_WORK, float(np.median([d for ds in probe.values() for d in ds])))


def measure_hbm(dev: Device) -> dict:
    """What the memory-bound body reads per second with STREAM_CTAS_PER_SM
    of its CTAs on every SM: the HBM bandwidth the model's memory-moving
    blocks share (this body's, which may be below the datasheet's)."""
    work = _scaled_work(dev, dev.G.MEMORY)
    rec = _interference_records(dev, dev.G.MEMORY, STREAM_CTAS_PER_SM * dev.sms, work)
    return {"hbm_read_bytes_per_s": (round(read_bandwidth(rec, work * THREADS * FLOAT32_BYTES), -6), "bytes/s")}


def measure_slowdown(dev: Device, kind: int) -> dict:
    """A CTA's slowdown beside k co-resident CTAs of the same body on its SM."""
    label = "compute" if kind == dev.G.COMPUTE else "memory"
    work = _scaled_work(dev, kind)
    ratios = slowdowns([_interference(dev, kind, (1 + k) * dev.sms, work) for k in CO_RESIDENTS])
    missing = [k for k in CO_RESIDENTS if k not in ratios]
    if missing:
        dev.ctx.note(f"{label} slowdown: no SM ran {' or '.join(str(k + 1) for k in missing)} CTAs of one launch")
    found = {f"{label}_slowdown_{k}": (round(ratios[k], 3), "x") for k in CO_RESIDENTS[1:] if k in ratios}
    found[f"{label}_cta_work"] = (work, "iterations")
    return found


def _sample_clock(nvml, handle, seconds: float) -> float:
    samples, until = [], time.monotonic() + seconds
    while time.monotonic() < until:
        samples.append(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM))
        time.sleep(0.02)
    return float(np.median(samples))


def measure_clocks(dev: Device) -> dict:
    """SM clock (NVML) idle, then while compute-bound CTAs fill every SM."""
    try:
        import pynvml
    except ImportError:
        dev.ctx.note("sm_clock_idle_mhz, sm_clock_load_mhz: not measured, pynvml (nvidia-ml-py) does not import")
        return {}
    pynvml.nvmlInit()
    try:
        handle = pynvml.nvmlDeviceGetHandleByUUID(dev.uuid.encode())   # bytes: older pynvml takes no str
        idle = _sample_clock(pynvml, handle, 0.3)
        rec = dev.filled((4 * dev.sms, dev.G.REC_COLUMNS), -1)
        dev.kernel("interference")[4 * dev.sms, THREADS, dev.stream](dev.G.COMPUTE, 1 << 40, 1_500_000_000,
                                                                   dev.buffer(), rec)
        time.sleep(0.3)   # let the clock settle under the load
        load = _sample_clock(pynvml, handle, 0.8)
        dev.finish("the load kernel")
    finally:
        pynvml.nvmlShutdown()
    return {"sm_clock_idle_mhz": (idle, "MHz"), "sm_clock_load_mhz": (load, "MHz")}


#: the measurements in order; the clocks first, while the GPU is still idle
MEASUREMENTS = (
    ("clocks", measure_clocks),
    ("timer", measure_timer),
    ("cross_sm", measure_cross_sm),
    ("atomic", measure_atomic),
    ("mapped", measure_mapped),
    ("host_read", measure_host_read),
    ("launch", measure_launch),
    ("placement", measure_placement),
    ("compute_slowdown", lambda dev: measure_slowdown(dev, dev.G.COMPUTE)),
    ("memory_slowdown", lambda dev: measure_slowdown(dev, dev.G.MEMORY)),
    ("hbm", measure_hbm),
)


def collect(dev, measurements=MEASUREMENTS) -> tuple[dict, list[str]]:
    """Every measurement's constants (each recorded as a figure), and the
    names of those that failed (each recorded as a note)."""
    constants, failed = {}, []
    for name, fn in measurements:
        try:
            found = fn(dev)
        except Exception as err:  # one broken measurement must not cost the others
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            dev.ctx.note(f"{name}: not measured: {type(err).__name__}: {first}".rstrip(": "))
            failed.append(name)
            continue
        for key, (value, unit) in found.items():
            dev.ctx.figure(key, value, unit)
            constants[key] = (value, unit)
    return constants, failed


def provenance(gpu: dict) -> dict:
    """The calibration's provenance from ``gbpfd.bench.machine.gpu_facts()``."""
    return {"gpu": {"name": gpu["gpu"], "sms": gpu["sms"], "cc": gpu["compute_capability"],
                    "driver": gpu["driver"] or f"CUDA {gpu['cuda_driver_api']}"},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": COMMAND}


def run(ctx: StageContext) -> None:
    if not ctx.gpu:
        raise StageSkip("needs a GPU: the constants are measured on the GPU they describe")
    from gbpfd.cuda_toolchain import prepare
    prepare()
    from numba import cuda

    from gbpfd.bench.machine import gpu_facts
    constants, failed = collect(Device(cuda, ctx))
    for key, (value, unit) in issue_law_error(constants).items():
        ctx.figure(key, value, unit)
        constants[key] = (value, unit)
    write_calibration(ctx.out / FILE, constants, provenance(gpu_facts()))
    if failed:
        raise RuntimeError(f"not measured: {', '.join(failed)} (the others are in {FILE})")
