"""The interpreters' memory model: tagged addresses over a few regions.

A pointer is ``region_id << 32 | offset``.  Both VMs (and the device plane)
use this model, so pointer values, bounds and faults agree bit for bit.
Region ids:

* 1 ctx, 2 input (the ``gbpfd exec`` memory argument), 3 quota snapshot,
  4 counters;
* 8 + d: the 512-byte stack of call frame d (r10 = its top);
* 16 + i: program map i (quota and counters maps alias regions 3 and 4).

``lddw map:i`` yields ``MAP_HANDLE_RID << 32 | i``: a handle for helpers,
not an address (a load through it faults).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gbpfd.isa.abi import LIMITS, MAP_KINDS, RECORDS, own_map_bytes

REGION_SHIFT = 32
OFFSET_MASK = (1 << REGION_SHIFT) - 1
RID_CTX = 1
RID_INPUT = 2
RID_QUOTA = 3
RID_COUNTERS = 4
RID_STACK0 = 8
RID_MAP0 = 16
NREGIONS = RID_MAP0 + LIMITS.max_maps
MAP_HANDLE_RID = 0xFF
PERM_R = 1
PERM_W = 2
#: not a permission but the region's placement, kept with them: the region's
#: bytes are in the interpreter's ``local`` array, not in ``flat`` (the
#: device plane's stacks: on a GPU, shared memory)
IN_LOCAL = 4
MAP_KIND_ID = {name: kind.id for name, kind in MAP_KINDS.items()}
ALIASED_RID = {"quota": RID_QUOTA, "counters": RID_COUNTERS}


def address(rid: int, offset: int) -> int:
    return (rid << REGION_SHIFT) | offset


def stack_top(frame: int) -> int:
    return address(RID_STACK0 + frame, LIMITS.stack_bytes)


@dataclass
class Memory:
    """Every region in one flat byte array, plus per-region base/size/perm
    and per-map metadata: plain arrays, so njit and CUDA code can take them."""

    flat: np.ndarray       # uint8
    base: np.ndarray       # int64[NREGIONS]
    size: np.ndarray       # int64[NREGIONS]
    perm: np.ndarray       # int64[NREGIONS]
    map_rid: np.ndarray    # int64[max_maps]: region holding map i's values
    map_kind: np.ndarray   # int64[max_maps]: abi map kind id
    map_value_size: np.ndarray  # int64[max_maps]
    map_entries: np.ndarray     # int64[max_maps]
    nmaps: int

    def region(self, rid: int) -> np.ndarray:
        """A writable view of one region's bytes."""
        start = int(self.base[rid])
        return self.flat[start:start + int(self.size[rid])]


def build_memory(maps=(), *, ctx: bytes = b"", input_mem: bytes = b"",
                 quota: bytes | None = None, counters: bytes | None = None) -> Memory:
    """Lay out the regions for one program run.

    ``maps`` are the program's MapDefs; quota/counters default to zeros of
    the ABI's size (max_tenants records each).
    """
    if len(maps) > LIMITS.max_maps:
        raise ValueError(f"{len(maps)} maps declared, at most {LIMITS.max_maps} are allowed")
    if own_map_bytes(maps) > LIMITS.max_map_bytes:
        raise ValueError(f"maps need {own_map_bytes(maps)} bytes, at most {LIMITS.max_map_bytes} are allowed")
    tenants = LIMITS.max_tenants
    quota = bytes(RECORDS["quota"].size * tenants) if quota is None else quota
    counters = bytes(RECORDS["counters"].size * tenants) if counters is None else counters
    contents: dict[int, tuple[bytes, int]] = {
        RID_CTX: (ctx, PERM_R | PERM_W),
        RID_INPUT: (input_mem, PERM_R | PERM_W),
        RID_QUOTA: (quota, PERM_R),
        RID_COUNTERS: (counters, PERM_R),
    }
    for frame in range(LIMITS.max_call_depth):
        contents[RID_STACK0 + frame] = (bytes(LIMITS.stack_bytes), PERM_R | PERM_W)
    map_rid = np.zeros(LIMITS.max_maps, np.int64)
    map_kind = np.zeros(LIMITS.max_maps, np.int64)
    map_value_size = np.zeros(LIMITS.max_maps, np.int64)
    map_entries = np.zeros(LIMITS.max_maps, np.int64)
    for i, m in enumerate(maps):
        rid = ALIASED_RID.get(m.kind, RID_MAP0 + i)
        if rid == RID_MAP0 + i:
            data = m.initial if m.initial is not None else bytes(m.value_size * m.max_entries)
            contents[rid] = (data, PERM_R | PERM_W)
        map_rid[i], map_kind[i] = rid, MAP_KIND_ID[m.kind]
        map_value_size[i], map_entries[i] = m.value_size, m.max_entries

    base = np.zeros(NREGIONS, np.int64)
    size = np.zeros(NREGIONS, np.int64)
    perm = np.zeros(NREGIONS, np.int64)
    cursor = 0
    for rid in sorted(contents):
        data, p = contents[rid]
        base[rid], size[rid], perm[rid] = cursor, len(data), p
        cursor += len(data)
    flat = np.zeros(max(cursor, 1), np.uint8)
    for rid, (data, _) in contents.items():
        flat[base[rid]:base[rid] + len(data)] = np.frombuffer(data, np.uint8)
    return Memory(flat, base, size, perm, map_rid, map_kind, map_value_size, map_entries, len(maps))
