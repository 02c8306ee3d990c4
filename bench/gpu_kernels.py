"""Device code of the GPU bench cases: a clock probe, a cross-SM flag
ping-pong and an admission requester (``bench_reaction.py``), an
interpreter-rate kernel (``bench_interp.py``) and an event producer
(``bench_event_ring.py``).

Device code only, like ``gbpfd.device.kernels_cuda``: Numba's CUDA
simulator swaps the module global ``cuda`` of a kernel's module, so host
code lives in the bench.  Every spin here has a time bound from
``%globaltimer``.

Durations are stamped twice: with ``%globaltimer`` (nanoseconds, one clock
for every SM, but on some GPUs it only ticks every microsecond) and with
``%clock64`` (cycles of the SM that reads it).  Both stamps of a duration
are taken on the same SM, so the cycle count is exact there; the host turns
cycles into ns with the ratio of the kernel's own span (``span``: ns and
cycles from the first sample to the last), after ``warm_ns`` of spinning
that lets the SM clock rise from idle first.
"""
import numpy as np
from llvmlite import ir
from numba import cuda, types
from numba.cuda.extending import intrinsic

from gbpfd.bridge.layout import KIND
from gbpfd.device import state as S
from gbpfd.device.build import for_cuda
from gbpfd.device.kernels_cuda import abandon_request, cta_exit, poll_request, post_request
from gbpfd.device.prims_cuda import globaltimer, load_acquire, smid, store_release
from gbpfd.vm import interp

execute = cuda.jit(device=True)(interp.execute)
event_push = for_cuda().event_push

#: requester outcomes other than a decision (state.ADMIT / state.DEFER)
WITHDRAWN = -2   # the wait hit its bound and the request was taken back undecided
NO_SLOT = -3     # every request slot was taken
#: stamps columns of the requester
STAMP_POST_NS, STAMP_CYCLES, STAMP_NS, STAMP_DECISION = 0, 1, 2, 3
STAMP_COLUMNS = 4
#: words of a kernel's ``span``; clock_probe adds the number of timer steps it saw
SPAN_NS, SPAN_CYCLES, PROBE_STEPS = 0, 1, 2
#: interp_rate's result words (its span, then what ran)
RATE_STEPS, RATE_STATUS = 2, 3


@intrinsic
def clock64(typingctx):
    """``%clock64``: cycles of the reading SM."""
    def codegen(context, builder, sig, args):
        asm = ir.InlineAsm(ir.FunctionType(ir.IntType(64), []), "mov.u64 $0, %clock64;", "=l", side_effect=True)
        return builder.call(asm, [])
    return types.int64(), codegen


@cuda.jit(device=True)
def spin(ns):
    until = globaltimer() + ns
    while globaltimer() < until:
        pass


@cuda.jit
def clock_probe(warm_ns, span_ns, ticks, span):
    """One thread: after ``warm_ns``, the sizes of ``ticks.shape[0]``
    consecutive ``%globaltimer`` steps, then ns and cycles over ``span_ns``."""
    if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
        return
    spin(warm_ns)
    last = globaltimer()
    deadline = last + span_ns
    steps = 0
    for i in range(ticks.shape[0]):
        now = globaltimer()
        while now == last and now <= deadline:
            now = globaltimer()
        ticks[i] = now - last
        last = now
        steps += 1
    g0 = globaltimer()
    c0 = clock64()
    spin(span_ns)
    span[SPAN_CYCLES] = clock64() - c0
    span[SPAN_NS] = globaltimer() - g0
    span[PROBE_STEPS] = steps


@cuda.jit
def ping_pong(flag, warm_ns, bound_ns, rtt_cycles, rtt_ns, where, span):
    """Two CTAs (thread 0 of each) bounce a counter through ``flag[0]``:
    block 0 writes 2i+1 and waits for block 1's 2i+2, ``rtt_cycles.shape[0]``
    rounds, each round trip stamped on block 0's SM.  ``where`` gets each
    block's SM.  Past ``bound_ns`` both stop; unfinished rounds keep what
    the host put there."""
    if cuda.threadIdx.x != 0:
        return
    role = cuda.blockIdx.x
    where[role] = smid()
    spin(warm_ns)
    g_first = globaltimer()
    c_first = clock64()
    deadline = g_first + bound_ns
    for i in range(rtt_cycles.shape[0]):
        if role == 0:
            g0 = globaltimer()
            c0 = clock64()
            store_release(flag, 0, 2 * i + 1)
            while load_acquire(flag, 0) != 2 * i + 2:
                if globaltimer() > deadline:
                    return
            rtt_cycles[i] = clock64() - c0
            rtt_ns[i] = globaltimer() - g0
        else:
            while load_acquire(flag, 0) != 2 * i + 1:
                if globaltimer() > deadline:
                    return
            store_release(flag, 0, 2 * i + 2)
    if role == 0:
        span[SPAN_CYCLES] = clock64() - c_first
        span[SPAN_NS] = globaltimer() - g_first


@cuda.jit
def requester(ctl, tenant, gaps_ns, bound_ns, warm_ns, stamps, span):
    """One CTA's thread 0 asks the control CTA for admission
    ``gaps_ns.shape[0]`` times, idling ``gaps_ns[i]`` first so requests land
    at every phase of the control loop.  Each request: post, poll until
    decided (or ``bound_ns``, then take it back), stamp; an admitted CTA
    leaves at once so the tenant's running count stays put."""
    if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
        return
    spin(warm_ns)
    sm = smid()
    g_first = globaltimer()
    c_first = clock64()
    for i in range(gaps_ns.shape[0]):
        spin(gaps_ns[i])
        c0 = clock64()
        g0 = globaltimer()
        s = post_request(ctl, tenant, sm, g0)
        decision = NO_SLOT
        if s >= 0:
            decision = poll_request(ctl, s)
            while decision < 0:
                if globaltimer() > g0 + bound_ns:
                    decision = abandon_request(ctl, s)
                    if decision < 0:
                        decision = WITHDRAWN
                    break
                decision = poll_request(ctl, s)
        c1 = clock64()
        g1 = globaltimer()
        stamps[i, STAMP_POST_NS] = g0
        stamps[i, STAMP_CYCLES] = c1 - c0
        stamps[i, STAMP_NS] = g1 - g0
        stamps[i, STAMP_DECISION] = decision
        if decision == S.ADMIT:
            cta_exit(ctl, tenant, S.ENTER_POLICY)
    span[SPAN_CYCLES] = clock64() - c_first
    span[SPAN_NS] = globaltimer() - g_first


@cuda.jit
def interp_rate(code, ninsns, regs, frames, flat, local, base, size, perm, map_rid, map_value_size, map_entries,
                nmaps, fuel, reps, warm_ns, out, result):
    """One thread runs the policy interpreter (the control CTA's
    ``execute``) over ``code`` ``reps`` times; ``result`` gets ns, cycles,
    instructions executed and the last status (a fault stops the loop)."""
    if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
        return
    spin(warm_ns)
    g0 = globaltimer()
    c0 = clock64()
    steps = 0
    st = 0
    for _ in range(reps):
        st = execute(code, ninsns, regs, frames, flat, local, base, size, perm, map_rid, map_value_size,
                     map_entries, nmaps, fuel, np.uint64(g0), out)
        steps += out[0]
        if st != 0:
            break
    result[SPAN_CYCLES] = clock64() - c0
    result[SPAN_NS] = globaltimer() - g0
    result[RATE_STEPS] = steps
    result[RATE_STATUS] = st


@cuda.jit
def event_producer(host, rate_per_s, duration_ns, out):
    """Thread 0 pushes trace events into ``host``'s event ring, evenly at
    ``rate_per_s`` for ``duration_ns`` (its own bound); ``out[0]``: how many
    it offered (pushed or counted as dropped).  A push waits on PCIe, so a
    rate can be more than one thread offers: one push per clock read keeps
    the bound then (working off a backlog in one go would overrun it)."""
    if cuda.threadIdx.x != 0:
        return
    start = globaltimer()
    offered = 0
    while True:
        now = globaltimer()
        if now - start >= duration_ns:
            break
        if offered < (now - start) * rate_per_s // 1_000_000_000:
            event_push(host, KIND.trace, now, -1, -1, -1, offered, 0, 0)
            offered += 1
    out[0] = offered
