"""Loading clang BPF objects: hooks, maps, relocations into RFC 9669 form, and bad files."""
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from gbpfd.errors import LoadError
from gbpfd.isa.abi import LIMITS
from gbpfd.isa.elf import list_programs, load_elf
from gbpfd.isa.insn import decode
from gbpfd.isa.program import MapDef
from gbpfd.isa.table import ROWS
from gbpfd.resources import shared_file

POLICIES = Path(shared_file("gbpfd", "policies"))
TENANT_CAP = POLICIES / "tenant_cap.o"
TOKEN_REFILL = POLICIES / "token_refill.o"
CLANG = shutil.which("clang-14") or shutil.which("clang")
LDDW_OPCODE = next(row.opcode for row in ROWS if row.op == "lddw")
SRC_MAP = next(row.rules["src"] for row in ROWS if row.op == "lddw_map")
SRC_MAP_VALUE = next(row.rules["src"] for row in ROWS if row.op == "lddw_map_value")
SRC_CALL_LOCAL = next(row.rules["src"] for row in ROWS if row.op == "call_local")


def compile_c(tmp_path: Path, source: str, *flags: str) -> Path:
    if not CLANG:
        pytest.skip("needs clang-14 or clang to compile C")
    src, obj = tmp_path / "p.bpf.c", tmp_path / "p.o"
    src.write_text(source)
    subprocess.run([CLANG, "-O2", "-target", "bpf", *flags, "-I", str(POLICIES), "-c", str(src), "-o", str(obj)],
                   check=True, capture_output=True)
    return obj


def map_loads(program) -> list[tuple[int, int, int, int]]:
    """(slot, src, map index, offset) of every map-referencing lddw."""
    return [(i, insn.src, insn.imm, program.insns[i + 1].imm) for i, insn in enumerate(program.insns)
            if insn.opcode == LDDW_OPCODE and insn.src in (SRC_MAP, SRC_MAP_VALUE)]


def assert_well_formed(program) -> None:
    """Every slot decodes, and each lddw's second slot is opcode 0 with only imm set."""
    i = 0
    while i < len(program.insns):
        row = decode(program.insns[i])
        if row.slots == 2:
            second = program.insns[i + 1]
            assert (second.opcode, second.dst, second.src, second.off) == (0, 0, 0, 0), i
        i += row.slots
    assert i == len(program.insns)
    assert len(program.lines) == len(program.insns)


def load_error(path, section=None) -> str:
    with pytest.raises(LoadError) as err:
        load_elf(path, section)
    message = str(err.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------ the committed policies

def test_tenant_cap_loads_with_its_maps():
    program = load_elf(TENANT_CAP)
    assert (program.hook, program.name, program.source) == ("cta_admit", "tenant_cap", str(TENANT_CAP))
    assert program.maps == (MapDef.of_kind("quota", "quota"), MapDef("admissions", "array", 8, 32))
    assert map_loads(program) == [(5, SRC_MAP, 0, 0), (20, SRC_MAP, 1, 0)]
    assert_well_formed(program)


def test_token_refill_turns_data_sections_into_one_entry_maps():
    program = load_elf(TOKEN_REFILL)
    assert (program.hook, program.name) == ("tick", "token_refill")
    assert program.maps == (
        MapDef(".data", "array", 8, 1, (1).to_bytes(4, "little") * 2),  # policy_version, last_grant
        MapDef(".rodata", "array", 8, 1, (100).to_bytes(4, "little") + (64).to_bytes(4, "little")),
        MapDef(".bss", "array", 8, 1, bytes(8)))
    # weight_scale (section symbol + 0), token_ceiling (section symbol + addend 4),
    # last_grant (variable symbol at 4), ticks
    assert map_loads(program) == [(17, SRC_MAP_VALUE, 1, 0), (20, SRC_MAP_VALUE, 1, 4),
                                  (36, SRC_MAP_VALUE, 0, 4), (39, SRC_MAP_VALUE, 2, 0)]
    assert_well_formed(program)


def test_list_programs_names_program_sections():
    assert list_programs(TENANT_CAP) == ["cta_admit"]
    assert list_programs(TOKEN_REFILL) == ["tick"]


@pytest.mark.parametrize("name", ["tenant_cap", "token_refill"])
def test_fresh_compile_matches_committed_object(tmp_path, name):
    source = (POLICIES / f"{name}.bpf.c").read_text()
    fresh = load_elf(compile_c(tmp_path, source, "-g"))
    committed = load_elf(POLICIES / f"{name}.o")
    assert (fresh.insns, fresh.maps, fresh.hook) == (committed.insns, committed.maps, committed.hook)


# ------------------------------------------------------------------ sections and calls

TWO_PROGRAMS = """#include "gbpfd.h"
SEC("tick") int a(struct gbpfd_tick_ctx *c) { return 0; }
SEC("gbpfd/cta_admit") int b(struct gbpfd_cta_admit_ctx *c) { return 1; }
"""


def test_several_program_sections_need_a_choice(tmp_path):
    obj = compile_c(tmp_path, TWO_PROGRAMS)
    assert list_programs(obj) == ["tick", "gbpfd/cta_admit"]
    assert load_error(obj) == f"{obj}: several program sections (tick, gbpfd/cta_admit): choose one"
    program = load_elf(obj, "gbpfd/cta_admit")
    assert (program.hook, program.name) == ("cta_admit", "b")
    assert load_error(obj, "dma_tick") == f"{obj}: no program section 'dma_tick' (found tick, gbpfd/cta_admit)"


CALLS = """#include "gbpfd.h"
static __attribute__((noinline, section("tick"))) int twice(int x) { return x * 2; }
static __attribute__((noinline, section("tick"))) int thrice(int x) { return x * 3; }
SEC("tick") int prog(struct gbpfd_tick_ctx *c)
{ c->cta_tokens = twice(c->tenant) + thrice(c->ntenants); return 0; }
"""


def test_calls_within_the_section_become_local_calls(tmp_path):
    obj = compile_c(tmp_path, CALLS)
    program = load_elf(obj, "tick")
    with open(obj, "rb") as fh:
        starts = {s.name: s["st_value"] // 8 for s in ELFFile(fh).get_section_by_name(".symtab").iter_symbols()
                  if s["st_info"]["type"] == "STT_FUNC"}
    targets = {i + insn.imm + 1 for i, insn in enumerate(program.insns)
               if decode(insn).op == "call_local" and insn.src == SRC_CALL_LOCAL}
    assert program.name == "prog" and starts["prog"] == 0
    assert targets == {starts["twice"], starts["thrice"]}
    assert_well_formed(program)


def test_the_program_must_be_the_one_global_function_and_come_first(tmp_path):
    two_globals = compile_c(tmp_path, CALLS.replace("static __attribute__((noinline, section(\"tick\"))) int thrice",
                                                    "__attribute__((noinline, section(\"tick\"))) int thrice"))
    assert load_error(two_globals) == (f"{two_globals}: section 'tick' must define exactly one global function, "
                                       f"the program (found thrice, prog); make its callees static")
    callee_first = compile_c(tmp_path, """#include "gbpfd.h"
static __attribute__((noinline, used, section("tick"))) int twice(int x) { return x * 2; }
SEC("tick") int prog(struct gbpfd_tick_ctx *c) { c->cta_tokens = twice(c->tenant); return 0; }
""")
    assert load_error(callee_first) == (f"{callee_first}: section 'tick': the program 'prog' must come first "
                                        f"in its section; define its callees after it")


def test_a_call_into_text_asks_for_always_inline(tmp_path):
    obj = compile_c(tmp_path, """#include "gbpfd.h"
static __attribute__((noinline)) int twice(int x) { return x * 2; }
SEC("tick") int prog(struct gbpfd_tick_ctx *c) { c->cta_tokens = twice(c->tenant); return 0; }
""")
    assert load_error(obj) == (f"{obj}: instruction 2: call into section '.text': only calls within the "
                               f"program's own section are supported; declare the callee static __always_inline")


# ------------------------------------------------------------------ maps refused

def map_source(kind: str, value: str, entries: str = "GBPFD_MAX_TENANTS") -> str:
    return f"""#include "gbpfd.h"
struct {{ __uint(type, {kind}); __uint(max_entries, {entries}); __type(value, {value}); }} m SEC(".maps");
SEC("tick") int prog(struct gbpfd_tick_ctx *c)
{{ __u32 k = 0; void *v = gbpfd_map_lookup_elem(&m, &k); return v ? 0 : 0; }}
"""


def test_unknown_map_kind(tmp_path):
    obj = compile_c(tmp_path, map_source("9", "__u64"), "-g")
    assert load_error(obj) == (f"{obj}: map 'm': unknown map type 9 (expected GBPFD_MAP_ARRAY = 1, "
                               f"GBPFD_MAP_QUOTA = 2, GBPFD_MAP_COUNTERS = 3)")


def test_quota_map_with_the_wrong_value_size(tmp_path):
    obj = compile_c(tmp_path, map_source("GBPFD_MAP_QUOTA", "__u64"), "-g")
    assert load_error(obj) == (f"{obj}: map 'm': a quota map has value_size 64 and max_entries 32, "
                               f"not 8 and 32")


def test_maps_without_btf(tmp_path):
    obj = compile_c(tmp_path, map_source("GBPFD_MAP_ARRAY", "__u64"))
    assert load_error(obj) == f"{obj}: the .maps section needs BTF to describe its maps: compile with -g"


def test_map_with_a_wide_key(tmp_path):
    source = map_source("GBPFD_MAP_ARRAY", "__u64").replace("__type(value", "__type(key, __u64); __type(value")
    obj = compile_c(tmp_path, source, "-g")
    assert load_error(obj) == f"{obj}: map 'm': key is 8 bytes; every gbpfd map is indexed by a 4-byte u32"


# ------------------------------------------------------------------ bad files

def write(tmp_path: Path, data: bytes, name: str = "bad.o") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_empty_and_random_files(tmp_path):
    empty = write(tmp_path, b"", "empty.o")
    noise = write(tmp_path, random.Random(7).randbytes(512), "noise.o")
    assert load_error(empty) == f"{empty}: not an ELF file"
    assert load_error(noise) == f"{noise}: not an ELF file"


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.o"
    assert load_error(missing) == f"{missing}: cannot read: No such file or directory"


E_SHOFF_AT = 0x28  # e_shoff in the ELF64 header


def test_truncated_object(tmp_path):
    data = TENANT_CAP.read_bytes()
    with open(TENANT_CAP, "rb") as fh:
        header = ELFFile(fh).header
    end = header["e_shoff"] + header["e_shnum"] * header["e_shentsize"]
    cut = write(tmp_path, data[:end - 1], "cut.o")
    assert load_error(cut) == (f"{cut}: truncated ELF object: section headers end at byte {end}, "
                               f"the file has {end - 1}")
    half = write(tmp_path, data[:len(data) // 2], "half.o")
    assert load_error(half) == (f"{half}: truncated or damaged ELF object: section headers start at byte "
                                f"{header['e_shoff']} ({header['e_shoff']:#x}), past the end of the file "
                                f"({len(data) // 2} bytes)")
    short = write(tmp_path, data[:40], "short.o")
    assert load_error(short) == f"{short}: truncated ELF header (40 bytes)"


SH_OFFSET, SH_SIZE = 24, 32  # in an Elf64_Shdr


def _section_header_at(name: str) -> int:
    with open(TENANT_CAP, "rb") as fh:
        elf = ELFFile(fh)
        return elf.header["e_shoff"] + elf.get_section_index(name) * elf.header["e_shentsize"]


def _tenant_cap_with(tmp_path, words: dict[int, int], tail: bytes = b"") -> tuple[Path, int]:
    """tenant_cap.o with the 8-byte words at the given byte offsets replaced (and ``tail`` appended)."""
    data = bytearray(TENANT_CAP.read_bytes())
    for at, value in words.items():
        data[at:at + 8] = value.to_bytes(8, "little", signed=value < 0)
    data += tail
    return write(tmp_path, bytes(data)), len(data)


@pytest.mark.parametrize("what, at, offset", [
    ("section headers start", lambda: E_SHOFF_AT, -64),
    ("section 'cta_admit' starts", lambda: _section_header_at("cta_admit") + SH_OFFSET, -8),
])
def test_a_negative_offset_is_named_as_it_is(tmp_path, what, at, offset):
    # a small negative offset read as unsigned: offset + length is past 2**64, a byte no file has
    obj, size = _tenant_cap_with(tmp_path, {at(): offset})
    assert load_error(obj) == (f"{obj}: truncated or damaged ELF object: {what} at byte {2 ** 64 + offset} "
                               f"({2 ** 64 + offset:#x}), past the end of the file ({size} bytes)")


def test_a_program_section_past_the_slot_limit_is_refused_before_decoding(tmp_path):
    header_at = _section_header_at("cta_admit")
    slots = LIMITS.max_insns + 1
    end = TENANT_CAP.stat().st_size
    obj, _ = _tenant_cap_with(tmp_path, {header_at + SH_OFFSET: end, header_at + SH_SIZE: slots * 8},
                              tail=bytes(slots * 8))
    assert load_error(obj) == (f"{obj}: section 'cta_admit' has {slots} slots, more than the "
                               f"{LIMITS.max_insns} a program may have")


def test_host_executable():
    host = str(Path(sys.executable).resolve())  # an ELF for the host machine wherever tests run
    header = Path(host).read_bytes()[:20]
    if header[:6] != b"\x7fELF\x02\x01":
        pytest.skip(f"{host} is not a 64-bit little-endian ELF file")
    machine = int.from_bytes(header[18:20], "little")
    assert load_error(host) == f"{host}: ELF machine {machine} is not BPF (247): build with clang -target bpf"


def test_32_bit_and_big_endian_objects(tmp_path):
    data = bytearray(TENANT_CAP.read_bytes())
    data[4] = 1
    elf32 = write(tmp_path, bytes(data), "elf32.o")
    data[4], data[5] = 2, 2
    big = write(tmp_path, bytes(data), "big.o")
    assert load_error(elf32) == f"{elf32}: not a 64-bit ELF object (BPF objects are ELF64)"
    assert load_error(big) == f"{big}: not a little-endian ELF object (build with -target bpf or bpfel)"


def test_no_program_section(tmp_path):
    # renaming the section (and its relocation section, which shares the string) hides the program
    data = TENANT_CAP.read_bytes().replace(b"cta_admit\0", b"xta_admit\0")
    obj = write(tmp_path, data)
    assert load_error(obj) == (f"{obj}: no program section: name one after a hook, SEC(\"<hook>\") with one of "
                               f"tick, cta_admit, dma_tick, warp_throttle_tick, therm_tick, sm_tick; "
                               f"code sections found: xta_admit")


def test_unsupported_relocation_kind(tmp_path):
    data = bytearray(TENANT_CAP.read_bytes())
    with open(TENANT_CAP, "rb") as fh:
        rel = ELFFile(fh).get_section_by_name(".relcta_admit")["sh_offset"]
    data[rel + 8] = 3  # r_info type of the first relocation: R_BPF_64_ABS32
    obj = write(tmp_path, bytes(data))
    assert load_error(obj) == f"{obj}: instruction 5: unsupported relocation R_BPF_64_ABS32 against 'quota' (opcode 0x18)"


def test_lddw_of_a_function_address_is_refused(tmp_path):
    obj = compile_c(tmp_path, """#include "gbpfd.h"
SEC("tick") int prog(struct gbpfd_tick_ctx *c) { c->cta_tokens = (__u32)(unsigned long)&prog; return 0; }
""")
    assert load_error(obj) == (f"{obj}: instruction 0: lddw of 'prog' in tick, which is neither a map in .maps "
                               f"nor a .data/.rodata/.bss section")


@pytest.mark.parametrize("seed", range(4))
def test_damaged_objects_load_or_fail_in_one_line(tmp_path, seed):
    """Random damage never escapes as anything but a one-line LoadError."""
    rng = random.Random(seed)
    original = (TENANT_CAP if seed % 2 else TOKEN_REFILL).read_bytes()
    for n in range(40):
        data = bytearray(original)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path = write(tmp_path, bytes(data[:rng.randrange(len(data))] if n % 4 == 0 else data))
        try:
            load_elf(path)
        except LoadError as err:
            assert "\n" not in str(err) and str(err).startswith(f"{path}: ")


def test_string_literals_land_in_a_rodata_subsection_map(tmp_path):
    obj = compile_c(tmp_path, """#include "gbpfd.h"
SEC("tick") int prog(struct gbpfd_tick_ctx *c) { c->cta_tokens = "gbpfd"[c->tenant & 3]; return 0; }
""")
    program = load_elf(obj)
    assert program.maps == (MapDef(".rodata.str1.1", "array", 6, 1, b"gbpfd\0"),)
    assert map_loads(program) == [(2, SRC_MAP_VALUE, 0, 0)]


def test_a_huge_bss_is_a_damaged_header(tmp_path):
    data = bytearray(TOKEN_REFILL.read_bytes())
    with open(TOKEN_REFILL, "rb") as fh:
        elf = ELFFile(fh)
        index = elf.get_section_index(".bss")
        size_at = elf.header["e_shoff"] + index * elf.header["e_shentsize"] + 32  # sh_size in Elf64_Shdr
    data[size_at:size_at + 8] = (1 << 40).to_bytes(8, "little")
    obj = write(tmp_path, bytes(data))
    assert load_error(obj) == f"{obj}: section '.bss' is {1 << 40} bytes, more than the 16777216 a data section may hold"
