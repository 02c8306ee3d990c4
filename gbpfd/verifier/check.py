"""The abstract interpreter: every path of an acyclic program, with state pruning.

Paths are walked depth first.  At a join point (a slot reached by more than
one edge) the state is compared with the states already seen there for the
same call chain; one that an earlier state subsumes is dropped, because the
earlier state's continuations are all checked (now or later, and any
failure rejects the program).
"""
from __future__ import annotations

import time
from functools import cache

from gbpfd.isa.abi import HELPERS, LIMITS, Hook
from gbpfd.isa.program import Program
from gbpfd.verifier import scalar as sc
from gbpfd.verifier.log import value_text
from gbpfd.verifier.state import (CTX, FP, MAP, MAP_VALUE, MAP_VALUE_OR_NULL, POINTER_KINDS, SCALAR,
                                  SLOT_BYTES, STACK, UNKNOWN_SCALAR, Frame, JoinStates, Part, State, Value,
                                  entry_state, frame_pointer, init_mask, scalar)
from gbpfd.verifier.structure import Layout

# Complexity limits: whatever the input, the answer comes within seconds.
MAX_PROCESSED = 500_000      # instructions interpreted, over all paths
MAX_STATES = 100_000         # paths started (states taken from the work list)
MAX_COMPARISONS = 4_000_000  # kept states compared against arriving ones, about 1 us each
MAX_SECONDS = 10             # a last resort: the deterministic limits above come first
TIME_CHECK_EVERY = 1024      # instructions interpreted between looks at the clock
MAX_STATES_PER_POINT = 32    # states kept for pruning at one join point
# Pointer offsets stay far from the 32-bit offset field's edge, so an address
# never wraps into another region of the tagged memory model.
MAX_POINTER_OFFSET = 1 << 29
STACK_BYTES = LIMITS.stack_bytes


class CheckError(Exception):
    def __init__(self, index: int, reason: str, state: State):
        super().__init__(reason)
        self.index, self.reason, self.state = index, reason, state


@cache
def _loaded(size: int, signed: bool) -> Value:
    """A fresh load of ``size`` bytes: any value of that width (Values are immutable, so one is shared)."""
    return scalar(sc.of_width(size * 8, signed=signed))


@cache
def _spilled_bytes(c: int, at: int, size: int, signed: bool) -> Value:
    """A narrow load of bytes ``at``.. of a spilled constant: those bytes, as a constant."""
    value = (c >> (8 * at)) & ((1 << (8 * size)) - 1)
    return scalar(sc.constant(sc.to_signed(value, 8 * size) if signed else value))


class Step:
    """How the interpreter steps one encoding, decoded once per program.

    Identical slots share a Step (a program repeats few distinct encodings);
    ``k`` is the source operand when the encoding holds it (an immediate,
    lddw's value, neg's 0), None when the source is register ``src``.

    ``last`` holds the last inputs (Values, compared by identity) and what
    they gave, for the steps whose outcome depends on nothing else (ALU, a
    scalar branch, a load or store outside the stack): paths that meet again
    often bring the very same Values, and then the checks and the outcome
    are the same.
    """

    __slots__ = ("row", "handler", "op", "width", "size", "dst", "src", "off", "imm", "k", "last")

    def __init__(self, program: Program, row, index: int):
        insn = program.insns[index]
        self.row, self.handler = row, _HANDLERS[_handler_kind(row)]
        self.op, self.width, self.size = row.op, row.width, row.size
        self.dst, self.src, self.off, self.imm = insn.dst, insn.src, insn.off, insn.imm
        self.k = _encoded_operand(program, index, row)
        self.last: tuple | None = None


def _steps(program: Program, layout: Layout) -> list:
    """Per slot, its Step (None for an lddw's second slot)."""
    insns, shared = program.insns, {}
    steps: list = [None] * len(insns)
    for i, row in enumerate(layout.rows):
        if row is not None:
            key = layout.encodings[i] if row.slots == 1 else (layout.encodings[i], insns[i + 1].imm)
            step = shared.get(key)
            if step is None:
                step = shared[key] = Step(program, row, i)
            steps[i] = step
    return steps


def _encoded_operand(program: Program, index: int, row) -> Value | None:
    imm = program.insns[index].imm
    if row.slots == 2:
        second = program.insns[index + 1].imm
        if row.op == "lddw_map":
            return Value(MAP, map=imm)
        if row.op == "lddw_map_value":
            return Value(MAP_VALUE, map=imm, off_lo=second, off_hi=second)
        return scalar(sc.constant((second << 32) | (imm & sc.U32)))
    if row.op == "neg":
        return scalar(sc.constant(0))
    if row.cls == "st":
        return scalar(sc.constant(imm & sc.U64))
    if row.source == "k":
        return scalar(sc.constant(imm & (sc.U64 if row.width == 64 else sc.U32)))
    return None


class Checker:
    def __init__(self, program: Program, hook: Hook, layout: Layout):
        self.program, self.hook, self.layout = program, hook, layout
        self.seen: dict[tuple, JoinStates] = {}
        self.explored = self.pruned = self.processed = self.last_id = self.comparisons = 0
        self.deadline = 0.0
        self.pc = 0
        self.state: State | None = None
        self.steps = _steps(program, layout)
        self.ctx_fields: dict[tuple[int, int], object] = {}

    # ------------------------------------------------------------------ driver
    def run(self) -> None:
        self.deadline = time.perf_counter() + MAX_SECONDS
        work = [(0, entry_state(Value(CTX)))]
        while work:
            pc, state = work.pop()
            self.explored += 1
            if self.explored > MAX_STATES:
                self.pc, self.state = pc, state
                self.fail(f"program is too complex to verify (more than {MAX_STATES} states explored)")
            self._walk(pc, state, work)

    def _walk(self, pc: int, state: State, work: list) -> None:
        joins, forget, steps = self.layout.prune_points, self.layout.forget, self.steps
        self.state = state
        processed = self.processed
        while pc is not None:
            self.pc = pc
            processed += 1
            if processed > MAX_PROCESSED:
                self.fail(f"program is too complex to verify (more than {MAX_PROCESSED} insns processed)")
            if processed % TIME_CHECK_EVERY == 0 and time.perf_counter() > self.deadline:
                self.fail(f"program is too complex to verify (more than {MAX_SECONDS} s)")
            if pc in joins:
                _forget(state.regs, forget[pc])
                if self._prune(pc, state):
                    break
            step = steps[pc]
            pc = step.handler(self, step, state, work)
        self.processed = processed

    def _prune(self, pc: int, state: State) -> bool:
        key = (pc, state.chain)
        kept = self.seen.get(key)
        if kept is None:
            kept = self.seen[key] = JoinStates()
        tests = kept.tests
        covered = kept.covers(state)
        self.comparisons += kept.tests - tests
        if self.comparisons > MAX_COMPARISONS:
            self.fail(f"program is too complex to verify (more than {MAX_COMPARISONS} state comparisons)")
        if covered:
            self.pruned += 1
            return True
        if len(kept.states) < MAX_STATES_PER_POINT:
            kept.keep(state)
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

    def operand(self, s: Step) -> Value:
        """The source operand: the encoded one, or register src."""
        return s.k or self.read(s.src)

    # -------------------------------------------------------------- arithmetic
    def mov(self, s: Step, state: State, work) -> int:
        """64-bit mov: the value itself, pointers included.  A copied unknown
        scalar is linked to its source (one id): bounding either bounds both."""
        value = self.operand(s)
        if s.k is None and value.kind == SCALAR and not value.id and value.scalar.const is None:
            self.last_id += 1
            value = state.regs[s.src] = Value(SCALAR, scalar=value.scalar, id=self.last_id)
        state.regs[s.dst] = value
        return self.pc + 1

    def extend(self, s: Step, state: State, work) -> int:
        """mov32 and movsx: a scalar cut to the width, or sign-extended."""
        src = self.operand(s)
        if src.is_pointer:
            self.fail(f"{s.row.mnemonic} of pointer R{s.src} ({self.text(src)}): "
                      f"only a 64-bit mov copies a pointer")
        state.regs[s.dst] = scalar(sc.sign_extend(src.scalar, s.row.pinned[1], s.width) if s.op != "mov"
                                   else sc.alu32(s.op, src.scalar, src.scalar))
        return self.pc + 1

    def alu(self, s: Step, state: State, work) -> int:
        src = self.operand(s)
        dst = self.read(s.dst)
        last = s.last
        if last is not None and last[0] is dst and last[1] is src:
            state.regs[s.dst] = last[2]
            return self.pc + 1
        if dst.kind != SCALAR or src.kind != SCALAR:
            value = self._pointer_arith(s, dst, src)
        elif s.width == 64:
            value = scalar(sc.alu64(s.op, dst.scalar, src.scalar))
        else:
            value = scalar(sc.alu32(s.op, dst.scalar, src.scalar))
        s.last = (dst, src, value)
        state.regs[s.dst] = value
        return self.pc + 1

    def _pointer_arith(self, s: Step, dst: Value, src: Value) -> Value:
        if dst.is_pointer and src.is_pointer:
            self.fail(f"{s.row.mnemonic} of two pointers (R{s.dst} is {self.text(dst)}, "
                      f"R{s.src} is {self.text(src)})")
        preg, ptr, other = (s.dst, dst, src) if dst.is_pointer else (s.src, src, dst)
        if ptr.kind == MAP_VALUE_OR_NULL:
            self.fail(f"R{preg} is map_value_or_null: no arithmetic on it (check it against 0 first)")
        if s.width == 32:
            self.fail(f"{s.row.mnemonic} on pointer R{preg} ({self.text(ptr)}): no 32-bit arithmetic on pointers")
        if s.op not in ("add", "sub") or (s.op == "sub" and ptr is src) or ptr.kind not in POINTER_KINDS:
            self.fail(f"{s.row.mnemonic} on pointer R{preg} ({self.text(ptr)}): only adding or "
                      f"subtracting a scalar is allowed")
        n = other.scalar
        if n.smin < -MAX_POINTER_OFFSET or n.smax > MAX_POINTER_OFFSET:
            self.fail(f"pointer arithmetic on R{preg} with an unbounded scalar ({n.text()})")
        if s.op == "add":
            lo, hi = ptr.off_lo + n.smin, ptr.off_hi + n.smax
        else:
            lo, hi = ptr.off_lo - n.smax, ptr.off_hi - n.smin
        if lo < -MAX_POINTER_OFFSET or hi > MAX_POINTER_OFFSET:
            self.fail(f"pointer R{preg} offset [{lo}, {hi}] is out of range")
        return ptr.with_offset(lo, hi)

    def byte_order(self, s: Step, state: State, work) -> int:
        dst = self.read(s.dst)
        if dst.is_pointer:
            self.fail(f"{s.row.mnemonic} on pointer R{s.dst} ({self.text(dst)})")
        state.regs[s.dst] = scalar(sc.byte_order(dst.scalar, s.row.pinned[1], not s.op.startswith("le")))
        return self.pc + 1

    def lddw(self, s: Step, state: State, work) -> int:
        state.regs[s.dst] = s.k
        return self.pc + 2

    # ------------------------------------------------------------------ memory
    def load(self, s: Step, state: State, work) -> int:
        base, last = state.regs[s.src], s.last
        if last is not None and last[0] is base:
            state.regs[s.dst] = last[1]
            return self.pc + 1
        value = self.access(s.src, s.off, s.size, signed=s.op == "ldxsx")
        if base.kind != STACK:  # a stack load also depends on what the stack holds
            s.last = (base, value)
        state.regs[s.dst] = value
        return self.pc + 1

    def store(self, s: Step, state: State, work) -> int:
        base, last = state.regs[s.dst], s.last
        value = self.operand(s)
        if last is not None and last[0] is base and last[1] is value:
            return self.pc + 1
        self.access(s.dst, s.off, s.size, stored=value, stored_reg=None if s.k else s.src)
        if base.kind != STACK:  # a stack store also changes the stack
            s.last = (base, value)
        return self.pc + 1

    def access(self, reg: int, off: int, size: int, *, signed: bool = False,
               stored: Value | None = None, stored_reg: int | None = None, data: bool = False) -> Value | None:
        """Check one load (``stored`` None) or store through ``reg``; a load returns its value.

        ``data`` marks a helper reading plain bytes: spilled pointers may not be read.
        """
        base = self.read(reg)
        kind = base.kind
        lo, hi = base.off_lo + off, base.off_hi + off
        if kind == STACK:
            if lo != hi:
                if stored is not None:
                    self.fail(f"variable-offset access through R{reg} ({self.text(base)})")
                return self._stack_range_load(reg, base, lo, hi, size, signed)
            if stored is not None:
                self._stack_store(base.frame, lo, size, stored, stored_reg)
                return None
            return self._stack_load(base.frame, lo, size, signed, data)
        if kind != MAP_VALUE and kind != CTX:
            self._not_memory(reg, base)
        if stored is not None and stored.kind != SCALAR:
            self.fail(f"pointer R{stored_reg} ({self.text(stored)}) stored into {self.text(base)} memory")
        if kind == MAP_VALUE:
            self._map_value_access(base, lo, hi, size, stored is not None)
        else:
            if lo != hi:
                self.fail(f"variable-offset access through R{reg} ({self.text(base)})")
            self._ctx_access(lo, size, stored is not None)
        return None if stored is not None else _loaded(size, signed)

    def _not_memory(self, reg: int, base: Value) -> None:
        if base.kind == SCALAR:
            self.fail(f"R{reg} is {self.text(base)}, not a pointer")
        if base.kind == MAP_VALUE_OR_NULL:
            self.fail(f"R{reg} is map_value_or_null (check it against 0 first)")
        self.fail(f"R{reg} is a map handle ({self.text(base)}): it cannot be dereferenced")

    def _map_value_access(self, base: Value, lo: int, hi: int, size: int, write: bool) -> None:
        m = self.program.maps[base.map]
        if write and _read_only(m):
            self.fail(f"write into read-only map '{m.name}' ({_read_only(m)})")
        if lo < 0 or hi + size > m.value_size:
            where = str(lo) if lo == hi else f"[{lo}, {hi}]"
            self.fail(f"access to map '{m.name}' at offset {where} size {size} is outside its "
                      f"{m.value_size}-byte value")

    def _ctx_access(self, offset: int, size: int, write: bool) -> None:
        key = (offset, size, write)
        if key not in self.ctx_fields:
            find = self.hook.ctx_field if write else self.hook.ctx_read_field
            self.ctx_fields[key] = find(offset, size)
        field = self.ctx_fields[key]
        if field is None:
            what = "has that offset and size" if write else "holds those bytes at an aligned offset"
            self.fail(f"invalid ctx access at offset {offset} size {size} (no {self.hook.name} ctx field {what})")
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
            if value.kind == STACK and frame != len(self.state.frames) - 1:
                # ctx and map pointers outlive every frame; a stack pointer may not
                self.fail(f"stack pointer R{vreg} spilled into a caller's stack (it would dangle)")
            stack[first // SLOT_BYTES] = value
            return
        if value.is_pointer:
            self.fail(f"pointer R{vreg} stored at fp{start:+d} with a {size}-byte store "
                      f"(only an 8-byte aligned stxdw may spill a pointer)")
        for slot in range(first // SLOT_BYTES, (first + size - 1) // SLOT_BYTES + 1):
            old = stack.get(slot)
            if isinstance(old, Value) and old.is_pointer:
                # the pointer's other bytes would read back as a scalar: a leak of its bits
                self.fail(f"attempt to corrupt spilled pointer on stack (a {size}-byte store at "
                          f"fp{start:+d} over the pointer spilled at fp{slot * SLOT_BYTES - STACK_BYTES:+d})")
        at = first % SLOT_BYTES
        if at == 0 and value.scalar.umax >> (8 * size) == 0:
            # a narrow spill of a value that fits keeps its bounds for a refill of the same size
            old = init_mask(stack.get(first // SLOT_BYTES))
            stack[first // SLOT_BYTES] = Part(value, size, old & ~((1 << size) - 1))
            return
        for byte in range(first, first + size):
            slot = byte // SLOT_BYTES
            stack[slot] = init_mask(stack.get(slot)) | (1 << (byte % SLOT_BYTES))

    def _stack_load(self, frame: int, start: int, size: int, signed: bool, data: bool) -> Value:
        self._stack_range(start, size)
        stack = self.state.frames[frame].stack
        first = start + STACK_BYTES
        spilled = stack.get(first // SLOT_BYTES)
        if isinstance(spilled, Value) and not data:
            if size == SLOT_BYTES and first % SLOT_BYTES == 0:
                return spilled
            c = spilled.scalar.const if spilled.kind == SCALAR else None
            if c is not None and first % SLOT_BYTES + size <= SLOT_BYTES:
                return _spilled_bytes(c, first % SLOT_BYTES, size, signed)
        for byte in range(first, first + size):
            slot = stack.get(byte // SLOT_BYTES)
            if isinstance(slot, Value) and slot.is_pointer:
                self.fail(f"partial read of a spilled pointer at fp{byte - STACK_BYTES:+d}")
            if not init_mask(slot) >> (byte % SLOT_BYTES) & 1:
                self.fail(f"read of uninitialised stack byte fp{byte - STACK_BYTES:+d}")
        if isinstance(spilled, Part) and spilled.size == size and first % SLOT_BYTES == 0 and not data:
            v = spilled.value
            return scalar(sc.sign_extend(v.scalar, 8 * size, 64)) if signed else v
        return _loaded(size, signed)

    def _stack_range_load(self, reg: int, base: Value, lo: int, hi: int, size: int, signed: bool) -> Value:
        """A load at a variable stack offset: every byte it may read is initialised scalar data."""
        self._stack_range(lo, size)
        self._stack_range(hi, size)
        stack = self.state.frames[base.frame].stack
        for byte in range(lo + STACK_BYTES, hi + size + STACK_BYTES):
            slot = stack.get(byte // SLOT_BYTES)
            if isinstance(slot, Value) and slot.is_pointer:
                self.fail(f"variable-offset read through R{reg} ({self.text(base)}) may read the pointer "
                          f"spilled at fp{byte // SLOT_BYTES * SLOT_BYTES - STACK_BYTES:+d}")
            if not init_mask(slot) >> (byte % SLOT_BYTES) & 1:
                self.fail(f"variable-offset read through R{reg} ({self.text(base)}) may read uninitialised "
                          f"stack byte fp{byte - STACK_BYTES:+d}")
        return _loaded(size, signed)

    # ------------------------------------------------------------------- jumps
    def goto(self, s: Step, state: State, work) -> int:
        return self.layout.targets[self.pc]

    def branch(self, s: Step, state: State, work) -> int | None:
        dst = self.read(s.dst)
        src = self.operand(s)
        if dst.kind != SCALAR or src.kind != SCALAR:
            taken, not_taken = self._pointer_branch(s, dst, src)
        else:
            taken, not_taken = self._scalar_branch(s, dst, src)
        if taken is not None and not_taken is not None:
            other = state.copy()
            taken(other)
            work.append((self.layout.targets[self.pc], other))
        if not_taken is not None:
            not_taken(state)
            return self.pc + 1
        if taken is not None:
            taken(state)
            return self.layout.targets[self.pc]
        return None

    def _scalar_branch(self, s: Step, dst: Value, src: Value):
        last = s.last
        if last is not None and last[0] is dst and last[1] is src:
            return last[2]
        outcomes = self._scalar_outcomes(s, dst, src)
        s.last = (dst, src, outcomes)
        return outcomes

    @staticmethod
    def _scalar_outcomes(s: Step, dst: Value, src: Value):
        """What each outcome does to the state (None: it cannot happen)."""
        op, d, k = s.op, dst.scalar, src.scalar
        if s.width == 32:
            if d.const is not None and k.const is not None:
                taken = sc.CONCRETE_JUMP[op](d.const & sc.U32, k.const & sc.U32, 32)
                return (_no_change, None) if taken else (None, _no_change)
            # a 32-bit comparison bounds the low halves (and the whole register
            # when its upper half is known)
            return (_narrowing(s, dst, src, sc.refine32(op, d, k, True)),
                    _narrowing(s, dst, src, sc.refine32(op, d, k, False)))
        return (_narrowing(s, dst, src, sc.refine(op, d, k, True)),
                _narrowing(s, dst, src, sc.refine(op, d, k, False)))

    def _pointer_branch(self, s: Step, dst: Value, src: Value):
        preg, ptr, other = (s.dst, dst, src) if dst.is_pointer else (s.src, src, dst)
        if s.width == 32:
            self.fail(f"32-bit comparison of pointer R{preg} ({self.text(ptr)})")
        if s.op not in ("jeq", "jne") or other.is_pointer or other.scalar.const != 0:
            self.fail(f"{s.row.mnemonic} on pointer R{preg} ({self.text(ptr)}): a pointer may only "
                      f"be tested for equality with 0")
        if ptr.kind != MAP_VALUE_OR_NULL:
            return _no_change, _no_change
        null, non_null = _null_check(ptr, scalar(sc.constant(0))), \
            _null_check(ptr, Value(MAP_VALUE, map=ptr.map, off_lo=ptr.off_lo, off_hi=ptr.off_hi))
        return (null, non_null) if s.op == "jeq" else (non_null, null)

    # ------------------------------------------------------------------- calls
    def call_helper(self, s: Step, state: State, work) -> int:
        helper = HELPERS[s.imm]
        m = None
        for i, kind in enumerate(helper.args):
            reg = i + 1
            value = self.read(reg)
            if kind == "map":
                if value.kind != MAP:
                    self.fail(f"R{reg} must be a map (lddw map:NAME) for {helper.name}, not {self.text(value)}")
                m = self.program.maps[value.map]
                if "value" in helper.args and _read_only(m):
                    self.fail(f"{helper.name} on read-only map '{m.name}' ({_read_only(m)})")
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

    def call_local(self, s: Step, state: State, work) -> int:
        regs: list = [None] * len(state.regs)
        regs[1:6] = state.regs[1:6]
        _forget(state.regs, self.layout.caller_forget[self.pc])
        regs[FP] = frame_pointer(len(state.frames))
        state.push(Frame(regs, {}, self.pc + 1, self.pc))
        return self.layout.targets[self.pc]

    def exit(self, s: Step, state: State, work) -> int | None:
        r0 = self.read(0)
        if len(state.frames) > 1:
            if r0.is_pointer:
                self.fail(f"R0 is {self.text(r0)} at function exit, expected a scalar")
            callee = state.pop()
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


def _forget(regs: list, forgettable: tuple) -> None:
    """Drop what no later check reads (see liveness): dead registers, imprecise scalar ranges."""
    dead, loose = forgettable
    for r in dead:
        regs[r] = None
    for r in loose:
        v = regs[r]
        if v is not None and v.kind == SCALAR:
            regs[r] = UNKNOWN_SCALAR


def _read_only(m) -> str | None:
    """Why programs may not write map ``m`` (None when they may)."""
    if m.read_only:
        return f"kind {m.kind}"
    if m.name == ".rodata" or m.name.startswith(".rodata."):
        return "a .rodata section: C const globals are frozen"
    return None


def _no_change(state: State) -> None:
    pass


def _narrowing(s: Step, dst: Value, src: Value, refined):
    """The change a branch outcome makes: dst (and a register src) narrowed; None if impossible.

    The change keeps register numbers, not ``s``: ``s.last`` keeps the change.
    """
    if refined is None:
        return None
    nd, ns = refined
    if nd is dst.scalar and (s.k is not None or ns is src.scalar):
        return _no_change
    dreg, new_dst = s.dst, dst if nd is dst.scalar else _narrowed(dst, nd)
    if s.k is not None:
        def narrow(state: State) -> None:
            _settle(state.regs, dreg, new_dst)
        return narrow
    sreg, new_src = s.src, src if ns is src.scalar else _narrowed(src, ns)

    def narrow_both(state: State) -> None:
        _settle(state.regs, dreg, new_dst)
        _settle(state.regs, sreg, new_src)
    return narrow_both


def _narrowed(value: Value, bounds) -> Value:
    return Value(SCALAR, scalar=bounds, id=value.id) if value.id else scalar(bounds)


def _settle(regs: list, reg: int, value: Value) -> None:
    """``reg`` becomes ``value``, and so does every register linked to it (same id)."""
    if value.id:
        for i, v in enumerate(regs):
            if v is not None and v.id == value.id:
                regs[i] = value
    regs[reg] = value


def _null_check(ptr: Value, replacement: Value):
    """Every copy of ``ptr`` (same id, in any frame or spill slot) becomes ``replacement``."""
    def is_copy(v) -> bool:
        return isinstance(v, Value) and v.kind == MAP_VALUE_OR_NULL and v.id == ptr.id

    def settle(state: State) -> None:
        for frame in state.frames:
            for i, v in enumerate(frame.regs):
                if is_copy(v):
                    frame.regs[i] = replacement
            for k, v in frame.stack.items():
                if is_copy(v):
                    frame.stack[k] = replacement
    return settle


def _handler_kind(row) -> str:
    if row.form == "endian":
        return "endian"
    if row.cls in ("alu", "alu64"):
        if row.op == "mov" and row.width == 64:
            return "mov"
        return "extend" if row.op == "mov" or row.op.startswith("movsx") else "alu"
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
    "endian": Checker.byte_order, "mov": Checker.mov, "extend": Checker.extend, "alu": Checker.alu,
    "branch": Checker.branch, "goto": Checker.goto, "load": Checker.load, "store": Checker.store, "lddw": Checker.lddw,
    "call": Checker.call_helper, "call_local": Checker.call_local, "exit": Checker.exit,
}
