"""Source lines of a C policy from its object's ``.BTF.ext`` line info, and
the verifier naming the line of C a rejected instruction came from."""
from __future__ import annotations

import struct

import pytest

from gbpfd.errors import LoadError
from gbpfd.isa.asm import assemble
from gbpfd.isa.btf import BTF_MAGIC
from gbpfd.isa.btf_lines import SourceLine, line_records, lines_per_slot
from gbpfd.isa.load import load_program
from gbpfd.policies.catalog import policy_path
from gbpfd.verifier import verify

EXT_HEADER = 32  # as clang writes it: the core-relocation offset and length follow the line info's


def strings_and_offsets(*texts: str) -> tuple[bytes, list[int]]:
    blob, offsets = b"\0", []
    for text in texts:
        offsets.append(len(blob))
        blob += text.encode() + b"\0"
    return blob, offsets


def header(magic: int, line_len: int) -> bytes:
    return struct.pack("<HBBIIIIIII", magic, 1, 0, EXT_HEADER, 0, 0, 0, line_len, 0, 0)


def btf_ext(line_info: bytes) -> bytes:
    return header(BTF_MAGIC, len(line_info)) + line_info


def line_info(section_off: int, records: list[tuple[int, int, int, int, int]], size: int = 16) -> bytes:
    """``records``: (insn byte offset, file offset, text offset, line, column)."""
    body = b"".join(struct.pack("<IIII", insn, file, text, line << 10 | col).ljust(size, b"\0")
                    for insn, file, text, line, col in records)
    return struct.pack("<I", size) + struct.pack("<II", section_off, len(records)) + body


def test_the_records_give_each_slot_the_line_it_came_from():
    strings, (sec, file, first, second) = strings_and_offsets("tick", "p.bpf.c", "int x = 1;", "return x;")
    ext = btf_ext(line_info(sec, [(0, file, first, 3, 2), (16, file, second, 4, 9)]))
    records = line_records(ext, strings)
    assert records == {"tick": [(0, SourceLine("p.bpf.c", 3, 2, "int x = 1;")),
                                (2, SourceLine("p.bpf.c", 4, 9, "return x;"))]}
    assert [None if s is None else s.line for s in lines_per_slot(records["tick"], 4)] == [3, 3, 4, 4]
    assert str(records["tick"][1][1]) == "p.bpf.c:4: return x;"


def test_a_longer_record_size_is_stepped_over():
    strings, (sec, file, text) = strings_and_offsets("tick", "p.bpf.c", "x;")
    ext = btf_ext(line_info(sec, [(0, file, text, 1, 0), (8, file, text, 2, 0)], size=24))
    assert [i for i, _ in line_records(ext, strings)["tick"]] == [0, 1]


@pytest.mark.parametrize("ext, message", [
    (b"\x9f\xeb", "BTF.ext: header truncated (2 bytes)"),
    (header(0x1234, 0), "BTF.ext: bad magic 0x1234 at offset 0"),
    (header(BTF_MAGIC, 40),
     "BTF.ext: line info (40 bytes at offset 32) runs past the end (32 bytes)"),
    (btf_ext(struct.pack("<I", 16) + struct.pack("<II", 1, 3)),
     "BTF.ext: 3 line records of section 'tick' at offset 44 run past the line info's end (offset 44)"),
    (btf_ext(struct.pack("<I", 16) + struct.pack("<II", 99, 0)),
     "BTF: BTF.ext line info at offset 36: name offset 99 outside the string section"),
])
def test_bad_line_info_is_refused_naming_the_offset(ext, message):
    strings, _ = strings_and_offsets("tick")
    with pytest.raises(LoadError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        line_records(ext, strings)


def test_the_shipped_baseline_object_carries_its_lines_of_c():
    program = load_program(policy_path("baseline.o"), section="cta_admit")
    assert len(program.source_lines) == len(program.insns) and None not in program.source_lines
    source = policy_path("baseline.bpf.c").read_text().splitlines()
    for line in set(program.source_lines):
        assert line.file.endswith("baseline.bpf.c")
        assert line.text.strip() in ("", source[line.line - 1].strip())  # clang leaves some lines' text out


def test_a_rejection_names_the_line_of_c_after_the_instruction():
    program = assemble(".hook cta_admit\nldxw %r2, [%r1+0]\nldxdw %r0, [%r2+0]\nexit\n")
    lines = (SourceLine("p.bpf.c", 7, 2, "__u32 t = ctx->tenant;"), SourceLine("p.bpf.c", 8, 9, "return *p;"),
             SourceLine("p.bpf.c", 8, 2, "return *p;"))
    verdict = verify(type(program)(**{**program.__dict__, "source_lines": lines}))
    assert not verdict.accepted
    assert verdict.log[0].startswith("1: (79) ldxdw %r0, [%r2]: R2 is scalar")
    assert verdict.log[1] == "    at p.bpf.c:8: return *p;"
    assert verify(program).log[1] != verdict.log[1]  # an assembled program has no line of C to show
