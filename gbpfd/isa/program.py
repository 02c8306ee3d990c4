"""A loaded (not yet verified) program: its slots, its maps and where it came from."""
from __future__ import annotations

from dataclasses import dataclass, field

from gbpfd.isa.abi import MAP_KINDS, LIMITS
from gbpfd.isa.btf_lines import SourceLine
from gbpfd.isa.insn import Insn, encode_program

ARRAY_KEY_SIZE = 4  # every map is an array indexed by a u32


@dataclass(frozen=True)
class MapDef:
    """A map the program declares; quota and counters maps have fixed layouts."""

    name: str
    kind: str  # a key of abi.MAP_KINDS
    value_size: int
    max_entries: int
    initial: bytes | None = None  # initial contents of the whole map (.data/.rodata)

    def __post_init__(self):
        if self.kind not in MAP_KINDS:
            raise ValueError(f"map {self.name!r}: unknown kind {self.kind!r} "
                             f"(expected one of {', '.join(MAP_KINDS)})")
        record = MAP_KINDS[self.kind].record
        if record is not None:
            if self.value_size != record.size or self.max_entries != LIMITS.max_tenants:
                raise ValueError(f"map {self.name!r}: a {self.kind} map has value_size {record.size} "
                                 f"and max_entries {LIMITS.max_tenants}, not {self.value_size} "
                                 f"and {self.max_entries}")
        if self.value_size <= 0 or self.max_entries <= 0:
            raise ValueError(f"map {self.name!r}: value_size and max_entries must be positive, "
                             f"got {self.value_size} and {self.max_entries}")
        if self.initial is not None and len(self.initial) != self.value_size * self.max_entries:
            raise ValueError(f"map {self.name!r}: initial contents are {len(self.initial)} bytes, "
                             f"expected {self.value_size * self.max_entries}")

    @property
    def key_size(self) -> int:
        return ARRAY_KEY_SIZE

    @property
    def read_only(self) -> bool:
        return MAP_KINDS[self.kind].access == "r"

    @classmethod
    def of_kind(cls, name: str, kind: str) -> "MapDef":
        """A quota or counters map, whose sizes the ABI fixes."""
        return cls(name, kind, MAP_KINDS[kind].record.size, LIMITS.max_tenants)


@dataclass(frozen=True)
class Program:
    """Slots as encoded (an lddw's second slot included), plus metadata.

    ``lines`` maps each slot to the source line it came from (None when the
    source has no lines, e.g. raw bytecode), so errors can name both.
    ``source_lines``: for a C object compiled with ``-g``, each slot's line
    of C (file, line, column, text) from the object's line info.
    """

    insns: tuple[Insn, ...]
    maps: tuple[MapDef, ...] = ()
    hook: str | None = None
    name: str = "prog"
    source: str | None = None
    lines: tuple[int | None, ...] = field(default=())
    source_lines: tuple[SourceLine | None, ...] = field(default=())

    def to_bytes(self) -> bytes:
        return encode_program(self.insns)

    def map_index(self, name: str) -> int | None:
        for i, m in enumerate(self.maps):
            if m.name == name:
                return i
        return None
