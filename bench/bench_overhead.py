"""Overhead: the wall time of a saturating kernel with no plane, beside a
resident plane, and under the admit-all policy in gate and
persistent-worker modes.

The kernel is many CTAs of fixed FMA work (``gpu_workloads.fma_grid``),
each a few tens of microseconds, so that a per-CTA admission cost shows in
the whole kernel's time.  Variants, each timed ``reps`` times (medians):

* ``noplane``: the plain kernel before the plane starts and after it stops,
  on the whole GPU;
* ``resident``: the same plain kernel while the control CTA is resident
  (its SM shared, nothing admitted): the plane's cost to a kernel that does
  not use it;
* ``gate``, ``persistent``: the kernel admitted by ``gbpfd.admit`` under
  ``admit_all`` (cta_admit) and the baseline tick.  The lone tenant's CTA
  tokens cover the plane's CTA slots, which on a GPU are sized to the plain
  kernel's occupancy (an upper bound on the admitted forms'); a CTA that
  finds no token takes the policy path and is admitted there.  This is the
  admit-all policy the target names;
* ``gate_tokens``, ``persistent_tokens``: the same under a tick that leaves
  more tokens than CTAs can be resident, so every CTA enters with one
  atomic: the token path alone.

The overheads are the medians' excess over ``noplane``, in percent; the
``admission_*`` figures are over ``resident`` (the admission alone).  On
the simulated device the same kernels are modelled in virtual time:
SIMULATED.

    python bench/bench_overhead.py [--backend auto|cuda|sim] [--quick]
"""
from __future__ import annotations

import sys

import numpy as np

from gbpfd.bench.case import Target
from gbpfd.bench.policies import AMPLE_TOKENS_TICK_ASM, program
from gbpfd.policies.catalog import policy_path

NAME = "overhead"
TITLE = "a saturating kernel with no plane vs under the admit-all policy, gate and persistent-worker modes"
BACKENDS = ("cuda", "sim")
#: after the others: its admitted launches are the likeliest to wedge a GPU
ORDER = 90
PARAMS = {"reps": (21, 5), "gpu_ctas": (262_144, 262_144), "gpu_iters": (1024, 1024), "threads": (512, 512),
          "sim_reps": (3, 1), "sim_ctas": (20_000, 2_000), "sim_cta_us": (37, 37)}
TARGETS = (
    Target("overhead_gate_pct", "<=", 1.0, "<= 1% on an H100", "the overhead requirement"),
    Target("overhead_persistent_pct", "<=", 1.0, "<= 1% on an H100", "the overhead requirement"),
)
TENANT = "bench"
#: one best-effort tenant whose cap is above any slot count: the policy alone limits it
ONE_TENANT = {"tenants": {TENANT: {"class": "best-effort", "weight": 1, "max_ctas": 65535}}}
#: the admitted variants, per tick policy: (suffix, tick program or None for the baseline's)
PHASES = (("", None), ("_tokens", AMPLE_TOKENS_TICK_ASM))
#: how each variant launches: the kernel's mode under the plane ("none": not admitted)
MODES = {"resident": "none", "gate": "gate", "persistent": "persistent"}
BAR_LABELS = {"resident": "plane resident, not admitted", "gate": "gate", "persistent": "persistent",
              "gate_tokens": "gate, token path", "persistent_tokens": "persistent, token path"}
WARMUP_RUNS = 3


def measure(run) -> None:
    (_measure_cuda if run.backend == "cuda" else _measure_sim)(run)


def _report(run, times: dict) -> None:
    """``times``: ms per variant, every repetition."""
    med = {v: float(np.median(t)) for v, t in times.items()}
    for v, t in times.items():
        run.figure(f"kernel_{v}_ms", med[v], "ms", len(t))
    pct = {v: (med[v] / med["noplane"] - 1) * 100 for v in times if v != "noplane"}
    for v, value in pct.items():
        run.figure(f"overhead_{v}_pct", value, "%", len(times[v]))
    for v in times:
        if v not in ("noplane", "resident"):
            run.figure(f"admission_{v}_pct", (med[v] / med["resident"] - 1) * 100, "%", len(times[v]))
    run.bar_chart("overhead", {BAR_LABELS[v]: value for v, value in pct.items()}, "%", target=1.0)


def _reading(plane) -> dict:
    """The plane's header words and the tenant's counters, at one moment."""
    return {**plane.plane_stats(), "admitted": plane.counters()[TENANT]["admitted"]}


def _entries(before: dict, after: dict) -> dict:
    """How the CTAs got in between two readings: entries by token and by
    decision (a persistent worker's last entry finds no block left), and the
    logical blocks admitted."""
    return {k: after[k] - before[k] for k in ("fast_grants", "decisions", "bypassed", "admitted")}


def _add(totals: dict, variant: str, entries: dict) -> None:
    row = totals.setdefault(variant, dict.fromkeys(entries, 0))
    for k, n in entries.items():
        row[k] += n


def _check_entries(run, totals: dict) -> None:
    for v, row in totals.items():
        run.check(f"entries_{v}", {"by_token": row["fast_grants"], "policy_decisions": row["decisions"],
                                   "bypassed": row["bypassed"], "blocks_admitted": row["admitted"]})


def _under_plane(run, plane, timed: dict, reps: int, warm_runs: int, settle) -> tuple[dict, dict]:
    """The variants under ``plane``, interleaved, ``reps`` times per tick
    policy: ``timed[v]()`` runs variant ``v`` once and returns its ms;
    ``settle()`` lets the plane's mirrored counters catch up.  Returns the
    times and how the CTAs got in, per variant."""
    times: dict = {}
    totals: dict = {}
    plane.load(policy_path("admit_all.s"), "cta_admit")
    for suffix, tick in PHASES:
        if tick:
            plane.load(program(tick), "tick")
        for _ in range(warm_runs):
            for one in timed.values():
                one()
        for i in range(reps):
            run.step(f"under the plane{suffix.replace('_', ', ')}: run {i + 1} of {reps}")
            for v, one in timed.items():
                name = v if v == "resident" else v + suffix
                settle()
                before = _reading(plane)
                times.setdefault(name, []).append(one())
                settle()
                _add(totals, name, _entries(before, _reading(plane)))
    return times, totals


# ------------------------------------------------------------ simulated device
def _sim_ms(d, tenant: int, mode: str, p: dict) -> float:
    k = d.launch(tenant, blocks=p["sim_ctas"], block_ns=p["sim_cta_us"] * 1000, mode=mode)
    d.run_while(lambda: k.done_ns is None, p["sim_ctas"] * p["sim_cta_us"] * 1000)
    if k.done_ns is None:
        raise TimeoutError(f"the simulated {mode} kernel ran {k.blocks_done} of {k.blocks} blocks "
                           "in the virtual time it had")
    return k.latency_ns / 1e6


def _measure_sim(run) -> None:
    from gbpfd.plane.arrays import allocate
    from gbpfd.plane.options import PlaneOptions
    from gbpfd.plane.plane import Plane
    from gbpfd.sim.device import SimDevice
    p = run.params
    options = PlaneOptions()
    run.step(f"no plane, {p['sim_reps']} x {p['sim_ctas']} CTAs")
    bare = SimDevice(allocate(), options.sim)
    noplane = [_sim_ms(bare, 0, "none", p) for _ in range(p["sim_reps"])]
    with Plane("sim", quotas=ONE_TENANT, options=options) as plane:
        d, tenant = plane.device, plane.quotas.index(TENANT)
        run.check("device", plane._backend.describe())
        timed = {v: lambda mode=mode: _sim_ms(d, tenant, mode, p) for v, mode in MODES.items()}
        times, totals = _under_plane(run, plane, timed, p["sim_reps"], 0,
                                     lambda: d.run_until(d.now + 2 * plane.options.periods.tick_ns))
    times = {"noplane": noplane, **times}
    _check_entries(run, totals)
    _report(run, times)
    full, beside, ctas = options.sim.num_sms * options.sim.slots_per_sm, options.sim.worker_slots, p["sim_ctas"]
    run.note(f"the simulated device keeps the control CTA's SM for it alone and runs a kernel's equal CTAs in "
             f"lockstep waves: {ctas} CTAs take {-(-ctas // full)} waves on all {full} slots and "
             f"{-(-ctas // beside)} on the {beside} beside the control CTA, so 'resident' costs whole waves; a GPU "
             "lets other CTAs share the control CTA's SM")


# ------------------------------------------------------------------------ GPU
def _timed_ms(cuda, stream, launch) -> float:
    """One launch between two events on ``stream``, waited for with a bound."""
    from gbpfd.bench.gpu_sync import finish
    start, end = cuda.event(), cuda.event()
    start.record(stream)
    launch()
    end.record(stream)
    finish(cuda, stream)
    return start.elapsed_time(end)


def _plane_slots(run, gw, cuda, sink, p: dict) -> int:
    """CTA slots for the plane: the plain kernel's occupancy on every SM but
    the control CTA's.  The admitted forms use more registers, so no more of
    them can be resident than this: the tokens cover every resident CTA, as
    a plane sized for its workload would."""
    compiled = gw.fma_grid.compile(tuple(gw.fma_grid.typeof_pyval(a) for a in (sink, p["gpu_iters"])))
    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    per_sm = compiled.max_cooperative_grid_blocks(p["threads"]) // sms
    run.check("plain_regs_per_thread", int(compiled.regs_per_thread))
    run.check("plain_ctas_per_sm", per_sm)
    run.check("plane_cta_slots", per_sm * (sms - 1))
    return per_sm * (sms - 1)


def _measure_cuda(run) -> None:
    from numba import cuda

    import gpu_workloads as gw
    from gbpfd.admission import admit
    from gbpfd.bench.gpu_sync import settle
    from gbpfd.plane.backend_cuda import non_blocking_stream
    from gbpfd.plane.options import PlaneOptions
    from gbpfd.plane.plane import Plane
    p = run.params
    ctas, threads, iters = p["gpu_ctas"], p["threads"], p["gpu_iters"]
    cuda.current_context()  # the driver call that makes the stream needs the context current
    stream = non_blocking_stream(cuda)
    sink = cuda.device_array(1, np.float32)

    def plain():
        gw.fma_grid[ctas, threads, stream](sink, iters)

    def no_plane() -> list:
        return [_timed_ms(cuda, stream, plain) for _ in range(p["reps"])]

    run.step("no plane: warming up")
    for _ in range(WARMUP_RUNS):
        _timed_ms(cuda, stream, plain)
    options = PlaneOptions(cta_slots=_plane_slots(run, gw, cuda, sink, p))
    run.step(f"no plane, {p['reps']} runs")
    before_plane = no_plane()
    plane = Plane(backend="cuda", quotas=ONE_TENANT, options=options)
    gated = admit(plane, TENANT, mode="gate")(gw.fma_grid)
    workers = admit(plane, TENANT, mode="persistent")(gw.fma_logical)
    run.step("compiling the admitted kernels")
    gated.preload(sink, iters)
    workers.preload(sink, iters)
    with cuda.defer_cleanup(), plane:
        run.check("device", plane._backend.describe())
        launches = {"resident": plain, "gate": lambda: gated[ctas, threads, stream](sink, iters),
                    "persistent": lambda: workers[ctas, threads, stream](sink, iters)}
        timed = {v: lambda launch=launch: _timed_ms(cuda, stream, launch) for v, launch in launches.items()}
        times, totals = _under_plane(run, plane, timed, p["reps"], 1, lambda: settle(plane))
        run.check("control_smid", plane.health().smid)
    run.step(f"no plane again, {p['reps']} runs")
    after_plane = no_plane()
    times = {"noplane": before_plane + after_plane, **times}
    run.check("noplane_drift", round(float(np.median(after_plane) / np.median(before_plane)), 4))
    _check_entries(run, totals)
    _report(run, times)
    run.note("every time runs from an event recorded before the launch call to one recorded after it, so the "
             "host's launch costs (numba's argument handling, gbpfd.admit's wrapper) are in it")
    run.note("noplane: before the plane started and after it stopped (drift: after / before); resident: the "
             "plain kernel while the control CTA is resident; gate/persistent: admit_all with the baseline tick; "
             "*_tokens: a tick that leaves ample tokens (the token path alone)")
    run.note("a persistent-mode run is timed from its first launch to the event recorded after gbpfd.admit's "
             "host loop returns: its stream wait and block-count read-back are counted")


if __name__ == "__main__":
    from gbpfd.bench.suite import script_main
    sys.exit(script_main(__file__))
