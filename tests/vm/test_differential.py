"""Differential fuzz: random straight-line and forward-jump programs must give the
same Result and the same memory on both VMs.

``GBPFD_FUZZ_EXAMPLES`` sets the number of programs (default 300).
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbpfd.isa.insn import Insn
from gbpfd.isa.program import Program
from gbpfd.isa.table import ROWS

from .harness import assert_same, exec_args, exec_memory, run_both
from .programs import exit_insn, insn, lddw, row

EXAMPLES = int(os.environ.get("GBPFD_FUZZ_EXAMPLES", "300"))
FORMS = ("alu_k", "alu_x", "neg", "endian", "jmp_k", "jmp_x", "ja", "load", "store_imm", "store_reg", "lddw")
FUZZ_ROWS = [r for r in ROWS if r.form in FORMS]
EDGES = [0, 1, -1, 2, 31, 32, 63, 64, 0x7FFFFFFF, -0x80000000, 0xFF, 0x8000, -7]
imm32 = st.one_of(st.sampled_from(EDGES), st.integers(-(1 << 31), (1 << 31) - 1))
u64 = st.one_of(st.sampled_from([0, 1, (1 << 64) - 1, 1 << 63, (1 << 63) - 1, 0xFFFFFFFF, 1 << 31]),
                st.integers(0, (1 << 64) - 1))
INPUT_LEN = 32
STXDW = row("stxdw", "store_reg")


@st.composite
def slots(draw, r, room: int) -> list[Insn]:
    """One instruction of row ``r`` whose jumps stay within the next ``room`` slots."""
    reg = st.integers(0, 9)
    if r.form == "lddw":
        return lddw(draw(reg), draw(u64))
    if r.form in ("load", "store_imm", "store_reg"):
        base = draw(st.sampled_from([1, 10]))
        # Mostly in bounds of the input (r1) or stack (r10), sometimes just outside.
        off = draw(st.integers(-4, INPUT_LEN) if base == 1 else st.integers(-520, 4))
        if r.form == "load":
            return [insn(r, dst=draw(st.integers(2, 9)), src=base, off=off)]
        return [insn(r, dst=base, src=draw(reg) if r.form == "store_reg" else 0, off=off,
                     imm=draw(imm32) if r.form == "store_imm" else 0)]
    fields = {"dst": 0 if r.form == "ja" else draw(st.integers(0, 9))}
    if r.uses_reg_source:
        fields["src"] = draw(reg)
    if r.form in ("alu_k", "jmp_k"):
        fields["imm"] = draw(imm32)
    if r.form.startswith("jmp") or r.form == "ja":
        fields["off"] = draw(st.integers(0, room))
    return [insn(r, **fields)]


@st.composite
def programs(draw):
    count = draw(st.integers(1, 40))
    body: list[Insn] = []
    for i in range(count):
        r = draw(st.sampled_from(FUZZ_ROWS))
        body += draw(slots(r, count - i - 1))
    # Every register goes to the stack, so the memory comparison covers the register file.
    dump = [insn(STXDW, dst=10, src=reg, off=-8 * (reg + 1)) for reg in range(10)]
    return Program(tuple(body + dump) + (exit_insn(),))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.lists(u64, min_size=4, max_size=4), st.binary(min_size=INPUT_LEN, max_size=INPUT_LEN),
       st.one_of(st.just(1_000_000), st.integers(1, 60)))
def test_vms_agree(program, regs, mem, fuel):
    outcomes = run_both(program, lambda: exec_memory(program, mem), args=(exec_args(mem)[0], *regs),
                        fuel=fuel)
    assert_same(outcomes)
