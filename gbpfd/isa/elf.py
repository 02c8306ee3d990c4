"""Load a program from a ``clang -O2 -target bpf`` object file.

A program section is named after its hook (``SEC("cta_admit")``, or
``gbpfd/cta_admit``).  Map references are relocated into RFC 9669 form:
a map from ``.maps`` becomes ``lddw`` src=5 (imm = map index); a variable
in ``.data``/``.rodata``/``.bss`` (or a named subsection) becomes ``lddw``
src=6 into a one-entry array map holding that section.  Calls between
functions of the same section are kept as program-local calls; calls into
other sections are refused.

Every problem with the file is a one-line LoadError ``path: reason``.
"""
from __future__ import annotations

import io
import struct
from contextlib import contextmanager

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_RELOC_TYPE_BPF, ENUM_E_MACHINE
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from gbpfd.errors import LoadError
from gbpfd.isa.abi import HOOKS, LIMITS, MAP_KINDS
from gbpfd.isa.btf import TYPE_FIELDS, btf_strings, parse_btf
from gbpfd.isa.btf_lines import lines_per_slot, line_records
from gbpfd.isa.insn import SLOT, Insn, decode_bytes
from gbpfd.isa.program import ARRAY_KEY_SIZE, MapDef, Program
from gbpfd.isa.table import ROWS

EM_BPF = ENUM_E_MACHINE["EM_BPF"]
HOOK_PREFIX = "gbpfd/"
DATA_SECTIONS = (".data", ".rodata", ".bss")
MAP_ATTRS = ("type", "max_entries", "value_size", "key_size") + TYPE_FIELDS
_RELOC_NAMES = {v: k for k, v in ENUM_RELOC_TYPE_BPF.items()}
_ELF64_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
EI_CLASS, ELFCLASS64, EI_DATA, ELFDATA2LSB = 4, 2, 5, 1  # e_ident bytes, from the ELF spec
_CORRUPT = (ELFError, ConstructError, struct.error, ValueError, IndexError, KeyError, UnicodeDecodeError,
            OverflowError)
# A .bss has no bytes in the file to bound its size; past this it is a damaged header, not policy state.
MAX_DATA_SECTION_BYTES = 1 << 24


def _row(op: str):
    return next(row for row in ROWS if row.op == op)


_LDDW, _LDDW_MAP, _LDDW_MAP_VALUE = _row("lddw"), _row("lddw_map"), _row("lddw_map_value")
_CALL_LOCAL = _row("call_local")


def list_programs(path) -> list[str]:
    """Names of the program sections in the object at ``path``."""
    with _opened(path) as elf:
        return [s.name for s in _program_sections(elf)]


def load_elf(path, section: str | None = None) -> Program:
    """The program in ``section`` (or the only program section) of ``path``."""
    with _opened(path) as elf:
        programs = _program_sections(elf)
        names = [s.name for s in programs]
        if not programs:
            raise LoadError(_no_program_reason(elf), path=str(path))
        if section is None and len(programs) > 1:
            raise LoadError(f"several program sections ({', '.join(names)}): choose one", path=str(path))
        if section is not None and section not in names:
            raise LoadError(f"no program section {section!r} (found {', '.join(names)})", path=str(path))
        prog = programs[names.index(section)] if section is not None else programs[0]
        maps = _MapTable(elf, str(path))
        insns = _relocate(elf, prog, maps, str(path))
        return Program(insns=tuple(insns), maps=tuple(maps.defs), hook=_hook_of(prog.name),
                       name=_entry_name(elf, prog, str(path)), source=str(path), lines=(None,) * len(insns),
                       source_lines=_source_lines(elf, prog.name, len(insns), str(path)))


def _source_lines(elf: ELFFile, section: str, nslots: int, path: str) -> tuple:
    """Each slot's line of C, from ``.BTF.ext`` (an object built with -g); () without line info."""
    ext, btf = elf.get_section_by_name(".BTF.ext"), elf.get_section_by_name(".BTF")
    if ext is None or btf is None:
        return ()
    try:
        records = line_records(ext.data(), btf_strings(btf.data())).get(section, [])
    except LoadError as exc:
        raise LoadError(exc.reason, path=path) from None
    return lines_per_slot(records, nslots) if records else ()


@contextmanager
def _opened(path):
    """The parsed object; every parser failure inside the block becomes a
    one-line LoadError, whatever pyelftools raised."""
    path = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}", path=path) from None
    try:
        yield _parse(data, path)
    except _CORRUPT as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise LoadError(f"corrupt ELF object ({detail})", path=path) from None


def _parse(data: bytes, path: str) -> ELFFile:
    """Refuse what is not a 64-bit little-endian BPF object, or is cut short,
    where pyelftools would fail later with errors that are not one line."""
    if data[:4] != b"\x7fELF":
        raise LoadError("not an ELF file", path=path)
    if len(data) < _ELF64_HEADER.size:
        raise LoadError(f"truncated ELF header ({len(data)} bytes)", path=path)
    ident, _, machine, *_, shoff, _, _, _, _, shentsize, shnum, _ = _ELF64_HEADER.unpack_from(data)
    if ident[EI_CLASS] != ELFCLASS64:
        raise LoadError("not a 64-bit ELF object (BPF objects are ELF64)", path=path)
    if ident[EI_DATA] != ELFDATA2LSB:
        raise LoadError("not a little-endian ELF object (build with -target bpf or bpfel)", path=path)
    if machine != EM_BPF:
        raise LoadError(f"ELF machine {machine} is not BPF ({EM_BPF}): build with clang -target bpf", path=path)
    _check_extent("section headers", "end", shoff, shnum * shentsize, len(data), path)
    elf = ELFFile(io.BytesIO(data))
    for sec in elf.iter_sections():
        if sec["sh_type"] != "SHT_NOBITS":
            _check_extent(f"section {sec.name!r}", "ends", sec["sh_offset"], sec["sh_size"], len(data), path)
    return elf


def _check_extent(what: str, verb: str, start: int, length: int, file_size: int, path: str) -> None:
    """Refuse bytes that lie past the end of the file.  A damaged offset is
    often a small negative number read as unsigned: name the offset itself
    (not offset + length, which would be a number no part of the file has)."""
    if length and start >= file_size:
        raise LoadError(f"truncated or damaged ELF object: {what} {verb.replace('end', 'start')} at byte "
                        f"{start} ({start:#x}), past the end of the file ({file_size} bytes)", path=path)
    if start + length > file_size:
        raise LoadError(f"truncated ELF object: {what} {verb} at byte {start + length}, "
                        f"the file has {file_size}", path=path)


def _hook_of(section_name: str) -> str | None:
    name = section_name.removeprefix(HOOK_PREFIX)
    return name if name in HOOKS else None


def _program_sections(elf: ELFFile) -> list:
    return [s for s in elf.iter_sections() if s["sh_type"] == "SHT_PROGBITS" and _hook_of(s.name)]


def _no_program_reason(elf: ELFFile) -> str:
    code = [s.name for s in elf.iter_sections()
            if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s["sh_size"] > 0]
    found = f"; code sections found: {', '.join(code)}" if code else ""
    return f"no program section: name one after a hook, SEC(\"<hook>\") with one of {', '.join(HOOKS)}{found}"


def _symbols(elf: ELFFile) -> list:
    tables = [s for s in elf.iter_sections() if isinstance(s, SymbolTableSection) and s.name == ".symtab"]
    return list(tables[0].iter_symbols()) if tables else []


def _symbol_name(elf: ELFFile, sym) -> str:
    """Section symbols are unnamed: they stand for their section."""
    if sym["st_info"]["type"] == "STT_SECTION" and isinstance(sym["st_shndx"], int):
        return elf.get_section(sym["st_shndx"]).name
    return sym.name


def _entry_name(elf: ELFFile, prog, path: str) -> str:
    """The program's function: the section's one global function, which
    must start the section because execution begins at slot 0."""
    index = elf.get_section_index(prog.name)
    funcs = [s for s in _symbols(elf) if s["st_shndx"] == index and s["st_info"]["type"] == "STT_FUNC"]
    if not funcs:
        return prog.name
    entries = [s for s in funcs if s["st_info"]["bind"] == "STB_GLOBAL"]
    if len(entries) != 1:
        names = ", ".join(s.name for s in entries) or "none"
        raise LoadError(f"section {prog.name!r} must define exactly one global function, the program "
                        f"(found {names}); make its callees static", path=path)
    if entries[0]["st_value"] != 0:
        raise LoadError(f"section {prog.name!r}: the program {entries[0].name!r} must come first in its "
                        f"section; define its callees after it", path=path)
    return entries[0].name


def _is_data_section(name: str) -> bool:
    return any(name == base or name.startswith(base + ".") for base in DATA_SECTIONS)


class _MapTable:
    """The program's maps: those of ``.maps`` (described in BTF), then one
    array map per data section, and where each ELF symbol or section lands."""

    def __init__(self, elf: ELFFile, path: str):
        self.path = path
        self.defs: list[MapDef] = []
        self.by_name: dict[str, int] = {}  # .maps symbol -> map index
        self.by_section: dict[int, int] = {}  # data section index -> map index
        self.maps_section = elf.get_section_index(".maps")
        self._add_btf_maps(elf)
        for index, sec in enumerate(elf.iter_sections()):
            if _is_data_section(sec.name) and sec["sh_size"] > MAX_DATA_SECTION_BYTES:
                raise LoadError(f"section {sec.name!r} is {sec['sh_size']} bytes, more than the "
                                f"{MAX_DATA_SECTION_BYTES} a data section may hold", path=path)
            if _is_data_section(sec.name) and sec["sh_size"] > 0:
                initial = bytes(sec["sh_size"]) if sec["sh_type"] == "SHT_NOBITS" else sec.data()
                self.by_section[index] = self._add(MapDef(sec.name, "array", sec["sh_size"], 1, initial))

    def _add(self, definition: MapDef) -> int:
        self.defs.append(definition)
        return len(self.defs) - 1

    def _add_btf_maps(self, elf: ELFFile) -> None:
        if self.maps_section is None or elf.get_section(self.maps_section)["sh_size"] == 0:
            return
        btf_section = elf.get_section_by_name(".BTF")
        if btf_section is None:
            raise LoadError("the .maps section needs BTF to describe its maps: compile with -g", path=self.path)
        try:
            specs = {spec.name: spec.attrs for spec in parse_btf(btf_section.data()).map_specs()}
        except LoadError as exc:
            raise LoadError(exc.reason, path=self.path) from None
        for sym in _symbols_in(elf, self.maps_section):
            if sym.name not in specs:
                raise LoadError(f"map {sym.name!r} has no BTF description in .maps", path=self.path)
            self.by_name[sym.name] = self._add(self._map_def(sym.name, specs[sym.name]))

    def _map_def(self, name: str, attrs: dict) -> MapDef:
        def fail(reason: str):
            raise LoadError(f"map {name!r}: {reason}", path=self.path)

        unknown = [a for a in attrs if a not in MAP_ATTRS]
        if unknown:
            fail(f"unsupported attribute {unknown[0]!r} (supported: {', '.join(MAP_ATTRS)})")
        kinds = {k.id: k.name for k in MAP_KINDS.values()}
        if attrs.get("type") not in kinds:
            expected = ", ".join(f"GBPFD_MAP_{k.upper()} = {i}" for i, k in kinds.items())
            fail(f"unknown map type {attrs.get('type')} (expected {expected})")
        for key in ("key", "key_size"):
            if attrs.get(key, ARRAY_KEY_SIZE) != ARRAY_KEY_SIZE:
                fail(f"key is {attrs[key]} bytes; every gbpfd map is indexed by a {ARRAY_KEY_SIZE}-byte u32")
        sizes = {attrs[k] for k in ("value", "value_size") if k in attrs}
        if len(sizes) != 1:
            fail("declare exactly one value size: __type(value, T) or __uint(value_size, N)")
        if "max_entries" not in attrs:
            fail("no max_entries: declare __uint(max_entries, N)")
        try:
            return MapDef(name, kinds[attrs["type"]], sizes.pop(), attrs["max_entries"])
        except ValueError as exc:
            raise LoadError(str(exc), path=self.path) from None


def _symbols_in(elf: ELFFile, section_index: int) -> list:
    syms = [s for s in _symbols(elf) if s["st_shndx"] == section_index and s["st_info"]["type"] == "STT_OBJECT"]
    return sorted(syms, key=lambda s: s["st_value"])


def _relocate(elf: ELFFile, prog, maps: _MapTable, path: str) -> list[Insn]:
    data = prog.data()
    if not data or len(data) % SLOT.size:
        raise LoadError(f"section {prog.name!r} is {len(data)} bytes, not a whole number of "
                        f"{SLOT.size}-byte instructions", path=path)
    if len(data) // SLOT.size > LIMITS.max_insns:
        raise LoadError(f"section {prog.name!r} has {len(data) // SLOT.size} slots, more than the "
                        f"{LIMITS.max_insns} a program may have", path=path)
    insns = decode_bytes(data)
    prog_index = elf.get_section_index(prog.name)
    for rel_section in elf.iter_sections():
        if isinstance(rel_section, RelocationSection) and rel_section["sh_info"] == prog_index:
            symtab = elf.get_section(rel_section["sh_link"])
            if not isinstance(symtab, SymbolTableSection):
                raise LoadError(f"relocation section {rel_section.name!r} does not link to a symbol table",
                                path=path)
            for rel in rel_section.iter_relocations():
                _apply(elf, insns, rel, symtab.get_symbol(rel["r_info_sym"]), prog_index, maps, path)
    return insns


def _apply(elf: ELFFile, insns: list[Insn], rel, sym, prog_index: int, maps: _MapTable, path: str) -> None:
    at, kind = rel["r_offset"] // SLOT.size, rel["r_info_type"]
    where = f"instruction {at}"
    if rel["r_offset"] % SLOT.size or at >= len(insns):
        raise LoadError(f"relocation at byte {rel['r_offset']} is not at an instruction", path=path)
    insn = insns[at]
    addend = rel["r_addend"] if rel.is_RELA() else insn.imm
    if kind == ENUM_RELOC_TYPE_BPF["R_BPF_64_64"] and insn.opcode == _LDDW.opcode and at + 1 < len(insns):
        insns[at], insns[at + 1] = _map_load(elf, insn, sym, addend, maps, where, path)
    elif kind == ENUM_RELOC_TYPE_BPF["R_BPF_64_32"] and (insn.opcode, insn.src) == (_CALL_LOCAL.opcode,
                                                                                   _CALL_LOCAL.rules["src"]):
        insns[at] = _local_call(elf, insn, at, sym, addend, prog_index, where, path)
    else:
        name = _RELOC_NAMES.get(kind, f"type {kind}")
        raise LoadError(f"{where}: unsupported relocation {name} against {_symbol_name(elf, sym)!r} "
                        f"(opcode {insn.opcode:#04x})", path=path)


def _map_load(elf: ELFFile, insn: Insn, sym, addend: int, maps: _MapTable, where: str,
              path: str) -> tuple[Insn, Insn]:
    shndx = sym["st_shndx"]
    if isinstance(shndx, int) and shndx == maps.maps_section:
        if addend or sym.name not in maps.by_name:
            raise LoadError(f"{where}: reference into the middle of map {sym.name!r}", path=path)
        return _lddw(insn, _LDDW_MAP, maps.by_name[sym.name], 0)
    if isinstance(shndx, int) and shndx in maps.by_section:
        index = maps.by_section[shndx]
        offset = sym["st_value"] + addend
        if not 0 <= offset < maps.defs[index].value_size:
            raise LoadError(f"{where}: offset {offset} is outside section {maps.defs[index].name!r} "
                            f"({maps.defs[index].value_size} bytes)", path=path)
        return _lddw(insn, _LDDW_MAP_VALUE, index, offset)
    home = elf.get_section(shndx).name if isinstance(shndx, int) else "no section (an extern)"
    raise LoadError(f"{where}: lddw of {_symbol_name(elf, sym)!r} in {home}, which is neither a map in .maps "
                    f"nor a {'/'.join(DATA_SECTIONS)} section", path=path)


def _lddw(insn: Insn, row, map_index: int, next_imm: int) -> tuple[Insn, Insn]:
    return (Insn(row.opcode, insn.dst, row.rules["src"], 0, map_index), Insn(0, 0, 0, 0, next_imm))


def _local_call(elf: ELFFile, insn: Insn, at: int, sym, addend: int, prog_index: int, where: str,
                path: str) -> Insn:
    if sym["st_shndx"] != prog_index:
        home = elf.get_section(sym["st_shndx"]).name if isinstance(sym["st_shndx"], int) else "no section"
        raise LoadError(f"{where}: call into section {home!r}: only calls within the program's own "
                        f"section are supported; declare the callee static __always_inline", path=path)
    # clang encodes the callee as symbol + (imm + 1) slots, like a jump from the symbol
    target = sym["st_value"] // SLOT.size + addend + 1
    return Insn(insn.opcode, insn.dst, insn.src, insn.off, target - at - 1)
