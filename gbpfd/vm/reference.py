"""The reference VM: plain Python, one table decode per executed slot, the oracle
that the fast VM and the device plane are checked against.

It deliberately shares no code with gbpfd.vm.interp beyond the memory model
and the status codes, and it must not import numba (the CLI loads it for
a fast start-up).

Choices RFC 9669 leaves open, which the fast VM and the device make the same:

* reaching a slot that does not decode (or an lddw cut off by the end of the
  program) is FAULT_OPCODE; reaching an lddw's second slot is FAULT_PC;
* fuel counts executed slots: the run faults FAULT_FUEL on the first slot
  past ``fuel`` (``steps`` is then ``fuel``);
* after a helper call r1-r5 read 0 (the verifier treats them as clobbered);
* a map handle that names no map, or ``lddw map_value`` of a map the program
  does not declare, is FAULT_BOUNDS;
* map_update_elem checks its pointers first (FAULT_BOUNDS), then returns
  -EINVAL for flags != 0, -EPERM for a read-only map, -E2BIG for an index out
  of range; the copy behaves like memmove.
"""
from __future__ import annotations

from gbpfd.errors import FieldError
from gbpfd.isa.abi import HELPERS, LIMITS, RECORDS
from gbpfd.isa.insn import decode
from gbpfd.isa.semantics import ALU, JUMP, to_signed
from gbpfd.vm import status
from gbpfd.vm.memory import (MAP_HANDLE_RID, NREGIONS, OFFSET_MASK, PERM_R, PERM_W, REGION_SHIFT,
                             RID_COUNTERS, RID_QUOTA, Memory, address, stack_top)
from gbpfd.vm.result import E2BIG, EINVAL, EPERM, Result

MASK64 = (1 << 64) - 1
_SECOND_SLOT = "second slot"
_USER_COUNTERS = [f for f in RECORDS["counters"].fields if f.name.startswith("user")]


class _Fault(Exception):
    def __init__(self, code: int):
        super().__init__(status.REASONS[code])
        self.code = code


def _mask(width: int) -> int:
    return (1 << width) - 1


def _bswap(value: int, bits: int) -> int:
    return int.from_bytes((value & _mask(bits)).to_bytes(bits // 8, "little"), "big")


def _slot_kinds(insns) -> list:
    """Per slot: its Row, None (does not decode) or _SECOND_SLOT."""
    kinds: list = [None] * len(insns)
    i = 0
    while i < len(insns):
        try:
            row = decode(insns[i])
        except FieldError:
            i += 1
            continue
        if i + row.slots > len(insns):
            break
        kinds[i] = row
        for j in range(1, row.slots):
            kinds[i + j] = _SECOND_SLOT
        i += row.slots
    return kinds


class _Machine:
    def __init__(self, program, memory: Memory, args, now_ns: int):
        self.insns = program.insns
        self.kinds = _slot_kinds(program.insns)
        self.mem = memory
        self.now_ns = now_ns
        self.regs = [0] * 11
        for i, value in enumerate(args):
            self.regs[1 + i] = value & MASK64
        self.regs[10] = stack_top(0)
        self.frames: list[tuple[int, list[int]]] = []  # (return pc, saved r6-r9)
        self.pc = 0
        self.steps = 0

    # ---------------------------------------------------------------- memory
    def _locate(self, addr: int, size: int, need: int) -> int:
        """Index in memory.flat of ``size`` bytes at ``addr``, or a bounds fault."""
        rid, off = addr >> REGION_SHIFT, addr & OFFSET_MASK
        if rid >= NREGIONS or off + size > self.mem.size[rid] or not self.mem.perm[rid] & need:
            raise _Fault(status.FAULT_BOUNDS)
        return int(self.mem.base[rid]) + off

    def load(self, addr: int, size: int) -> int:
        start = self._locate(addr, size, PERM_R)
        return int.from_bytes(bytes(self.mem.flat[start:start + size]), "little")

    def store(self, addr: int, size: int, value: int) -> None:
        start = self._locate(addr, size, PERM_W)
        self.mem.flat[start:start + size] = list((value & _mask(size * 8)).to_bytes(size, "little"))

    def _region_bytes(self, rid: int, off: int, size: int) -> slice | None:
        """Slice of flat for a helper's own access, ignoring perm; None if outside."""
        if off + size > self.mem.size[rid]:
            return None
        start = int(self.mem.base[rid]) + off
        return slice(start, start + size)

    # ---------------------------------------------------------------- helpers
    def _map(self, handle: int) -> int:
        index = handle & OFFSET_MASK
        if handle >> REGION_SHIFT != MAP_HANDLE_RID or index >= self.mem.nmaps:
            raise _Fault(status.FAULT_BOUNDS)
        return index

    def map_lookup_elem(self, handle, key_ptr, *_):
        m = self._map(handle)
        key = self.load(key_ptr, 4)
        if key >= self.mem.map_entries[m]:
            return 0
        return address(int(self.mem.map_rid[m]), key * int(self.mem.map_value_size[m]))

    def map_update_elem(self, handle, key_ptr, value_ptr, flags, *_):
        m = self._map(handle)
        key = self.load(key_ptr, 4)
        vsize = int(self.mem.map_value_size[m])
        src = self._locate(value_ptr, vsize, PERM_R)
        rid = int(self.mem.map_rid[m])
        if flags:
            return -EINVAL
        if not self.mem.perm[rid] & PERM_W:
            return -EPERM
        if key >= self.mem.map_entries[m]:
            return -E2BIG
        dst = int(self.mem.base[rid]) + key * vsize  # the map region holds every entry
        self.mem.flat[dst:dst + vsize] = self.mem.flat[src:src + vsize].copy()
        return 0

    def ktime_get_ns(self, *_):
        return self.now_ns

    def quota_read(self, tenant, field, *_):
        record = RECORDS["quota"]
        if tenant >= LIMITS.max_tenants or field >= len(record.fields):
            return 0
        f = record.fields[field]
        where = self._region_bytes(RID_QUOTA, tenant * record.size + f.offset, f.size)
        return 0 if where is None else int.from_bytes(bytes(self.mem.flat[where]), "little")

    def trace(self, x, *_):
        return x

    def counter_add(self, tenant, idx, delta, *_):
        record = RECORDS["counters"]
        if tenant >= LIMITS.max_tenants or idx >= len(_USER_COUNTERS):
            return -EINVAL
        where = self._region_bytes(RID_COUNTERS, tenant * record.size + _USER_COUNTERS[idx].offset, 8)
        if where is None:
            return -EINVAL
        total = (int.from_bytes(bytes(self.mem.flat[where]), "little") + delta) & MASK64
        self.mem.flat[where] = list(total.to_bytes(8, "little"))
        return 0

    def call_helper(self, helper_id: int) -> None:
        helper = HELPERS.get(helper_id)
        if helper is None:
            raise _Fault(status.FAULT_HELPER)
        r0 = getattr(self, helper.name)(*self.regs[1:6])
        self.regs[0] = r0 & MASK64
        self.regs[1:6] = [0] * 5

    # ---------------------------------------------------------------- execution
    def step(self) -> bool:
        """Execute the slot at pc; False once the entry frame exits."""
        if not 0 <= self.pc < len(self.insns):
            raise _Fault(status.FAULT_PC)
        row = self.kinds[self.pc]
        if row is None:
            raise _Fault(status.FAULT_OPCODE)
        if row is _SECOND_SLOT:
            raise _Fault(status.FAULT_PC)
        self.steps += 1
        insn = self.insns[self.pc]
        op, regs = row.op, self.regs
        next_pc = self.pc + row.slots
        width = row.width
        if op in ALU or op.startswith("movsx"):
            if row.uses_reg_source:
                operand = regs[insn.src]
            else:
                operand = insn.imm & MASK64  # sign-extends; cut to 32 bits below
            a, b = regs[insn.dst] & _mask(width), operand & _mask(width)
            if op.startswith("movsx"):
                value = to_signed(operand, row.pinned[1])
            else:
                value = ALU[op](a, b, width)
            regs[insn.dst] = value & _mask(width)
        elif op in JUMP:
            b = regs[insn.src] if row.uses_reg_source else insn.imm & MASK64
            if JUMP[op](regs[insn.dst] & _mask(width), b & _mask(width), width):
                next_pc += insn.off
        elif op == "ja":
            next_pc += insn.off
        elif op == "ja32":
            next_pc += insn.imm
        elif op == "ldx":
            regs[insn.dst] = self.load((regs[insn.src] + insn.off) & MASK64, row.size)
        elif op == "ldxsx":
            value = self.load((regs[insn.src] + insn.off) & MASK64, row.size)
            regs[insn.dst] = to_signed(value, row.size * 8) & MASK64
        elif op == "st":
            self.store((regs[insn.dst] + insn.off) & MASK64, row.size, insn.imm)
        elif op == "stx":
            self.store((regs[insn.dst] + insn.off) & MASK64, row.size, regs[insn.src])
        elif op.startswith(("le", "be", "bswap")):
            bits = row.pinned[1]
            value = regs[insn.dst] & _mask(bits)
            regs[insn.dst] = value if op.startswith("le") else _bswap(value, bits)
        elif op == "lddw":
            high = self.insns[self.pc + 1].imm & OFFSET_MASK
            regs[insn.dst] = (high << 32) | (insn.imm & OFFSET_MASK)
        elif op == "lddw_map":
            regs[insn.dst] = address(MAP_HANDLE_RID, insn.imm & OFFSET_MASK)
        elif op == "lddw_map_value":
            if not 0 <= insn.imm < self.mem.nmaps:
                raise _Fault(status.FAULT_BOUNDS)
            base = address(int(self.mem.map_rid[insn.imm]), 0)
            regs[insn.dst] = (base + self.insns[self.pc + 1].imm) & MASK64
        elif op == "call":
            self.call_helper(insn.imm)
        elif op == "call_local":
            if len(self.frames) + 1 >= LIMITS.max_call_depth:
                raise _Fault(status.FAULT_CALL_DEPTH)
            self.frames.append((next_pc, regs[6:10]))
            regs[10] = stack_top(len(self.frames))
            next_pc = self.pc + insn.imm + 1
        elif op == "exit":
            if not self.frames:
                return False
            next_pc, regs[6:10] = self.frames.pop()
            regs[10] = stack_top(len(self.frames))
        else:
            raise AssertionError(f"reference VM has no case for table op {op!r}")
        self.pc = next_pc
        return True


def run(program, memory: Memory, *, args: tuple[int, ...] = (), fuel: int = 1_000_000,
        now_ns: int = 0) -> Result:
    """Run ``program`` to its exit or first fault; ``memory`` is changed in place."""
    if len(args) > 5:
        raise ValueError(f"{len(args)} arguments given, at most 5 (r1-r5) are allowed")
    vm = _Machine(program, memory, args, now_ns)
    try:
        while True:
            if vm.steps >= fuel:
                raise _Fault(status.FAULT_FUEL)
            if not vm.step():
                return Result(status.OK, vm.regs[0], vm.steps, vm.pc)
    except _Fault as fault:
        return Result(fault.code, vm.regs[0], vm.steps, vm.pc)
