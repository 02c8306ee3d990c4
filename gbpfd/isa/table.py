"""The opcode table, expanded from ``isa/opcodes.toml`` into one row per encoding.

Every consumer (assembler, disassembler, verifier field checks, both
interpreters, the generated ISA reference) reads ``ROWS`` or the indexes
below; none of them names an opcode number.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from types import MappingProxyType

from gbpfd.resources import shared_file

FIELDS = ("dst", "src", "off", "imm")
SUPPORTED_GROUPS = ("base32", "base64", "divmul32", "divmul64")


@dataclass(frozen=True)
class Row:
    """One encoding: an opcode, plus a pinned field value where rows share it."""

    opcode: int
    mnemonic: str
    op: str  # semantic operation, shared by the 32/64-bit and K/X variants
    cls: str
    form: str
    operands: tuple[str, ...]
    rules: MappingProxyType  # field -> "reg" | "zero" | "any" | int (pinned)
    group: str
    meaning: str
    width: int  # operand width in bits for alu/jmp (32 or 64), else 64
    source: str | None  # "k" or "x" for alu/jmp rows
    size: int  # access size in bytes for loads and stores, else 0
    slots: int  # 2 for the lddw forms

    @property
    def pinned(self) -> tuple[str, int] | None:
        for field in FIELDS:
            rule = self.rules[field]
            if isinstance(rule, int) and not isinstance(rule, bool):
                return field, rule
        return None

    @property
    def uses_reg_source(self) -> bool:
        return self.source == "x"


@dataclass(frozen=True)
class Unsupported:
    opcodes: frozenset[int]
    srcs: frozenset[int] | None
    group: str
    reason: str


def _load() -> dict:
    with open(shared_file("isa", "opcodes.toml"), "rb") as fh:
        return tomllib.load(fh)


def _row(spec: dict, forms: dict, *, opcode: int, mnemonic: str, cls: str, form: str,
         group: str, width: int = 64, source: str | None = None, size: int = 0,
         meaning: str | None = None) -> Row:
    form_spec = forms[form]
    rules = {field: form_spec[field] for field in FIELDS}
    for field in FIELDS:
        if field in spec and not isinstance(spec[field], str):
            rules[field] = spec[field]
    return Row(
        opcode=opcode, mnemonic=mnemonic, op=spec["op"], cls=cls, form=form,
        operands=tuple(form_spec["operands"]), rules=MappingProxyType(rules),
        group=group, meaning=meaning or spec["meaning"], width=width, source=source,
        size=size, slots=form_spec.get("slots", 1),
    )


def _expand(data: dict) -> list[Row]:
    classes = {k: v["value"] for k, v in data["fields"]["class"].items()}
    sources = {k: v["value"] for k, v in data["fields"]["source"].items()}
    sizes = data["fields"]["size"]
    modes = {k: v["value"] for k, v in data["fields"]["mode"].items()}
    forms = data["forms"]
    fam = data["families"]
    rows: list[Row] = []

    for spec in fam["alu"]:
        for cls in spec.get("classes", ["alu", "alu64"]):
            width = 32 if cls == "alu" else 64
            kind = spec.get("group", "base")
            group = f"{kind}{width}"
            default = spec["op"] + ("32" if cls == "alu" else "")
            mnemonic = spec.get("mnemonics", {}).get(cls, default)
            for src in spec.get("sources", ["k", "x"]):
                form = spec.get("form", f"alu_{src}")
                rows.append(_row(spec, forms, opcode=spec["code"] | sources[src] | classes[cls],
                                 mnemonic=mnemonic, cls=cls, form=form, group=group,
                                 width=width, source=src))

    for spec in fam["jmp"]:
        for cls in spec.get("classes", ["jmp", "jmp32"]):
            width = 32 if cls == "jmp32" else 64
            group = "base32" if cls == "jmp32" else spec.get("group", "base64")
            mnemonic = spec["op"] + ("32" if cls == "jmp32" else "")
            for src in spec.get("sources", ["k", "x"]):
                form = spec.get("form", f"jmp_{src}")
                rows.append(_row(spec, forms, opcode=spec["code"] | sources[src] | classes[cls],
                                 mnemonic=mnemonic, cls=cls, form=form, group=group,
                                 width=width, source=src))

    for spec in fam["mem"]:
        for size_name in spec.get("sizes", list(sizes)):
            size = sizes[size_name]
            group = "base64" if size["bytes"] == 8 else "base32"
            meaning = spec["meaning"].replace("{bits}", str(size["bytes"] * 8))
            rows.append(_row(spec, forms, opcode=modes[spec["mode"]] | size["value"] | classes[spec["class"]],
                             mnemonic=spec["stem"] + size_name, cls=spec["class"], form=spec["form"],
                             group=group, size=size["bytes"], meaning=meaning))

    for spec in fam["special"]:
        opcode = spec["opcode"]
        cls = next(name for name, value in classes.items() if value == opcode & 0x07)
        rows.append(_row(spec, forms, opcode=opcode, mnemonic=spec["mnemonic"], cls=cls,
                         form=spec["form"], group=spec["group"]))
    return rows


def _check(rows: list[Row]) -> None:
    """The table is data: refuse an edit that makes two rows decode the same."""
    seen: dict[tuple, Row] = {}
    for row in rows:
        key = (row.opcode, row.pinned)
        if key in seen:
            raise ValueError(f"isa/opcodes.toml: {row.mnemonic} and {seen[key].mnemonic} "
                             f"share opcode {row.opcode:#04x} and {row.pinned}")
        seen[key] = row
        if row.group not in SUPPORTED_GROUPS:
            raise ValueError(f"isa/opcodes.toml: {row.mnemonic} has unknown group {row.group!r}")


_DATA = _load()
ROWS: tuple[Row, ...] = tuple(_expand(_DATA))
_check(list(ROWS))

UNSUPPORTED: tuple[Unsupported, ...] = tuple(
    Unsupported(frozenset(u["opcodes"]), frozenset(u["src"]) if "src" in u else None,
    u["group"], u["reason"]) for u in _DATA["unsupported"])

#: semantic operations in table order; an operation's id is its index here.
OPS: tuple[str, ...] = tuple(dict.fromkeys(row.op for row in ROWS))
OP_ID = MappingProxyType({name: i for i, name in enumerate(OPS)})

BY_OPCODE: MappingProxyType = MappingProxyType(
    {opc: tuple(r for r in ROWS if r.opcode == opc) for opc in sorted({r.opcode for r in ROWS})})
BY_MNEMONIC: MappingProxyType = MappingProxyType(
    {m: tuple(r for r in ROWS if r.mnemonic == m) for m in dict.fromkeys(r.mnemonic for r in ROWS)})
FORMS: MappingProxyType = MappingProxyType(_DATA["forms"])
FIELD_DOCS: MappingProxyType = MappingProxyType(_DATA["fields"])


def rows_for(opcode: int) -> tuple[Row, ...]:
    return BY_OPCODE.get(opcode, ())


def unsupported_reason(opcode: int, src: int) -> Unsupported | None:
    for entry in UNSUPPORTED:
        if opcode in entry.opcodes and (entry.srcs is None or src in entry.srcs):
            return entry
    return None
