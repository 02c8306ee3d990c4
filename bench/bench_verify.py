"""Verifier time for generated valid programs of 16 to 4096 instructions.

Each program is a dispatch on ctx.tenant: a chain of `jne` tests, each
guarding a body of if/else diamonds with stack and map-value accesses, so
the program is long but every path stays inside the tick budget, and
pruning at the joins is what keeps the number of explored paths small.

Run: /work/venv/bin/python bench/bench_verify.py  (prints a table, then one JSON line)
"""
from __future__ import annotations

import json
import statistics
import time

from gbpfd.isa.asm import assemble
from gbpfd.verifier import verify

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


def measure(size: int, repeats: int = 5) -> dict:
    program = assemble(program_text(size), f"<bench {size}>")
    verdict = verify(program)
    assert verdict.accepted, verdict.log
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        verify(program)
        times.append(time.perf_counter() - start)
    return {"insns": verdict.insn_count, "cost": verdict.cost, "median_ms": statistics.median(times) * 1e3,
            "min_ms": min(times) * 1e3, "log": verdict.log[-1]}


def main() -> None:
    rows = [measure(size) for size in SIZES]
    print(f"{'insns':>6} {'worst path':>10} {'median ms':>10} {'min ms':>8}  log")
    for r in rows:
        print(f"{r['insns']:>6} {r['cost']:>10} {r['median_ms']:>10.2f} {r['min_ms']:>8.2f}  {r['log']}")
    print(json.dumps({"bench": "verify", "results": [
        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k != "log"} for r in rows]}))


if __name__ == "__main__":
    main()
