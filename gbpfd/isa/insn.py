"""One 8-byte instruction slot, its byte encoding, and its row in the table."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from gbpfd.errors import FieldError
from gbpfd.isa.table import FIELDS, SUPPORTED_GROUPS, Row, Unsupported, rows_for, unsupported_reason

SLOT = struct.Struct("<BBhi")  # opcode, dst:4|src:4, off, imm
NREGS = 11  # r0-r10
FIELD_RANGES = {"dst": (0, 15), "src": (0, 15), "off": (-(1 << 15), (1 << 15) - 1),
                "imm": (-(1 << 31), (1 << 31) - 1)}


@dataclass(frozen=True)
class Insn:
    """An encoded slot.  ``off`` and ``imm`` are signed, as in RFC 9669."""

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def __post_init__(self):
        if not 0 <= self.opcode <= 0xFF:
            raise ValueError(f"opcode {self.opcode!r} does not fit in 8 bits")
        for field in FIELDS:
            lo, hi = FIELD_RANGES[field]
            value = getattr(self, field)
            if not lo <= value <= hi:
                raise ValueError(f"{field} {value!r} does not fit in [{lo}, {hi}]")

    def encode(self) -> bytes:
        return SLOT.pack(self.opcode, self.dst | (self.src << 4), self.off, self.imm)

    @classmethod
    def from_bytes(cls, data: bytes, offset: int = 0) -> "Insn":
        opcode, regs, off, imm = SLOT.unpack_from(data, offset)
        return cls(opcode, regs & 0x0F, regs >> 4, off, imm)


def encode_program(insns) -> bytes:
    return b"".join(insn.encode() for insn in insns)


def decode_bytes(data: bytes) -> list[Insn]:
    """Split raw bytecode into slots; the caller has checked the length."""
    return [Insn.from_bytes(data, i) for i in range(0, len(data), SLOT.size)]


def _field_ok(rule, value: int) -> bool:
    if rule == "any":
        return True
    if rule == "zero":
        return value == 0
    if rule == "reg":
        return 0 <= value < NREGS
    return value == rule


def _expected(rule) -> str:
    return {"zero": "0 (reserved)", "reg": "a register r0-r10", "any": "any"}.get(rule, str(rule))


def decode(insn: Insn) -> Row:
    """The table row for ``insn``, or FieldError naming the bad field.

    This is the verifier's field check and the interpreters' decoder: both
    use it, so the two cannot disagree on what an encoding means.
    """
    candidates = rows_for(insn.opcode)
    if not candidates:
        unsupported = unsupported_reason(insn.opcode, insn.src)
        if unsupported:
            raise FieldError(_unsupported_message(f"opcode {insn.opcode:#04x}", unsupported))
        raise FieldError(f"unknown opcode {insn.opcode:#04x}")
    row = _pick(insn, candidates)
    for field in FIELDS:
        value = getattr(insn, field)
        if not _field_ok(row.rules[field], value):
            raise FieldError(f"invalid {field} {value} for {row.mnemonic} "
                             f"(expected {_expected(row.rules[field])})")
    return row


def _unsupported_message(what: str, entry: Unsupported) -> str:
    if entry.group in SUPPORTED_GROUPS:
        return f"{what}: {entry.reason} is not supported"
    return (f"{what}: {entry.reason} belong to the {entry.group} conformance group, outside "
            f"the supported groups ({', '.join(SUPPORTED_GROUPS)})")


def _pick(insn: Insn, candidates: tuple[Row, ...]) -> Row:
    if len(candidates) == 1:
        return candidates[0]
    field = candidates[0].pinned[0]
    value = getattr(insn, field)
    for row in candidates:
        if row.pinned == (field, value):
            return row
    unsupported = unsupported_reason(insn.opcode, insn.src)
    if unsupported:
        raise FieldError(_unsupported_message(f"opcode {insn.opcode:#04x} with {field} {value}", unsupported))
    allowed = ", ".join(f"{r.pinned[1]} ({r.mnemonic})" for r in candidates)
    raise FieldError(f"invalid {field} {value} for opcode {insn.opcode:#04x} (expected one of {allowed})")
