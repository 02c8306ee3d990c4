"""Device code of the GPU publish bench (``bench_publish.py``): a requester
that asks for admission again and again and tells the host about every
decision it sees.

Device code only, like ``gpu_kernels`` (whose ``spin`` and outcome codes it
shares).  Every spin here has a time bound from ``%globaltimer``.

The host learns of decisions through ``mailbox``, pinned host memory mapped
into the device: word ``LATEST`` holds ``count * 2 + decision`` (one word,
so the host never reads a count and a decision from two different
decisions), written with a system-scope release store so it leaves the SM
at once.  The host stops the kernel through word ``STOP``.  For the
device-clock figures the kernel keeps, in device memory, the
``%globaltimer`` stamp of every decision that differs from the one before
(each quota trial flips the policy's answer, so the first decision made
with a new snapshot is such a flip).
"""
from numba import cuda

from gpu_kernels import NO_SLOT, WITHDRAWN, spin

from gbpfd.device import state as S
from gbpfd.device.kernels_cuda import abandon_request, cta_exit, poll_request, post_request
from gbpfd.device.prims_cuda import globaltimer, load_acquire_sys, smid, store_release_sys

#: mailbox words (mapped host memory)
LATEST, STOP = 0, 1
MAILBOX_WORDS = 2
#: flips columns: when the requester saw the decision (%globaltimer ns), and the decision
FLIP_NS, FLIP_DECISION = 0, 1
FLIP_COLUMNS = 2
#: tally words, written when the kernel ends (SPAN_NS: from its first request to its end)
TALLY_DECISIONS, TALLY_FLIPS, TALLY_WITHDRAWN, TALLY_NO_SLOT, TALLY_SPAN_NS = 0, 1, 2, 3, 4
TALLY_WORDS = 5
#: how often the requester reads the stop flag: each read is a PCIe round trip
STOP_POLL_NS = 100_000


@cuda.jit(device=True)
def ask(ctl, tenant, bound_ns):
    """One admission request: the decision (state.ADMIT / state.DEFER), or
    WITHDRAWN when the wait hit ``bound_ns`` and it was taken back, or
    NO_SLOT when every request slot was taken."""
    sm = smid()
    g0 = globaltimer()
    s = post_request(ctl, tenant, sm, g0)
    if s < 0:
        return NO_SLOT
    decision = poll_request(ctl, s)
    while decision < 0:
        if globaltimer() > g0 + bound_ns:
            decision = abandon_request(ctl, s)
            return WITHDRAWN if decision < 0 else decision
        decision = poll_request(ctl, s)
    return decision


@cuda.jit
def publish_requester(ctl, tenant, gap_ns, bound_ns, run_ns, mailbox, flips, tally):
    """One CTA's thread 0 asks for admission for ``tenant`` (idling
    ``gap_ns`` before each request) until the host sets ``mailbox[STOP]`` or
    ``run_ns`` pass.  Each decision goes to ``mailbox[LATEST]``; decisions
    that differ from the one before are stamped into ``flips`` while it has
    room.  An admitted request leaves at once so the tenant's running count
    stays put."""
    if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
        return
    now = globaltimer()
    first = now
    end = now + run_ns
    next_stop_poll = now
    count = 0
    last = -1
    nflips = 0
    withdrawn = 0
    no_slot = 0
    while now <= end:
        if now >= next_stop_poll:
            if load_acquire_sys(mailbox, STOP) != 0:
                break
            next_stop_poll = now + STOP_POLL_NS
        spin(gap_ns)
        decision = ask(ctl, tenant, bound_ns)
        now = globaltimer()
        if decision == WITHDRAWN:
            withdrawn += 1
        elif decision == NO_SLOT:
            no_slot += 1
        else:
            count += 1
            store_release_sys(mailbox, LATEST, count * 2 + decision)
            if decision == S.ADMIT:
                cta_exit(ctl, tenant, S.ENTER_POLICY)
            if decision != last:
                if nflips < flips.shape[0]:
                    flips[nflips, FLIP_NS] = now
                    flips[nflips, FLIP_DECISION] = decision
                nflips += 1
                last = decision
    tally[TALLY_DECISIONS] = count
    tally[TALLY_FLIPS] = nflips
    tally[TALLY_WITHDRAWN] = withdrawn
    tally[TALLY_NO_SLOT] = no_slot
    tally[TALLY_SPAN_NS] = now - first
