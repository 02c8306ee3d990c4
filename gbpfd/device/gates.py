"""Worker-side gates (shared source, see ``gbpfd.specialize``): the steps a worker
CTA takes to enter, wait, leave, copy and yield.

Each function is one bounded step; the target composes them into waits
(``kernels_cuda`` spins on the GPU with a time bound, the simulated device
schedules the steps in virtual time), so no step here can block.  Counts
that admission decisions depend on (running, tokens, queued) are changed
with atomics at the moment they become true.
"""
from gbpfd.device.state import (ABANDONED, CLAIMED, CLASS_LATENCY_CRITICAL, COUNTER, COUNTER_RECORD_WORDS,
                                COUNTERS_WORD, DECIDED, ENTER_BYPASS, ENTER_POLICY, ENTER_TOKEN, FREE, MAX_TENANTS,
                                NSLOTS, PLANE, POSTED, QUOTA, QUOTA_RECORD_WORDS, QUOTA_WORD, SERVING, SLOT, SLOT_BASE,
                                SLOT_STRIDE, SM, SM_BASE, SM_STRIDE, SM_TENANT_BASE, TENANT, TENANT_BASE,
                                TENANT_STRIDE)

#: a block-length sample moves the tenant's mean by 1/2**BLOCK_NS_SHIFT of the difference
BLOCK_NS_SHIFT = 3


def tenant_word(t, field):
    return TENANT_BASE + t * TENANT_STRIDE + field


def slot_word(s, field):
    return SLOT_BASE + s * SLOT_STRIDE + field


def counter_word(t, field):
    return COUNTERS_WORD + t * COUNTER_RECORD_WORDS + field


def sm_word(sm, field):
    return SM_BASE + sm * SM_STRIDE + field


def sm_tenant_word(sm, t):
    return SM_TENANT_BASE + sm * MAX_TENANTS + t


def quota_u32(flat, t, offset):
    """The 4-byte field at byte ``offset`` of tenant ``t``'s quota record, from the word view."""
    return (flat[QUOTA_WORD + t * QUOTA_RECORD_WORDS + offset // 8] >> (8 * (offset % 8))) & 0xFFFFFFFF


def best_effort(flat, t):
    return quota_u32(flat, t, QUOTA.klass) != CLASS_LATENCY_CRITICAL


def every_sm(flat, t):
    """Whether tenant ``t``'s SM mask is empty, which allows every SM."""
    at = QUOTA_WORD + t * QUOTA_RECORD_WORDS + QUOTA.sm_mask0 // 8
    return flat[at] == 0 and flat[at + 1] == 0 and flat[at + 2] == 0


def mask_bit(flat, t, sm):
    """SM ``sm``'s bit of tenant ``t``'s SM mask."""
    return (flat[QUOTA_WORD + t * QUOTA_RECORD_WORDS + QUOTA.sm_mask0 // 8 + sm // 64] >> (sm % 64)) & 1 == 1


def sm_allowed(flat, t, sm):
    """Whether tenant ``t``'s SM mask includes SM ``sm``."""
    return every_sm(flat, t) or mask_bit(flat, t, sm)


def note_running(ctl, t, delta):
    """A CTA of tenant ``t`` got in (``delta`` 1) or left, or an admission was taken back (-1)."""
    atomic_add(ctl, tenant_word(t, TENANT.running), delta)
    atomic_add(ctl, PLANE.total_running, delta)


def count_block(flat, t, how):
    """The worker starts a logical block (a gate CTA's body, or one persistent
    block): ``admitted`` counts blocks, so a worker that got in and found no
    block left counts nothing; a bypassed one was counted by ``bypass``."""
    if how == ENTER_TOKEN or how == ENTER_POLICY:
        atomic_add(flat, counter_word(t, COUNTER.admitted), 1)


def worker_arrives(ctl, flat, t, sm):
    """A persistent worker CTA of tenant ``t`` starts on SM ``sm``; 1 when
    it counts as best-effort there (pass it to ``worker_leaves``: the class
    may change while it runs)."""
    atomic_add(ctl, tenant_word(t, TENANT.workers), 1)
    atomic_add(ctl, sm_tenant_word(sm, t), 1)
    if not best_effort(flat, t):
        return 0
    atomic_add(ctl, sm_word(sm, SM.be_workers), 1)
    return 1


def worker_leaves(ctl, t, sm, be, now):
    """The worker ``worker_arrives`` counted leaves its SM.  The last
    best-effort worker to leave a drained SM completes the drain."""
    atomic_add(ctl, tenant_word(t, TENANT.workers), -1)
    atomic_add(ctl, sm_tenant_word(sm, t), -1)
    if be == 0:
        return
    if atomic_add(ctl, sm_word(sm, SM.be_workers), -1) == 1 and load_acquire(ctl, sm_word(sm, SM.drained)) == 1:
        drain_done(ctl, sm, now)


def drain_done(ctl, sm, now):
    """SM ``sm`` has no best-effort worker left since its mark: the first
    to see it (the last worker to leave, or the control CTA finding the SM
    empty as it marks it) counts the drain and its wait, once per mark; a
    worker that lands on the drained SM later and leaves at once is counted
    in ``drained``, not as another drain."""
    if atomic_cas(ctl, sm_word(sm, SM.drain_open), 1, 0) == 1:
        wait = now - ctl[sm_word(sm, SM.drained_ns)]
        atomic_add(ctl, PLANE.drains, 1)
        atomic_add(ctl, PLANE.drain_wait_sum_ns, wait)
        atomic_max(ctl, PLANE.drain_wait_max_ns, wait)


def worker_must_leave(ctl, flat, t, sm, be):
    """At a block boundary: True when the worker is to leave its SM (counted
    in ``drained``): the SM is drained for latency-critical work and the
    worker is best-effort, the tenant's SM mask excludes it, or the tenant
    has more workers on it than its max_ctas_per_sm.  Leaving, not parking:
    a parked CTA keeps its threads, registers and shared memory, so the SM
    would stay as full to the block scheduler as before."""
    cap = quota_u32(flat, t, QUOTA.max_ctas_per_sm)
    leave = (be == 1 and load_acquire(ctl, sm_word(sm, SM.drained)) == 1) or not sm_allowed(flat, t, sm) or (
        cap > 0 and load_acquire(ctl, sm_tenant_word(sm, t)) > cap)
    if leave:
        atomic_add(flat, counter_word(t, COUNTER.drained), 1)
    return leave


def note_block_ns(ctl, t, ns):
    """A persistent block of tenant ``t`` took ``ns``: fold it into the
    tenant's moving mean (a plain store: a lost sample among racing workers
    only slows the mean's response)."""
    mean = ctl[tenant_word(t, TENANT.block_ns)]
    ctl[tenant_word(t, TENANT.block_ns)] = ns if mean == 0 else mean + ((ns - mean) >> BLOCK_NS_SHIFT)


def try_token(ctl, t, now):
    """Take one CTA token with one atomic; True when the CTA may start."""
    ctl[tenant_word(t, TENANT.last_demand_ns)] = now
    # acquire loads: a retry loop over plain loads may be served a stale cached word, or hoisted
    if load_acquire(ctl, PLANE.total_running) >= load_acquire(ctl, PLANE.global_cta_cap):
        return False
    if take_token(ctl, t):
        note_running(ctl, t, 1)
        atomic_add(ctl, PLANE.fast_grants, 1)
        return True
    return False


def take_token(ctl, t):
    """One of tenant ``t``'s CTA tokens, with one atomic; False (and the word restored) when it has none."""
    if atomic_add(ctl, tenant_word(t, TENANT.tokens), -1) > 0:
        return True
    atomic_add(ctl, tenant_word(t, TENANT.tokens), 1)
    return False


def post_request(ctl, t, sm, now):
    """Claim a free request slot and post tenant ``t``'s request from a CTA
    on SM ``sm``; the slot, or -1 when every slot is taken (one pass, no spin)."""
    # %globaltimer moves in steps (32 ns or more), so its low bits are zero: fold higher ones in to spread
    first = (t * 7 + (now ^ (now >> 7) ^ (now >> 13))) % NSLOTS
    for k in range(NSLOTS):
        s = (first + k) % NSLOTS
        if atomic_cas(ctl, slot_word(s, SLOT.state), FREE, CLAIMED) == FREE:
            ctl[slot_word(s, SLOT.tenant)] = t
            ctl[slot_word(s, SLOT.post_ns)] = now
            ctl[slot_word(s, SLOT.sm)] = sm
            atomic_add(ctl, tenant_word(t, TENANT.queued), 1)
            fence()
            store_release(ctl, slot_word(s, SLOT.state), POSTED)
            return s
    return -1


def poll_request(ctl, s):
    """-1 while undecided; else the decision (ADMIT or DEFER), and the slot is freed.
    An admitted CTA was already counted as running by the control CTA."""
    if load_acquire(ctl, slot_word(s, SLOT.state)) != DECIDED:
        return -1
    decision = ctl[slot_word(s, SLOT.decision)]
    store_release(ctl, slot_word(s, SLOT.state), FREE)
    return decision


def abandon_request(ctl, s):
    """Give up waiting on slot ``s`` (one step, no wait).  -1 when the
    request was withdrawn before the control CTA read it, or marked
    ABANDONED while it was deciding (it then takes back what it counted and
    frees the slot); else the decision it had already published.  Either
    way the request is admitted or bypassed, never both."""
    if atomic_cas(ctl, slot_word(s, SLOT.state), POSTED, FREE) == POSTED:
        atomic_add(ctl, tenant_word(ctl[slot_word(s, SLOT.tenant)], TENANT.queued), -1)
        return -1
    if atomic_cas(ctl, slot_word(s, SLOT.state), SERVING, ABANDONED) == SERVING:
        return -1
    return poll_request(ctl, s)


def bypass(ctl, flat, t):
    """The wait hit its bound: run anyway, and say so in the counters."""
    note_running(ctl, t, 1)
    atomic_add(flat, counter_word(t, COUNTER.bypassed), 1)
    atomic_add(ctl, PLANE.bypassed, 1)
    return ENTER_BYPASS


def cta_exit(ctl, t, how):
    """The CTA (or persistent block) is done.  An admitted one hands its
    token on only while the tenant, with the tokens it holds, stays under
    the token limit tick last set (its allowance; 0 at or over it): so a
    lowered allowance is not held up by tokens circulating from exit to
    entry, and the tenant's next CTAs go to cta_admit, the policy's law."""
    left = atomic_add(ctl, tenant_word(t, TENANT.running), -1) - 1
    atomic_add(ctl, PLANE.total_running, -1)
    if how != ENTER_TOKEN and how != ENTER_POLICY:
        return
    held = max(load_acquire(ctl, tenant_word(t, TENANT.tokens)), 0)
    if left + held < load_acquire(ctl, tenant_word(t, TENANT.token_limit)):
        atomic_add(ctl, tenant_word(t, TENANT.tokens), 1)


def dma_take(ctl, flat, t, nbytes):
    """Take ``nbytes`` paced-copy byte tokens; False when there are too few."""
    if atomic_add(ctl, tenant_word(t, TENANT.dma_tokens), -nbytes) >= nbytes:
        atomic_add(ctl, tenant_word(t, TENANT.dma_moved), nbytes)
        atomic_add(ctl, tenant_word(t, TENANT.dma_pending), -nbytes)
        atomic_add(flat, counter_word(t, COUNTER.dma_bytes), nbytes)
        return True
    atomic_add(ctl, tenant_word(t, TENANT.dma_tokens), nbytes)
    return False


def dma_announce(ctl, t, nbytes):
    """A paced copy of ``nbytes`` starts waiting for tokens (dma_tick sees it as pending)."""
    atomic_add(ctl, tenant_word(t, TENANT.dma_pending), nbytes)


def warp_enter(ctl, t):
    """Take one of the tenant's warp slots; False while it is at its cap."""
    if atomic_add(ctl, tenant_word(t, TENANT.warps_active), 1) < load_acquire(ctl, tenant_word(t, TENANT.warp_cap)):
        return True
    atomic_add(ctl, tenant_word(t, TENANT.warps_active), -1)
    return False


def warp_leave(ctl, t):
    atomic_add(ctl, tenant_word(t, TENANT.warps_active), -1)


def warp_throttled(ctl, flat, t, waited_ns, waiting_delta):
    """Account a warp's wait at the gate (``waiting_delta`` +1 as it starts, -1 as it ends)."""
    atomic_add(ctl, tenant_word(t, TENANT.warps_waiting), waiting_delta)
    atomic_add(flat, counter_word(t, COUNTER.throttled_ns), waited_ns)


DEVICE_FUNCTIONS = (tenant_word, slot_word, counter_word, sm_word, sm_tenant_word, quota_u32, best_effort,
                    every_sm, mask_bit, sm_allowed, note_running, count_block, worker_arrives, worker_leaves,
                    drain_done, worker_must_leave, note_block_ns, try_token, take_token, post_request, poll_request,
                    abandon_request, bypass, cta_exit, dma_take, dma_announce, warp_enter, warp_leave, warp_throttled)
