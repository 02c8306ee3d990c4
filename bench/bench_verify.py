"""Verify time (and, on a GPU, load time: verify + stage + live swap) for
generated valid programs of 16 to 4096 instructions.

Each program is a dispatch on ctx.tenant: a chain of `jne` tests, each
guarding a body of if/else diamonds with stack and map-value accesses, so
the program is long but every path stays inside the tick budget, and
pruning at the joins is what keeps the number of explored paths small.

Verify time is a host figure; load time needs the plane, so it is measured
on a GPU only (on the simulated device it would time the simulator).

    python bench/bench_verify.py [--quick] [--set verify.repeats=N]
"""
from __future__ import annotations

import statistics
import sys
import time

from gbpfd.bench.case import Target
from gbpfd.isa.asm import assemble
from gbpfd.verifier import verify

NAME = "verify"
TITLE = "verify time by program size (and load time with live swap, on a GPU)"
BACKENDS = ("host", "cuda")
PARAMS = {"repeats": (5, 1)}
TARGETS = (Target("verify_4096_median", "<", 50.0, "< 50 ms at 4096 instructions", "the verify-time requirement"),)

SIZES = (16, 64, 256, 1024, 4096)
DIAMOND = ["ldxw %r3, [%r6+20]", "jgt %r3, {k}, a{i}", "mov %r4, 1", "ja b{i}",
           "a{i}:", "mov %r4, 2", "b{i}:", "stxdw [%r10-8], %r4", "ldxb %r5, [%r7+{k}]"]
DIAMOND_INSNS = 7
BODY_DIAMONDS = 6


def program_text(target: int) -> str:
    """About ``target`` slots (never more)."""
    head = [".hook tick", ".map state array value_size=8 max_entries=4", "mov %r6, %r1",
            "lddw %r7, map_value:state+0", "ldxw %r8, [%r6+16]"]
    lines, used, label = list(head), 4 + 2, 0  # head slots (lddw takes two) + the final mov, exit
    block = 0
    while True:
        diamonds = min(BODY_DIAMONDS, (target - used - 2) // DIAMOND_INSNS)
        if diamonds <= 0:
            break
        lines.append(f"jne %r8, {block}, next{block}")
        for _ in range(diamonds):
            lines += [d.format(i=label, k=label % 8) for d in DIAMOND]
            label += 1
        lines += ["ja end", f"next{block}:"]
        used += 2 + diamonds * DIAMOND_INSNS
        block += 1
    while used < target:
        lines.append("mov %r0, 0")
        used += 1
    return "\n".join(lines + ["end:", "mov %r0, 0", "exit"]) + "\n"


def _time_verify(program, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        verify(program)
        times.append(time.perf_counter() - start)
    return times


def _time_load(plane, program, repeats: int) -> list[float]:
    """Plane.load end to end: verify, stage into the idle slot, swap, the swap's event seen."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        plane.load(program, "tick")
        times.append(time.perf_counter() - start)
    return times


def _measure_sizes(run, plane=None) -> None:
    repeats = run.params["repeats"]
    for size in SIZES:
        run.step(f"{size} instructions")
        program = assemble(program_text(size), f"<bench {size}>")
        verdict = verify(program)
        if not verdict.accepted:
            raise AssertionError(f"the generated {size}-instruction program was rejected: {verdict.log[-1]}")
        times = _time_verify(program, repeats)
        run.figure(f"verify_{size}_median", statistics.median(times) * 1e3, "ms", repeats)
        run.check(f"verify_{size}", {"insns": verdict.insn_count, "worst_path": verdict.cost,
                                     "min_ms": round(min(times) * 1e3, 3), "log": verdict.log[-1]})
        if plane is not None:
            loads = _time_load(plane, program, repeats)
            run.figure(f"load_{size}_median", statistics.median(loads) * 1e3, "ms", repeats)
    run.bar_chart("verify_by_size", {str(s): run.figures[f"verify_{s}_median"]["value"] for s in SIZES}, "ms",
                  target=50.0)


def measure(run) -> None:
    if run.backend != "cuda":
        _measure_sizes(run)
        return
    from gbpfd.plane.plane import Plane
    with Plane("cuda") as plane:
        _measure_sizes(run, plane)


if __name__ == "__main__":
    from gbpfd.bench.suite import script_main
    sys.exit(script_main(__file__))
