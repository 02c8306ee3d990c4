"""The abstract machine state: typed registers and byte-tracked stacks, per call frame.

Values are immutable, so copying a state for a branch copies only the
register lists and the stack dictionaries, and paths share Values.
``JoinStates`` holds the pruning test: a state whose every continuation was
(or will be) checked covers any state that describes fewer concrete machines.
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
    """One register or spill slot's abstract value; immutable, so paths share them.

    Values compare by identity (the default): states are compared by
    subsumption, which reads the contents, and by identity first (cheap).
    """

    __slots__ = ("kind", "scalar", "map", "off_lo", "off_hi", "id", "frame")

    def __init__(self, kind: str, *, scalar: Scalar | None = None, map: int = -1,
                 off_lo: int = 0, off_hi: int = 0, id: int = 0, frame: int = 0):
        self.kind, self.scalar, self.map = kind, scalar, map
        self.off_lo, self.off_hi, self.id, self.frame = off_lo, off_hi, id, frame

    @property
    def is_pointer(self) -> bool:
        return self.kind != SCALAR

    def with_offset(self, lo: int, hi: int) -> "Value":
        return Value(self.kind, map=self.map, off_lo=lo, off_hi=hi, id=self.id, frame=self.frame)


class Part:
    """A stack slot whose low ``size`` bytes hold a narrow spill of a scalar that
    fits them (``value``, zero-extended), and whose other initialised bytes are
    ``rest`` (a mask of bits at and above ``size``); immutable."""

    __slots__ = ("value", "size", "rest")

    def __init__(self, value: Value, size: int, rest: int):
        self.value, self.size, self.rest = value, size, rest

    @property
    def mask(self) -> int:
        return (1 << self.size) - 1 | self.rest


def init_mask(slot) -> int:
    """The initialised bytes of a stack slot, as a bit mask."""
    if slot is None:
        return 0
    if isinstance(slot, int):
        return slot
    return FULL_MASK if isinstance(slot, Value) else slot.mask


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


class State:
    """The frames of one path.  ``regs`` (the innermost frame's registers) and
    ``chain`` (the frames' call sites) are kept in step by ``push`` and ``pop``:
    the interpreter reads them on every step and at every join point."""

    __slots__ = ("frames", "regs", "chain")

    def __init__(self, frames: list[Frame], chain: tuple[int, ...]):
        self.frames, self.regs, self.chain = frames, frames[-1].regs, chain

    def push(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.regs, self.chain = frame.regs, self.chain + (frame.call_pc,)

    def pop(self) -> Frame:
        frame = self.frames.pop()
        self.regs, self.chain = self.frames[-1].regs, self.chain[:-1]
        return frame

    def copy(self) -> "State":
        return State([Frame(f.regs.copy(), f.stack.copy(), f.return_pc, f.call_pc) for f in self.frames],
                     self.chain)


def entry_state(ctx: Value) -> State:
    regs: list = [None] * NREGS
    regs[1] = ctx
    regs[FP] = frame_pointer(0)
    return State([Frame(regs, {}, -1, -1)], (-1,))


# ----------------------------------------------------------------- subsumption

def _value_covers(old: Value, new: Value) -> bool:
    """``old`` describes every value ``new`` does, map_value_or_null ids aside."""
    if old is new:
        return True
    kind = old.kind
    if kind != new.kind:
        return False
    if kind == SCALAR:
        return old.scalar.contains(new.scalar)
    return (old.map == new.map and old.frame == new.frame
            and old.off_lo <= new.off_lo and new.off_hi <= old.off_hi)


def _ids_kept(old: Value, new: Value, idmap: dict) -> bool:
    # old ids that are shared must stay shared: a null check on one register
    # settles every register holding the same id, a branch on a linked
    # scalar bounds every copy of it
    return not old.id or (new.id != 0 and idmap.setdefault(old.id, new.id) == new.id)


def _value_subsumes(old: Value, new: Value, idmap: dict) -> bool:
    return _value_covers(old, new) and _ids_kept(old, new, idmap)


def _slot_subsumes(old, new, idmap: dict) -> bool:
    if isinstance(old, Value):
        return isinstance(new, Value) and _value_subsumes(old, new, idmap)
    if new is None:
        return False
    if isinstance(old, Part):
        return (isinstance(new, Part) and new.size == old.size and old.rest & ~new.rest == 0
                and _value_subsumes(old.value, new.value, idmap))
    if isinstance(new, Value) and new.kind != SCALAR:
        return False
    return old & ~init_mask(new) == 0


# A kept state (one compared against at a join point) is a snapshot: per
# frame, (registers as a tuple, stack dict); cheaper to take than a State.

def _snapshot(state: State) -> tuple:
    return tuple([(tuple(f.regs), f.stack.copy()) for f in state.frames])


def _frames(state: State) -> list:
    """``state``'s frames in a snapshot's shape (without copying)."""
    return [(f.regs, f.stack) for f in state.frames]


def _subsumes(old: tuple, new: State) -> bool:
    """True when every concrete machine ``new`` describes is one the snapshot
    ``old`` describes.

    An uninitialised register or stack byte in ``old`` covers anything: the
    checked continuation of ``old`` never reads it before writing it.
    """
    idmap: dict = {}
    frames = list(zip(old, new.frames))
    # registers first, innermost frame first: that is where paths differ, so
    # a failing comparison fails before walking the (often identical) stacks
    for (old_regs, _), fn in reversed(frames):
        for vo, vn in zip(old_regs, fn.regs):
            if vo is None:
                continue
            if vn is not vo and (vn is None or not _value_covers(vo, vn)):
                return False
            if vo.id and not _ids_kept(vo, vn, idmap):
                return False
    for (_, old_stack), fn in reversed(frames):
        new_stack = fn.stack
        for k, so in old_stack.items():
            sn = new_stack.get(k)
            # the same Value covers itself; only an or-null one needs its id mapped
            if sn is so and (not isinstance(so, Value) or so.kind != MAP_VALUE_OR_NULL):
                continue
            if not _slot_subsumes(so, sn, idmap):
                return False
    return True


def _equal(old: tuple, new: State) -> bool:
    """The snapshot holds the same Values (compared by identity) and stack
    masks as ``new``: then it subsumes ``new``."""
    for (regs, stack), fn in zip(old, new.frames):
        if stack != fn.stack or regs != tuple(fn.regs):
            return False
    return True


def _constant(value) -> int | None:
    """A constant scalar's value (a constant covers nothing but itself), else None."""
    if isinstance(value, Value) and value.kind == SCALAR:
        return value.scalar.const
    return None


def _separating(old: tuple, new: State) -> tuple[int, int] | None:
    """A place where the snapshot ``old`` holds a constant and ``new`` does not
    hold the same one: (frame, register), or (frame, -1 - slot) for a stack slot."""
    for f, (old_regs, old_stack) in enumerate(old):
        fn = new.frames[f]
        for i, vo in enumerate(old_regs):
            c = _constant(vo)
            if c is not None and _constant(fn.regs[i]) != c:
                return f, i
        for k, so in old_stack.items():
            c = _constant(so)
            if c is not None and _constant(fn.stack.get(k)) != c:
                return f, -1 - k
    return None


MAX_PLACES = 2       # places the kept states are bucketed by
BUCKET_FROM = 8      # kept states before bucketing pays for itself
LEARN_AFTER = 4      # failed comparisons in one test before looking for a better place
MAX_SEARCHES = 8     # then the places stay: looking for them is not free


class JoinStates:
    """The states kept at one join point (for one call chain), and the pruning test.

    Paths that meet again often carry the very same Values (they are shared),
    so a state equal to a kept one is found by hashing its registers.  Other
    comparisons mostly fail, at a few places that tell the paths apart, such
    as a constant each path sets differently.  So once there are enough kept
    states, and comparisons keep failing, they are bucketed by their
    constants at such places: a state holding the constant c at a place
    subsumes only states holding c there; a state without a constant at
    every place goes to ``loose``, which is always compared.
    """

    __slots__ = ("states", "by_regs", "places", "buckets", "loose", "searches", "tests")

    def __init__(self):
        self.states: list[tuple] = []
        self.by_regs: dict[tuple, list[tuple]] = {}
        self.places: tuple = ()
        self.buckets: dict[tuple, list[tuple]] | None = None  # until there are places
        self.loose: list[tuple] | tuple = ()
        self.searches = 0
        self.tests = 0  # subsumption tests made, for the checker's complexity limit

    def covers(self, new: State) -> bool:
        """True when a kept state subsumes ``new``."""
        for old in self.by_regs.get(tuple(new.regs), ()):
            if _equal(old, new):
                return True
        if self.buckets is None:
            groups: tuple = (self.states,)
        else:
            key = self._key(_frames(new))
            groups = (self.loose,) if key is None else (self.loose, self.buckets.get(key, ()))
        failed, last = 0, None
        for group in groups:
            for old in group:
                if _subsumes(old, new):
                    self.tests += failed + 1
                    return True
                failed, last = failed + 1, old
        self.tests += failed
        if failed >= LEARN_AFTER and len(self.states) >= BUCKET_FROM and self.searches < MAX_SEARCHES:
            self.searches += 1  # a search that finds nothing costs as much as one that does
            place = _separating(last, new)
            if place is not None and place not in self.places:
                self._rebucket((self.places + (place,))[-MAX_PLACES:])
        return False

    def keep(self, state: State) -> None:
        kept = _snapshot(state)
        self.by_regs.setdefault(kept[-1][0], []).append(kept)
        self.states.append(kept)
        if self.buckets is not None:
            self._add(kept)

    def _key(self, frames) -> tuple | None:
        """The constants at the places, or None when one is not a constant."""
        key = []
        for f, index in self.places:
            regs, stack = frames[f]
            c = _constant(regs[index] if index >= 0 else stack.get(-1 - index))
            if c is None:
                return None
            key.append(c)
        return tuple(key)

    def _add(self, kept: tuple) -> None:
        key = self._key(kept)
        if key is None:
            self.loose.append(kept)
        else:
            self.buckets.setdefault(key, []).append(kept)

    def _rebucket(self, places: tuple) -> None:
        self.places, self.buckets, self.loose = places, {}, []
        for kept in self.states:
            self._add(kept)
