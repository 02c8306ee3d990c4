"""The fast interpreter: one self-contained function over plain arrays.

``execute`` is compiled twice from this same source: by gbpfd.vm.fast with
``numba.njit`` and by the device plane with ``numba.cuda.jit(device=True)``.
Hence its shape: no calls to other Python functions (but the one
primitive ``atomic_add_le64``, which each device target binds), no objects, no
exceptions, no allocation; everything arrives as an array or a scalar, and
module-level names below are folded into constants by Numba.  It dispatches
on the table's semantic op ids (gbpfd.isa.opids) over the pre-decoded matrix
of gbpfd.vm.decoded, never on opcode numbers.

Registers are uint64 and every operand is cast explicitly: Numba turns
int64/uint64 mixtures into float64.  Semantics, including the choices RFC
9669 leaves open, are those documented in gbpfd.vm.reference.
"""
import numba
import numpy as np

from gbpfd.isa import opids
from gbpfd.isa.abi import HELPER_BY_NAME, LIMITS, RECORDS
from gbpfd.vm import status
from gbpfd.vm.decoded import COL_AUX, COL_DST, COL_FLAGS, COL_IMM, COL_OFF, COL_OP, COL_SRC, FLAG_64, FLAG_X, SIZE_SHIFT
from gbpfd.vm.memory import (IN_LOCAL, MAP_HANDLE_RID, NREGIONS, PERM_R, PERM_W, REGION_SHIFT, RID_COUNTERS,
                             RID_QUOTA, RID_STACK0)
from gbpfd.vm.result import E2BIG, EINVAL, EPERM

FRAME_WORDS = 5  # return pc, then r6-r9
STACK_BYTES = LIMITS.stack_bytes
MAX_CALL_DEPTH = LIMITS.max_call_depth
MAX_TENANTS = LIMITS.max_tenants
H_MAP_LOOKUP = HELPER_BY_NAME["map_lookup_elem"].id
H_MAP_UPDATE = HELPER_BY_NAME["map_update_elem"].id
H_KTIME = HELPER_BY_NAME["ktime_get_ns"].id
H_QUOTA_READ = HELPER_BY_NAME["quota_read"].id
H_TRACE = HELPER_BY_NAME["trace"].id
H_COUNTER_ADD = HELPER_BY_NAME["counter_add"].id
QUOTA_RECORD = RECORDS["quota"].size
QUOTA_FIELD_OFFSET = np.array([f.offset for f in RECORDS["quota"].fields], np.int64)
QUOTA_FIELD_SIZE = np.array([f.size for f in RECORDS["quota"].fields], np.int64)
NQUOTA_FIELDS = len(RECORDS["quota"].fields)
COUNTERS_RECORD = RECORDS["counters"].size
USER_COUNTER_OFFSET = np.array([f.offset for f in RECORDS["counters"].fields if f.name.startswith("user")],
                               np.int64)
NUSER_COUNTERS = len(USER_COUNTER_OFFSET)

M32 = np.uint64(0xFFFFFFFF)
SIGN32 = np.uint64(0x80000000)
U0 = np.uint64(0)
U8 = np.uint64(8)
BYTE = np.uint64(0xFF)
SHIFT = np.uint64(REGION_SHIFT)


@numba.njit(inline="always", nogil=True)
def atomic_add_le64(flat, at, value):
    """Add ``value`` to the little-endian 64-bit word at byte ``at`` of
    ``flat``: counter_add's one read-modify-write.  This plain form serves
    the one-threaded CPU interpreters (gbpfd.vm.fast); the device builds
    bind their target's atomic one (gbpfd.device.prims_*), since tick and
    cta_admit run at once on a GPU."""
    x = U0
    for k in range(7, -1, -1):
        x = (x << U8) | np.uint64(flat[at + k])
    x += value
    for k in range(8):
        flat[at + k] = np.uint8(x & BYTE)
        x >>= U8


def execute(code, ninsns, regs, frames, flat, local, base, size, perm, map_rid, map_value_size, map_entries,
            nmaps, fuel, now_ns, out):
    """Run the decoded program from slot 0; return its status code.

    A region's bytes are in ``flat``, or in ``local`` when its ``perm`` has
    IN_LOCAL (the device plane keeps its stacks there: shared memory on a
    GPU); ``base`` is the offset in the array that holds it.

    ``regs`` (uint64[11]) holds r1-r5 on entry and every register on return;
    ``frames`` is uint64[MAX_CALL_DEPTH, FRAME_WORDS]; ``out`` (int64[2])
    receives the executed step count and the final pc; a longer ``out``
    (the device's, int64[4]) also the number of trace calls and the first
    traced value, which the control CTA turns into a trace event.
    """
    pc = np.int64(0)
    steps = np.int64(0)
    depth = np.int64(0)
    st = np.int64(status.OK)
    regs[10] = (np.uint64(RID_STACK0) << SHIFT) | np.uint64(STACK_BYTES)
    traces = out.shape[0] >= 4
    if traces:
        out[2] = 0
    while True:
        if steps >= fuel:
            st = status.FAULT_FUEL
            break
        if pc < 0 or pc >= ninsns:
            st = status.FAULT_PC
            break
        op = code[pc, COL_OP]
        if op == opids.INVALID:
            st = status.FAULT_OPCODE
            if pc > 0:
                prev = code[pc - 1, COL_OP]
                if prev == opids.LDDW or prev == opids.LDDW_MAP or prev == opids.LDDW_MAP_VALUE:
                    st = status.FAULT_PC
            break
        steps += 1
        dst = code[pc, COL_DST]
        off = code[pc, COL_OFF]
        imm = code[pc, COL_IMM]
        flags = code[pc, COL_FLAGS]
        wide = (flags & FLAG_64) != 0
        next_pc = pc + 1
        a = regs[dst]
        if flags & FLAG_X:
            b = regs[code[pc, COL_SRC]]
        else:
            b = np.uint64(imm)
        if not wide:
            a &= M32
            b &= M32
        # Sign-extended views for the signed ops, at the operand width.
        if wide:
            sa = np.int64(a)
            sb = np.int64(b)
        else:
            sa = np.int64((a ^ SIGN32) - SIGN32)
            sb = np.int64((b ^ SIGN32) - SIGN32)
        smask = np.uint64(63) if wide else np.uint64(31)

        # ------------------------------------------------------------ jumps
        if op == opids.JEQ:
            if a == b:
                next_pc += off
        elif op == opids.JNE:
            if a != b:
                next_pc += off
        elif op == opids.JGT:
            if a > b:
                next_pc += off
        elif op == opids.JGE:
            if a >= b:
                next_pc += off
        elif op == opids.JLT:
            if a < b:
                next_pc += off
        elif op == opids.JLE:
            if a <= b:
                next_pc += off
        elif op == opids.JSET:
            if (a & b) != U0:
                next_pc += off
        elif op == opids.JSGT:
            if sa > sb:
                next_pc += off
        elif op == opids.JSGE:
            if sa >= sb:
                next_pc += off
        elif op == opids.JSLT:
            if sa < sb:
                next_pc += off
        elif op == opids.JSLE:
            if sa <= sb:
                next_pc += off
        elif op == opids.JA:
            next_pc += off
        elif op == opids.JA32:
            next_pc += imm

        # ------------------------------------------------------- arithmetic
        elif op == opids.ADD:
            regs[dst] = (a + b) if wide else (a + b) & M32
        elif op == opids.SUB:
            regs[dst] = (a - b) if wide else (a - b) & M32
        elif op == opids.MUL:
            regs[dst] = (a * b) if wide else (a * b) & M32
        elif op == opids.OR:
            regs[dst] = a | b
        elif op == opids.AND:
            regs[dst] = a & b
        elif op == opids.XOR:
            regs[dst] = a ^ b
        elif op == opids.MOV:
            regs[dst] = b
        elif op == opids.LSH:
            regs[dst] = (a << (b & smask)) if wide else (a << (b & smask)) & M32
        elif op == opids.RSH:
            regs[dst] = a >> (b & smask)
        elif op == opids.ARSH:
            regs[dst] = np.uint64(sa >> np.int64(b & smask)) & (np.uint64(0xFFFFFFFFFFFFFFFF) if wide else M32)
        elif op == opids.NEG:
            regs[dst] = (U0 - a) if wide else (U0 - a) & M32
        elif op == opids.DIV:
            regs[dst] = a // b if b != U0 else U0
        elif op == opids.MOD:
            regs[dst] = a % b if b != U0 else a
        elif op == opids.SDIV or op == opids.SMOD:
            if b == U0:
                regs[dst] = U0 if op == opids.SDIV else a
            else:
                # Truncating (C) division on magnitudes: Numba's // and % on
                # signed ints floor, and INT_MIN's magnitude only fits unsigned.
                ua = U0 - a if sa < 0 else a
                ub = U0 - b if sb < 0 else b
                if not wide:
                    ua &= M32
                    ub &= M32
                if op == opids.SDIV:
                    q = ua // ub
                    r = U0 - q if (sa < 0) != (sb < 0) else q
                else:
                    q = ua % ub
                    r = U0 - q if sa < 0 else q
                regs[dst] = r if wide else r & M32
        elif op == opids.MOVSX8 or op == opids.MOVSX16 or op == opids.MOVSX32:
            ext = np.uint64(64 - off)
            r = np.uint64(np.int64(b << ext) >> np.int64(ext))
            regs[dst] = r if wide else r & M32

        # ------------------------------------------------------------ endian
        elif op == opids.LE16:
            regs[dst] = regs[dst] & np.uint64(0xFFFF)
        elif op == opids.LE32:
            regs[dst] = regs[dst] & M32
        elif op == opids.LE64:
            pass
        elif (op == opids.BE16 or op == opids.BE32 or op == opids.BE64
              or op == opids.BSWAP16 or op == opids.BSWAP32 or op == opids.BSWAP64):
            nbytes = 2 if (op == opids.BE16 or op == opids.BSWAP16) else (
                4 if (op == opids.BE32 or op == opids.BSWAP32) else 8)
            x = regs[dst]
            r = U0
            for _ in range(nbytes):
                r = (r << U8) | (x & BYTE)
                x >>= U8
            regs[dst] = r

        # ----------------------------------------------- loads and stores
        elif op == opids.LDX or op == opids.LDXSX or op == opids.ST or op == opids.STX:
            store = op == opids.ST or op == opids.STX
            nbytes = (flags >> SIZE_SHIFT) & 0xFF
            addr = (regs[dst] if store else regs[code[pc, COL_SRC]]) + np.uint64(off)
            rid = np.int64(addr >> SHIFT)
            where = np.int64(addr & M32)
            need = PERM_W if store else PERM_R
            if rid >= NREGIONS or where + nbytes > size[rid] or (perm[rid] & need) == 0:
                st = status.FAULT_BOUNDS
                break
            where += base[rid]
            mem = local if perm[rid] & IN_LOCAL else flat
            if store:
                x = regs[code[pc, COL_SRC]] if op == opids.STX else np.uint64(imm)
                for k in range(nbytes):
                    mem[where + k] = np.uint8(x & BYTE)
                    x >>= U8
            else:
                x = U0
                for k in range(nbytes - 1, -1, -1):
                    x = (x << U8) | np.uint64(mem[where + k])
                if op == opids.LDXSX:
                    ext = np.uint64(64 - 8 * nbytes)
                    x = np.uint64(np.int64(x << ext) >> np.int64(ext))
                regs[dst] = x

        # ------------------------------------------------------ 64-bit loads
        elif op == opids.LDDW:
            regs[dst] = np.uint64(imm)
            next_pc = pc + 2
        elif op == opids.LDDW_MAP:
            regs[dst] = (np.uint64(MAP_HANDLE_RID) << SHIFT) | (np.uint64(imm) & M32)
            next_pc = pc + 2
        elif op == opids.LDDW_MAP_VALUE:
            if imm < 0 or imm >= nmaps:
                st = status.FAULT_BOUNDS
                break
            regs[dst] = (np.uint64(map_rid[imm]) << SHIFT) + np.uint64(code[pc, COL_AUX])
            next_pc = pc + 2

        # ------------------------------------------------------------- calls
        elif op == opids.CALL_LOCAL:
            if depth + 1 >= MAX_CALL_DEPTH:
                st = status.FAULT_CALL_DEPTH
                break
            frames[depth, 0] = np.uint64(next_pc)
            for k in range(4):
                frames[depth, 1 + k] = regs[6 + k]
            depth += 1
            regs[10] = (np.uint64(RID_STACK0 + depth) << SHIFT) | np.uint64(STACK_BYTES)
            next_pc = pc + imm + 1
        elif op == opids.EXIT:
            if depth == 0:
                break
            depth -= 1
            next_pc = np.int64(frames[depth, 0])
            for k in range(4):
                regs[6 + k] = frames[depth, 1 + k]
            regs[10] = (np.uint64(RID_STACK0 + depth) << SHIFT) | np.uint64(STACK_BYTES)
        elif op == opids.CALL:
            r1 = regs[1]
            r2 = regs[2]
            r3 = regs[3]
            res = U0
            if imm == H_MAP_LOOKUP or imm == H_MAP_UPDATE:
                m = np.int64(r1 & M32)
                if (r1 >> SHIFT) != np.uint64(MAP_HANDLE_RID) or m >= nmaps:
                    st = status.FAULT_BOUNDS
                    break
                krid = np.int64(r2 >> SHIFT)
                kwhere = np.int64(r2 & M32)
                if krid >= NREGIONS or kwhere + 4 > size[krid] or (perm[krid] & PERM_R) == 0:
                    st = status.FAULT_BOUNDS
                    break
                kwhere += base[krid]
                kmem = local if perm[krid] & IN_LOCAL else flat
                key = np.int64(kmem[kwhere]) | (np.int64(kmem[kwhere + 1]) << 8) | (
                    np.int64(kmem[kwhere + 2]) << 16) | (np.int64(kmem[kwhere + 3]) << 24)
                vsize = map_value_size[m]
                mrid = map_rid[m]
                if imm == H_MAP_LOOKUP:
                    if key < map_entries[m]:
                        res = (np.uint64(mrid) << SHIFT) | np.uint64(key * vsize)
                else:
                    vrid = np.int64(r3 >> SHIFT)
                    vwhere = np.int64(r3 & M32)
                    if vrid >= NREGIONS or vwhere + vsize > size[vrid] or (perm[vrid] & PERM_R) == 0:
                        st = status.FAULT_BOUNDS
                        break
                    vwhere += base[vrid]
                    vmem = local if perm[vrid] & IN_LOCAL else flat
                    if regs[4] != U0:
                        res = U0 - np.uint64(EINVAL)
                    elif (perm[mrid] & PERM_W) == 0:
                        res = U0 - np.uint64(EPERM)
                    elif key >= map_entries[m]:
                        res = U0 - np.uint64(E2BIG)
                    else:
                        target = base[mrid] + key * vsize
                        # memmove: the value may overlap the element it replaces (maps are in flat)
                        if target <= vwhere:
                            for k in range(vsize):
                                flat[target + k] = vmem[vwhere + k]
                        else:
                            for k in range(vsize - 1, -1, -1):
                                flat[target + k] = vmem[vwhere + k]
            elif imm == H_KTIME:
                res = np.uint64(now_ns)
            elif imm == H_QUOTA_READ:
                if r1 < np.uint64(MAX_TENANTS) and r2 < np.uint64(NQUOTA_FIELDS):
                    nbytes = QUOTA_FIELD_SIZE[np.int64(r2)]
                    where = np.int64(r1) * QUOTA_RECORD + QUOTA_FIELD_OFFSET[np.int64(r2)]
                    if where + nbytes <= size[RID_QUOTA]:
                        where += base[RID_QUOTA]
                        for k in range(nbytes - 1, -1, -1):
                            res = (res << U8) | np.uint64(flat[where + k])
            elif imm == H_TRACE:
                res = r1
                if traces:
                    if out[2] == 0:
                        out[3] = np.int64(r1)
                    out[2] += 1
            elif imm == H_COUNTER_ADD:
                res = U0 - np.uint64(EINVAL)
                if r1 < np.uint64(MAX_TENANTS) and r2 < np.uint64(NUSER_COUNTERS):
                    where = np.int64(r1) * COUNTERS_RECORD + USER_COUNTER_OFFSET[np.int64(r2)]
                    if where + 8 <= size[RID_COUNTERS]:
                        atomic_add_le64(flat, where + base[RID_COUNTERS], r3)
                        res = U0
            else:
                st = status.FAULT_HELPER
                break
            regs[0] = res
            for k in range(1, 6):
                regs[k] = U0
        pc = next_pc
    out[0] = steps
    out[1] = pc
    return st
