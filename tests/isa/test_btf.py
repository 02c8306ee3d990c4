"""The BTF reader: every record kind parses, sizes resolve, map specs decode, bad input is named."""
import struct

import pytest
from elftools.elf.elffile import ELFFile

from gbpfd.errors import LoadError
from gbpfd.isa.btf import KINDS, MapSpec, parse_btf
from gbpfd.isa.elf import load_elf
from gbpfd.resources import shared_file

KIND_ID = {name: kind_id for kind_id, (name, _, _) in KINDS.items()}
HEADER_LEN = 24


class BtfBuilder:
    """Writes raw BTF so tests can hand the reader exactly the records they mean."""

    def __init__(self):
        self.strings = b"\0"
        self.records: list[bytes] = []

    def name(self, text: str) -> int:
        if not text:
            return 0
        off = len(self.strings)
        self.strings += text.encode() + b"\0"
        return off

    def add(self, kind: str, name: str = "", ref: int = 0, vlen: int = 0, tail: bytes = b"") -> int:
        info = (KIND_ID[kind] << 24) | vlen
        self.records.append(struct.pack("<III", self.name(name), info, ref) + tail)
        return len(self.records)  # the new type's id

    def struct(self, name: str, size: int, members: list[tuple[str, int]]) -> int:
        tail = b"".join(struct.pack("<III", self.name(m), t, 0) for m, t in members)
        return self.add("STRUCT", name, size, len(members), tail)

    def array(self, elem: int, nelems: int) -> int:
        return self.add("ARRAY", tail=struct.pack("<III", elem, elem, nelems))

    def build(self, magic: int = 0xEB9F) -> bytes:
        types = b"".join(self.records)
        header = struct.pack("<HBBIIIII", magic, 1, 0, HEADER_LEN, 0, len(types), len(types), len(self.strings))
        return header + types + self.strings


def test_every_kind_parses_and_keeps_later_ids_right():
    b = BtfBuilder()
    u32 = b.add("INT", "u32", 4, tail=struct.pack("<I", 32))
    ptr = b.add("PTR", ref=u32)
    arr = b.array(u32, 3)
    st = b.struct("s", 8, [("a", u32), ("b", u32)])
    b.add("UNION", "u", 4, 1, struct.pack("<III", b.name("x"), u32, 0))
    b.add("ENUM", "e", 4, 2, struct.pack("<IiIi", b.name("A"), 0, b.name("B"), 1))
    b.add("FWD", "f")
    td = b.add("TYPEDEF", "t", u32)
    vol = b.add("VOLATILE", ref=td)
    const = b.add("CONST", ref=vol)
    b.add("RESTRICT", ref=ptr)
    proto = b.add("FUNC_PROTO", ref=u32, vlen=1, tail=struct.pack("<II", 0, u32))
    b.add("FUNC", "fn", proto)
    var = b.add("VAR", "v", st, tail=struct.pack("<I", 1))
    b.add("DATASEC", ".data", 8, 1, struct.pack("<III", var, 0, 8))
    b.add("FLOAT", "float", 4)
    b.add("DECL_TAG", "tag", st, tail=struct.pack("<i", -1))
    b.add("TYPE_TAG", "tt", u32)
    last = b.add("ENUM64", "e64", 8, 1, struct.pack("<III", b.name("C"), 1, 2))
    btf = parse_btf(b.build())
    assert sorted(t.kind for t in btf.types[1:]) == sorted(name for name, _, _ in KINDS.values())
    assert btf.get(last).name == "e64"
    assert btf.size_of(arr) == 12 and btf.size_of(st) == 8 and btf.size_of(ptr) == 8
    assert btf.size_of(const) == 4  # through CONST -> VOLATILE -> TYPEDEF
    assert btf.datasec(".data").entries == ((var, 0, 8),)


def test_map_specs_decode_the_libbpf_convention():
    b = BtfBuilder()
    i32 = b.add("INT", "int", 4, tail=struct.pack("<I", 32))
    value = b.struct("rec", 24, [])
    fields = [("type", b.add("PTR", ref=b.array(i32, 2))),
              ("max_entries", b.add("PTR", ref=b.array(i32, 32))),
              ("value", b.add("PTR", ref=b.add("CONST", ref=value)))]
    var = b.add("VAR", "m", b.struct("", 24, fields), tail=struct.pack("<I", 1))
    b.add("DATASEC", ".maps", 24, 1, struct.pack("<III", var, 0, 24))
    assert parse_btf(b.build()).map_specs() == [MapSpec("m", {"type": 2, "max_entries": 32, "value": 24})]


def test_a_uint_field_that_is_not_an_array_pointer_is_refused():
    b = BtfBuilder()
    i32 = b.add("INT", "int", 4, tail=struct.pack("<I", 32))
    var = b.add("VAR", "m", b.struct("", 8, [("type", b.add("PTR", ref=i32))]), tail=struct.pack("<I", 1))
    b.add("DATASEC", ".maps", 8, 1, struct.pack("<III", var, 0, 8))
    with pytest.raises(LoadError) as err:
        parse_btf(b.build()).map_specs()
    assert str(err.value) == "BTF: map 'm' field 'type' points to a INT, not the array of a __uint"


def test_committed_object_btf_describes_its_maps():
    with open(shared_file("gbpfd", "policies", "tenant_cap.o"), "rb") as fh:
        btf = parse_btf(ELFFile(fh).get_section_by_name(".BTF").data())
    assert btf.map_specs() == [MapSpec("quota", {"type": 2, "max_entries": 32, "value": 64}),
                               MapSpec("admissions", {"type": 1, "max_entries": 32, "value": 8})]
    assert load_elf(shared_file("gbpfd", "policies", "tenant_cap.o")).maps[0].value_size == 64


def _one_int() -> BtfBuilder:
    b = BtfBuilder()
    b.add("INT", "int", 4, tail=struct.pack("<I", 32))
    return b


@pytest.mark.parametrize("data, message", [
    (b"\x9f\xeb", "BTF: header truncated (2 bytes)"),
    (_one_int().build(magic=0x9FEB), "BTF: bad magic 0x9feb at offset 0 (expected 0xeb9f, little-endian)"),
    (_one_int().build()[:30], "BTF: type or string section runs past the end (30 bytes)"),
])
def test_bad_headers_are_named(data, message):
    with pytest.raises(LoadError) as err:
        parse_btf(data)
    assert str(err.value) == message


def test_unknown_kind_names_the_record_offset():
    b = _one_int()
    b.records.append(struct.pack("<III", 0, 31 << 24, 0))
    with pytest.raises(LoadError) as err:
        parse_btf(b.build())
    assert str(err.value) == "BTF: type record at offset 40 has unknown kind 31"


def test_record_running_past_the_type_section_is_named():
    b = _one_int()
    b.records.append(struct.pack("<III", 0, (KIND_ID["STRUCT"] << 24) | 5, 8))
    with pytest.raises(LoadError) as err:
        parse_btf(b.build())
    assert str(err.value) == "BTF: type record at offset 40 (STRUCT) runs past the type section"


def test_name_outside_the_string_section_is_named():
    b = BtfBuilder()
    b.records.append(struct.pack("<III", 999, KIND_ID["PTR"] << 24, 0))
    with pytest.raises(LoadError) as err:
        parse_btf(b.build())
    assert str(err.value) == "BTF: type record at offset 24: name offset 999 outside the string section"


def test_typedef_cycle_and_bad_ids_are_refused():
    b = BtfBuilder()
    b.add("TYPEDEF", "a", 2)
    b.add("TYPEDEF", "b", 1)
    btf = parse_btf(b.build())
    with pytest.raises(LoadError, match="cycle of typedefs or qualifiers"):
        btf.size_of(1)
    with pytest.raises(LoadError) as err:
        btf.get(7)
    assert str(err.value) == "BTF: type id 7 out of range (1..2)"


def test_array_of_itself_is_refused_not_recursed():
    b = BtfBuilder()
    b.array(1, 4)  # type 1: an array whose element type is type 1
    b.add("TYPEDEF", "t", 3)
    b.array(2, 2)  # type 3: array of typedef of itself
    btf = parse_btf(b.build())
    for type_id, offset in ((1, 24), (2, 60)):
        with pytest.raises(LoadError) as err:
            btf.size_of(type_id)
        assert str(err.value) == f"BTF: type record at offset {offset}: cycle of array element types"


def test_nested_arrays_multiply_their_counts():
    b = BtfBuilder()
    u32 = b.add("INT", "u32", 4, tail=struct.pack("<I", 32))
    outer = b.array(b.array(u32, 3), 5)
    assert parse_btf(b.build()).size_of(outer) == 60
