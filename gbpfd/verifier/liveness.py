"""Which registers matter after each slot: the facts that let pruning ignore the rest.

A register is *live* at a slot when some path from there reads it before
writing it, and *precise* when its scalar range may also decide a check:
pointer arithmetic, a branch that picks between two different slots, the
value r0 leaves at exit, a value stored to memory or passed to a function,
or a value computed from a precise one.  Every other check a scalar meets
(an ALU op, a helper's scalar argument, a store into ctx or a map through a
pointer) reads only its kind.

So at a join point a dead register can be forgotten and a live, imprecise
scalar widened to "any scalar" without changing a single check of the
continuation: paths that differ only there become one state.  Jumps only go
forward, so one backward pass over each function computes both sets.
"""
from __future__ import annotations

from functools import cache

from gbpfd.isa.abi import HELPERS
from gbpfd.verifier.state import NREGS

ARGS = 0b111110          # r1-r5
CLOBBERED = 0b111111     # r0-r5: a call's result and its clobbered arguments
ALL = (1 << NREGS) - 1   # an exit ends the function: nothing after it is read


def _bit(reg: int) -> int:
    return 1 << reg


def _effect(row, insn) -> tuple[int, int, int, int, int]:
    """A slot's effect as masks (kill, gen, pgen, pcond, cond): before it,
    live = (after & ~kill) | gen and precise = (after & ~kill) | pgen, plus
    pcond when the precise set after it meets cond."""
    dst, src = _bit(insn.dst), _bit(insn.src)
    reads = dst | (src if row.uses_reg_source else 0)
    if row.cls in ("alu", "alu64"):
        if row.op == "mov" or row.op.startswith("movsx"):
            gen = src if row.uses_reg_source else 0
            return dst, gen, 0, gen, dst
        # a pointer may meet a register operand here: that operand's range bounds the result
        pointer_math = row.uses_reg_source and row.width == 64 and row.op in ("add", "sub")
        return 0, reads, reads if pointer_math else 0, reads, dst
    if row.cls == "ldx":
        return dst, src, src, 0, 0
    if row.slots == 2:
        return dst, 0, 0, 0, 0
    if row.cls in ("st", "stx"):
        stored = dst | (src if row.cls == "stx" else 0)
        return 0, stored, stored, 0, 0
    if row.op == "exit":
        return ALL, 1, 1, 0, 0
    if row.op == "call":
        args = sum(_bit(r + 1) for r in range(len(HELPERS[insn.imm].args)))
        return CLOBBERED, args, 0, 0, 0
    if row.op == "call_local":
        return CLOBBERED, ARGS, ARGS, 0, 0
    if row.form in ("jmp_k", "jmp_x"):
        # the operands decide which slots the paths reach (unless both go to the
        # next slot) and, a pointer against a register, whether the comparison is allowed
        decides = row.uses_reg_source or insn.off != 0
        return 0, reads, reads if decides else 0, 0, 0
    return 0, 0, 0, 0, 0  # ja


def analyse(program, layout_rows: list, encodings: list, succ: list) -> tuple[list, list]:
    """Per slot, the bit masks of the registers live and precise on entry."""
    n = len(layout_rows)
    live, precise = [0] * n, [0] * n
    effects: dict = {}  # by encoding: a program repeats few distinct ones
    for i in range(n - 1, -1, -1):
        row = layout_rows[i]
        if row is None:
            continue
        effect = effects.get(encodings[i])
        if effect is None:
            effect = effects[encodings[i]] = _effect(row, program.insns[i])
        kill, gen, pgen, pcond, cond = effect
        after_live = after_precise = 0
        for t in succ[i]:
            after_live |= live[t]
            after_precise |= precise[t]
        live[i] = (after_live & ~kill) | gen
        precise[i] = (after_precise & ~kill) | pgen | (pcond if after_precise & cond else 0)
    return live, precise


@cache
def forgettable(live: int, precise: int) -> tuple[tuple, tuple]:
    """(dead registers, live but imprecise registers), r10 left alone."""
    regs = range(NREGS - 1)
    return (tuple(r for r in regs if not live >> r & 1),
            tuple(r for r in regs if live >> r & 1 and not precise >> r & 1))
