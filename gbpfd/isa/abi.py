"""The policy ABI (hooks, context layouts, helpers, maps), loaded from ``isa/abi.toml``."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from types import MappingProxyType

from gbpfd.resources import shared_file


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int
    doc: str
    access: str = "r"  # "r" or "rw"; record fields are read-only to programs


@dataclass(frozen=True)
class Record:
    name: str
    size: int
    doc: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Hook:
    name: str
    doc: str
    ret: tuple[int, int]
    ret_doc: str
    budget: int
    helpers: frozenset[int]
    ctx: tuple[Field, ...]

    @property
    def ctx_size(self) -> int:
        return max(f.offset + f.size for f in self.ctx)

    def ctx_field(self, offset: int, size: int) -> Field | None:
        for field in self.ctx:
            if field.offset == offset and field.size == size:
                return field
        return None

    def ctx_read_field(self, offset: int, size: int) -> Field | None:
        """The field a load of ``size`` bytes at ``offset`` reads: the whole
        field, or an aligned part of it (clang narrows loads of 8-byte fields)."""
        for field in self.ctx:
            inside = field.offset <= offset and offset + size <= field.offset + field.size
            if inside and (offset - field.offset) % size == 0:
                return field
        return None


@dataclass(frozen=True)
class Helper:
    id: int
    name: str
    args: tuple[str, ...]
    ret: str
    doc: str


@dataclass(frozen=True)
class MapKind:
    name: str
    id: int
    doc: str
    access: str
    record: Record | None


@dataclass(frozen=True)
class Limits:
    stack_bytes: int
    max_call_depth: int
    max_maps: int
    max_map_bytes: int
    max_insns: int
    max_tenants: int
    max_sms: int


def _fields(specs: list[dict]) -> tuple[Field, ...]:
    return tuple(Field(s["name"], s["offset"], s["size"], s["doc"], s.get("access", "r")) for s in specs)


with open(shared_file("isa", "abi.toml"), "rb") as _fh:
    _DATA = tomllib.load(_fh)

LIMITS = Limits(**_DATA["limits"])
RECORDS = MappingProxyType({name: Record(name, r["size"], r["doc"], _fields(r["fields"]))
                            for name, r in _DATA["records"].items()})
MAP_KINDS = MappingProxyType({name: MapKind(name, k["id"], k["doc"], k["access"],
                                            RECORDS[k["record"]] if "record" in k else None)
                              for name, k in _DATA["map_kinds"].items()})
HELPERS = MappingProxyType({h["id"]: Helper(h["id"], h["name"], tuple(h["args"]), h["ret"], h["doc"])
                            for h in _DATA["helpers"]})
HELPER_BY_NAME = MappingProxyType({h.name: h for h in HELPERS.values()})
HOOKS = MappingProxyType({
    name: Hook(name, h["doc"], tuple(h["ret"]), h["ret_doc"], h["budget"],
               frozenset(HELPER_BY_NAME[n].id for n in h["helpers"]), _fields(h["ctx"]))
    for name, h in _DATA["hooks"].items()})


def own_map_bytes(maps) -> int:
    """Bytes a program's maps take in its own memory, each rounded up to 8 as
    the plane lays them out; quota and counters maps alias shared regions."""
    return sum((m.value_size * m.max_entries + 7) // 8 * 8 for m in maps if MAP_KINDS[m.kind].record is None)
