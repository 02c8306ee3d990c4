"""The disassembler: exact instruction text, and disassemble -> assemble
giving back identical bytes for every table row, the example policies and
random programs."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbpfd.errors import LoadError
from gbpfd.isa import asm, disasm
from gbpfd.isa.asm import assemble
from gbpfd.isa.disasm import disassemble, disassemble_bytes, format_insn
from gbpfd.isa.insn import FIELD_RANGES, NREGS, Insn, decode
from gbpfd.isa.program import MapDef, Program
from gbpfd.isa.table import BY_MNEMONIC, FIELDS, FORMS, ROWS

POLICIES_DIR = Path(__file__).parents[2] / "gbpfd" / "policies"
PADDING = 4  # exit slots after an instance, so that its jumps stay inside the program
EXIT = Insn(BY_MNEMONIC["exit"][0].opcode)


def _only(mnemonic: str, form: str | None = None):
    return next(r for r in BY_MNEMONIC[mnemonic] if form is None or r.form == form)


def insn(mnemonic: str, form: str | None = None, **fields) -> Insn:
    row = _only(mnemonic, form)
    if row.pinned:
        fields.setdefault(row.pinned[0], row.pinned[1])
    return Insn(row.opcode, **fields)


def second(imm: int) -> Insn:
    return Insn(0, imm=imm)


MAPS = (MapDef("state", "array", 8, 32), MapDef("q", "quota", 64, 32))

FORMAT_CASES = [
    ([insn("add", "alu_k", dst=1, imm=5)], "add %r1, 5"),
    ([insn("mov32", "alu_k", imm=-1)], "mov32 %r0, -1"),
    ([insn("add", "alu_x", dst=1, src=2)], "add %r1, %r2"),
    ([insn("neg", dst=1)], "neg %r1"),
    ([insn("be16", dst=1)], "be16 %r1"),
    ([insn("swap64", dst=2)], "swap64 %r2"),
    ([insn("jeq", "jmp_k", dst=1, imm=2, off=3)], "jeq %r1, 2, +3"),
    ([insn("jsgt", "jmp_x", dst=1, src=2, off=-4)], "jsgt %r1, %r2, -4"),
    ([insn("jne32", "jmp_k", dst=1, off=0)], "jne32 %r1, 0, +0"),
    ([insn("ja", off=5)], "ja +5"),
    ([insn("ja32", imm=70000)], "ja32 +70000"),
    ([insn("ldxdw", dst=0, src=1, off=8)], "ldxdw %r0, [%r1+8]"),
    ([insn("ldxb", dst=0, src=1, off=0)], "ldxb %r0, [%r1]"),
    ([insn("stw", dst=10, off=-4, imm=5)], "stw [%r10-4], 5"),
    ([insn("stxdw", dst=10, src=1, off=-8)], "stxdw [%r10-8], %r1"),
    ([insn("lddw", "lddw", dst=1, imm=0x55667788), second(0x11223344)],
     "lddw %r1, 0x1122334455667788"),
    ([insn("lddw", "lddw", dst=1, imm=9), second(0)], "lddw %r1, 9"),
    ([insn("lddw", "lddw", dst=1, imm=10), second(0)], "lddw %r1, 0xa"),
    ([insn("lddw", "lddw", dst=1, imm=-1), second(-1)], "lddw %r1, 0xffffffffffffffff"),
    ([insn("lddw", "lddw_map", dst=1, imm=1), second(0)], "lddw %r1, map:q"),
    ([insn("lddw", "lddw_map", dst=1, imm=2), second(0)], "lddw %r1, map:#2"),
    ([insn("lddw", "lddw_map_value", dst=1, imm=0), second(0)], "lddw %r1, map_value:state+0"),
    ([insn("lddw", "lddw_map_value", dst=1, imm=0), second(-8)], "lddw %r1, map_value:state-8"),
    ([insn("call", "call_helper", imm=1)], "call 1"),
    ([insn("call", "call_local", imm=-3)], "call local -3"),
    ([insn("call", "call_local", imm=2)], "call local +2"),
    ([insn("exit")], "exit"),
    ([Insn(0xFF, 1, 2, 3, 4)], ".raw 0xff21030004000000"),  # no such opcode
    ([insn("add", "alu_k", dst=11)], ".raw 0x070b000000000000"),  # register out of range
    ([insn("lddw", "lddw", dst=1, imm=7)], ".raw 0x1801000007000000"),  # no second slot
    ([insn("lddw", "lddw", dst=1, imm=7), Insn(0, dst=1)], ".raw 0x1801000007000000"),
    ([insn("lddw", "lddw_map", dst=1), second(4)], ".raw 0x1851000000000000"),
]


@pytest.mark.parametrize("insns, text", FORMAT_CASES, ids=[t for _, t in FORMAT_CASES])
def test_format_insn(insns, text):
    assert format_insn(insns, 0, MAPS) == text


def test_format_insn_without_maps_uses_the_index():
    assert format_insn([insn("lddw", "lddw_map", dst=1, imm=1), second(0)], 0) == "lddw %r1, map:#1"


def test_format_insn_at_an_index():
    insns = [insn("mov", "alu_k", imm=1), insn("lddw", "lddw", dst=2, imm=3), second(0), insn("exit")]
    assert [format_insn(insns, i) for i in (0, 1, 3)] == ["mov %r0, 1", "lddw %r2, 3", "exit"]


def test_every_operand_kind_has_a_formatter_and_a_parser():
    kinds = {kind for form in FORMS.values() for kind in form["operands"]}
    assert kinds == set(disasm._OPERAND_TEXT) == set(asm._OPERAND_PARSERS)


SAMPLE = {"off": 2, "imm": 3}  # in range for every form once PADDING slots follow


def row_instance(row) -> list[Insn]:
    fields = {}
    for field in FIELDS:
        rule = row.rules[field]
        fields[field] = {"reg": 1 + FIELDS.index(field), "zero": 0, "any": SAMPLE.get(field, 0)}.get(rule, rule)
    slots = [Insn(row.opcode, **fields)]
    return slots + [second(0)] * (row.slots - 1)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.mnemonic}/{r.form}/{r.opcode:#04x}" for r in ROWS])
def test_every_row_round_trips_through_its_text(row):
    insns = row_instance(row) + [EXIT] * PADDING
    assert decode(insns[0]) is row
    text = format_insn(insns, 0, MAPS)
    assert not text.startswith(".raw")
    program = assemble(text + "\n" + "exit\n" * PADDING)
    assert program.insns == tuple(insns)


@pytest.mark.parametrize("name", ["admit_all.s", "tenant_cap.s"])
def test_example_policies_round_trip(name):
    program = assemble((POLICIES_DIR / name).read_text(), name)
    again = assemble(disassemble(program))
    assert again.to_bytes() == program.to_bytes()
    assert (again.hook, again.name, again.maps) == (program.hook, program.name, program.maps)


def test_disassembly_names_helpers_and_slots():
    text = disassemble(assemble((POLICIES_DIR / "tenant_cap.s").read_text()))
    assert "call 4" in text and "# slot 4, quota_read" in text
    assert "lddw %r1, map:state" in text
    assert text.splitlines()[:3] == [".name tenant_cap", ".hook cta_admit",
                                     ".map state array value_size=8 max_entries=32"]


def test_out_of_program_jumps_disassemble_as_raw():
    insns = (insn("ja", off=5), insn("call", "call_local", imm=-3), EXIT)
    text = disassemble(Program(insns))
    assert ".raw 0x0500050000000000" in text and ".raw 0x85100000fdffffff" in text
    assert assemble(text).insns == insns


def test_initial_map_contents_are_noted():
    program = Program((EXIT,), (MapDef(".data", "array", 4, 1, initial=b"\1\0\0\0"),))
    text = disassemble(program)
    assert "# map .data has 4 bytes of initial contents" in text
    assert assemble(text).maps == (MapDef(".data", "array", 4, 1),)


def test_disassemble_bytes():
    assert disassemble_bytes(bytes.fromhex("b700000001000000" "9500000000000000")).splitlines() \
        == [".name prog", f"{'mov %r0, 1':<40} # slot 0", f"{'exit':<40} # slot 1"]


def test_disassemble_bytes_refuses_a_partial_slot():
    with pytest.raises(LoadError) as err:
        disassemble_bytes(b"\0" * 12, "x.bin")
    assert str(err.value) == "x.bin: bytecode is 12 bytes, not a multiple of 8"


# ------------------------------------------------------------ random programs

def _field(draw, rule, field):
    if rule == "reg":
        return draw(st.integers(0, NREGS - 1))
    if rule == "zero":
        return 0
    if rule == "any":
        return draw(st.integers(*FIELD_RANGES[field]))
    return rule


@st.composite
def programs(draw):
    """Random rows with random field values, random raw slots, and jumps kept
    inside the program (the assembler refuses others)."""
    items = draw(st.lists(st.one_of(st.sampled_from(ROWS), st.binary(min_size=8, max_size=8)),
                          min_size=1, max_size=12))
    total = sum(item.slots if not isinstance(item, bytes) else 1 for item in items)
    insns: list[Insn] = []
    for item in items:
        if isinstance(item, bytes):
            insns.append(Insn.from_bytes(item))
            continue
        fields = {f: _field(draw, item.rules[f], f) for f in FIELDS}
        for kind, field in disasm.RELATIVE_KINDS.items():
            if kind in item.operands:
                fields[field] = draw(st.integers(0, total - 1)) - len(insns) - 1
        insns.append(Insn(item.opcode, **fields))
        if item.slots == 2:
            insns.append(second(draw(st.integers(*FIELD_RANGES["imm"]))))
    return Program(tuple(insns), maps=draw(st.sampled_from([(), MAPS])),
                   hook=draw(st.sampled_from([None, "tick"])))


@settings(max_examples=200, deadline=None)
@given(programs())
def test_disassembly_reassembles_to_identical_bytes(program):
    again = assemble(disassemble(program))
    assert again.insns == program.insns
    assert (again.maps, again.hook, again.name) == (program.maps, program.hook, program.name)


@pytest.mark.slow
@settings(max_examples=20000, deadline=None)
@given(programs())
def test_disassembly_reassembles_to_identical_bytes_long(program):
    assert assemble(disassemble(program)).insns == program.insns
