"""The fast VM: gbpfd.vm.interp.execute compiled for the CPU with Numba.

``cache=True`` keeps the machine code on disk next to interp.py, so a fresh
process (the CLI runs one per program) skips the compile.

A short program costs little to run but much to decode in Python, and a
call from Python into compiled code costs microseconds: ``run`` decodes a
program once (``decoded``) and ``run_batch`` runs it for many argument sets
in one compiled call.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numba
import numpy as np

from gbpfd.isa.abi import LIMITS
from gbpfd.specialize import specialize
from gbpfd.vm import interp
from gbpfd.vm.decoded import decode_program
from gbpfd.vm.memory import Memory
from gbpfd.vm.result import Result

MASK64 = (1 << 64) - 1
NARGS = 5  # r1-r5
NREGS = 11

#: How ``execute`` is compiled.  It allocates nothing, so it needs no reference
#: counting (``_nrt``): with it, every call took and dropped a reference on each
#: of its eleven arrays, more than half the cost of a call that runs two instructions.
JIT_OPTIONS = {"nogil": True, "error_model": "numpy", "_nrt": False}


def options_tag(options: dict) -> str:
    """A name suffix that spells ``options``: Numba's disk cache is keyed on a
    function's name and bytecode, not on its options, so without it a build
    cached under other options (an older checkout's) would be loaded."""
    return "".join(f"_{k.strip('_')}_{v}" for k, v in sorted(options.items()))


#: the compiled interpreter, for callers that keep their own arrays (benchmarks).
execute = specialize([interp.execute], {}, numba.njit(cache=True, **JIT_OPTIONS),
                     tag=options_tag(JIT_OPTIONS)).execute

# id(program) -> its decoded matrix; an entry leaves with its program (weakref.finalize),
# so an id is never found again for a different program.  Keyed by identity, because
# hashing a Program hashes every instruction, which costs as much as decoding.
_DECODED: dict[int, np.ndarray] = {}


def decoded(program) -> np.ndarray:
    """``program``'s decoded matrix, made on first use and kept while the
    program lives (a Program is immutable)."""
    key = id(program)
    code = _DECODED.get(key)
    if code is None:
        code = decode_program(program.insns)
        try:
            weakref.finalize(program, _DECODED.pop, key, None)
        except TypeError:  # an object that takes no weak reference is decoded every time
            return code
        _DECODED[key] = code
    return code


#: the interpreter's ``local`` array: a Memory keeps every region in ``flat``
NO_LOCAL = np.zeros(1, np.uint8)


def _memory_args(memory: Memory) -> tuple:
    return (memory.flat, NO_LOCAL, memory.base, memory.size, memory.perm, memory.map_rid, memory.map_value_size,
            memory.map_entries, memory.nmaps)


def run(program, memory: Memory, *, args: tuple[int, ...] = (), fuel: int = 1_000_000,
        now_ns: int = 0) -> Result:
    """Run ``program`` to its exit or first fault; ``memory`` is changed in place."""
    if len(args) > NARGS:
        raise ValueError(f"{len(args)} arguments given, at most {NARGS} (r1-r5) are allowed")
    regs = np.zeros(NREGS, np.uint64)
    regs[1:1 + len(args)] = [a & MASK64 for a in args]
    frames = np.zeros((LIMITS.max_call_depth, interp.FRAME_WORDS), np.uint64)
    out = np.zeros(2, np.int64)
    st = execute(decoded(program), len(program.insns), regs, frames, *_memory_args(memory),
                 np.int64(fuel), np.uint64(now_ns & MASK64), out)
    return Result(int(st), int(regs[0]), int(out[0]), int(out[1]))


@dataclass(frozen=True)
class BatchResult:
    """One row per run: ``status``, ``steps`` and ``pc`` (int64) and ``r0``
    (uint64) arrays; ``batch[i]`` is run i's ``Result``."""

    status: np.ndarray
    r0: np.ndarray
    steps: np.ndarray
    pc: np.ndarray

    def __len__(self) -> int:
        return len(self.status)

    def __getitem__(self, i: int) -> Result:
        return Result(int(self.status[i]), int(self.r0[i]), int(self.steps[i]), int(self.pc[i]))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _execute_batch(code, ninsns, args, frames, flat, local, base, size, perm, map_rid, map_value_size,
                   map_entries, nmaps, fuel, now_ns, status, r0, steps_pc):
    regs = np.zeros(NREGS, np.uint64)
    for k in range(args.shape[0]):
        regs[:] = 0
        regs[1:1 + args.shape[1]] = args[k]
        status[k] = execute(code, ninsns, regs, frames, flat, local, base, size, perm, map_rid, map_value_size,
                            map_entries, nmaps, fuel, now_ns, steps_pc[k])
        r0[k] = regs[0]


def _argument_rows(args) -> np.ndarray:
    """``args`` (one row of up to five integers per run) as uint64, each
    value taken modulo 2**64 as ``run`` takes it."""
    if isinstance(args, np.ndarray):
        rows = args
        if rows.dtype.kind not in "iu" and rows.size:
            raise ValueError(f"args must be integers, got {rows.dtype}")
    else:
        try:
            rows = np.array([[_integer(a) & MASK64 for a in row] for row in args], np.uint64)
        except TypeError as err:
            raise ValueError(f"args must be one row of at most {NARGS} integers (r1-r5) per run: {err}") from None
        except ValueError:  # numpy refuses rows of different lengths
            raise ValueError("args must be rows of the same length, one per run") from None
    if rows.ndim != 2 or rows.shape[1] > NARGS:
        raise ValueError(f"args must be one row of at most {NARGS} integers (r1-r5) per run, "
                         f"got {rows.shape[1] if rows.ndim == 2 else 'no'} columns")
    return np.ascontiguousarray(rows.astype(np.uint64))


def _integer(value) -> int:
    if not isinstance(value, (int, np.integer)):
        raise TypeError(f"{value!r} is not an integer")
    return int(value)


def run_batch(program, memory: Memory, args, *, fuel: int = 1_000_000, now_ns: int = 0) -> BatchResult:
    """Run ``program`` once per row of ``args`` (shape ``(runs, k)``, k <= 5:
    r1..rk of that run), one after another over the same ``memory``, which
    keeps what each run wrote, as successive ``run`` calls would.  ``fuel``
    bounds each run."""
    rows = _argument_rows(args)
    n = rows.shape[0]
    status, r0, steps_pc = np.zeros(n, np.int64), np.zeros(n, np.uint64), np.zeros((n, 2), np.int64)
    frames = np.zeros((LIMITS.max_call_depth, interp.FRAME_WORDS), np.uint64)
    _execute_batch(decoded(program), len(program.insns), rows, frames, *_memory_args(memory), np.int64(fuel),
                   np.uint64(now_ns & MASK64), status, r0, steps_pc)
    return BatchResult(status, r0, steps_pc[:, 0].copy(), steps_pc[:, 1].copy())
