"""The abstract interpreter: every path of an acyclic program, with state pruning.

Paths are walked depth first.  At a join point (a slot reached by more than
one edge) the state is compared with the states already seen there for the
same call chain; one that an earlier state subsumes is dropped, because the
earlier state's continuations are all checked (now or later, and any
failure rejects the program).
"""
from __future__ import annotations

from gbpfd.isa.abi import HELPERS, LIMITS, Hook
from gbpfd.isa.program import Program
from gbpfd.verifier import scalar as sc
from gbpfd.verifier.log import value_text
from gbpfd.verifier.state import (CTX, FP, FULL_MASK, MAP, MAP_VALUE, MAP_VALUE_OR_NULL, POINTER_KINDS,
                                  SCALAR, SLOT_BYTES, STACK, UNKNOWN_SCALAR, Frame, State, Value,
                                  entry_state, frame_pointer, scalar, subsumes)
from gbpfd.verifier.structure import Layout

MAX_PROCESSED = 500_000      # instructions interpreted, over all paths
MAX_STATES_PER_POINT = 32    # states kept for pruning at one join point
# Pointer offsets stay far from the 32-bit offset field's edge, so an address
# never wraps into another region of the tagged memory model.
MAX_POINTER_OFFSET = 1 << 29
STACK_BYTES = LIMITS.stack_bytes


class CheckError(Exception):
    def __init__(self, index: int, reason: str, state: State):
        super().__init__(reason)
        self.index, self.reason, self.state = index, reason, state


class Checker:
    def __init__(self, program: Program, hook: Hook, layout: Layout):
        self.program, self.hook, self.layout = program, hook, layout
        self.rows, self.insns = layout.rows, program.insns
        self.seen: dict[tuple, list[State]] = {}
        self.explored = self.pruned = self.processed = self.last_id = 0
        self.pc = 0
        self.state: State | None = None
        self.handlers = [row and _HANDLERS[_handler_kind(row)] for row in self.rows]

    # ------------------------------------------------------------------ driver
    def run(self) -> None:
        work = [(0, entry_state(Value(CTX)))]
        while work:
            pc, state = work.pop()
            self.explored += 1
            self._walk(pc, state, work)

    def _walk(self, pc: int, state: State, work: list) -> None:
        joins = self.layout.prune_points
        while pc is not None:
            self.pc, self.state = pc, state
            self.processed += 1
            if self.processed > MAX_PROCESSED:
                self.fail(f"program is too complex to verify (more than {MAX_PROCESSED} insns processed)")
            if pc in joins and self._prune(pc, state):
                return
            pc = self.handlers[pc](self, self.rows[pc], self.insns[pc], state, work)

    def _prune(self, pc: int, state: State) -> bool:
        olds = self.seen.setdefault((pc, state.call_chain()), [])
        if any(subsumes(old, state) for old in olds):
            self.pruned += 1
            return True
        if len(olds) < MAX_STATES_PER_POINT:
            olds.append(state.copy())
        return False

    def fail(self, reason: str):
        raise CheckError(self.pc, reason, self.state)

    # --------------------------------------------------------------- registers
    def read(self, reg: int) -> Value:
        value = self.state.regs[reg]
        if value is None:
            self.fail(f"R{reg} is uninitialised")
        return value

    def text(self, value: Value) -> str:
        return value_text(value, self.program)

    def operand(self, row, insn) -> Value:
        """The source operand: register src, or imm as the instruction's width reads it."""
        if row.uses_reg_source:
            return self.read(insn.src)
        return scalar(sc.constant(insn.imm & (sc.U64 if row.width == 64 else sc.U32)))

    # -------------------------------------------------------------- arithmetic
    def alu(self, row, insn, state: State, work) -> int:
        op, regs = row.op, state.regs
        if op == "neg":
            src = scalar(sc.constant(0))
        else:
            src = self.operand(row, insn)
        if op == "mov" and row.width == 64:
            regs[insn.dst] = src
            return self.pc + 1
        if op == "mov" or op.startswith("movsx"):
            if src.is_pointer:
                self.fail(f"{row.mnemonic} of pointer R{insn.src} ({self.text(src)}): "
                          f"only a 64-bit mov copies a pointer")
            regs[insn.dst] = scalar(sc.sign_extend(src.scalar, row.pinned[1], row.width) if op != "mov"
                                    else sc.alu32(op, src.scalar, src.scalar))
            return self.pc + 1
        dst = self.read(insn.dst)
        if dst.is_pointer or src.is_pointer:
            regs[insn.dst] = self._pointer_arith(row, insn, dst, src)
        elif row.width == 64:
            regs[insn.dst] = scalar(sc.alu64(op, dst.scalar, src.scalar))
        else:
            regs[insn.dst] = scalar(sc.alu32(op, dst.scalar, src.scalar))
        return self.pc + 1

    def _pointer_arith(self, row, insn, dst: Value, src: Value) -> Value:
        if dst.is_pointer and src.is_pointer:
            self.fail(f"{row.mnemonic} of two pointers (R{insn.dst} is {self.text(dst)}, "
                      f"R{insn.src} is {self.text(src)})")
        preg, ptr, other = (insn.dst, dst, src) if dst.is_pointer else (insn.src, src, dst)
        if ptr.kind == MAP_VALUE_OR_NULL:
            self.fail(f"R{preg} is map_value_or_null: no arithmetic on it (check it against 0 first)")
        if row.width == 32:
            self.fail(f"{row.mnemonic} on pointer R{preg} ({self.text(ptr)}): no 32-bit arithmetic on pointers")
        if row.op not in ("add", "sub") or (row.op == "sub" and ptr is src) or ptr.kind not in POINTER_KINDS:
            self.fail(f"{row.mnemonic} on pointer R{preg} ({self.text(ptr)}): only adding or "
                      f"subtracting a scalar is allowed")
        s = other.scalar
        if s.smin < -MAX_POINTER_OFFSET or s.smax > MAX_POINTER_OFFSET:
            self.fail(f"pointer arithmetic on R{preg} with an unbounded scalar ({s.text()})")
        if row.op == "add":
            lo, hi = ptr.off_lo + s.smin, ptr.off_hi + s.smax
        else:
            lo, hi = ptr.off_lo - s.smax, ptr.off_hi - s.smin
        if lo < -MAX_POINTER_OFFSET or hi > MAX_POINTER_OFFSET:
            self.fail(f"pointer R{preg} offset [{lo}, {hi}] is out of range")
        return ptr.with_offset(lo, hi)

    def byte_order(self, row, insn, state: State, work) -> int:
        dst = self.read(insn.dst)
        if dst.is_pointer:
            self.fail(f"{row.mnemonic} on pointer R{insn.dst} ({self.text(dst)})")
        state.regs[insn.dst] = scalar(sc.byte_order(dst.scalar, row.pinned[1], not row.op.startswith("le")))
        return self.pc + 1

    def lddw(self, row, insn, state: State, work) -> int:
        second = self.insns[self.pc + 1].imm
        if row.op == "lddw_map":
            value = Value(MAP, map=insn.imm)
        elif row.op == "lddw_map_value":
            value = Value(MAP_VALUE, map=insn.imm, off_lo=second, off_hi=second)
        else:
            value = scalar(sc.constant((second << 32) | (insn.imm & sc.U32)))
        state.regs[insn.dst] = value
        return self.pc + 2

    # ------------------------------------------------------------------ memory
    def load(self, row, insn, state: State, work) -> int:
        signed = row.op == "ldxsx"
        state.regs[insn.dst] = self.access(insn.src, insn.off, row.size, signed=signed)
        return self.pc + 1

    def store(self, row, insn, state: State, work) -> int:
        if row.cls == "stx":
            value, vreg = self.read(insn.src), insn.src
        else:
            value, vreg = scalar(sc.constant(insn.imm & sc.U64)), None
        self.access(insn.dst, insn.off, row.size, stored=value, stored_reg=vreg)
        return self.pc + 1

    def access(self, reg: int, off: int, size: int, *, signed: bool = False,
               stored: Value | None = None, stored_reg: int | None = None, data: bool = False) -> Value | None:
        """Check one load (``stored`` None) or store through ``reg``; a load returns its value.

        ``data`` marks a helper reading plain bytes: spilled pointers may not be read.
        """
        base = self.read(reg)
        if base.kind == SCALAR:
            self.fail(f"R{reg} is {self.text(base)}, not a pointer")
        if base.kind == MAP_VALUE_OR_NULL:
            self.fail(f"R{reg} is map_value_or_null (check it against 0 first)")
        if base.kind == MAP:
            self.fail(f"R{reg} is a map handle ({self.text(base)}): it cannot be dereferenced")
        if stored is not None and stored.is_pointer and base.kind != STACK:
            self.fail(f"pointer R{stored_reg} ({self.text(stored)}) stored into {self.text(base)} memory")
        lo, hi = base.off_lo + off, base.off_hi + off
        if base.kind == MAP_VALUE:
            self._map_value_access(base, lo, hi, size, stored is not None)
        else:
            if lo != hi:
                self.fail(f"variable-offset access through R{reg} ({self.text(base)})")
            if base.kind == CTX:
                self._ctx_access(lo, size, stored is not None)
            elif stored is not None:
                self._stack_store(base.frame, lo, size, stored, stored_reg)
                return None
            else:
                return self._stack_load(base.frame, lo, size, signed, data)
        return None if stored is not None else scalar(sc.of_width(size * 8, signed=signed))

    def _map_value_access(self, base: Value, lo: int, hi: int, size: int, write: bool) -> None:
        m = self.program.maps[base.map]
        if write and m.read_only:
            self.fail(f"write into read-only map '{m.name}' (kind {m.kind})")
        if lo < 0 or hi + size > m.value_size:
            where = str(lo) if lo == hi else f"[{lo}, {hi}]"
            self.fail(f"access to map '{m.name}' at offset {where} size {size} is outside its "
                      f"{m.value_size}-byte value")

    def _ctx_access(self, offset: int, size: int, write: bool) -> None:
        field = self.hook.ctx_field(offset, size)
        if field is None:
            self.fail(f"invalid ctx access at offset {offset} size {size} "
                      f"(no {self.hook.name} ctx field has that offset and size)")
        if write and field.access != "rw":
            self.fail(f"write to read-only ctx field '{field.name}' (offset {field.offset}, size {field.size})")

    def _stack_range(self, start: int, size: int) -> None:
        if start < -STACK_BYTES or start + size > 0:
            self.fail(f"stack access at fp{start:+d} size {size} is outside the frame [-{STACK_BYTES}, 0)")

    def _stack_store(self, frame: int, start: int, size: int, value: Value, vreg: int | None) -> None:
        self._stack_range(start, size)
        stack = self.state.frames[frame].stack
        first = start + STACK_BYTES
        if size == SLOT_BYTES and first % SLOT_BYTES == 0:
            if value.is_pointer and frame != len(self.state.frames) - 1:
                self.fail(f"pointer R{vreg} spilled into a caller's stack")
            stack[first // SLOT_BYTES] = value
            return
        if value.is_pointer:
            self.fail(f"pointer R{vreg} stored at fp{start:+d} with a {size}-byte store "
                      f"(only an 8-byte aligned stxdw may spill a pointer)")
        for byte in range(first, first + size):
            slot = byte // SLOT_BYTES
            old = stack.get(slot, 0)
            mask = FULL_MASK if isinstance(old, Value) else old
            stack[slot] = mask | (1 << (byte % SLOT_BYTES))

    def _stack_load(self, frame: int, start: int, size: int, signed: bool, data: bool) -> Value:
        self._stack_range(start, size)
        stack = self.state.frames[frame].stack
        first = start + STACK_BYTES
        if size == SLOT_BYTES and first % SLOT_BYTES == 0 and not data:
            spilled = stack.get(first // SLOT_BYTES)
            if isinstance(spilled, Value):
                return spilled
        for byte in range(first, first + size):
            slot = stack.get(byte // SLOT_BYTES)
            if isinstance(slot, Value):
                if slot.is_pointer:
                    self.fail(f"partial read of a spilled pointer at fp{byte - STACK_BYTES:+d}")
            elif slot is None or not slot >> (byte % SLOT_BYTES) & 1:
                self.fail(f"read of uninitialised stack byte fp{byte - STACK_BYTES:+d}")
        return scalar(sc.of_width(size * 8, signed=signed))

    # ------------------------------------------------------------------- jumps
    def goto(self, row, insn, state: State, work) -> int:
        return self.layout.targets[self.pc]

    def branch(self, row, insn, state: State, work) -> int | None:
        dst = self.read(insn.dst)
        src = self.operand(row, insn)
        if dst.is_pointer or src.is_pointer:
            outcomes = self._pointer_branch(row, insn, dst, src)
        else:
            outcomes = self._scalar_branch(row, insn, dst.scalar, src.scalar)
        target, fall = self.layout.targets[self.pc], self.pc + 1
        taken, not_taken = outcomes
        if taken is not None and not_taken is not None:
            work.append((target, self._apply(state.copy(), taken)))
        if not_taken is not None:
            self._apply(state, not_taken)
            return fall
        if taken is not None:
            self._apply(state, taken)
            return target
        return None

    @staticmethod
    def _apply(state: State, changes: list) -> State:
        for regs, index, value in changes(state):
            regs[index] = value
        return state

    def _scalar_branch(self, row, insn, d: sc.Scalar, s: sc.Scalar):
        op = row.op
        if row.width == 32:
            if d.const is not None and s.const is not None:
                taken = sc.CONCRETE_JUMP[op](d.const & sc.U32, s.const & sc.U32, 32)
                return (_no_change, None) if taken else (None, _no_change)
            # a 32-bit comparison says something about the 64-bit register only
            # when the upper half is known to be zero (and, signed, bit 31 too)
            bound = sc.S64_MAX >> 32 if op in sc.SIGNED_JUMPS else sc.U32
            if not (d.fits(bound) and s.fits(bound)):
                return _no_change, _no_change
        return tuple(self._narrowed(insn, row, sc.refine(op, d, s, taken)) for taken in (True, False))

    @staticmethod
    def _narrowed(insn, row, refined):
        if refined is None:
            return None
        nd, ns = refined

        def changes(state: State):
            out = [(state.regs, insn.dst, scalar(nd))]
            if row.uses_reg_source:
                out.append((state.regs, insn.src, scalar(ns)))
            return out
        return changes

    def _pointer_branch(self, row, insn, dst: Value, src: Value):
        preg, ptr, other = (insn.dst, dst, src) if dst.is_pointer else (insn.src, src, dst)
        if row.width == 32:
            self.fail(f"32-bit comparison of pointer R{preg} ({self.text(ptr)})")
        if row.op not in ("jeq", "jne") or other.is_pointer or other.scalar.const != 0:
            self.fail(f"{row.mnemonic} on pointer R{preg} ({self.text(ptr)}): a pointer may only "
                      f"be tested for equality with 0")
        if ptr.kind != MAP_VALUE_OR_NULL:
            return _no_change, _no_change
        null, non_null = _null_check(ptr, scalar(sc.constant(0))), \
            _null_check(ptr, Value(MAP_VALUE, map=ptr.map, off_lo=ptr.off_lo, off_hi=ptr.off_hi))
        return (null, non_null) if row.op == "jeq" else (non_null, null)

    # ------------------------------------------------------------------- calls
    def call_helper(self, row, insn, state: State, work) -> int:
        helper = HELPERS[insn.imm]
        m = None
        for i, kind in enumerate(helper.args):
            reg = i + 1
            value = self.read(reg)
            if kind == "map":
                if value.kind != MAP:
                    self.fail(f"R{reg} must be a map (lddw map:NAME) for {helper.name}, not {self.text(value)}")
                m = self.program.maps[value.map]
                if "value" in helper.args and m.read_only:
                    self.fail(f"{helper.name} on read-only map '{m.name}' (kind {m.kind})")
                map_index = value.map
            elif kind in ("key", "value"):
                self._memory_arg(helper.name, kind, reg, value, m.key_size if kind == "key" else m.value_size)
            elif value.is_pointer:
                self.fail(f"R{reg} must be a scalar for {helper.name}, not {self.text(value)}")
        regs = state.regs
        regs[1:6] = [None] * 5
        if helper.ret == "map_value_or_null":
            self.last_id += 1
            regs[0] = Value(MAP_VALUE_OR_NULL, map=map_index, id=self.last_id)
        else:
            regs[0] = UNKNOWN_SCALAR
        return self.pc + 1

    def _memory_arg(self, helper: str, kind: str, reg: int, value: Value, size: int) -> None:
        if value.kind not in (STACK, MAP_VALUE):
            self.fail(f"R{reg} must point to {size} bytes on the stack or in a map value "
                      f"({kind} of {helper}), not {self.text(value)}")
        self.access(reg, 0, size, data=True)

    def call_local(self, row, insn, state: State, work) -> int:
        regs: list = [None] * len(state.regs)
        regs[1:6] = state.regs[1:6]
        regs[FP] = frame_pointer(len(state.frames))
        state.frames.append(Frame(regs, {}, self.pc + 1, self.pc))
        return self.layout.targets[self.pc]

    def exit(self, row, insn, state: State, work) -> int | None:
        r0 = self.read(0)
        if len(state.frames) > 1:
            if r0.is_pointer:
                self.fail(f"R0 is {self.text(r0)} at function exit, expected a scalar")
            callee = state.frames.pop()
            state.regs[0] = r0
            state.regs[1:6] = [None] * 5
            return callee.return_pc
        lo, hi = self.hook.ret
        if r0.is_pointer:
            self.fail(f"At program exit R0 is {self.text(r0)}, expected a scalar in [{lo}, {hi}]")
        if r0.scalar.umin < lo or r0.scalar.umax > hi:
            self.fail(f"At program exit R0 has value [{r0.scalar.umin}, {r0.scalar.umax}] "
                      f"(expected [{lo}, {hi}])")
        return None


def _no_change(state: State) -> list:
    return []


def _null_check(ptr: Value, replacement: Value):
    """Every copy of ``ptr`` (same id, in any frame or spill slot) becomes ``replacement``."""
    def changes(state: State):
        out = []
        for frame in state.frames:
            out += [(frame.regs, i, replacement) for i, v in enumerate(frame.regs)
                    if v is not None and v.kind == MAP_VALUE_OR_NULL and v.id == ptr.id]
            out += [(frame.stack, k, replacement) for k, v in frame.stack.items()
                    if isinstance(v, Value) and v.kind == MAP_VALUE_OR_NULL and v.id == ptr.id]
        return out
    return changes


def _handler_kind(row) -> str:
    if row.form == "endian":
        return "endian"
    if row.cls in ("alu", "alu64"):
        return "alu"
    if row.form in ("jmp_k", "jmp_x"):
        return "branch"
    if row.form in ("ja", "ja32"):
        return "goto"
    if row.cls == "ldx":
        return "load"
    if row.cls in ("st", "stx"):
        return "store"
    if row.slots == 2:
        return "lddw"
    return row.op


_HANDLERS = {
    "endian": Checker.byte_order, "alu": Checker.alu, "branch": Checker.branch, "goto": Checker.goto,
    "load": Checker.load, "store": Checker.store, "lddw": Checker.lddw,
    "call": Checker.call_helper, "call_local": Checker.call_local, "exit": Checker.exit,
}
