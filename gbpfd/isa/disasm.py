"""Instruction text in uBPF / bpf_conformance syntax, and whole-program disassembly.

Every instruction is printed from its row's operand list (``FORMS``): one
formatter per operand kind, none per mnemonic.  ``disassemble`` produces text
that ``gbpfd.isa.asm.assemble`` turns back into exactly the same bytes; a slot
the assembler could not express (it does not decode, an lddw's second slot is
malformed, a jump leaves the program) is written as ``.raw``.
"""
from __future__ import annotations

import re

from gbpfd.errors import FieldError, LoadError
from gbpfd.isa.abi import HELPERS, MAP_KINDS
from gbpfd.isa.insn import SLOT, Insn, decode, decode_bytes
from gbpfd.isa.program import MapDef, Program

#: names the assembler accepts for labels and maps
NAME_RE = re.compile(r"[A-Za-z_.][A-Za-z0-9_.]*")
#: operand kinds whose value is a slot offset relative to the next slot
RELATIVE_KINDS = {"off": "off", "target32": "imm", "local": "imm"}


def signed(value: int) -> str:
    return f"+{value}" if value >= 0 else str(value)


def raw_text(insn: Insn) -> str:
    return f".raw 0x{insn.encode().hex()}"


def _imm64_text(value: int) -> str:
    return str(value) if 0 <= value <= 9 else f"0x{value:x}"


def _map_name(maps, index: int) -> str:
    """The map's name when the assembler would resolve it back to ``index``."""
    names = [m.name for m in maps]
    if 0 <= index < len(names) and names.index(names[index]) == index \
            and NAME_RE.fullmatch(names[index]):
        return names[index]
    return f"#{index}"


def _mem(reg: int, off: int) -> str:
    return f"[%r{reg}{signed(off) if off else ''}]"


def _second_imm(insns, index: int) -> int | None:
    """The imm of a well-formed lddw second slot (opcode and other fields 0)."""
    if index + 1 >= len(insns):
        return None
    nxt = insns[index + 1]
    if (nxt.opcode, nxt.dst, nxt.src, nxt.off) != (0, 0, 0, 0):
        return None
    return nxt.imm


# operand kind -> (insn, imm of the second slot or None, maps) -> text, or None
# when the operand cannot be written for these field values
_OPERAND_TEXT = {
    "dst": lambda i, hi, maps: f"%r{i.dst}",
    "src": lambda i, hi, maps: f"%r{i.src}",
    "imm": lambda i, hi, maps: str(i.imm),
    "off": lambda i, hi, maps: signed(i.off),
    "target32": lambda i, hi, maps: signed(i.imm),
    "mem_src": lambda i, hi, maps: _mem(i.src, i.off),
    "mem_dst": lambda i, hi, maps: _mem(i.dst, i.off),
    "helper": lambda i, hi, maps: str(i.imm),
    "local": lambda i, hi, maps: f"local {signed(i.imm)}",
    "imm64": lambda i, hi, maps: None if hi is None else _imm64_text(
        ((hi << 32) | (i.imm & 0xFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF),
    "map": lambda i, hi, maps: f"map:{_map_name(maps, i.imm)}" if hi == 0 else None,
    "map_value": lambda i, hi, maps: None if hi is None else
        f"map_value:{_map_name(maps, i.imm)}{signed(hi)}",
}


def _render(insns, index: int, maps) -> tuple[str, int]:
    """The text of the instruction at ``index`` and how many slots it takes."""
    insn = insns[index]
    try:
        row = decode(insn)
    except FieldError:
        return raw_text(insn), 1
    hi = _second_imm(insns, index) if row.slots == 2 else None
    texts = [_OPERAND_TEXT[kind](insn, hi, maps) for kind in row.operands]
    if None in texts:
        return raw_text(insn), 1
    return " ".join([row.mnemonic, ", ".join(texts)]) if texts else row.mnemonic, row.slots


def format_insn(insns, index: int, maps=()) -> str:
    """The assembler text of the instruction starting at slot ``index``."""
    return _render(insns, index, maps)[0]


def _targets_in_program(insns, index: int) -> bool:
    """False for a jump or local call the assembler would refuse as out of range."""
    try:
        row = decode(insns[index])
    except FieldError:
        return True
    for kind in row.operands:
        if kind in RELATIVE_KINDS:
            target = index + 1 + getattr(insns[index], RELATIVE_KINDS[kind])
            if not 0 <= target < len(insns):
                return False
    return True


def _comment(insn_text: str, insn: Insn, index: int) -> str:
    note = f"slot {index}"
    if insn_text.startswith("call ") and not insn_text.startswith("call local") \
            and insn.imm in HELPERS:
        note += f", {HELPERS[insn.imm].name}"
    return note


def _map_line(m: MapDef) -> str:
    if MAP_KINDS[m.kind].record is not None:
        return f".map {m.name} {m.kind}"
    return f".map {m.name} {m.kind} value_size={m.value_size} max_entries={m.max_entries}"


def disassemble(program: Program) -> str:
    """Assembler text for ``program``: directives, then one line per instruction."""
    lines = [f".name {program.name}"]
    if program.hook is not None:
        lines.append(f".hook {program.hook}")
    for m in program.maps:
        lines.append(_map_line(m))
        if m.initial is not None:
            lines.append(f"# map {m.name} has {len(m.initial)} bytes of initial contents, "
                         f"which assembler text cannot express")
    insns = program.insns
    index = 0
    while index < len(insns):
        text, nslots = _render(insns, index, program.maps)
        if not _targets_in_program(insns, index):
            text, nslots = raw_text(insns[index]), 1
        lines.append(f"{text:<40} # {_comment(text, insns[index], index)}")
        index += nslots
    return "\n".join(lines) + "\n"


def disassemble_bytes(data: bytes, path: str | None = None) -> str:
    """Disassemble raw bytecode (no hook, no maps)."""
    if len(data) % SLOT.size:
        raise LoadError(f"bytecode is {len(data)} bytes, not a multiple of {SLOT.size}", path=path)
    return disassemble(Program(tuple(decode_bytes(data)), source=path))
