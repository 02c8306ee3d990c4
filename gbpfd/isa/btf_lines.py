"""The source lines of a clang BPF object: the line records of its
``.BTF.ext`` section (``clang -g``), so that a verifier error on a C policy
can name the line of C it came from.

``.BTF.ext`` starts with a header (magic, version, flags, its length, then
offset and length of the function-info and line-info parts, relative to
the header's end).  The line-info part is a record size, then per program
section: the section's name (an offset into ``.BTF``'s strings), a count,
and that many records of (byte offset of the instruction in the section,
file name, source line text, line << 10 | column), the strings again
offsets into ``.BTF``'s string section.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from gbpfd.errors import LoadError
from gbpfd.isa.btf import HEADER_BYTES, btf_header, btf_string

_WORD = struct.Struct("<I")
_SECTION = struct.Struct("<II")       # section name offset, records
_LINE = struct.Struct("<IIII")        # insn byte offset, file name, line text, line << 10 | column
INSN_BYTES = 8


@dataclass(frozen=True)
class SourceLine:
    file: str
    line: int
    column: int
    text: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text.strip()}"


def line_records(btf_ext: bytes, strings: bytes) -> dict[str, list[tuple[int, SourceLine]]]:
    """Per program section name: (instruction index, its source line), in
    the object's order; a LoadError names the bad offset."""
    hdr_len, _, _, line_off, line_len = btf_header(btf_ext, "BTF.ext")  # function info, then line info
    start = hdr_len + line_off
    if hdr_len < HEADER_BYTES or start + line_len > len(btf_ext):
        raise LoadError(f"BTF.ext: line info ({line_len} bytes at offset {start}) runs past the end "
                        f"({len(btf_ext)} bytes)")
    return _sections(btf_ext[start:start + line_len], start, strings) if line_len else {}


def _sections(part: bytes, base: int, strings: bytes) -> dict[str, list[tuple[int, SourceLine]]]:
    if len(part) < _WORD.size:
        raise LoadError(f"BTF.ext: line info at offset {base} has no record size")
    (size,) = _WORD.unpack_from(part)
    if size < _LINE.size:
        raise LoadError(f"BTF.ext: line record size {size} at offset {base} is under {_LINE.size}")
    out: dict[str, list[tuple[int, SourceLine]]] = {}
    pos = _WORD.size
    while pos < len(part):
        if pos + _SECTION.size > len(part):
            raise LoadError(f"BTF.ext: line info section header at offset {base + pos} truncated")
        name_off, count = _SECTION.unpack_from(part, pos)
        name = btf_string(strings, name_off, f"BTF.ext line info at offset {base + pos}")
        pos += _SECTION.size
        if pos + count * size > len(part):
            raise LoadError(f"BTF.ext: {count} line records of section {name!r} at offset {base + pos} run past "
                            f"the line info's end (offset {base + len(part)})")
        out[name] = [_record(part, pos + k * size, base, strings) for k in range(count)]
        pos += count * size
    return out


def _record(part: bytes, pos: int, base: int, strings: bytes) -> tuple[int, SourceLine]:
    insn_off, file_off, text_off, line_col = _LINE.unpack_from(part, pos)
    where = f"BTF.ext line record at offset {base + pos}"
    return insn_off // INSN_BYTES, SourceLine(btf_string(strings, file_off, where), line_col >> 10,
                                               line_col & 0x3FF, btf_string(strings, text_off, where))


def lines_per_slot(records: list[tuple[int, SourceLine]], nslots: int) -> tuple[SourceLine | None, ...]:
    """Each slot's source line: that of the last record at or before it (a
    line's code runs until the next record); None before the first."""
    out: list[SourceLine | None] = [None] * nslots
    records = sorted(records, key=lambda record: record[0])
    for (index, line), (next_index, _) in zip(records, [*records[1:], (nslots, None)]):
        for slot in range(max(index, 0), min(next_index, nslots)):
            out[slot] = line
    return tuple(out)
