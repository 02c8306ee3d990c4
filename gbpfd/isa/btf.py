"""A small reader for the ``.BTF`` section of a clang BPF object.

pyelftools has no BTF parser, and map definitions in a clang object live
only in BTF (the ``.maps`` section holds zeros).  Every type record is
parsed, so ids and offsets stay right, but only what map definitions need
is interpreted: sizes, pointers, arrays, struct members, DATASEC entries.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from gbpfd.errors import LoadError

BTF_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type/str off+len
HEADER_BYTES = _HEADER.size  # the least hdr_len of .BTF and .BTF.ext alike
_TYPE = struct.Struct("<III")  # name_off, info, size or type
_MEMBER = struct.Struct("<III")  # struct/union member, array, datasec entry, enum64 value
_PAIR = struct.Struct("<II")  # enum value, func_proto parameter
_WORD = struct.Struct("<I")  # int encoding, var linkage, decl_tag component

# kind id -> (name, bytes of trailing data: fixed, per vlen entry)
KINDS = {
    1: ("INT", _WORD.size, 0), 2: ("PTR", 0, 0), 3: ("ARRAY", _MEMBER.size, 0),
    4: ("STRUCT", 0, _MEMBER.size), 5: ("UNION", 0, _MEMBER.size), 6: ("ENUM", 0, _PAIR.size),
    7: ("FWD", 0, 0), 8: ("TYPEDEF", 0, 0), 9: ("VOLATILE", 0, 0), 10: ("CONST", 0, 0),
    11: ("RESTRICT", 0, 0), 12: ("FUNC", 0, 0), 13: ("FUNC_PROTO", 0, _PAIR.size),
    14: ("VAR", _WORD.size, 0), 15: ("DATASEC", 0, _MEMBER.size), 16: ("FLOAT", 0, 0),
    17: ("DECL_TAG", _WORD.size, 0), 18: ("TYPE_TAG", 0, 0), 19: ("ENUM64", 0, _MEMBER.size),
}
_SIZED = {"INT", "STRUCT", "UNION", "ENUM", "DATASEC", "FLOAT", "ENUM64"}  # size_or_type is a size
_MODIFIERS = {"TYPEDEF", "VOLATILE", "CONST", "RESTRICT", "TYPE_TAG"}
POINTER_SIZE = 8
TYPE_FIELDS = ("key", "value")  # map fields declared with __type; the rest use __uint


@dataclass(frozen=True)
class BtfType:
    """One type record.  ``ref`` is size_or_type; ``entries`` are the
    (a, b, c) triples of ARRAY (elem, index, nelems), STRUCT/UNION members
    (name, type, bit offset) and DATASEC entries (type, offset, size)."""

    kind: str
    name: str
    ref: int
    entries: tuple[tuple, ...]
    offset: int  # of the record in the type section, for error messages


@dataclass(frozen=True)
class MapSpec:
    """A map definition from ``.maps``: its attributes as numbers, decoded
    by the libbpf convention: ``__uint(name, n)`` is ``int (*name)[n]``;
    ``__type(key or value, T)`` is ``T *name`` and stands for sizeof(T)."""

    name: str
    attrs: dict


class Btf:
    def __init__(self, types: list[BtfType | None]):
        self.types = types  # index = type id; 0 is void

    def get(self, type_id: int) -> BtfType:
        if not 0 < type_id < len(self.types):
            raise LoadError(f"BTF: type id {type_id} out of range (1..{len(self.types) - 1})")
        return self.types[type_id]

    def strip(self, type_id: int) -> BtfType:
        """The type behind typedefs and qualifiers."""
        t = self.get(type_id)
        for _ in range(len(self.types)):
            if t.kind not in _MODIFIERS:
                return t
            t = self.get(t.ref)
        raise LoadError(f"BTF: type record at offset {t.offset}: cycle of typedefs or qualifiers")

    def size_of(self, type_id: int) -> int:
        # a loop, not recursion: a crafted ARRAY may be its own element type
        count = 1
        t = self.strip(type_id)
        for _ in range(len(self.types)):
            if t.kind in _SIZED:
                return t.ref * count
            if t.kind == "PTR":
                return POINTER_SIZE * count
            if t.kind != "ARRAY":
                raise LoadError(f"BTF: type record at offset {t.offset} ({t.kind}) has no size")
            elem, _, nelems = t.entries[0]
            count *= nelems
            t = self.strip(elem)
        raise LoadError(f"BTF: type record at offset {t.offset}: cycle of array element types")

    def datasec(self, name: str) -> BtfType | None:
        return next((t for t in self.types[1:] if t.kind == "DATASEC" and t.name == name), None)

    def map_specs(self) -> list[MapSpec]:
        """The maps declared in ``.maps``, in declaration order (clang
        leaves the DATASEC offsets at 0 for the linker to fill in)."""
        sec = self.datasec(".maps")
        if sec is None:
            return []
        specs = []
        for var_id, _, _ in sec.entries:
            var = self.get(var_id)
            if var.kind != "VAR":
                raise LoadError(f"BTF: .maps entry at offset {var.offset} is a {var.kind}, not a VAR")
            specs.append(MapSpec(var.name, self._map_attrs(var)))
        return specs

    def _map_attrs(self, var: BtfType) -> dict:
        body = self.strip(var.ref)
        if body.kind == "PTR":
            body = self.strip(body.ref)
        if body.kind != "STRUCT":
            raise LoadError(f"BTF: map {var.name!r} is a {body.kind}, not a struct of __uint/__type fields")
        attrs = {}
        for name, member_type, _ in body.entries:
            ptr = self.strip(member_type)
            if ptr.kind != "PTR":
                raise LoadError(f"BTF: map {var.name!r} field {name!r} is a {ptr.kind}, "
                                f"not a __uint or __type pointer")
            if name in TYPE_FIELDS:
                attrs[name] = self.size_of(ptr.ref)
                continue
            target = self.strip(ptr.ref)
            if target.kind != "ARRAY":
                raise LoadError(f"BTF: map {var.name!r} field {name!r} points to a {target.kind}, "
                                f"not the array of a __uint")
            attrs[name] = target.entries[0][2]
        return attrs


def parse_btf(data: bytes) -> Btf:
    """Parse a whole ``.BTF`` section; a LoadError names the bad offset."""
    types_start, types_end, strings = _sections(data)
    return Btf(_parse_types(data[types_start:types_end], strings, types_start))


def btf_strings(data: bytes) -> bytes:
    """The string section of a ``.BTF`` section (what ``.BTF.ext`` records point into)."""
    return _sections(data)[2]


def btf_string(strings: bytes, off: int, what: str) -> str:
    """The NUL-terminated string at ``off``; a LoadError names ``what`` pointed there."""
    end = strings.find(b"\0", off)
    if off >= len(strings) or end < 0:
        raise LoadError(f"BTF: {what}: name offset {off} outside the string section")
    return strings[off:end].decode("utf-8", "replace")


def btf_header(data: bytes, what: str) -> tuple[int, int, int, int, int]:
    """The header ``.BTF`` and ``.BTF.ext`` share (magic, version, flags,
    then five u32s): the header length and the two (offset, length) pairs
    that follow it, checked; a LoadError names ``what`` and the offset."""
    if len(data) < _HEADER.size:
        raise LoadError(f"{what}: header truncated ({len(data)} bytes)")
    magic, version, _, hdr_len, off1, len1, off2, len2 = _HEADER.unpack_from(data)
    if magic != BTF_MAGIC:
        raise LoadError(f"{what}: bad magic {magic:#06x} at offset 0 (expected {BTF_MAGIC:#06x}, little-endian)")
    if version != 1:
        raise LoadError(f"{what}: unsupported version {version} at offset 2")
    return hdr_len, off1, len1, off2, len2


def _sections(data: bytes) -> tuple[int, int, bytes]:
    """Where the type records start and end, and the string section."""
    hdr_len, type_off, type_len, str_off, str_len = btf_header(data, "BTF")
    types_start, strings_start = hdr_len + type_off, hdr_len + str_off
    if hdr_len < _HEADER.size or types_start + type_len > len(data) or strings_start + str_len > len(data):
        raise LoadError(f"BTF: type or string section runs past the end ({len(data)} bytes)")
    return types_start, types_start + type_len, data[strings_start:strings_start + str_len]


def _string(strings: bytes, off: int, where: int) -> str:
    return btf_string(strings, off, f"type record at offset {where}")


def _parse_types(section: bytes, strings: bytes, base: int) -> list[BtfType | None]:
    types: list[BtfType | None] = [None]
    pos = 0
    while pos < len(section):
        where = base + pos
        if pos + _TYPE.size > len(section):
            raise LoadError(f"BTF: type record at offset {where} truncated")
        name_off, info, ref = _TYPE.unpack_from(section, pos)
        kind_id, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind_id not in KINDS:
            raise LoadError(f"BTF: type record at offset {where} has unknown kind {kind_id}")
        kind, fixed, per_entry = KINDS[kind_id]
        body = pos + _TYPE.size
        end = body + fixed + vlen * per_entry
        if end > len(section):
            raise LoadError(f"BTF: type record at offset {where} ({kind}) runs past the type section")
        entries = _entries(kind, section, body, vlen, strings, where)
        types.append(BtfType(kind, _string(strings, name_off, where), ref, entries, where))
        pos = end
    return types


def _entries(kind: str, section: bytes, body: int, vlen: int, strings: bytes, where: int) -> tuple:
    if kind == "ARRAY":
        return (_MEMBER.unpack_from(section, body),)
    if kind in ("STRUCT", "UNION"):
        members = (_MEMBER.unpack_from(section, body + i * _MEMBER.size) for i in range(vlen))
        return tuple((_string(strings, n, where), t, off) for n, t, off in members)
    if kind == "DATASEC":
        return tuple(_MEMBER.unpack_from(section, body + i * _MEMBER.size) for i in range(vlen))
    return ()
