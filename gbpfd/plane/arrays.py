"""The plane's memory on the host side: allocation, initial values, and
staging a verified program into an idle program slot.

The layouts are ``gbpfd.device.state`` (device arrays) and
``gbpfd.bridge.layout`` (the host area); this module only fills them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gbpfd.bridge.layout import HEADER, HOST_WORDS, MAGIC, REGION, RING, COMMAND_SLOTS, EVENT_SLOTS
from gbpfd.device import state as S
from gbpfd.errors import LoadError
from gbpfd.isa.abi import HOOKS, LIMITS
from gbpfd.vm import memory as M
from gbpfd.vm.decoded import decode_program
from gbpfd.isa import opids


NEVER_NS = -(1 << 62)


@dataclass
class PlaneArrays:
    ctl: np.ndarray
    host: np.ndarray
    code: np.ndarray
    flat: np.ndarray
    desc: np.ndarray
    regs: np.ndarray
    frames: np.ndarray
    stack: np.ndarray
    vmout: np.ndarray

    @property
    def flat8(self) -> np.ndarray:
        return self.flat.view(np.uint8)

    def device_args(self) -> tuple:
        """In the order the control functions take them."""
        return (self.ctl, self.host, self.code, self.flat8, self.flat, self.desc, self.regs, self.frames,
                self.stack, self.vmout)


@dataclass(frozen=True)
class Periods:
    """Control-loop periods in ns (0 disables a hook's period)."""
    tick_ns: int = 20_000
    dma_ns: int = 100_000
    warp_ns: int = 100_000
    therm_ns: int = 10_000_000

    def __post_init__(self):
        for name in ("tick_ns", "dma_ns", "warp_ns", "therm_ns"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Periods.{name} must be an int >= 0 (ns), got {value!r}")


def allocate() -> PlaneArrays:
    code = np.zeros((S.NHOOKS, S.NPROG_SLOTS, S.MAX_INSNS, S.NCOLS), np.int64)
    code[..., 0] = opids.INVALID
    return PlaneArrays(
        ctl=np.zeros(S.CTL_WORDS, np.int64),
        host=np.zeros(HOST_WORDS, np.int64),
        code=code,
        flat=np.zeros(S.FLAT_WORDS, np.int64),
        desc=np.zeros((S.NHOOKS, S.NPROG_SLOTS, S.NRUNNERS, S.DESC_WORDS), np.int64),
        regs=np.zeros((S.NRUNNERS, S.REGS_WORDS), np.uint64),
        frames=np.zeros((S.NRUNNERS,) + S.FRAMES_SHAPE, np.uint64),
        stack=np.zeros(S.STACK_AREA_BYTES, np.uint8),
        vmout=np.zeros((S.NRUNNERS, S.VMOUT_WORDS), np.int64),
    )


#: the longest a gate-mode CTA keeps asking while the policy answers "defer" before it runs anyway (and is
#: counted as bypassed): a guard against a policy that never admits, not a pacing bound (guess: 10 s, far
#: past any wait a cap imposes on a real grid)
DEFER_BOUND_NS = 10_000_000_000
#: how often a persistent launch's host launcher checks for tokens its workers leave unused and launches more
#: workers (a setting, not a measurement: 20x a launch's latency, so a top-up has started before the next look)
TOPUP_POLL_NS = 100_000


def initialise(a: PlaneArrays, periods: Periods, *, wait_bound_ns: int, active_window_ns: int,
               sample_every: int, defer_bound_ns: int = DEFER_BOUND_NS) -> None:
    ctl = a.ctl
    ctl[S.ACTIVE:S.ACTIVE + S.NHOOKS] = S.NO_PROGRAM
    ctl[S.PLANE.global_cta_cap] = 1 << 40
    ctl[S.PLANE.tick_period_ns] = periods.tick_ns
    ctl[S.PLANE.dma_period_ns] = periods.dma_ns
    ctl[S.PLANE.warp_period_ns] = periods.warp_ns
    ctl[S.PLANE.therm_period_ns] = periods.therm_ns
    ctl[S.PLANE.wait_bound_ns] = wait_bound_ns
    ctl[S.PLANE.defer_bound_ns] = defer_bound_ns
    ctl[S.PLANE.active_window_ns] = active_window_ns
    ctl[S.PLANE.sample_every] = sample_every
    ctl[S.PLANE.trace_budget] = S.TRACE_EVENTS_PER_TICK
    ctl[S.PLANE.last_lc_ns] = NEVER_NS  # no latency-critical tenant was ever active: sm_tick drains nothing
    # no tenant has asked for anything yet: keep them all out of the active window
    ctl[S.TENANT_BASE + S.TENANT.last_demand_ns:S.SLOT_BASE:S.TENANT_STRIDE] = NEVER_NS
    a.host[REGION.finished:REGION.finished + S.MAX_TENANTS] = -1  # until a launcher reports completions
    a.host[HEADER.magic] = MAGIC
    a.host[REGION.command_ring + RING.slots] = COMMAND_SLOTS
    a.host[REGION.event_ring + RING.slots] = EVENT_SLOTS


def set_sms(a: PlaneArrays, sms: int, where: str) -> None:
    """The GPU's SM count, for the per-SM words; a GPU with more SMs than
    they cover is refused rather than half-managed."""
    if not 2 <= sms <= S.MAX_SMS:
        raise ValueError(f"{where}: the GPU has {sms} SMs; the plane needs 2 to {S.MAX_SMS} (isa/abi.toml "
                         "limits.max_sms: the quota SM mask and the per-SM words cover that many)")
    a.ctl[S.PLANE.num_sms] = sms


def _region_table(program, hook: str, runner: int, map_at: int):
    """base/size/perm per region id, and the map tables, for one runner."""
    base = np.zeros(M.NREGIONS, np.int64)
    size = np.zeros(M.NREGIONS, np.int64)
    perm = np.zeros(M.NREGIONS, np.int64)
    rw = M.PERM_R | M.PERM_W
    ctx = S.RUNNERS_AT + runner * S.RUNNER_BYTES
    base[M.RID_CTX], size[M.RID_CTX], perm[M.RID_CTX] = ctx, HOOKS[hook].ctx_size, rw
    base[M.RID_QUOTA], size[M.RID_QUOTA], perm[M.RID_QUOTA] = S.QUOTA_AT, S.QUOTA_BYTES, M.PERM_R
    base[M.RID_COUNTERS], size[M.RID_COUNTERS], perm[M.RID_COUNTERS] = S.COUNTERS_AT, S.COUNTERS_BYTES, M.PERM_R
    for frame in range(LIMITS.max_call_depth):
        rid = M.RID_STACK0 + frame
        at = (runner * LIMITS.max_call_depth + frame) * LIMITS.stack_bytes
        base[rid], size[rid], perm[rid] = at, LIMITS.stack_bytes, rw | M.IN_LOCAL
    maps = np.zeros((3, LIMITS.max_maps), np.int64)
    placed = []
    cursor = map_at
    for i, m in enumerate(program.maps):
        rid = M.ALIASED_RID.get(m.kind, M.RID_MAP0 + i)
        if rid == M.RID_MAP0 + i:
            nbytes = m.value_size * m.max_entries
            base[rid], size[rid], perm[rid] = cursor, nbytes, rw
            placed.append((cursor, m))
            cursor += (nbytes + 7) // 8 * 8
        maps[:, i] = (rid, m.value_size, m.max_entries)
    return base, size, perm, maps, placed, cursor - map_at


def stage_program(a: PlaneArrays, hook: str, slot: int, program) -> int:
    """Write ``program`` (already verified for ``hook``) into the idle
    ``slot``: decoded code, fresh maps, region tables.  Returns its
    instruction count.  Checks first, writes after, so a refusal leaves
    every slot as it was."""
    if hook not in S.HOOK_NAMES:
        raise LoadError(f"hook {hook!r} is not one of {', '.join(S.HOOK_NAMES)}")
    if slot not in range(S.NPROG_SLOTS):
        raise LoadError(f"program slot {slot!r} is not one of 0..{S.NPROG_SLOTS - 1}")
    n = len(program.insns)
    if not 0 < n <= S.MAX_INSNS:
        raise LoadError(f"{program.name or 'program'}: {n} instructions, the plane holds 1..{S.MAX_INSNS}")
    h = S.HOOK_NAMES.index(hook)
    map_at = S.MAPS_AT + (h * S.NPROG_SLOTS + slot) * S.MAP_AREA_BYTES
    tables = [_region_table(program, hook, r, map_at) for r in range(S.NRUNNERS)]
    used = tables[0][5]
    if used > LIMITS.max_map_bytes:
        raise LoadError(f"{program.name or 'program'}: its maps need {used} bytes, a program slot holds "
                        f"{LIMITS.max_map_bytes}")
    a.code[h, slot] = 0
    a.code[h, slot, :, 0] = opids.INVALID
    a.code[h, slot, :n] = decode_program(program.insns)[:n]
    flat8 = a.flat8
    flat8[map_at:map_at + S.MAP_AREA_BYTES] = 0
    for at, m in tables[0][4]:
        if m.initial is not None:
            flat8[at:at + len(m.initial)] = np.frombuffer(m.initial, np.uint8)
    for r, (base, size, perm, maps, _, _) in enumerate(tables):
        d = a.desc[h, slot, r]
        d[S.D_BASE:S.D_SIZE], d[S.D_SIZE:S.D_PERM], d[S.D_PERM:S.D_MAP_RID] = base, size, perm
        d[S.D_MAP_RID:S.D_MAP_VALUE_SIZE] = maps[0]
        d[S.D_MAP_VALUE_SIZE:S.D_MAP_ENTRIES] = maps[1]
        d[S.D_MAP_ENTRIES:S.D_NMAPS] = maps[2]
        d[S.D_NMAPS] = len(program.maps)
    return n


def install_baseline(a: PlaneArrays, hook: str, program, program_id: int) -> None:
    """The fallback slot, filled once before the control CTA starts."""
    h = S.HOOK_NAMES.index(hook)
    n = stage_program(a, hook, S.BASELINE_SLOT, program)
    a.ctl[S.NINSNS + h * S.NPROG_SLOTS + S.BASELINE_SLOT] = n
    a.ctl[S.PROGRAM_ID + h * S.NPROG_SLOTS + S.BASELINE_SLOT] = program_id
    a.ctl[S.ACTIVE + h] = S.BASELINE_SLOT
