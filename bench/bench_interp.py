"""Instructions per second of the reference VM and the fast VM (one CPU core).

The program is a loop over a few hundred mixed ALU / branch / memory slots;
the fast VM is timed through its compiled function with arrays prepared once,
the reference VM through its public ``run``.  Prints a table and one JSON line.

    python bench/bench_interp.py [--iterations N] [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from gbpfd.isa.abi import LIMITS
from gbpfd.isa.asm import assemble
from gbpfd.vm import fast, interp, reference, status
from gbpfd.vm.decoded import decode_program
from gbpfd.vm.memory import RID_INPUT, address, build_memory

BLOCKS = 24  # each block is 12 slots: ALU, a load, a store, a taken and a not-taken branch


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
            f"jgt %r3, -1, +1",  # never taken
            "add32 %r0, 1",
            f"jne %r2, 0, +1",  # taken
            "sub %r0, 1",
            "and %r2, 0xffff",
        ]
    lines += ["sub %r9, 1", "jne %r9, 0, loop", "exit"]
    return "\n".join(lines) + "\n"


def time_fast(program, repeat: int) -> tuple[float, int]:
    code = decode_program(program.insns)
    memory = build_memory(input_mem=bytes(range(32)))
    regs = np.zeros(11, np.uint64)
    frames = np.zeros((LIMITS.max_call_depth, interp.FRAME_WORDS), np.uint64)
    out = np.zeros(2, np.int64)
    args = (code, len(program.insns), regs, frames, memory.flat, memory.base, memory.size, memory.perm,
            memory.map_rid, memory.map_value_size, memory.map_entries, memory.nmaps,
            np.int64(1 << 62), np.uint64(0), out)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000, help="loop iterations per fast-VM run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per VM; the best is kept")
    opts = parser.parse_args()

    fast_program = assemble(source(opts.iterations), "bench.s")
    ref_program = assemble(source(max(opts.iterations // 1000, 1)), "bench.s")
    fast.run(fast_program, build_memory(input_mem=bytes(32)), fuel=1)  # compile / load the cache
    rows = []
    for name, timer, program in (("reference", time_reference, ref_program), ("fast", time_fast, fast_program)):
        seconds, steps = timer(program, opts.repeat)
        rows.append({"vm": name, "steps": steps, "seconds": seconds, "insns_per_s": steps / seconds})
    print(f"program: {len(fast_program.insns)} slots, loop of {BLOCKS * 12 + 2} slots")
    print(f"{'vm':<10} {'steps':>12} {'seconds':>10} {'M insns/s':>10}")
    for r in rows:
        print(f"{r['vm']:<10} {r['steps']:>12} {r['seconds']:>10.4f} {r['insns_per_s'] / 1e6:>10.2f}")
    print(json.dumps({"bench": "interp", "simulated": False, "device": "cpu", "slots": len(fast_program.insns),
                      "results": rows}))


if __name__ == "__main__":
    main()
