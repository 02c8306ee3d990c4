"""The tenant quota schema (``quotas/schema.toml``) as field specs.

Each ``FieldSpec`` is one key of a ``[tenants.NAME]`` table and the abi
quota record field of the same name; ``load`` validates against the specs
and ``snapshot`` packs through them.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from types import MappingProxyType

from gbpfd.isa.abi import LIMITS
from gbpfd.resources import shared_file

SCHEMA_PATH = shared_file("quotas", "schema.toml")
FIELD_TYPES = ("int", "enum", "sms")
ALL_SMS = "all"
MAX_SMS = LIMITS.max_sms


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str                   # "int" or "enum"
    doc: str
    minimum: int | None = None  # int fields
    maximum: int | None = None
    values: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))  # enum: word -> number
    default: int | str | None = None  # None: required
    record: tuple[str, ...] = ()      # the quota record fields it packs into (default: its own name)

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def record_fields(self) -> tuple[str, ...]:
        return self.record or (self.name,)

    def packed(self, value) -> int:
        """The number a validated value packs as (an "sms" field: the mask over all its record fields)."""
        if self.type == "enum":
            return self.values[value]
        if self.type == "sms":
            return 0 if value == ALL_SMS else sum(1 << sm for sm in set(value))
        return value


@dataclass(frozen=True)
class NameSpec:
    pattern: re.Pattern
    min_length: int
    max_length: int
    rule: str  # the pattern and lengths in words
    doc: str

    def accepts(self, name: str) -> bool:
        return self.min_length <= len(name) <= self.max_length and self.pattern.fullmatch(name) is not None


def _field_spec(entry: dict) -> FieldSpec:
    if entry["type"] not in FIELD_TYPES:
        raise ValueError(f"{SCHEMA_PATH}: field {entry['name']!r}: unknown type {entry['type']!r}, "
                         f"expected one of {', '.join(FIELD_TYPES)}")
    return FieldSpec(entry["name"], entry["type"], entry["doc"], entry.get("min"), entry.get("max"),
                     MappingProxyType(dict(entry.get("values", {}))), entry.get("default"),
                     tuple(entry.get("record", ())))


with open(SCHEMA_PATH, "rb") as _fh:
    _DATA = tomllib.load(_fh)

FIELDS = tuple(_field_spec(entry) for entry in _DATA["fields"])
FIELD_BY_NAME = MappingProxyType({spec.name: spec for spec in FIELDS})
NAME = NameSpec(re.compile(_DATA["name"]["pattern"]), _DATA["name"]["min_length"],
                _DATA["name"]["max_length"], _DATA["name"]["rule"], _DATA["name"]["doc"])
MIN_TENANTS = _DATA["tenants"]["min_count"]
MAX_TENANTS = getattr(LIMITS, _DATA["tenants"]["max_count_limit"])
