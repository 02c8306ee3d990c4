"""The device plane's own memory: word layouts of the arrays the control
CTA and the workers share (device memory on a GPU).

* ``ctl`` (int64): plane words, per-tenant words, admission request slots
  and decision-latency histograms.
* ``code`` (int64[NHOOKS, NPROG_SLOTS, MAX_INSNS, NCOLS]): decoded
  programs; slots 0 and 1 are the live-swap double buffer, slot 2 holds the
  shipped baseline for the fallback.
* ``flat`` (int64, also viewed as bytes by the interpreter): the quota
  region, the counters region, per-runner ctx and stacks, and the maps of
  every (hook, program slot).
* ``desc`` (int64[NHOOKS, NPROG_SLOTS, NRUNNERS, DESC_WORDS]): the
  interpreter's region table (base/size/perm) and map table for each
  program slot as one runner sees it.

Word groups are namedtuples of offsets so that Numba folds them.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from gbpfd.bridge.layout import EVENT_WORDS, HIST_BUCKETS, MAX_TENANTS, SNAPSHOT_WORDS
from gbpfd.isa.abi import HOOKS, LIMITS, RECORDS
from gbpfd.vm.decoded import NCOLS  # noqa: F401 - the code array's last dimension, re-exported
from gbpfd.vm.interp import FRAME_WORDS
from gbpfd.vm.memory import NREGIONS


def _group(typename: str, names: list[str]):
    return namedtuple(typename, names)(*range(len(names)))


HOOK_NAMES = tuple(HOOKS)
HOOK = _group("HookIndex", list(HOOK_NAMES))
NHOOKS = len(HOOK_NAMES)
NPROG_SLOTS = 3
BASELINE_SLOT = 2
NO_PROGRAM = -1
MAX_INSNS = LIMITS.max_insns

# ------------------------------------------------------------------ ctl
#: the adopted snapshot's words (host_bridge snapshot fields after `seq`, same order)
META = namedtuple("MetaWords", [w.name for w in SNAPSHOT_WORDS[1:]])(*range(len(SNAPSHOT_WORDS) - 1))
META_WORDS = len(META)
_PLANE_NAMES = [
    "total_running", "global_cta_cap", "be_weight_sum", "lc_reserved",
    "tick_period_ns", "dma_period_ns", "warp_period_ns", "therm_period_ns",
    "last_tick_ns", "last_dma_ns", "last_warp_ns", "last_therm_ns", "period_loops",
    "active_window_ns", "wait_bound_ns", "defer_bound_ns", "sample_every", "decisions", "fast_grants", "requests",
    "bypassed", "insns", "smid", "torn_loops", "loops", "stop", "trace_budget", "traces_dropped", "reaction_ns",
    "staged_head", "staged_tail", "staged_dropped", "staged_dropped_seen",
    "staged", "snapshots_staged", "num_sms", "last_sm_ns", "last_lc_ns", "lc_active", "lc_running", "lc_demand", "be_workers",
    "be_block_ns", "drain_first", "drain_count",
    "drains", "drain_wait_sum_ns", "drain_wait_max_ns",
]
PLANE = namedtuple("PlaneWords", _PLANE_NAMES)(*range(META_WORDS, META_WORDS + len(_PLANE_NAMES)))
#: a torn-proof staging copy of the snapshot (meta words, then quota words)
STAGE = META_WORDS + len(_PLANE_NAMES)
STAGE_WORDS = META_WORDS + MAX_TENANTS * (RECORDS["quota"].size // 8)
#: per hook: the active program slot (or NO_PROGRAM)
ACTIVE = STAGE + STAGE_WORDS
#: per (hook, slot): host program id, instruction count
PROGRAM_ID = ACTIVE + NHOOKS
NINSNS = PROGRAM_ID + NHOOKS * NPROG_SLOTS
PLANE_WORDS = NINSNS + NHOOKS * NPROG_SLOTS

TENANT = _group("TenantWords", [
    "tokens", "running", "queued", "warps_active", "warps_waiting", "warp_cap",
    "dma_tokens", "dma_moved", "dma_pending", "last_demand_ns", "last_tick_ns", "last_dma_ns",
    "last_warp_ns", "demand_seen", "token_limit", "workers", "worker_sms", "drained_sms",
    "block_ns",
])
TENANT_STRIDE = 24
TENANT_BASE = PLANE_WORDS

SLOTS_PER_LANE = 2
NSLOTS = 32 * SLOTS_PER_LANE
SLOT = _group("SlotWords", ["state", "tenant", "post_ns", "decision", "decided_ns", "sm"])
SLOT_STRIDE = 8
SLOT_BASE = TENANT_BASE + MAX_TENANTS * TENANT_STRIDE
#: ABANDONED: the worker gave up while the control CTA was deciding; the control CTA frees the slot and
#: takes back what it counted, so a request is admitted or bypassed, never both
FREE, CLAIMED, POSTED, SERVING, DECIDED, ABANDONED = 0, 1, 2, 3, 4, 5
DEFER, ADMIT = 0, 1
#: per tenant, what ``Plane.gauges()`` reads from the device's words (in flight now, not counted up)
GAUGES = ("running", "queued", "tokens", "workers")
#: trace events the policies may write per tick period, all hooks together; the rest are counted as dropped
TRACE_EVENTS_PER_TICK = 16

HIST_BASE = SLOT_BASE + NSLOTS * SLOT_STRIDE
#: events the serving warp makes (faults, traces, sampled decisions) wait here, in device memory, for
#: housekeeping to forward them to the host's event ring: the request path never writes over PCIe
STAGED_EVENTS = 16
STAGED_BASE = HIST_BASE + MAX_TENANTS * HIST_BUCKETS
MAX_SMS = LIMITS.max_sms
#: per SM: drained for latency-critical work (1) or not, since when, the best-effort persistent workers on it
#: drain_open: 1 from a mark until its drain is counted complete (once per mark)
SM = _group("SmWords", ["drained", "drained_ns", "be_workers", "drain_open"])
SM_STRIDE = 4
SM_BASE = STAGED_BASE + STAGED_EVENTS * len(EVENT_WORDS)
#: per (SM, tenant): the tenant's persistent workers on the SM (its max_ctas_per_sm is checked against it)
SM_TENANT_BASE = SM_BASE + MAX_SMS * SM_STRIDE
CTL_WORDS = SM_TENANT_BASE + MAX_SMS * MAX_TENANTS

# How a CTA got in.  cta_exit hands a token back for ENTER_TOKEN and ENTER_POLICY while the tenant is
# under its token limit (see gates.cta_exit), never for ENTER_BYPASS.
ENTER_TOKEN, ENTER_POLICY, ENTER_BYPASS, ENTER_DENIED = 1, 2, 3, 0
#: the quota record's class of a latency-critical tenant (quotas/schema.toml)
CLASS_LATENCY_CRITICAL = 1

# ----------------------------------------------------------------- flat
QUOTA_BYTES = RECORDS["quota"].size * MAX_TENANTS
COUNTER_RECORD_WORDS = RECORDS["counters"].size // 8
COUNTER = namedtuple("CounterWords", [f.name for f in RECORDS["counters"].fields])(
    *(f.offset // 8 for f in RECORDS["counters"].fields))
COUNTERS_BYTES = RECORDS["counters"].size * MAX_TENANTS
NRUNNERS = 2          # 0 runs the periodic hooks, 1 serves admission requests
#: the housekeeping warp's lanes, and the words each loads before its first store in a bulk copy
#: (``lane_copy``): 16 covers the snapshot's 264 words in one batch
HOUSEKEEPING_LANES = 32
COPY_BATCH = 16
RUNNER_TICK, RUNNER_ADMIT = 0, 1
CTX_BYTES = 64
RUNNER_BYTES = CTX_BYTES
#: the policies' stacks, runner by runner, frame by frame: the interpreter's ``local`` array, not in flat
STACK_AREA_BYTES = NRUNNERS * LIMITS.max_call_depth * LIMITS.stack_bytes
MAP_AREA_BYTES = LIMITS.max_map_bytes  # per (hook, program slot): the ABI limit the verifier enforces
QUOTA_AT = 0
COUNTERS_AT = QUOTA_AT + QUOTA_BYTES
RUNNERS_AT = COUNTERS_AT + COUNTERS_BYTES
MAPS_AT = RUNNERS_AT + NRUNNERS * RUNNER_BYTES
FLAT_BYTES = MAPS_AT + NHOOKS * NPROG_SLOTS * MAP_AREA_BYTES
FLAT_WORDS = FLAT_BYTES // 8
QUOTA_WORD = QUOTA_AT // 8
COUNTERS_WORD = COUNTERS_AT // 8
QUOTA_RECORD_WORDS = RECORDS["quota"].size // 8
QUOTA_RECORD_BYTES = RECORDS["quota"].size
#: quota record fields: byte offsets and sizes
_QUOTA_NAMES = ["klass" if f.name == "class" else f.name for f in RECORDS["quota"].fields]
#: quota record fields (``klass`` for ``class``, a Python keyword): byte offsets and sizes
QUOTA = namedtuple("QuotaOffsets", _QUOTA_NAMES)(*(f.offset for f in RECORDS["quota"].fields))
QUOTA_SIZE = namedtuple("QuotaSizes", _QUOTA_NAMES)(*(f.size for f in RECORDS["quota"].fields))

# ----------------------------------------------------------------- desc
D_BASE, D_SIZE, D_PERM = 0, NREGIONS, 2 * NREGIONS
D_MAP_RID = 3 * NREGIONS
D_MAP_VALUE_SIZE = D_MAP_RID + LIMITS.max_maps
D_MAP_ENTRIES = D_MAP_VALUE_SIZE + LIMITS.max_maps
D_NMAPS = D_MAP_ENTRIES + LIMITS.max_maps
DESC_WORDS = D_NMAPS + 1

# ------------------------------------------------- interpreter scratch
REGS_WORDS = 11
#: per runner: steps run, final pc, trace calls made, the first traced value (gbpfd.vm.interp.execute's ``out``)
VMOUT_WORDS = 4
FRAMES_SHAPE = (LIMITS.max_call_depth, FRAME_WORDS)
HOOK_BUDGET = np.array([HOOKS[name].budget for name in HOOK_NAMES], np.int64)


def ctx_layout(hook: str):
    """The hook's ctx fields: a namedtuple of byte offsets and one of sizes."""
    fields = HOOKS[hook].ctx
    names = [f.name for f in fields]
    return (namedtuple(f"CtxAt_{hook}", names)(*(f.offset for f in fields)),
            namedtuple(f"CtxSize_{hook}", names)(*(f.size for f in fields)))


CTX_TICK, CTX_TICK_SIZE = ctx_layout("tick")
CTX_ADMIT, CTX_ADMIT_SIZE = ctx_layout("cta_admit")
CTX_DMA, CTX_DMA_SIZE = ctx_layout("dma_tick")
CTX_WARP, CTX_WARP_SIZE = ctx_layout("warp_throttle_tick")
CTX_THERM, CTX_THERM_SIZE = ctx_layout("therm_tick")
CTX_SM, CTX_SM_SIZE = ctx_layout("sm_tick")
