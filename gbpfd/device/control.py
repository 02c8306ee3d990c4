"""The control CTA's loop body (shared source, see ``gbpfd.specialize``).

``housekeeping`` is one iteration's serial part (heartbeat, commands,
periodic hooks, counter mirroring); ``serve_slot`` decides one posted
admission request.  The GPU's persistent kernel calls them forever, a test
kernel in the CUDA simulator a bounded number of times, and the simulated
device whenever its model says the control CTA would.  Policies run
through the interpreter (``execute``, bound per target to
``gbpfd.vm.interp.execute``) with the hook's instruction budget as fuel; a
fault switches the hook to the baseline slot and reports why.

Array arguments, in this order everywhere (``A`` in the docs): ``ctl``,
``host``, ``code``, ``flat8`` and ``flat`` (one buffer as bytes and as
words), ``desc``, ``regs``, ``frames``, ``stack`` (the policies' stacks,
the interpreter's ``local`` array: shared memory on a GPU), ``vmout``.
"""
import numpy as np

from gbpfd.bridge.layout import COMMAND, HEADER, HIST_BUCKETS, KIND, MAX_TENANTS, OP, REGION
from gbpfd.device.state import (ACTIVE, ADMIT, BASELINE_SLOT, CLASS_LATENCY_CRITICAL, COUNTER, COUNTERS_WORD,
                                COUNTER_RECORD_WORDS, CTX_ADMIT, CTX_ADMIT_SIZE, CTX_DMA, CTX_DMA_SIZE, CTX_SM,
                                CTX_SM_SIZE, CTX_THERM, CTX_THERM_SIZE, CTX_TICK, CTX_TICK_SIZE, CTX_WARP,
                                CTX_WARP_SIZE, D_BASE, D_MAP_ENTRIES, D_MAP_RID, D_MAP_VALUE_SIZE, D_NMAPS, D_PERM,
                                D_SIZE, DECIDED, DEFER, FREE, HIST_BASE, HOOK, HOOK_BUDGET, MAX_INSNS, META,
                                META_WORDS, NINSNS, NO_PROGRAM, NPROG_SLOTS, PLANE, POSTED, PROGRAM_ID, QUOTA,
                                QUOTA_AT, QUOTA_RECORD_BYTES, QUOTA_SIZE, QUOTA_WORD, RUNNER_ADMIT, RUNNER_BYTES,
                                RUNNER_TICK, RUNNERS_AT, SERVING, SLOT, SM, STAGE, TENANT, TRACE_EVENTS_PER_TICK)
from gbpfd.vm.memory import RID_CTX
from gbpfd.vm.status import OK

COMMANDS_PER_LOOP = 4  # commands taken per iteration: a flood cannot starve admission
TORN_LOOPS_MAX = 1024  # iterations a quotas command waits for a consistent snapshot before it is refused
#: what one housekeeping call did, for the lanes of its warp
CONTINUE, STOPPED, TICKED = 0, 1, 2
#: PLANE.staged: the copy of the snapshot a pending quotas command adopts
NOT_STAGED, WANTED, STAGED, TORN = 0, 1, 2, 3
QUOTA_WORDS_ALL = MAX_TENANTS * (QUOTA_RECORD_BYTES // 8)
CTX_ADDRESS = np.uint64(RID_CTX << 32)
#: the periodic hooks in the order a loop iteration runs them, with their last-run and period words
#: (sm_tick shares tick's period and runs after it, so it sees the tokens tick left)
PERIODIC_HOOKS = (HOOK.tick, HOOK.dma_tick, HOOK.warp_throttle_tick, HOOK.therm_tick, HOOK.sm_tick)
PERIODIC_LAST = (PLANE.last_tick_ns, PLANE.last_dma_ns, PLANE.last_warp_ns, PLANE.last_therm_ns, PLANE.last_sm_ns)
PERIODIC_PERIOD = (PLANE.tick_period_ns, PLANE.dma_period_ns, PLANE.warp_period_ns, PLANE.therm_period_ns,
                   PLANE.tick_period_ns)


def put(flat8, at, size, value):
    v = np.int64(value)
    for k in range(size):
        flat8[at + k] = np.uint8(v & 0xFF)
        v >>= 8


def get(flat8, at, size):
    """Little-endian, zero-extended."""
    v = np.int64(0)
    for k in range(size - 1, -1, -1):
        v = (v << 8) | np.int64(flat8[at + k])
    return v


def ctx_at(runner):
    return RUNNERS_AT + runner * RUNNER_BYTES


def quota_field(flat8, t, offset, size):
    return get(flat8, QUOTA_AT + t * QUOTA_RECORD_BYTES + offset, size)


def present(flat8, t):
    return quota_field(flat8, t, QUOTA.present, QUOTA_SIZE.present) != 0


def latency_critical(flat8, t):
    return quota_field(flat8, t, QUOTA.klass, QUOTA_SIZE.klass) == CLASS_LATENCY_CRITICAL


def invoke(h, r, tenant, now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout):
    """Run hook ``h``'s active program on runner ``r`` (its ctx is filled).
    r0, or -1 after a fault (the hook then runs the baseline), or -2 when
    the hook has no program."""
    slot = ctl[ACTIVE + h]
    if slot == NO_PROGRAM:
        return np.int64(-2)
    d = desc[h, slot, r]
    rg = regs[r]
    for k in range(11):
        rg[k] = 0
    rg[1] = CTX_ADDRESS
    st = execute(code[h, slot], ctl[NINSNS + h * NPROG_SLOTS + slot], rg, frames[r], flat8, stack,
                 d[D_BASE:D_SIZE], d[D_SIZE:D_PERM], d[D_PERM:D_MAP_RID], d[D_MAP_RID:D_MAP_VALUE_SIZE],
                 d[D_MAP_VALUE_SIZE:D_MAP_ENTRIES], d[D_MAP_ENTRIES:D_NMAPS], d[D_NMAPS], HOOK_BUDGET[h],
                 np.uint64(now), vmout[r])
    atomic_add(ctl, PLANE.insns, vmout[r, 0])  # both runners count here, concurrently on a GPU
    program = ctl[PROGRAM_ID + h * NPROG_SLOTS + slot]
    if vmout[r, 2] > 0:
        trace_event(h, r, tenant, now, program, ctl, host, vmout[r, 3], vmout[r, 2])
    if st == OK:
        return np.int64(rg[0])
    emit(r, ctl, host, KIND.fault, now, h, program, tenant, st, vmout[r, 1], vmout[r, 0])
    if tenant >= 0:
        atomic_add(flat, COUNTERS_WORD + tenant * COUNTER_RECORD_WORDS + COUNTER.faults, 1)
    fallback = NO_PROGRAM
    if slot != BASELINE_SLOT and ctl[NINSNS + h * NPROG_SLOTS + BASELINE_SLOT] > 0:
        fallback = BASELINE_SLOT
    ctl[ACTIVE + h] = fallback
    emit(r, ctl, host, KIND.fallback, now, h, -1 if fallback == NO_PROGRAM else ctl[
        PROGRAM_ID + h * NPROG_SLOTS + fallback], tenant, program, 0, 0)
    return np.int64(-1)


def emit(r, ctl, host, kind, now, h, program, tenant, arg0, arg1, arg2):
    """An event from runner ``r``: the serving runner's goes through the
    device-memory queue (the request path never writes over PCIe), the
    periodic runner's, on the housekeeping warp, straight to the host ring."""
    if r == RUNNER_ADMIT:
        event_stage(ctl, kind, now, h, program, tenant, arg0, arg1, arg2)
    else:
        event_push(host, kind, now, h, program, tenant, arg0, arg1, arg2)


def trace_event(h, r, tenant, now, program, ctl, host, value, calls):
    """A run that called ``trace`` writes one event (its first traced value,
    and how many calls it made) while the tick period's trace budget lasts;
    past it the event is dropped and counted, so a tracing policy cannot
    flood the ring the plane's own events share."""
    if atomic_add(ctl, PLANE.trace_budget, -1) > 0:
        emit(r, ctl, host, KIND.trace, now, h, program, tenant, value, calls, 0)
    else:
        atomic_add(ctl, PLANE.traces_dropped, 1)


def invoke_with_fallback(h, r, tenant, now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout):
    """As ``invoke``; after a fault the baseline runs at once on the same ctx.
    One call site in a loop, so that the interpreter is compiled in once."""
    r0 = np.int64(-1)
    # the active program, then the baseline if it faulted: a bound known only at run time, so that the
    # compiler does not unroll the loop into two interpreters
    tries = 2 if ctl[NINSNS + h * NPROG_SLOTS + BASELINE_SLOT] > 0 else 1
    for _ in range(tries):
        r0 = invoke(h, r, tenant, now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout)
        if r0 != -1:
            break
    return r0


def fill_tick(t, now, ctl, flat8):
    """tick's ctx for tenant ``t``; the tokens it saw."""
    c = ctx_at(RUNNER_TICK)
    seen = max(ctl[tenant_word(t, TENANT.tokens)], 0)
    put(flat8, c + CTX_TICK.now_ns, CTX_TICK_SIZE.now_ns, now)
    put(flat8, c + CTX_TICK.dt_ns, CTX_TICK_SIZE.dt_ns, now - ctl[tenant_word(t, TENANT.last_tick_ns)])
    put(flat8, c + CTX_TICK.tenant, CTX_TICK_SIZE.tenant, t)
    put(flat8, c + CTX_TICK.ntenants, CTX_TICK_SIZE.ntenants, ctl[META.ntenants])
    running = ctl[tenant_word(t, TENANT.running)]
    put(flat8, c + CTX_TICK.running_ctas, CTX_TICK_SIZE.running_ctas, running)
    put(flat8, c + CTX_TICK.queued_ctas, CTX_TICK_SIZE.queued_ctas, ctl[tenant_word(t, TENANT.queued)])
    put(flat8, c + CTX_TICK.cta_tokens, CTX_TICK_SIZE.cta_tokens, seen)
    put(flat8, c + CTX_TICK.epoch, CTX_TICK_SIZE.epoch, ctl[META.epoch])
    put(flat8, c + CTX_TICK.total_running, CTX_TICK_SIZE.total_running, ctl[PLANE.total_running])
    put(flat8, c + CTX_TICK.total_slots, CTX_TICK_SIZE.total_slots, ctl[META.total_slots])
    put(flat8, c + CTX_TICK.be_weight_sum, CTX_TICK_SIZE.be_weight_sum, ctl[PLANE.be_weight_sum])
    put(flat8, c + CTX_TICK.lc_reserved, CTX_TICK_SIZE.lc_reserved, ctl[PLANE.lc_reserved])
    put(flat8, c + CTX_TICK.block_ns, CTX_TICK_SIZE.block_ns, min(ctl[tenant_word(t, TENANT.block_ns)], 0xFFFFFFFF))
    ctl[tenant_word(t, TENANT.last_tick_ns)] = now
    return seen


def apply_tick(t, seen, ctl, flat8, flat):
    c = ctx_at(RUNNER_TICK)
    running = get(flat8, c + CTX_TICK.running_ctas, CTX_TICK_SIZE.running_ctas)  # read-only: as it was filled
    granted = get(flat8, c + CTX_TICK.cta_tokens, CTX_TICK_SIZE.cta_tokens)
    # tick sets the holding; the allowance it implies bounds what exits hand on (gates.cta_exit)
    ctl[tenant_word(t, TENANT.token_limit)] = running + granted if granted > 0 else 0
    delta = granted - seen
    atomic_add(ctl, tenant_word(t, TENANT.tokens), delta)
    if delta > 0:
        atomic_add(flat, counter_word(t, COUNTER.tokens_granted), delta)


def fill_dma(t, now, ctl, flat8):
    """dma_tick's ctx for tenant ``t``; the byte tokens it saw."""
    c = ctx_at(RUNNER_TICK)
    seen = max(ctl[tenant_word(t, TENANT.dma_tokens)], 0)
    moved = ctl[tenant_word(t, TENANT.dma_moved)]
    put(flat8, c + CTX_DMA.now_ns, CTX_DMA_SIZE.now_ns, now)
    put(flat8, c + CTX_DMA.dt_ns, CTX_DMA_SIZE.dt_ns, now - ctl[tenant_word(t, TENANT.last_dma_ns)])
    put(flat8, c + CTX_DMA.tenant, CTX_DMA_SIZE.tenant, t)
    put(flat8, c + CTX_DMA.ntenants, CTX_DMA_SIZE.ntenants, ctl[META.ntenants])
    put(flat8, c + CTX_DMA.bytes_moved, CTX_DMA_SIZE.bytes_moved, moved)
    put(flat8, c + CTX_DMA.dma_tokens, CTX_DMA_SIZE.dma_tokens, seen)
    put(flat8, c + CTX_DMA.pending_bytes, CTX_DMA_SIZE.pending_bytes, ctl[tenant_word(t, TENANT.dma_pending)])
    ctl[tenant_word(t, TENANT.last_dma_ns)] = now
    atomic_add(ctl, tenant_word(t, TENANT.dma_moved), -moved)
    return seen


def apply_dma(t, seen, ctl, flat8):
    c = ctx_at(RUNNER_TICK)
    atomic_add(ctl, tenant_word(t, TENANT.dma_tokens),
               get(flat8, c + CTX_DMA.dma_tokens, CTX_DMA_SIZE.dma_tokens) - seen)


def fill_warp(t, now, ctl, flat8):
    c = ctx_at(RUNNER_TICK)
    put(flat8, c + CTX_WARP.now_ns, CTX_WARP_SIZE.now_ns, now)
    put(flat8, c + CTX_WARP.dt_ns, CTX_WARP_SIZE.dt_ns, now - ctl[tenant_word(t, TENANT.last_warp_ns)])
    put(flat8, c + CTX_WARP.tenant, CTX_WARP_SIZE.tenant, t)
    put(flat8, c + CTX_WARP.ntenants, CTX_WARP_SIZE.ntenants, ctl[META.ntenants])
    put(flat8, c + CTX_WARP.warps_active, CTX_WARP_SIZE.warps_active, ctl[tenant_word(t, TENANT.warps_active)])
    put(flat8, c + CTX_WARP.warps_waiting, CTX_WARP_SIZE.warps_waiting, ctl[tenant_word(t, TENANT.warps_waiting)])
    put(flat8, c + CTX_WARP.warp_cap, CTX_WARP_SIZE.warp_cap, ctl[tenant_word(t, TENANT.warp_cap)])
    ctl[tenant_word(t, TENANT.last_warp_ns)] = now


def fill_therm(now, ctl, flat8):
    c = ctx_at(RUNNER_TICK)
    put(flat8, c + CTX_THERM.now_ns, CTX_THERM_SIZE.now_ns, now)
    put(flat8, c + CTX_THERM.dt_ns, CTX_THERM_SIZE.dt_ns, now - ctl[PLANE.last_therm_ns])
    put(flat8, c + CTX_THERM.valid, CTX_THERM_SIZE.valid, ctl[META.tel_valid])
    put(flat8, c + CTX_THERM.temp_c, CTX_THERM_SIZE.temp_c, ctl[META.temp_c])
    put(flat8, c + CTX_THERM.power_mw, CTX_THERM_SIZE.power_mw, ctl[META.power_mw])
    put(flat8, c + CTX_THERM.sm_clock_mhz, CTX_THERM_SIZE.sm_clock_mhz, ctl[META.sm_clock_mhz])
    put(flat8, c + CTX_THERM.throttle_reasons, CTX_THERM_SIZE.throttle_reasons, ctl[META.throttle_reasons])
    put(flat8, c + CTX_THERM.global_cta_cap, CTX_THERM_SIZE.global_cta_cap, ctl[PLANE.global_cta_cap])


def fill_sm(now, ctl, flat8):
    """sm_tick's ctx: the latency-critical demand, the best-effort workers
    and their block length (as aggregate_tenants found them this tick), the
    drained range as it stands."""
    c = ctx_at(RUNNER_TICK)
    put(flat8, c + CTX_SM.now_ns, CTX_SM_SIZE.now_ns, now)
    put(flat8, c + CTX_SM.dt_ns, CTX_SM_SIZE.dt_ns, now - ctl[PLANE.last_sm_ns])
    put(flat8, c + CTX_SM.num_sms, CTX_SM_SIZE.num_sms, ctl[PLANE.num_sms])
    put(flat8, c + CTX_SM.control_sm, CTX_SM_SIZE.control_sm, ctl[PLANE.smid])
    put(flat8, c + CTX_SM.lc_active, CTX_SM_SIZE.lc_active, ctl[PLANE.lc_active])
    put(flat8, c + CTX_SM.lc_running, CTX_SM_SIZE.lc_running, ctl[PLANE.lc_running])
    put(flat8, c + CTX_SM.lc_idle_ns, CTX_SM_SIZE.lc_idle_ns, now - ctl[PLANE.last_lc_ns])
    put(flat8, c + CTX_SM.lc_reserved, CTX_SM_SIZE.lc_reserved, ctl[PLANE.lc_reserved])
    put(flat8, c + CTX_SM.lc_demand, CTX_SM_SIZE.lc_demand, ctl[PLANE.lc_demand])
    put(flat8, c + CTX_SM.be_workers, CTX_SM_SIZE.be_workers, ctl[PLANE.be_workers])
    put(flat8, c + CTX_SM.be_block_ns, CTX_SM_SIZE.be_block_ns, ctl[PLANE.be_block_ns])
    put(flat8, c + CTX_SM.drain_first, CTX_SM_SIZE.drain_first, ctl[PLANE.drain_first])
    put(flat8, c + CTX_SM.drain_count, CTX_SM_SIZE.drain_count, ctl[PLANE.drain_count])


def apply_sm(now, ctl, flat8, flat):
    """Mark the SMs of the range sm_tick left (cut at the last SM) and clear
    the others; on a change, each tenant's worker SMs follow."""
    c = ctx_at(RUNNER_TICK)
    nsms = ctl[PLANE.num_sms]
    first = min(get(flat8, c + CTX_SM.drain_first, CTX_SM_SIZE.drain_first), nsms)
    count = min(get(flat8, c + CTX_SM.drain_count, CTX_SM_SIZE.drain_count), nsms - first)
    if first == ctl[PLANE.drain_first] and count == ctl[PLANE.drain_count]:
        return
    ctl[PLANE.drain_first] = first
    ctl[PLANE.drain_count] = count
    for sm in range(nsms):
        drained = 1 if first <= sm < first + count and sm != ctl[PLANE.smid] else 0
        if drained != ctl[sm_word(sm, SM.drained)]:
            ctl[sm_word(sm, SM.drained_ns)] = now
            ctl[sm_word(sm, SM.drain_open)] = drained
            store_release(ctl, sm_word(sm, SM.drained), drained)
            if drained == 1 and load_acquire(ctl, sm_word(sm, SM.be_workers)) == 0:
                drain_done(ctl, sm, now)   # nothing to wait for
    count_worker_sms(ctl, flat)


def allowed_sms(ctl, flat, t, lo, hi):
    """SMs in [lo, hi), the control CTA's excepted, that tenant ``t``'s mask allows."""
    control = ctl[PLANE.smid]
    if every_sm(flat, t):
        return hi - lo - (1 if lo <= control < hi else 0)
    n = np.int64(0)
    for sm in range(lo, hi):
        if sm != control and mask_bit(flat, t, sm):
            n += 1
    return n


def count_worker_sms(ctl, flat):
    """Each tenant's ``worker_sms``, the SMs its persistent workers may stay
    on (in its mask; for a best-effort tenant, not drained), and
    ``drained_sms``, those of its mask it may not stay on because they are
    drained: its launcher's top-ups size themselves by both."""
    first = ctl[PLANE.drain_first]
    end = first + ctl[PLANE.drain_count]
    for t in range(ctl[META.ntenants]):
        barred = allowed_sms(ctl, flat, t, first, end) if best_effort(flat, t) else 0
        ctl[tenant_word(t, TENANT.worker_sms)] = allowed_sms(ctl, flat, t, 0, ctl[PLANE.num_sms]) - barred
        ctl[tenant_word(t, TENANT.drained_sms)] = barred


def fill_ctx(h, t, now, ctl, flat8):
    """Runner 0's ctx for periodic hook ``h`` and tenant ``t`` (-1: the
    plane-wide therm_tick); what ``apply_ctx`` needs of it."""
    if h == HOOK.tick:
        return fill_tick(t, now, ctl, flat8)
    if h == HOOK.dma_tick:
        return fill_dma(t, now, ctl, flat8)
    if h == HOOK.warp_throttle_tick:
        fill_warp(t, now, ctl, flat8)
    elif h == HOOK.sm_tick:
        fill_sm(now, ctl, flat8)
    else:
        fill_therm(now, ctl, flat8)
    return np.int64(0)


def apply_ctx(h, t, seen, now, ctl, flat8, flat):
    """Take what a periodic hook's run left in its ctx."""
    c = ctx_at(RUNNER_TICK)
    if h == HOOK.tick:
        apply_tick(t, seen, ctl, flat8, flat)
    elif h == HOOK.dma_tick:
        apply_dma(t, seen, ctl, flat8)
    elif h == HOOK.warp_throttle_tick:
        ctl[tenant_word(t, TENANT.warp_cap)] = get(flat8, c + CTX_WARP.warp_cap, CTX_WARP_SIZE.warp_cap)
    elif h == HOOK.sm_tick:
        apply_sm(now, ctl, flat8, flat)
    else:
        ctl[PLANE.global_cta_cap] = get(flat8, c + CTX_THERM.global_cta_cap, CTX_THERM_SIZE.global_cta_cap)


def run_periodic(h, t, now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout):
    """One periodic hook's run for one tenant: the housekeeping warp's only
    call into the interpreter."""
    seen = fill_ctx(h, t, now, ctl, flat8)
    if invoke_with_fallback(h, RUNNER_TICK, t, now, ctl, host, code, flat8, flat, desc, regs, frames, stack,
                            vmout) >= 0:
        apply_ctx(h, t, seen, now, ctl, flat8, flat)


def aggregate_tenants(now, ctl, host, flat8):
    """The plane-wide inputs of tick, cta_admit and sm_tick.  A tenant is
    active while a CTA asked, or the host announced a launch, within the
    window, while CTAs of it run, or while launches announced are not yet
    reported finished.  Best-effort: the weights of the active ones, their
    persistent workers, their longest mean block.  Latency-critical: the
    slots held back for them (max_ctas), the CTAs of their latest launches
    (each at most max_ctas), how many are active (``now`` becomes the last
    time one was), their running CTAs."""
    weights = reserved = demand = lc_active = lc_running = be_workers = be_block_ns = np.int64(0)
    for t in range(ctl[META.ntenants]):
        if not present(flat8, t):
            continue
        launches = host[REGION.demand + t]
        finished = host[REGION.finished + t]
        if launches != ctl[tenant_word(t, TENANT.demand_seen)]:
            ctl[tenant_word(t, TENANT.demand_seen)] = launches
            ctl[tenant_word(t, TENANT.last_demand_ns)] = now
        running = ctl[tenant_word(t, TENANT.running)]
        in_flight = 0 <= finished < launches
        if latency_critical(flat8, t):
            cap = quota_field(flat8, t, QUOTA.max_ctas, QUOTA_SIZE.max_ctas)
            reserved += cap
            demand += min(max(host[REGION.launch_ctas + t], 0), cap)
            lc_running += max(running, 0)
            if running > 0 or in_flight:
                lc_active += 1
            continue
        be_workers += max(ctl[tenant_word(t, TENANT.workers)], 0)
        be_block_ns = max(be_block_ns, ctl[tenant_word(t, TENANT.block_ns)])
        if now - ctl[tenant_word(t, TENANT.last_demand_ns)] < ctl[PLANE.active_window_ns] or running > 0 or in_flight:
            weights += quota_field(flat8, t, QUOTA.weight, QUOTA_SIZE.weight)
    ctl[PLANE.be_weight_sum] = weights
    ctl[PLANE.lc_reserved] = reserved
    ctl[PLANE.lc_demand] = demand
    ctl[PLANE.lc_active] = lc_active
    ctl[PLANE.lc_running] = lc_running
    ctl[PLANE.be_workers] = be_workers
    ctl[PLANE.be_block_ns] = min(be_block_ns, 0xFFFFFFFF)
    if lc_active > 0:
        ctl[PLANE.last_lc_ns] = now


def mirror(lane, lanes, ctl, host, flat):
    """The housekeeping warp's lanes copy counters and histograms where the
    host reads them (``lane_copy``: posted stores, a 1/lanes share each),
    lane 0 the plane totals; every store is visible to the host before the
    lanes go on."""
    lane_copy(host, REGION.counters, flat, COUNTERS_WORD, MAX_TENANTS * COUNTER_RECORD_WORDS, lane, lanes)
    lane_copy(host, REGION.histogram, ctl, HIST_BASE, MAX_TENANTS * HIST_BUCKETS, lane, lanes)
    if lane == 0:
        mirror_totals(ctl, host)
    fence_sys()
    warp_sync()


def mirror_totals(ctl, host):
    host[HEADER.decisions] = ctl[PLANE.decisions]
    host[HEADER.fast_grants] = ctl[PLANE.fast_grants]
    host[HEADER.requests] = ctl[PLANE.requests]
    host[HEADER.insns] = ctl[PLANE.insns]
    host[HEADER.bypassed] = ctl[PLANE.bypassed]
    host[HEADER.traces_dropped] = ctl[PLANE.traces_dropped]
    host[HEADER.reaction_ns] = ctl[PLANE.reaction_ns]
    host[HEADER.epoch] = ctl[META.epoch]
    host[HEADER.loops] = ctl[PLANE.loops]
    host[HEADER.drains] = ctl[PLANE.drains]
    host[HEADER.drain_wait_sum_ns] = ctl[PLANE.drain_wait_sum_ns]
    host[HEADER.drain_wait_max_ns] = ctl[PLANE.drain_wait_max_ns]
    first, count = ctl[PLANE.drain_first], ctl[PLANE.drain_count]
    host[HEADER.drained_sms] = count - (1 if first <= ctl[PLANE.smid] < first + count else 0)


def due(now, ctl, last, period):
    return ctl[period] > 0 and now - ctl[last] >= ctl[period]


def start_tick_period(now, ctl, host, flat8):
    loops = max(ctl[PLANE.period_loops], 1)
    host[HEADER.loop_period_ns] = (now - ctl[PLANE.last_tick_ns]) // loops
    ctl[PLANE.period_loops] = 0
    ctl[PLANE.trace_budget] = TRACE_EVENTS_PER_TICK
    aggregate_tenants(now, ctl, host, flat8)


def periodic(now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout):
    """The periodic hooks that are due, in PERIODIC_HOOKS order: per tenant
    (therm_tick and sm_tick once, plane-wide), all through one
    ``run_periodic``; True when a tick period's hooks ran (the counters are
    then mirrored)."""
    ticked = False
    for k in range(len(PERIODIC_HOOKS)):
        h = PERIODIC_HOOKS[k]
        if not due(now, ctl, PERIODIC_LAST[k], PERIODIC_PERIOD[k]):
            continue
        if h == HOOK.tick:
            start_tick_period(now, ctl, host, flat8)
        # the plane-wide hooks run once, as tenant -1
        first, end = (-1, 0) if h == HOOK.therm_tick or h == HOOK.sm_tick else (0, ctl[META.ntenants])
        for t in range(first, end):
            if t < 0 or present(flat8, t):
                run_periodic(h, t, now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout)
        ctl[PERIODIC_LAST[k]] = now  # after the runs: therm_tick's dt_ns is the time since the last one
        ticked = ticked or h == HOOK.tick
    return ticked


def stage_snapshot(lane, lanes, ctl, host):
    """When a quotas command asked for it (``PLANE.staged`` is WANTED), the
    housekeeping warp's lanes copy the published snapshot into the staging
    area (coalesced, over PCIe), so a torn read leaves the snapshot in use
    untouched; ``PLANE.staged`` becomes STAGED or TORN."""
    if lane_broadcast(ctl[PLANE.staged]) != WANTED:   # a device word: no PCIe read when no command waits
        return
    epoch = snapshot_copy(lane, lanes, host, ctl, STAGE)
    if lane == 0:
        ctl[PLANE.staged] = STAGED if epoch >= 0 else TORN
        if epoch >= 0:
            ctl[PLANE.snapshots_staged] += 1


def install_staged(lane, lanes, ctl, flat):
    """A consistent staged copy into the words the hooks read (device
    memory, the lanes' share each), just before lane 0 adopts it."""
    if lane_broadcast(ctl[PLANE.staged]) != STAGED:
        return
    lane_copy(flat, QUOTA_WORD, ctl, STAGE + META_WORDS, QUOTA_WORDS_ALL, lane, lanes)
    lane_copy(ctl, 0, ctl, STAGE, META_WORDS, lane, lanes)
    warp_sync()


def adopt_snapshot(now, seq, ctl, host, flat8, flat):
    """The rest of adopting the snapshot ``stage_snapshot`` put in place:
    first warp caps, the plane-wide aggregates, the worker SMs, the event."""
    epoch = ctl[META.epoch]
    for t in range(ctl[META.ntenants]):
        if ctl[tenant_word(t, TENANT.warp_cap)] == 0:
            ctl[tenant_word(t, TENANT.warp_cap)] = quota_field(flat8, t, QUOTA.warp_cap, QUOTA_SIZE.warp_cap)
    aggregate_tenants(now, ctl, host, flat8)
    count_worker_sms(ctl, flat)  # the masks and classes may have changed
    host[HEADER.epoch] = epoch
    event_push(host, KIND.quotas, now, -1, -1, -1, epoch, seq, 0)
    return True


def run_command(at, now, ctl, host, flat8, flat):
    """Carry out one command record: 1 for stop, -1 to leave it for the next
    iteration (the snapshot was being written), else 0."""
    op = host[at + COMMAND.op]
    seq = host[at + COMMAND.seq]
    h = host[at + COMMAND.hook]
    slot = host[at + COMMAND.slot]
    if op == OP.stop:
        return 1
    if op == OP.quotas:
        staged = ctl[PLANE.staged]
        if staged == STAGED:
            ctl[PLANE.staged] = NOT_STAGED
            ctl[PLANE.torn_loops] = 0
            adopt_snapshot(now, seq, ctl, host, flat8, flat)
        elif staged == TORN and ctl[PLANE.torn_loops] >= TORN_LOOPS_MAX:
            # the host never finished its write (a publisher died mid-write): refuse, keep the old snapshot
            ctl[PLANE.staged] = NOT_STAGED
            ctl[PLANE.torn_loops] = 0
            event_push(host, KIND.bad_command, now, -1, -1, -1, op, seq, 0)
        else:  # the warp copies it after this call (again, after a torn copy); the command waits for that
            if staged == TORN:
                ctl[PLANE.torn_loops] += 1
            ctl[PLANE.staged] = WANTED
            return -1
    elif op == OP.swap and 0 <= h < len(HOOK) and 0 <= slot < BASELINE_SLOT and 0 < host[
            at + COMMAND.arg0] <= MAX_INSNS:
        ctl[NINSNS + h * NPROG_SLOTS + slot] = host[at + COMMAND.arg0]
        ctl[PROGRAM_ID + h * NPROG_SLOTS + slot] = host[at + COMMAND.program]
        ctl[ACTIVE + h] = slot
        event_push(host, KIND.swapped, now, h, host[at + COMMAND.program], -1, seq, slot, 0)
    elif op == OP.unload and 0 <= h < len(HOOK):
        slot = BASELINE_SLOT if ctl[NINSNS + h * NPROG_SLOTS + BASELINE_SLOT] > 0 else NO_PROGRAM
        ctl[ACTIVE + h] = slot
        event_push(host, KIND.swapped, now, h, -1 if slot == NO_PROGRAM else ctl[
            PROGRAM_ID + h * NPROG_SLOTS + slot], -1, seq, slot, 0)
    elif op == OP.periods:
        for k in range(3):
            if host[at + COMMAND.arg0 + k] > 0:
                ctl[PLANE.tick_period_ns + k] = host[at + COMMAND.arg0 + k]
        if host[at + COMMAND.arg2] > 0:
            ctl[PLANE.therm_period_ns] = host[at + COMMAND.arg2]
    else:
        event_push(host, KIND.bad_command, now, h, host[at + COMMAND.program], -1, op, seq, 0)
    return 0


def housekeeping(now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout):
    """The serial part of one control-loop iteration (lane 0 of the
    housekeeping warp): CONTINUE, STOPPED (told to stop) or TICKED (a tick
    period's hooks ran)."""
    host[HEADER.heartbeat_ns] = now  # a posted store: the loop reads the host area only for commands
    ctl[PLANE.loops] += 1
    ctl[PLANE.period_loops] += 1
    forward_staged(ctl, host)
    for _ in range(COMMANDS_PER_LOOP):
        at = command_pending(host)
        if at < 0:
            break
        outcome = run_command(at, now, ctl, host, flat8, flat)
        if outcome < 0:
            break
        command_release(host)
        if outcome == 1:
            forward_staged(ctl, host)
            return STOPPED
    return TICKED if periodic(now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout) else CONTINUE


def control_warp(lane, lanes, now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout):
    """One iteration of the housekeeping warp, run by its ``lanes`` lanes
    together (one lane on the CPU targets): lane 0 runs ``housekeeping``;
    all of them copy the bulk words: a new snapshot in over PCIe when a
    quotas command waits (it is adopted in the next iteration), and the
    counters out.  1 (in every lane) when told to stop."""
    install_staged(lane, lanes, ctl, flat)
    outcome = lane_broadcast(housekeeping(now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout)
                             if lane == 0 else CONTINUE)
    stage_snapshot(lane, lanes, ctl, host)
    if outcome == CONTINUE:
        return 0
    mirror(lane, lanes, ctl, host, flat)
    if lane == 0:
        if outcome == STOPPED:
            host[HEADER.exit_reason] = 1
            event_push(host, KIND.stopped, now, -1, -1, -1, 1, 0, 0)
        else:
            host[HEADER.ticks] += 1
    return 1 if outcome == STOPPED else 0


def hist_bucket(wait_ns):
    b = 0
    w = wait_ns >> 7
    while w > 0 and b < HIST_BUCKETS - 1:
        w >>= 1
        b += 1
    return b


def serve_slot(s, now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout):
    """Decide slot ``s`` if a request is posted there; 1 if it decided."""
    if atomic_cas(ctl, slot_word(s, SLOT.state), POSTED, SERVING) != POSTED:
        return 0
    decide_claimed(s, now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout)
    return 1


def decide_claimed(s, now, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout):
    """Decide the request in slot ``s``, which this CTA moved to SERVING."""
    t = ctl[slot_word(s, SLOT.tenant)]
    wait = now - ctl[slot_word(s, SLOT.post_ns)]
    decision = DEFER
    under_cap = ctl[PLANE.total_running] < ctl[PLANE.global_cta_cap]
    # a plain look first: with no token held, the request path skips take_token's two atomics
    if under_cap and ctl[tenant_word(t, TENANT.tokens)] > 0 and take_token(ctl, t):
        # tick granted tokens after the worker looked: one of them admits it, with no policy run (a deferral
        # here would leave the token unused while a persistent worker leaves its SM)
        decision = ADMIT
    elif under_cap:
        c = ctx_at(RUNNER_ADMIT)
        put(flat8, c + CTX_ADMIT.now_ns, CTX_ADMIT_SIZE.now_ns, now)
        put(flat8, c + CTX_ADMIT.wait_ns, CTX_ADMIT_SIZE.wait_ns, wait)
        put(flat8, c + CTX_ADMIT.tenant, CTX_ADMIT_SIZE.tenant, t)
        put(flat8, c + CTX_ADMIT.ntenants, CTX_ADMIT_SIZE.ntenants, ctl[META.ntenants])
        put(flat8, c + CTX_ADMIT.running_ctas, CTX_ADMIT_SIZE.running_ctas, ctl[tenant_word(t, TENANT.running)])
        put(flat8, c + CTX_ADMIT.queued_ctas, CTX_ADMIT_SIZE.queued_ctas, ctl[tenant_word(t, TENANT.queued)])
        put(flat8, c + CTX_ADMIT.cta_tokens, CTX_ADMIT_SIZE.cta_tokens, max(ctl[tenant_word(t, TENANT.tokens)], 0))
        put(flat8, c + CTX_ADMIT.total_running, CTX_ADMIT_SIZE.total_running, ctl[PLANE.total_running])
        put(flat8, c + CTX_ADMIT.total_slots, CTX_ADMIT_SIZE.total_slots, ctl[META.total_slots])
        put(flat8, c + CTX_ADMIT.sm, CTX_ADMIT_SIZE.sm, ctl[slot_word(s, SLOT.sm)])
        put(flat8, c + CTX_ADMIT.be_weight_sum, CTX_ADMIT_SIZE.be_weight_sum, ctl[PLANE.be_weight_sum])
        put(flat8, c + CTX_ADMIT.lc_reserved, CTX_ADMIT_SIZE.lc_reserved, ctl[PLANE.lc_reserved])
        put(flat8, c + CTX_ADMIT.block_ns, CTX_ADMIT_SIZE.block_ns, min(ctl[tenant_word(t, TENANT.block_ns)],
                                                                       0xFFFFFFFF))
        r0 = invoke_with_fallback(HOOK.cta_admit, RUNNER_ADMIT, t, now, ctl, host, code, flat8, flat, desc, regs,
                                  frames, stack, vmout)
        # No program, or the baseline itself faulted: admit rather than stall the tenant.
        decision = DEFER if r0 == 0 else ADMIT
    atomic_add(ctl, tenant_word(t, TENANT.queued), -1)
    if decision == ADMIT:
        note_running(ctl, t, 1)  # before the worker can see the decision and start
    ctl[slot_word(s, SLOT.decision)] = decision
    ctl[slot_word(s, SLOT.decided_ns)] = now
    fence()
    if atomic_cas(ctl, slot_word(s, SLOT.state), SERVING, DECIDED) != SERVING:
        # the worker abandoned the wait meanwhile and bypasses: take the admission back
        if decision == ADMIT:
            note_running(ctl, t, -1)
        store_release(ctl, slot_word(s, SLOT.state), FREE)
    elif decision == DEFER:
        atomic_add(flat, counter_word(t, COUNTER.deferred), 1)
    ctl[HIST_BASE + t * HIST_BUCKETS + hist_bucket(wait)] += 1
    ctl[PLANE.requests] += 1
    ctl[PLANE.decisions] += 1
    ctl[PLANE.reaction_ns] = wait  # mirrored to the host once per tick: the serve path stays off PCIe
    every = ctl[PLANE.sample_every]
    active = ctl[ACTIVE + HOOK.cta_admit]
    if every > 0 and ctl[PLANE.decisions] % every == 0 and active != NO_PROGRAM:
        event_stage(ctl, KIND.decision, now, HOOK.cta_admit, ctl[PROGRAM_ID + HOOK.cta_admit * NPROG_SLOTS + active],
                    t, decision, wait, 0)


DEVICE_FUNCTIONS = (put, get, ctx_at, quota_field, present, latency_critical, invoke, emit, trace_event,
                    invoke_with_fallback,
                    fill_tick, apply_tick, fill_dma, apply_dma, fill_warp, fill_therm, fill_sm, apply_sm, allowed_sms,
                    count_worker_sms, fill_ctx, apply_ctx,
                    run_periodic, aggregate_tenants, mirror, mirror_totals, due, start_tick_period, periodic,
                    stage_snapshot, install_staged, adopt_snapshot, run_command, housekeeping, control_warp,
                    hist_bucket, serve_slot, decide_claimed)
