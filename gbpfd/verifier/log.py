"""Verifier log text, in the Linux verifier's style.

An error is ``INDEX: (OPCODE) INSN_TEXT: REASON``, followed (when the
interpreter got that far) by the registers at that point, uninitialised ones
left out: ``R0=scalar(5) R1=ctx R2=map_value_or_null(map=state,id=1) R10=fp``.
Scalars print as ``scalar`` (nothing known), ``scalar(5)`` (a constant,
signed) or ``scalar(umin=0,umax=31)`` (bounds that say something).
"""
from __future__ import annotations

from gbpfd.isa.disasm import format_insn
from gbpfd.isa.program import Program
from gbpfd.verifier.state import CTX, MAP, MAP_VALUE, MAP_VALUE_OR_NULL, SCALAR, STACK, State, Value


def _offset(v: Value) -> str:
    return str(v.off_lo) if v.off_lo == v.off_hi else f"[{v.off_lo},{v.off_hi}]"


def _map_name(program: Program, index: int) -> str:
    return program.maps[index].name


def value_text(v: Value, program: Program) -> str:
    if v.kind == SCALAR:
        return v.scalar.text()
    if v.kind == STACK:
        if v.off_lo == v.off_hi:
            return "fp" if v.off_lo == 0 else f"fp{v.off_lo:+d}"
        return f"fp(off={_offset(v)})"
    if v.kind == CTX:
        return "ctx" if (v.off_lo, v.off_hi) == (0, 0) else f"ctx(off={_offset(v)})"
    if v.kind == MAP:
        return f"map_ptr({_map_name(program, v.map)})"
    if v.kind == MAP_VALUE:
        return f"map_value(map={_map_name(program, v.map)},off={_offset(v)})"
    assert v.kind == MAP_VALUE_OR_NULL
    return f"map_value_or_null(map={_map_name(program, v.map)},id={v.id})"


def state_text(state: State, program: Program) -> str:
    return " ".join(f"R{i}={value_text(v, program)}" for i, v in enumerate(state.regs) if v is not None)


def insn_line(program: Program, index: int, reason: str) -> str:
    insn = program.insns[index]
    return f"{index}: ({insn.opcode:02x}) {format_insn(program.insns, index, program.maps)}: {reason}"


def source_line(program: Program, index: int) -> list[str]:
    """The line of C instruction ``index`` came from, as a log line (the
    object's line info; none for other programs, or where it has none)."""
    line = program.source_lines[index] if index < len(program.source_lines) else None
    return [] if line is None else [f"    at {line}"]


def accepted_line(hook: str, insns: int, cost: int, budget: int, explored: int, pruned: int) -> str:
    return (f"accepted for {hook}: {insns} insns, worst-case path {cost} insns (budget {budget}), "
            f"{explored} states explored, {pruned} pruned")
