"""Memory-ordering and clock primitives for the GPU.

Numba-CUDA has no volatile load and no ``%globaltimer`` / ``%smid`` reads,
and a spin over a plain array element may be hoisted out of its loop.  The
loads and stores the control CTA and the workers poll with are therefore
inline PTX with acquire/release semantics, and the clocks are read the
same way.  Each ordering primitive has the scope its other side needs:
``load_acquire``, ``store_release`` and ``fence`` order device-memory words
between SMs (``.gpu``: the control CTA and the workers); the ``_sys`` ones
order the host area, pinned host memory mapped into the device, against
the host (``.sys``, which waits for PCIe), and only the host-facing code
(the rings, the snapshot, the ready word) uses them.  Read-modify-writes use Numba's device atomics (device memory
only: a device atomic on host memory is not atomic against the host);
``atomic_add_le64`` is the interpreter's counter_add, an LLVM atomicrmw on
the byte view of ``flat``.
"""
from llvmlite import ir
from numba import cuda, types
from numba.cuda import cgutils
from numba.cuda.extending import intrinsic

from gbpfd.device.state import COPY_BATCH

_I64 = ir.IntType(64)


def _item_pointer(context, builder, sig, args):
    aryty = sig.args[0]
    ary = context.make_array(aryty)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])


def _ld_acquire_at(scope: str):
    """An acquire load of one int64 array element at ``scope`` ("gpu" or "sys")."""
    @intrinsic
    def ld(typingctx, ary, idx):
        def codegen(context, builder, sig, args):
            ptr = _item_pointer(context, builder, sig, args)
            asm = ir.InlineAsm(ir.FunctionType(_I64, [ptr.type]), f"ld.acquire.{scope}.b64 $0, [$1];", "=l,l",
                               side_effect=True)
            return builder.call(asm, [ptr])
        return types.int64(ary, idx), codegen
    return ld


def _st_release_at(scope: str):
    """A release store of one int64 array element at ``scope`` ("gpu" or "sys")."""
    @intrinsic
    def st(typingctx, ary, idx, value):
        def codegen(context, builder, sig, args):
            ptr = _item_pointer(context, builder, sig, args)
            val = context.cast(builder, args[2], sig.args[2], types.int64)
            asm = ir.InlineAsm(ir.FunctionType(ir.VoidType(), [ptr.type, _I64]),
                               f"st.release.{scope}.b64 [$0], $1;", "l,l,~{memory}", side_effect=True)
            builder.call(asm, [ptr, val])
            return context.get_dummy_value()
        return types.void(ary, idx, value), codegen
    return st


_ld_acquire_gpu, _ld_acquire_sys = _ld_acquire_at("gpu"), _ld_acquire_at("sys")
_st_release_gpu, _st_release_sys = _st_release_at("gpu"), _st_release_at("sys")


@intrinsic
def _atomic_add_bytes64(typingctx, ary, idx, value):
    """One relaxed 64-bit atomic add at byte ``idx`` of a byte array (8-aligned): the interpreter's
    counter_add, whose counters sit in the byte view of ``flat``."""
    def codegen(context, builder, sig, args):
        ptr = builder.bitcast(_item_pointer(context, builder, sig, args), _I64.as_pointer())
        val = context.cast(builder, args[2], sig.args[2], types.uint64)
        return builder.atomic_rmw("add", ptr, val, "monotonic")
    return types.uint64(ary, idx, value), codegen


@intrinsic
def globaltimer(typingctx):
    """``%globaltimer``: nanoseconds, the same clock on every SM."""
    def codegen(context, builder, sig, args):
        asm = ir.InlineAsm(ir.FunctionType(_I64, []), "mov.u64 $0, %globaltimer;", "=l", side_effect=True)
        return builder.call(asm, [])
    return types.int64(), codegen


@intrinsic
def smid(typingctx):
    """``%smid``: the SM this thread runs on."""
    def codegen(context, builder, sig, args):
        asm = ir.InlineAsm(ir.FunctionType(ir.IntType(32), []), "mov.u32 $0, %smid;", "=r", side_effect=True)
        return builder.sext(builder.call(asm, []), _I64)
    return types.int64(), codegen


_device = cuda.jit(device=True, inline=True)


def _ordered(ld, st):
    """The device functions the shared source calls for one scope's acquire load and release store."""
    @_device
    def load(a, i):
        return ld(a, i)

    @_device
    def store(a, i, v):
        st(a, i, v)
    return load, store


load_acquire, store_release = _ordered(_ld_acquire_gpu, _st_release_gpu)
load_acquire_sys, store_release_sys = _ordered(_ld_acquire_sys, _st_release_sys)


@_device
def atomic_add(a, i, v):
    return cuda.atomic.add(a, i, v)


@_device
def atomic_cas(a, i, expected, new):
    return cuda.atomic.cas(a, i, expected, new)


@_device
def atomic_max(a, i, v):
    return cuda.atomic.max(a, i, v)


@_device
def fence():
    cuda.threadfence()


@_device
def fence_sys():
    cuda.threadfence_system()


@_device
def atomic_add_le64(flat8, at, value):
    _atomic_add_bytes64(flat8, at, value)


@_device
def lane_copy(dst, dst_at, src, src_at, n, lane, lanes):
    """Lane ``lane`` of ``lanes`` copies words lane, lane + lanes, ... of
    ``src[src_at:src_at + n]`` to ``dst[dst_at:]``, issuing a batch of its
    loads before the batch's first store: the loads are independent, so a
    batch costs one memory round trip (over PCIe: one, not one per word)."""
    buf = cuda.local.array(COPY_BATCH, types.int64)
    for first in range(lane, n, COPY_BATCH * lanes):
        for k in range(COPY_BATCH):
            i = first + k * lanes
            if i < n:
                buf[k] = src[src_at + i]
        for k in range(COPY_BATCH):
            i = first + k * lanes
            if i < n:
                dst[dst_at + i] = buf[k]


@_device
def lane_broadcast(v):
    """Lane 0's ``v`` in every lane of the (whole) warp."""
    return cuda.shfl_sync(0xFFFFFFFF, v, 0)


@_device
def warp_sync():
    """Every lane of the warp here, each one's memory accesses before seen by the others after."""
    cuda.syncwarp(0xFFFFFFFF)


PRIMS = {"load_acquire": load_acquire, "store_release": store_release, "load_acquire_sys": load_acquire_sys,
         "store_release_sys": store_release_sys, "atomic_add": atomic_add, "atomic_cas": atomic_cas,
         "atomic_max": atomic_max, "fence": fence,
         "fence_sys": fence_sys, "atomic_add_le64": atomic_add_le64, "lane_broadcast": lane_broadcast,
         "warp_sync": warp_sync, "lane_copy": lane_copy}
