"""The plane's reaction time on a GPU, beside the floor the hardware sets.

In one process, on the GPU:

* the clocks: the size of a ``%globaltimer`` step and SM cycles per ns;
* the floor: two CTAs on two SMs bounce a counter through global memory
  with the acquire loads and release stores the plane polls with; one
  round trip is the least a request and its answer can cost;
* the interpreter: instructions per second of the control CTA's policy
  interpreter running a straight-line program on one GPU thread;
* the plane (``Plane(backend="cuda")``): a tick program leaves no CTA
  tokens, so every request takes the policy path, and a 16-instruction
  cta_admit policy admits each one; a requester CTA posts requests at
  random phases of the control loop and stamps each from post to the
  decision it sees; and the control loop's period while idle (the
  header's ``loop_period_ns``).

Durations are counted in cycles of the SM that stamps both ends and turned
into ns with the measured ratio (``%globaltimer`` ticks in whole
microseconds on some GPUs); the ``%globaltimer`` figures are printed too.
Prints a table, with the issue's targets beside the figures, and one JSON
record.  Without a GPU it says so and runs ``bench_plane_sim.py`` instead:
those figures are SIMULATED.

    python bench/bench_reaction.py [--requests N] [--rounds N] [--json-out PATH]
"""
from __future__ import annotations

import argparse
import json
import operator
import os
import subprocess
import time

# Loading a kernel lazily may need a context synchronisation, which would
# wait for the resident control kernel forever: load every module eagerly
# (read when CUDA initialises, so before the first CUDA call).
os.environ.setdefault("CUDA_MODULE_LOADING", "EAGER")

import numpy as np  # noqa: E402

import bench_plane_sim as sim  # noqa: E402
from gbpfd.device import state as S  # noqa: E402
from gbpfd.isa.abi import LIMITS  # noqa: E402
from gbpfd.isa.asm import assemble  # noqa: E402
from gbpfd.plane.gpu_probe import gpu_missing_reason  # noqa: E402
from gbpfd.vm import interp, reference, status  # noqa: E402
from gbpfd.vm.decoded import decode_program  # noqa: E402
from gbpfd.vm.memory import build_memory  # noqa: E402

#: the issue's targets: figure -> (test, bound, what it means)
TARGETS = {"reaction_p50": (operator.lt, 1000.0, "< 1 us"), "reaction_p99": (operator.lt, 2000.0, "< 2 us"),
           "reaction_over_floor_p50": (operator.le, 1.5, "<= 1.5x the ping-pong floor")}
WARM_NS = 20_000_000     # spinning first lets the SM clock rise from idle
PROBE_SPAN_NS = 50_000_000
PROBE_TICKS = 256
PING_PONG_BOUND_NS = 5_000_000_000
WARMUP = 100           # first rounds / requests left out of the figures
INTERP_BLOCKS = 128    # straight-line blocks of 8 instructions
FUEL = 1 << 62
LOOP_SAMPLES = 40
LOOP_SAMPLE_S = 0.002
SETTLE_TIMEOUT_S = 10.0
KERNEL_TIMEOUT_S = 120.0


# ------------------------------------------------------------- helpers
def gpu_facts(cuda) -> dict:
    from numba.cuda.cudadrv import driver
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return {"gpu": name, "sms": dev.MULTIPROCESSOR_COUNT,
            "compute_capability": "%d.%d" % tuple(dev.compute_capability),
            "driver": nvidia_smi_driver(), "cuda_driver_api": "%d.%d" % tuple(driver.get_version())}


def nvidia_smi_driver() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else None


def finish(cuda, stream, timeout_s: float = KERNEL_TIMEOUT_S) -> None:
    """Wait for ``stream`` with a bound: a hang becomes an error, not a stuck bench."""
    done = cuda.event(timing=False)
    done.record(stream)
    deadline = time.monotonic() + timeout_s
    while not done.query():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the GPU work did not finish within {timeout_s} s")
        time.sleep(0.0005)


def settle(plane, ticks: int = 2) -> None:
    """Wait until the control CTA has run ``ticks`` more tick periods."""
    first = plane.health().ticks
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while plane.health().ticks < first + ticks:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the control CTA ran no {ticks} ticks within {SETTLE_TIMEOUT_S} s")
        time.sleep(0.0005)


def percentiles(samples) -> tuple[float | None, float | None]:
    return sim.percentile(samples, 50), sim.percentile(samples, 99)


# ---------------------------------------------------------- measurements
def cycles_per_ns(gk, span: np.ndarray, fallback: float) -> float:
    """A kernel's own cycles-to-ns ratio; ``fallback`` when it stopped before writing its span."""
    return span[gk.SPAN_CYCLES] / span[gk.SPAN_NS] if span[gk.SPAN_NS] > 0 else fallback


def probe_clocks(gk, cuda, stream) -> dict:
    ticks = cuda.to_device(np.zeros(PROBE_TICKS, np.int64), stream=stream)
    span = cuda.to_device(np.zeros(3, np.int64), stream=stream)
    gk.clock_probe[1, 32, stream](WARM_NS, PROBE_SPAN_NS, ticks, span)
    finish(cuda, stream)
    steps = ticks.copy_to_host()[1:]  # the first step starts at an arbitrary point
    s = span.copy_to_host()
    return {"cycles_per_ns": cycles_per_ns(gk, s, 0.0), "globaltimer_step_ns": float(np.median(steps)),
            "globaltimer_steps": len(steps)}


def ping_pong(gk, cuda, stream, rounds: int, fallback_cpn: float) -> dict:
    flag = cuda.to_device(np.zeros(1, np.int64), stream=stream)
    rtt_cycles = cuda.to_device(np.full(rounds, -1, np.int64), stream=stream)
    rtt_ns = cuda.to_device(np.full(rounds, -1, np.int64), stream=stream)
    where = cuda.to_device(np.full(2, -1, np.int64), stream=stream)
    span = cuda.to_device(np.zeros(2, np.int64), stream=stream)
    gk.ping_pong[2, 32, stream](flag, WARM_NS, PING_PONG_BOUND_NS, rtt_cycles, rtt_ns, where, span)
    finish(cuda, stream)
    cycles = rtt_cycles.copy_to_host()
    gt = rtt_ns.copy_to_host()
    cpn = cycles_per_ns(gk, span.copy_to_host(), fallback_cpn)
    done = int((cycles >= 0).sum())
    kept = slice(WARMUP, done)
    sms = [int(s) for s in where.copy_to_host()]
    return {"ns": cycles[kept] / cpn, "globaltimer_ns": gt[kept], "rounds_done": done, "sms": sms,
            "sm_clock_mhz": cpn * 1000}


def straight_line_source(blocks: int) -> str:
    lines = [".name interp_rate", "mov %r0, 0", "mov %r2, 1", "mov %r3, 7"]
    for k in range(blocks):
        slot = 8 * (k % 8 + 1)
        lines += [f"add %r2, {k + 1}", "mul %r3, 3", "xor %r0, %r2", f"stxdw [%r10-{slot}], %r3",
                  f"ldxdw %r4, [%r10-{slot}]", "rsh %r4, 3", "add %r0, %r4", "and %r3, 0xffff"]
    return "\n".join(lines + ["exit"]) + "\n"


def interp_rate(gk, cuda, stream, reps: int) -> dict:
    program = assemble(straight_line_source(INTERP_BLOCKS), "<interp-rate>")
    expected = reference.run(program, build_memory(), fuel=FUEL)
    memory = build_memory()
    d = {name: cuda.to_device(value, stream=stream) for name, value in (
        ("code", decode_program(program.insns)), ("regs", np.zeros(11, np.uint64)),
        ("frames", np.zeros((LIMITS.max_call_depth, interp.FRAME_WORDS), np.uint64)), ("flat", memory.flat),
        ("base", memory.base), ("size", memory.size), ("perm", memory.perm), ("map_rid", memory.map_rid),
        ("map_value_size", memory.map_value_size), ("map_entries", memory.map_entries),
        ("out", np.zeros(2, np.int64)), ("result", np.zeros(4, np.int64)))}
    gk.interp_rate[1, 32, stream](d["code"], len(program.insns), d["regs"], d["frames"], d["flat"], d["base"],
                                  d["size"], d["perm"], d["map_rid"], d["map_value_size"], d["map_entries"],
                                  memory.nmaps, FUEL, reps, WARM_NS, d["out"], d["result"])
    finish(cuda, stream)
    r = d["result"].copy_to_host()
    r0 = int(d["regs"].copy_to_host()[0])
    agrees = (int(r[gk.RATE_STATUS]) == status.OK and int(r[gk.RATE_STEPS]) == reps * expected.steps
              and r0 == expected.r0)
    return {"insns": int(r[gk.RATE_STEPS]), "ns": int(r[gk.SPAN_NS]), "cycles": int(r[gk.SPAN_CYCLES]),
            "insns_per_s": r[gk.RATE_STEPS] * 1e9 / r[gk.SPAN_NS] if r[gk.SPAN_NS] else None,
            "program_insns": len(program.insns), "agrees_with_reference_vm": agrees,
            "status": status.REASONS.get(int(r[gk.RATE_STATUS]), int(r[gk.RATE_STATUS]))}


def loop_period(plane) -> dict:
    samples = []
    for _ in range(LOOP_SAMPLES):
        samples.append(plane.health().loop_period_ns)
        time.sleep(LOOP_SAMPLE_S)
    first, t0 = plane.health().loops, time.monotonic_ns()
    time.sleep(LOOP_SAMPLES * LOOP_SAMPLE_S)
    loops, elapsed = plane.health().loops - first, time.monotonic_ns() - t0
    return {"header_ns": float(np.median(samples)), "samples": len(samples),
            "from_loops_ns": elapsed / loops if loops else None, "loops": loops}


def reaction(gk, cuda, stream, requests: int, max_gap_ns: int, seed: int, fallback_cpn: float) -> dict:
    from gbpfd.plane.plane import Plane
    gaps = cuda.to_device(np.random.default_rng(seed).integers(0, max_gap_ns + 1, requests).astype(np.int64))
    stamps = cuda.to_device(np.zeros((requests, gk.STAMP_COLUMNS), np.int64))
    span = cuda.to_device(np.zeros(2, np.int64))
    # Compile and load the requester before the control kernel is resident: one request on
    # spare plane words, given up at once (bound 0) since no control CTA serves it.
    spare_ctl = cuda.to_device(np.zeros(S.CTL_WORDS, np.int64))
    gk.requester[1, 32, stream](spare_ctl, 0, gaps[:1], 0, 0, cuda.to_device(np.zeros((1, gk.STAMP_COLUMNS), np.int64)),
                                span)
    finish(cuda, stream)
    with cuda.defer_cleanup(), Plane(backend="cuda") as plane:
        tenant = plane.quotas.index(sim.TENANT)
        plane.load(sim.program(sim.NO_TOKENS_TICK_ASM, "no_tokens"), "tick")
        plane.load(sim.program(sim.REACTION_ADMIT_ASM, "reaction_admit"), "cta_admit")
        settle(plane)
        period = loop_period(plane)
        before = plane.counters()[sim.TENANT]
        bound_ns = int(plane.options.wait_bound_us * 1000)
        gk.requester[1, 32, stream](plane.device["ctl"], tenant, gaps, bound_ns, WARM_NS, stamps, span)
        finish(cuda, stream)
        settle(plane)
        after = plane.counters()[sim.TENANT]
        health = plane.health()
    s = stamps.copy_to_host()
    cpn = cycles_per_ns(gk, span.copy_to_host(), fallback_cpn)
    decision = s[:, gk.STAMP_DECISION]
    decided = (decision >= 0) & (np.arange(requests) >= WARMUP)
    return {"ns": s[decided, gk.STAMP_CYCLES] / cpn, "globaltimer_ns": s[decided, gk.STAMP_NS],
            "sm_clock_mhz": cpn * 1000, "loop": period, "admitted": int((decision == S.ADMIT).sum()),
            "deferred": int((decision == S.DEFER).sum()),
            "withdrawn": int((decision == gk.WITHDRAWN).sum()), "no_slot": int((decision == gk.NO_SLOT).sum()),
            "device_admitted": after["admitted"] - before["admitted"],
            "device_deferred": after["deferred"] - before["deferred"], "bypassed": health.bypassed,
            "smid": health.smid}


# ------------------------------------------------------------- report
def gpu_record(opts) -> dict:
    from numba import cuda
    import gpu_kernels as gk
    facts = gpu_facts(cuda)
    stream = cuda.stream()
    clocks = probe_clocks(gk, cuda, stream)
    cpn = clocks["cycles_per_ns"]
    floor = ping_pong(gk, cuda, stream, opts.rounds, cpn)
    rate = interp_rate(gk, cuda, stream, opts.reps)
    react = reaction(gk, cuda, stream, opts.requests, int(opts.max_gap_us * 1000), opts.seed, cpn)
    r50, r99 = percentiles(react["ns"])
    g50, g99 = percentiles(react["globaltimer_ns"])
    f50, f99 = percentiles(floor["ns"])
    fg50, _ = percentiles(floor["globaltimer_ns"])
    n, nf = len(react["ns"]), len(floor["ns"])
    figures = {
        "reaction_p50": sim.figure(r50, "ns", n),
        "reaction_p99": sim.figure(r99, "ns", n),
        "reaction_globaltimer_p50": sim.figure(g50, "ns", n),
        "reaction_globaltimer_p99": sim.figure(g99, "ns", n),
        "pingpong_rtt_p50": sim.figure(f50, "ns", nf),
        "pingpong_rtt_p99": sim.figure(f99, "ns", nf),
        "pingpong_rtt_globaltimer_p50": sim.figure(fg50, "ns", nf),
        "reaction_over_floor_p50": sim.figure(r50 / f50 if r50 is not None and f50 else None, "ratio", n),
        "loop_period": sim.figure(react["loop"]["header_ns"], "ns", react["loop"]["samples"]),
        "loop_period_from_loops": sim.figure(react["loop"]["from_loops_ns"], "ns", react["loop"]["loops"]),
        "device_interp_insns_per_s": sim.figure(rate["insns_per_s"], "insn/s", rate["insns"]),
        "globaltimer_step": sim.figure(clocks["globaltimer_step_ns"], "ns", clocks["globaltimer_steps"]),
        "sm_clock_probe": sim.figure(cpn * 1000, "MHz", 1),
        "sm_clock_pingpong": sim.figure(floor["sm_clock_mhz"], "MHz", 1),
        "sm_clock_requester": sim.figure(react["sm_clock_mhz"], "MHz", 1),
    }
    targets = {name: {"target": text, "met": figures[name]["value"] is not None and test(figures[name]["value"], bound)}
               for name, (test, bound, text) in TARGETS.items()}
    checks = {"pingpong_sms": floor["sms"], "pingpong_different_sms": floor["sms"][0] != floor["sms"][1],
              "pingpong_rounds_done": floor["rounds_done"], "control_smid": react["smid"],
              "requests": opts.requests, "requests_admitted": react["admitted"],
              "requests_deferred": react["deferred"], "requests_withdrawn": react["withdrawn"],
              "requests_without_slot": react["no_slot"], "device_admitted": react["device_admitted"],
              "device_deferred": react["device_deferred"], "bypassed": react["bypassed"],
              "interp_agrees_with_reference_vm": rate["agrees_with_reference_vm"], "interp_status": rate["status"],
              "interp_program_insns": rate["program_insns"]}
    return {"bench": "reaction", "simulated": False, "device": facts["gpu"], **facts, **sim.provenance(),
            "config": {"requests": opts.requests, "rounds": opts.rounds, "max_gap_us": opts.max_gap_us,
                       "reps": opts.reps, "seed": opts.seed, "tenant": sim.TENANT, "warmup": WARMUP},
            "figures": figures, "targets": targets, "checks": checks}


def format_table(record: dict) -> str:
    lines = [f"plane reaction on {record['gpu']} ({record['sms']} SMs, driver {record['driver']}, "
             f"CUDA driver API {record['cuda_driver_api']})", "",
             f"{'figure':<30} {'value':>14} {'unit':<7} {'samples':>8}  target"]
    for name, f in record["figures"].items():
        value = "-" if f["value"] is None else f"{f['value']:.3f}"
        target = record["targets"].get(name)
        mark = f"{target['target']}: {'met' if target['met'] else 'NOT met'}" if target else ""
        lines.append(f"{name:<30} {value:>14} {f['unit']:<7} {f['samples']:>8}  {mark}")
    c = record["checks"]
    lines += ["", f"ping-pong CTAs on SMs {c['pingpong_sms']} (different: {c['pingpong_different_sms']}); "
              f"control CTA on SM {c['control_smid']}",
              f"requests: {c['requests_admitted']} admitted, {c['requests_deferred']} deferred, "
              f"{c['requests_withdrawn']} withdrawn at the wait bound, {c['requests_without_slot']} without a slot; "
              f"device counted {c['device_admitted']} admitted, {c['device_deferred']} deferred",
              f"device interpreter agrees with the reference VM: {c['interp_agrees_with_reference_vm']}"]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="admission requests timed")
    parser.add_argument("--rounds", type=int, default=20_000, help="ping-pong round trips timed")
    parser.add_argument("--max-gap-us", type=float, default=4.0, help="most idle time before a request, us")
    parser.add_argument("--reps", type=int, default=2_000, help="interpreter runs of the straight-line program")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON record to PATH")
    opts = parser.parse_args(argv)
    reason = gpu_missing_reason()
    if reason:
        print(f"no GPU: {reason}; running bench_plane_sim instead: every figure below is SIMULATED")
        record = sim.run(requests=opts.requests, max_gap_ns=int(opts.max_gap_us * 1000), seed=opts.seed)
        record["gpu_missing"] = reason
        print(sim.format_table(record))
    else:
        record = gpu_record(opts)
        print(format_table(record))
    print(json.dumps(record))
    if opts.json_out:
        with open(opts.json_out, "w") as fh:
            json.dump(record, fh)
    return record


if __name__ == "__main__":
    main()
