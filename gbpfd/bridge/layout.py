"""The host bridge layout (``host_bridge/layout.toml``) as word offsets.

Every group of words becomes a namedtuple of offsets (``HEADER.ready``,
``EVENT.kind``): Numba folds module-level namedtuples into constants, so
device code indexes with the same names the host printers use.  The host
area is one int64 array; ``REGION`` gives where each part starts.
"""
from __future__ import annotations

import tomllib
from collections import namedtuple
from dataclasses import dataclass
from types import MappingProxyType

from gbpfd.isa.abi import LIMITS, RECORDS
from gbpfd.resources import shared_file

with open(shared_file("host_bridge", "layout.toml"), "rb") as _fh:
    DATA = tomllib.load(_fh)  # layout.toml as read: its doc lines feed docs/layout.md


@dataclass(frozen=True)
class Word:
    name: str
    index: int
    doc: str


def _words(specs: list[dict]) -> tuple[Word, ...]:
    return tuple(Word(s["name"], i, s["doc"]) for i, s in enumerate(specs))


def _offsets(typename: str, words: tuple[Word, ...]):
    return namedtuple(typename, [w.name for w in words])(*(w.index for w in words))


@dataclass(frozen=True)
class Code:
    name: str
    id: int
    doc: str
    args: tuple[str, ...] = ()


def _codes(table: dict) -> MappingProxyType:
    return MappingProxyType({name: Code(name, c["id"], c["doc"], tuple(c.get("args", ())))
                             for name, c in table.items()})


MAGIC = 0x67627066640001
HEADER_WORDS = _words(DATA["header"]["fields"])
RING_WORDS = _words(DATA["ring_header"]["fields"])
COMMAND_WORDS = _words(DATA["records"]["command"]["fields"])
EVENT_WORDS = _words(DATA["records"]["event"]["fields"])
SNAPSHOT_WORDS = _words(DATA["snapshot"]["fields"])

HEADER = _offsets("Header", HEADER_WORDS)
RING = _offsets("RingHeader", RING_WORDS)
COMMAND = _offsets("Command", COMMAND_WORDS)
EVENT = _offsets("Event", EVENT_WORDS)
SNAPSHOT = _offsets("Snapshot", SNAPSHOT_WORDS)

COMMAND_OPS = _codes(DATA["command_ops"])
EVENT_KINDS = _codes(DATA["event_kinds"])
EVENT_KIND_BY_ID = MappingProxyType({k.id: k for k in EVENT_KINDS.values()})
OP = namedtuple("CommandOp", list(COMMAND_OPS))(*(c.id for c in COMMAND_OPS.values()))
KIND = namedtuple("EventKind", list(EVENT_KINDS))(*(c.id for c in EVENT_KINDS.values()))

COMMAND_SLOTS = DATA["rings"]["command_slots"]
EVENT_SLOTS = DATA["rings"]["event_slots"]
HIST_BUCKETS = DATA["histogram"]["buckets"]
HIST_DOC = DATA["histogram"]["doc"]
QUOTA_WORDS = RECORDS["quota"].size // 8
COUNTER_WORDS = RECORDS["counters"].size // 8
MAX_TENANTS = LIMITS.max_tenants

for _n in (COMMAND_SLOTS, EVENT_SLOTS):
    if _n & (_n - 1):
        raise ValueError(f"host_bridge/layout.toml: ring sizes must be powers of two, got {_n}")


def _regions():
    sizes = {
        "header": len(HEADER_WORDS),
        "command_ring": len(RING_WORDS) + COMMAND_SLOTS * len(COMMAND_WORDS),
        "event_ring": len(RING_WORDS) + EVENT_SLOTS * len(EVENT_WORDS),
        "snapshot": len(SNAPSHOT_WORDS) + MAX_TENANTS * QUOTA_WORDS,
        "demand": MAX_TENANTS,
        "finished": MAX_TENANTS,
        "launch_ctas": MAX_TENANTS,
        "counters": MAX_TENANTS * COUNTER_WORDS,
        "histogram": MAX_TENANTS * HIST_BUCKETS,
    }
    start, cursor = {}, 0
    for name, size in sizes.items():
        start[name] = cursor
        cursor += size
    return namedtuple("Regions", list(start))(*start.values()), cursor


REGION, HOST_WORDS = _regions()
#: where the quota records start inside the host area
SNAPSHOT_QUOTAS = REGION.snapshot + len(SNAPSHOT_WORDS)
