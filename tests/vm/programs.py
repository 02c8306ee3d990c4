"""Building test programs from the table's rows (no opcode numbers)."""
from __future__ import annotations

from gbpfd.isa.insn import Insn
from gbpfd.isa.table import BY_MNEMONIC, Row


def row(mnemonic: str, form: str) -> Row:
    return next(r for r in BY_MNEMONIC[mnemonic] if r.form == form)


def insn(r: Row, **fields) -> Insn:
    """An instruction of row ``r``: its pinned field set, the rest from ``fields``."""
    if r.pinned:
        fields[r.pinned[0]] = r.pinned[1]
    return Insn(r.opcode, **fields)


def lddw(dst: int, value: int) -> list[Insn]:
    low, high = value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF
    return [insn(row("lddw", "lddw"), dst=dst, imm=_as_s32(low)), Insn(0, imm=_as_s32(high))]


def _as_s32(word: int) -> int:
    return word - (1 << 32) if word >= 1 << 31 else word


def exit_insn() -> Insn:
    return insn(row("exit", "exit"))
