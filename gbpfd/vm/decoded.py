"""Programs pre-decoded through the table into an int64 matrix.

One row per slot: the fast interpreter (CPU and device) reads only this, so
it never decodes opcodes itself.  A slot that does not decode, and the
second slot of an lddw, get ``opids.INVALID``: reaching one is a fault.
"""
from __future__ import annotations

import numpy as np

from gbpfd.errors import FieldError
from gbpfd.isa import opids
from gbpfd.isa.insn import decode
from gbpfd.isa.table import OP_ID

COL_OP, COL_DST, COL_SRC, COL_OFF, COL_IMM, COL_AUX, COL_FLAGS = range(7)
NCOLS = 7
FLAG_64 = 1   # 64-bit operands (alu64 / jmp); clear for alu / jmp32
FLAG_X = 2    # source operand is register src; clear for the immediate
SIZE_SHIFT = 8  # access size in bytes (loads and stores) lives in flags >> 8


def decode_program(insns) -> np.ndarray:
    """``COL_IMM`` holds the operand already widened as the row's width
    requires (sign-extended imm; the full 64-bit value for ``lddw``);
    ``COL_AUX`` holds the map offset of ``lddw map_value``."""
    code = np.zeros((max(len(insns), 1), NCOLS), np.int64)
    code[:, COL_OP] = opids.INVALID
    i = 0
    while i < len(insns):
        insn = insns[i]
        try:
            row = decode(insn)
        except FieldError:
            i += 1
            continue
        if row.slots == 2 and i + 1 >= len(insns):
            break
        flags = (FLAG_64 if row.width == 64 else 0) | (FLAG_X if row.uses_reg_source else 0)
        flags |= row.size << SIZE_SHIFT
        imm, aux = insn.imm, 0
        if row.op == "lddw":
            imm = ((insns[i + 1].imm & 0xFFFFFFFF) << 32) | (insn.imm & 0xFFFFFFFF)
            imm = imm - (1 << 64) if imm >= 1 << 63 else imm
        elif row.op == "lddw_map_value":
            aux = insns[i + 1].imm
        code[i] = (OP_ID[row.op], insn.dst, insn.src, insn.off, imm, aux, flags)
        i += row.slots
    return code
