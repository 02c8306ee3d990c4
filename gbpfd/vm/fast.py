"""The fast VM: gbpfd.vm.interp.execute compiled for the CPU with Numba.

``cache=True`` keeps the machine code on disk next to interp.py, so a fresh
process (the CLI runs one per program) skips the compile.
"""
from __future__ import annotations

import numba
import numpy as np

from gbpfd.isa.abi import LIMITS
from gbpfd.vm import interp
from gbpfd.vm.decoded import decode_program
from gbpfd.vm.memory import Memory
from gbpfd.vm.result import Result

MASK64 = (1 << 64) - 1

#: the compiled interpreter, for callers that keep their own arrays (benchmarks).
execute = numba.njit(cache=True, nogil=True, error_model="numpy")(interp.execute)


def run(program, memory: Memory, *, args: tuple[int, ...] = (), fuel: int = 1_000_000,
        now_ns: int = 0) -> Result:
    """Run ``program`` to its exit or first fault; ``memory`` is changed in place."""
    if len(args) > 5:
        raise ValueError(f"{len(args)} arguments given, at most 5 (r1-r5) are allowed")
    code = decode_program(program.insns)
    regs = np.zeros(11, np.uint64)
    regs[1:1 + len(args)] = [a & MASK64 for a in args]
    frames = np.zeros((LIMITS.max_call_depth, interp.FRAME_WORDS), np.uint64)
    out = np.zeros(2, np.int64)
    st = execute(code, len(program.insns), regs, frames, memory.flat, memory.base, memory.size,
                 memory.perm, memory.map_rid, memory.map_value_size, memory.map_entries,
                 memory.nmaps, np.int64(fuel), np.uint64(now_ns & MASK64), out)
    return Result(int(st), int(regs[0]), int(out[0]), int(out[1]))
