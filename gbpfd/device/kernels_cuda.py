"""The GPU's compositions of the shared device source: the persistent
control kernel and the worker-side waits (device code only: host code
lives in gbpfd.plane.backend_cuda, see gbpfd.device).

The control CTA is two warps.  Warp 1 runs ``control_warp`` in a loop:
lane 0 the commands and periodic hooks, all 32 lanes the coalesced copies
of a new snapshot in and of the counters out; in warp 0 every lane polls its
request slots with one acquire load each, a ballot gathers the posted
ones, and lane 0 decides them in slot order, so one poll round costs one
L2 round trip, not one per slot, and never waits on the host.
Workers wait with time bounds from ``%globaltimer``; past the bound they
bypass and the bypass is counted.
"""
import numpy as np
from numba import cuda

from gbpfd.bridge.layout import HEADER
from gbpfd.device import state as S
from gbpfd.device.build import for_cuda
from gbpfd.device.prims_cuda import globaltimer, load_acquire, smid, store_release, store_release_sys

_D = for_cuda()
# Numba resolves module globals, not attributes of a namespace object.
abandon_request = _D.abandon_request
bypass = _D.bypass
count_block = _D.count_block
_cta_exit = _D.cta_exit
dma_announce = _D.dma_announce
dma_take = _D.dma_take
control_warp = _D.control_warp
note_block_ns = _D.note_block_ns
worker_arrives = _D.worker_arrives
worker_leaves = _D.worker_leaves
worker_must_leave = _D.worker_must_leave
poll_request = _D.poll_request
post_request = _D.post_request
serve_slot = _D.serve_slot
tenant_word = _D.tenant_word
try_token = _D.try_token
warp_enter = _D.warp_enter
warp_leave = _D.warp_leave
warp_throttled = _D.warp_throttled
FULL_MASK = 0xFFFFFFFF
WARP = 32
CONTROL_THREADS = 2 * WARP
#: the policy VM's registers, call frames and stacks, per runner (module constants: a shared array's shape must be one)
REGS_SHAPE = (S.NRUNNERS, S.REGS_WORDS)
FRAMES_SHAPE = (S.NRUNNERS,) + S.FRAMES_SHAPE
STACK_AREA_BYTES = S.STACK_AREA_BYTES
BACKOFF_MIN_NS = 32
BACKOFF_MAX_NS = 4096


@cuda.jit
def control_kernel(ctl, host, code, flat8, flat, desc, vmout):
    """Warp 1 runs housekeeping (lane 0) and copies the snapshot in and the
    counters out (all lanes): the only code that touches the host area over
    PCIe; warp 0 serves requests and never waits on it.
    The policy VM's registers, call frames and eBPF stacks are in shared
    memory, a part per runner (each used by one thread), not in global
    memory."""
    regs = cuda.shared.array(REGS_SHAPE, np.uint64)
    frames = cuda.shared.array(FRAMES_SHAPE, np.uint64)
    stack = cuda.shared.array(STACK_AREA_BYTES, np.uint8)
    tid = cuda.threadIdx.x
    lane = tid % WARP
    if tid == 0:
        sm = smid()
        ctl[S.PLANE.smid] = sm
        host[HEADER.smid] = sm
        store_release_sys(host, HEADER.ready, 1)
    if tid >= WARP:
        while control_warp(lane, WARP, globaltimer(), ctl, host, code, flat8, flat, desc, regs, frames, stack,
                           vmout) == 0:
            pass
        if lane == 0:
            store_release(ctl, S.PLANE.stop, 1)
        return
    stop = 0
    while stop == 0:
        for k in range(S.SLOTS_PER_LANE):
            s = lane + WARP * k
            posted = load_acquire(ctl, S.SLOT_BASE + s * S.SLOT_STRIDE + S.SLOT.state) == S.POSTED
            bits = cuda.ballot_sync(FULL_MASK, posted)
            if lane == 0:
                for b in range(WARP):
                    if (bits >> b) & 1:
                        serve_slot(b + WARP * k, globaltimer(), ctl, host, code, flat8, flat, desc, regs, frames,
                                   stack, vmout)
        if lane == 0:
            stop = load_acquire(ctl, S.PLANE.stop)
        stop = cuda.shfl_sync(FULL_MASK, stop, 0)


@cuda.jit(device=True)
def cta_enter(ctl, flat, t, persistent):
    """One thread per CTA.  How the CTA got in (state.ENTER_*); ENTER_DENIED
    only in persistent mode, where a denied worker leaves its SM slot."""
    now = globaltimer()
    if try_token(ctl, t, now):
        return S.ENTER_TOKEN
    answer_by = now + ctl[S.PLANE.wait_bound_ns]  # the control CTA answers by then, or the CTA runs anyway
    give_up = now + ctl[S.PLANE.defer_bound_ns]   # the policy keeps deferring: run anyway past this
    backoff = BACKOFF_MIN_NS
    while True:
        s = post_request(ctl, t, smid(), globaltimer())
        if s >= 0:
            decision = -1
            while decision < 0:
                decision = poll_request(ctl, s)
                if decision < 0 and globaltimer() > answer_by:
                    decision = abandon_request(ctl, s)
                    if decision < 0:
                        return bypass(ctl, flat, t)
            if decision == S.ADMIT:
                return S.ENTER_POLICY
            if persistent:
                return S.ENTER_DENIED
            answer_by = globaltimer() + ctl[S.PLANE.wait_bound_ns]  # answered: the control CTA is serving
        if globaltimer() > min(answer_by, give_up):
            return bypass(ctl, flat, t)
        cuda.nanosleep(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX_NS)
        if try_token(ctl, t, globaltimer()):
            return S.ENTER_TOKEN


@cuda.jit(device=True)
def cta_exit(ctl, t, how):
    _cta_exit(ctl, t, how)


@cuda.jit(device=True)
def warp_gate_wait(ctl, flat, t):
    """One lane per warp: leave the tenant's warp slot and take one again,
    waiting (bounded) while the tenant is over its warp cap."""
    warp_leave(ctl, t)
    if warp_enter(ctl, t):
        return
    start = globaltimer()
    deadline = start + ctl[S.PLANE.wait_bound_ns]
    warp_throttled(ctl, flat, t, 0, 1)
    backoff = BACKOFF_MIN_NS
    while not warp_enter(ctl, t):
        if globaltimer() > deadline:
            bypass(ctl, flat, t)
            _cta_exit(ctl, t, S.ENTER_BYPASS)
            cuda.atomic.add(ctl, tenant_word(t, S.TENANT.warps_active), 1)
            break
        cuda.nanosleep(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX_NS)
    warp_throttled(ctl, flat, t, globaltimer() - start, -1)


@cuda.jit(device=True)
def dma_take_wait(ctl, flat, t, nbytes):
    """Byte tokens for one chunk, waiting (bounded); False when it bypassed."""
    if dma_take(ctl, flat, t, nbytes):
        return True
    deadline = globaltimer() + ctl[S.PLANE.wait_bound_ns]
    backoff = BACKOFF_MIN_NS
    while globaltimer() <= deadline:
        cuda.nanosleep(backoff)
        backoff = min(backoff * 2, BACKOFF_MAX_NS)
        if dma_take(ctl, flat, t, nbytes):
            return True
    bypass(ctl, flat, t)
    _cta_exit(ctl, t, S.ENTER_BYPASS)
    dma_announce(ctl, t, -nbytes)  # no longer waiting for tokens
    return False
