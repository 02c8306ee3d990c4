"""Every row of the opcode table runs on both VMs (no FAULT_OPCODE) and they agree
on r0, on every register (dumped to memory) and on memory."""
from __future__ import annotations

import pytest

from gbpfd.isa.insn import Insn
from gbpfd.isa.program import MapDef, Program
from gbpfd.isa.table import ROWS
from gbpfd.vm import status
from gbpfd.vm.memory import RID_STACK0

from .harness import assert_same, exec_args, exec_memory, run_both
from .programs import exit_insn, insn, lddw, row

SEED = [0x8000000000000007, 0, 0x00000000FFFFFFF3, 0xFFFFFFFF80000001, 0x7F, 0x1234, 0x55,
        0xFEDCBA9876543210, 0xFFFFFFFFFFFFFFFF, 3]
MAPS = (MapDef("m", "array", 8, 4),)


def _body(r) -> list:
    """The row under test, in a context where it can complete."""
    if r.form in ("alu_k", "alu_x", "neg", "endian"):
        return [insn(r, dst=0, src=2 if r.uses_reg_source else 0, imm=-13 if r.form == "alu_k" else 0)]
    if r.form in ("jmp_k", "jmp_x"):
        return [insn(r, dst=0, src=2 if r.uses_reg_source else 0, off=1, imm=-13 if r.form == "jmp_k" else 0),
                insn(row("mov", "alu_k"), dst=5, imm=99)]
    if r.form == "ja":
        return [insn(r, off=1), insn(row("mov", "alu_k"), dst=5, imm=99)]
    if r.form == "ja32":
        return [insn(r, imm=1), insn(row("mov", "alu_k"), dst=5, imm=99)]
    if r.form == "load":
        return [insn(r, dst=0, src=10, off=-8)]
    if r.form == "store_imm":
        return [insn(r, dst=10, off=-8, imm=-3)]
    if r.form == "store_reg":
        return [insn(r, dst=10, src=7, off=-8)]
    if r.form.startswith("lddw"):
        return [insn(r, dst=0, imm=0), Insn(0, imm=8)]
    if r.form == "call_helper":
        return [insn(r, imm=5)]
    if r.form == "call_local":
        return [insn(r, imm=1), insn(row("ja", "ja"), off=3),
                insn(row("mov", "alu_k"), dst=6, imm=1), insn(row("mov", "alu_k"), dst=0, imm=2), exit_insn()]
    if r.form == "exit":
        return []
    raise AssertionError(f"no coverage program for form {r.form!r}")


def _program(r) -> Program:
    prelude = [slot for reg, value in enumerate(SEED) for slot in lddw(reg, value)]
    prelude.append(insn(row("stxdw", "store_reg"), dst=10, src=8, off=-8))
    dump = [insn(row("stxdw", "store_reg"), dst=10, src=reg, off=-16 - 8 * reg) for reg in range(10)]
    return Program(tuple(prelude + _body(r) + dump + [exit_insn()]), maps=MAPS)


@pytest.mark.parametrize("r", ROWS, ids=lambda r: f"{r.mnemonic}/{r.form}/{r.opcode:#04x}")
def test_row_runs_on_both_vms(r):
    program = _program(r)
    mem = bytes(8)
    outcomes = run_both(program, lambda: exec_memory(program, mem), args=exec_args(mem), now_ns=7)
    result = outcomes["reference"][0]
    assert result.status == status.OK, status.REASONS[result.status]
    assert_same(outcomes)
    assert any(outcomes["fast"][1].region(RID_STACK0)), "the register dump reached memory"
