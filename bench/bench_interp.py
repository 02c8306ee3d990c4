"""Interpreter speed: instructions per second of the reference VM and the
fast VM on one CPU core, and on a GPU of the control CTA's interpreter.

The CPU program is a loop over a few hundred mixed ALU / branch / memory
slots; the fast VM is timed through its compiled function with arrays
prepared once (the best of ``repeat`` runs), the reference VM through its
public ``run``.  A two-instruction program (``mov r0, 1; exit``) called
``calls`` times from compiled code gives the fast VM's per-call overhead:
what a compiled caller (``fast.run_batch``, for one) pays per run beyond
the instructions themselves.  A policy-sized straight-line program then
gives the cost of one short run from Python: through ``fast.run`` (the program decoded once,
then cached) and through ``fast.run_batch`` (``short_runs`` runs, one call).  The device runs a straight-line program of the same mix on
one thread, ``device_reps`` times, and must end with the reference VM's r0.

    python bench/bench_interp.py [--backend auto|cuda|sim] [--quick]
"""
from __future__ import annotations

import sys
import time

import numba
import numpy as np

from gbpfd.bench.case import Target
from gbpfd.isa.abi import LIMITS
from gbpfd.isa.asm import assemble
from gbpfd.vm import fast, interp, reference, status
from gbpfd.vm.decoded import decode_program
from gbpfd.vm.memory import RID_INPUT, address, build_memory

NAME = "interp"
TITLE = "policy interpreter instructions per second: CPU VMs, and the device's on a GPU"
BACKENDS = ("host", "cuda")
PARAMS = {"iterations": (20_000, 2_000), "repeat": (5, 1), "device_reps": (2_000, 50),
          "short_runs": (100_000, 2_000), "calls": (1_000_000, 100_000)}
TARGETS = (Target("cpu_fast_insns_per_s", ">=", 100e6, ">= 100 M insn/s on one core", "the interpreter-speed requirement"),
           Target("cpu_fast_njit_call_ns", "<=", 100, "<= 100 ns per call from compiled code",
                  "the per-call overhead requirement"))
BLOCKS = 24  # each block is 12 slots: ALU, a load, a store, a taken and a not-taken branch
DEVICE_BLOCKS = 128  # straight-line blocks of 8 instructions
SHORT_BLOCKS = 4  # 36 slots: about the size of a shipped policy
DEVICE_WARM_NS = 20_000_000  # spinning first lets the SM clock rise from idle


def source(iterations: int) -> str:
    lines = [f"mov %r9, {iterations}", "mov %r0, 0", "loop:"]
    for b in range(BLOCKS):
        lines += [
            f"ldxdw %r2, [%r1+{8 * (b % 4)}]",
            f"add %r2, {b + 1}",
            "mov %r3, %r2",
            "mul %r3, 3",
            "xor %r0, %r3",
            "rsh %r3, 7",
            f"stxdw [%r10-{8 * (b % 8 + 1)}], %r3",
            "jgt %r3, -1, +1",  # never taken
            "add32 %r0, 1",
            "jne %r2, 0, +1",  # taken
            "sub %r0, 1",
            "and %r2, 0xffff",
        ]
    lines += ["sub %r9, 1", "jne %r9, 0, loop", "exit"]
    return "\n".join(lines) + "\n"


def execute_args(program, fuel: int) -> tuple:
    """``fast.execute``'s arguments for ``program`` over a fresh memory:
    regs (index 2) and out (the last) are the ones a run leaves its results in."""
    memory = build_memory(input_mem=bytes(range(32)))
    return (decode_program(program.insns), len(program.insns), np.zeros(11, np.uint64),
            np.zeros((LIMITS.max_call_depth, interp.FRAME_WORDS), np.uint64), memory.flat, fast.NO_LOCAL, memory.base,
            memory.size, memory.perm, memory.map_rid, memory.map_value_size, memory.map_entries, memory.nmaps,
            np.int64(fuel), np.uint64(0), np.zeros(2, np.int64))


def time_fast(program, repeat: int) -> tuple[float, int]:
    args = execute_args(program, 1 << 62)
    regs, out = args[2], args[-1]
    best, steps = float("inf"), 0
    for _ in range(repeat):
        regs[1] = address(RID_INPUT, 0)
        start = time.perf_counter()
        st = fast.execute(*args)
        best = min(best, time.perf_counter() - start)
        assert st == status.OK, status.REASONS[st]
        steps = int(out[0])
    return best, steps


def time_reference(program, repeat: int) -> tuple[float, int]:
    best, steps = float("inf"), 0
    for _ in range(repeat):
        memory = build_memory(input_mem=bytes(range(32)))
        start = time.perf_counter()
        result = reference.run(program, memory, args=(address(RID_INPUT, 0),), fuel=1 << 62)
        best = min(best, time.perf_counter() - start)
        assert result.status == status.OK, status.REASONS[result.status]
        steps = result.steps
    return best, steps


def _measure_cpu(run) -> None:
    iterations, repeat = run.params["iterations"], run.params["repeat"]
    fast_program = assemble(source(iterations), "bench.s")
    ref_program = assemble(source(max(iterations // 1000, 1)), "bench.s")
    run.step("compiling the fast VM")
    fast.run(fast_program, build_memory(input_mem=bytes(32)), fuel=1)  # compile / load the cache
    for name, timer, program in (("reference", time_reference, ref_program), ("fast", time_fast, fast_program)):
        run.step(f"the {name} VM")
        seconds, steps = timer(program, repeat)
        run.figure(f"cpu_{name}_insns_per_s", steps / seconds, "insn/s", steps)
    run.check("program_slots", len(fast_program.insns))
    run.check("loop_slots", BLOCKS * 12 + 2)
    _measure_call(run, run.params["calls"], repeat)
    _measure_short(run, run.params["short_runs"])


@numba.njit(nogil=True)
def _call_repeatedly(calls, code, ninsns, regs, frames, flat, local, base, size, perm, map_rid, map_value_size,
                     map_entries, nmaps, fuel, now_ns, out):
    """``calls`` runs through ``fast.execute``; the statuses ORed, so a fault in any run shows."""
    st = 0
    for _ in range(calls):
        st |= fast.execute(code, ninsns, regs, frames, flat, local, base, size, perm, map_rid, map_value_size,
                           map_entries, nmaps, fuel, now_ns, out)
    return st


def _measure_call(run, calls: int, repeat: int) -> None:
    """Nanoseconds per call of the smallest program, the caller compiled:
    the interpreter's fixed cost per run, without Python's."""
    program = assemble("mov %r0, 1\nexit\n", "<call>")
    args = execute_args(program, 1_000)
    run.step("compiling the call loop")
    _call_repeatedly(1, *args)
    run.step(f"a {len(program.insns)}-instruction program, {calls} calls from compiled code")
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        st = _call_repeatedly(calls, *args)
        best = min(best, time.perf_counter() - start)
        assert st == status.OK, status.REASONS.get(st, st)
    assert int(args[2][0]) == 1 and int(args[-1][0]) == 2, "the program must leave r0 = 1 after 2 steps"
    run.figure("cpu_fast_njit_call_ns", best / calls * 1e9, "ns/call", calls)


def _measure_short(run, runs: int) -> None:
    """Microseconds per run of a short program called from Python, run by
    run and batched: what a policy test or a simulation step pays."""
    program = assemble(straight_line_source(SHORT_BLOCKS), "<short>")
    memory = build_memory()
    fast.run_batch(program, memory, np.zeros((1, 0), np.uint64))  # compile / load the cache
    run.step(f"a {len(program.insns)}-slot program, {runs} runs one by one and batched")
    start = time.perf_counter()
    for _ in range(runs):
        fast.run(program, memory)
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    batch = fast.run_batch(program, memory, np.zeros((runs, 0), np.uint64))
    batched = time.perf_counter() - start
    assert (batch.status == status.OK).all()
    run.figure("cpu_fast_short_run_us", one_by_one / runs * 1e6, "us/run", runs)
    run.figure("cpu_fast_short_batch_run_us", batched / runs * 1e6, "us/run", runs)
    run.check("short_program_slots", len(program.insns))


def straight_line_source(blocks: int) -> str:
    """The device-rate program: no loop (the device interpreter runs it ``reps`` times)."""
    lines = [".name interp_rate", "mov %r0, 0", "mov %r2, 1", "mov %r3, 7"]
    for k in range(blocks):
        slot = 8 * (k % 8 + 1)
        lines += [f"add %r2, {k + 1}", "mul %r3, 3", "xor %r0, %r2", f"stxdw [%r10-{slot}], %r3",
                  f"ldxdw %r4, [%r10-{slot}]", "rsh %r4, 3", "add %r0, %r4", "and %r3, 0xffff"]
    return "\n".join(lines + ["exit"]) + "\n"


def _measure_device(run) -> None:
    """One GPU thread running the control CTA's interpreter on a straight-line program."""
    from numba import cuda

    import gpu_kernels as gk
    from gbpfd.bench.gpu_sync import finish
    reps = run.params["device_reps"]
    program = assemble(straight_line_source(DEVICE_BLOCKS), "<interp-rate>")
    expected = reference.run(program, build_memory(), fuel=1 << 62)
    memory = build_memory()
    stream = cuda.stream()
    d = {name: cuda.to_device(value, stream=stream) for name, value in (
        ("code", decode_program(program.insns)), ("regs", np.zeros(11, np.uint64)),
        ("frames", np.zeros((LIMITS.max_call_depth, interp.FRAME_WORDS), np.uint64)), ("flat", memory.flat),
        ("local", fast.NO_LOCAL),
        ("base", memory.base), ("size", memory.size), ("perm", memory.perm), ("map_rid", memory.map_rid),
        ("map_value_size", memory.map_value_size), ("map_entries", memory.map_entries),
        ("out", np.zeros(2, np.int64)), ("result", np.zeros(4, np.int64)))}
    run.step(f"the device interpreter, {reps} runs")
    gk.interp_rate[1, 32, stream](d["code"], len(program.insns), d["regs"], d["frames"], d["flat"], d["local"],
                                  d["base"],
                                  d["size"], d["perm"], d["map_rid"], d["map_value_size"], d["map_entries"],
                                  memory.nmaps, 1 << 62, reps, DEVICE_WARM_NS, d["out"], d["result"])
    finish(cuda, stream)
    r = d["result"].copy_to_host()
    ns = int(r[gk.SPAN_NS])
    run.figure("device_interp_insns_per_s", r[gk.RATE_STEPS] * 1e9 / ns if ns else None, "insn/s",
               int(r[gk.RATE_STEPS]))
    run.check("device_status", status.REASONS.get(int(r[gk.RATE_STATUS]), int(r[gk.RATE_STATUS])))
    run.check("device_agrees_with_reference_vm",
              int(r[gk.RATE_STATUS]) == status.OK and int(r[gk.RATE_STEPS]) == reps * expected.steps
              and int(d["regs"].copy_to_host()[0]) == expected.r0)
    run.check("device_program_insns", len(program.insns))


def measure(run) -> None:
    _measure_cpu(run)
    if run.backend == "cuda":
        _measure_device(run)


if __name__ == "__main__":
    from gbpfd.bench.suite import script_main
    sys.exit(script_main(__file__))
