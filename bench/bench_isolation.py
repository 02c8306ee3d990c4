"""Isolation: a latency-critical tenant's kernel latency alone and beside a
best-effort tenant that saturates the GPU, with no plane, with CUDA stream
priorities (the built-in alternative) and with the plane; and what the
best-effort tenant keeps of its throughput.

The latency-critical (LC) kernel is a few CTAs of fixed FMA work
(``gpu_workloads.fma_grid``), launched from the host every
``lc_period_us`` (times 0.5 to 1.5, drawn at random so that launches fall
at every phase of the best-effort work); its latency is launch to
completion, from two CUDA events around it on its stream.  The
best-effort (BE) kernels are large grids of the same work, back to back
from a host thread; their throughput is blocks completed per second.
Scenarios:

* ``alone``: the LC kernels on an idle GPU (the reference), and
  ``be_alone``: the BE kernels alone (the throughput reference);
* ``noplane``: both, on streams of the same priority;
* ``priority``: the LC kernels on a stream of the device's greatest
  priority (CTAs of a higher-priority stream are dispatched first as slots
  free; running CTAs are not preempted);
* ``plane``: the plane admitting only (an sm_tick that drains nothing),
  with the baseline policy's other hooks and the demo quotas: LC tenant
  ``infer`` in gate mode, BE tenant ``train`` in persistent-worker mode;
  ``plane_alone`` is the LC kernels under the plane with no BE load;
* ``plane_drain``: the same with the baseline's sm_tick, which drains
  whole SMs for the LC tenant (BE workers leave them at a block boundary),
  and the LC kernels on the stream of the greatest priority.  Its drain
  figures: drains completed, their mean and longest wait (mark to the last
  BE worker gone), and the BE workers that left a drained SM;
* ``plane_mask``: the static alternative, no draining but the BE tenant's
  quota SM mask leaving out the last ``lc_ctas`` SMs for good (its workers
  never run there, whether the LC tenant is busy or not), the LC kernels
  again at the greatest priority.

On the simulated device (docs/simulator.md) the same scenarios run in
virtual time, with two BE bodies: the compute-bound one above and a
memory-bound one (figures of the latter end in ``_mem``).  CTAs are placed
on SMs, co-resident blocks share an SM's issue rate and memory-moving
blocks share HBM bandwidth, so an LC CTA that lands beside BE CTAs runs
slower than alone: SIMULATED, under the calibration the ``device`` check
names.

    python bench/bench_isolation.py [--backend auto|cuda|sim] [--quick]
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np

from gbpfd.bench.case import Target
from gbpfd.bench.stats import percentile

NAME = "isolation"
TITLE = "latency-critical p99 alone vs beside a saturating best-effort tenant: no plane, stream priorities, the plane"
BACKENDS = ("cuda", "sim")
#: after the others: its admitted launches are the likeliest to wedge a GPU
ORDER = 90
PARAMS = {"lc_period_us": (1000, 1000), "lc_ctas": (8, 8), "seed": (1, 1),
          "lc_kernels": (1000, 100), "threads": (512, 512), "lc_iters": (16_384, 16_384),
          "be_ctas": (65_536, 65_536), "be_iters": (1536, 1536), "be_alone_s": (2.0, 0.5),
          "sim_lc_kernels": (300, 30), "sim_lc_cta_us": (150, 150), "sim_be_cta_us": (200, 200),
          "sim_be_ctas": (6600, 6600), "sim_be_alone_ms": (50, 10),
          "sim_memory_demand": (2.0, 2.0)}
TARGETS = (
    Target("lc_p99_ratio_plane_drain", "<=", 1.2, "<= 1.2x the LC p99 alone on a GPU (1.10x simulated)",
           "the isolation requirement (Tally: +7.2% p99)"),
    Target("be_throughput_ratio_plane_drain", ">=", 0.8, ">= 80% of the BE throughput alone on a GPU (85% simulated)",
           "the isolation requirement (Tally: about 80% throughput)"),
)
LC_TENANT, BE_TENANT = "infer", "train"   # the demo quotas' latency-critical and best-effort tenants
SHARED = ("noplane", "priority", "plane", "plane_drain", "plane_mask")
#: the plane scenarios: whether the baseline's sm_tick drains, whether BE has a static SM mask
PLANE_SCENARIOS = {"plane": (False, False), "plane_drain": (True, False), "plane_mask": (False, True)}
BAR_LABELS = {"noplane": "no plane", "priority": "stream priorities", "plane": "plane, admitting only",
              "plane_drain": "plane, draining SMs", "plane_mask": "plane, static BE SM mask",
              "plane_alone": "plane, LC alone"}
#: the BE bodies, by the suffix of their figures: compute-bound (the GPU's) and memory-bound (simulated only)
BODY_LABELS = {"": "", "_mem": ", memory-bound BE"}
SIM_HIGH_PRIORITY = -1     # CUDA's convention: lower is dispatched first
SIM_WARM_NS = 2_000_000    # BE load before the LC kernels start (persistent workers all in)
BE_WARM_S = 0.05
NEVER_ENDING = 1 << 40     # logical blocks of the simulated persistent BE kernel: more than any run


def measure(run) -> None:
    (_measure_cuda if run.backend == "cuda" else _measure_sim)(run)


def _gaps(p: dict, n: int) -> np.ndarray:
    """Idle time before each LC launch, in us."""
    return np.random.default_rng(p["seed"]).uniform(0.5, 1.5, n) * p["lc_period_us"]


def _report(run, lat: dict, be_rate: dict, be_blocks: dict, bodies=("",)) -> None:
    """``lat``: LC latencies in us per scenario (``alone``, ``plane_alone``,
    and each of SHARED with each body's suffix); ``be_rate``: BE blocks per
    s per scenario (``alone`` + suffix: that body alone); ``be_blocks``: how many."""
    alone = percentile(lat["alone"], 99)
    lc = ["alone", "plane_alone", *(s + b for b in bodies for s in SHARED)]
    ratios = {}
    for s in lc:
        p99 = percentile(lat[s], 99)
        run.figure(f"lc_p99_{s}_us", p99, "us", len(lat[s]))
        run.figure(f"lc_p50_{s}_us", percentile(lat[s], 50), "us", len(lat[s]))
        run.cdf(f"lc_{s}", lat[s], "us")
        if s != "alone":
            ratios[s] = p99 / alone if p99 is not None and alone else None
            run.figure(f"lc_p99_ratio_{s}", ratios[s], "x alone", len(lat[s]))
    shares = {}
    for b in bodies:
        run.figure(f"be_alone{b}_blocks_per_s", be_rate["alone" + b], "blocks/s", be_blocks["alone" + b])
        for s in SHARED:
            shares[s + b] = be_rate[s + b] / be_rate["alone" + b] if be_rate["alone" + b] else None
            run.figure(f"be_throughput_ratio_{s}{b}", shares[s + b], "x alone", be_blocks[s + b])
    run.bar_chart("lc_p99_ratio", {_label(s, bodies): v for s, v in ratios.items()}, "x alone", target=1.2)
    run.bar_chart("be_throughput_ratio", {_label(s, bodies): v for s, v in shares.items()}, "x alone", target=0.8)


def _report_drains(run, scenario: str, stats: dict, drained_exits: int) -> None:
    """The drain figures of one plane scenario, from the header words the control CTA mirrors."""
    drains = stats["drains"]
    run.figure(f"drains_{scenario}", drains, "drains", 1)
    run.figure(f"drain_wait_mean_{scenario}_us", stats["drain_wait_sum_ns"] / drains / 1000 if drains else None,
               "us", drains)
    run.figure(f"drain_wait_max_{scenario}_us", stats["drain_wait_max_ns"] / 1000 if drains else None, "us", drains)
    run.figure(f"be_workers_left_drained_{scenario}", drained_exits, "workers", 1)


def _masked(quotas, p: dict, sms: int):
    """The quotas with the BE tenant kept off the last ``lc_ctas`` SMs."""
    return quotas.with_fields(BE_TENANT, sms=[f"0-{sms - 1 - p['lc_ctas']}"])


def _label(scenario: str, bodies) -> str:
    """A bar's label: the scenario, and its BE body when there are several."""
    for b in sorted(bodies, key=len, reverse=True):
        if b and scenario.endswith(b):
            return BAR_LABELS[scenario[:-len(b)]] + BODY_LABELS[b]
    return BAR_LABELS[scenario]


# ------------------------------------------------------------ simulated device
def _sim_bodies(p: dict, gpu) -> dict:
    """The BE kernel's launch arguments for each body: compute-bound (a
    block uses the calibration's ``compute_issue`` of its SM's issue rate
    alone, as the LC kernel's does) and memory-bound (``memory_issue``; its
    blocks, one in every CTA slot of the GPU, ask for ``sim_memory_demand``
    times the HBM bandwidth)."""
    block_s = p["sim_be_cta_us"] * 1e-6
    slots = gpu.num_sms * gpu.slots_per_sm
    return {"": {"issue_utilisation": gpu.compute_issue},
            "_mem": {"issue_utilisation": gpu.memory_issue,
                     "bytes_per_block": p["sim_memory_demand"] * gpu.hbm_bytes_per_s * block_s / slots}}


class _SimBE:
    """The BE load on the simulated device: plain kernels back to back, or
    one persistent kernel that never runs out of blocks."""

    def __init__(self, d, tenant: int, p: dict, mode: str, body: dict):
        self.d, self.tenant, self.p, self.body = d, tenant, p, body
        self.runs = []
        self.stopped = False
        if mode == "persistent":
            self.runs.append(d.launch(tenant, blocks=NEVER_ENDING, block_ns=p["sim_be_cta_us"] * 1000,
                                      mode="persistent", **body))
        else:
            self._next()

    def _next(self, _done=None) -> None:
        if not self.stopped:
            self.runs.append(self.d.launch(self.tenant, blocks=self.p["sim_be_ctas"],
                                           block_ns=self.p["sim_be_cta_us"] * 1000, mode="none",
                                           on_done=self._next, **self.body))

    @property
    def blocks_done(self) -> int:
        return sum(r.blocks_done for r in self.runs)


def _sim_lc(d, tenant: int, p: dict, mode: str, priority: int = 0) -> tuple:
    """LC latencies (us) of ``sim_lc_kernels`` launches, one after another
    with random gaps, and how many of their CTAs landed beside another
    tenant's CTAs."""
    n = p["sim_lc_kernels"]
    gaps = (_gaps(p, n) * 1000).astype(np.int64)
    lat: list = []
    beside = [0]

    def launch() -> None:
        d.launch(tenant, blocks=p["lc_ctas"], block_ns=p["sim_lc_cta_us"] * 1000, mode=mode, priority=priority,
                 issue_utilisation=d.gpu.compute_issue, on_done=done)

    def done(k) -> None:
        lat.append(k.latency_ns / 1000)
        beside[0] += k.beside
        if len(lat) < n:
            d.at(d.now + int(gaps[len(lat)]), launch)

    launch()
    limit = n * (p["lc_period_us"] * 2000 + p["sim_be_ctas"] * p["sim_be_cta_us"] * 1000)
    if not d.run_while(lambda: len(lat) < n, limit):
        raise TimeoutError(f"the simulated LC kernels finished {len(lat)} of {n} launches in the virtual time they had")
    return lat, beside[0]


def _sim_beside(d, be: _SimBE, work) -> tuple:
    """``work()`` beside ``be`` once it has warmed up: (what ``work``
    returns, BE blocks per s while it ran, BE blocks)."""
    d.run_until(d.now + SIM_WARM_NS)
    t0, b0 = d.now, be.blocks_done
    result = work()
    blocks = be.blocks_done - b0
    be.stopped = True
    return result, blocks * 1e9 / (d.now - t0), blocks


def _measure_sim(run) -> None:
    from gbpfd.bench.policies import NO_DRAIN_SM_ASM, program
    from gbpfd.plane.arrays import allocate
    from gbpfd.plane.options import PlaneOptions
    from gbpfd.plane.plane import Plane
    from gbpfd.sim.device import SimDevice
    p = run.params
    gpu = PlaneOptions().sim
    bodies = _sim_bodies(p, gpu)
    lat, rate, blocks, beside = {}, {}, {}, {}

    def bare():
        return SimDevice(allocate(), gpu)

    run.step("LC alone")
    lat["alone"], beside["alone"] = _sim_lc(bare(), 0, p, "none")
    for b, body in bodies.items():
        run.step(f"BE alone{BODY_LABELS[b]}")
        d = bare()
        _, rate["alone" + b], blocks["alone" + b] = _sim_beside(
            d, _SimBE(d, 1, p, "none", body), lambda d=d: d.run_until(d.now + p["sim_be_alone_ms"] * 1_000_000))
        for s, priority in (("noplane", 0), ("priority", SIM_HIGH_PRIORITY)):
            run.step(f"LC beside BE, {s}{BODY_LABELS[b]}")
            d = bare()
            (lat[s + b], beside[s + b]), rate[s + b], blocks[s + b] = _sim_beside(
                d, _SimBE(d, 1, p, "none", body), lambda d=d, priority=priority: _sim_lc(d, 0, p, "none", priority))
        for s, (drain, masked) in PLANE_SCENARIOS.items():
            run.step(f"LC beside BE under the plane, {BAR_LABELS[s]}{BODY_LABELS[b]}")
            with Plane("sim") as plane:
                d, q = plane.device, plane.quotas
                run.check("device", plane._backend.describe())
                if not drain:
                    plane.load(program(NO_DRAIN_SM_ASM))
                if masked:
                    plane.set_quotas(_masked(q, p, d.gpu.num_sms))
                d.run_until(d.now + SIM_WARM_NS)  # ticks have run, as compiling the kernels lets them on a GPU
                if "plane_alone" not in lat:
                    run.step("LC alone under the plane")
                    lat["plane_alone"], beside["plane_alone"] = _sim_lc(d, q.index(LC_TENANT), p, "gate")
                be = _SimBE(d, q.index(BE_TENANT), p, "persistent", body)
                priority = SIM_HIGH_PRIORITY if drain or masked else 0
                (lat[s + b], beside[s + b]), rate[s + b], blocks[s + b] = _sim_beside(
                    d, be, lambda d=d, q=q, priority=priority: _sim_lc(d, q.index(LC_TENANT), p, "gate", priority))
                counters = plane.counters()
                _report_drains(run, s + b, plane.plane_stats(), counters[BE_TENANT]["drained"])
            for t in (LC_TENANT, BE_TENANT):
                run.check(f"{s}{b}_{t}", {k: counters[t][k] for k in ("admitted", "deferred", "bypassed")})
    run.check("lc_ctas_beside_another_tenant", beside)
    run.check("lc_ctas_per_scenario", p["sim_lc_kernels"] * p["lc_ctas"])
    _report(run, lat, rate, blocks, tuple(bodies))
    run.note("SIMULATED: CTAs placed on SMs by the model's placement rule, co-resident blocks sharing an SM's issue "
             "rate, memory-moving blocks sharing HBM bandwidth; not modelled: L2 and cache contention, warp "
             "scheduling, the LC kernel's own memory traffic (docs/simulator.md)")


# ------------------------------------------------------------------------ GPU
def _lc_latencies(cuda, stream, launch, gaps_us) -> list:
    """Launch-to-completion of one LC kernel per gap, in us, from events on ``stream``."""
    from gbpfd.bench.gpu_sync import finish
    start, end = cuda.event(), cuda.event()
    out = []
    for gap in gaps_us:
        start.record(stream)
        launch()
        end.record(stream)
        finish(cuda, stream)
        out.append(start.elapsed_time(end) * 1000.0)
        time.sleep(gap * 1e-6)
    return out


class _Background:
    """BE kernels launched back to back on ``stream`` from a thread (the next
    one queued before the last one ends) until the block ends; ``rate``:
    blocks completed per second from the first launch to the last end."""

    def __init__(self, cuda, stream, launch, blocks_per_kernel: int):
        self.cuda, self.stream, self.launch, self.blocks_per_kernel = cuda, stream, launch, blocks_per_kernel
        self.kernels = 0
        self.error = None
        self.seconds = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "_Background":
        self._thread.start()
        time.sleep(BE_WARM_S)  # the GPU is full before the LC kernels start
        return self

    def __exit__(self, *exc) -> None:
        from gbpfd.bench.gpu_sync import KERNEL_TIMEOUT_S
        self._stop.set()
        self._thread.join(KERNEL_TIMEOUT_S)
        if exc[0] is None:
            if self._thread.is_alive():
                raise TimeoutError(f"the BE kernels did not stop within {KERNEL_TIMEOUT_S} s")
            if self.error is not None:
                raise self.error

    def _loop(self) -> None:
        from gbpfd.bench.gpu_sync import finish, wait_event
        try:
            first, last = self.cuda.event(), self.cuda.event()
            first.record(self.stream)
            queued = None
            while not self._stop.is_set():
                self.launch()
                self.kernels += 1
                ended = self.cuda.event(timing=False)
                ended.record(self.stream)
                if queued is not None:
                    wait_event(queued, "a BE kernel")
                queued = ended
            last.record(self.stream)
            finish(self.cuda, self.stream)
            self.seconds = first.elapsed_time(last) / 1000
        except Exception as err:  # raised again in the launching thread
            self.error = err

    @property
    def blocks(self) -> int:
        return self.kernels * self.blocks_per_kernel

    @property
    def rate(self) -> float:
        return self.blocks / self.seconds


def _measure_cuda(run) -> None:
    from numba import cuda

    import gpu_workloads as gw
    from gbpfd.admission import admit
    from gbpfd.bench.gpu_sync import finish
    from gbpfd.bench.policies import NO_DRAIN_SM_ASM, program
    from gbpfd.plane.backend_cuda import non_blocking_stream, stream_priority_range
    from gbpfd.plane.plane import Plane
    p = run.params
    threads, n = p["threads"], p["lc_kernels"]
    gaps = _gaps(p, n)
    cuda.current_context()  # the driver calls that make the streams need the context current
    least, greatest = stream_priority_range()
    run.check("stream_priority_range", {"least": least, "greatest": greatest})
    lc_stream, high_stream, be_stream = (non_blocking_stream(cuda, least), non_blocking_stream(cuda, greatest),
                                         non_blocking_stream(cuda, least))
    lc_sink, be_sink = cuda.device_array(1, np.float32), cuda.device_array(1, np.float32)

    def plain_lc(stream):
        return lambda: gw.fma_grid[p["lc_ctas"], threads, stream](lc_sink, p["lc_iters"])

    def plain_be():
        gw.fma_grid[p["be_ctas"], threads, be_stream](be_sink, p["be_iters"])

    lat, rate, blocks = {}, {}, {}
    run.step("warming up")
    for launch, stream in ((plain_lc(lc_stream), lc_stream), (plain_be, be_stream)):
        launch()
        finish(cuda, stream)
    run.step(f"LC alone, {n} kernels")
    lat["alone"] = _lc_latencies(cuda, lc_stream, plain_lc(lc_stream), gaps)
    run.step("BE alone")
    with _Background(cuda, be_stream, plain_be, p["be_ctas"]) as be:
        time.sleep(p["be_alone_s"])
    rate["alone"], blocks["alone"] = be.rate, be.blocks
    for s, stream in (("noplane", lc_stream), ("priority", high_stream)):
        run.step(f"LC beside BE, {s}, {n} kernels")
        with _Background(cuda, be_stream, plain_be, p["be_ctas"]) as be:
            lat[s] = _lc_latencies(cuda, stream, plain_lc(stream), gaps)
        rate[s], blocks[s] = be.rate, be.blocks
    plane = Plane(backend="cuda")
    lc = admit(plane, LC_TENANT, mode="gate")(gw.fma_grid)
    be_workers = admit(plane, BE_TENANT, mode="persistent")(gw.fma_logical)
    run.step("compiling the admitted kernels")
    lc.preload(lc_sink, p["lc_iters"])
    be_workers.preload(be_sink, p["be_iters"])
    with cuda.defer_cleanup(), plane:
        run.check("device", plane._backend.describe())

        def admitted_lc():
            lc[p["lc_ctas"], threads, lc_stream](lc_sink, p["lc_iters"])

        def admitted_be():
            be_workers[p["be_ctas"], threads, be_stream](be_sink, p["be_iters"])

        run.step("under the plane: warming up")
        admitted_lc()
        finish(cuda, lc_stream)
        be_workers[1, threads, be_stream](be_sink, p["be_iters"])
        run.step(f"LC alone under the plane, {n} kernels")
        lat["plane_alone"] = _lc_latencies(cuda, lc_stream, admitted_lc, gaps)
        counters = {}
        quotas = plane.quotas
        for s, (drain, masked) in PLANE_SCENARIOS.items():
            # admitting only: an sm_tick that drains nothing; the baseline's, which drains SMs for LC; a static mask
            stream = high_stream if drain or masked else lc_stream
            if drain:
                plane.unload("sm_tick")
            else:
                plane.load(program(NO_DRAIN_SM_ASM))
            plane.set_quotas(_masked(quotas, p, plane.device_sms) if masked else quotas)
            run.step(f"LC beside BE under the plane, {BAR_LABELS[s]}, {n} kernels")
            before = plane.plane_stats()
            drained_before = plane.counters()[BE_TENANT]["drained"]
            with _Background(cuda, be_stream, admitted_be, p["be_ctas"]) as be:
                lat[s] = _lc_latencies(cuda, stream, lambda stream=stream: lc[p["lc_ctas"], threads, stream](
                    lc_sink, p["lc_iters"]), gaps)
            rate[s], blocks[s] = be.rate, be.blocks
            after = plane.plane_stats()
            counters[s] = plane.counters()
            stats = {k: after[k] - before[k] for k in ("drains", "drain_wait_sum_ns")}
            _report_drains(run, s, {**stats, "drain_wait_max_ns": after["drain_wait_max_ns"]},
                           counters[s][BE_TENANT]["drained"] - drained_before)
        run.check("bypassed", plane.health().bypassed)
    for s in counters:
        for t in (LC_TENANT, BE_TENANT):
            run.check(f"{s}_{t}", {k: counters[s][t][k] for k in ("admitted", "deferred", "bypassed")})
    _report(run, lat, rate, blocks)
    run.note("LC latency: CUDA events around each launch on the LC stream, which is idle before it; the BE "
             "throughput counts every block of the BE kernels from the first launch to the last end")


if __name__ == "__main__":
    from gbpfd.bench.suite import script_main
    sys.exit(script_main(__file__))
