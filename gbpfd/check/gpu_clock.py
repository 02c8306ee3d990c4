"""Device code of the ``resident`` and ``calibrate`` stages: a self-ending
spinner that also feeds the device clock to the host, a one-word stamp,
and the small kernels the calibration times.

Device code only (host code lives in the stages), and every spin is bounded
by ``%globaltimer``: a kernel here ends by itself whatever the host does.
``SIGS`` holds the argument types each kernel is launched with, so the
stages and the PTX tests compile the same thing.
"""
import numpy as np
from numba import cuda, types

from gbpfd.device.prims_cuda import globaltimer, load_acquire_sys, smid, store_release_sys

#: spinner stamp words, per spinner slot: its first clock reading, its latest
#: one (the clock feed the host reads), its last one (set once, as it ends)
START, BEAT, END = 0, 1, 2
SLOT_WORDS = 3
#: interference record columns, one row per CTA
REC_START, REC_END, REC_SM, REC_DONE = 0, 1, 2, 3
REC_COLUMNS = 4
COMPUTE, MEMORY = 0, 1
#: work iterations between two deadline checks (a clock read per iteration
#: would make the clock, not the work, what the CTA measures)
CHUNK = 256
#: words between the stretches two consecutive CTAs stream (384 KiB, whole 128-byte lines)
SKEW = 98_304
#: mapped_echo words: the round the device saw last, then "armed"
ACK_ROUND, ACK_ARMED = 0, 1

_i64, _f32 = types.int64, types.float32
_I64 = _i64[::1]
SIGS = {
    "spinner": (_i64, _i64, _I64, _i64),
    "stamp": (_I64,),
    "atomic_chain": (_I64, _i64, _i64, _I64),
    "mapped_echo": (_I64, _I64, _i64, _i64),
    "interference": (_i64, _i64, _i64, _f32[::1], _i64[:, ::1]),
    "placement": (_i64, _I64),
    "host_read_chain": (_I64, _i64, _I64),
}
#: bench/gpu_kernels.py's kernels, as the calibration launches them
BENCH_SIGS = {
    "clock_probe": (_i64, _i64, _I64, _I64),
    "ping_pong": (_I64, _i64, _i64, _I64, _I64, _I64, _I64),
}


def ready(kernel, sig=None):
    """``kernel``'s body compiled for ``sig`` (default: its ``SIGS`` entry) and
    loaded into the current context now, able to compile nothing more: a
    launch with other types raises instead of compiling (and loading) while
    something is being timed."""
    return cuda.jit(sig or SIGS[kernel.__name__])(kernel.py_func)


@cuda.jit
def spinner(life_ns, nap_ns, stamps, slot):
    """One thread stays resident for ``life_ns`` of device time, writing the
    clock into ``stamps`` (mapped host memory) every ``nap_ns``, then ends."""
    if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
        return
    base = slot * SLOT_WORDS
    start = globaltimer()
    store_release_sys(stamps, base + START, start)
    now = start
    while now - start < life_ns:
        store_release_sys(stamps, base + BEAT, now)
        if nap_ns > 0:
            cuda.nanosleep(nap_ns)
        now = globaltimer()
    store_release_sys(stamps, base + END, now)


@cuda.jit
def stamp(out):
    """The first CTA's clock at its start, into ``out[0]``."""
    if cuda.threadIdx.x == 0 and cuda.blockIdx.x == 0:
        store_release_sys(out, 0, globaltimer())


@cuda.jit
def atomic_chain(word, n, bound_ns, out):
    """Thread 0 does up to ``n`` global atomic adds, each one's address taken
    from the previous one's result so none can start before the last ends;
    ``out``: ns spent, adds done."""
    if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
        return
    start = globaltimer()
    at = 0
    done = 0
    for _ in range(n):
        old = cuda.atomic.add(word, at, 1)
        at = (old >> 62) & 1   # always 0 (the count stays small), unknown to the compiler
        done += 1
        if done % CHUNK == 0 and globaltimer() - start > bound_ns:
            break
    out[0] = globaltimer() - start
    out[1] = done


@cuda.jit
def mapped_echo(flag, ack, rounds, bound_ns):
    """Thread 0 waits for the host to write round i into ``flag[0]`` (mapped
    host memory) and echoes it into ``ack``, for ``rounds`` rounds or until
    ``bound_ns`` has passed."""
    if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
        return
    deadline = globaltimer() + bound_ns
    store_release_sys(ack, ACK_ARMED, 1)
    for i in range(1, rounds + 1):
        while load_acquire_sys(flag, 0) != i:
            if globaltimer() > deadline:
                return
        store_release_sys(ack, ACK_ROUND, i)


@cuda.jit(device=True)
def _compute(work, deadline, seed):
    """Four independent FMA chains (enough to keep an SM's issue slots busy
    with a few warps); stops at ``deadline``.  Returns (result, finished)."""
    a, b, c, d = seed, seed + np.float32(1), seed + np.float32(2), seed + np.float32(3)
    scale, step = np.float32(0.999999), np.float32(1e-7)
    i = 0
    while i < work:
        for _ in range(CHUNK):
            a = a * scale + step
            b = b * scale + step
            c = c * scale + step
            d = d * scale + step
        i += CHUNK
        if globaltimer() > deadline:
            return a + b + c + d, False
    return a + b + c + d, True


@cuda.jit(device=True)
def _stream(buf, work, deadline):
    """Coalesced reads of this CTA's own stretch of ``buf``, so that the CTAs
    of a launch together touch far more than the L2 holds.  Stretches wrap
    around ``buf``; ``SKEW`` keeps two CTAs whose stretches wrap onto the
    same place from reading the same lines at the same time (L2 hits)."""
    n = buf.shape[0]
    b = cuda.blockIdx.x
    at = (b * (work * cuda.blockDim.x + SKEW) + cuda.threadIdx.x) % n
    total = np.float32(0)
    i = 0
    while i < work:
        for _ in range(CHUNK):
            total += buf[at]
            at += cuda.blockDim.x
            if at >= n:
                at -= n
        i += CHUNK
        if globaltimer() > deadline:
            return total, False
    return total, True


@cuda.jit
def interference(kind, work, bound_ns, buf, rec):
    """Each CTA does ``work`` iterations of a compute-bound (``COMPUTE``) or
    a memory-bound (``MEMORY``) body and records its SM, start, end and
    whether it finished before ``bound_ns`` passed."""
    b = cuda.blockIdx.x
    start = globaltimer()
    if kind == COMPUTE:
        result, finished = _compute(work, start + bound_ns, np.float32(cuda.threadIdx.x))
    else:
        result, finished = _stream(buf, work, start + bound_ns)
    if result == np.float32(-1):   # never true: keeps the body from being optimised away
        buf[0] = result
    all_finished = cuda.syncthreads_and(1 if finished else 0)
    if cuda.threadIdx.x == 0:
        rec[b, REC_START] = start
        rec[b, REC_END] = globaltimer()
        rec[b, REC_SM] = smid()
        rec[b, REC_DONE] = all_finished


@cuda.jit
def host_read_chain(chain, reads, out):
    """Thread 0 follows ``chain`` (mapped host memory: each word the index
    of the next) for ``reads`` loads, each load's address taken from the one
    before, so none can start before the last returns; ``out``: ns spent,
    the index it ended at (stored, so the loads are kept)."""
    if cuda.threadIdx.x != 0 or cuda.blockIdx.x != 0:
        return
    at = 0
    start = globaltimer()
    for _ in range(reads):
        at = chain[at]
    out[0] = globaltimer() - start
    out[1] = at


@cuda.jit
def placement(hold_ns, where):
    """Each CTA records its SM, then stays ``hold_ns`` so that every CTA of
    the launch is placed while the others are still resident."""
    if cuda.threadIdx.x != 0:
        return
    where[cuda.blockIdx.x] = smid()
    until = globaltimer() + hold_ns
    while globaltimer() < until:
        pass
