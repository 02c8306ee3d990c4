"""Device templates for admitted kernels (GPU only; host side: gbpfd.admit).

``gate_kernel`` and ``persistent_kernel`` write the source of a wrapper
kernel around a user's kernel body (compiled as a device function) with the
body's exact parameter list, because Numba kernels take no ``*args``.
"""
from numba import cuda, types

from gbpfd.device import state as S
from gbpfd.device.kernels_cuda import (count_block, cta_enter, cta_exit, dma_take_wait, note_block_ns, warp_gate_wait,
                                      warp_leave, worker_arrives, worker_leaves, worker_must_leave)
from gbpfd.device.prims_cuda import globaltimer, smid
from gbpfd.device.state import ENTER_BYPASS, ENTER_DENIED, PLANE

_HELPERS = {"cuda": cuda, "types": types, "cta_enter": cta_enter, "cta_exit": cta_exit, "smid": smid,
            "globaltimer": globaltimer, "warp_leave": warp_leave, "count_block": count_block,
            "worker_arrives": worker_arrives, "worker_leaves": worker_leaves, "worker_must_leave": worker_must_leave,
            "note_block_ns": note_block_ns, "ENTER_DENIED": ENTER_DENIED, "ENTER_BYPASS": ENTER_BYPASS,
            "PLANE": PLANE}

_GATE = '''
def gated(ctl, flat, tenant, {params}):
    how = cuda.shared.array(1, types.int64)
    first = cuda.threadIdx.x == 0 and cuda.threadIdx.y == 0 and cuda.threadIdx.z == 0
    if first:
        how[0] = cta_enter(ctl, flat, tenant, False)
        count_block(flat, tenant, how[0])
    cuda.syncthreads()
    {warp_in}
    body({args})
    {warp_out}
    cuda.syncthreads()
    if first:
        cta_exit(ctl, tenant, how[0])
'''
#: a body that takes `gate` (for warp_gate) holds one of its tenant's warp slots per warp while it runs
_WARP_IN = "if cuda.laneid == 0: cuda.atomic.add(ctl, warps_word(tenant), 1)"
_WARP_OUT = "if cuda.laneid == 0: warp_leave(ctl, tenant)"
GATE_PARAM = "gate"

_PERSISTENT = '''
def workers(ctl, flat, tenant, next_block, nblocks, force, {params}):
    # state: how the worker got in (ENTER_*), its logical block, its SM, whether it counts as best-effort there,
    # when its block started
    state = cuda.shared.array(5, types.int64)
    first = cuda.threadIdx.x == 0 and cuda.threadIdx.y == 0 and cuda.threadIdx.z == 0
    if first:
        state[2] = smid()
        state[0] = ENTER_DENIED if state[2] == ctl[PLANE.smid] else 1  # leave the control CTA's SM to it
        if state[0] != ENTER_DENIED:
            state[3] = worker_arrives(ctl, flat, tenant, state[2])
    cuda.syncthreads()
    resident = state[0] != ENTER_DENIED
    while state[0] != ENTER_DENIED:
        if first:
            if not force and worker_must_leave(ctl, flat, tenant, state[2], state[3]):
                state[0] = ENTER_DENIED  # drained, outside the mask or over the per-SM cap: give the SM back
            else:
                state[0] = ENTER_BYPASS if force else cta_enter(ctl, flat, tenant, True)
            state[1] = cuda.atomic.add(next_block, 0, 1) if state[0] != ENTER_DENIED else nblocks
            if state[1] < nblocks:
                count_block(flat, tenant, state[0])  # admitted counts blocks, not workers
                state[4] = globaltimer()
        cuda.syncthreads()
        if state[1] >= nblocks:
            if first and state[0] != ENTER_DENIED:
                cta_exit(ctl, tenant, state[0])
            break
        {warp_in}
        body(state[1], {args})
        {warp_out}
        cuda.syncthreads()
        if first:
            cta_exit(ctl, tenant, state[0])
            note_block_ns(ctl, tenant, globaltimer() - state[4])
        cuda.syncthreads()
    if first and resident:
        worker_leaves(ctl, tenant, state[2], state[3], globaltimer())
'''


def warps_word(t):
    return S.TENANT_BASE + t * S.TENANT_STRIDE + S.TENANT.warps_active


def _build(template: str, name: str, body, params: list[str]):
    """``params``: the body's parameters after ``block``; one named ``gate``
    is filled by the wrapper with (ctl, flat, tenant) for warp_gate."""
    gated = GATE_PARAM in params
    source = template.format(params=", ".join(p for p in params if p != GATE_PARAM),
                             args=", ".join("(ctl, flat, tenant)" if p == GATE_PARAM else p for p in params),
                             warp_in=_WARP_IN if gated else "", warp_out=_WARP_OUT if gated else "")
    scope = dict(_HELPERS, body=cuda.jit(device=True)(body), warps_word=cuda.jit(device=True)(warps_word))
    exec(source, scope)  # noqa: S102 - our own template
    return cuda.jit(scope[name])


def gate_kernel(body, params: list[str]):
    return _build(_GATE, "gated", body, params)


def persistent_kernel(body, params: list[str]):
    """``params`` exclude the body's first parameter, the logical block."""
    return _build(_PERSISTENT, "workers", body, params)


@cuda.jit
def paced_copy_kernel(ctl, flat, tenant, dst, src, chunk_words):
    """Each CTA copies chunks grid-stride; thread 0 takes the chunk's byte tokens first."""
    first = cuda.threadIdx.x == 0
    n = src.shape[0]
    nchunks = (n + chunk_words - 1) // chunk_words
    for c in range(cuda.blockIdx.x, nchunks, cuda.gridDim.x):
        lo = c * chunk_words
        hi = min(lo + chunk_words, n)
        if first:
            cuda.atomic.add(ctl, S.TENANT_BASE + tenant * S.TENANT_STRIDE + S.TENANT.dma_pending, (hi - lo) * 8)
            dma_take_wait(ctl, flat, tenant, (hi - lo) * 8)
        cuda.syncthreads()
        for i in range(lo + cuda.threadIdx.x, hi, cuda.blockDim.x):
            dst[i] = src[i]
        cuda.syncthreads()


@cuda.jit(device=True)
def warp_gate(gate):
    """A yield point for kernel loops: lane 0 of each warp leaves the
    tenant's warp slot and takes one again, waiting (bounded) while the
    tenant is at its warp cap.  ``gate`` is the kernel's ``gate`` parameter."""
    if cuda.laneid == 0:
        warp_gate_wait(gate[0], gate[1], gate[2])
    cuda.syncwarp()
