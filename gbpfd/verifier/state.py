"""The abstract machine state: typed registers and byte-tracked stacks, per call frame.

Values are immutable, so copying a state for a branch copies only the
register lists and the stack dictionaries.  ``subsumes`` is the pruning
test: a state whose every continuation was (or will be) checked covers any
state that describes fewer concrete machines.
"""
from __future__ import annotations

from gbpfd.isa.abi import LIMITS
from gbpfd.verifier.scalar import UNKNOWN, Scalar

NREGS = 11
FP = 10
SLOT_BYTES = 8
NSLOTS = LIMITS.stack_bytes // SLOT_BYTES
FULL_MASK = (1 << SLOT_BYTES) - 1

# Register kinds.  Pointer offsets are [off_lo, off_hi] in bytes from the
# region's start (ctx, map value) or from the frame's r10 (stack).
SCALAR = "scalar"
CTX = "ctx"
STACK = "fp"
MAP = "map_ptr"
MAP_VALUE = "map_value"
MAP_VALUE_OR_NULL = "map_value_or_null"
POINTER_KINDS = frozenset({CTX, STACK, MAP_VALUE})  # the kinds that may be offset


class Value:
    __slots__ = ("kind", "scalar", "map", "off_lo", "off_hi", "id", "frame")

    def __init__(self, kind: str, *, scalar: Scalar | None = None, map: int = -1,
                 off_lo: int = 0, off_hi: int = 0, id: int = 0, frame: int = 0):
        self.kind, self.scalar, self.map = kind, scalar, map
        self.off_lo, self.off_hi, self.id, self.frame = off_lo, off_hi, id, frame

    def key(self) -> tuple:
        return (self.kind, self.scalar, self.map, self.off_lo, self.off_hi, self.id, self.frame)

    def __eq__(self, other) -> bool:
        return isinstance(other, Value) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    @property
    def is_pointer(self) -> bool:
        return self.kind != SCALAR

    def with_offset(self, lo: int, hi: int) -> "Value":
        return Value(self.kind, map=self.map, off_lo=lo, off_hi=hi, id=self.id, frame=self.frame)


def scalar(s: Scalar) -> Value:
    return Value(SCALAR, scalar=s)


UNKNOWN_SCALAR = scalar(UNKNOWN)


def frame_pointer(frame: int) -> Value:
    return Value(STACK, frame=frame)


class Frame:
    """One call frame: registers (None = uninitialised) and its 512-byte stack.

    ``stack`` maps a slot index (slot k holds fp-512+8k .. fp-512+8k+7) to a
    spilled Value (an aligned 8-byte store of a register) or to a bit mask of
    the slot's initialised scalar bytes; a missing slot is uninitialised.
    """

    __slots__ = ("regs", "stack", "return_pc", "call_pc")

    def __init__(self, regs: list, stack: dict, return_pc: int, call_pc: int):
        self.regs, self.stack, self.return_pc, self.call_pc = regs, stack, return_pc, call_pc

    def copy(self) -> "Frame":
        return Frame(list(self.regs), dict(self.stack), self.return_pc, self.call_pc)


class State:
    __slots__ = ("frames",)

    def __init__(self, frames: list[Frame]):
        self.frames = frames

    @property
    def top(self) -> Frame:
        return self.frames[-1]

    @property
    def regs(self) -> list:
        return self.frames[-1].regs

    def copy(self) -> "State":
        return State([f.copy() for f in self.frames])

    def call_chain(self) -> tuple[int, ...]:
        return tuple(f.call_pc for f in self.frames)


def entry_state(ctx: Value) -> State:
    regs: list = [None] * NREGS
    regs[1] = ctx
    regs[FP] = frame_pointer(0)
    return State([Frame(regs, {}, -1, -1)])


# ----------------------------------------------------------------- subsumption

def _value_subsumes(old: Value, new: Value, idmap: dict) -> bool:
    if old.kind != new.kind:
        return False
    if old.kind == SCALAR:
        return old.scalar.contains(new.scalar)
    if (old.map, old.frame) != (new.map, new.frame):
        return False
    if not (old.off_lo <= new.off_lo and new.off_hi <= old.off_hi):
        return False
    if old.kind == MAP_VALUE_OR_NULL:
        # old ids that are shared must stay shared: a null check on one
        # register settles every register holding the same id
        return idmap.setdefault(old.id, new.id) == new.id
    return True


def _slot_subsumes(old, new, idmap: dict) -> bool:
    if isinstance(old, Value):
        return isinstance(new, Value) and _value_subsumes(old, new, idmap)
    if new is None:
        return False
    if isinstance(new, Value):
        return new.kind == SCALAR
    return old & ~new == 0


def subsumes(old: State, new: State) -> bool:
    """True when every concrete machine ``new`` describes is one ``old`` describes.

    An uninitialised register or stack byte in ``old`` covers anything: the
    checked continuation of ``old`` never reads it before writing it.
    """
    idmap: dict = {}
    for fo, fn in zip(old.frames, new.frames):
        for vo, vn in zip(fo.regs, fn.regs):
            if vo is not None and (vn is None or not _value_subsumes(vo, vn, idmap)):
                return False
        for k, so in fo.stack.items():
            if not _slot_subsumes(so, fn.stack.get(k), idmap):
                return False
    return True
